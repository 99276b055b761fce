"""Which parts of an Argilla dataset the worker reads and writes: the dataset binding.

The dataset belongs to the user. The binding names the text field(s) the model reads, the label
question the worker suggests for, and where the *reference* label comes from — the label the loss
is measured against before anybody reviewed a record. It is built once from the ``[argilla]``
config and the dataset's settings on the server (:func:`bind`), validated there, and passed to
every job: nothing else in the worker assumes a field or question name.

Reference sources (``argilla.reference``):

``auto`` (default)
    the label the worker preserved in metadata ``original_label`` (written at ingest, or copied from
    another agent's suggestion before the worker first replaced it), else the question's current
    suggestion when another agent wrote it;
``suggestion:AGENT``
    the suggestion written by AGENT (also once preserved in metadata, with ``original_agent``);
``metadata:NAME``
    the value of the user's metadata property NAME;
``none``
    no reference: only uncertainty is computed until annotators answer.

The annotators' consensus always wins over any of these once it exists.

Metadata names (``argilla.metadata_prefix``): the worker's metadata properties (``loss``, ``bald``,
``original_label`` …) carry a prefix on the server when the dataset has more than one label question —
``<question>_loss`` — so that one worker per question can serve the same dataset without overwriting the
other's values (``split`` is the records', not a question's, and stays shared). A dataset whose own
properties already use some of the worker's names (their labeller's ``confidence``, their ``model_version``)
keeps them: the worker's become ``worker_<name>`` there. Inside the worker every
name is the plain one: :meth:`DatasetBinding.worker_view` reads a record's metadata through the prefix,
:meth:`DatasetBinding.stored` writes through it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TypeGuard

from worker.errors import ConfigError
from worker.iterables import most_common
from worker.records import LabelValue, label_set

TEXT_TYPE = "text"  # the Argilla field types the model can read: text …
CHAT_TYPE = "chat"  # … and conversations (messages of a role and a content), read as one "role: content" line each
READABLE_TYPES = (TEXT_TYPE, CHAT_TYPE)
LABEL_TYPES = ("label", "label_selection")  # single-label question types (the SDK's and the server's name)
MULTI_LABEL_TYPE = "multi_label_selection"
# a RatingQuestion (1–5 quality …) is served as single-label classes "1" … "5" when argilla.question names it; the
# server holds its values as integers
RATING_TYPE = "rating"
PRESERVED_LABEL = "original_label"  # metadata: the reference label kept before the worker replaced it
PRESERVED_AGENT = "original_agent"  # metadata: who wrote it
PRESERVED_SCORE = "original_score"  # metadata: the score that agent gave its suggestion (single-label)
PRESERVED_SCORES = "original_scores"  # metadata: a label set's per-label scores, "label=score" terms (multi-label)
SHARED_METADATA = frozenset({"split"})  # the worker's metadata that belongs to the record, never prefixed
CONSENSUS_AGENT = "argilla-worker:consensus"  # the worker's suggestion that repeats the annotators' consensus


def prefixed(name: str, prefix: str) -> str:
    """The server's name of the worker's metadata property ``name`` under ``prefix`` (shared ones keep theirs)."""
    return name if name in SHARED_METADATA else f"{prefix}{name}"


class BindingError(ConfigError):
    """The dataset and the ``[argilla]`` config do not fit together (the message lists what the dataset has)."""


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str  # text | image | chat | custom …
    title: str


@dataclass(frozen=True)
class QuestionInfo:
    name: str
    type: str  # label_selection | multi_label_selection | rating | text …
    labels: tuple[str, ...] = ()
    id: str | None = None
    titles: tuple[str, ...] = ()  # what the UI shows for each label (the option's text), in ``labels``' order

    def label_titles(self) -> dict[str, str]:
        """label value → the title the UI shows for it (the value itself when it has none)."""
        return {value: title or value for value, title in zip(self.labels, self.titles, strict=False)}


def label_aliases(titles: Mapping[str, str]) -> dict[str, str]:
    """title → label value, for the labels shown under another name (``Cars 🚗`` for ``autos``; ``titles``: value →
    title); a title that is another label's value, or two labels' title, is left out (it would be ambiguous)."""
    counts = Counter(titles.values())
    return {title: value for value, title in titles.items()
            if title != value and title not in titles and counts[title] == 1}


def written_label(value: object) -> str:
    """A label as the team wrote it, as text: a decimal that is a whole number as the integer (a rating 4.0 — a CSV
    column with empty cells, a float property — reads 4)."""
    return str(int(value) if isinstance(value, float) and value.is_integer() else value)


class LabelReading:
    """How people write a question's labels, read as its values: a value itself, the title the UI shows for it
    (``titles``: value → title, ``Cars 🚗`` → ``autos``), either in another letter case or with spaces around it
    (``POSITIVE`` → ``positive``), a rating as a number (``4`` or ``4.0`` → ``"4"``). A spelling that reads as
    two labels (``Pos`` beside ``pos`` and ``POS``; ``other`` beside the value ``other`` and ``misc`` titled
    ``Other``) reads as none; ``mapped`` (a map the team gave: ``{"0": "negative"}``) comes first. O(labels) to
    build, O(1) a reading."""

    def __init__(self, values: Sequence[str], titles: Mapping[str, str] | None = None,
                 mapped: Mapping[str, str] | None = None) -> None:
        self.values = frozenset(values)
        self.mapped = dict(mapped or {})
        titles = {value: (titles or {}).get(value) or value for value in values}
        self.aliases = label_aliases(titles)
        folded: dict[str, set[str]] = {}
        for value, title in titles.items():
            for written in (value, title):
                folded.setdefault(written.strip().casefold(), set()).add(value)
        self._folded = {written: next(iter(found)) for written, found in folded.items() if len(found) == 1}

    def read(self, written: object) -> str | None:
        """The label ``written`` stands for, else None."""
        text = written_label(written)
        if text in self.mapped:
            return self.mapped[text]
        if text in self.values:
            return text
        if text in self.aliases:
            return self.aliases[text]
        return self._folded.get(text.strip().casefold())


def respellings(respelled: Counter[tuple[str, str]], shown: int = 10) -> str:
    """How :class:`LabelReading` read labels written otherwise, the most frequent first: ``'POSITIVE' → 'positive'
    (120), …`` (``respelled``: (as written, label) -> how many); past ``shown`` the rest counted."""
    items = [f"{written!r} → {label!r} ({count})" for (written, label), count in most_common(respelled, shown)]
    rest = len(respelled) - shown
    return ", ".join(items) + (f" and {rest} more spelling(s)" if rest > 0 else "")


@dataclass(frozen=True)
class MetadataInfo:
    name: str
    type: str  # float | integer | terms


@dataclass(frozen=True)
class DatasetShape:
    """A dataset's settings as plain values (see ``ArgillaGateway.shape``)."""

    name: str
    fields: tuple[FieldInfo, ...]
    questions: tuple[QuestionInfo, ...]
    metadata: tuple[MetadataInfo, ...]

    def describe(self) -> str:
        fields = ", ".join(f"{f.name} ({f.type})" for f in self.fields) or "none"
        questions = ", ".join(f"{q.name} ({q.type})" for q in self.questions) or "none"
        metadata = ", ".join(f"{m.name} ({m.type})" for m in self.metadata) or "none"
        return f"dataset {self.name!r} has fields: {fields}; questions: {questions}; metadata: {metadata}"


