"""Reading labelled text from files, a ``datasets.Dataset`` or the Hub, row by row, with clear errors.

Each good row becomes a :class:`~worker.records.LabelledText` with a stable id: the id
column's value when one is given, else a hash of the text — so ingesting the same data again
updates the same records instead of duplicating them. Bad rows (missing text, unknown label,
duplicate id) are reported with their row numbers and skipped; the rest is ingested.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from worker.errors import DataError
from worker.records import LabelledText

logger = logging.getLogger(__name__)

FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass
class IngestReport:
    read: int = 0
    good: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)  # (1-based row number, reason)

    def summary(self) -> str:
        lines = [f"{self.good} of {self.read} rows ingested, {len(self.bad_rows)} skipped"]
        lines += [f"  row {row}: {reason}" for row, reason in self.bad_rows[:50]]
        if len(self.bad_rows) > 50:
            lines.append(f"  … and {len(self.bad_rows) - 50} more")
        return "\n".join(lines)


def load_table(source: str | Path | datasets.Dataset, *, split: str = "train") -> datasets.Dataset:
    """A datasets.Dataset as is; a local csv / tsv / jsonl / json / parquet file; otherwise a Hub dataset id."""
    if isinstance(source, datasets.Dataset):
        return source
    path = Path(source)
    if path.suffix.lower() in FILE_FORMATS:
        if not path.exists():
            raise DataError(f"input file {path} does not exist")
        extra = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        return datasets.load_dataset(FILE_FORMATS[path.suffix.lower()], data_files=str(path), split="train", **extra)
    try:
        return datasets.load_dataset(str(source), split=split)
    except Exception as error:  # the Hub raises many types; the user needs the message
        raise DataError(f"cannot load {source!r}: not a csv/tsv/jsonl/json/parquet file, and as a Hub dataset: "
                        f"{error}") from error


def labelled_rows(
    table: datasets.Dataset,
    *,
    text_column: str = "text",
    label_column: str | None = None,
    id_column: str | None = None,
    labels: Iterable[str] | None = None,
    split_column: str | None = None,
    report: IngestReport,
) -> Iterator[LabelledText]:
    """Yield good rows as LabelledText; record bad ones in ``report``.

    Raises:
        DataError: a named column does not exist (lists the available ones).
    """
    _check_columns(table, text_column, label_column, id_column, split_column)
    label_names = _label_names(table, label_column)
    allowed = set(labels) if labels is not None else None
    seen_ids: dict[str, int] = {}
    for row_number, row in enumerate(table, start=1):
        report.read += 1
        record, reason = _row_to_record(row, text_column, label_column, id_column, label_names, allowed,
                                        split_column)
        if record is not None and record.id in seen_ids:
            record, reason = None, f"duplicate id {record.id!r} (first seen in row {seen_ids[record.id]})"
        if record is None:
            report.bad_rows.append((row_number, reason))
            continue
        seen_ids[record.id] = row_number
        report.good += 1
        yield record
    for row_number, reason in report.bad_rows[:20]:
        logger.warning("row %d skipped: %s", row_number, reason)


def _check_columns(table: datasets.Dataset, *columns: str | None) -> None:
    missing = [column for column in columns if column is not None and column not in table.column_names]
    if missing:
        raise DataError(f"column(s) {missing} not in the input; its columns are {table.column_names}")


def _label_names(table: datasets.Dataset, label_column: str | None) -> list[str] | None:
    """For a ClassLabel column, the names of its integer values."""
    if label_column is None:
        return None
    feature = table.features[label_column]
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def _row_to_record(row: dict, text_column: str, label_column: str | None, id_column: str | None,
                   label_names: list[str] | None, allowed: set[str] | None,
                   split_column: str | None = None) -> tuple[LabelledText | None, str]:
    text = row[text_column]
    if not isinstance(text, str) or not text.strip():
        return None, f"text column {text_column!r} is empty or not a string ({text!r})"
    label = None
    if label_column is not None:
        value = row[label_column]
        label = label_names[value] if label_names is not None and isinstance(value, int) else value
        label = None if label is None else str(label)
        if label is None or (allowed is not None and label not in allowed):
            return None, f"label {value!r} is not one of {sorted(allowed) if allowed else 'the labels'}"
    record_id = str(row[id_column]) if id_column is not None else content_id(text)
    if id_column is not None and row[id_column] in (None, ""):
        return None, f"id column {id_column!r} is empty"
    split = row[split_column] if split_column is not None else None
    if split_column is not None and (not isinstance(split, str) or not split.strip()):
        return None, f"split column {split_column!r} is empty or not a string ({split!r})"
    return LabelledText(id=record_id, text=text, label=label, split=split), ""


def content_id(text: str) -> str:
    """A stable id from the text itself (the same text always gets the same id)."""
    return "sha1-" + hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:20]
