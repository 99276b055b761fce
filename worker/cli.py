"""The ``argilla-worker`` command line."""

from __future__ import annotations

import sys

import click

from worker.errors import WorkerError
from worker.local_argilla.settings import LocalArgillaSettings
from worker.logging_setup import configure_logging


class _CleanErrors(click.Group):
    """Print a WorkerError as one clear message (exit 1) instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except WorkerError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)


@click.group(cls=_CleanErrors)
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def cli(log_level: str) -> None:
    """An active-learning worker for Argilla: scores records with MC-dropout uncertainty and
    per-example loss, pushes suggestions and sortable metadata, retrains on corrections."""
    configure_logging(log_level.upper())


@cli.group("local-argilla")
def local_argilla() -> None:
    """A real Argilla server on this machine without Docker (for trying the worker and for tests).

    Settings come from LOCAL_ARGILLA_* environment variables: PORT (6900), SEARCH_PORT (9201),
    REDIS_PORT (6391), USERNAME, PASSWORD, API_KEY, WORKSPACE, STATE_DIR, SERVER_VENV.
    """


@local_argilla.command("up")
def local_argilla_up() -> None:
    """Start the stack (idempotent: only what is not running is started)."""
    from worker.local_argilla.stack import LocalArgilla

    settings = LocalArgillaSettings()
    LocalArgilla(settings).up()
    _print_access(settings)


@local_argilla.command("down")
def local_argilla_down() -> None:
    """Stop the processes this stack started; the database is kept."""
    from worker.local_argilla.stack import LocalArgilla

    stopped = LocalArgilla(LocalArgillaSettings()).down()
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@local_argilla.command("status")
def local_argilla_status() -> None:
    """Show each component, its PID and port; exit 1 unless all are running."""
    from worker.local_argilla.stack import LocalArgilla

    settings = LocalArgillaSettings()
    statuses = LocalArgilla(settings).status()
    for status in statuses:
        state = "running" if status.running else "stopped"
        port = f" port {status.port}" if status.port else ""
        pid = f" pid {status.pid}" if status.running else ""
        click.echo(f"{status.name:<7} {state}{pid}{port}")
    click.echo(f"state: {settings.state_dir}")
    if all(status.running for status in statuses):
        _print_access(settings)
    else:
        sys.exit(1)


@cli.command()
@click.option("--records", default=2000, show_default=True, help="How many movie snippets to log.")
@click.option("--flip-fraction", default=0.1, show_default=True, help="Fraction of labels flipped on purpose.")
@click.option("--seed", default=0, show_default=True)
def demo(records: int, flip_fraction: float, seed: int) -> None:
    """Run the worker on the embedded default: local Argilla + offline movie-review snippets."""
    from worker.demo import run_demo

    settings = LocalArgillaSettings()
    summary = run_demo(settings, records=records, flip_fraction=flip_fraction, seed=seed)
    click.echo(f"dataset {summary.dataset!r}: {summary.records} records, {summary.flipped} labels flipped")
    _print_access(settings)


def _print_access(settings: LocalArgillaSettings) -> None:
    click.echo(f"Argilla UI: {settings.api_url}")
    click.echo(f"  username: {settings.username}   password: {settings.password.get_secret_value()}")
    click.echo(f"  API key:  {settings.api_key.get_secret_value()}   workspace: {settings.workspace}")


def main() -> None:
    cli(prog_name="argilla-worker")