@dataclass(frozen=True)
class Reference:
    """Where a record's reference label comes from (see the module docstring)."""

    kind: str  # auto | suggestion | metadata | none
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        kind, _, name = text.partition(":")
        if kind in ("auto", "none") and not name:
            return cls(kind)
        if kind in ("suggestion", "metadata") and name:
            return cls(kind, name)
        raise BindingError(f"argilla.reference = {text!r}: expected 'auto', 'none', 'suggestion:AGENT' or "
                           f"'metadata:NAME'")

    def __str__(self) -> str:
        return self.kind if self.name is None else f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class DatasetBinding:
    """The text field(s), the label question and its labels, and the reference source of one dataset."""

    fields: tuple[str, ...]
    question: str
    labels: tuple[str, ...]
    reference: Reference = Reference("auto")
    field_titles: tuple[str, ...] = ()
    question_id: str | None = None
    multi_label: bool = False  # a MultiLabelQuestion: answers, suggestions and references are label sets
    chat_fields: tuple[str, ...] = ()  # the bound fields that are conversations (ChatField), see chat_text
    rating: bool = False  # a RatingQuestion: labels are its values as text, the server's are integers
    metadata_prefix: str = ""  # before each of the worker's metadata names on the server (see the module docstring)
    label_titles: tuple[str, ...] = ()  # what the UI shows for each label, in ``labels``' order
    reference_map: tuple[tuple[str, str], ...] = ()  # argilla.reference_map: (the team's value, the label)

    @cached_property
    def label_reading(self) -> LabelReading:
        """The question's labels as people write them (:class:`LabelReading`), ``argilla.reference_map`` first."""
        return LabelReading(self.labels, dict(zip(self.labels, self.label_titles, strict=False)),
                            dict(self.reference_map))

    def stored_name(self, name: str) -> str:
        """The server's name of the worker's metadata property ``name``."""
        return prefixed(name, self.metadata_prefix)

    def stored(self, values: Mapping[str, object]) -> dict:
        """The worker's metadata ``values`` (plain names) under the server's names."""
        return {self.stored_name(name): value for name, value in values.items()}

    def worker_view(self, stored: Mapping[str, object]) -> dict:
        """A record's metadata as the server holds it, under the worker's plain names. With a prefix: only the
        prefixed properties (without it) and the shared ones — an unprefixed ``loss`` or ``model_version`` is
        the user's or a worker's serving another question, not this one's. O(properties)."""
        prefix = self.metadata_prefix
        if not prefix:
            return dict(stored)
        view = {name: value for name, value in stored.items() if name in SHARED_METADATA}
        view.update((name[len(prefix):], value) for name, value in stored.items() if name.startswith(prefix))
        return view

    def label_value(self, value: object) -> LabelValue | None:
        """A label as the server (or a metadata property) holds it, as the worker handles it: for a
        multi-label question a label set (a list, or one name, becomes a sorted tuple), else the name.
        None stays None; a value of another type is passed on as text (checked against the labels by
        the job that uses it, which names the record)."""
        if value is None:
            return None
        if not self.multi_label:
            return value if isinstance(value, str) else str(value)
        if isinstance(value, (list, tuple)):
            return label_set(str(item) for item in value)
        return (str(value),)

    def read_label(self, value: object) -> LabelValue | None:
        """A label the team wrote themselves (their metadata property: ``POSITIVE``, the title ``Positive 👍``, a
        rating as 4.0) as :meth:`label_value` has it, each name read as the question's label it stands for
        (:attr:`label_reading`); None when it names none of them (a set: when one of its names does not)."""
        label = self.label_value(value)
        if label is None:
            return None
        read = self.label_reading.read
        if isinstance(label, tuple):
            names = [read(name) for name in label]
            return None if None in names else label_set(name for name in names if name is not None)
        return read(value)

    def spellings(self, value: object) -> tuple[list[tuple[str, str]], list[str]]:
        """How :meth:`read_label` reads a label (set) the team wrote: the names it read as another label — (as
        written, the label) — and the names it reads as none."""
        names = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
        respelled, unknown = [], []
        for name in names:
            label, written = self.label_reading.read(name), written_label(name)
            if label is None:
                unknown.append(written)
            elif label != written:
                respelled.append((written, label))
        return respelled, unknown

    def unread_reference(self, stored: Mapping[str, object]) -> object | None:
        """The value of the team's label property (``argilla.reference = 'metadata:NAME'``) in a record's metadata
        as the server holds it (``stored``), when it names no label of the question (:meth:`read_label`: the record
        is read as one without a label); None otherwise."""
        if self.reference.kind != "metadata" or not self.reference.name:
            return None
        value = stored.get(self.reference.name)
        return value if value is not None and self.read_label(value) is None else None

    def server_value(self, label: LabelValue) -> object:
        """A label as the server holds the question's values: a label set as a list, a rating as its integer."""
        if isinstance(label, tuple):
            return list(label)
        return int(label) if self.rating else label

    def model_input(self, values: Mapping[str, object]) -> tuple[object, str | None]:
        """(text, text_pair) the model reads from a record's field values.

        One field: its value. Two: the tokenizer's text / text_pair, a missing (optional) one as "" so that
        the other is still read. More: one text, each present field on its own line as ``Title: value``.
        A conversation (a chat field) is read as its messages, one ``role: content`` line each (:func:`chat_text`).
        None when no bound field has a value (the record is skipped with that reason); a non-string value is
        passed on as it is (the scorer names it as an error).
        """
        if self.chat_fields:
            values = {name: chat_text(values.get(name)) if name in self.chat_fields else values.get(name)
                      for name in self.fields}
        if len(self.fields) == 1:
            return values.get(self.fields[0]), None
        parts = [values.get(name) for name in self.fields]
        if all(part is None for part in parts):
            return None, None
        if len(self.fields) == 2:
            first, second = ("" if part is None else part for part in parts)
            return first, second if isinstance(second, str) else str(second)
        titles = self.field_titles or self.fields
        return "\n".join(f"{title}: {part}" for title, part in zip(titles, parts, strict=True)
                         if part is not None), None

    def reference_label(self, metadata: Mapping[str, object], suggestion_value: LabelValue | None,
                        suggestion_agent: str | None, *, stored: Mapping[str, object] | None = None
                        ) -> LabelValue | None:
        """The reference label (set) of a record nobody has reviewed (the consensus is checked by the caller).

        ``metadata``: the worker's view of the record's metadata; ``stored``: all of it as the server holds it
        (None: the same), where ``metadata:NAME`` reads the user's property."""
        kind, name = self.reference.kind, self.reference.name
        if kind == "none":
            return None
        if kind == "metadata":
            return self.read_label((metadata if stored is None else stored).get(name) if name else None)
        preserved = self.label_value(metadata.get(PRESERVED_LABEL))
        foreign = suggestion_value if is_foreign(suggestion_agent, metadata) else None
        if kind == "suggestion":
            if preserved is not None and metadata.get(PRESERVED_AGENT) == name:
                return preserved
            return foreign if suggestion_agent == name else None
        return preserved if preserved is not None else foreign  # auto


