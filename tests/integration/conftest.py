"""The integration tier runs against a real local Argilla stack.

The stack used here has its own state directory and ports (so it never touches a stack a
developer runs on the default ports). The session fixture reuses it when it is already up,
otherwise starts it and stops it at the end. Override with TEST_ARGILLA_STATE_DIR.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla

REPO_ROOT = Path(__file__).resolve().parents[2]


def _test_stack_settings() -> LocalArgillaSettings:
    state_dir = Path(os.environ.get("TEST_ARGILLA_STATE_DIR", REPO_ROOT / ".pytest-argilla"))
    return LocalArgillaSettings(
        port=int(os.environ.get("TEST_ARGILLA_PORT", "6910")),
        search_port=int(os.environ.get("TEST_ARGILLA_SEARCH_PORT", "9211")),
        redis_port=int(os.environ.get("TEST_ARGILLA_REDIS_PORT", "6392")),
        state_dir=state_dir,
    )


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_settings() -> LocalArgillaSettings:
    return _test_stack_settings()


@pytest.fixture(scope="session")
def local_argilla(stack_settings):
    stack = LocalArgilla(stack_settings)
    started_here = not stack.is_up()
    try:
        if started_here:
            stack.up()
        _delete_worker_webhooks(stack_settings)
        yield stack
    finally:  # also when up fails half-way (a port taken): nothing it started is left running
        if started_here:
            stack.down()


@pytest.fixture(scope="session")
def server_version(local_argilla, stack_settings):
    """The release of argilla-server the suite runs on (LOCAL_ARGILLA_SERVER_VERSION picks another, README: Tests)."""
    import httpx
    from packaging.version import Version

    headers = {"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()}
    return Version(httpx.get(f"{stack_settings.api_url}/api/v1/version", headers=headers, timeout=30).json()["version"])


@pytest.fixture
def dataset_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def _delete_worker_webhooks(settings: LocalArgillaSettings) -> None:
    """A reused test stack keeps webhooks that killed workers left behind; Argilla allows only 10."""
    import httpx

    headers = {"X-Argilla-Api-Key": settings.api_key.get_secret_value()}
    hooks = httpx.get(f"{settings.api_url}/api/v1/webhooks", headers=headers, timeout=30).json()["items"]
    for hook in hooks:
        if (hook.get("description") or "").startswith("argilla-worker"):
            httpx.delete(f"{settings.api_url}/api/v1/webhooks/{hook['id']}", headers=headers, timeout=30)
