"""The Ray engine on a joined cluster (``ray.address``): a real head node started with ``ray start --head`` (token
authentication, as Ray 2.60 sets up a head where a token exists) and the worker in its own process
(tests/ray_cluster_driver.py), because Ray ends a driver process whose node's Ray stops — the behaviour under test.

Measured by hand before the fix (Ray 2.60): a driver that stayed joined while the cluster was killed ended at its
next call into Ray, with "The connection to the plasma store is failed. Terminate the process" in Ray's log and no
Python exception; and a worker joining without the cluster's token was told only "Failed to connect to Ray
cluster at …"."""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'argilla-worker[ray]')")

from tests.tiny_models import save_tiny_classifier
from worker.config import load_settings
from worker.jobs import Services

ROOT = Path(__file__).resolve().parents[2]


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: held together while the system picks them (probed one after the other, a port
    just released can come back — the dashboard agent of a restarted head got its own GCS port, and Ray refused)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class _Head:
    """A one-node Ray cluster (``ray start --head --block`` in its own process group: killed whole, as a crash or
    a restart of the cluster would end it)."""

    def __init__(self, temp_dir: Path, env: dict[str, str]):
        self.temp_dir, self.env = temp_dir, env
        self.port, self.client_port = _free_ports(2)  # the same two at every restart
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.temp_dir / f"head-{time.monotonic_ns()}.log"
        # a fresh one each start, never one of the head's own two (free while it is down: three distinct, two ruled out)
        agent_port = next(port for port in _free_ports(3) if port not in (self.port, self.client_port))
        command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={self.port}",
                   "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={self.temp_dir}",
                   f"--ray-client-server-port={self.client_port}", f"--dashboard-agent-listen-port={agent_port}"]
        with log.open("w") as output:
            self.process = subprocess.Popen(command, env=self.env, stdout=output, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)

    def kill(self) -> None:
        """The head's process group, and what it started outside the group (Ray Client's per-client servers,
        started with ``--address=…:port``: one left behind keeps its port, and the next head's fails to start)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
        started_by_head = re.compile(rf"--address=\S+:{self.port}(\s|$)")
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if started_by_head.search(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")):
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue


class _Driver:
    """The worker process: one command in, one JSON answer out."""

    def __init__(self, options: dict, env: dict[str, str], log: Path):
        self.log = log.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "tests.ray_cluster_driver", json.dumps(options)],
                                        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True)

    def ask(self, command: str, timeout: float = 240) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        self.log.flush()
        assert line, (f"the worker process gave no answer to {command!r} (exit {self.process.poll()}); its log ends: "
                      f"{Path(self.log.name).read_text()[-2000:]}")
        return json.loads(line)

    def close(self) -> int:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self.log.close()


@pytest.fixture
def cluster(tmp_path):
    """A one-node cluster with a token (not started yet), the worker's options for it (one actor, leaving after 1 s
    idle, a tiny current model) and the environments: ``base`` (no Ray variable) and ``with_token``."""
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay short
    token = secrets.token_hex(16)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    base.update(RAY_TMPDIR=str(temp_dir), RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1",
                PYTHONPATH=str(ROOT))
    with_token = {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    head = _Head(temp_dir, with_token)

    options = {"scoring": {"engine": "ray", "device": "cpu", "samples": 2},
               "ray": {"address": f"127.0.0.1:{head.port}", "actors": 1, "gpus_per_actor": 0, "keep_joined_s": 1},
               "registry": {"path": str(tmp_path / "registry")}, "state_dir": str(tmp_path / "state")}
    services = Services(load_settings(**options))
    with services.registry.staging() as staged:
        shutil.copytree(save_tiny_classifier(tmp_path / "model"), staged, dirs_exist_ok=True)
        services.registry.promote(services.registry.add(staged, {}).version)
    try:
        yield {"head": head, "options": options, "base": base, "with_token": with_token, "temp_dir": temp_dir}
    finally:
        head.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.cluster
def test_a_worker_leaves_a_joined_cluster_when_idle_outlives_its_restart_and_joins_it_again(cluster, tmp_path):
    """``host:port``: this machine a node of the cluster."""
    head, options, base, with_token, temp_dir = (cluster[key] for key in ("head", "options", "base", "with_token",
                                                                          "temp_dir"))
    head.start()
    # (Ray tries a refused connection once a second, 20 times by default: 2 here, the same error sooner)
    without_token = _Driver(options, {**base, "RAY_AUTH_MODE": "disabled", "RAY_gcs_server_port_wait_time_s": "2"},
                            tmp_path / "without-token.log")
    refused = without_token.ask("check")
    assert without_token.close() == 0
    assert refused["error"].startswith(f"ray.address = '127.0.0.1:{head.port}': cannot start or join Ray "
                                       f"(Failed to connect to Ray cluster at "), refused
    assert "AuthenticationError" in refused["error"] and "RAY_AUTH_MODE" in refused["error"], refused
    assert "\n" not in refused["error"]

    too_many = {**options, "ray": {**options["ray"], "actors": 3, "start_timeout_s": 2}}  # 3 CPUs of 2
    unplaced = _Driver(too_many, with_token, tmp_path / "unplaced.log")
    failed = unplaced.ask("score")
    assert unplaced.close() == 0
    assert re.match(r"[1-3] of 3 Ray scoring actor\(s\) were not placed within 2 s", failed["error"]), failed
    assert failed["joined"] is False  # joined for nothing: left at once, not held until the next run

    # no address: the worker's own local Ray, not the cluster `ray start` runs on this machine (Ray's default
    # would join it, and end the worker when that cluster restarts)
    # (`ray start` without --temp-dir writes its address to <system temp>/ray/ray_current_cluster, which a plain
    # ray.init() reads: the same file, under this driver's own RAY_TMPDIR)
    machine_tmp = temp_dir / "own"
    (machine_tmp / "ray").mkdir(parents=True)
    shutil.copy(temp_dir / "ray_current_cluster", machine_tmp / "ray" / "ray_current_cluster")
    own = _Driver({**options, "ray": {**options["ray"], "address": ""}},
                  {**with_token, "RAY_TMPDIR": str(machine_tmp)}, tmp_path / "own.log")
    assert own.ask("score") == {"scored": 24, "joined": True}
    assert not own.ask("gcs")["gcs"].endswith(f":{head.port}")
    assert own.close() == 0

    worker = _Driver(options, with_token, tmp_path / "worker.log")
    assert worker.ask("score") == {"scored": 24, "joined": True}  # kept for the next run (a webhook burst)
    assert worker.ask("idle") == {"joined": True}
    time.sleep(1.5)
    assert worker.ask("idle") == {"joined": False}  # idle for ray.keep_joined_s: left the cluster

    head.kill()  # the cluster restarts; a worker still joined would be ended by Ray here
    time.sleep(3)
    assert worker.ask("idle") == {"joined": False}
    head.start()
    assert worker.ask("score") == {"scored": 24, "joined": True}  # joined again
    assert worker.close() == 0


@pytest.mark.cluster
def test_a_ray_client_worker_outlives_its_server_and_joins_it_again(cluster, tmp_path):
    """``ray://`` (Ray Client): the process outlives its server; a run that loses it fails in one line, the next
    joins again. (Marked ``cluster``: two minutes of head restarts, run by hand — ``bash scripts/test.sh -m cluster``
    — not in CI's run.)"""
    head, options, with_token = cluster["head"], cluster["options"], cluster["with_token"]
    head.start()
    through_client = {**options, "ray": {**options["ray"], "address": f"ray://127.0.0.1:{head.client_port}",
                                         "keep_joined_s": 600}}
    client = _Driver(through_client, {**with_token, "RAY_CLIENT_RECONNECT_GRACE_PERIOD": "5"},
                     tmp_path / "client.log")
    assert client.ask("score") == {"scored": 24, "joined": True}
    checked = client.ask("check")  # config check asks the nodes through Ray Client too
    assert checked["check"].endswith("; 1 node(s) that can hold an actor run this worker's code"), checked
    head.kill()
    lost = client.ask("score")  # after Ray Client's grace period of trying to reconnect (30 s, 5 s here)
    assert lost["error"].startswith("the connection to the Ray cluster was lost: "), lost
    head.start()
    # (right after a restart Ray Client's server may fail to start this client's session: joined again)
    assert client.ask("score") == {"scored": 24, "joined": True}
    assert client.close() == 0
