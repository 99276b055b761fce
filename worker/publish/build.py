"""From Argilla records to the cleaned dataset: one row per record, corrected label beside the original.

``label`` is the annotators' consensus where the record was reviewed, else the original label;
``original_label`` is always the label the record came with. For a multi-label question both are lists
of labels (``Sequence(ClassLabel)``; ``original_label`` null when the record came without labels). For a rating
question both are the ratings themselves, integers (``int32``; ``original_label`` null when the record came without
one), so a published 5 reads 5, not class index 4. The text columns are the bound fields, under their own names (a
field whose name is one of the worker's columns is published as ``field_<name>``). Records whose annotators are tied,
and records with neither a consensus nor an original label, are reported and left out — the
worker never guesses a label.

Streaming: the records are read once, a page at a time, and each row is appended to an Arrow file on
disk (``datasets``' writer, ``WRITER_BATCH`` rows in memory); the splits are memory-mapped views of it,
ordered by id. Memory O(page + WRITER_BATCH) rows plus O(N) integers (the id sort, the split indices)
and O(reviewed) floats (the loss histogram); the rows' text never accumulates in memory. Time O(N log N)
for the sort, O(N) otherwise.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets.arrow_writer import ArrowWriter

from worker.binding import is_conversation
from worker.constants import TEST_SET_PROPERTY
from worker.crowd import CrowdModel, verdict
from worker.duplicates import EXACT, NearCopies, text_key
from worker.errors import DataError
from worker.files import Scratch
from worker.gateway.schema import PUBLISHED_SCORES, published_scores
from worker.iterables import hashed_label_clusters, take_clusters
from worker.records import LabelValue, PulledRecord, label_index

FLOAT_COLUMNS = tuple(spec.name for spec in PUBLISHED_SCORES)  # the worker's scores (float32) of any question
REVIEW_COLUMNS = ("annotator_agreement", "label_confidence")  # float32: how sure the annotators' verdict is
LABEL_AGREEMENT = "label_agreement"  # multi-label: each label of `label`'s share of voters who ticked it
WORKER_COLUMNS = ("id", "label", "original_label", "was_corrected", "reviewed", *REVIEW_COLUMNS, LABEL_AGREEMENT,
                  "num_annotators", *FLOAT_COLUMNS, "model_version", TEST_SET_PROPERTY)
SPLIT_COLUMN = "__split"  # the record's ``split`` metadata while splitting (split="keep"); never published
TEXT_KEY_COLUMN = "__text_key"  # the record's text key (copies: one key); never published
LABEL_KEY_COLUMN = "__label_key"  # the row's label as one string (a label set's sorted indices); never published
WRITER_BATCH = 1_000  # rows held in memory before they are written to the Arrow file
METADATA_DTYPES = {"integer": "int64", "float": "float64", "terms": "string"}  # Argilla kind -> published dtype
ANSWER_DTYPES = {"rating": "int64"}  # a question's kind -> the dtype of one answer (else a string; see _answer)
TAKE_CHUNK = 10_000  # rows copied at a time into a split's file
EXAMPLE_IDS = 100  # ids of left-out records kept to report (the counts are exact)


@dataclass(frozen=True)
class PublishOptions:
    only_reviewed: bool = False
    split: Literal["keep", "stratified", "none"] = "none"
    test_fraction: float = 0.2
    seed: int = 0
    similarity: float = EXACT  # copies.similarity: below 1, near copies count as copies (worker/duplicates.py)


@dataclass
class PublicationStats:
    """What the card reports, accumulated row by row while the rows are written (nothing re-read)."""

    labels: tuple[str, ...]
    multi_label: bool = False
    records_seen: int = 0
    published: int = 0
    reviewed: int = 0
    corrected: int = 0
    tied: int = 0
    unlabelled: int = 0
    tied_ids: list[str] = field(default_factory=list)  # the first EXAMPLE_IDS
    unlabelled_ids: list[str] = field(default_factory=list)  # the first EXAMPLE_IDS
    per_class: Counter = field(default_factory=Counter)  # label index -> rows
    per_original_class: Counter = field(default_factory=Counter)
    changes: Counter = field(default_factory=Counter)  # (original index, corrected index) -> rows (single-label)
    added: Counter = field(default_factory=Counter)  # label index -> reviewed rows that gained it (multi-label)
    removed: Counter = field(default_factory=Counter)  # label index -> reviewed rows that lost it (multi-label)
    versions: Counter = field(default_factory=Counter)
    corrected_losses: list[float] = field(default_factory=list)  # loss of the original label, reviewed rows
    confirmed_losses: list[float] = field(default_factory=list)
    copied_texts: int = 0  # texts in more than one published row (letter case and spacing aside)
    copied_rows: int = 0  # the rows carrying them
    disagreeing_texts: int = 0  # copied texts whose rows carry different labels
    scored: Counter = field(default_factory=Counter)  # score column -> published rows with a value in it
    test_set: int = 0  # rows of the worker's test set (``test_set_rank``; see worker.test_set)
    test_set_reviewed: int = 0

    def __post_init__(self):
        size = len(self.labels)
        self.confusion = np.zeros((size, size), dtype=np.int64)  # [original, label] over reviewed rows

    def left_out(self, record_id: str, *, tied: bool) -> None:
        count, ids = ("tied", self.tied_ids) if tied else ("unlabelled", self.unlabelled_ids)
        setattr(self, count, getattr(self, count) + 1)
        if len(ids) < EXAMPLE_IDS:
            ids.append(record_id)

    def add(self, row: dict) -> None:
        self.published += 1
        self.scored.update(name for name in FLOAT_COLUMNS if row.get(name) is not None)
        label, original = row["label"], row["original_label"]
        has_original = original is not None and original != -1
        self.per_class.update(label if self.multi_label else [label])
        if has_original:
            self.per_original_class.update(original if self.multi_label else [original])
        if row["model_version"]:
            self.versions[row["model_version"]] += 1
        if row[TEST_SET_PROPERTY] is not None:
            self.test_set += 1
            self.test_set_reviewed += bool(row["reviewed"])
        if not row["reviewed"]:
            return
        self.reviewed += 1
        if row["was_corrected"]:
            self.corrected += 1
            if self.multi_label:
                self.added.update(set(label) - set(original or ()))
                self.removed.update(set(original or ()) - set(label))
            else:
                self.changes[original, label] += 1
        if has_original:
            if not self.multi_label:
                self.confusion[original, label] += 1
            loss = row["original_loss"] if row["original_loss"] is not None else row["loss"]
            if loss is not None:
                (self.corrected_losses if row["was_corrected"] else self.confirmed_losses).append(loss)


@dataclass
class Publication:
    """The cleaned dataset (one ``datasets.Dataset`` per split, memory-mapped from Arrow files in a
    temporary directory, rows ordered by id) and what the card reports about it.

    Use it as a context manager (or call :meth:`close`) to remove the Arrow files once it is written.
    """

    splits: dict[str, datasets.Dataset]
    labels: tuple[str, ...]
    stats: PublicationStats
    text_columns: dict[str, str] = field(default_factory=lambda: {"text": "text"})  # field name -> column
    # the user's metadata properties published (``publish.metadata``): property name -> (column, Argilla kind)
    metadata_columns: dict[str, tuple[str, str]] = field(default_factory=dict)
    # the other questions whose answers are published (``publish.questions``): name -> (column, question kind)
    question_columns: dict[str, tuple[str, str]] = field(default_factory=dict)
    options: PublishOptions = field(default_factory=PublishOptions)
    workdir: Path | None = None
    chat_columns: tuple[str, ...] = ()  # the text columns that hold conversations (lists of messages)
    rating: bool = False  # a rating question: the label columns hold the ratings (integers), not class indices
    _hash: str | None = field(default=None, init=False, repr=False)
    _scratch: Scratch | None = field(default=None, repr=False)  # holds ``workdir``: removed by close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the Arrow files (the splits cannot be read afterwards)."""
        if self._scratch is not None:
            self._scratch.remove()
            self._scratch = None
            self.workdir = None

    @property
    def multi_label(self) -> bool:
        return self.stats.multi_label

    @property
    def features(self) -> datasets.Features:
        return features(self.labels, tuple(self.text_columns.values()), multi_label=self.multi_label,
                        metadata=dict(self.metadata_columns.values()), chat_columns=self.chat_columns,
                        rating=self.rating, questions=dict(self.question_columns.values()))

    @property
    def num_rows(self) -> int:
        return sum(split.num_rows for split in self.splits.values())

    @property
    def tied(self) -> list[str]:
        """Ids of records left out because their annotators are tied (the first ``EXAMPLE_IDS``)."""
        return self.stats.tied_ids

    @property
    def unlabelled(self) -> list[str]:
        """Ids of records left out because they have no label and no review (the first ``EXAMPLE_IDS``)."""
        return self.stats.unlabelled_ids

    @property
    def model_version(self) -> str | None:
        return self.stats.versions.most_common(1)[0][0] if self.stats.versions else None

    @property
    def rows(self) -> Iterator[dict]:
        """Every published row, split by split (sorted by name), in id order; read from disk a batch at a time."""
        for name in sorted(self.splits):
            yield from self.splits[name]

    def counts(self) -> dict:
        stats = self.stats
        return {
            "records": stats.published,
            "records_in_argilla": stats.records_seen,
            "reviewed": stats.reviewed,
            "corrected": stats.corrected,
            "tied_left_out": stats.tied,
            "unlabelled_left_out": stats.unlabelled,
            "copied_texts": stats.copied_texts,
            "copied_rows": stats.copied_rows,
            "disagreeing_texts": stats.disagreeing_texts,
            "test_set": stats.test_set,
            "test_set_reviewed": stats.test_set_reviewed,
            "per_split": {name: split.num_rows for name, split in self.splits.items()},
            "per_class": {label: stats.per_class[index] for index, label in enumerate(self.labels)},
            "per_original_class": {label: stats.per_original_class[index] for index, label in enumerate(self.labels)},
        }

    def label_set_changes(self) -> list[tuple[str, int, int]]:
        """Multi-label: (label, reviewed rows that gained it, rows that lost it) for every changed label, the
        most changed first."""
        changed = set(self.stats.added) | set(self.stats.removed)
        named = [(self.labels[index], self.stats.added[index], self.stats.removed[index]) for index in changed]
        return sorted(named, key=lambda change: (-(change[1] + change[2]), change[0]))

    def changes(self) -> list[tuple[str, str, int]]:
        """(original, corrected, count) for every label change, most frequent first (single-label)."""
        named = [(self.labels[original], self.labels[corrected], count)
                 for (original, corrected), count in self.stats.changes.items()]
        return sorted(named, key=lambda change: (-change[2], change[0], change[1]))

    def content_hash(self) -> str:
        """A hash of everything published (rows, labels, splits, model version), independent of write time.
        One streamed pass over the rows (O(N) time, O(batch) memory), done once."""
        if self._hash is None:
            self._hash = self._digest()
        return self._hash

    def _digest(self) -> str:
        digest = hashlib.sha256(json.dumps([list(self.labels), self.model_version]).encode())
        for name in sorted(self.splits):
            for row in self.splits[name]:  # already in id order
                digest.update(json.dumps([name, row], sort_keys=True, default=str).encode())
        return digest.hexdigest()


