"""The worker's command line run in the test's own process, as a drop-in for ``subprocess.run``.

Each ``python -m worker`` process pays ~10 s of imports (torch, transformers, baal) on the CI machine before it does
anything; the tests that run a dozen commands each run them here instead, through click's runner: the same
``worker.cli`` code as the console script, with the environment the process would have had. The console script
itself (its process, exit status and stderr) keeps its own tests: test_ingest_cli, test_local_argilla_cli and
test_worker_process run it as a real process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import traceback
from collections.abc import Mapping, Sequence

from click.testing import CliRunner


def run_worker(args: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """What ``subprocess.run([python, "-m", "worker", *args], env=env, capture_output=True, text=True)`` returns.

    ``env`` is the whole environment, as for a process: variables of this process that it lacks are unset for the
    command. An exception the CLI lets through is written to ``stderr`` as the traceback a process would print, so
    a test's ``"Traceback" not in stderr`` still fails on it. The root logger (the CLI configures it) is put back.
    """
    from worker.cli import cli

    overrides: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    overrides.update(env)
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    try:
        result = CliRunner().invoke(cli, list(args), env=overrides, prog_name="argilla-worker")
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["argilla-worker", *args], result.exit_code, result.stdout, stderr)
