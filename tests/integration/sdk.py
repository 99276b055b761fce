"""A team's own dataset, made the way they would: with the plain Argilla SDK, nothing of the worker's."""

from __future__ import annotations

import argilla as rg


def create_with_sdk(stack_settings, name: str, settings: rg.Settings) -> rg.Dataset:
    """The dataset ``name`` created in the test workspace with ``settings`` by the SDK's own client."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=name, workspace=stack_settings.workspace, settings=settings, client=client)
    dataset.create()
    return dataset
