"""docker-compose.yml cannot run here (no Docker engine); check its wiring instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_the_deployment_has_argilla_its_search_engine_redis_and_the_worker(compose):
    services = compose["services"]
    assert {"argilla", "argilla-jobs", "elasticsearch", "redis", "worker"} <= set(services)
    assert services["argilla"]["image"].startswith("argilla/argilla-server:v2.8")
    assert services["elasticsearch"]["image"].split(":")[-1].startswith("8.")


def test_argilla_is_wired_to_elasticsearch_and_redis(compose):
    for name in ("argilla", "argilla-jobs"):
        env = compose["services"][name]["environment"]
        assert env["ARGILLA_ELASTICSEARCH"] == "http://elasticsearch:9200"
        assert env["ARGILLA_REDIS_URL"] == "redis://redis:6379/0"
    assert "worker" in compose["services"]["argilla-jobs"]["command"]


def test_every_dependency_waits_for_a_healthcheck(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
    assert services["worker"]["depends_on"]["argilla"]["condition"] == "service_healthy"


def test_the_worker_is_built_here_gets_a_gpu_and_its_secrets_from_the_environment(compose):
    worker = compose["services"]["worker"]
    assert worker["build"] == "."
    assert (REPO_ROOT / "Dockerfile").exists()
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    env = worker["environment"]
    assert env["ARGILLA_WORKER_ARGILLA__API_URL"] == "http://argilla:6900"
    assert env["ARGILLA_WORKER_ARGILLA__API_KEY"].startswith("${ARGILLA_API_KEY")
    assert env["HF_TOKEN"].startswith("${HF_TOKEN")
    assert worker["command"][:2] == ["argilla-worker", "run"]
    assert worker["stop_grace_period"] == "1m"  # time to end the batch under way and delete the webhook
    port = int(env["ARGILLA_WORKER_HTTP__PORT"])
    assert f"{port}:{port}" in worker["ports"] and env["ARGILLA_WORKER_HTTP__PUBLIC_URL"].endswith(f":{port}")


def test_the_example_config_is_valid_and_every_env_override_names_a_real_key(compose, monkeypatch):
    from worker.config import load_settings

    for key in [k for k in os.environ if k.startswith("ARGILLA_WORKER_")]:
        monkeypatch.delenv(key)
    for key, value in compose["services"]["worker"]["environment"].items():
        if key.startswith("ARGILLA_WORKER_") and not str(value).startswith("${"):
            monkeypatch.setenv(key, str(value))
    settings = load_settings(REPO_ROOT / "worker.example.toml")
    assert settings.http.port == 8900 and settings.argilla.dataset


def test_the_images_environment_names_only_settings_the_worker_reads(monkeypatch):
    """The Dockerfile's ENV: an ARGILLA_WORKER_* name that is no setting is refused at start (it once set
    ARGILLA_WORKER_HOME, which nothing read)."""
    import re

    from worker.config import load_settings

    for key in [k for k in os.environ if k.startswith("ARGILLA_WORKER_")]:
        monkeypatch.delenv(key)
    dockerfile = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    assigned = dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", " ".join(
        line[4:] for line in dockerfile.splitlines() if line.startswith("ENV "))))
    ours = {key: value for key, value in assigned.items() if key.startswith("ARGILLA_WORKER_")}
    assert {"ARGILLA_WORKER_STATE_DIR", "ARGILLA_WORKER_CACHE"} <= set(ours)
    for key, value in ours.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(REPO_ROOT / "worker.example.toml")
    assert str(settings.state_dir) == "/var/lib/argilla-worker/state" and settings.http.port == 8900
    monkeypatch.setenv("ARGILLA_WORKER_HOME", "/var/lib/argilla-worker")
    with pytest.raises(Exception, match=r"ARGILLA_WORKER_HOME: no such setting"):
        load_settings(REPO_ROOT / "worker.example.toml")


def test_state_lives_in_named_volumes(compose):
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
    assert "argilla-data" in declared and "elasticsearch-data" in declared
