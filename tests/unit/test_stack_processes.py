"""How the local stack starts, watches and stops processes (real processes, no Argilla needed)."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import psutil
import pytest

from worker.errors import ComponentStartError, PortInUseError
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import Component, LocalArgilla, _process_matches


@pytest.fixture
def stack(tmp_path):
    stack = LocalArgilla(LocalArgillaSettings(state_dir=tmp_path / "state", server_venv=tmp_path / "venv",
                                              start_timeout_s=3))
    stack.logs_dir.mkdir(parents=True)
    return stack


def test_a_component_that_exits_reports_its_exit_code_and_log_tail(stack):
    crashing = Component("crashing", None, ["sh", "-c", "echo 'fatal: bad config line 3'; exit 3"], lambda: False)

    with pytest.raises(ComponentStartError) as error:
        stack._start(crashing)

    assert "'crashing' exited with code 3" in str(error.value)
    assert "fatal: bad config line 3" in str(error.value)


def test_a_components_log_is_moved_aside_at_a_start_once_it_is_large_keeping_one_older_copy(stack, monkeypatch):
    """Each start appends to the component's log: a stack restarted for months would fill the disk."""
    monkeypatch.setattr("worker.local_argilla.stack.LOG_ROTATE_BYTES", 1000)
    log = stack.logs_dir / "chatty.log"
    log.write_text("old line\n" * 200)  # 1,800 bytes: past the limit
    chatty = Component("chatty", None, ["sh", "-c", "echo 'start 1'; exit 3"], lambda: False)

    for _ in range(2):
        with pytest.raises(ComponentStartError):
            stack._start(chatty)

    assert log.read_text() == "start 1\nstart 1\n"  # small again: the second start appended
    assert (stack.logs_dir / "chatty.log.1").read_text() == "old line\n" * 200
    log.write_text("newer\n" * 200)
    with pytest.raises(ComponentStartError):
        stack._start(chatty)
    assert (stack.logs_dir / "chatty.log.1").read_text() == "newer\n" * 200  # one older copy, not a pile
    assert log.read_text() == "start 1\n"


def test_a_component_that_exited_before_it_is_recorded_is_remembered_by_its_start_time(stack):
    """A crashing component can be a zombie by the time its pid is written: it has no command line to record
    (psutil raised ZombieProcess there, in one CI run, instead of the component's exit code and log)."""
    exited = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while psutil.Process(exited.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.01)

    stack._remember("exited", exited.pid)

    entry = json.loads(stack._pids_file.read_text())["exited"]
    assert entry["pid"] == exited.pid and entry["cmdline"] == [] and entry["create_time"] > 0
    assert not _process_matches(entry)  # a zombie is not a running component
    exited.wait()


def test_a_component_that_never_gets_healthy_is_stopped_and_reported(stack):
    hanging = Component("hanging", None, ["sh", "-c", "echo waiting forever; exec sleep 60"], lambda: False)

    with pytest.raises(ComponentStartError, match="'hanging' not healthy after 3 s") as error:
        stack._start(hanging)

    assert "waiting forever" in str(error.value)
    pid = stack._read_pids()["hanging"]["pid"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_taken_port_is_refused_before_anything_starts(stack):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port}"):
            stack._start(Component("redis", port, ["sleep", "60"], lambda: True))
    assert stack._read_pids() == {}


def test_down_never_stops_a_process_it_did_not_start(stack):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        # A stale PID file pointing at a recycled PID: same number, different process.
        stack._write_pids({"redis": {"pid": stranger.pid, "create_time": time.time() - 3600}})

        assert stack.down() == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_down_stops_what_it_started_with_its_children(stack):
    parent = Component("search", None, ["sh", "-c", "sleep 60 & sleep 60; wait"], lambda: True)
    stack._start(parent)
    pid = stack._read_pids()["search"]["pid"]
    children = psutil.Process(pid).children(recursive=True)
    assert children

    assert stack.down() == ["search"]

    for process in [psutil.Process(pid) if psutil.pid_exists(pid) else None, *children]:
        assert process is None or not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    assert json.loads((stack.state_dir / "pids.json").read_text()) == {}


def test_process_identity_includes_its_start_time():
    me = psutil.Process()
    assert _process_matches({"pid": me.pid, "create_time": me.create_time()})
    assert not _process_matches({"pid": me.pid, "create_time": me.create_time() - 10})
    assert not _process_matches({"pid": 2**22 + 17, "create_time": 0.0})
    # the wall clock stepped since it was recorded: its command line still says it is ours; another's does not
    assert _process_matches({"pid": me.pid, "create_time": me.create_time() - 43, "cmdline": me.cmdline()})
    assert not _process_matches({"pid": me.pid, "create_time": me.create_time() - 43, "cmdline": ["sleep", "60"]})


def test_another_argilla_server_release_gets_its_own_virtualenv_and_requirements(tmp_path, monkeypatch):
    """LOCAL_ARGILLA_SERVER_VERSION runs the stack (and the integration suite) on another release without
    reinstalling the default one's virtualenv."""
    default = LocalArgillaSettings()
    monkeypatch.setenv("LOCAL_ARGILLA_SERVER_VERSION", "2.5.0")
    older = LocalArgillaSettings()

    assert default.requirements[0] == "argilla-server==2.8.0" and older.requirements[0] == "argilla-server==2.5.0"
    assert default.requirements[1:] == older.requirements[1:]
    assert older.venv != default.venv and older.venv.name == "argilla-server-2.5.0-venv"
    assert LocalArgillaSettings(server_venv=tmp_path / "mine").venv == tmp_path / "mine"
    monkeypatch.setenv("LOCAL_ARGILLA_SERVER_VERSION", "latest")
    with pytest.raises(ValueError, match="server_version"):
        LocalArgillaSettings()