def is_conversation(value: object) -> TypeGuard[list[Mapping]]:
    """Whether ``value`` is what a chat field holds: a list of messages, each a mapping with a text ``content``
    (and a ``role``)."""
    return isinstance(value, list) and all(
        isinstance(message, Mapping) and isinstance(message.get("content"), str) for message in value)


def chat_text(messages: object) -> object:
    """A conversation as the model reads it: one ``role: content`` line per message, in order (``user: …`` /
    ``assistant: …``); None for no message. A value that is not a list of messages (the server does not store
    one in a chat field) is returned as it is, for the scorer to name."""
    if messages is None or messages == []:
        return None
    if not is_conversation(messages):
        return messages
    return "\n".join(f"{message.get('role') or 'message'}: {message['content']}" for message in messages)


def new_dataset_names(fields: Sequence[str] = (), question: str = "") -> tuple[str, str]:
    """(field, question) names of a dataset the worker creates (ingest, demo): the configured ones,
    else ``text`` and ``label``.

    Raises:
        BindingError: more than one field is configured (a created dataset has one text field).
    """
    if len(fields) > 1:
        raise BindingError(f"argilla.fields = {list(fields)}: the worker creates datasets with one text field; "
                           f"create a dataset with several fields with the Argilla SDK and bind to it")
    return (fields[0] if fields else "text"), (question or "label")