def text_columns(fields: Sequence[str]) -> dict[str, str]:
    """The published column of each bound text field: its own name, ``field_<name>`` if the worker uses it."""
    return {name: f"field_{name}" if name in WORKER_COLUMNS else name for name in fields}


def metadata_columns(metadata: Mapping[str, str], fields: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The published column of each of the user's metadata properties (name -> Argilla kind: integer, float,
    terms): its own name, ``metadata_<name>`` where a worker column or a text column has it."""
    taken = {*WORKER_COLUMNS, *text_columns(fields).values()}
    return {name: (f"metadata_{name}" if name in taken else name, kind) for name, kind in metadata.items()}


def question_columns(questions: Mapping[str, str], fields: Sequence[str],
                     metadata: Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """The published column of each other question (name -> its kind: text, label_selection, rating …): its own
    name, ``answers_<name>`` where a worker, text or metadata column has it."""
    taken = {*WORKER_COLUMNS, *text_columns(fields).values(),
             *(column for column, _ in metadata_columns(metadata or {}, fields).values())}
    return {name: (f"answers_{name}" if name in taken else name, kind) for name, kind in questions.items()}


def _answer_feature(kind: str):
    """One answer of a question of ``kind``: a label set's labels, a rating's integer, else a string (a text, a
    label; a ranking's or a span's value as its JSON text)."""
    if kind == "multi_label_selection":
        return datasets.Sequence(datasets.Value("string"))
    return datasets.Value(ANSWER_DTYPES.get(kind, "string"))


# a published conversation (a chat field): its messages, as Hugging Face chat datasets hold them
CHAT_FEATURE = [{"role": datasets.Value("string"), "content": datasets.Value("string")}]


def features(labels: Sequence[str], columns: Sequence[str] = ("text",), *,
             multi_label: bool = False, metadata: Mapping[str, str] | None = None,
             chat_columns: Sequence[str] = (), rating: bool = False,
             questions: Mapping[str, str] | None = None) -> datasets.Features:
    """The published table's columns: ``id``, the text column(s) (``chat_columns`` among them: lists of
    messages), the labels (lists of labels for a multi-label question, the integer ratings for a rating question),
    review and score columns, then the user's metadata columns (``metadata``: column -> Argilla kind) and the other
    questions' answers (``questions``: column -> question kind; a list of answers each)."""
    def label_column():
        if rating:
            return datasets.Value("int32")
        class_label = datasets.ClassLabel(names=list(labels))
        return datasets.Sequence(class_label) if multi_label else class_label

    per_label = {LABEL_AGREEMENT: datasets.Sequence(datasets.Value("float32"))} if multi_label else {}
    return datasets.Features({
        "id": datasets.Value("string"),
        **{column: CHAT_FEATURE if column in chat_columns else datasets.Value("string") for column in columns},
        "label": label_column(),
        "original_label": label_column(),
        "was_corrected": datasets.Value("bool"),
        "reviewed": datasets.Value("bool"),
        **{name: datasets.Value("float32") for name in REVIEW_COLUMNS},
        **per_label,
        "num_annotators": datasets.Value("int32"),
        **{spec.name: datasets.Value("float32") for spec in published_scores(multi_label, rating)},
        "model_version": datasets.Value("string"),
        TEST_SET_PROPERTY: datasets.Value("int32"),
        **{column: datasets.Value(METADATA_DTYPES[kind]) for column, kind in (metadata or {}).items()},
        **{column: datasets.Sequence(_answer_feature(kind)) for column, kind in (questions or {}).items()},
    })


