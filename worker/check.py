"""``argilla-worker config check``: does the config fit the team's server, dataset, model and disks — found
before the first job, and without writing anything to the server (the worker's own directories are created when
missing, as by any job)."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from worker.binding import PRESERVED_LABEL, DatasetBinding, is_foreign
from worker.coldstart import RANK_PROPERTY
from worker.constants import DEFAULT_TEST_SET_SHARE, DEFAULT_TEST_SET_SIZE
from worker.errors import ConfigError, NoModelError, WorkerError
from worker.gateway.client import release_caveats
from worker.jobs import publication_problems, ranks_first_batch_itself, written_options
from worker.publish.sinks import check_sink
from worker.records import PulledRecord
from worker.registry import check_writable
from worker.scoring import check_head_fits, read_head
from worker.services import Services
from worker.test_set import shared_size
from worker.training.job import start_description, start_model
from worker.training.pooling import mean_pooled
from worker.training.trainer import check_model_source

logger = logging.getLogger(__name__)

REFERENCE_SAMPLE = 100  # the first records whose own labels `config check` reads (argilla.reference)


@dataclass
class ReferenceSample:
    """How the labels the first records carry read (``argilla.reference``), before any job relies on them."""

    read: int = 0  # records read
    carrying: int = 0  # of them, those that carry a label of the question
    respelled: Counter[tuple[str, str]] = field(default_factory=Counter)  # (as the team wrote it, the label) -> count
    unread: Counter[str] = field(default_factory=Counter)  # a name of theirs that is none of its labels -> records
    unread_records: int = 0  # records holding such a name (read as without a label)
    first_unread: str | None = None  # the first of them
    agents: Counter[str] = field(default_factory=Counter)  # other agents of the question's suggestions -> records
    by_agent: Counter[str] = field(default_factory=Counter)  # ``auto``: labels read from an agent's suggestion -> count


@dataclass(frozen=True)
class LengthSample:
    """How long the first records' texts are in the model's tokens, against ``training.max_length``: ``longer`` of
    ``read`` exceed it (``median`` and ``longest`` of all, in tokens); ``model_limit``: the most the model reads."""

    read: int
    longer: int
    median: int
    longest: int
    max_length: int
    model_limit: int | None


@dataclass
class ConfigCheck:
    """What the check found: the dataset as the worker binds it, its size, the model, and what stops a job
    (``problems``) or is still to do (``todo``)."""

    dataset: str
    binding: DatasetBinding
    records: int
    submitted: int
    server: str  # the argilla-server release
    model: str | None = None  # the current model's version, when it fits the question
    worker_metadata: int = 0  # the worker's metadata properties for the bound question
    metadata_to_come: dict[str, int] = field(default_factory=dict)  # the job that adds them -> how many not there yet
    vectors: dict[str, int] = field(default_factory=dict)  # the dataset's vectors: name -> dimensions
    ranked_by: str | None = None  # the cold start's rank property, once `cold-start` has written it
    start: str | None = None  # what the next training is fine-tuned from: a registered model, an aligned encoder
    scoring: str | None = None  # where scoring runs, when not in this process (scoring.engine = "ray")
    min_submitted: int = 1  # submitted responses the dataset's task distribution completes a record at
    references: ReferenceSample | None = None  # the first records' own labels; None with argilla.reference = "none"
    lengths: LengthSample | None = None  # the first records' texts in tokens; None without a tokenizer at hand
    problems: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)


def check_config(services: Services) -> ConfigCheck:
    """Bind to the dataset (reads only), count its records, read its task distribution, and check the current
    model, the start model of a training and the directories the jobs write. Time O(1) in the dataset's size: two
    counting requests and the first :data:`REFERENCE_SAMPLE` records.

    Raises:
        WorkerError: what stops every job — the server cannot be reached or refuses the key, the dataset does not
            exist or does not fit the ``[argilla]`` settings (one line, as any command says it).
    """
    settings = services.settings
    labels = services.labels()
    gateway = services.gateway
    check = ConfigCheck(f"{settings.argilla.workspace}/{settings.argilla.dataset}", gateway.binding,
                        gateway.count_records(), gateway.count_submitted(), str(gateway.server_version))
    check.todo += release_caveats(gateway.server_version)  # to-dos: every job still runs
    check.vectors = gateway.vector_dimensions()
    check.min_submitted = gateway.min_submitted()
    first = list(itertools.islice(gateway.pull(page_size=REFERENCE_SAMPLE), REFERENCE_SAMPLE))
    check.references = _sample_references(services, first)
    check.lengths = _sample_lengths(services, first)
    _check_worker_metadata(services, check)
    _check_model(services, labels, check)
    check.todo += _test_set_todo(check)
    check.todo += _rescore_todo(services)
    check.todo += _registered_candidates_todo(services)
    _check_start_model(services, check)
    _check_engine(services, check)
    _check_devices(services, check)
    for path, setting in ((settings.state_dir, "state_dir"), (settings.registry.path, "registry.path")):
        try:
            check_writable(path, setting)
        except ConfigError as error:
            check.problems.append(str(error))
    _check_publishers(services, check)
    return check


def _sample_lengths(services: Services, records: Sequence[PulledRecord]) -> LengthSample | None:
    """How many of ``records``' texts (the dataset's first) ``training.max_length`` cuts, in the tokens of the model
    that reads them — the current model's tokenizer, else the start model's when it is at hand (a local directory,
    or a Hub id in the local cache): a team with long texts hears it before a training cuts them. None without a
    tokenizer at hand or a text. O(len(records)) tokenizations."""
    from transformers import AutoConfig, AutoTokenizer

    from worker.scoring.model import position_limit

    texts = [(record.text, record.text_pair) for record in records if record.has_text and isinstance(record.text, str)]
    current = services.registry.current()
    source = str(current.path) if current is not None else services.settings.training.base_model
    if not texts or not source:
        return None
    trusted = services.settings.registry.trust_remote_code
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=trusted)
        config = AutoConfig.from_pretrained(source, local_files_only=True, trust_remote_code=trusted)
    except (OSError, ValueError) as error:  # not at hand here (a Hub id not downloaded yet), or not a model
        logger.debug("config check: no tokenizer of %s at hand (%s): text lengths not sampled", source, error)
        return None
    lengths = sorted(len(tokenizer(text, pair, verbose=False)["input_ids"]) for text, pair in texts)
    max_length = services.settings.training.max_length
    limit = position_limit(config) or getattr(config, "max_position_embeddings", None)  # (not the tokenizer's: a
    # model trained here keeps training.max_length as its tokenizer's limit, while its encoder reads more)
    return LengthSample(len(lengths), sum(length > max_length for length in lengths), lengths[len(lengths) // 2],
                        lengths[-1], max_length, int(limit) if limit else None)


def _sample_references(services: Services, records: Sequence[PulledRecord]) -> ReferenceSample | None:
    """How the labels of the dataset's first records (``records``) read — a team's own property (``metadata:NAME``)
    written as titles or in other letter case, or holding values that are none of the question's labels — before a
    training or a score run relies on them. None with ``argilla.reference = "none"``."""
    binding = services.gateway.binding
    if binding.reference.kind == "none":
        return None
    sample = ReferenceSample()
    for record in records:
        sample.read += 1
        sample.carrying += record.reference is not None
        if record.suggestion is not None and record.suggestion.agent \
                and is_foreign(record.suggestion.agent, record.metadata):  # not the worker's own
            sample.agents[record.suggestion.agent] += 1
            if binding.reference.kind == "auto" and record.reference is not None \
                    and record.metadata.get(PRESERVED_LABEL) is None:  # (else the label kept before comes first)
                sample.by_agent[record.suggestion.agent] += 1
        if binding.reference.kind != "metadata" or binding.reference.name is None:
            continue
        respelled, unknown = binding.spellings(record.server_metadata.get(binding.reference.name))
        if unknown:
            sample.unread.update(unknown)
            sample.unread_records += 1
            sample.first_unread = sample.first_unread or record.record_id
        else:
            sample.respelled.update(respelled)
    return sample


def _check_worker_metadata(services: Services, check: ConfigCheck) -> None:
    """How many of the worker's metadata properties the dataset has, and which jobs will add the others (each with
    its first values: see ``ArgillaGateway._add_written_properties``). One request."""
    ours = services.gateway.worker_properties()
    present = services.gateway.metadata_property_names()
    check.worker_metadata = len(ours)
    rank = services.gateway.binding.stored_name(RANK_PROPERTY)
    check.ranked_by = rank if rank in present else None
    for name, spec in ours.items():
        if name not in present:
            check.metadata_to_come[spec.written_by] = check.metadata_to_come.get(spec.written_by, 0) + 1


def _test_set_todo(check: ConfigCheck) -> list[str]:
    """A test set to draw, while the dataset has no ``test_set_rank`` and records nobody has reviewed."""
    if "test-set" not in check.metadata_to_come or check.records <= check.submitted:
        return []
    size = min(DEFAULT_TEST_SET_SIZE, shared_size(check.records - check.submitted, DEFAULT_TEST_SET_SHARE))
    return [(f"no test set: the validation records are ones picked for review, and read low — `argilla-worker "
             f"test-set` marks up to {size} record{'s' * (size != 1)} drawn at random to review in rank order, and "
             f"every model is measured on them (their labels train nothing; draw it before `cold-start`, and before "
             f"the first `train` when records carry labels of their own: that model would learn them)")]


def _registered_candidates_todo(services: Services) -> list[str]:
    """The newest model a team registered beside the current one that waits for a decision (status candidate), with
    its comparison on the reviewed records when `models register` made one, and how many older ones wait too. Reads
    the registry only."""
    waiting = [version for version in reversed(services.registry.versions())
               if version.status == "candidate" and version.metrics.get("registered_from")]
    if not waiting:
        return []
    newest, compared = waiting[0], waiting[0].metrics.get("registered_comparison")
    figures = (f": macro-F1 {compared['candidate_macro_f1']:.4f} vs {compared['current_macro_f1']:.4f} of "
               f"{compared['current_version']} on {compared['records']} reviewed records" if compared else "")
    older = f"; {len(waiting) - 1} older registered candidate(s) too (`models list`)" if len(waiting) > 1 else ""
    line = (f"{newest.version} (registered from {newest.metrics['registered_from']}) waits for a decision{figures} — "
            f"`argilla-worker models promote {newest.version}` makes it current{older}")
    return [line]


def _rescore_todo(services: Services) -> list[str]:
    """The records a score run will score again: the ``[scoring]`` options they were scored with are not the
    configured ones (see :func:`worker.jobs._stale_before`), or a run doing so was stopped. Reads the state
    directory only."""
    scored = services.sync_state.scored_by(services.gateway.dataset_key)
    if scored is None:
        return []
    changes = scored.changes(written_options(services.settings.scoring, services.extra_scorers()))
    if changes:
        return [(f"the records were scored with other [scoring] options ({'; '.join(changes)}): the next score "
                 f"run reads every record and scores each again once")]
    if scored.stale_before is not None:
        return [("a score run with the [scoring] options changed was stopped: the next one reads every record and "
                 "scores those it had not reached")]
    return []


def _check_engine(services: Services, check: ConfigCheck) -> None:
    """With ``scoring.engine = "ray"``: join (or start) Ray as a score run would, and what its actors would take
    of the cluster (:func:`~worker.scoring.distributed.check_cluster`); Ray missing, out of reach or too small
    for the actors is a problem for every score run."""
    if services.settings.scoring.engine != "ray":
        return
    from worker.scoring.distributed import check_cluster

    try:
        check.scoring = check_cluster(services.settings.ray)
    except ConfigError as error:
        check.problems.append(str(error))


def _check_devices(services: Services, check: ConfigCheck) -> None:
    """``training.device``, and ``scoring.device`` when this process scores (Ray's actors pick theirs on their
    nodes): one this machine does not have fails every such job."""
    from worker.scoring.device import pick_device

    settings = services.settings
    wanted = {settings.training.device} | ({settings.scoring.device} if settings.scoring.engine == "local" else set())
    for device in sorted(wanted):
        try:
            pick_device(device)
        except ConfigError as error:
            check.problems.append(str(error))


def _check_publishers(services: Services, check: ConfigCheck) -> None:
    """Each configured sink's own check (a directory holding files the worker did not publish, a Hub repo of the
    team's, the Hub out of reach), and the fields, metadata and questions ``[publish]`` names that the dataset lacks:
    problems for the publish job."""
    check.problems += publication_problems(services)
    for sink in services.publishers():
        try:
            check_sink(sink)
        except WorkerError as error:
            check.problems.append(str(error))


def _check_model(services: Services, labels: list[str], check: ConfigCheck) -> None:
    """The current model: none yet (a to-do), one that cannot score the question (a problem), or its version."""
    try:
        current = services.current_model()
    except NoModelError:
        check.todo.append(_no_model_todo(services.settings.training.min_annotated, check,
                                         auto_cold_start=ranks_first_batch_itself(services.settings)))
        return
    binding = services.gateway.binding
    try:
        head = read_head(current.path, current.version, trust_remote_code=services.settings.registry.trust_remote_code)
        check_head_fits(head, labels, question=binding.question, multi_label=binding.multi_label)
    except WorkerError as error:
        check.problems.append(f"current model {current.version}: {error}")
        return
    check.model = current.version


def _no_model_todo(min_annotated: int, check: ConfigCheck, *, auto_cold_start: bool = False) -> str:
    """What trains or brings the first model; before enough reviews, also what ranks the records to review first
    when none carries a label (by the dataset's vector when it has one; ``auto_cold_start``: the running worker
    will, ``cold_start.auto``)."""
    todo = (f"no model yet: `argilla-worker train` (from the annotators' submitted responses, training.min_annotated "
            f"= {min_annotated}, or the labels the records carry) or `argilla-worker models register DIR` for a model "
            "you have")
    if check.submitted >= min_annotated:
        return todo
    if check.ranked_by:
        return f"{todo}; the records are ranked for a first batch: sort by {check.ranked_by}, ascending, and annotate"
    names = list(check.vectors)
    command = ("argilla-worker cold-start" + (f" --vector {names[0]}" if len(names) == 1 else "")
               + (" --vector NAME` (NAME: " + ", ".join(names) + ")" if len(names) > 1 else "`"))
    by_itself = " (`argilla-worker run` does it by itself: cold_start.auto)" if auto_cold_start else ""
    return f"{todo}; if no record carries a label yet, `{command} ranks a first batch to annotate{by_itself}"


def _check_start_model(services: Services, check: ConfigCheck) -> None:
    """What the next training starts from (:func:`~worker.training.job.start_model`), and training.base_model, which
    `score --oof` starts from (and `train` when the current model is not one the team registered)."""
    settings = services.settings.training
    _, registered = start_model(settings, services.registry, services.registry.current())
    if registered is not None:
        check.start = start_description(registered, settings.start_from)
    base_model = settings.base_model
    if not base_model:
        check.todo.append("training.base_model is not set: " + ("`score --oof` starts from it" if registered
                                                                 else "`train` and `score --oof` start from it"))
        return
    try:
        check_model_source(base_model, trust_remote_code=services.settings.registry.trust_remote_code)
    except ConfigError as error:
        check.problems.append(str(error))
        return
    if registered is None and settings.align_first_token and mean_pooled(base_model):
        check.start = (f"{base_model}, a sentence encoder: its first token aligned with its mean-pooled vector on "
                       f"up to {settings.align_texts} of the dataset's texts, once (training.align_first_token)")
