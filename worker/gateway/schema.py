"""The Argilla dataset layout the worker reads and writes.

Annotators answer one label question; the worker writes a suggestion for it and the metadata
below, which the Argilla UI lets annotators sort and filter by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import argilla as rg

from worker.binding import prefixed

ORIGINAL_AGENT = "original"

SUBMITTED_RESPONSES = "submitted_responses"  # also what an incremental poll finds first reviews by


@dataclass(frozen=True)
class WorkerMetadata:
    """One metadata property the worker writes: the one declaration from which the dataset's properties,
    the guidelines, the push payload, the published columns and the dataset card are derived.

    ``from_score``: the :class:`~worker.scoring.engine.RecordScore` attribute the value is read from when
    a record is scored (None: written elsewhere); ``published``: a float32 column of the published dataset;
    ``task``: the questions it exists for (``multi``: only datasets bound to a multi-label question get it,
    ``rating``: only those bound to a rating question); ``written_by``: the job whose values it holds — the
    dataset gets a job's properties together, in this order, when the job first writes one of them.
    """

    name: str
    kind: Literal["float", "integer", "terms"]
    meaning: str
    from_score: str | None = None
    published: bool = False
    task: Literal["any", "multi", "rating"] = "any"
    written_by: Literal["score", "original", "oof", "cold-start", "copies", "ingest", "test-set"] = "score"

    def applies(self, multi_label: bool, rating: bool = False) -> bool:
        return self.task == "any" or (self.task == "multi" and multi_label) or (self.task == "rating" and rating)


WORKER_METADATA: tuple[WorkerMetadata, ...] = (
    WorkerMetadata("loss", "float", "how implausible the model finds the label under review (−log p): high = "
                   "probably wrong.", from_score="loss", published=True),
    WorkerMetadata("expected_loss", "float", "the same, averaged over MC-dropout samples: a steadier label-error "
                   "score.", from_score="expected_loss", published=True),
    WorkerMetadata("original_loss", "float", "the loss of the record's original label: stays comparable after "
                   "review.", published=True),
    WorkerMetadata("bald", "float", "how much the MC-dropout samples disagree: high = the model is unsure "
                   "(annotate these first).", from_score="bald", published=True),
    WorkerMetadata("entropy", "float", "total uncertainty of the model's answer.", from_score="entropy",
                   published=True),
    WorkerMetadata("bald_power", "float", "a diverse batch to annotate: sort descending and take the top k — "
                   "records drawn with probability ∝ BALD (stochastic power sampling), redrawn by each new model."),
    WorkerMetadata("margin", "float", "gap between the model's two most likely labels: small = it hesitates.",
                   from_score="margin", published=True),
    WorkerMetadata("confidence", "float", "the model's probability of its own predicted label (read at the "
                   "temperature training fitted, where one was kept: a 0.8 is right about 80 % of the time).",
                   from_score="score", published=True),
    WorkerMetadata("area_under_margin", "float", "after `score --oof`: how easily the fold models that trained on "
                   "the record fitted its label (mean logit margin); low or negative = they had to force it.",
                   written_by="oof"),
    WorkerMetadata("label_issue", "float", "after `score --oof`: the worker's label-error score, 1 − √(held-out "
                   "probability of the label × σ(area_under_margin)); sort descending to fix the worst first.",
                   published=True, written_by="oof"),
    WorkerMetadata("needs_another_label", "float", "how much one more annotator's label would help (ties and "
                   "split votes first, then records the model is unsure of); sort descending to plan a "
                   "second-opinion pass."),
    WorkerMetadata("cold_start_rank", "float", "before any label exists: annotate in this order (1 first, sort "
                   "ascending).", written_by="cold-start"),
    WorkerMetadata("outlier_score", "float", "after `argilla-worker cold-start`: how unlike the rest of the records "
                   "the text is (mean distance to its nearest neighbours); sort descending to find boilerplate, "
                   "another language or scraping debris.", written_by="cold-start"),
    WorkerMetadata("copies", "integer", "after `argilla-worker copies`: how many other records carry the same text "
                   "(letter case and spacing aside) or nearly (a word or a number changed, a line added); 0 or none: "
                   "no copy.", written_by="copies"),
    WorkerMetadata("copy_group", "integer", "after `argilla-worker copies`: one number per text that has copies, the "
                   "texts whose copies carry different labels first; sort by it, ascending, to see each text's "
                   "records side by side.", written_by="copies"),
    WorkerMetadata("copies_disagree", "integer", "after `argilla-worker copies`: how many of the record's copies carry "
                   "another label than its own (consensus, else its original label); filter ≥ 1 to settle each "
                   "text once.", written_by="copies"),
    WorkerMetadata("test_set_rank", "integer", "after `argilla-worker test-set`: records drawn at random from "
                   "those nobody had reviewed; review them (filter 1 and up, in this order) and the model is measured "
                   "on them, never trained on them — an honest figure, unlike the records picked for review.",
                   written_by="test-set"),
    WorkerMetadata("mc_samples", "integer", "MC-dropout samples the record got: fewer when its uncertainty was "
                   "known early (adaptive).", from_score="mc_samples"),
    WorkerMetadata(SUBMITTED_RESPONSES, "integer", "submitted responses the values were computed with (0: nobody "
                   "had reviewed the record)."),
    WorkerMetadata("original_label", "terms", "the label the record came with, before any review.",
                   written_by="original"),
    WorkerMetadata("original_agent", "terms", "who wrote original_label (ingest's 'original', another model, an "
                   "LLM labeller …).", written_by="original"),
    WorkerMetadata("original_score", "float", "the score original_agent gave original_label (its confidence), "
                   "kept when the worker's suggestion replaced theirs.", written_by="original"),
    WorkerMetadata("original_scores", "terms", "multi-label: the score original_agent gave each label of "
                   "original_label, as label=score, kept when the worker's suggestion replaced theirs.",
                   task="multi", written_by="original"),
    WorkerMetadata("predicted_label", "terms", "the label the current model predicts.", from_score="predicted_label"),
    WorkerMetadata("model_version", "terms", "the model version that computed these values."),
    WorkerMetadata("disagreement", "terms", "'yes' when the model predicts another label than the one under "
                   "review.", from_score="disagreement"),
    WorkerMetadata("split", "terms", "the split the record came from (train / test …), kept when publishing.",
                   written_by="ingest"),
    WorkerMetadata("reference_label", "terms", "the label under review: the annotators' consensus once reviewed, "
                   "else the original label.", from_score="reference_label"),
    WorkerMetadata("labels_to_add", "terms", "multi-label: labels the model finds missing from the label set under "
                   "review (filter by one to find records where it is probably missing).", from_score="to_add",
                   task="multi"),
    WorkerMetadata("labels_to_remove", "terms", "multi-label: labels of the set under review the model finds wrong.",
                   from_score="to_remove", task="multi"),
    WorkerMetadata("label_changes", "integer", "multi-label: how many labels the model would add or remove (0: it "
                   "agrees with the whole set).", from_score="label_changes", task="multi"),
    WorkerMetadata("bald_mean", "float", "multi-label: BALD averaged over the labels (`bald` is the most doubtful "
                   "label's: one doubtful label is enough to review a record).", from_score="bald_mean",
                   task="multi"),
    WorkerMetadata("rating_error", "float", "rating question: how far, in rating points, the model expects the "
                   "rating under review to be off (Σ p(r)·|r − rating|): high = probably wrong by a lot — a 1 that "
                   "should be a 5 comes before a 4 that should be a 5, which `loss` ranks alike.", published=True,
                   task="rating"),
    WorkerMetadata("expected_rating", "float", "rating question: the rating the model expects (Σ p(r)·r over its "
                   "MC-dropout mean); filter a range to review, e.g. the records it rates low.", published=True,
                   task="rating"),
)
# name -> Argilla metadata type of every property the worker writes (a user's property of the same
# name and another type is a binding error)
WORKER_METADATA_TYPES = {spec.name: spec.kind for spec in WORKER_METADATA}
FLOAT_METADATA = tuple(spec.name for spec in WORKER_METADATA if spec.kind == "float")  # the numeric sort keys
PUBLISHED_SCORES = tuple(spec for spec in WORKER_METADATA if spec.published)  # float32 columns, of some question
SCORED_METADATA = tuple(spec for spec in WORKER_METADATA if spec.from_score)  # read from a RecordScore
# what a model said of a record (a score or out-of-fold run's values): taken off a test record nobody has reviewed
MODEL_ANSWER_METADATA = tuple(spec.name for spec in WORKER_METADATA if spec.written_by in ("score", "oof"))

GUIDELINES_START = "<!-- argilla-worker guidelines: start (updated by the worker; edit outside these markers) -->"
GUIDELINES_END = "<!-- argilla-worker guidelines: end -->"
GUIDELINES_TITLE = "# Reviewing labels with the model in the loop"


def published_scores(multi_label: bool = False, rating: bool = False) -> tuple[WorkerMetadata, ...]:
    """The worker's values published as float32 columns for a single- or a multi-label or a rating question."""
    return tuple(spec for spec in PUBLISHED_SCORES if spec.applies(multi_label, rating))


