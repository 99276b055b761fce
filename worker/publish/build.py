"""From Argilla records to the cleaned dataset: one row per record, corrected label beside the original.

``label`` is the annotators' consensus where the record was reviewed, else the original label;
``original_label`` is always the label the record came with. The text columns are the bound
fields, under their own names (a field whose name is one of the worker's columns is published as
``field_<name>``). Records whose annotators are tied,
and records with neither a consensus nor an original label, are reported and left out — the
worker never guesses a label.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import datasets

from worker.errors import DataError
from worker.records import PulledRecord, consensus

FLOAT_COLUMNS = ("loss", "expected_loss", "original_loss", "bald", "entropy", "margin", "confidence")
WORKER_COLUMNS = ("id", "label", "original_label", "was_corrected", "reviewed", "annotator_agreement",
                  "num_annotators", *FLOAT_COLUMNS, "model_version")


@dataclass(frozen=True)
class PublishOptions:
    only_reviewed: bool = False
    split: Literal["keep", "stratified", "none"] = "none"
    test_fraction: float = 0.2
    seed: int = 0


@dataclass
class Publication:
    """The cleaned dataset (one ``datasets.Dataset`` per split) and what the card reports about it."""

    splits: dict[str, datasets.Dataset]
    labels: tuple[str, ...]
    records_seen: int
    text_columns: dict[str, str] = field(default_factory=lambda: {"text": "text"})  # field name -> column
    tied: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    model_version: str | None = None
    options: PublishOptions = field(default_factory=PublishOptions)

    @property
    def features(self) -> datasets.Features:
        return features(self.labels, tuple(self.text_columns.values()))

    @property
    def rows(self) -> list[dict]:
        return [row for split in self.splits.values() for row in split]

    def counts(self) -> dict:
        rows = self.rows
        return {
            "records": len(rows),
            "records_in_argilla": self.records_seen,
            "reviewed": sum(row["reviewed"] for row in rows),
            "corrected": sum(row["was_corrected"] for row in rows),
            "tied_left_out": len(self.tied),
            "unlabelled_left_out": len(self.unlabelled),
            "per_split": {name: split.num_rows for name, split in self.splits.items()},
            "per_class": {label: sum(self.labels[row["label"]] == label for row in rows) for label in self.labels},
            "per_original_class": {label: sum(row["original_label"] >= 0 and self.labels[row["original_label"]] == label
                                              for row in rows) for label in self.labels},
        }

    def changes(self) -> list[tuple[str, str, int]]:
        """(original, corrected, count) for every label change, most frequent first."""
        counter = Counter((self.labels[row["original_label"]], self.labels[row["label"]])
                          for row in self.rows if row["was_corrected"])
        return sorted(((original, corrected, count) for (original, corrected), count in counter.items()),
                      key=lambda change: (-change[2], change[0], change[1]))

    def content_hash(self) -> str:
        """A hash of everything published (rows, labels, splits, model version), independent of write time."""
        digest = hashlib.sha256(json.dumps([list(self.labels), self.model_version]).encode())
        for name in sorted(self.splits):
            for row in sorted(self.splits[name], key=lambda r: r["id"]):
                digest.update(json.dumps([name, row], sort_keys=True, default=str).encode())
        return digest.hexdigest()


def text_columns(fields: Sequence[str]) -> dict[str, str]:
    """The published column of each bound text field: its own name, ``field_<name>`` if the worker uses it."""
    return {name: f"field_{name}" if name in WORKER_COLUMNS else name for name in fields}


def features(labels: Sequence[str], columns: Sequence[str] = ("text",)) -> datasets.Features:
    """The published table's columns: ``id``, the text column(s), the labels, review and score columns."""
    class_label = datasets.ClassLabel(names=list(labels))
    return datasets.Features({
        "id": datasets.Value("string"),
        **{column: datasets.Value("string") for column in columns},
        "label": class_label,
        "original_label": datasets.ClassLabel(names=list(labels)),
        "was_corrected": datasets.Value("bool"),
        "reviewed": datasets.Value("bool"),
        "annotator_agreement": datasets.Value("float32"),
        "num_annotators": datasets.Value("int32"),
        **{name: datasets.Value("float32") for name in FLOAT_COLUMNS},
        "model_version": datasets.Value("string"),
    })