def is_foreign(agent: str | None, metadata: Mapping[str, object]) -> bool:
    """Whether a suggestion was written by someone other than the worker.

    The worker writes metadata ``model_version`` equal to its model suggestion's agent (``vNNNN`` or
    ``vNNNN-oofK``), so a suggestion whose agent differs from it is another agent's — except
    ``CONSENSUS_AGENT``, the worker's repetition of the annotators' answer (``scoring.suggestion``).
    (A reference label the worker re-suggests keeps its source's agent: it is that source's label.)
    """
    return agent is None or (agent != metadata.get("model_version") and agent != CONSENSUS_AGENT)


def bind(shape: DatasetShape, *, fields: Sequence[str] = (), question: str = "", reference: str = "auto",
         worker_metadata: Mapping[str, str] | None = None, metadata_prefix: str | None = None,
         reference_map: Mapping[str, str] | None = None) -> DatasetBinding:
    """Build and validate the binding of ``shape`` for the ``[argilla]`` config values.

    ``worker_metadata`` maps the worker's metadata property names to their type (float / terms):
    a property of the user's with one of those names (after the prefix) and another type is a conflict.
    ``metadata_prefix`` None: chosen by :func:`metadata_prefix_for`.

    Raises:
        BindingError: a field or question is missing or ambiguous, the question is not a label question
            (single- or multi-label), the reference names a missing property, or a metadata name conflicts; the
            message lists what the dataset has.
    """
    chosen_fields = _fields(shape, fields)
    chosen_question = _question(shape, question)
    source = Reference.parse(reference)
    present = {m.name: m for m in shape.metadata}
    prefix = metadata_prefix_for(shape, chosen_question.name, metadata_prefix, worker_metadata or {})
    if source.kind == "metadata" and source.name not in present:
        raise BindingError(f"argilla.reference = {str(source)!r}: no metadata property {source.name!r}; "
                           f"{shape.describe()}")
    outside = sorted(set((reference_map or {}).values()) - set(chosen_question.labels))
    if outside:
        raise BindingError(f"argilla.reference_map maps to {outside}, which are not labels of question "
                           f"{chosen_question.name!r} {list(chosen_question.labels)}")
    stored = {prefixed(name, prefix): kind for name, kind in (worker_metadata or {}).items()}
    conflicts = [f"{name} is {present[name].type}, the worker writes {kind}"
                 for name, kind in stored.items() if name in present and not _compatible(present[name].type, kind)]
    if conflicts:
        raise BindingError(f"dataset {shape.name!r} already uses metadata names the worker needs for other "
                           f"values ({'; '.join(conflicts)}); rename those properties. {shape.describe()}")
    titles = {f.name: f.title for f in shape.fields}
    chats = {f.name for f in shape.fields if f.type == CHAT_TYPE}
    return DatasetBinding(fields=tuple(chosen_fields), question=chosen_question.name, labels=chosen_question.labels,
                          reference=source, field_titles=tuple(titles[name] or name for name in chosen_fields),
                          question_id=chosen_question.id, multi_label=chosen_question.type == MULTI_LABEL_TYPE,
                          metadata_prefix=prefix, chat_fields=tuple(name for name in chosen_fields if name in chats),
                          rating=chosen_question.type == RATING_TYPE, label_titles=chosen_question.titles,
                          reference_map=tuple(sorted((reference_map or {}).items())))


