"""Acts as an annotator in the Argilla UI: the same single-response endpoint the UI calls."""

from __future__ import annotations

import httpx


def submit_label(settings, record_server_id, label: str, *, status: str = "submitted",
                 headers: dict | None = None, question: str = "label") -> dict:
    """POST /api/v1/records/{id}/responses, exactly like the UI's Submit button; returns the response JSON.

    ``headers`` authenticate another user (see create_annotator); default: the owner's API key.
    """
    response = httpx.post(
        f"{settings.api_url}/api/v1/records/{record_server_id}/responses",
        headers=headers or {"X-Argilla-Api-Key": settings.api_key.get_secret_value()},
        json={"values": {question: {"value": label}}, "status": status},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def search_sorted_by_metadata(settings, dataset_id, prop: str, order: str = "desc") -> list[dict]:
    """The UI's sorted listing: POST /api/v1/datasets/{id}/records/search with a metadata sort."""
    response = httpx.post(
        f"{settings.api_url}/api/v1/datasets/{dataset_id}/records/search",
        headers={"X-Argilla-Api-Key": settings.api_key.get_secret_value()},
        params={"limit": 100},
        json={"sort": [{"scope": {"entity": "metadata", "metadata_property": prop}, "order": order}]},
        timeout=30,
    )
    response.raise_for_status()
    return [item["record"] for item in response.json()["items"]]


def raw_responses(settings, dataset_id) -> dict[str, list]:
    """Every record's responses exactly as the server stores them (external id → JSON list)."""
    response = httpx.get(
        f"{settings.api_url}/api/v1/datasets/{dataset_id}/records",
        headers={"X-Argilla-Api-Key": settings.api_key.get_secret_value()},
        params={"include": ["responses"], "limit": 1000},
        timeout=30,
    )
    response.raise_for_status()
    return {item["external_id"]: item.get("responses", []) for item in response.json()["items"]}


def create_annotator(settings, client, username: str) -> dict:
    """A second annotator with access to the workspace, signed in like the UI; returns auth headers."""
    import argilla as rg

    password = "annotator-pass"
    user = rg.User(username=username, password=password, role="annotator", client=client).create()
    client.workspaces(settings.workspace).add_user(user)
    token = httpx.post(f"{settings.api_url}/api/v1/token", data={"username": username, "password": password},
                       timeout=30)
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}
