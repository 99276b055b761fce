"""Every annotator's vote: annotator weights from agreement, a weighted consensus with a confidence, and which
records another label would help most — in the spirit of CROWDLAB (Goh et al. 2022) and ActiveLab (Goh &
Mueller 2023), estimated in one streamed pass.

**Estimate** (:class:`CrowdEstimator`, one pass over the annotated records, memory O(annotators + K)):

* ``a_j`` — annotator *j*'s agreement with the others: over records with ≥ 2 submitted votes, the share of
  (j, other annotator) pairs that gave the same label;
* ``L`` — the chance an annotator gives the majority label: the mean majority share of those records;
* ``e₀`` — the error of always answering the most common majority label (the "no skill" error);
* annotator weight ``w_j = max(ε, 1 − (1 − a_j) / e₀)`` (1 − its error relative to no skill; an annotator
  who never overlaps gets the mean agreement);
* model weight ``w_M = max(ε, 1 − e_M / e₀) · √(mean votes per record)``, ``e_M`` the model's error against
  the majority (its ``predicted_label`` metadata); 1 when it cannot be measured;
* ``T`` — the temperature at which the model's probabilities best explain the votes (the soft cross-entropy of
  each voted record's votes under p^(1/T), normalised; candidates 0.25 … 16, fitted with at least
  ``MIN_TEMPERATURE_RECORDS`` voted records carrying the model's view, else 1), as ActiveLab fits one: a model
  that says 0.99 where the votes agree 3 times in 4 enters every posterior below softened to ≈ 0.75;
* annotator quality (for the team lead; never written to the dataset): ``(1 − λ)·a_j + λ·m_j`` with
  ``m_j`` the agreement with the model and ``λ = w_M / (w_M + w̄)``, ``w̄`` the mean annotator weight.

**Consensus** of one record (:func:`weighted_consensus`): a tie of the raw votes stays a tie (unless
``consensus.ties = "resolve"``: then the label with the largest posterior below wins) and a single vote is
the label, as with majority vote; otherwise the label with the largest sum of its voters' weights wins, so
two unreliable annotators can be outvoted by one reliable one. The model never overrules the votes (it was
trained on these labels; letting it decide would feed back its own mistakes) — it only informs the confidence,
and with ``ties = "resolve"`` breaks ties together with the annotators' weights:
``post(k) = (w_M·p_T(k) + Σ_j w_j·[L if y_j = k else (1 − L)/(K − 1)]) / (w_M + Σ_j w_j)``, p_T the model's
probabilities at the fitted temperature.
A model whose weight could not be measured yet (no estimate, or right after the first training, when every view is
an echo) decides a tie with the floor weight: it breaks only ties the annotators' weights leave exactly equal
(:meth:`CrowdModel.deciding`; measured in ``benchmarks/ties_loop.py``).
``agreement`` is the weighted share of the votes behind the label (the raw share when all weights are equal).

**Echoes** (:func:`echoes_training`): the model's view is read from what the worker stored on the record, and the
full rescore after a promotion stores the new model's answer on the records it trained on, where it repeats its
training label. Such a view is no evidence: given ``taught`` (which records each model version was taught), it is
left out of the estimate (``w_M``, ``T``, ``m_j``) and of every consensus, so it never tips a tie it decided before.
Measured in a replayed loop (``benchmarks/ties_loop.py``): counted, it decided ties worse than the annotators'
weights alone (0.59–0.65 right vs 0.71–0.79); left out, the two match.

**Label sets** (a multi-label question): every label some voter ticked is one present / absent decision of each
voter of the record; agreement, ``L``, the no-skill error and the model's error are counted over those decisions
(the model's answer: whether the label is in its stored ``predicted_label`` set), so the same weights serve the
per-label consensus (:func:`~worker.records.label_set_consensus`) and :func:`needs_another_label_set` (each label
scored as a two-label question; the record's most doubtful label counts). Each label any voter ticked gets the
two-way posterior above, the model's evidence being its stored decision on the label (in the worker's suggested
set or not, believed like an annotator: ``L`` / ``1 − L``); the set's ``confidence`` is the product of the
posteriors of the decided sides (a tied label: its larger one), and ``consensus.ties = "resolve"`` decides a tied
label by its posterior as for single labels.

**needs_another_label** (:func:`needs_another_label`, higher = a further label would help more): one minus
ActiveLab's score, ``(post(ŷ)·(Σ_j w_j + w_M) + w̄/K) / (Σ_j w_j + w_M + w̄)``; a record nobody labelled has
``post = max p`` and no annotator weight, so labelled and unlabelled records rank on one scale. A tie kept
undecided (``consensus.ties = "keep"``) has no label whatever the weights or the model say (they may not decide
it), so its ``post(ŷ)`` is 1 / (the number of tied labels) and the model is left out: ties come first, however sure
the model is.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field, replace

from worker.constants import PROBABILITY_FLOOR
from worker.files import KeyedJsonFile
from worker.records import (
    SUBMITTED,
    Correction,
    PulledRecord,
    ResponseState,
    consensus,
    label_set,
    label_set_consensus,
    single_votes,
    submitted_votes,
    vote_sets,
)

# the model's temperature candidates (0.25 … 16, steps of √2): the one that best explains the votes is fitted
TEMPERATURES = tuple(2 ** (step / 2) for step in range(-4, 9))
MIN_TEMPERATURE_RECORDS = 20  # voted records carrying the model's view needed to fit its temperature (else 1)
WEIGHT_FLOOR = 1e-3  # the smallest weight an annotator or the model gets (never exactly 0)
PRIOR_LIKELIHOOD = 0.9  # L before any record has two votes: an annotator gives the right label 9 times in 10
PRESENT, ABSENT = "present", "absent"  # one label's decision in a label set

TaughtLookup = Callable[[str], AbstractSet[str] | None]
"""A model version → the ids of the records it was taught (:meth:`~worker.registry.ModelRegistry.taught`; None:
unknown)."""


def echoes_training(record: PulledRecord, version: object, taught: TaughtLookup | None) -> bool:
    """Whether model ``version``'s answer on ``record`` echoes a label it was taught there: the full rescore after a
    promotion writes the new model's view on the very records it trained on, and there it repeats what it learnt —
    the label an earlier consensus (a tie decided once) gave the record —, not evidence of its own. Such a view has no
    say in the record's consensus and is not counted in the model's weight, temperature or agreement with the
    annotators (CROWDLAB's estimates assume held-out predictions). Unknown (no lookup, no version, a version whose
    taught records are not known: an out-of-fold run's ``v0003-oof5``): not an echo. O(1)."""
    if taught is None or not isinstance(version, str) or not version:
        return False
    ids = taught(version)
    return ids is not None and record.record_id in ids


def scaled(model: Sequence[float], temperature: float) -> list[float]:
    """The model's probabilities [K] at ``temperature`` (a softmax of log p / T): T > 1 softens an overconfident
    model, T < 1 sharpens a timid one."""
    if temperature == 1:
        return list(model)
    logits = [math.log(max(p, PROBABILITY_FLOOR)) / temperature for p in model]
    top = max(logits)
    exps = [math.exp(value - top) for value in logits]
    total = sum(exps)
    return [value / total for value in exps]


def model_distribution(record: PulledRecord, labels: Sequence[str], taught: TaughtLookup | None = None
                       ) -> list[float] | None:
    """The model's probabilities [K] as the worker last stored them on the record (``predicted_label`` and
    its ``confidence``, the rest spread evenly), or None when the record carries no such values or they echo what
    the model that wrote them was taught on it (:func:`echoes_training`)."""
    predicted, confidence = record.metadata.get("predicted_label"), record.metadata.get("confidence")
    if predicted not in labels or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
        return None
    if echoes_training(record, record.metadata.get("model_version"), taught):
        return None
    rest = (1.0 - float(confidence)) / (len(labels) - 1)
    return [float(confidence) if label == predicted else rest for label in labels]


@dataclass(frozen=True)
class AnnotatorStats:
    """One annotator as the estimate saw them (team-lead view only)."""

    labels: int  # submitted labels
    agreement_with_annotators: float | None  # None: never labelled a record someone else labelled
    agreement_with_model: float | None  # None: none of their records carried the model's prediction
    weight: float
    quality: float | None
    username: str | None = None  # when the worker's API key may list users (owner)


@dataclass(frozen=True)
class CrowdModel:
    """The annotator and model weights one estimate produced (see the module docstring)."""

    labels: tuple[str, ...]
    annotator_weights: dict[str, float] = field(default_factory=dict)
    default_weight: float = 1.0  # an annotator the estimate did not see
    model_weight: float = 1.0
    likelihood: float = PRIOR_LIKELIHOOD
    annotators: dict[str, AnnotatorStats] = field(default_factory=dict)
    overlapping_records: int = 0  # records (label sets: label decisions) with ≥ 2 votes the estimate used
    resolve_ties: bool = False  # consensus.ties resolves: the posterior decides a tie of the votes
    model_temperature: float = 1.0  # the model's probabilities are read at this temperature (fitted to the votes)
    model_blind: bool = False  # the model's view stored on a record has no say in its consensus (see blind())
    taught: TaughtLookup | None = field(default=None, compare=False, repr=False)  # views that are echoes: none count
    model_records: int | None = None  # decided records (label sets: decisions) w_M was measured on; None: not kept

    @classmethod
    def uniform(cls, labels: Sequence[str]) -> CrowdModel:
        """Every annotator weighs the same: the consensus is the majority vote."""
        return cls(tuple(labels))

    def weight(self, user_id: str) -> float:
        return self.annotator_weights.get(user_id, self.default_weight)

    def blind(self) -> CrowdModel:
        """The same weights, the model's view left out of every consensus: how test-set records are labelled. A
        tie there is decided by the annotators alone — a model measured on labels its own view decided would be
        measured against itself."""
        return replace(self, model_blind=True)

    @property
    def model_measured(self) -> bool:
        """Whether ``model_weight`` was measured: on at least one decided record carrying the view of a model not
        taught it (see :func:`echoes_training`). Not before the first estimate, nor right after the first training
        (every view then an echo)."""
        return bool(self.model_records)

    def deciding(self) -> CrowdModel:
        """The weights a tie is decided with: an unmeasured model weight (1, ActiveLab's default, which still
        ranks ``needs_another_label``) at the floor — a model of unknown skill breaks only ties the annotators'
        weights leave exactly equal; a measured one as it is."""
        return self if self.model_measured else replace(self, model_weight=WEIGHT_FLOOR)

    @property
    def mean_annotator_weight(self) -> float:
        weights = list(self.annotator_weights.values())
        return sum(weights) / len(weights) if weights else self.default_weight

    def summary(self) -> dict:
        """What the team lead sees in ``status`` and ``/metrics`` (never written to the dataset)."""
        return {"model_weight": self.model_weight, "model_temperature": self.model_temperature,
                "model_records": self.model_records, "likelihood": self.likelihood,
                "overlapping_records": self.overlapping_records,
                "annotators": {user: asdict(stats) for user, stats in sorted(self.annotators.items())}}

    def to_json(self) -> dict:
        """The estimate (``resolve_ties``, ``model_blind`` and ``taught`` are applied on use, not stored)."""
        stored = {**asdict(replace(self, taught=None)), "resolve_ties": False, "model_blind": False}
        del stored["taught"]
        return stored

    @classmethod
    def from_json(cls, value: dict) -> CrowdModel:
        return cls(tuple(value["labels"]), dict(value["annotator_weights"]), value["default_weight"],
                   value["model_weight"], value["likelihood"],
                   {user: AnnotatorStats(**stats) for user, stats in value.get("annotators", {}).items()},
                   value.get("overlapping_records", 0), model_temperature=value.get("model_temperature", 1.0),
                   model_records=value.get("model_records"))


@dataclass
class _Tally:
    labels: int = 0
    other_pairs: int = 0
    other_agreements: int = 0
    model_pairs: int = 0
    model_agreements: int = 0


class CrowdEstimator:
    """Accumulates what :class:`CrowdModel` needs from one pass over the annotated records.

    ``add`` each record (O(votes) each); ``estimate`` at the end. Memory O(annotators + K) whatever N.
    ``taught``: which records each model version was taught — its stored view there is an echo, left out of the
    model's weight, temperature and agreement (:func:`echoes_training`); None: every view counts.
    """

    def __init__(self, labels: Sequence[str], taught: TaughtLookup | None = None):
        self.labels = tuple(labels)
        self._taught = taught
        self._tallies: dict[str, _Tally] = {}
        self._overlapping = 0
        self._majority_share = 0.0
        self._majority_counts: Counter[str] = Counter()
        self._model_checked = 0
        self._model_errors = 0
        self._annotated = 0
        self._votes = 0
        self._temperature_losses = [0.0] * len(TEMPERATURES)  # Σ over records of the votes' mean −log p_T(vote)
        self._temperature_records = 0

    def add(self, record: PulledRecord) -> None:
        answers = submitted_votes(record)
        if not answers:
            return
        self._annotated += 1
        self._votes += len(answers)
        for user in answers:
            self._tallies.setdefault(user, _Tally()).labels += 1
        votes = single_votes(answers)
        if votes is not None:
            model = model_distribution(record, self.labels, self._taught)
            self._add_decision(votes, self.labels[max(range(len(model)), key=model.__getitem__)] if model else None)
            if model is not None:
                self._add_temperature_evidence(model, votes)
            return
        # label sets: each label some voter ticked is one present / absent decision of every voter
        sets = vote_sets(answers)
        predicted = record.metadata.get("predicted_label")
        model_set = set(predicted) if isinstance(predicted, list) and not echoes_training(
            record, record.metadata.get("model_version"), self._taught) else None
        for label in sorted(set().union(*sets.values())):
            decisions = {user: PRESENT if label in chosen else ABSENT for user, chosen in sets.items()}
            self._add_decision(decisions, None if model_set is None else PRESENT if label in model_set else ABSENT)

    def _add_temperature_evidence(self, model: Sequence[float], votes: Mapping[str, str]) -> None:
        """How well the model's probabilities at each candidate temperature explain the record's votes (the
        soft cross-entropy ActiveLab fits its temperature by): the mean over the votes of
        log Σ_k p_k^(1/T) − log p_vote / T. O(K + votes × candidates) — the stored view has two distinct
        probabilities (the predicted label's, the rest's), so the normaliser costs O(distinct) per candidate."""
        logs = [math.log(max(probability, PROBABILITY_FLOOR)) for probability in model]
        voted = [logs[self.labels.index(vote)] for vote in votes.values() if vote in self.labels]
        if not voted:
            return
        self._temperature_records += 1
        distinct = Counter(logs)  # log p → how many labels have it
        top = max(distinct)
        for position, temperature in enumerate(TEMPERATURES):
            log_normaliser = top / temperature + math.log(sum(
                count * math.exp((value - top) / temperature) for value, count in distinct.items()))
            self._temperature_losses[position] += sum(log_normaliser - value / temperature
                                                      for value in voted) / len(voted)

    def _fitted_temperature(self) -> float:
        if self._temperature_records < MIN_TEMPERATURE_RECORDS:
            return 1.0
        return TEMPERATURES[min(range(len(TEMPERATURES)), key=self._temperature_losses.__getitem__)]

    def _add_decision(self, votes: Mapping[str, str], predicted: str | None) -> None:
        """One decision the voters made (a record's label, or one label's presence in label sets): agreement
        with the others and with the model's ``predicted`` answer (None: unknown)."""
        counts = Counter(votes.values())
        for user, label in votes.items():
            tally = self._tallies[user]
            if len(votes) > 1:
                tally.other_pairs += len(votes) - 1
                tally.other_agreements += counts[label] - 1
            if predicted is not None:
                tally.model_pairs += 1
                tally.model_agreements += label == predicted
        if len(votes) < 2:
            return
        self._overlapping += 1
        ranked = counts.most_common()
        self._majority_share += ranked[0][1] / len(votes)
        if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:  # a tie has no majority label
            self._majority_counts[ranked[0][0]] += 1
            if predicted is not None:
                self._model_checked += 1
                self._model_errors += predicted != ranked[0][0]

    def estimate(self) -> CrowdModel:
        """The weights (see the module docstring); uniform ones while no record has two votes."""
        if not self._tallies:
            return CrowdModel.uniform(self.labels)
        likelihood = self._majority_share / self._overlapping if self._overlapping else PRIOR_LIKELIHOOD
        decided = sum(self._majority_counts.values())
        no_skill_error = (1 - max(self._majority_counts.values()) / decided if decided
                          else 1 - 1 / len(self.labels))
        no_skill_error = max(no_skill_error, WEIGHT_FLOOR)
        agreements = {user: t.other_agreements / t.other_pairs for user, t in self._tallies.items() if t.other_pairs}
        fallback = sum(agreements.values()) / len(agreements) if agreements else likelihood
        weights = {user: _skill(1 - agreements.get(user, fallback), no_skill_error) for user in self._tallies}
        default_weight = sum(weights.values()) / len(weights)
        model_weight = 1.0
        if self._model_checked:
            model_weight = (_skill(self._model_errors / self._model_checked, no_skill_error)
                            * math.sqrt(self._votes / self._annotated))
        share = model_weight / (model_weight + default_weight)
        annotators = {}
        for user, tally in self._tallies.items():
            with_others = agreements.get(user)
            with_model = tally.model_agreements / tally.model_pairs if tally.model_pairs else None
            annotators[user] = AnnotatorStats(tally.labels, with_others, with_model, weights[user],
                                              _quality(with_others, with_model, share))
        return CrowdModel(self.labels, weights, default_weight, model_weight, likelihood, annotators,
                          self._overlapping, model_temperature=self._fitted_temperature(),
                          model_records=self._model_checked)


def _skill(error: float, no_skill_error: float) -> float:
    return max(WEIGHT_FLOOR, 1 - error / no_skill_error)


def _quality(with_others: float | None, with_model: float | None, model_share: float) -> float | None:
    if with_others is None or with_model is None:
        return with_others if with_model is None else with_model
    return (1 - model_share) * with_others + model_share * with_model


def weighted_consensus(record: PulledRecord, crowd: CrowdModel, model: Sequence[float] | None = None
                       ) -> Correction | None:
    """The record's consensus under ``crowd``'s weights with its confidence (see the module docstring); None
    without a vote. On a tie, ``confidence`` is the largest posterior among the tied labels.

    ``model``: the model's probabilities [K] in ``crowd.labels`` order (None: annotators only).
    """
    decided = consensus(record, crowd.weight)
    votes = single_votes(submitted_votes(record))
    if decided is None:
        return None
    if votes is None:
        return _label_set_verdict(record, decided, crowd)
    posterior = _posterior(votes, crowd if decided.label is not None else crowd.deciding(), model)
    if isinstance(decided.label, str):  # a label outside the question (named by the caller) has no posterior: 0
        return replace(decided, confidence=posterior.get(decided.label, 0.0))
    best = max(posterior.get(label, 0.0) for label in decided.tied_labels)
    winners = [label for label in decided.tied_labels if posterior.get(label, 0.0) == best]
    if crowd.resolve_ties and len(winners) == 1:
        behind = sum(crowd.weight(user) for user, vote in votes.items() if vote == winners[0])
        total = sum(crowd.weight(user) for user in votes)
        return replace(decided, label=winners[0], tied_labels=(), agreement=behind / total, confidence=best)
    return replace(decided, confidence=best)


def _label_set_verdict(record: PulledRecord, decided: Correction, crowd: CrowdModel) -> Correction:
    """``decided`` (the per-label weighted consensus of label sets) with its confidence, and with
    ``crowd.resolve_ties`` its tied labels decided by their posteriors (module docstring). O(labels × voters)."""
    sets = vote_sets(submitted_votes(record))
    verdict_ = label_set_consensus(record.record_id, sets, crowd.weight)
    assert verdict_ is not None  # decided came from these votes
    binary = replace(crowd, labels=(ABSENT, PRESENT), resolve_ties=False)
    predicted = None if crowd.model_blind else _model_label_set(record, crowd.taught)
    present, tied, agreement = set(verdict_.present), [], dict(verdict_.agreement)
    total = sum(crowd.weight(user) for user in sets)
    confidence = 1.0
    for label in sorted(set().union(*sets.values())):
        votes = {user: PRESENT if label in chosen else ABSENT for user, chosen in sets.items()}
        model = None if predicted is None else _decision_evidence(label in predicted, crowd.likelihood)
        tied_label = label in verdict_.tied_labels
        posterior = _posterior(votes, binary.deciding() if tied_label else binary, model)
        if tied_label:
            if not crowd.resolve_ties or posterior[PRESENT] == posterior[ABSENT]:
                tied.append(label)
                confidence *= max(posterior.values())
                continue
            side = PRESENT if posterior[PRESENT] > posterior[ABSENT] else ABSENT
            behind = sum(crowd.weight(user) for user, vote in votes.items() if vote == side)
            agreement[label] = behind / total
            if side == PRESENT:
                present.add(label)
        confidence *= posterior[PRESENT if label in present else ABSENT]
    return replace(decided, label=None if tied else label_set(present), tied_labels=tuple(tied),
                   label_agreement=agreement, agreement=sum(agreement.values()) / len(agreement) if agreement
                   else decided.agreement, confidence=confidence)


def _model_label_set(record: PulledRecord, taught: TaughtLookup | None) -> set[str] | None:
    """The label set the worker's model suggested for the record (its suggestion, written by the model version
    stored beside it), or None when the record carries no such suggestion or it echoes what that version was taught
    (:func:`echoes_training`)."""
    suggestion = record.suggestion
    if (suggestion is None or not isinstance(suggestion.value, tuple)
            or suggestion.agent != record.metadata.get("model_version")
            or echoes_training(record, suggestion.agent, taught)):
        return None
    return set(suggestion.value)


def _decision_evidence(in_set: bool, likelihood: float) -> list[float]:
    """The model's [p(absent), p(present)] of one label from its stored decision, believed like an annotator's."""
    return [1 - likelihood, likelihood] if in_set else [likelihood, 1 - likelihood]


TIES_HINT = ("; consensus.ties = 'keep': a tie waits for a further vote, and a completed record leaves the annotators' "
             "queue — sort by needs_another_label, or set consensus.ties = 'resolve' to let their weights and the "
             "model's view decide")


def ties_note(setting: str, min_submitted: int) -> str:
    """How ties are handled (``consensus.ties = setting``) on a dataset whose task distribution completes a record at
    ``min_submitted`` submitted responses, in a line for ``config check``. A completed record leaves the annotators'
    queue, so a tie gets no further vote by itself; with two votes a record, every disagreement is one."""
    often = "; with 2 votes a record every disagreement is one" if min_submitted == 2 else ""
    if setting == "resolve":
        return ("a tie of the votes goes to the label the annotators' weights and the model's view favour (test-set "
                f"records: the annotators' alone; consensus.ties = 'resolve'){often}")
    return ("a tie of the votes gives no label: left out of training, publishing and the test-set measure until "
            f"someone adds a vote (consensus.ties = 'keep'; a completed record leaves the annotators' queue){often}")


def blind(crowd: CrowdModel | None) -> CrowdModel | None:
    """``crowd`` with the model's view left out (:meth:`CrowdModel.blind`); None (plain majority) stays None."""
    return crowd.blind() if crowd is not None else None


def verdict(record: PulledRecord, crowd: CrowdModel | None) -> Correction | None:
    """The record's consensus as every job sees it: weighed by ``crowd`` with the model's view stored on the
    record (:func:`model_distribution`), or the plain majority when ``crowd`` is None."""
    if crowd is None:
        return consensus(record)
    return weighted_consensus(record, crowd, None if crowd.model_blind
                              else model_distribution(record, crowd.labels, crowd.taught))


def _posterior(votes: Mapping[str, str], crowd: CrowdModel, model: Sequence[float] | None) -> dict[str, float]:
    """post(k) for every label k (see the module docstring)."""
    labels, likelihood = crowd.labels, crowd.likelihood
    other = (1 - likelihood) / (len(labels) - 1)
    mass = {label: 0.0 for label in labels}
    total = 0.0
    if model is not None:
        for label, probability in zip(labels, scaled(model, crowd.model_temperature), strict=True):
            mass[label] += crowd.model_weight * probability
        total += crowd.model_weight
    for user, vote in votes.items():
        weight = crowd.weight(user)
        total += weight
        for label in labels:
            mass[label] += weight * (likelihood if label == vote else other)
    return {label: value / total for label, value in mass.items()}


def needs_another_label(record: PulledRecord, crowd: CrowdModel, model: Sequence[float] | None) -> float:
    """How much another label would help this record, in [0, 1) (higher = sooner; module docstring): at most
    1 − 1/K while the posterior agrees with the voters' decision, above it where the model's evidence outweighs
    the voters behind the decided label (a lone unreliable vote against a sure model) — the first to check.

    ``model``: the model's probabilities [K] in ``crowd.labels`` order (None: annotators only).
    """
    labels, spread = crowd.labels, crowd.mean_annotator_weight
    votes = submitted_votes(record)
    if not votes:
        if model is None:
            return 1 - 1 / len(labels)
        sure = max(scaled(model, crowd.model_temperature))
        score = (crowd.model_weight * sure + spread / len(labels)) / (crowd.model_weight + spread)
        return 1 - score
    decided = weighted_consensus(record, crowd, model)
    assert decided is not None and decided.confidence is not None
    confidence = decided.confidence
    if decided.label is None and decided.tied_labels:  # a kept tie: no label until someone decides it, whatever
        model, confidence = None, 1 / len(decided.tied_labels)  # the weights or the model say (they may not)
    behind = sum(crowd.weight(user) for user in votes) + (crowd.model_weight if model is not None else 0.0)
    score = (confidence * behind + spread / len(labels)) / (behind + spread)
    return 1 - score


def needs_another_label_set(record: PulledRecord, crowd: CrowdModel, model: Mapping[str, float] | None) -> float:
    """:func:`needs_another_label` of a label set: each label of the question is a present / absent decision
    (the voters who ticked it vs the others, the model's probability of the label), scored as a two-label
    question with ``crowd``'s weights; the record's score is its most doubtful label's. In [0, 1): at most 1/2
    unless the model's evidence on some label outweighs the voters' decision on it.

    ``model``: the model's probability of each label (None: annotators only).
    """
    sets = vote_sets(submitted_votes(record))
    binary = replace(crowd, labels=(ABSENT, PRESENT))  # a label's kept tie: undecided, as for single labels
    worst = 0.0
    for label in (model or {}).keys() | set().union(*sets.values()):
        votes = {user: PRESENT if label in chosen else ABSENT for user, chosen in sets.items()}
        probability = (model or {}).get(label)
        view = replace(record, responses=tuple(
            ResponseState(user, vote, SUBMITTED) for user, vote in votes.items()))
        worst = max(worst, needs_another_label(view, binary, None if probability is None
                                               else [1.0 - probability, probability]))
    return worst


class CrowdStore:
    """The last estimate per dataset (``state_dir/crowd.json``): what score runs weigh votes with between
    trainings."""

    def __init__(self, path):
        self.file = KeyedJsonFile(path)

    def get(self, key: str, labels: Sequence[str]) -> CrowdModel:
        """The stored estimate for ``key`` when it was made for these labels, else uniform weights."""
        stored = self.file.get(key)
        if stored is None or tuple(stored.get("labels", ())) != tuple(labels):
            return CrowdModel.uniform(labels)
        return CrowdModel.from_json(stored)

    def latest(self, key: str) -> CrowdModel | None:
        """The stored estimate for ``key`` whatever its labels (the status shows it), or None."""
        stored = self.file.get(key)
        return CrowdModel.from_json(stored) if stored is not None else None

    def put(self, key: str, crowd: CrowdModel) -> None:
        self.file.put(key, crowd.to_json())