def worker_metadata(multi_label: bool = False, rating: bool = False) -> tuple[WorkerMetadata, ...]:
    """The properties the worker writes for a single- or a multi-label question, or a rating question."""
    return tuple(spec for spec in WORKER_METADATA if spec.applies(multi_label, rating))


@dataclass(frozen=True)
class GuidelinesScope:
    """One question of a dataset with several: the worker's guidelines section names it, and the worker's
    metadata carries ``prefix`` (see :mod:`worker.binding`). Each question's worker keeps its own section."""

    question: str
    prefix: str

    def name(self, plain: str) -> str:
        return prefixed(plain, self.prefix)


def _markers(scope: GuidelinesScope | None) -> tuple[str, str]:
    if scope is None:
        return GUIDELINES_START, GUIDELINES_END
    start = GUIDELINES_START.replace("guidelines:", f"guidelines for question {scope.question}:")
    return start, GUIDELINES_END.replace("guidelines:", f"guidelines for question {scope.question}:")


def guidelines(multi_label: bool = False, scope: GuidelinesScope | None = None, rating: bool = False) -> str:
    """The worker's guidelines for a dataset bound to a single- or a multi-label question, or a rating question
    (``scope``: one question of several; the text names it and its metadata names). They open with where to start
    — the sort key for records that came with a label and the one for records that came without (a cold start has
    no ``loss`` to sort by) — then the steps for each record, then each property in one line."""
    name = scope.name if scope is not None else str
    title = GUIDELINES_TITLE if scope is None else f"{GUIDELINES_TITLE}: question `{scope.question}`"
    metadata = "\n".join(f"- `{name(spec.name)}`: {spec.meaning}" for spec in worker_metadata(multi_label, rating))
    labelled, steps = (_multi_label_steps(name) if multi_label else _rating_steps(name) if rating
                       else _single_label_steps(name))
    unlabelled = _unlabelled_start(name, "labels" if multi_label else "a rating" if rating else "a label",
                                   "predicted set" if multi_label else "prediction")
    return (f"{title}\n\nWhere to start:\n\n{labelled}\n{unlabelled}\n\nThen, record by record:\n\n{steps}"
            f"\n\nMetadata properties:\n\n{metadata}")