def build_publication(records: Iterable[PulledRecord], labels: Sequence[str],
                      options: PublishOptions = PublishOptions(), *, fields: Sequence[str] = ("text",),
                      workdir: Path | None = None, crowd: CrowdModel | None = None,
                      multi_label: bool = False, metadata: Mapping[str, str] | None = None,
                      chat_fields: Sequence[str] = (), rating: bool = False,
                      questions: Mapping[str, str] | None = None) -> Publication:
    """Rows for every publishable record, split as ``options`` ask; ``fields`` are the bound text fields
    (``chat_fields`` among them are conversations, published as their messages);
    ``metadata``: the user's metadata properties to publish as columns (name -> Argilla kind, see
    :func:`metadata_columns`; a terms list is published as its JSON text); ``questions``: other questions whose
    submitted answers (``PulledRecord.answers``) are published, a list per row (name -> question kind, see
    :func:`question_columns`).
    ``crowd``: the annotators' weights (see :mod:`worker.crowd`) the consensus and its ``label_confidence``
    use; None: majority vote (``label_confidence`` empty). ``multi_label``: the records carry label sets.
    ``rating``: the question is a rating question (``labels`` are its values as text: "1" … "5"); the label
    columns hold the ratings as integers.

    ``records`` is consumed once, lazily (a pull's pages); the rows go to Arrow files in a new temporary
    directory under ``workdir`` (the system's temporary directory if None), removed by ``close()`` — or by the next
    publication there if this process dies first (:class:`~worker.files.Scratch`).

    Raises:
        DataError: a record's label is not one of ``labels`` (names the record and the value), or
            ``split="keep"`` and a record has no ``split`` metadata. Nothing is left on disk.
    """
    scratch = Scratch(Path(workdir) if workdir is not None else Path(tempfile.gettempdir()), "publication-")
    directory = scratch.path
    try:
        columns, extra = text_columns(fields), metadata_columns(metadata or {}, fields)
        answered = question_columns(questions or {}, fields, metadata)
        stats = PublicationStats(tuple(labels), multi_label=multi_label)
        chat_columns = tuple(columns[name] for name in chat_fields)
        published = features(labels, tuple(columns.values()), multi_label=multi_label, metadata=dict(extra.values()),
                             chat_columns=chat_columns, rating=rating, questions=dict(answered.values()))
        ratings = tuple(int(label) for label in labels) if rating else None
        with _near_copies(directory, options.similarity) as near:
            table = _write_rows(records, labels, options, columns, published, stats, directory, crowd, extra,
                                frozenset(chat_fields), ratings, near, answered)
            keys = _copy_keys(table, near)
        _count_copies(keys, table.data.column(LABEL_KEY_COLUMN), stats)
        splits = _split(table, pc.sort_indices(table.data.column("id")).to_numpy(), published, options, directory,
                        keys)
    except BaseException:
        scratch.remove()
        raise
    return Publication(splits=splits, labels=tuple(labels), stats=stats, text_columns=columns,
                       metadata_columns=extra, question_columns=answered, options=options, workdir=directory,
                       chat_columns=chat_columns, rating=rating, _scratch=scratch)


