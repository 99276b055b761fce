"""The record types every part of the worker shares, as plain values (no SDK objects): what is ingested
(:class:`LabelledText`), pulled (:class:`PulledRecord`), decided by annotators (:class:`Correction`) and
pushed (:class:`Prediction`)."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

logger = logging.getLogger(__name__)

SUBMITTED = "submitted"
DISCARDED = "discarded"

# A label as the worker passes it around: a label name (single-label question), or a label set — a sorted
# tuple of names (multi-label question; sorted so that equal sets compare equal, see ``label_set``).
LabelValue = str | tuple[str, ...]
MetadataValue = float | str | list[str] | None  # a metadata value the worker writes (a list: terms of a label set)


def is_label_set(value: object) -> bool:
    """Whether ``value`` is a label set (a multi-label answer) rather than one label."""
    return isinstance(value, tuple)


def label_set(values: Iterable[str]) -> tuple[str, ...]:
    """The canonical label set of ``values``: each label once, sorted."""
    return tuple(sorted(set(values)))


def label_index(labels: Sequence[str]) -> dict[str, int]:
    """{label name: class index}: a label's position in ``labels``, as models, metrics and published tables use it."""
    return {label: position for position, label in enumerate(labels)}


def has_text(text: object, text_pair: object = None) -> bool:
    """Whether a model input has something to read: a non-blank text, or a blank one beside a non-blank
    second text (a record whose optional first field is empty)."""
    return isinstance(text, str) and (bool(text.strip()) or (isinstance(text_pair, str) and bool(text_pair.strip())))


@dataclass(frozen=True)
class LabelledText:
    """A text to ingest, with the label it comes with (None: no label yet)."""

    id: str
    text: str
    label: LabelValue | None  # a label set (sorted tuple) for a multi-label question
    split: str | None = None  # the source's split (train / test …), kept as metadata for publishing
    metadata: Mapping[str, str | int | float] | None = field(default=None, hash=False)  # the user's own names
    fields: Mapping[str, str] | None = field(default=None, hash=False)  # values of the dataset's other fields


@dataclass(frozen=True)
class SuggestionState:
    value: LabelValue
    agent: str | None
    score: float | tuple[float, ...] | None  # a tuple: one score per label of a label set
    id: str | None = field(default=None, compare=False)  # the server's suggestion id (to remove it)
    updated_at: datetime | None = field(default=None, compare=False)  # when it was last written (server clock)


@dataclass(frozen=True)
class ResponseState:
    user_id: str
    value: LabelValue | None
    status: str  # submitted | draft | discarded
    updated_at: datetime | None = None


_FROM_METADATA = "from metadata"  # the default of PulledRecord.reference


@dataclass(frozen=True)
class PulledRecord:
    """One Argilla record as the worker sees it, through the dataset binding.

    ``text`` / ``text_pair`` are what the model reads (see ``DatasetBinding.model_input``);
    ``field_values`` the bound fields' values as the server has them (what publishing writes);
    ``suggestion`` is the bound question's suggestion; ``reference`` is the label the record came
    with, before any review, as the binding's reference source resolves it (by default metadata
    ``original_label``). ``metadata`` is the worker's view of the record's metadata (its plain names, see
    ``DatasetBinding.worker_view``); ``stored_metadata`` is all of it as the server holds it (None: the same),
    what a push merges into. ``vector`` is one of the record's vectors when the pull asked for it (None: not
    asked for, or the record has none).
    """

    server_id: str
    record_id: str  # the external id
    text: object  # a str from Argilla; another value is kept so that the scorer can name it as an error
    metadata: dict
    suggestion: SuggestionState | None
    responses: tuple[ResponseState, ...]
    updated_at: datetime | None
    text_pair: str | None = None
    reference: LabelValue | None = _FROM_METADATA
    field_values: dict = field(default_factory=dict)
    stored_metadata: dict | None = None
    vector: np.ndarray | None = field(default=None, compare=False)  # [D] float32: one vector of the dataset's, read
    # only when a job asks for it by name (``ArgillaGateway.pull(vector=...)``)
    answers: dict = field(default_factory=dict)  # another question's name -> its submitted answers' values, oldest
    # first, as the server holds them: read only for the questions a job names (``ArgillaGateway.pull(questions=...)``)
    position: tuple[datetime, str] | None = field(default=None, compare=False)  # (inserted_at, server id): its place
    # in a full pass's keyset order (see worker.gateway.paging), where a stopped pass goes on from

    @property
    def server_metadata(self) -> dict:
        """The record's metadata as the server holds it (every property, the server's names)."""
        return self.metadata if self.stored_metadata is None else self.stored_metadata

    def __post_init__(self):
        if self.reference == _FROM_METADATA:
            object.__setattr__(self, "reference", self.metadata.get("original_label"))

    @property
    def has_text(self) -> bool:
        """Whether the model has something to read (see :func:`has_text`)."""
        return has_text(self.text, self.text_pair)

    @property
    def last_change(self) -> datetime | None:
        """The latest of the record's and its responses' update times."""
        times = [t for t in (self.updated_at, *(r.updated_at for r in self.responses)) if t is not None]
        return max(times) if times else None