def _unlabelled_start(name, label: str, prediction: str) -> str:
    """Records that came without a label (a cold start) have no `loss` to sort by: where to start with them."""
    return f"""\
- **Records that came without {label}** show the model's {prediction} instead (agent = model version) and have no
  `{name("loss")}`: sort by `{name("bald_power")}`, **descending** — a varied batch of what the model is least sure
  of, redrawn by each new model. Before the first model, after `argilla-worker cold-start`: by
  `{name("cold_start_rank")}`, **ascending**."""


_CAME_WITH = "(ingested, another model's or labeller's, a metadata column of yours)"


def _single_label_steps(name) -> tuple[str, str]:
    """Where to start on labelled records, and the steps for each record, for a single-label question."""
    start = f"""\
- **Records that came with a label** {_CAME_WITH}:
  sort by the metadata property `{name("loss")}`, **descending** (the first click sorts
  ascending): the labels the model believes least come first."""
    steps = """\
1. The pre-selected label is the one under review; its score is how much the model believes it
   (a low score: probably wrong). If it is wrong, pick the right one.
2. Submit — the worker retrains on your answers and refreshes the order."""
    return start, steps


def _rating_steps(name) -> tuple[str, str]:
    """Where to start on rated records, and the steps for each record, for a rating question."""
    start = f"""\
- **Records that came with a rating** {_CAME_WITH}:
  sort by the metadata property `{name("loss")}`, **descending** (the first click sorts
  ascending): the ratings the model doubts most come first. To fix the ratings furthest off first (a 1 that
  should be a 5 before a 4 that should be a 5), sort by `{name("rating_error")}`, descending, instead."""
    steps = f"""\
1. The pre-selected rating is the one under review; `{name("expected_rating")}` is the rating the model expects.
   If it is wrong, pick the right one.
2. Submit — the worker retrains on your answers and refreshes the order."""
    return start, steps


