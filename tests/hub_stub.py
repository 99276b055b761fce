"""A local HTTP endpoint speaking just the Hugging Face Hub routes our Hub sink calls.

This is a protocol stub, not a mock of our code: the real ``huggingface_hub`` client talks HTTP to
it (via ``HF_ENDPOINT`` / ``HfApi(endpoint=…)``) because the Hub itself cannot be reached from this
machine. Routes: create repo, validate-yaml (the card's header must parse), preupload (answers "regular" for
every file — the real Hub would send binaries through LFS), commit (NDJSON: header, file, deletedFolder,
deletedFile), list commits, list files (the tree, one page). It checks the bearer token and keeps each repo's
files and commit history in memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import unquote

NOT_FOUND = {"error": "Repository not found"}
ENTRY_NOT_FOUND = {"error": "Entry not found"}


@dataclass
class StubRepo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)  # newest first


class HubStub:
    def __init__(self, token: str):
        self.token = token
        self.repos: dict[str, StubRepo] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization header)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                if body == NOT_FOUND:  # what the Hub sends: huggingface_hub raises RepositoryNotFoundError on it
                    self.send_header("X-Error-Code", "RepoNotFound")
                if body == ENTRY_NOT_FOUND:  # ... and EntryNotFoundError on this
                    self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                header = self.headers.get("Authorization")
                stub.requests.append((self.command, self.path, header))
                if header != f"Bearer {stub.token}":
                    self._reply(401, {"error": "Invalid credentials in Authorization header"})
                    return False
                return True

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_POST(self):
                if not self._authorised():
                    return
                body = self._body()
                if self.path == "/api/repos/create":
                    request = json.loads(body)
                    repo_id = f"{request['organization'] or 'user'}/{request['name']}"
                    created = repo_id not in stub.repos
                    if created:
                        # huggingface_hub < 1 sends "private": true, ≥ 1 "visibility": "private"
                        private = bool(request.get("private")) or request.get("visibility") == "private"
                        stub.repos[repo_id] = StubRepo(private=private)
                        stub.repos[repo_id].commits.insert(0, _commit("initial commit", ""))
                    body = {"url": f"{stub.url}/datasets/{repo_id}", "name": repo_id}
                    if not created:  # the Hub answers 409 and still names the repo
                        body["error"] = "You already created this dataset repo"
                    return self._reply(200 if created else 409, body)
                if self.path == "/api/validate-yaml":
                    return self._reply(*_validate_card(json.loads(body)["content"]))
                match = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/(preupload|commit)/main(\?.*)?", self.path)
                if not match or match.group(1) not in stub.repos:
                    return self._reply(404, NOT_FOUND)
                repo = stub.repos[match.group(1)]
                if match.group(2) == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                        "shouldIgnore": False} for f in files]})
                return self._reply(200, _apply_commit(repo, body, f"{stub.url}/datasets/{match.group(1)}"))

            def do_GET(self):
                if not self._authorised():
                    return
                tree = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/main(/[^?]*)?(\?.*)?", self.path)
                if tree:
                    if tree.group(1) not in stub.repos:
                        return self._reply(404, NOT_FOUND)
                    folder = unquote(tree.group(2) or "").strip("/")
                    files = {path: content for path, content in stub.repos[tree.group(1)].files.items()
                             if not folder or path.startswith(folder + "/")}
                    if folder and not files:
                        return self._reply(404, ENTRY_NOT_FOUND)
                    return self._reply(200, [{"type": "file", "path": path, "size": len(content),
                                              "oid": hashlib.sha1(content).hexdigest()}
                                             for path, content in sorted(files.items())])
                match = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/commits/main(\?.*)?", self.path)
                if not match or match.group(1) not in stub.repos:
                    return self._reply(404, NOT_FOUND)
                return self._reply(200, stub.repos[match.group(1)].commits)

        return Handler


def _validate_card(content: str) -> tuple[int, dict]:
    """What the Hub checks before accepting a README.md: a YAML header that parses to a mapping."""
    import yaml

    parts = content.split("---")
    if not content.startswith("---") or len(parts) < 3:
        return 400, {"errors": [{"message": "README.md has no YAML metadata header"}]}
    try:
        header = yaml.safe_load(parts[1])
    except yaml.YAMLError as error:
        return 400, {"errors": [{"message": f"invalid YAML: {error}"}]}
    if not isinstance(header, dict):
        return 400, {"errors": [{"message": "the YAML header is not a mapping"}]}
    return 200, {"errors": [], "warnings": []}


def _commit(title: str, message: str) -> dict:
    oid = hashlib.sha1(f"{title}{message}{datetime.now(UTC).isoformat()}".encode()).hexdigest()
    return {"id": oid, "title": title, "message": message, "authors": [{"user": "worker"}],
            "date": datetime.now(UTC).isoformat().replace("+00:00", "Z")}


def _apply_commit(repo: StubRepo, body: bytes, url: str) -> dict:
    header = None
    for line in body.decode().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key, value = item["key"], item["value"]
        if key == "header":
            header = value
        elif key == "file":
            repo.files[value["path"]] = base64.b64decode(value["content"])
        elif key == "deletedFolder":
            prefix = value["path"].rstrip("/") + "/"
            for path in [p for p in repo.files if p.startswith(prefix)]:
                del repo.files[path]
        elif key == "deletedFile":
            repo.files.pop(value["path"], None)
        else:
            raise ValueError(f"the stub does not implement commit operation {key!r}")
    commit = _commit(header["summary"], header.get("description", ""))
    repo.commits.insert(0, commit)
    return {"commitUrl": f"{url}/commit/{commit['id']}", "commitOid": commit["id"], "pullRequestUrl": None}
