"""A job's scratch directory held by another, real process (worker.files.Scratch), for the tests of its removal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_HOLD_SCRATCH = """
import sys, time
from pathlib import Path
from worker.files import Scratch
scratch = Scratch(Path(sys.argv[1]), sys.argv[2])
(scratch.path / "rows.arrow").write_bytes(b"x" * 100_000)
print(scratch.path, flush=True)
time.sleep(600)
"""


def scratch_in_another_process(parent: Path, prefix: str) -> tuple[subprocess.Popen, Path]:
    """(the process, its scratch directory): a real process that made a Scratch and holds it until killed."""
    process = subprocess.Popen([sys.executable, "-c", _HOLD_SCRATCH, str(parent), prefix], stdout=subprocess.PIPE,
                               text=True)
    with process.stdout:
        return process, Path(process.stdout.readline().strip())