@dataclass(frozen=True)
class Correction:
    """The annotators' verdict on one record, from its submitted responses.

    ``label`` is the consensus label, or None on a tie of the votes (then ``tied_labels`` names the tie).
    ``agreement`` is the (weighted) share of the votes behind it; ``confidence`` the probability of the
    label given the votes, the annotators' reliability and the model (None: not estimated, see
    :mod:`worker.crowd`).

    Label sets (multi-label): ``label`` is the set decided label by label (:func:`label_set_consensus`),
    None when some label is tied (named in ``tied_labels``); ``votes`` counts the voters of each label,
    ``label_agreement`` holds each voted label's (weighted) share of voters on the decided side, and
    ``agreement`` is their mean.
    """

    record_id: str
    label: LabelValue | None
    original_label: LabelValue | None
    agreement: float
    num_annotators: int
    votes: dict[str, int] = field(default_factory=dict)
    tied_labels: tuple[str, ...] = ()
    confidence: float | None = None
    label_agreement: dict[str, float] = field(default_factory=dict)  # label sets: each voted label's agreement

    @property
    def is_correction(self) -> bool:
        """True when the consensus differs from the original label."""
        return self.label is not None and self.label != self.original_label


def submitted_votes(record: PulledRecord) -> dict[str, LabelValue]:
    """{user id: label (or label set)} of the record's submitted responses (drafts and discarded ones ignored)."""
    return {r.user_id: r.value for r in record.responses if r.status == SUBMITTED and r.value is not None}


def single_votes(votes: Mapping[str, LabelValue]) -> dict[str, str] | None:
    """``votes`` when every one is a single label, else None (some are label sets)."""
    plain = {user: value for user, value in votes.items() if isinstance(value, str)}
    return plain if len(plain) == len(votes) else None


def consensus(record: PulledRecord, weight: Callable[[str], float] | None = None) -> Correction | None:
    """The verdict of the submitted responses (draft and discarded ignored); None without any.

    A tie of the votes stays a tie (no label) and a single vote is the label. Otherwise, with ``weight``
    (user id → the annotator's weight, see :mod:`worker.crowd`), the label whose voters weigh most wins
    (the vote count breaks an exact tie of weights); without it, the majority. Label sets are decided
    label by label the same way (:func:`label_set_consensus`).
    """
    answers = submitted_votes(record)
    if not answers:
        return None
    votes = single_votes(answers)
    if votes is None:
        return _label_set_correction(record, answers, weight)
    counts = Counter(votes.values())
    top = max(counts.values())
    leaders = tuple(sorted(label for label, count in counts.items() if count == top))
    total = len(votes)
    if len(leaders) > 1:
        return Correction(record.record_id, None, record.reference, top / total, total, dict(counts), leaders)
    if weight is None:
        return Correction(record.record_id, leaders[0], record.reference, top / total, total, dict(counts))
    weighted: dict[str, float] = dict.fromkeys(counts, 0.0)
    for user, value in votes.items():
        weighted[value] += weight(user)
    label = max(counts, key=lambda name: (weighted[name], counts[name]))
    return Correction(record.record_id, label, record.reference, weighted[label] / sum(weighted.values()), total,
                      dict(counts))