def _write_rows(records: Iterable[PulledRecord], labels: Sequence[str], options: PublishOptions,
                columns: dict[str, str], published: datasets.Features, stats: PublicationStats,
                directory: Path, crowd: CrowdModel | None = None,
                extra: Mapping[str, tuple[str, str]] | None = None,
                chats: frozenset[str] = frozenset(), ratings: tuple[int, ...] | None = None,
                near: NearCopies | None = None,
                answered: Mapping[str, tuple[str, str]] | None = None) -> datasets.Dataset:
    """One pass over ``records``: each publishable row (``published`` columns, plus the split metadata when
    ``split = "keep"``) appended to ``directory/rows.arrow``; ``stats`` filled (by class index). ``extra``: the
    metadata columns (:func:`metadata_columns`), ``answered`` the answer columns (:func:`question_columns`).
    ``ratings`` [K]: each class's rating, written in place of its index (a rating question). ``near``: each row's
    text key and text added to it, :data:`NEAR_BATCH` at a time (near copies are grouped after the pass)."""
    index = label_index(labels)
    scores = [spec.name for spec in published_scores(stats.multi_label, ratings is not None)]
    hidden = {TEXT_KEY_COLUMN: datasets.Value("string"), LABEL_KEY_COLUMN: datasets.Value("string")}
    if options.split == "keep":
        hidden[SPLIT_COLUMN] = datasets.Value("string")
    table_features = datasets.Features({**published, **hidden})
    path = directory / "rows.arrow"
    pending_keys: list[str] = []  # rows not yet added to ``near``: their text keys and (text, pair)
    pending_texts: list[tuple[str, str | None]] = []
    with ArrowWriter(features=table_features, path=str(path), writer_batch_size=WRITER_BATCH) as writer:
        for record in records:
            stats.records_seen += 1
            decided = verdict(record, crowd)
            if decided is not None and decided.label is None:
                stats.left_out(record.record_id, tied=True)
                continue
            if options.only_reviewed and decided is None:
                continue
            original = record.reference
            label = decided.label if decided is not None else original
            if label is None:
                stats.left_out(record.record_id, tied=False)
                continue
            row = _row(record, label, original, decided, index, columns, chats, scores)
            for name, (column, kind) in (extra or {}).items():
                row[column] = _metadata_value(record, name, kind)
            for name, (column, kind) in (answered or {}).items():
                row[column] = [_answer(record, name, kind, value) for value in record.answers.get(name, ())]
            stats.add(row)
            if ratings is not None:
                _write_ratings(row, ratings)
            if options.split == "keep":
                row[SPLIT_COLUMN] = record.metadata.get("split") or None
            row[TEXT_KEY_COLUMN] = text_key(str(record.text or ""), record.text_pair)
            row[LABEL_KEY_COLUMN] = json.dumps(row["label"])
            writer.write(row)
            if near is not None:
                pending_keys.append(row[TEXT_KEY_COLUMN])
                pending_texts.append((str(record.text or ""), record.text_pair))
                if len(pending_keys) == NEAR_BATCH:
                    near.add(pending_keys, pending_texts)
                    pending_keys, pending_texts = [], []
        writer.finalize()
    if near is not None and pending_keys:
        near.add(pending_keys, pending_texts)
    return datasets.Dataset.from_file(str(path))


