"""Argilla webhooks: registering the worker's receiver, and verifying deliveries.

Argilla signs every delivery with the standard-webhooks scheme (``webhook-id``,
``webhook-timestamp``, ``webhook-signature`` headers; HMAC-SHA256 with the webhook's secret, which
Argilla generates at registration). A delivery with a missing, invalid, or stale (> 5 minutes)
signature is rejected. The secret is kept in memory only and never logged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from worker.gateway import ArgillaGateway

logger = logging.getLogger(__name__)

EVENTS = ("response.created", "response.updated", "record.completed")
DESCRIPTION = "argilla-worker"  # + the dataset and the worker's state directory: one webhook per worker


class InvalidDelivery(Exception):
    """A delivery whose signature is missing, invalid or stale (the reason is safe to log)."""


@dataclass(frozen=True)
class Registration:
    webhook_id: str
    url: str
    secret: str

    def __repr__(self) -> str:  # never show the secret
        return f"Registration(webhook_id={self.webhook_id!r}, url={self.url!r})"


@dataclass(frozen=True)
class Delivery:
    """A verified event: its type, and the record it concerns (external id, dataset id), if any."""

    type: str
    record_id: str | None
    dataset_id: str | None
    response_status: str | None


def register(gateway: ArgillaGateway, url: str, owner: str) -> Registration:
    """Create the webhook for ``url``, or bring an existing one's events up to date (one per URL).

    ``owner`` identifies this worker (dataset + state directory): its webhooks left behind at other
    URLs (an earlier run on another port, stopped with kill -9) are deleted — Argilla allows 10 in all.
    """
    description = f"{DESCRIPTION} {owner}"[:250]
    hooks = gateway._request("GET", "/api/v1/webhooks")["items"]
    for stale in [hook for hook in hooks if hook.get("description") == description and hook["url"] != url]:
        logger.info("deleting this worker's stale webhook %s (%s)", stale["id"], stale["url"])
        gateway._request("DELETE", f"/api/v1/webhooks/{stale['id']}")
    existing = [hook for hook in hooks if hook["url"] == url]
    if existing:
        hook = existing[0]
        if sorted(hook["events"]) != sorted(EVENTS) or not hook["enabled"]:
            hook = gateway._request("PATCH", f"/api/v1/webhooks/{hook['id']}",
                                    json={"events": list(EVENTS), "enabled": True})
        for duplicate in existing[1:]:
            gateway._request("DELETE", f"/api/v1/webhooks/{duplicate['id']}")
    else:
        hook = gateway._request("POST", "/api/v1/webhooks",
                                json={"url": url, "events": list(EVENTS), "description": description})
    logger.info("Argilla webhook %s delivers %s to %s", hook["id"], list(EVENTS), url)
    return Registration(str(hook["id"]), url, hook["secret"])


def unregister(gateway: ArgillaGateway, registration: Registration) -> None:
    """Delete the webhook (on a clean stop; the next start catches up by polling)."""
    gateway._request("DELETE", f"/api/v1/webhooks/{registration.webhook_id}")
    logger.info("Argilla webhook %s deleted", registration.webhook_id)


def ping(gateway: ArgillaGateway, registration: Registration) -> None:
    """Ask Argilla to deliver a ``ping`` event now (raises ArgillaGatewayError when it cannot)."""
    gateway._request("POST", f"/api/v1/webhooks/{registration.webhook_id}/ping")


def verify(secret: str, body: bytes, headers: dict[str, str]) -> Delivery:
    """Check the signature and parse the event.

    Raises:
        InvalidDelivery: missing / invalid / stale signature, or a body that is not an event.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    missing = [name for name in ("webhook-id", "webhook-timestamp", "webhook-signature") if name not in lowered]
    if missing:
        raise InvalidDelivery(f"missing header(s) {missing}")
    try:
        event = Webhook(secret).verify(body, lowered)
    except WebhookVerificationError as error:
        raise InvalidDelivery(str(error)) from None
    except (ValueError, json.JSONDecodeError) as error:
        raise InvalidDelivery(f"unreadable delivery: {error}") from None
    if not isinstance(event, dict) or "type" not in event:
        raise InvalidDelivery("the body is not an Argilla event")
    data = event.get("data") or {}
    record = data.get("record") if "record" in data else (data if event["type"].startswith("record.") else None)
    return Delivery(
        type=event["type"],
        record_id=(record or {}).get("external_id"),
        dataset_id=str((record or {}).get("dataset", {}).get("id")) if record else None,
        response_status=data.get("status") if event["type"].startswith("response.") else None,
    )
