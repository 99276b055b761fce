"""`argilla-worker local-argilla ...` as a user runs it, and its error paths."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from worker.errors import PortInUseError
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla


def _cli_env(settings: LocalArgillaSettings) -> dict[str, str]:
    return {
        **os.environ,
        "LOCAL_ARGILLA_PORT": str(settings.port),
        "LOCAL_ARGILLA_SEARCH_PORT": str(settings.search_port),
        "LOCAL_ARGILLA_REDIS_PORT": str(settings.redis_port),
        "LOCAL_ARGILLA_STATE_DIR": str(settings.state_dir),
        "LOCAL_ARGILLA_SERVER_VENV": str(settings.venv),
    }


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def test_status_of_a_running_stack_lists_components_and_credentials(local_argilla, stack_settings):
    result = _run_cli("local-argilla", "status", env=_cli_env(stack_settings))

    assert result.returncode == 0, result.stderr
    for component in ("redis", "search", "server", "jobs"):
        assert f"{component:<7} running" in result.stdout
    assert "index   ok: " in result.stdout and "records indexed, as in the database" in result.stdout
    assert f"http://localhost:{stack_settings.port}" in result.stdout
    assert stack_settings.api_key.get_secret_value() in result.stdout


def test_up_is_idempotent_and_keeps_the_same_processes(local_argilla, stack_settings):
    pids_before = {status.name: status.pid for status in local_argilla.status()}

    result = _run_cli("local-argilla", "up", env=_cli_env(stack_settings))

    assert result.returncode == 0, result.stderr
    assert {status.name: status.pid for status in local_argilla.status()} == pids_before


def test_status_of_a_stopped_stack_exits_1(local_argilla, stack_settings, tmp_path):
    stopped = stack_settings.model_copy(update={"state_dir": tmp_path / "never-started", "port": 6999})

    result = _run_cli("local-argilla", "status", env=_cli_env(stopped))

    assert result.returncode == 1
    assert "server  stopped" in result.stdout


def test_a_taken_port_is_a_clear_error_and_nothing_is_started(local_argilla, stack_settings, tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken_port = squatter.getsockname()[1]
        settings = stack_settings.model_copy(
            update={"state_dir": tmp_path / "stack", "redis_port": taken_port, "port": 6998, "search_port": 9298}
        )

        with pytest.raises(PortInUseError, match=f"port {taken_port} needed by the local Argilla 'redis'"):
            LocalArgilla(settings).up()

        result = _run_cli("local-argilla", "up", env=_cli_env(settings))

    assert result.returncode == 1
    assert f"error: port {taken_port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(status.running for status in LocalArgilla(settings).status())
