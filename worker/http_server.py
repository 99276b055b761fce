"""The worker's HTTP port: ``/healthz``, Prometheus ``/metrics``, and the Argilla webhook receiver."""

from __future__ import annotations

import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.errors import ConfigError
from worker.webhooks import InvalidDelivery, MalformedDelivery, ReplayGuard, verify

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/argilla"
MAX_BODY = 5 * 1024 * 1024


def start_http_server(runner) -> ThreadingHTTPServer:
    """Serve in a daemon thread; returns the server (``server_address[1]`` is the bound port).

    Raises:
        ConfigError: the worker cannot listen at ``http.host``:``http.port`` (the port is another process's, the
            host is not one of this machine's addresses), in the system's words.
    """
    settings = runner.settings.http
    try:
        server = _QuietServer((settings.host, settings.port), _handler(runner, settings.idle_timeout_s))
    except OSError as error:
        raise ConfigError(f"http.host = {settings.host!r}, http.port = {settings.port}: the worker cannot listen "
                          f"there ({error.strerror or error}): another process holds the port, or the host is not "
                          f"one of this machine's addresses; set http.port (0: any free port) or http.host"
                          ) from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


class _QuietServer(ThreadingHTTPServer):
    """A client that disconnects or times out is a log line, not a traceback on stderr."""

    def handle_error(self, request, client_address) -> None:
        logger.info("http connection from %s ended: %s", client_address[0], sys.exc_info()[1])


def _handler(runner, idle_timeout_s: float):
    replays = ReplayGuard()

    class Handler(BaseHTTPRequestHandler):
        timeout = idle_timeout_s  # a connection idle this long (headers or body not sent) is closed

        def log_message(self, format, *args):
            logger.debug("http %s", format % args)

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/healthz":
                status = runner.status
                healthy = not status.stopping
                body = {"status": "ok" if healthy else "stopping", "mode": status.mode,
                        "argilla": status.argilla, "model": status.model.get("version"),
                        "queue": runner.queue.pending()}
                return self._send(200 if healthy else 503, json.dumps(body).encode())
            if self.path == "/metrics":
                return self._send(200, generate_latest(runner.metrics.registry), CONTENT_TYPE_LATEST)
            self._send(404, b'{"error": "not found"}')

        def do_POST(self):
            if self.path != WEBHOOK_PATH:
                return self._send(404, b'{"error": "not found"}')
            declared = self.headers.get("Content-Length") or "0"
            if not declared.isdigit():
                return self._bad_request(f"Content-Length {declared[:40]!r} is not a byte count")
            if int(declared) > MAX_BODY:
                return self._send(413, b'{"error": "body too large"}')
            body = self.rfile.read(int(declared))
            if runner.webhook_secret is None:
                return self._reject("no webhook is registered")
            try:
                delivery = verify(runner.webhook_secret, body, dict(self.headers.items()))
            except InvalidDelivery as error:
                return self._reject(str(error))
            except MalformedDelivery as error:
                return self._bad_request(str(error))
            if not replays.first_time(delivery.id):
                runner.metrics.webhooks_rejected.inc()
                logger.warning("webhook %s (%s) already received: replay ignored", delivery.id, delivery.type)
                return self._send(200, b'{"status": "duplicate"}')  # acknowledged, so a sender stops retrying
            runner.metrics.webhooks_accepted.inc()
            logger.debug("webhook %s%s", delivery.type,  # one per annotation: counted in the metrics, not logged
                        f" for record {delivery.record_id}" if delivery.record_id is not None else "")
            runner.on_delivery(delivery)
            self._send(200, b'{"status": "accepted"}')

        def _bad_request(self, reason: str) -> None:
            runner.metrics.webhooks_rejected.inc()
            logger.warning("webhook request from %s refused: %s", self.client_address[0], reason)
            self.close_connection = True
            self._send(400, json.dumps({"error": reason}).encode())

        def _reject(self, reason: str) -> None:
            runner.metrics.webhooks_rejected.inc()
            logger.warning("webhook rejected from %s: %s", self.client_address[0], reason)
            self._send(401, json.dumps({"error": "invalid signature"}).encode())

    return Handler
