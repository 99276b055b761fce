"""A team's own dataset, made the way they would: with the plain Argilla SDK, nothing of the worker's."""

from __future__ import annotations

from collections.abc import Callable

import argilla as rg
import httpx


def create_with_sdk(stack_settings, name: str, settings: Callable[[], rg.Settings]) -> rg.Dataset:
    """The dataset ``name`` created in the test workspace by the SDK's own client, with the settings ``settings()``
    makes — called once the client exists: the SDK's questions look for a client as they are built."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=name, workspace=stack_settings.workspace, settings=settings(), client=client)
    dataset.create()
    return dataset


def stored_records(stack_settings, dataset_id) -> dict[str, dict]:
    """Every record of the dataset as the server stores it, with its responses and suggestions (external id →
    JSON): what the tests check the worker wrote, read past the worker's own code."""
    response = httpx.get(f"{stack_settings.api_url}/api/v1/datasets/{dataset_id}/records",
                         headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()},
                         params={"include": ["responses", "suggestions"], "limit": 1000}, timeout=30)
    response.raise_for_status()
    return {item["external_id"]: item for item in response.json()["items"]}