def _multi_label_steps(name) -> tuple[str, str]:
    """Where to start on records with label sets, and the steps for each record, for a multi-label question."""
    start = f"""\
- **Records that came with labels** {_CAME_WITH}:
  sort by the metadata property `{name("loss")}`, **descending** (the first click sorts
  ascending): the label sets the model finds least plausible come first."""
    steps = f"""\
1. The pre-selected labels are the set under review; each label's score is how much the model believes it
   belongs. Filter by `{name("labels_to_add")}` / `{name("labels_to_remove")}` to review one label at a time.
2. Tick every label that applies, untick the others, and submit — the worker retrains on your answers."""
    return start, steps


GUIDELINES = guidelines()  # the single-label text (the default)


def guidelines_section(multi_label: bool = False, scope: GuidelinesScope | None = None, rating: bool = False) -> str:
    """The worker's part of a dataset's guidelines, between markers it can find and update."""
    start, end = _markers(scope)
    return f"{start}\n{guidelines(multi_label, scope, rating)}\n{end}"


def merged_guidelines(existing: str | None, multi_label: bool = False, scope: GuidelinesScope | None = None,
                      rating: bool = False) -> str:
    """``existing`` guidelines with the worker's section appended once, or updated in place (another
    question's section, and everything else, stay as they are)."""
    existing = existing or ""
    ours = guidelines_section(multi_label, scope, rating)
    start, end = _markers(scope)
    if start in existing and end in existing:
        before, _, rest = existing.partition(start)
        _, _, after = rest.partition(end)
        return f"{before}{ours}{after}"
    if scope is None and existing.lstrip().startswith(GUIDELINES_TITLE) and "argilla-worker guidelines" not in existing:
        return ours  # written whole by a worker before the markers existed
    return f"{existing.rstrip()}\n\n{ours}" if existing.strip() else ours


def dataset_settings(labels: Sequence[str], *, field: str, question: str, multi_label: bool = False) -> rg.Settings:
    """Settings for a new text-classification dataset (a single-label question, or a multi-label one) and the
    worker's guidelines.

    ``field`` and ``question`` are the names the dataset binding asks for (see ``ArgillaGateway.ensure_dataset``).
    """
    question_class = rg.MultiLabelQuestion if multi_label else rg.LabelQuestion
    return rg.Settings(
        guidelines=guidelines_section(multi_label),
        fields=[rg.TextField(name=field, title=field.replace("_", " ").capitalize(), use_markdown=False)],
        questions=[question_class(name=question, title=question.replace("_", " ").capitalize(), labels=list(labels))],
        metadata=[],  # the worker's properties are created on their first write (ArgillaGateway)
        allow_extra_metadata=False,
    )