NEAR_BATCH = 1_000  # rows whose texts wait for their near-copy signatures (memory O(batch) texts)


@contextmanager
def _near_copies(directory: Path, similarity: float) -> Iterator[NearCopies | None]:
    """A :class:`NearCopies` on an SQLite file in ``directory`` while the block runs; None (no file) for exact
    copies only."""
    if similarity >= EXACT:
        yield None
        return
    with closing(sqlite3.connect(directory / "near-copies.sqlite")) as db:
        yield NearCopies(db, similarity)


def _copy_keys(table: datasets.Dataset, near: NearCopies | None) -> pa.ChunkedArray:
    """[N] each row's copy key: its text key, or with ``near`` copies (the rows' texts added to it) its group's
    key. Memory O(N) keys plus O(texts with a near copy) for the group table."""
    keys = table.data.column(TEXT_KEY_COLUMN)
    if near is None:
        return keys
    near.groups()
    grouped = list(near.members())
    if not grouped:
        return keys
    members = pa.array([key for key, _ in grouped], pa.string())
    components = pa.array([component for _, component in grouped], pa.string())
    found = pc.index_in(keys, value_set=members)  # [N] position in ``members`` or null
    return pa.chunked_array([pc.coalesce(pc.take(components, found), keys.combine_chunks())])


