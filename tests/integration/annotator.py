"""Acts as an annotator in the Argilla UI: the same single-response endpoint the UI calls."""

from __future__ import annotations

import httpx


def submit_label(settings, record_server_id, label: str, *, status: str = "submitted") -> dict:
    """POST /api/v1/records/{id}/responses, exactly like the UI's Submit button; returns the response JSON."""
    response = httpx.post(
        f"{settings.api_url}/api/v1/records/{record_server_id}/responses",
        headers={"X-Argilla-Api-Key": settings.api_key.get_secret_value()},
        json={"values": {"label": {"value": label}}, "status": status},
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