def metadata_prefix_for(shape: DatasetShape, question: str, configured: str | None,
                        worker_metadata: Mapping[str, str]) -> str:
    """The prefix of the worker's metadata names on the server: ``configured`` when set (``""``: none), else
    none for a dataset with one label question and ``<question>_`` for a dataset with several.

    A dataset the worker has not served under a prefix (none of its :data:`WORKER_MARKS` there) may already
    have properties of the user's that carry the worker's names (their labeller's ``confidence``, their own
    ``model_version`` …): those are theirs and are never written. With one label question and no configured
    prefix the worker's names then become ``worker_<name>`` (:data:`OWN_NAMES_PREFIX`), kept on later runs.

    Raises:
        BindingError: ``configured`` is not usable in a property name; or the prefix would be chosen for a
            dataset that already holds the worker's unprefixed values (an earlier worker served one of its
            questions without a prefix: which one is the user's to say, not the worker's to guess); or the
            configured / per-question prefix would write into the user's own properties.
    """
    if configured is not None:
        if not re.fullmatch(r"[a-z0-9_-]*", configured):
            raise BindingError(f"argilla.metadata_prefix = {configured!r}: use lowercase letters, digits, '_' and "
                               f"'-' only (Argilla's metadata names), or \"\" for none")
        _refuse_users_names(shape, configured, worker_metadata, f"argilla.metadata_prefix = {configured!r}")
        return configured
    label_questions = [q.name for q in shape.questions if q.type in (*LABEL_TYPES, MULTI_LABEL_TYPE)
                       or (q.type == RATING_TYPE and q.name == question)]  # a rating question only when served
    if len(label_questions) < 2:
        if served(shape, ""):
            return ""
        if served(shape, OWN_NAMES_PREFIX):
            return OWN_NAMES_PREFIX
        if not users_names(shape, "", worker_metadata):
            return ""
        _refuse_users_names(shape, OWN_NAMES_PREFIX, worker_metadata, "the worker's own names")
        return OWN_NAMES_PREFIX
    prefix = re.sub(r"[^a-z0-9_-]", "_", question.lower()) + "_"
    present = {m.name for m in shape.metadata}
    unprefixed = [name for name in WORKER_MARKS if name in worker_metadata and name in present]
    if unprefixed and not served(shape, prefix):
        raise BindingError(
            f"dataset {shape.name!r} has {len(label_questions)} label questions ({', '.join(label_questions)}) and "
            f"already holds the worker's metadata without a question prefix ({', '.join(unprefixed)}), written by an "
            f"earlier worker for one of them. Set argilla.metadata_prefix = \"\" for the question that worker "
            f"served (it keeps its values); leave it unset for the others (their metadata is then named "
            f"'<question>_loss' …).")
    _refuse_users_names(shape, prefix, worker_metadata, f"the prefix {prefix!r} of question {question!r}")
    return prefix