def _count_copies(keys: pa.ChunkedArray, labels: pa.ChunkedArray, stats: PublicationStats) -> None:
    """``stats``' counts of the texts (``keys`` [N]: each row's copy key) in more than one row and of those whose
    rows disagree (``labels`` [N]: each row's label key; Arrow's hash aggregation: memory O(distinct texts) of
    16-character keys)."""
    grouped = pa.table({TEXT_KEY_COLUMN: keys, LABEL_KEY_COLUMN: labels}).group_by(TEXT_KEY_COLUMN).aggregate(
        [(TEXT_KEY_COLUMN, "count"), (LABEL_KEY_COLUMN, "count_distinct")])
    rows = grouped.column(f"{TEXT_KEY_COLUMN}_count")
    copied = pc.greater(rows, 1)
    stats.copied_texts = int(pc.sum(copied).as_py() or 0)
    stats.copied_rows = int(pc.sum(pc.filter(rows, copied)).as_py() or 0)
    stats.disagreeing_texts = int(pc.sum(pc.greater(grouped.column(f"{LABEL_KEY_COLUMN}_count_distinct"), 1)
                                         ).as_py() or 0)


def _field_value(record: PulledRecord, name: str, chat: bool) -> object:
    """A field's value as its column holds it: the text (an image field's URL; a custom field's JSON object as its
    JSON text), or a conversation's messages ``[{role, content}]``; None where an optional field is empty.

    Raises:
        DataError: the value is not a string (not a list of messages, for a chat field): names record and field.
    """
    value = record.field_values.get(name)
    if value is None:
        return None
    if not chat:
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False, sort_keys=True)
        if not isinstance(value, str):
            raise DataError(f"record {record.record_id!r}: field {name!r} is {type(value).__name__}, not a string")
        return value
    if not is_conversation(value):
        raise DataError(f"record {record.record_id!r}: chat field {name!r} is {str(value)[:80]!r}, not a list of "
                        f"messages with a role and a content")
    return [{"role": str(message.get("role") or ""), "content": message["content"]} for message in value]