@dataclass(frozen=True)
class LabelSetVerdict:
    """The annotators' verdict on one record's label set, label by label.

    ``labels`` holds the labels more than half of the voters chose, or None when some label has exactly half
    (then ``tied_labels`` names those: reported, not guessed; ``present`` still holds the decided ones).
    ``agreement`` [label] is the share of voters on the decided side of each label any voter chose.
    """

    record_id: str
    labels: tuple[str, ...] | None
    num_annotators: int
    agreement: dict[str, float] = field(default_factory=dict)
    tied_labels: tuple[str, ...] = ()
    present: tuple[str, ...] = ()  # the labels decided present, ties left out


def label_set_consensus(record_id: str, votes: Mapping[str, Collection[str]],
                        weight: Callable[[str], float] | None = None) -> LabelSetVerdict | None:
    """Per-label majority of submitted label sets (``votes``: user id → the labels they ticked); None without
    a vote. An empty set is a vote for "none of the labels".

    As for single labels (:func:`consensus`): a label exactly half of the voters chose is a tie (reported);
    otherwise, with ``weight`` (user id → the annotator's weight), a label is in the set when its choosers
    weigh more than the others (the vote count breaks an exact tie of weights); without it, the majority.
    ``agreement`` is the (weighted) share of the voters on the decided side.
    """
    if not votes:
        return None
    voters = len(votes)
    weigh = weight or (lambda _user: 1.0)
    total = sum(weigh(user) for user in votes)
    chosen = Counter(label for labels in votes.values() for label in set(labels))
    tied = tuple(sorted(label for label, count in chosen.items() if 2 * count == voters))
    decided, agreement = [], {}
    for label, count in sorted(chosen.items()):
        behind = sum(weigh(user) for user, labels in votes.items() if label in labels)
        included = (behind, count) > (total - behind, voters - count)
        agreement[label] = (behind if included else total - behind) / total
        if included and label not in tied:
            decided.append(label)
    return LabelSetVerdict(record_id, None if tied else tuple(decided), voters, agreement, tied, tuple(decided))


def vote_sets(votes: Mapping[str, LabelValue]) -> dict[str, set[str]]:
    """{user id: the labels they ticked} of label-set votes (a plain label counts as the set of that one label)."""
    return {user: set(value) if isinstance(value, tuple) else {value} for user, value in votes.items()}


def _label_set_correction(record: PulledRecord, votes: Mapping[str, LabelValue],
                          weight: Callable[[str], float] | None) -> Correction:
    """:func:`consensus` of label-set votes (a plain label counts as the set of that one label)."""
    sets = vote_sets(votes)
    decided = label_set_consensus(record.record_id, sets, weight)
    assert decided is not None  # votes is not empty
    label = None if decided.labels is None else label_set(decided.labels)
    counts = Counter(label for labels in sets.values() for label in labels)
    agreement = sum(decided.agreement.values()) / len(decided.agreement) if decided.agreement else 1.0
    return Correction(record.record_id, label, record.reference, agreement, decided.num_annotators, dict(counts),
                      decided.tied_labels, label_agreement=dict(decided.agreement))


@dataclass(frozen=True)
class Prediction:
    """What the worker writes for one record: a suggestion and metadata values.

    A label set (multi-label question) has one score per label, in the same order."""

    record_id: str
    label: LabelValue
    score: float | tuple[float, ...]
    agent: str
    metadata: dict[str, MetadataValue]  # None: not written (see sanitise_metadata)


def sanitise_metadata(record_id: str, metadata: dict) -> dict:
    """Drop non-finite floats (Argilla rejects NaN with 422), logging each with the record and key."""
    clean = {}
    for key, value in metadata.items():
        if isinstance(value, float) and not math.isfinite(value):
            logger.warning("record %s: metadata %s=%r is not finite; not sent", record_id, key, value)
            continue
        if value is None:
            continue
        clean[key] = value
    return clean


def same_value(a, b) -> bool:
    """Equal as the server stores them: floats within rounding, a list equal to a tuple of the same items."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b
