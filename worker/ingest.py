"""Reading labelled text from files, a ``datasets.Dataset`` or the Hub, row by row, with clear errors.

Each good row becomes a :class:`~worker.records.LabelledText` with a stable id: the id
column's value when one is given, else a hash of the text — so ingesting the same data again
updates the same records instead of duplicating them. Bad rows (missing text, unknown label,
duplicate id) are reported with their row numbers and skipped; the rest is ingested.

Columns named with ``--metadata-column`` go into each record's metadata under the user's own names (see
:func:`metadata_columns`): numbers as integer / float properties, text, booleans, dates and class labels as terms,
so annotators can filter and sort on them.

A label column holding lists (a ``List`` / ``Sequence`` feature, e.g. ``Sequence(ClassLabel)``), or text labels
split on a separator (``label_separator``, e.g. ``"|"`` in a csv), makes a multi-label input: each row's label is
a label set (a sorted tuple, see :func:`worker.records.label_set`).
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import logging
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from worker.binding import LabelReading, respellings, written_label
from worker.duplicates import text_key
from worker.errors import DataError
from worker.files import Scratch
from worker.iterables import most_common
from worker.records import LabelledText, LabelValue, label_set

logger = logging.getLogger(__name__)

FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
TEXT_FORMATS = {".csv", ".tsv", ".jsonl"}  # line-based: a line that is not UTF-8 is skipped, not the file
BINARY_SNIFF_BYTES = 8192
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # a spreadsheet's "Unicode" export: read through a UTF-8 copy
DATASET_METADATA_FILES = frozenset({"dataset_info.json", "dataset_infos.json", "dataset_dict.json", "state.json"})
DIRECTORY_ENTRIES = 100_000  # entries an input directory's walk looks through before it is refused
LABEL_SCAN_BATCH = 10_000  # rows read at a time when collecting the labels of a column
LABEL_COLUMN_NAMES = frozenset({"label", "labels", "class", "category", "target", "intent", "sentiment"})
ID_COLUMN_NAMES = frozenset({"id", "_id", "idx", "record_id", "example_id", "uuid", "guid"})
KEYING_SAMPLE = 200  # first rows check_keying looks up in the dataset
HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")  # a Hub dataset id: NAME or OWNER/NAME (what is not, is a local path)


@dataclass
class IngestReport:
    read: int = 0
    good: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)  # (1-based row number, reason)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # (1-based line of the file, reason)
    unlabelled: int = 0  # good rows whose label cell is empty: ingested as records without a label
    repeated: int = 0  # good rows whose text an earlier good row has (case and spacing aside): ingested
    first_repeat: tuple[int, int] | None = None  # (row, the earlier row with its text)
    unread_columns: list[str] = field(default_factory=list)  # input columns no option named (see unread_columns)
    label_column_given: bool = True
    id_column_given: bool = True
    respelled: Counter[tuple[str, str]] = field(default_factory=Counter)  # (as written, the label) -> label cells
    unknown_labels: Counter[str] = field(default_factory=Counter)  # a label that names none of the question's -> rows
    labels: tuple[str, ...] = ()  # the question's labels (for the hint on unknown ones)

    def summary(self) -> str:
        without = f" ({self.unlabelled} without a label, ingested to be annotated)" if self.unlabelled else ""
        unreadable = f"; {len(self.bad_lines)} line(s) of the file skipped" if self.bad_lines else ""
        lines = [f"{self.good} of {self.read} rows ingested{without}, {len(self.bad_rows)} skipped{unreadable}"]
        if self.unread_columns:
            lines.append(f"  column(s) not ingested: {', '.join(self.unread_columns)} (--label-column, "
                         f"--metadata-column COLUMN or --field-column FIELD=COLUMN keeps one)")
            column = next((name for name in self.unread_columns if name in LABEL_COLUMN_NAMES), None)
            if not self.label_column_given and column is not None:
                lines.append(f"  no --label-column was given, so every record was ingested without a label: "
                             f"add --label-column {column} to ingest column {column!r} as the labels")
            column = next(iter(id_like_columns(self.unread_columns)), None)
            if not self.id_column_given and column is not None:
                lines.append(f"  no --id-column was given, so records are keyed by a hash of their text (a text "
                             f"edited in the source comes back as another record): add --id-column {column} to key "
                             f"them by column {column!r} — from a dataset's first ingest on (records keep the ids "
                             f"they were written under)")
        if self.respelled:
            lines.append(f"  labels read as the question's: {respellings(self.respelled)}")
        if self.first_repeat is not None:
            row, earlier = self.first_repeat
            lines.append(f"  {self.repeated} row(s) repeat the text of an earlier row (first: row {row} = row "
                         f"{earlier}), ingested as they are: `argilla-worker copies` marks them for review")
        if self.unknown_labels:
            lines.append(f"  {_unknown_labels_hint(self.unknown_labels, self.labels)}")
        if any(reason.startswith("not valid UTF-8") for _, reason in self.bad_lines):
            lines.append("  a file in another encoding than UTF-8 is read with --encoding (a spreadsheet's export on "
                         "Windows: --encoding cp1252)")
        lines += [f"  line {line}: {reason}" for line, reason in self.bad_lines[:50]]
        lines += [f"  row {row}: {reason}" for row, reason in self.bad_rows[:50]]
        if len(self.bad_rows) > 50:
            lines.append(f"  … and {len(self.bad_rows) - 50} more")
        return "\n".join(lines)


def unread_columns(table: datasets.Dataset, read: Iterable[str | None]) -> list[str]:
    """The input's columns that none of ``read`` (the columns the options name) is, in the input's order: what
    ingest leaves out, said in its summary so that a label column left unnamed is not lost in silence."""
    named = {column for column in read if column}
    return [column for column in table.column_names if column not in named]


def load_table(source: str | Path | datasets.Dataset, *, split: str = "train", report: IngestReport | None = None,
               id_column: str | None = None, text_column: str | None = None,
               encoding: str = "utf-8") -> datasets.Dataset:
    """A datasets.Dataset as is; a local csv / tsv / jsonl / json / parquet file; a local directory (one a
    ``datasets`` ``save_to_disk`` wrote, or one holding data files of one of those formats — shards, parts —, read
    as one table, rows numbered across the files in name order); otherwise a Hub dataset id.

    Lines of a csv / tsv / jsonl file that are not valid UTF-8 are skipped and listed in
    ``report.bad_lines`` (the rest of the file is read). A csv / tsv file's ``id_column`` is read as written, as
    text: not as numbers, which would make ``007`` the id ``7``, and a column of whole numbers with an empty cell
    ``1.0``, ``2.0`` …. A json file that is one object whose key holds the list of rows (with ``text_column``) is
    read as those rows. A text file in another ``encoding`` than UTF-8 is read through a UTF-8 copy.

    Raises:
        DataError: the file is missing, empty, binary, has no rows, or cannot be parsed as its format; the
            directory holds no data file, files of several formats, or more entries than are looked through.
    """
    if isinstance(source, datasets.Dataset):
        return source
    report = report if report is not None else IngestReport()
    path = Path(source)
    if path.suffix.lower() in FILE_FORMATS:
        _check_file(path)
        return _load_files([path], str(path), report, id_column, text_column, encoding)
    if path.is_dir():
        return _load_directory(path, split, report, id_column, text_column, encoding)
    if path.is_file():
        raise DataError(f"input file {path} is a {path.suffix or 'suffix-less'} file: ingest reads csv, tsv, jsonl, "
                        f"json and parquet files (save it as one of those)")
    if not HUB_ID.fullmatch(str(source)):
        raise DataError(f"input {source} does not exist (nor is it a Hub dataset id: NAME or OWNER/NAME)")
    try:
        return datasets.load_dataset(str(source), split=split)
    except Exception as error:  # the Hub raises many types; the user needs the message
        raise DataError(f"cannot load {source!r}: not a csv/tsv/jsonl/json/parquet file, and as a Hub dataset: "
                        f"{error}") from error


def _load_directory(directory: Path, split: str, report: IngestReport, id_column: str | None,
                    text_column: str | None, encoding: str) -> datasets.Dataset:
    """A ``save_to_disk`` directory (its ``split`` when it holds several), else the data files under it, all of
    one format (hidden entries skipped). Looks through at most :data:`DIRECTORY_ENTRIES` entries: time O(that)."""
    if (directory / "dataset_dict.json").is_file() or (directory / "state.json").is_file():
        return _saved_dataset(directory, split)
    files: list[Path] = []
    seen = 0
    for root, directories, names in os.walk(directory):
        directories[:] = sorted(name for name in directories if not name.startswith("."))
        seen += len(names) + len(directories)
        if seen > DIRECTORY_ENTRIES:
            raise DataError(f"input directory {directory} has more than {DIRECTORY_ENTRIES:,} entries: give the "
                            f"directory that holds the data files, or one file")
        files += [Path(root) / name for name in sorted(names) if _data_file_name(name)]
    kinds = sorted({file.suffix.lower() for file in files})
    if not kinds:
        raise DataError(f"input directory {directory} holds no csv / tsv / jsonl / json / parquet file")
    if len(kinds) > 1:
        counts = ", ".join(f"{sum(file.suffix.lower() == kind for file in files)} {kind}" for kind in kinds)
        raise DataError(f"input directory {directory} holds data files of several formats ({counts}): one format "
                        f"is read as one table; give one file, or a directory of one format")
    for file in files:
        _check_file(file)
    logger.info("reading %d %s file(s) under %s as one table", len(files), kinds[0], directory)
    return _load_files(files, f"{directory} ({len(files)} {kinds[0]} files)", report, id_column, text_column,
                       encoding)


def _data_file_name(name: str) -> bool:
    """A data file's name in an input directory: one of the formats, not hidden, not a writer's own file (Spark's
    ``_SUCCESS`` / ``_metadata``, a Hub repo's ``dataset_infos.json``)."""
    return (Path(name).suffix.lower() in FILE_FORMATS and not name.startswith((".", "_"))
            and name not in DATASET_METADATA_FILES)


def _saved_dataset(directory: Path, split: str) -> datasets.Dataset:
    try:
        saved = datasets.load_from_disk(str(directory))
    except Exception as error:  # datasets raises several types for a directory it cannot read back
        raise DataError(f"input directory {directory} looks saved by datasets' save_to_disk but cannot be read "
                        f"back: {type(error).__name__}: {str(error).splitlines()[0][:300]}") from error
    if isinstance(saved, datasets.DatasetDict):
        if split not in saved:
            raise DataError(f"input directory {directory} has no split {split!r} (its splits: {list(saved)}): "
                            f"--split names one of them")
        saved = saved[split]
    if saved.num_rows == 0:
        raise DataError(f"input directory {directory} holds a dataset without rows")
    return saved


def _check_file(path: Path) -> None:
    """A data file that exists, is not empty and (a text format) holds no NUL bytes in its first bytes."""
    if not path.is_file():
        raise DataError(f"input file {path} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"input file {path} is empty")
    if path.suffix.lower() != ".parquet":
        with path.open("rb") as handle:
            start = handle.read(BINARY_SNIFF_BYTES)
            if b"\0" in start and not start.startswith(UTF16_BOMS):
                raise DataError(f"input file {path} is not a text file (binary content); expected "
                                f"{path.suffix.lower()[1:]}")


def _load_files(paths: Sequence[Path], described: str, report: IngestReport, id_column: str | None = None,
                text_column: str | None = None, encoding: str = "utf-8") -> datasets.Dataset:
    """Checked data files of one format as one table (``described`` names them in errors); a csv / tsv file's
    ``id_column`` as text (see :func:`load_table`): the files are read a second time when the first read took it for
    numbers (time 2 × O(file) then, memory O(chunk) each: datasets writes the rows to its Arrow cache)."""
    suffix = paths[0].suffix.lower()
    with Scratch(Path(tempfile.gettempdir()), "argilla-worker-ingest-") as scratch:
        readable = [_without_undecodable_lines(path, scratch.path / str(number), report, several=len(paths) > 1,
                                               encoding=encoding)
                    if suffix in TEXT_FORMATS else path for number, path in enumerate(paths)]
        table = _read_files(readable, suffix, described)
        rows_field = _rows_field(table, text_column) if suffix == ".json" else None
        if rows_field is not None:
            logger.info("%s holds one object whose %r is the list of rows: reading those rows", described, rows_field)
            table = _read_files(readable, suffix, described, field=rows_field)
        if (FILE_FORMATS[suffix] == "csv" and id_column in table.column_names
                and table.features[id_column] not in (datasets.Value("string"), datasets.Value("large_string"))):
            as_text = datasets.Features({name: datasets.Value("string") if name == id_column else feature
                                         for name, feature in table.features.items()})
            table = _read_files(readable, suffix, described, features=as_text)
    if table.num_rows == 0:
        raise DataError(f"input file {described} has no rows (only a header?)")
    return table


def _rows_field(table: datasets.Dataset, text_column: str | None) -> str | None:
    """The key of a json file's one object that holds its rows — ``{"data": [{"text": …}, …], "version": 2}``, as
    APIs and annotation tools export —: in a one-row table without ``text_column``, the one column that is a list
    of objects with that key; else None."""
    if text_column is None or table.num_rows != 1 or text_column in table.column_names:
        return None
    lists = [name for name, feature in table.features.items() if isinstance(feature, datasets.List)
             and isinstance(feature.feature, dict) and text_column in feature.feature]
    return lists[0] if len(lists) == 1 else None


def _read_files(paths: Sequence[Path], suffix: str, described: str, features: datasets.Features | None = None,
                field: str | None = None) -> datasets.Dataset:
    """The files of one format as one table, with these ``features`` (types) or those the reader infers; a json
    file's rows from its object's ``field``.

    Raises:
        DataError: no rows, or the parser's error in one line.
    """
    extra: dict = {}
    if suffix == ".tsv":
        extra["delimiter"] = "\t"
    elif suffix == ".csv":
        extra["delimiter"] = _csv_delimiter(paths[0])
        if extra["delimiter"] == ";":  # the comma is that locale's decimal mark: "4,5" is 4.5
            extra["decimal"] = ","
    if features is not None:
        extra["features"] = features
    if field is not None:
        extra["field"] = field
    try:
        # (datasets converts the files to Arrow in its own cache: the scratch copies are not needed afterwards)
        return datasets.load_dataset(FILE_FORMATS[suffix], data_files=[str(path) for path in paths], split="train",
                                     **extra)
    except Exception as error:  # datasets wraps the parser's error (pyarrow, pandas, json) in several types
        if "corresponds to no data" in str(error):
            raise DataError(f"input file {described} has no rows (only a header?)") from error
        cause = error.__cause__ or error
        raise DataError(f"input file {described} cannot be read as {suffix[1:]}: "
                        f"{type(cause).__name__}: {str(cause).splitlines()[0][:300]}") from error


def _csv_delimiter(path: Path) -> str:
    """``,`` — or the one of ``;`` ``|`` ``\\t`` that a header without a comma holds (a spreadsheet's export in a
    locale whose decimal mark is the comma writes ``text;label`` and ``4,5``: read with that decimal mark)."""
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = handle.readline()
    if "," in header:
        return ","
    found = next((mark for mark in (";", "\t", "|") if mark in header), ",")
    if found != ",":
        logger.info("%s: the header holds no comma and %r separates its columns: read as separated by %r", path,
                    found, found)
    return found


def id_like_columns(columns: Iterable[str]) -> list[str]:
    """The columns named like ids (:data:`ID_COLUMN_NAMES`, any letter case), in order."""
    return [column for column in columns if column.lower() in ID_COLUMN_NAMES]


def id_text(value: object) -> str | None:
    """A record id as the worker writes it from an id cell: text as it is, a whole number without a decimal point
    (``3.0`` → ``"3"``: a parquet or json column of ids with an empty cell holds floats), other numbers as
    written; None for an empty cell or a value that is no id (a list, a mapping)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _utf8_copy(path: Path, scratch: Path, encoding: str) -> Path:
    """A UTF-8 copy in ``scratch`` of a text file in ``encoding``. One streaming pass: memory O(line).

    Raises:
        DataError: a line is not text in ``encoding`` (named).
    """
    logger.info("%s: read as %s text through a UTF-8 copy", path, encoding)
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / f"utf8-{path.name}"
    with path.open("r", encoding=encoding, newline="") as source, \
            copy.open("w", encoding="utf-8", newline="") as target:
        written = 0
        try:
            for line in source:
                target.write(line)
                written += 1
        except UnicodeDecodeError as error:
            raise DataError(f"input file {path} is not {encoding} text: line {written + 1} or soon after: "
                            f"{error.reason} (byte 0x{error.object[error.start]:02x}); --encoding names the file's "
                            f"encoding") from None
    return copy


def _without_undecodable_lines(path: Path, scratch: Path, report: IngestReport, *, several: bool = False,
                               encoding: str = "utf-8") -> Path:
    """``path`` itself when every line is UTF-8; else a copy in ``scratch`` without the lines that are not,
    which are listed in ``report.bad_lines`` (``several``: one of several files, named in each reason). One
    streaming pass: memory O(line). A UTF-16 file (its byte-order mark says so) or one in another ``encoding`` is
    read through a UTF-8 copy.

    Raises:
        DataError: the file is not text in ``encoding`` (naming the line).
    """
    with path.open("rb") as handle:
        utf16 = handle.read(2) in UTF16_BOMS
    if utf16 or codecs.lookup(encoding).name != "utf-8":  # the copy is UTF-8 throughout, written from decoded text
        return _utf8_copy(path, scratch, "utf-16" if utf16 else encoding)
    bad: list[tuple[int, str]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                where = f" ({path.name})" if several else ""
                reason = f"not valid UTF-8 (byte 0x{line[error.start]:02x} at column {error.start + 1}){where}"
                bad.append((number, reason))
    if not bad:
        return path
    report.bad_lines.extend(bad)
    for number, reason in bad[:20]:
        logger.warning("line %d of %s skipped: %s", number, path, reason)
    skipped = {number for number, _ in bad}
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / path.name
    with path.open("rb") as source, copy.open("wb") as target:
        target.writelines(line for number, line in enumerate(source, start=1) if number not in skipped)
    return copy


def labelled_rows(
    table: datasets.Dataset,
    *,
    text_column: str = "text",
    label_column: str | None = None,
    id_column: str | None = None,
    labels: Iterable[str] | None = None,
    split_column: str | None = None,
    label_separator: str | None = None,
    metadata: Sequence[MetadataColumn] = (),
    fields: Mapping[str, str] | None = None,
    label_titles: Mapping[str, str] | None = None,
    label_map: Mapping[str, str] | None = None,
    report: IngestReport,
) -> Iterator[LabelledText]:
    """Yield good rows as LabelledText; record bad ones in ``report``. A row whose label cell is empty (no value,
    NaN, blank text) is good, without a label (a record to annotate; counted in ``report.unlabelled``). Labels are
    label sets when
    :func:`is_multi_label` says so for ``label_column`` and ``label_separator``; a label written as the question
    shows it (``label_titles``: value → title, e.g. ``autos`` → ``Cars 🚗``) is read as its value (see
    :class:`~worker.binding.LabelReading`); ``label_map`` (``--label-map``) reads a label as the file writes it
    (``0``, ``pos``) as the question's (``negative``, ``positive``). Labels that are none of ``labels`` are counted
    in ``report.unknown_labels`` (the summary says which ``--label-map`` reads them). A row whose
    text an earlier row has is ingested and counted (``report.repeated``). One pass: memory O(1) per row (the ids
    and text keys seen).

    Raises:
        DataError: a named column does not exist (lists the available ones).
    """
    check_columns(table, text_column, label_column, id_column, split_column, *(m.column for m in metadata),
                  *(fields or {}).values())
    reader = _LabelReader(table, label_column, labels, label_separator, label_titles, report, label_map)
    report.labels = tuple(sorted(reader.allowed or ()))
    seen_ids: dict[str, int] = {}
    seen_texts: dict[str, int] = {}  # text key -> the first row with it
    for row_number, row in enumerate(table, start=1):
        report.read += 1
        record, reason = _row_to_record(row, text_column, reader, id_column, split_column, metadata, fields)
        if record is not None and record.id in seen_ids:
            reason = f"duplicate id {record.id!r} (first seen in row {seen_ids[record.id]})"
            record = None
        if record is None:
            report.bad_rows.append((row_number, reason))
            continue
        seen_ids[record.id] = row_number
        _see_text(record, row_number, seen_texts, report)
        report.good += 1
        report.unlabelled += label_column is not None and record.label is None
        yield record
    for row_number, reason in report.bad_rows[:20]:
        logger.warning("row %d skipped: %s", row_number, reason)


def _see_text(record: LabelledText, row_number: int, seen: dict[str, int], report: IngestReport) -> None:
    """Count the row in ``report.repeated`` when an earlier row had its text and other fields' values."""
    key = text_key(record.text, "\x00".join(f"{name}={value}" for name, value in sorted((record.fields or {}).items())))
    earlier = seen.setdefault(key, row_number)
    if earlier != row_number:
        report.repeated += 1
        report.first_repeat = report.first_repeat or (row_number, earlier)


def is_multi_label(table: datasets.Dataset, label_column: str | None, label_separator: str | None = None) -> bool:
    """Whether ``label_column`` holds label sets: a list column, or text labels to split on ``label_separator``.

    Raises:
        DataError: the column does not exist, or a separator was given for a list column (its values are lists
            already).
    """
    if label_column is None:
        return False
    check_columns(table, label_column)
    listed = _item_feature(table.features[label_column]) is not None
    if listed and label_separator:
        raise DataError(f"label column {label_column!r} holds lists already; --label-separator applies to text "
                        f"labels only")
    return listed or bool(label_separator)


def column_labels(table: datasets.Dataset, label_column: str, label_separator: str | None = None) -> list[str]:
    """The labels that occur in ``label_column`` (a ClassLabel's names), sorted; each label of a set counts.
    One pass over the column, ``LABEL_SCAN_BATCH`` rows at a time: memory O(batch + distinct labels)."""
    class_label = _class_label(table.features[label_column])
    if class_label is not None:
        return sorted(class_label.names)
    item = _item_feature(table.features[label_column])
    found: set[str] = set()
    for batch in table.select_columns([label_column]).iter(batch_size=LABEL_SCAN_BATCH):
        for value in batch[label_column]:
            if item is not None:
                found.update(str(label) for label in value or () if label is not None)
            elif label_separator and isinstance(value, str):
                found.update(_split(value, label_separator))
            elif value is not None:
                found.add(str(value))
    return sorted(found)


def _item_feature(feature: object) -> object | None:
    """The feature of a list column's items (datasets' ``List`` / ``LargeList`` / ``Sequence``, or the
    ``[feature]`` form), else None."""
    if isinstance(feature, list):
        return feature[0] if feature else None
    if type(feature).__name__ in {"List", "LargeList", "Sequence"}:
        return getattr(feature, "feature", None)
    return None


def _class_label(feature: object) -> datasets.ClassLabel | None:
    """The ClassLabel of a label column: the column's own, or its items' (a list of class labels), else None."""
    item = _item_feature(feature)
    named = item if item is not None else feature
    return named if isinstance(named, datasets.ClassLabel) else None


def _split(value: str, separator: str) -> list[str]:
    return [part.strip() for part in value.split(separator) if part.strip()]


class _LabelReader:
    """Turns a row's label value into a label (a name, or a label set) or the reason it is bad."""

    def __init__(self, table: datasets.Dataset, label_column: str | None, labels: Iterable[str] | None,
                 label_separator: str | None, titles: Mapping[str, str] | None = None,
                 report: IngestReport | None = None, label_map: Mapping[str, str] | None = None) -> None:
        self.column = label_column
        self.multi_label = is_multi_label(table, label_column, label_separator)
        self.separator = label_separator
        self.allowed = set(labels) if labels is not None else None
        # the question's labels as people write them (their titles, other letter case …)
        self.reading = LabelReading(sorted(self.allowed), titles) if self.allowed is not None else None
        self.report = report if report is not None else IngestReport()  # counts respellings and unknown labels
        self.label_map = dict(label_map or {})  # --label-map: a label as the file writes it -> the question's
        class_label = _class_label(table.features[label_column]) if label_column is not None else None
        self.names = list(class_label.names) if class_label is not None else None  # of ClassLabel ints

    def read(self, value: object) -> tuple[LabelValue | None, str]:
        """(label, "") for a good value, (None, reason) for a bad one; (None, "") without a label column."""
        if self.column is None or _empty(value):
            return None, ""
        if not self.multi_label:
            label = self._name(value)
            if label is None or not self._known(label):
                self.report.unknown_labels[written_label(value)] += 1
                return None, f"label {value!r} is not one of {self._allowed_text()}"
            return label, ""
        if isinstance(value, str) and self.separator:
            parts: list[object] = list(_split(value, self.separator))
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            return None, f"label {value!r} is not a list of labels" + (
                f" (nor text split on {self.separator!r})" if self.separator else "")
        names = [self._name(part) for part in parts]
        unknown = [part for part, name in zip(parts, names, strict=True) if name is None or not self._known(name)]
        if unknown:
            self.report.unknown_labels.update(written_label(part) for part in unknown)
            return None, f"label set {value!r}: {unknown} not in {self._allowed_text()}"
        if not names:
            return None, f"label set {value!r} is empty (an Argilla multi-label answer holds at least one label)"
        return label_set(str(name) for name in names), ""

    def _name(self, value: object) -> str | None:
        """The label ``value`` names (a ClassLabel's integer, a name as :class:`LabelReading` reads it: a title,
        another letter case, a rating read as a decimal — 4.0 in a CSV column with empty cells), else None."""
        if value is None:
            return None
        if self.names is not None and isinstance(value, int) and 0 <= value < len(self.names):
            value = self.names[value]
        as_written = written_label(value)
        if as_written in self.label_map:
            return self.label_map[as_written]
        if self.reading is None:  # a new dataset's labels are the file's
            return str(value)
        label = self.reading.read(value)
        if label is not None and label != as_written:
            self.report.respelled[(as_written, label)] += 1
        return label

    def _known(self, label: str) -> bool:
        return self.allowed is None or label in self.allowed

    def _allowed_text(self) -> str:
        return str(sorted(self.allowed)) if self.allowed else "the labels"


def _unknown_labels_hint(unknown: Counter[str], labels: Sequence[str]) -> str:
    """The labels no row could be read as (the most frequent first), and the ``--label-map`` that reads them: a map
    guessed from their spelling when each is the start of one label (``pos`` → ``positive``), else one to fill in."""
    from worker.training.register import guessed_label_map

    shown = [value for value, _ in most_common(unknown, 10)]
    counts = ", ".join(f"{value!r} ({count})" for value, count in most_common(unknown, 10))
    more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
    guess = guessed_label_map(shown, shown, labels) if len(unknown) <= 10 else {}
    mapping = ",".join(f"{value}={guess.get(value, 'LABEL')}" for value in shown)
    return (f"labels that are none of the question's {sorted(labels)}: {counts}{more} — where they stand for its "
            f"labels, `--label-map {mapping}` reads them as those"
            f"{' (guessed from their spelling: check it)' if guess else ''}")


def _empty(value: object) -> bool:
    """An empty label cell: no value, NaN (a CSV's empty cell in a numeric column) or blank text."""
    return (value is None or (isinstance(value, float) and math.isnan(value))
            or (isinstance(value, str) and not value.strip()))


def check_columns(table: datasets.Dataset, *columns: str | None) -> None:
    """Each named column (None: not asked for) is one of the input's.

    Raises:
        DataError: naming the missing ones and the input's columns.
    """
    missing = [column for column in columns if column is not None and column not in table.column_names]
    if missing:
        raise DataError(f"column(s) {missing} not in the input; its columns are {table.column_names}")


def check_option_columns(table: datasets.Dataset, named: Mapping[str, str | None], *,
                         defaults: Collection[str] = ()) -> None:
    """Each option's column (option → column; None: not given) is one of the input's; ``defaults``: the options
    left at their default value (said so).

    Raises:
        DataError: naming each option, its column and the input's columns.
    """
    missing = [f"{option} {column!r}" + (" (the default)" if option in defaults else "")
               for option, column in named.items() if column is not None and column not in table.column_names]
    if missing:
        raise DataError(f"{', '.join(missing)}: not a column of the input; its columns are {table.column_names}")


def check_keying(table: datasets.Dataset, text_column: str, id_column: str | None,
                 existing: Callable[[Sequence[str]], Mapping[str, str | None]], dataset_name: str) -> None:
    """Refuse an ingest that would write the dataset's records again under other ids: its first rows
    (:data:`KEYING_SAMPLE`) are in the dataset, with their text, under the other keying — a hash of their text when
    ``--id-column`` is given, the values of an id-like column (:data:`ID_COLUMN_NAMES`) when it is not — and none is
    under this one. ``existing``: the dataset's records with some ids, id → their text (one search a call; two
    calls). O(sample).

    Raises:
        DataError: naming a row, its record in the dataset and the option that updates the records instead.
    """
    other = None if id_column is not None else next(
        (column for column in id_like_columns(table.column_names) if column != text_column), None)
    if id_column is None and other is None:
        return
    keys = []  # (1-based row, its text, id this ingest gives it, id the other keying gives it)
    for number, row in enumerate(table.select(range(min(KEYING_SAMPLE, table.num_rows))), start=1):
        text, value = row[text_column], id_text(row[id_column or other])
        if isinstance(text, str) and text.strip() and value is not None:
            hashed = content_id(text)
            keys.append((number, text, value, hashed) if id_column else (number, text, hashed, value))
    if not keys or existing([key for _, _, key, _ in keys]):
        return
    elsewhere = existing([key for _, _, _, key in keys])
    moved = next(((number, record) for number, text, _, record in keys
                  if (elsewhere.get(record) or "").strip() == text.strip()), None)
    if moved is None:  # new records (an id that names another text is another record)
        return
    number, record = moved
    if id_column is not None:
        raise DataError(f"these rows are in dataset {dataset_name!r} already, keyed by a hash of their text (ingested "
                        f"without --id-column: row {number} is record {record!r} there), and none under column "
                        f"{id_column!r}'s values: with --id-column {id_column} each would be written again as another "
                        f"record. Nothing was written: ingest without --id-column to update them (or into a new "
                        f"dataset to key its records by {id_column!r})")
    raise DataError(f"these rows are in dataset {dataset_name!r} already under column {other!r}'s values (ingested "
                    f"with --id-column {other}: row {number} is record {record!r} there), and none under a hash of "
                    f"their text: without --id-column each would be written again as another record. Nothing was "
                    f"written: add --id-column {other}")


def _row_to_record(row: dict, text_column: str, labels: _LabelReader, id_column: str | None,
                   split_column: str | None = None, metadata: Sequence[MetadataColumn] = (),
                   fields: Mapping[str, str] | None = None) -> tuple[LabelledText | None, str]:
    text = row[text_column]
    if not isinstance(text, str) or not text.strip():
        return None, f"text column {text_column!r} is empty or not a string ({text!r})"
    label, reason = labels.read(row[labels.column] if labels.column is not None else None)
    if reason:
        return None, reason
    record_id = id_text(row[id_column]) if id_column is not None else content_id(text)
    if record_id is None:
        value = row[id_column]  # (only an id column's cell gives None)
        empty = value is None or (isinstance(value, str) and not value.strip()) or (
            isinstance(value, float) and math.isnan(value))
        return None, (f"id column {id_column!r} is empty" if empty else
                      f"id column {id_column!r} holds {value!r}: an id is a text or a number")
    split = row[split_column] if split_column is not None else None
    if split_column is not None and (not isinstance(split, str) or not split.strip()):
        return None, f"split column {split_column!r} is empty or not a string ({split!r})"
    values = {}
    for column in metadata:
        value = column.value(row[column.column])
        if value is not None:
            values[column.name] = value
    other_fields = {name: row[column] for name, column in (fields or {}).items()
                    if isinstance(row[column], str) and row[column].strip()}
    return LabelledText(id=record_id, text=text, label=label, split=split, metadata=values or None,
                        fields=other_fields or None), ""


def field_columns(table: datasets.Dataset, specs: Sequence[str]) -> dict[str, str]:
    """``FIELD=COLUMN`` specs as {the dataset's field: the input column}. An empty cell leaves the field as it is
    (or, for a new record, without a value).

    Raises:
        DataError: a spec is not ``FIELD=COLUMN``, names a field twice, or a column that is missing.
    """
    found: dict[str, str] = {}
    for spec in specs:
        name, separator, column = (part.strip() for part in spec.partition("="))
        if not separator or not name or not column:
            raise DataError(f"field column {spec!r}: expected FIELD=COLUMN (the dataset's field = the input's column)")
        if name in found:
            raise DataError(f"field column {spec!r}: field {name!r} is named twice")
        check_option_columns(table, {"--field-column": column})
        found[name] = column
    return found


@dataclass(frozen=True)
class MetadataColumn:
    """An input column ingested as the metadata property ``name`` of kind ``terms`` / ``integer`` / ``float``."""

    column: str
    name: str
    kind: str
    class_names: tuple[str, ...] | None = None  # a ClassLabel column's names: its ints become terms

    def value(self, raw: object) -> str | int | float | None:
        """A row's value as the property holds it; None (the record gets no value) for a missing one: an
        empty cell, NaN or an infinite number (JSON cannot carry them)."""
        if raw is None or (isinstance(raw, float) and not math.isfinite(raw)):
            return None
        if self.kind == "integer":
            return int(raw)  # type: ignore[call-overload]
        if self.kind == "float":
            return float(raw)  # type: ignore[arg-type]
        if self.class_names is not None and isinstance(raw, int):
            return self.class_names[raw]
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, (dt.date, dt.datetime)):
            return raw.isoformat()
        text = str(raw).strip()
        return text or None


def metadata_columns(table: datasets.Dataset, specs: Sequence[str]) -> list[MetadataColumn]:
    """``COLUMN`` or ``COLUMN=NAME`` (the property's name; default the column's) for each spec, with the kind
    the column's type gives: integers → ``integer``, floating point → ``float``, text, booleans, dates,
    timestamps and class labels → ``terms``.

    Raises:
        DataError: a column is missing, named twice, or holds values a metadata property cannot (lists,
            structs, binary).
    """
    found: list[MetadataColumn] = []
    for spec in specs:
        column, _, name = spec.partition("=")
        column, name = column.strip(), (name or column).strip()
        check_option_columns(table, {"--metadata-column": column})
        if not name or len(name) > 200:
            raise DataError(f"metadata column {spec!r}: a property name has 1 to 200 characters")
        if name in {m.name for m in found}:
            raise DataError(f"metadata column {spec!r}: property {name!r} is named twice")
        found.append(_metadata_column(column, name, table.features[column]))
    return found


def _metadata_column(column: str, name: str, feature: object) -> MetadataColumn:
    if isinstance(feature, datasets.ClassLabel):
        return MetadataColumn(column, name, "terms", tuple(feature.names))
    dtype = str(getattr(feature, "dtype", "")) if isinstance(feature, datasets.Value) else ""
    if dtype.startswith(("int", "uint")):
        return MetadataColumn(column, name, "integer")
    if dtype.startswith("float"):
        return MetadataColumn(column, name, "float")
    if dtype in {"string", "large_string", "bool"} or dtype.startswith(("timestamp", "date")):
        return MetadataColumn(column, name, "terms")
    raise DataError(f"metadata column {column!r} holds {feature} values; a metadata property holds numbers or "
                    f"text (also booleans, dates and class labels, as text)")


def content_id(text: str) -> str:
    """A stable id from the text itself (the same text always gets the same id)."""
    return "sha1-" + hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:20]