def _metadata_value(record: PulledRecord, name: str, kind: str) -> object:
    """A metadata property's value as its published column holds it (None where the record has none).

    Raises:
        DataError: an integer or float property holds something else (names the record, property and value).
    """
    value = record.server_metadata.get(name)
    if value is None:
        return None
    if kind == "terms":
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "integer" and value != int(value)):
        raise DataError(f"record {record.record_id!r}: metadata {name!r} is {value!r}, not {kind}")
    return int(value) if kind == "integer" else float(value)


def _answer(record: PulledRecord, question: str, kind: str, value: object) -> object:
    """One submitted answer as its column holds it (see :func:`_answer_feature`).

    Raises:
        DataError: a rating that is not an integer, a label set that is not a list (names the record, the question
            and the value).
    """
    if kind == "rating":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise DataError(f"record {record.record_id!r}: an answer to question {question!r} is {value!r}, not a "
                            f"rating")
        return int(value)
    if kind == "multi_label_selection":
        if not isinstance(value, list):
            raise DataError(f"record {record.record_id!r}: an answer to question {question!r} is {value!r}, not a "
                            f"list of labels")
        return [str(label) for label in value]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _row(record: PulledRecord, label: LabelValue, original: LabelValue | None, decided, index: dict[str, int],
         columns: dict[str, str], chats: frozenset[str] = frozenset(), scores: Sequence[str] = ()) -> dict:
    """One published row; a record that came without a label has ``original_label`` −1 (datasets' "no label";
    null for a label set), an optional field the record leaves empty is null; ``scores``: the worker's values
    published (:func:`~worker.gateway.schema.published_scores`)."""
    for value, what in ((label, "consensus label" if decided else "label"), (original, "original label")):
        outside = [name for name in (value if isinstance(value, tuple) else (value,)) if name not in index]
        if value is not None and outside:
            raise DataError(f"record {record.record_id!r}: {what} {outside[0]!r} is not one of {list(index)}")
    return {
        "id": record.record_id,
        **{column: _field_value(record, name, name in chats) for name, column in columns.items()},
        "label": _indices(label, index),
        "original_label": _indices(original, index) if original is not None else (
            None if isinstance(label, tuple) else -1),
        "was_corrected": decided is not None and original is not None and label != original,
        "reviewed": decided is not None,
        "annotator_agreement": decided.agreement if decided else None,
        "label_confidence": decided.confidence if decided else None,
        **({LABEL_AGREEMENT: _label_agreement(label, decided, index)} if isinstance(label, tuple) else {}),
        "num_annotators": decided.num_annotators if decided else 0,
        **{name: _float(record.metadata.get(name)) for name in scores},
        "model_version": record.metadata.get("model_version"),
        TEST_SET_PROPERTY: _rank(record.metadata.get(TEST_SET_PROPERTY)),
    }


def _rank(value) -> int | None:
    """A ``test_set_rank`` as an integer; None when the record has none (or an unreadable one)."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _write_ratings(row: dict, ratings: tuple[int, ...]) -> None:
    """A rating question's row: its label columns as the ratings [K] of their class indices (no rating: null)."""
    for column in ("label", "original_label"):
        index = row[column]
        row[column] = ratings[index] if index is not None and index >= 0 else None


def _label_agreement(label: tuple[str, ...], decided, index: dict[str, int]) -> list[float] | None:
    """The (weighted) share of the voters who ticked each label of a published set, in the ``label`` column's
    order (class index); None for a record nobody reviewed."""
    if decided is None:
        return None
    return [decided.label_agreement.get(name, 1.0) for name in sorted(label, key=index.__getitem__)]


def _indices(label: LabelValue, index: dict[str, int]) -> int | list[int]:
    """A label's class index, or a label set's class indices (ascending)."""
    return sorted(index[name] for name in label) if isinstance(label, tuple) else index[label]


def _strata(labels: list) -> np.ndarray:
    """[N] the key each row is stratified by: its class index; for a label set its rarest label (−1: empty)."""
    if not labels or not isinstance(labels[0], list):
        return np.asarray(labels)
    counts = Counter(index for row in labels for index in row)
    return np.asarray([min(row, key=lambda index: (counts[index], index), default=-1) for row in labels])


