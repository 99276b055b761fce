"""Push what changes the annotators' view, not every value a new model moved a little.

After a retrain every record gets new values, but most of them would not move in the orders annotators
sort by. Argilla's bulk upsert is the slowest part of the loop (≈ 7 ms of server time per record), so a
record whose new values would leave the view as it is keeps its old ones:

* its suggested label, and every non-float value the worker writes (predicted label, disagreement,
  reference label, submitted responses …) are unchanged — only ``model_version`` / ``mc_samples`` may differ;
* for every sort key (the float metadata and the suggestion's score), its **rank percentile** among the
  stored values moved by at most ``rank_tolerance`` (0.01: one percentile point: in a list of 10^6
  records it lands within 10,000 places of its exact place, in a top-500 page almost always in place);
* it is in none of the ``exact_top`` records at either end of any sort key, old or new value: the top
  of every order is always exact.

Percentiles are read from :class:`ValueQuantiles`, the distribution of the values stored after the
previous complete full run (1,001 quantiles per key, built from a reservoir sample: O(1) memory, O(N)
time over a run). Without it (a first run) every record is pushed. A record that keeps its old values
keeps the version that computed them; it is rescored (and again not pushed) whenever a run reads it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

import numpy as np

from worker.files import KeyedJsonFile
from worker.gateway.schema import FLOAT_METADATA
from worker.records import Prediction, PulledRecord

SUGGESTION_SCORE = "suggestion_score"  # the suggestion's score: the UI sorts by it too
# bald_power is BALD plus noise redrawn by every model (see worker.scoring.acquisition): BALD itself is
# checked, and a kept record's old draw is as valid a draw as a new one
REDRAWN = frozenset({"bald_power"})
SORT_KEYS = tuple(key for key in (*FLOAT_METADATA, SUGGESTION_SCORE) if key not in REDRAWN)
NOT_SHOWN_IN_ORDER = frozenset({"model_version", "mc_samples"}) | REDRAWN  # may differ in a kept record
QUANTILES = 1001
RESERVOIR = 20_000


@dataclass(frozen=True)
class ValueQuantiles:
    """Per sort key, ``QUANTILES`` evenly spaced quantiles of the stored values, and the number of records
    they describe."""

    quantiles: dict[str, np.ndarray]  # key -> [QUANTILES], non-decreasing
    count: int

    def percentile(self, key: str, value: float) -> float:
        """The share of stored values at or below ``value`` (0…1), interpolated between quantiles."""
        points = self.quantiles[key]
        return float(np.interp(value, points, np.linspace(0.0, 1.0, len(points)), left=0.0, right=1.0))

    def to_json(self) -> dict:
        return {"count": self.count, "quantiles": {key: [float(v) for v in values]
                                                   for key, values in self.quantiles.items()}}

    @classmethod
    def from_json(cls, data: Mapping) -> ValueQuantiles:
        return cls({key: np.asarray(values, dtype=np.float64) for key, values in data["quantiles"].items()},
                   int(data["count"]))


@dataclass
class QuantileSketch:
    """Reservoir samples (Algorithm R, at most ``RESERVOIR`` values per key) of the values a run leaves
    stored: memory O(RESERVOIR × keys) whatever the number of records."""

    seed: int = 0
    samples: dict[str, list[float]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    records: int = 0

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()  # fed by the scoring thread (up to date records) and the pusher

    def add(self, values: Mapping[str, object]) -> None:
        """The sort-key values one record keeps stored (metadata plus ``SUGGESTION_SCORE``)."""
        with self._lock:
            self._add(values)

    def _add(self, values: Mapping[str, object]) -> None:
        self.records += 1
        for key in SORT_KEYS:
            value = values.get(key)
            if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
                continue
            seen = self.seen.get(key, 0) + 1
            self.seen[key] = seen
            sample = self.samples.setdefault(key, [])
            if len(sample) < RESERVOIR:
                sample.append(float(value))
            elif (slot := self._rng.randrange(seen)) < RESERVOIR:
                sample[slot] = float(value)

    def snapshot(self) -> tuple[dict[str, list[float]], dict[str, int], int]:
        """Copies of (samples, seen, records), consistent while the sketch is being fed."""
        with self._lock:
            return {key: list(values) for key, values in self.samples.items()}, dict(self.seen), self.records

    def quantiles(self) -> ValueQuantiles:
        levels = np.linspace(0.0, 1.0, QUANTILES)
        return ValueQuantiles({key: np.quantile(np.asarray(sample), levels) for key, sample in self.samples.items()
                               if sample}, self.records)


def stored_values(record: PulledRecord) -> dict[str, object]:
    """What a record has stored now, as the sort keys see it."""
    score = record.suggestion.score if record.suggestion is not None else None
    return {**record.metadata, SUGGESTION_SCORE: score}


def new_values(prediction: Prediction) -> dict[str, object]:
    return {**prediction.metadata, SUGGESTION_SCORE: prediction.score}


@dataclass(frozen=True)
class ViewTolerance:
    """When a new prediction would leave the annotators' view as it is (see the module docstring)."""

    rank_tolerance: float = 0.01
    exact_top: int = 500

    def keeps_view(self, record: PulledRecord, prediction: Prediction, quantiles: ValueQuantiles | None) -> bool:
        return self.push_reason(record, prediction, quantiles) is None

    def push_reason(self, record: PulledRecord, prediction: Prediction,
                    quantiles: ValueQuantiles | None) -> str | None:
        """Why ``prediction`` must be pushed ("label", "value", "top", "rank <sort key>", "first run"), or
        None: the record keeps its stored values."""
        if quantiles is None or quantiles.count == 0 or record.suggestion is None:
            return "first run"
        if record.suggestion.value != prediction.label:
            return "label"
        old, new = stored_values(record), new_values(prediction)
        for key, value in new.items():
            if key not in NOT_SHOWN_IN_ORDER and key not in SORT_KEYS and old.get(key) != value:
                return "value"
        edge = min(self.exact_top / quantiles.count, 0.5)
        for key in SORT_KEYS:
            if key not in new:  # not written by this prediction: the push keeps the stored value (label_issue …)
                continue
            old_value, new_value = old.get(key), new.get(key)
            if not (_is_number(old_value) and _is_number(new_value)) or key not in quantiles.quantiles:
                return "value"
            before, after = quantiles.percentile(key, old_value), quantiles.percentile(key, new_value)
            if self.exact_top and (min(before, after) <= edge or max(before, after) >= 1.0 - edge):
                return "top"  # the top (or bottom) of an order is always exact
            if abs(after - before) > self.rank_tolerance:
                return f"rank {key}"
        return None


def _is_number(value: object) -> TypeGuard[float]:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))


class QuantileStore:
    """The :class:`ValueQuantiles` of each dataset's last complete full run: one small JSON file."""

    def __init__(self, path: Path):
        self.file = KeyedJsonFile(path)

    def get(self, key: str) -> ValueQuantiles | None:
        data = self.file.get(key)
        return ValueQuantiles.from_json(data) if data else None

    def put(self, key: str, quantiles: ValueQuantiles) -> None:
        self.file.put(key, quantiles.to_json())
