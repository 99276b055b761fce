"""A team's own dataset, made the way they would: with the plain Argilla SDK, nothing of the worker's."""

from __future__ import annotations

from collections.abc import Callable

import argilla as rg


def create_with_sdk(stack_settings, name: str, settings: Callable[[], rg.Settings]) -> rg.Dataset:
    """The dataset ``name`` created in the test workspace by the SDK's own client, with the settings ``settings()``
    makes — called once the client exists: the SDK's questions look for a client as they are built."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=name, workspace=stack_settings.workspace, settings=settings(), client=client)
    dataset.create()
    return dataset
