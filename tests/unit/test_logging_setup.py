"""The CLI's log: the argilla SDK's root-logger chatter is dropped, the worker's own lines are kept."""

from __future__ import annotations

import io
import logging

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
