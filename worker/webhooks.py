"""Argilla webhooks: registering the worker's receiver, and verifying deliveries.

Argilla signs every delivery with the standard-webhooks scheme (``webhook-id``,
``webhook-timestamp``, ``webhook-signature`` headers; HMAC-SHA256 with the webhook's secret, which
Argilla generates at registration). A delivery with a missing, invalid, or stale (> 5 minutes)
signature is rejected; a validly signed body that is not an Argilla event is malformed; a
delivery whose ``webhook-id`` was already accepted within the signature window is a replay
(:class:`ReplayGuard`). The secret is kept in memory only and never logged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from worker.errors import ArgillaGatewayError
from worker.gateway import ArgillaGateway

logger = logging.getLogger(__name__)

EVENTS = ("response.created", "response.updated", "record.completed")
DESCRIPTION = "argilla-worker"  # + the dataset and the worker's state directory: one webhook per worker


SIGNATURE_WINDOW_S = 5 * 60  # standard-webhooks' timestamp tolerance: older deliveries fail verification


class InvalidDelivery(Exception):
    """A delivery whose signature is missing, invalid or stale (the reason is safe to log)."""


class MalformedDelivery(Exception):
    """A validly signed delivery whose body is not an Argilla event of a known shape."""


class ReplayGuard:
    """Remembers the ``webhook-id`` of each accepted delivery for the signature window: a second delivery
    with the same id is a replay (a delivery older than the window fails the signature check anyway).
    Memory is bounded by ``max_ids`` (the oldest are forgotten first). Thread-safe."""

    def __init__(self, window_s: float = SIGNATURE_WINDOW_S, max_ids: int = 100_000):
        self.window_s, self.max_ids = window_s, max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery_id: str) -> bool:
        """True the first time ``delivery_id`` is seen within the window (and remember it)."""
        now = time.monotonic()
        with self._lock:
            while self._seen and (len(self._seen) >= self.max_ids
                                  or now - next(iter(self._seen.values())) > self.window_s):
                self._seen.popitem(last=False)
            if delivery_id in self._seen:
                return False
            self._seen[delivery_id] = now
            return True


@dataclass(frozen=True)
class Registration:
    webhook_id: str
    url: str
    secret: str

    def __repr__(self) -> str:  # never show the secret
        return f"Registration(webhook_id={self.webhook_id!r}, url={self.url!r})"


@dataclass(frozen=True)
class Delivery:
    """A verified event: its id (``webhook-id``), type, and the record it concerns (external id, server id,
    dataset id, its field values as the event carries them), if any."""

    type: str
    record_id: str | None
    dataset_id: str | None
    response_status: str | None
    id: str = ""
    server_id: str | None = None  # the record's id on the server: what a rescore reads it by
    fields: Mapping[str, object] | None = None  # the record's field values (Argilla 2.x events carry them)


def register(gateway: ArgillaGateway, url: str, owner: str) -> Registration:
    """Create the webhook for ``url``, or bring an existing one's events up to date (one per URL).

    ``owner`` identifies this worker (dataset + state directory): its webhooks left behind at other
    URLs (an earlier run on another port, stopped with kill -9) are deleted — Argilla allows 10 in all.
    """
    description = f"{DESCRIPTION} {owner}"[:250]
    hooks = gateway.list_webhooks()
    for stale in [hook for hook in hooks if hook.get("description") == description and hook["url"] != url]:
        logger.info("deleting this worker's stale webhook %s (%s)", stale["id"], stale["url"])
        gateway.delete_webhook(stale["id"])
    existing = [hook for hook in hooks if hook["url"] == url]
    if existing:
        hook = existing[0]
        if sorted(hook["events"]) != sorted(EVENTS) or not hook["enabled"]:
            hook = gateway.update_webhook(hook["id"], events=EVENTS, enabled=True)
        for duplicate in existing[1:]:
            gateway.delete_webhook(duplicate["id"])
    else:
        hook = gateway.create_webhook(url, EVENTS, description)
    logger.info("Argilla webhook %s delivers %s to %s", hook["id"], list(EVENTS), url)
    return Registration(str(hook["id"]), url, hook["secret"])


def unregister(gateway: ArgillaGateway, registration: Registration) -> None:
    """Delete the webhook (on a clean stop; the next start catches up by polling)."""
    gateway.delete_webhook(registration.webhook_id)
    logger.info("Argilla webhook %s deleted", registration.webhook_id)


def ping(gateway: ArgillaGateway, registration: Registration) -> None:
    """Ask Argilla to deliver a ``ping`` event now (raises ArgillaGatewayError when it cannot)."""
    gateway.ping_webhook(registration.webhook_id)


class Subscription:
    """The worker's webhook on Argilla for its lifetime: registered and pinged at start, its secret kept in
    memory for verifying deliveries, deleted on a clean stop."""

    def __init__(self, gateway: ArgillaGateway, url: str, owner: str):
        self.gateway, self.url, self.owner = gateway, url, owner
        self.registration: Registration | None = None
        self.ping_received = threading.Event()

    @property
    def secret(self) -> str | None:
        """The signing secret Argilla generated for the webhook (None before registration)."""
        return self.registration.secret if self.registration is not None else None

    def start(self, ping_wait_s: float) -> str | None:
        """Register and ask for a ping; None once the ping arrived within ``ping_wait_s``, else why the worker
        should poll instead (registration refused, or Argilla cannot reach ``url``)."""
        try:
            self.registration = register(self.gateway, self.url, self.owner)
            ping(self.gateway, self.registration)
        except ArgillaGatewayError as error:
            return f"webhook registration failed: {error}"
        if self.ping_received.wait(ping_wait_s):
            return None
        return (f"no ping from Argilla at {self.url} within {ping_wait_s:.0f} s (is the worker reachable from "
                f"Argilla? http.public_url); webhooks take over when a signed delivery arrives")

    def lost(self) -> str | None:
        """Why the webhook no longer delivers this worker's events as registered — someone (a person, a clean-up
        script) deleted it, disabled it, or changed its events or URL while the worker ran —, else None. One
        request.

        Raises:
            ArgillaGatewayError: the server could not be asked.
        """
        if self.registration is None:
            return None
        hook = next((hook for hook in self.gateway.list_webhooks()
                     if str(hook["id"]) == self.registration.webhook_id), None)
        if hook is None:
            return "deleted"
        if not hook["enabled"]:
            return "disabled"
        if sorted(hook["events"]) != sorted(EVENTS):
            return f"changed to deliver {sorted(hook['events'])}"
        if hook["url"] != self.registration.url:
            return f"pointed at {hook['url']}"
        return None

    def stop(self) -> None:
        """Delete the webhook (a failure is logged: the next start replaces a stale one)."""
        if self.registration is None:
            return
        try:
            unregister(self.gateway, self.registration)
        except ArgillaGatewayError as error:
            if error.status == 404:  # someone deleted it first: what the stop was for
                logger.info("Argilla webhook %s was deleted already", self.registration.webhook_id)
                return
            logger.warning("could not delete the Argilla webhook %s: %s", self.registration.webhook_id, error)


def verify(secret: str, body: bytes, headers: dict[str, str]) -> Delivery:
    """Check the signature and parse the event.

    Raises:
        InvalidDelivery: missing / invalid / stale signature, or an unreadable body.
        MalformedDelivery: a signed body that is not an Argilla event of a known shape.
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
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise MalformedDelivery(f"the body is not an Argilla event (type: {_shape(event, 'type')})")
    kind = event["type"]
    data = event.get("data") or {}
    if not isinstance(data, dict):
        raise MalformedDelivery(f"{kind}: 'data' is a {type(data).__name__}, not an object")
    record = data.get("record") if "record" in data else (data if kind.startswith("record.") else None)
    if record is not None and not isinstance(record, dict):
        raise MalformedDelivery(f"{kind}: the record is a {type(record).__name__}, not an object")
    dataset = (record or {}).get("dataset") or {}
    external_id, status = (record or {}).get("external_id"), data.get("status")
    server_id, fields = (record or {}).get("id"), (record or {}).get("fields")
    if not isinstance(dataset, dict) or not all(isinstance(value, str | None)
                                                for value in (external_id, status, server_id)):
        raise MalformedDelivery(f"{kind}: unexpected record, dataset or status value")
    return Delivery(
        type=kind,
        record_id=external_id,
        server_id=server_id,
        dataset_id=str(dataset.get("id")) if record else None,
        response_status=status if kind.startswith("response.") else None,
        id=lowered["webhook-id"],
        fields=fields if isinstance(fields, dict) else None,
    )


def _shape(event: object, key: str) -> str:
    if not isinstance(event, dict):
        return f"the body is a {type(event).__name__}"
    return type(event.get(key)).__name__ if key in event else "missing"
