"""Where a full score run goes on from after it stopped.

A full run reads every record (after a promotion, or a change of the ``[scoring]`` options): hours at 10^6 records
on a CPU, minutes on a GPU. Stopped part way — the service stopped, Argilla went away, or the runner paused it for
more urgent work (a rescore of the records annotators just answered, a retrain) — it leaves a :class:`FullPass`
checkpoint, and the next full run with the same model and options reads only the records after it instead of every
record again (which alone costs minutes of Argilla reads at 10^6, and would never end while annotators keep
answering and the runner keeps pausing it).

A checkpoint holds the last record the run pushed (its keyset position in the run's phase: the records nobody
reviewed first, then the reviewed ones), and what the run must carry to its end: the watermark it moves, the
reconciliation mark it sets, and the sample of the values it leaves stored (the view's quantiles). The records the
run read after that last pushed one are read again by the next run (found up to date, and passed over); the
up-to-date ones among them, read ahead by the scorer before the stop, enter the sample twice — at most the scorer's
window and the push queue, against a pass over the whole dataset.

One file per dataset (``state_dir/full_pass/<digest>.npz``): the sample's values as arrays (up to
``view.RESERVOIR`` floats per sort key, a few MB), the rest as JSON beside them; written atomically every
:data:`CHECKPOINT_EVERY_S` seconds of a run and when it stops, removed when a run completes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from worker.files import write_bytes_atomic
from worker.view import QuantileSketch

logger = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 30.0  # at most this much of a run's reading is done again after it stops without a last word
UNREVIEWED, REVIEWED = 0, 1  # a full run's phases (see worker.jobs.review_priority)


@dataclass
class FullPass:
    """A full run part way: what it ran with, where it is, what it carries to its end."""

    version: str  # the model it scores with
    options: dict[str, Any]  # the [scoring] options the records are written with (worker.jobs.written_options)
    stale_before: datetime | None  # records written before it with other options are scored again
    ceiling: datetime | None  # its watermark's: the newest change when it began (worker.gateway.client.Watermark)
    watermark: datetime | None  # the newest change it has seen, up to the ceiling
    reconciled_to: datetime  # the reconciliation mark it sets once complete (the server clock when it began)
    phase: int = UNREVIEWED
    position: tuple[datetime, str] | None = None  # the last record it pushed in that phase: (inserted_at, server id)
    read: int = 0  # records its runs read, together
    runs: int = 1
    sketch: QuantileSketch = field(default_factory=QuantileSketch)

    def fits(self, version: str, options: dict[str, Any], stale_before: datetime | None) -> bool:
        """Whether a run with this model and these options goes on from here (anything else starts again)."""
        return (self.version, self.options, self.stale_before) == (version, options, stale_before)

    def reached(self, phase: int, position: tuple[datetime, str] | None) -> None:
        """A record at ``position`` of ``phase`` was pushed (records arrive in the run's order)."""
        if position is not None:
            self.phase, self.position = phase, position


class FullPassStore:
    """The :class:`FullPass` checkpoints of a state directory, one file per dataset key."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def get(self, key: str) -> FullPass | None:
        """The checkpoint of ``key``'s full run, or None (none, or one that cannot be read: logged, then a full run
        starts again from the first record)."""
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                samples = {name[len("sample:"):]: stored[name].tolist() for name in stored.files
                           if name.startswith("sample:")}
            return _from_json(meta, samples)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
            logger.warning("the checkpoint of a full score run at %s cannot be read (%s): the next full run reads "
                           "every record", path, error)
            return None

    def put(self, key: str, full_pass: FullPass) -> None:
        """Write ``full_pass`` (atomically: a crash leaves the previous checkpoint or this one)."""
        buffer = io.BytesIO()
        samples, seen, records = full_pass.sketch.snapshot()
        meta = {**_to_json(full_pass), "sketch": {"seen": seen, "records": records}}
        arrays: dict[str, Any] = {f"sample:{name}": np.asarray(values, dtype=np.float64)
                                  for name, values in samples.items()}
        np.savez(buffer, **{"meta": np.array(json.dumps(meta)), **arrays})
        write_bytes_atomic(self._path(key), buffer.getvalue())

    def clear(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def _to_json(full_pass: FullPass) -> dict[str, Any]:
    def instant(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    position = full_pass.position
    return {"version": full_pass.version, "options": full_pass.options,
            "stale_before": instant(full_pass.stale_before), "ceiling": instant(full_pass.ceiling),
            "watermark": instant(full_pass.watermark), "reconciled_to": instant(full_pass.reconciled_to),
            "phase": full_pass.phase, "position": [position[0].isoformat(), position[1]] if position else None,
            "read": full_pass.read, "runs": full_pass.runs}


def _from_json(meta: dict[str, Any], samples: dict[str, list[float]]) -> FullPass:
    def instant(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    position = meta["position"]
    sketch = QuantileSketch(seed=int(meta["read"]), samples=samples, seen=dict(meta["sketch"]["seen"]),
                            records=int(meta["sketch"]["records"]))
    return FullPass(version=str(meta["version"]), options=dict(meta["options"]),
                    stale_before=instant(meta["stale_before"]), ceiling=instant(meta["ceiling"]),
                    watermark=instant(meta["watermark"]),
                    reconciled_to=datetime.fromisoformat(meta["reconciled_to"]),
                    phase=int(meta["phase"]),
                    position=(datetime.fromisoformat(position[0]), str(position[1])) if position else None,
                    read=int(meta["read"]), runs=int(meta["runs"]), sketch=sketch)