def build_publication(records: Iterable[PulledRecord], labels: Sequence[str],
                      options: PublishOptions = PublishOptions(), *, fields: Sequence[str] = ("text",)) -> Publication:
    """Rows for every publishable record, split as ``options`` ask; ``fields`` are the bound text fields.

    Raises:
        DataError: a record's label is not one of ``labels`` (names the record and the value), or
            ``split="keep"`` and a record has no ``split`` metadata.
    """
    index = {label: position for position, label in enumerate(labels)}
    columns = text_columns(fields)
    rows, splits_of, tied, unlabelled, versions, seen = [], {}, [], [], Counter(), 0
    for record in records:
        seen += 1
        verdict = consensus(record)
        if verdict is not None and verdict.label is None:
            tied.append(record.record_id)
            continue
        if options.only_reviewed and verdict is None:
            continue
        original = record.reference
        label = verdict.label if verdict is not None else original
        if label is None:
            unlabelled.append(record.record_id)
            continue
        rows.append(_row(record, label, original, verdict, index, columns))
        splits_of[record.record_id] = record.metadata.get("split")
        if record.metadata.get("model_version"):
            versions[record.metadata["model_version"]] += 1
    publication_splits = _split(rows, splits_of, options)
    table_features = features(labels, tuple(columns.values()))
    return Publication(
        splits={name: datasets.Dataset.from_list(part, features=table_features)
                for name, part in publication_splits.items()},
        labels=tuple(labels), records_seen=seen, text_columns=columns, tied=tied, unlabelled=unlabelled,
        model_version=versions.most_common(1)[0][0] if versions else None, options=options,
    )


def _row(record: PulledRecord, label: str, original: str | None, verdict, index: dict[str, int],
         columns: dict[str, str]) -> dict:
    """One published row; a record that came without a label has ``original_label`` −1 (datasets' "no label"),
    an optional field the record leaves empty is null."""
    for value, what in ((label, "consensus label" if verdict else "label"), (original, "original label")):
        if value is not None and value not in index:
            raise DataError(f"record {record.record_id!r}: {what} {value!r} is not one of {list(index)}")
    for name in columns:
        value = record.field_values.get(name)
        if value is not None and not isinstance(value, str):
            raise DataError(f"record {record.record_id!r}: field {name!r} is {type(value).__name__}, not a string")
    return {
        "id": record.record_id,
        **{column: record.field_values.get(name) for name, column in columns.items()},
        "label": index[label],
        "original_label": index[original] if original is not None else -1,
        "was_corrected": verdict is not None and original is not None and label != original,
        "reviewed": verdict is not None,
        "annotator_agreement": verdict.agreement if verdict else None,
        "num_annotators": verdict.num_annotators if verdict else 0,
        **{name: _float(record.metadata.get(name)) for name in FLOAT_COLUMNS},
        "model_version": record.metadata.get("model_version"),
    }


def _float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _split(rows: list[dict], splits_of: dict[str, str | None], options: PublishOptions) -> dict[str, list[dict]]:
    rows = sorted(rows, key=lambda row: row["id"])
    if options.split == "none":
        return {"train": rows}
    if options.split == "keep":
        missing = [row["id"] for row in rows if not splits_of.get(row["id"])]
        if missing:
            raise DataError(f"publish.split = 'keep' but {len(missing)} record(s) have no split metadata "
                            f"(first: {missing[:5]}); ingest with --split-column, or use 'stratified'")
        grouped: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            grouped[splits_of[row["id"]]].append(row)
        return dict(sorted(grouped.items()))
    by_label: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    rng = random.Random(options.seed)
    train, test = [], []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        held = round(len(group) * options.test_fraction) if len(group) > 1 else 0
        test.extend(group[:held])
        train.extend(group[held:])
    return {"train": sorted(train, key=lambda r: r["id"]), "test": sorted(test, key=lambda r: r["id"])}
