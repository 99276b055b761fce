"""The CLI's log: the argilla SDK's root-logger chatter is dropped, the worker's own lines are kept."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import argilla

from worker.logging_setup import configure_logging


def test_the_sdks_login_line_is_dropped_and_the_workers_lines_kept():
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging(logging.INFO)
        stream = io.StringIO()
        root.handlers[0].setStream(stream)
        sdk_file = argilla.__file__.replace("__init__.py", "_api/_client.py")
        sdk_line = root.makeRecord("root", logging.INFO, sdk_file, 161,
                                   "Argilla: Logged in as argilla with the role Role.owner", (), None)
        sdk_warning = root.makeRecord("root", logging.WARNING, sdk_file, 161, "Argilla: something is off", (), None)
        root.handle(sdk_line)
        root.handle(sdk_warning)
        logging.getLogger("worker.jobs").info("scoring complete")

        text = stream.getvalue()
        assert "Logged in as" not in text
        assert "something is off" in text and "scoring complete" in text
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_transformers_progress_bars_are_off_without_the_cli_importing_transformers():
    """In a fresh process, as the CLI does: a command that never loads a model does not pay for transformers, and
    one that does (imported after the logging is set up) draws no progress bar."""
    script = ("import sys; from worker.logging_setup import configure_logging; configure_logging(); "
              "print('transformers' in sys.modules); "
              "from transformers.utils import logging as tl; print(tl.is_progress_bar_enabled())")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)

    assert result.stdout.split() == ["False", "False"]