# properties only the worker writes, there since its first version: one of them under a prefix means the worker
# has served the dataset under that prefix (so the other names there are its own too)
WORKER_MARKS = ("expected_loss", "submitted_responses")
OWN_NAMES_PREFIX = "worker_"  # the worker's names on a dataset whose own properties already use the plain ones


def served(shape: DatasetShape, prefix: str) -> bool:
    """Whether the worker's values are on the dataset under ``prefix`` (one of its marks is a property there)."""
    present = {m.name for m in shape.metadata}
    return any(prefixed(name, prefix) in present for name in WORKER_MARKS)


def users_names(shape: DatasetShape, prefix: str, worker_metadata: Mapping[str, str]) -> list[str]:
    """The dataset's properties that carry one of the worker's names under ``prefix`` but are the user's (the
    worker has not served the dataset under it); ``split`` is the records' and shared, never counted."""
    if served(shape, prefix):
        return []
    wanted = {prefixed(name, prefix) for name in worker_metadata if name not in SHARED_METADATA}
    return [m.name for m in shape.metadata if m.name in wanted]


def _refuse_users_names(shape: DatasetShape, prefix: str, worker_metadata: Mapping[str, str], what: str) -> None:
    theirs = users_names(shape, prefix, worker_metadata)
    if theirs:
        raise BindingError(f"{what} would write the worker's values into metadata properties of the dataset's "
                           f"own ({', '.join(theirs)}), which the worker never overwrites: set "
                           f"argilla.metadata_prefix to a prefix no property of the dataset starts with, e.g. "
                           f"\"model_\". {shape.describe()}")


def _fields(shape: DatasetShape, wanted: Sequence[str]) -> list[str]:
    """The fields the model reads: the configured ones (each a text or chat field), else the dataset's one such
    field."""
    readable = [f.name for f in shape.fields if f.type in READABLE_TYPES]
    if wanted:
        unknown = [name for name in wanted if name not in {f.name for f in shape.fields}]
        if unknown:
            raise BindingError(f"argilla.fields: no field named {', '.join(map(repr, unknown))}; {shape.describe()}")
        unreadable = [name for name in wanted if name not in readable]
        if unreadable:
            raise BindingError(f"argilla.fields: {', '.join(map(repr, unreadable))} is not a text or chat field; "
                               f"{shape.describe()}")
        return list(wanted)
    if len(readable) == 1:
        return readable
    if not readable:
        raise BindingError(f"dataset {shape.name!r} has no text or chat field to classify; {shape.describe()}")
    raise BindingError(f"dataset {shape.name!r} has {len(readable)} text or chat fields "
                       f"({', '.join(readable)}): set argilla.fields to the one(s) the model reads; "
                       f"{shape.describe()}")


def _question(shape: DatasetShape, wanted: str) -> QuestionInfo:
    by_name = {q.name: q for q in shape.questions}
    if wanted:
        if wanted not in by_name:
            raise BindingError(f"argilla.question: no question named {wanted!r}; {shape.describe()}")
        chosen = by_name[wanted]
    else:
        candidates = [q for q in shape.questions if q.type in (*LABEL_TYPES, MULTI_LABEL_TYPE)]
        if len(candidates) != 1:
            problem = "no label question" if not candidates else f"{len(candidates)} label questions"
            ratings = [q.name for q in shape.questions if q.type == RATING_TYPE]
            served = f" (a rating question is served once named: {', '.join(ratings)})" if ratings else ""
            raise BindingError(f"dataset {shape.name!r} has {problem}: set argilla.question{served}; "
                               f"{shape.describe()}")
        chosen = candidates[0]
    if chosen.type not in (*LABEL_TYPES, MULTI_LABEL_TYPE, RATING_TYPE):
        raise BindingError(f"question {chosen.name!r} is a {chosen.type} question, not a label or rating question; "
                           f"{shape.describe()}")
    return chosen


def _compatible(existing: str, wanted: str) -> bool:
    return existing == wanted
