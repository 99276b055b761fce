"""Log format for the CLI and the long-running worker (libraries only call getLogger)."""

from __future__ import annotations

import logging
import os
import sys

# apscheduler.executors: "Running job …" / "… executed successfully" for every scheduled run (the worker logs its
# jobs' outcomes itself; the executor's warnings and errors — a missed run, a failure — still show)
NOISY_LOGGERS = ("httpx", "httpcore", "urllib3", "filelock", "argilla.sdk", "apscheduler.executors")


def configure_logging(level: int | str = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        force=True,
    )
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_sdk_root_records)
    _quiet_transformers_progress()


def _quiet_sdk_root_records(record: logging.LogRecord) -> bool:
    """The argilla SDK logs "Logged in as … with the role …" on the root logger at INFO for every client the worker
    opens (no logger of its own to quieten): dropped below WARNING, kept at debug level."""
    from_sdk = record.name == "root" and f"{os.sep}argilla{os.sep}" in record.pathname
    return not from_sdk or record.levelno >= logging.WARNING or logging.getLogger().level <= logging.DEBUG


def _quiet_transformers_progress() -> None:
    """transformers draws a progress bar for every checkpoint it loads or writes (every fold, every evaluation),
    datasets one for every table it writes: noise in a service's log, where the worker logs its own progress. Without
    importing transformers (0.8 s of every command that never loads a model)."""
    from huggingface_hub.utils import disable_progress_bars  # what transformers reads when it is imported

    disable_progress_bars()
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if transformers_logging is not None:  # imported already (a test, a notebook): it has read the hub's setting
        transformers_logging.disable_progress_bar()
    # datasets draws one when publishing ("Creating parquet …"); it reads this when imported, so the CLI does not
    # pay for importing it here
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
