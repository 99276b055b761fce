"""The worker's HTTP port: ``/healthz``, Prometheus ``/metrics``, and the Argilla webhook receiver."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.webhooks import InvalidDelivery, verify

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/argilla"
MAX_BODY = 5 * 1024 * 1024


def start_http_server(runner) -> ThreadingHTTPServer:
    """Serve in a daemon thread; returns the server (``server_address[1]`` is the bound port)."""
    settings = runner.settings.http
    server = ThreadingHTTPServer((settings.host, settings.port), _handler(runner))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def _handler(runner):
    class Handler(BaseHTTPRequestHandler):
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
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._send(413, b'{"error": "body too large"}')
            body = self.rfile.read(length)
            if runner.webhook_secret is None:
                return self._reject("no webhook is registered")
            try:
                delivery = verify(runner.webhook_secret, body, dict(self.headers.items()))
            except InvalidDelivery as error:
                return self._reject(str(error))
            runner.metrics.webhooks_accepted.inc()
            logger.info("webhook %s for record %s", delivery.type, delivery.record_id)
            runner.on_delivery(delivery)
            self._send(200, b'{"status": "accepted"}')

        def _reject(self, reason: str) -> None:
            runner.metrics.webhooks_rejected.inc()
            logger.warning("webhook rejected from %s: %s", self.client_address[0], reason)
            self._send(401, json.dumps({"error": "invalid signature"}).encode())

    return Handler