def _float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _split(table: datasets.Dataset, by_id: np.ndarray, published: datasets.Features, options: PublishOptions,
           directory: Path, copy_keys: pa.ChunkedArray) -> dict[str, datasets.Dataset]:
    """``table``'s rows as named splits, each its own Arrow file in ``directory`` with its rows in id order.

    ``by_id`` [N] are the row positions of ``table`` in id order; ``copy_keys`` [N] each row's copy key."""
    if options.split == "none":
        parts = {"train": by_id}
    elif options.split == "keep":
        parts = _kept_split_indices(table, by_id)
    else:
        labels = _strata(table.data.column("label").to_pylist())[by_id]  # [N] each row's stratum, in id order
        keys = copy_keys.take(by_id).to_pylist()  # [N] each row's copy key, in id order
        pinned = pc.is_valid(table.data.column(TEST_SET_PROPERTY)).to_numpy(zero_copy_only=False)[by_id]  # [N]
        parts = {name: by_id[positions]
                 for name, positions in _stratified_split_indices(labels, keys, options, pinned).items()}
    return {name: _write_taken(table, rows, published, directory / f"split-{name}.arrow")
            for name, rows in sorted(parts.items())}


def _write_taken(table: datasets.Dataset, rows: np.ndarray, published: datasets.Features,
                 path: Path) -> datasets.Dataset:
    """The ``rows`` [n] of ``table`` (in that order, only the ``published`` columns) as a new Arrow file,
    ``TAKE_CHUNK`` rows at a time (memory O(chunk)), memory-mapped back."""
    source = table.data.table
    schema = published.arrow_schema
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for start in range(0, len(rows), TAKE_CHUNK):
            chunk = source.take(rows[start:start + TAKE_CHUNK]).select(list(published))
            writer.write_table(pa.Table.from_arrays(chunk.columns, schema=schema))
    return datasets.Dataset.from_file(str(path))


def _kept_split_indices(table: datasets.Dataset, by_id: np.ndarray) -> dict[str, np.ndarray]:
    """Row positions [n_split] per value of the records' ``split`` metadata, in id order.

    Raises:
        DataError: some records have no ``split`` metadata (the first ids are named).
    """
    column = table.data.column(SPLIT_COLUMN).take(by_id)
    missing = np.flatnonzero(np.asarray(pc.is_null(column)))
    if len(missing):
        first = table.data.column("id").take(by_id[missing[:5]]).to_pylist()
        raise DataError(f"publish.split = 'keep' but {len(missing)} record(s) have no split metadata "
                        f"(first: {first}); ingest with --split-column, or use 'stratified'")
    return {str(name): by_id[np.flatnonzero(np.asarray(pc.equal(column, name)))]
            for name in pc.unique(column).to_pylist()}


def _stratified_split_indices(labels: np.ndarray, keys: Sequence[str], options: PublishOptions,
                              pinned: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``options.test_fraction`` of each class (rounded; none of a class of one) to ``test``, seeded; rows with
    the same text key (``keys`` [N]) in the same split, so the test split holds no text the train split has. The
    sides follow a seeded hash of each text (:func:`~worker.iterables.hashed_label_clusters`): the next
    publication keeps nearly every test record in test, so a model trained on one version's train split is not
    scored on its own training records with the next version's test split.

    The rows ``pinned`` [N] marks (the worker's test set: a random sample, see :mod:`worker.test_set`) go to ``test``
    with their copies, and count towards each class's share; the hash fills the rest of it.

    ``labels`` [N] are the rows' label indices in id order; returns positions into ``labels`` per split, ascending."""
    test: list[int] = []
    pinned_keys = {keys[int(position)] for position in np.flatnonzero(pinned)} if pinned is not None else set()
    for clusters in hashed_label_clusters(labels.tolist(), keys, options.seed):
        size = sum(map(len, clusters))
        held = [cluster for cluster in clusters if keys[cluster[0]] in pinned_keys]
        free = [cluster for cluster in clusters if keys[cluster[0]] not in pinned_keys]
        target = round(size * options.test_fraction) if size > 1 else 0
        held_rows = [position for cluster in held for position in cluster]
        test.extend(held_rows)
        test.extend(take_clusters(free, max(0, target - len(held_rows)))[0])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}
