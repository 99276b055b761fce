"""A reverse proxy in front of the local Argilla, standing in for what teams put there: HTTPS with a certificate of
their own authority, a gateway that lets a request through only with a bearer token (what a private Hugging Face
Space does: it answers 404 without the token), and a sign-in gateway that wants headers of its own (what Cloudflare
Access does with a service token: without it, a redirect to its sign-in page). Every request and answer is passed
through unchanged, so the worker talks to the real Argilla behind it."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class Proxy:
    url: str
    seen_authorization: list[str]  # the Authorization header of each request that reached the proxy ("" if none)
    seen_headers: list[dict[str, str]]  # every request's headers, names in lower case


SIGN_IN_PAGE = "https://team.cloudflareaccess.com/cdn-cgi/access/login/argilla.team.example"


@contextmanager
def argilla_proxy(upstream: str, *, bearer: str | None = None, tls: ssl.SSLContext | None = None,
                  sign_in: dict[str, str] | None = None) -> Iterator[Proxy]:
    """Serve ``upstream`` on a free local port (https when ``tls`` is a server context); with ``bearer``, a
    request without ``Authorization: Bearer <bearer>`` gets a 404 page, as from a private Space; with ``sign_in``
    (header name -> value), a request without all of them is redirected to a sign-in page."""
    seen: list[str] = []
    seen_headers: list[dict[str, str]] = []
    client = httpx.Client(base_url=upstream, timeout=60)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            authorization = self.headers.get("Authorization", "")
            seen.append(authorization)
            seen_headers.append({key.lower(): value for key, value in self.headers.items()})
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if bearer is not None and authorization != f"Bearer {bearer}":
                self._answer(404, {"Content-Type": "text/html"}, b"<html><h1>404</h1><p>Sorry, we can't find the "
                                                                  b"page you are looking for.</p></html>")
                return
            if sign_in is not None and any(self.headers.get(name) != value for name, value in sign_in.items()):
                self._answer(302, {"Location": SIGN_IN_PAGE, "Content-Type": "text/html"}, b"")
                return
            headers = {key: value for key, value in self.headers.items()
                       if key.lower() not in HOP_BY_HOP and key.lower() != "authorization"}
            answer = client.request(self.command, self.path, headers=headers, content=body)
            self._answer(answer.status_code, {key: value for key, value in answer.headers.items()
                                              if key.lower() not in HOP_BY_HOP}, answer.content)

        def _answer(self, status: int, headers: dict[str, str], content: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, *args) -> None:  # quiet: pytest shows failures
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield Proxy(f"{scheme}://127.0.0.1:{server.server_address[1]}", seen, seen_headers)
    finally:
        server.shutdown()
        server.server_close()
        client.close()
