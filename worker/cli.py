"""The ``argilla-worker`` command line."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from worker.constants import DEFAULT_TEST_SET_SHARE, DEFAULT_TEST_SET_SIZE, ECE_MIN_RECORDS, TEST_SET_PROPERTY
from worker.errors import ConfigError, DataError, Interrupted, WorkerError
from worker.iterables import most_common
from worker.local_argilla.settings import LocalArgillaSettings
from worker.logging_setup import configure_logging

if TYPE_CHECKING:
    from worker.binding import DatasetBinding
    from worker.check import ConfigCheck, LengthSample, ReferenceSample
    from worker.jobs import ScoreReport
    from worker.test_set import TestSet


class _CleanErrors(click.Group):
    """Print a WorkerError, or a file system's refusal, as one clear message (exit 1) instead of a traceback
    (``--log-level debug`` logs the traceback too)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except WorkerError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
        except OSError as error:  # a disk the checks before each job could not foresee: full, read-only, refused
            logging.getLogger(__name__).debug("file system error", exc_info=True)
            where = f"{error.filename}: " if error.filename else ""
            click.echo(f"error: {where}{error.strerror or error}", err=True)
            sys.exit(1)


@click.group(cls=_CleanErrors)
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def cli(log_level: str) -> None:
    """An active-learning worker for Argilla: scores records with MC-dropout uncertainty and
    per-example loss, pushes suggestions and sortable metadata, retrains on corrections."""
    configure_logging(log_level.upper())


class _SignalStop(threading.Event):
    """Set by the first SIGTERM / SIGINT a one-shot command gets (see :func:`_stopped_by_signal`)."""

    signum = 0

    def exit_status(self) -> int:
        """The shell's status for a command ended by this signal: 128 + its number (143 for SIGTERM)."""
        return 128 + self.signum


@contextlib.contextmanager
def _stopped_by_signal() -> Iterator[_SignalStop]:
    """A one-shot command's graceful stop, as the service's (``docker stop``, a preempted Kubernetes Job, Ctrl-C):
    the first SIGTERM / SIGINT sets the event its job checks — a score run ends after its current batch and leaves
    its checkpoint, a training is abandoned after its current step — and the second ends the process at once."""
    stop = _SignalStop()

    def handle(signum, frame) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            logging.getLogger(__name__).warning("second %s: exiting now", name)
            os._exit(128 + signum)
        stop.signum = signum
        logging.getLogger(__name__).warning("%s: finishing the current batch, then exiting (send it again to exit "
                                            "now)", name)
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _until_signalled() -> Iterator[_SignalStop]:
    """:func:`_stopped_by_signal` for a job that raises :class:`Interrupted` when stopped: its message, one line on
    stderr, and the signal's exit status (143 / 130)."""
    with _stopped_by_signal() as stop:
        try:
            yield stop
        except Interrupted as stopped:
            click.echo(str(stopped), err=True)
            sys.exit(stop.exit_status())


@cli.group("local-argilla")
def local_argilla() -> None:
    """A real Argilla server on this machine without Docker (for trying the worker and for tests).

    Settings come from LOCAL_ARGILLA_* environment variables: PORT (6900), SEARCH_PORT (9201),
    REDIS_PORT (6391), USERNAME, PASSWORD, API_KEY, WORKSPACE, STATE_DIR, SERVER_VERSION (2.8.0), SERVER_VENV.
    """


def _local_settings() -> LocalArgillaSettings:
    """The local stack's settings from the environment; a bad LOCAL_ARGILLA_* value is one line naming it."""
    from pydantic import ValidationError

    try:
        return LocalArgillaSettings()
    except ValidationError as error:
        problems = [f"LOCAL_ARGILLA_{'_'.join(str(part) for part in item['loc']).upper()} = "
                    f"{'(secret)' if {'password', 'api_key'} & set(item['loc']) else repr(item.get('input'))}: "
                    f"{item['msg']}" for item in error.errors()]
        raise ConfigError("invalid local stack setting: " + "; ".join(problems)) from None


@local_argilla.command("up")
def local_argilla_up() -> None:
    """Start the stack (idempotent: only what is not running is started)."""
    from worker.local_argilla.stack import LocalArgilla

    settings = _local_settings()
    LocalArgilla(settings).up()
    _print_access(settings)


@local_argilla.command("down")
def local_argilla_down() -> None:
    """Stop the processes this stack started; the database is kept."""
    from worker.local_argilla.stack import LocalArgilla

    stopped = LocalArgilla(_local_settings()).down()
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@local_argilla.command("status")
def local_argilla_status() -> None:
    """Show each component, its PID and port; exit 1 unless all are running."""
    from worker.local_argilla.stack import LocalArgilla

    settings = _local_settings()
    statuses = LocalArgilla(settings).status()
    for status in statuses:
        state = "running" if status.running else "stopped"
        port = f" port {status.port}" if status.port else ""
        if status.name == "index":
            click.echo(f"{status.name:<7} {'ok' if status.running else 'FAILED'}: {status.detail}")
            continue
        pid = f" pid {status.pid}" if status.running else ""
        click.echo(f"{status.name:<7} {state}{pid}{port}")
    click.echo(f"state: {settings.state_dir}")
    if all(status.running for status in statuses):
        _print_access(settings)
    else:
        sys.exit(1)


def config_option(function):
    """``-c/--config FILE`` (or ARGILLA_WORKER_CONFIG) for the commands that read the worker config."""
    return click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                         envvar="ARGILLA_WORKER_CONFIG", default=None,
                         help="TOML config file (env: ARGILLA_WORKER_CONFIG); ARGILLA_WORKER_* variables override it.")(
        function)


@cli.command()
@click.option("--records", type=click.IntRange(min=20), default=2000, show_default=True,
              help="How many movie snippets to log (at most the 10,605 there are).")
@click.option("--flip-fraction", type=click.FloatRange(0.0, 1.0), default=0.1, show_default=True,
              help="Fraction of labels flipped on purpose.")
@click.option("--seed", default=0, show_default=True)
@click.option("--corrections", type=click.IntRange(min=0), default=100, show_default=True,
              help="How many top-by-loss records the scripted annotator reviews (0: stop after scoring).")
@click.option("--no-score", is_flag=True, help="Only start the stack and log the records.")
@click.option("--no-serve", is_flag=True, help="Exit after publishing instead of running the worker.")
def demo(records: int, flip_fraction: float, seed: int, corrections: int, no_score: bool, no_serve: bool) -> None:
    """The whole loop on the embedded default: local Argilla + offline movie-review snippets + MiniLM.

    Ingests snippets with a seeded 10% of labels flipped, fine-tunes MiniLM briefly, scores with MC
    dropout, pushes, reports how many flipped labels are in the top 50 by loss; then (demo only)
    submits the true labels of the top records as a scripted annotator, retrains, gates, rescores,
    publishes to a local directory, and keeps running so you can annotate in the UI.
    """
    from worker.demo import run_demo

    settings = _local_settings()

    def report(summary) -> None:
        click.echo(f"dataset {summary.dataset!r}: {summary.records} records, {summary.flipped} labels flipped")
        if summary.flipped_in_top is not None:
            click.echo(f"model {summary.model_version}: suggestions and scores pushed for {summary.pushed} records")
            click.echo(f"flipped labels among the top {summary.top_k} by loss of the original label: "
                       f"{summary.flipped_in_top} of "
                       f"{summary.top_k} (at random: about {round(summary.top_k * flip_fraction)})")
        if summary.retrained_version:
            click.echo(f"scripted review of the top {summary.corrections_submitted}: "
                       f"{summary.flipped_fixed} flipped labels corrected")
            click.echo(f"retrained {summary.retrained_version}: "
                       f"{'promoted' if summary.promoted else 'rejected'} — {summary.gate_reason}")
            click.echo(f"flipped labels among the next {summary.top_k} unreviewed records by loss: "
                       f"{summary.flipped_in_next_top}")
            for line in summary.published:
                click.echo(f"published: {line}")
        click.echo("In the UI: open the dataset, Sort → metadata 'loss' → descending, and fix the worst first.")
        _print_access(settings)

    summary = run_demo(settings, records=records, flip_fraction=flip_fraction, seed=seed, score=not no_score,
                       corrections=corrections)
    report(summary)
    if not no_serve and summary.services is not None and not no_score:
        from worker.runner import Runner

        click.echo("The worker keeps running (Ctrl-C to stop): annotate in the UI and watch suggestions refresh.")
        sys.exit(Runner(summary.services.settings, summary.services).run())



def _known_encoding(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--encoding``'s value, refused at once when Python knows no such encoding."""
    import codecs

    try:
        return codecs.lookup(value).name
    except LookupError:
        raise click.BadParameter(f"{value!r} is not a text encoding Python knows (e.g. utf-8, cp1252, latin-1)") \
            from None

@cli.command()
@config_option
@click.argument("source")
@click.option("--dataset", "dataset_name", default=None,
              help="Argilla dataset to create or update (default: argilla.dataset of the config).")
@click.option("--workspace", default=None, envvar="ARGILLA_WORKSPACE",
              help="Default: argilla.workspace of the config ('argilla').")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default=None, help="Column with the current (original) label, if any.")
@click.option("--id-column", default=None, help="Column with stable record ids (default: a hash of the text).")
@click.option("--split-column", default=None, help="Column naming each row's split (kept when publishing).")
@click.option("--labels", default=None, help="Comma-separated label set (default: the dataset's, else the data's).")
@click.option("--label-separator", default=None,
              help="Split text labels on this (e.g. '|'): each row gets a label set, the question is multi-label. "
                   "A label column of lists is multi-label without it.")
@click.option("--label-map", default=None, metavar="FILE_LABEL=LABEL,…",
              help="Read the file's labels as the question's: e.g. '0=negative,1=positive' or 'pos=positive' "
                   "(a label already written as the question's label, its title or in other letter case needs none).")
@click.option("--split", default="train", show_default=True, help="Split, for a Hub dataset id.")
@click.option("--encoding", default="utf-8", show_default=True, callback=_known_encoding,
              help="The text encoding of a csv / tsv / jsonl / json file (a UTF-16 file is recognised by its mark), "
                   "e.g. cp1252 for a spreadsheet's export on Windows.")
@click.option("--metadata-column", "metadata_specs", multiple=True, metavar="COLUMN[=NAME]",
              help="Ingest this column as record metadata, under NAME (default: the column's name) — numbers as "
                   "integer / float properties, text, booleans and dates as terms — so annotators can filter and "
                   "sort on it. Repeat for several.")
@click.option("--field-column", "field_specs", multiple=True, metavar="FIELD=COLUMN",
              help="Fill another field of the dataset from this column (e.g. a required 'headline' beside the "
                   "text). Repeat for several.")
@click.option("--field", "field_name", default=None,
              help="The dataset's text field to write the text into (default: the first of argilla.fields, else "
                   "the dataset's only text field, or 'text' for a new dataset).")
@click.option("--question", default=None,
              help="The label question (default: argilla.question; needed when the dataset has several).")
@click.option("--metadata-prefix", default=None,
              help="The prefix of the worker's metadata names (default: argilla.metadata_prefix, else none for one "
                   "label question, '<question>_' for several).")
@click.option("--api-url", envvar="ARGILLA_API_URL", default=None,
              help="Default: argilla.api_url of the config (http://localhost:6900).")
@click.option("--api-key", envvar="ARGILLA_API_KEY", default=None,
              help="Or the ARGILLA_API_KEY variable; default: the config's key (ARGILLA_WORKER_ARGILLA__API_KEY, "
                   "argilla.api_key_file).")
def ingest(config_file: Path | None, **options) -> None:
    """Load labelled text (csv / tsv / jsonl / json / parquet file, a directory of such files or one datasets'
    save_to_disk wrote, or a Hub dataset id) into an Argilla dataset.

    Records are keyed by id: ingesting again updates them, and a record that already exists is merged into,
    never replaced — its other fields, metadata, vectors, responses and other agents' suggestions stay. The
    original label is kept as metadata and as a suggestion with agent 'original' (unless another agent's
    suggestion holds the question), never as an annotator's response. A label column of lists (or
    --label-separator) makes a multi-label question. Bad rows are reported with their row numbers and
    skipped; records the server refuses are listed by id; the rest land (exit 2 if anything was skipped).
    SIGTERM / Ctrl-C: stops after the batch being sent (exit 143 / 130); ingesting the same source again finishes.

    The server, key, dataset, workspace, field, question and metadata prefix come from the worker's config
    ([argilla], -c FILE and ARGILLA_WORKER_ARGILLA__* variables) unless given here.
    """
    from worker.binding import BindingError

    try:
        _ingest(**_with_config_defaults(config_file, options))
    except BindingError as error:
        if "argilla." not in str(error):  # not about the [argilla] settings that ingest takes as options
            raise
        raise BindingError(f"{error} — for ingest: --field, --question, --metadata-prefix") from error


def _with_config_defaults(config_file: Path | None, options: dict) -> dict:
    """The ingest options with what they leave unset taken from the worker config's [argilla] section."""
    from worker.config import check_http_url, load_settings

    argilla = load_settings(config_file).argilla
    if options["api_url"]:
        try:
            check_http_url(options["api_url"])
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="'--api-url'") from None
    resolved = {
        **options,
        "dataset_name": options["dataset_name"] or argilla.dataset,
        "workspace": options["workspace"] or argilla.workspace,
        "api_url": options["api_url"] or argilla.api_url,
        "api_key": options["api_key"] or argilla.key(),
        "http": argilla.http(),
        "field_name": options["field_name"] or (argilla.fields[0] if argilla.fields else None),
        "question": options["question"] if options["question"] is not None else argilla.question,
        "metadata_prefix": (options["metadata_prefix"] if options["metadata_prefix"] is not None
                            else argilla.metadata_prefix),
    }
    if not resolved["dataset_name"]:
        raise click.UsageError("no dataset: pass --dataset, or set argilla.dataset in the config (-c FILE)")
    return resolved


def _ingest(*, source, dataset_name, workspace, text_column, label_column, id_column, split_column, labels,
            label_separator, label_map, split, encoding, metadata_specs, field_specs, field_name, question,
            metadata_prefix, api_url, api_key, http) -> None:
    from worker.gateway import ArgillaGateway
    from worker.ingest import (
        IngestReport,
        check_keying,
        check_option_columns,
        column_labels,
        field_columns,
        is_multi_label,
        labelled_rows,
        load_table,
        metadata_columns,
        unread_columns,
    )
    from worker.training.register import parse_label_map

    report = IngestReport()
    table = load_table(source, split=split, report=report, id_column=id_column, text_column=text_column,
                       encoding=encoding)
    check_option_columns(table, {"--text-column": text_column, "--label-column": label_column,  # before any write
                                 "--id-column": id_column, "--split-column": split_column},
                         defaults=("--text-column",) if text_column == "text" else ())
    metadata, other_fields = metadata_columns(table, metadata_specs), field_columns(table, field_specs)
    multi_label = is_multi_label(table, label_column, label_separator)
    gateway = ArgillaGateway(api_url=api_url, api_key=api_key, dataset_name=dataset_name, workspace=workspace,
                             fields=[field_name] if field_name else (), question=question,
                             metadata_prefix=metadata_prefix, http=http)
    mapping = parse_label_map(label_map)
    label_set = [label.strip() for label in labels.split(",")] if labels else gateway.existing_labels()
    if label_set is None and label_column is not None:
        label_set = list(dict.fromkeys(mapping.get(label, label)
                                       for label in column_labels(table, label_column, label_separator)))
    if not label_set:
        raise click.UsageError("no label set: pass --labels, or --label-column, or use an existing dataset")
    outside = sorted(set(mapping.values()) - set(label_set))
    if outside:
        raise click.BadParameter(f"maps to {outside}, which are not the question's labels {sorted(label_set)}",
                                 param_hint="'--label-map'")
    report.unread_columns = unread_columns(table, [text_column, label_column, id_column, split_column,
                                                   *(column.column for column in metadata), *other_fields.values()])
    report.label_column_given = label_column is not None
    report.id_column_given = id_column is not None
    check_keying(table, text_column, id_column, gateway.texts_by_external_id, gateway.dataset_name)  # before any write
    gateway.ensure_dataset(label_set, multi_label=multi_label)
    gateway.check_other_fields(list(other_fields))
    gateway.ensure_user_metadata({column.name: column.kind for column in metadata})
    with _stopped_by_signal() as stop:
        written = gateway.log_labelled_texts(labelled_rows(
            table, text_column=text_column, label_column=label_column, id_column=id_column, labels=label_set,
            split_column=split_column, label_separator=label_separator, metadata=metadata, fields=other_fields,
            label_titles=gateway.label_titles(), label_map=mapping, report=report), stop=stop)
    if written.stopped:
        landed = written.created + written.updated + written.unchanged
        click.echo(written.summary())
        click.echo(f"stopped on request: {landed} records written or found unchanged before the stop, the rest not "
                   f"read; ingest the same source again to finish (what landed is found unchanged, not duplicated)",
                   err=True)
        sys.exit(stop.exit_status())
    click.echo(report.summary())
    click.echo(written.summary())
    if report.bad_rows or report.bad_lines or written.failed or written.labels_kept or written.texts_kept:
        sys.exit(2)


def _services(config_file: Path | None, *, writes: tuple[str, ...] = (), checking: bool = False):
    """The settings read and checked, and the directories the command will write (``state_dir``,
    ``registry.path``) checked, before the command imports torch and transformers: a bad value or a disk that
    cannot be written is one line within a second, not after seconds of imports. ``checking``: for `config check`
    (the plugins' context says so: they send nothing)."""
    from worker.config import load_settings
    from worker.registry import check_writable
    from worker.services import Services

    settings = load_settings(config_file)
    directories = {"state_dir": settings.state_dir, "registry.path": settings.registry.path}
    for setting in writes:
        check_writable(directories[setting], setting)
    return Services(settings, checking=checking)


@cli.group("config")
def config_group() -> None:
    """Inspect the worker configuration."""


@config_group.command("show")
@config_option
def config_show(config_file: Path | None) -> None:
    """Print the effective configuration (file + environment + defaults) as TOML, secrets masked."""
    from worker.config import load_settings

    click.echo(_as_toml(load_settings(config_file).masked()))


REFERENCE_MEANING = {  # argilla.reference's kinds, as `config check` says them (worker.binding has the details)
    "auto": "the ingested original_label, else another agent's suggestion",
    "suggestion": "agent {name}'s suggestion",
    "metadata": "metadata property {name}",
    "none": "none (uncertainty only until annotators answer)",
}


@config_group.command("check")
@config_option
def config_check(config_file: Path | None) -> None:
    """Check the config against the server, the dataset, the model and the directories, writing nothing to the
    server: how the worker binds to the dataset, its records, and what would stop a job (exit 1 if anything)."""
    from worker.check import check_config
    from worker.crowd import ties_note

    services = _services(config_file, checking=True)
    check = check_config(services)
    binding = check.binding
    click.echo(f"Argilla {services.settings.argilla.api_url}: reachable, key accepted (argilla-server {check.server})")
    click.echo(f"dataset {check.dataset}: {check.records:,} records, {check.submitted:,} with a submitted response")
    click.echo(f"  model reads: {_field_names(binding.fields, binding.chat_fields)}"
               + (" (a text pair)" if len(binding.fields) == 2 else ""))
    if check.lengths is not None and check.lengths.longer:
        click.echo(f"    {_lengths_note(check.lengths, services.settings.training.truncation_side)}")
    kind = "multi-label " if binding.multi_label else "rating " if binding.rating else ""
    click.echo(f"  {kind}question {binding.question!r}: {len(binding.labels)} labels "
               f"({', '.join(binding.labels)})")
    click.echo(f"  an unreviewed record's label (argilla.reference = {str(binding.reference)!r}): "
               f"{REFERENCE_MEANING[binding.reference.kind].format(name=binding.reference.name)}"
               + (f"; the worker's metadata named {binding.metadata_prefix}<name>" if binding.metadata_prefix else ""))
    if check.references is not None and check.references.read:  # an empty dataset has nothing to say
        click.echo(f"    {_references_note(check.references, binding)}")
    click.echo(f"  reviews: a record is complete at {check.min_submitted} submitted "
               f"response{'s' if check.min_submitted > 1 else ''}; "
               f"{ties_note(services.settings.consensus.ties, check.min_submitted)}")
    click.echo(f"  the worker's metadata: {_metadata_state(check)}")
    if check.vectors:
        click.echo("  vectors: " + ", ".join(f"{name} ({size} dimensions)" for name, size in check.vectors.items()))
    if check.model:
        click.echo(f"model: {check.model} (fits the question)")
    if check.start:
        click.echo(f"the next training is fine-tuned from {check.start}")
    if check.scoring:
        click.echo(check.scoring)
    for line in check.todo:
        click.echo(f"to do: {line}")
    for line in check.problems:
        click.echo(f"problem: {line}", err=True)
    if check.problems:
        sys.exit(1)


def _lengths_note(lengths: LengthSample, truncation_side: str) -> str:
    """``config check``'s line on the first texts ``training.max_length`` cuts (:class:`~worker.check.LengthSample`)."""
    kept = "last" if truncation_side == "left" else "first"
    more = (f"; the model reads up to {lengths.model_limit}: a larger training.max_length reads more of each (time and "
            f"memory grow about in proportion)" if lengths.model_limit and lengths.max_length < lengths.model_limit
            else "")
    return (f"of the first {lengths.read} texts, {lengths.longer} are longer than training.max_length = "
            f"{lengths.max_length} tokens (median {lengths.median:,}, longest {lengths.longest:,}): a model trained "
            f"here learns and scores their {kept} {lengths.max_length} only{more}")


def _references_note(sample: ReferenceSample, binding: DatasetBinding) -> str:
    """``config check``'s line on the labels the first records carry (:func:`worker.check._sample_references`)."""
    from worker.binding import respellings

    note = f"of the first {sample.read} records, {sample.carrying} carry one"
    agent = binding.reference.name if binding.reference.kind == "suggestion" else None
    if agent is not None and sample.carrying == 0:
        by = ", ".join(f"{name!r} ({count})" for name, count in most_common(sample.agents, 5))
        note += f": none has a suggestion by agent {agent!r}" + (
            f"; their suggestions are by {by}" if by else "; none has a suggestion")
    if sample.by_agent:  # whose labels a first model would learn
        agents = ", ".join(f"{name!r} ({count})" for name, count in most_common(sample.by_agent, 5))
        note += f" (suggestions by {agents})"
    if sample.respelled:
        note += f" (read as the question's labels: {respellings(sample.respelled, shown=5)})"
    if sample.unread:
        values = ", ".join(f"{value!r} × {count}" for value, count in most_common(sample.unread, 5))
        one = sample.unread_records == 1
        note += (f"; {sample.unread_records} hold{'s' * one} a name in {binding.reference.name} that is none of its "
                 f"labels ({values}; e.g. record {sample.first_unread!r}): read as {'a record' if one else 'records'} "
                 f"without a label — where they stand for its labels, {_reference_map_hint(sample, binding)} reads "
                 f"them as those")
    return note


def _reference_map_hint(sample: ReferenceSample, binding: DatasetBinding) -> str:
    """The ``argilla.reference_map`` that reads the names no label reads, as TOML: guessed from their spelling when
    each is the start of one label (``pos`` → ``positive``), else ``LABEL`` to fill in."""
    from worker.training.register import guessed_label_map

    names = [name for name, _ in most_common(sample.unread, 10)]
    guess = guessed_label_map(names, names, binding.labels)
    pairs = ", ".join(f"{json.dumps(name)} = {json.dumps(guess.get(name, 'LABEL'))}" for name in names)
    return f"argilla.reference_map = {{{pairs}}}" + (" (guessed from their spelling: check it)" if guess else "")


# the job whose first values add a group of the worker's metadata properties (WorkerMetadata.written_by)
METADATA_JOBS = {"score": "score", "original": "score or ingest, keeping a record's original label",
                 "oof": "score --oof", "cold-start": "cold-start", "copies": "copies", "ingest": "ingest with splits",
                 "test-set": "test-set"}


def _metadata_state(check: ConfigCheck) -> str:
    """``config check``'s line on the worker's metadata properties: how many the dataset has, and which jobs add
    the others."""
    coming = sum(check.metadata_to_come.values())
    if not coming:
        return f"all {check.worker_metadata} properties on the dataset"
    jobs = "; ".join(f"{METADATA_JOBS[job]}: {count}" for job, count in check.metadata_to_come.items())
    total = check.worker_metadata
    there = "none" if coming == total else f"{total - coming} of {total}"
    return f"{there} on the dataset yet; each job adds its properties with its first values ({jobs})"


def _field_names(fields: Sequence[str], chat_fields: Sequence[str]) -> str:
    return ", ".join(f"{name} (conversation)" if name in chat_fields else name for name in fields)


def _as_toml(data: dict, prefix: str = "") -> str:
    import json

    scalars = [f"{key} = {json.dumps(value)}" for key, value in data.items()
               if not isinstance(value, dict) and value is not None]
    unset = [f"# {key} = (unset)" for key, value in data.items() if value is None]
    tables = [_as_toml(value, f"{prefix}{key}.") for key, value in data.items() if isinstance(value, dict)]
    header = [f"[{prefix[:-1]}]"] if prefix else []
    return "\n".join([*header, *scalars, *unset, "", *tables]).rstrip() + "\n"


@cli.command()
@config_option
def run(config_file: Path | None) -> None:
    """Run the worker until stopped: scheduled and webhook-triggered scoring, retraining, publishing.

    Serves /healthz, /metrics and the Argilla webhook receiver on http.host:http.port. The first
    SIGTERM / Ctrl-C finishes the current batch and exits 0; a second exits at once.
    """
    services = _services(config_file, writes=("state_dir", "registry.path"))
    from worker.runner import Runner

    sys.exit(Runner(services.settings, services).run())


@cli.command()
@config_option
def status(config_file: Path | None) -> None:
    """Show the running worker's state: mode, Argilla reachability, model, queue, last jobs (exit 1 if
    it is not running)."""
    from worker.config import load_settings
    from worker.files import ServiceLock, read_json

    settings = load_settings(config_file)
    path = settings.state_dir / "status.json"
    if not path.exists():
        click.echo(f"no worker is running: none has run with state directory {settings.state_dir} "
                   f"(`argilla-worker run` starts one)")
        _echo_model(_registered_model(settings.registry.path), test_set_drawn=_test_set_drawn(settings.state_dir))
        sys.exit(1)
    state = read_json(path, {})
    missing = [key for key in ("pid", "started_at", "mode", "argilla") if key not in state]
    if missing:
        raise DataError(f"{path} is not a status a worker wrote (no {', '.join(missing)}): move it aside; the "
                        f"next `argilla-worker run` writes it afresh")
    running = ServiceLock.held(settings.state_dir) and not state.get("stopping")
    click.echo(f"worker pid {state['pid']}: {'running' if running else 'not running'} (since {state['started_at']})")
    click.echo(f"HTTP: {state.get('http_url')}   mode: {state['mode']} — {state.get('mode_reason', '')}")
    argilla = state["argilla"]
    reach = {True: "reachable", False: "UNREACHABLE", None: "unknown"}[argilla.get("reachable")]
    click.echo(f"Argilla {settings.argilla.api_url}: {reach}" + (f" ({argilla['error']})" if argilla.get("error")
                                                                  else ""))
    binding = state.get("binding") or {}
    if binding:
        kind = "multi-label " if binding.get("multi_label") else "rating " if binding.get("rating") else ""
        fields = _field_names(binding["fields"], binding.get("chat_fields", ()))
        click.echo(f"dataset {binding['dataset']}: {kind}question {binding['question']!r}, fields {fields}, "
                   f"reference {binding['reference']}"
                   + (f", metadata named {binding['metadata_prefix']}<name>" if binding.get("metadata_prefix")
                      else ""))
    _echo_model(state.get("model") or {}, test_set_drawn=_test_set_drawn(settings.state_dir))
    _echo_annotators(state.get("annotators") or {})
    _echo_ray(state.get("scoring") or {})
    retrain_at = state.get("retrain_at") or 0
    under_way = state.get("running") or {}
    if running and under_way.get("job"):
        click.echo(f"running: {under_way['job']} since {under_way['since']}"
                   + (f" — {under_way['progress']}" if under_way.get("progress") else ""))
    click.echo(f"queue: {state['queue'] or 'empty'}   corrections pending: {state['corrections_pending']}"
               + (f" (a retrain starts at {retrain_at})" if retrain_at else ""))
    for kind, job in sorted(state.get("jobs", {}).items()):
        click.echo(f"  {kind:<10} {job['status']:<8} {job['at']}  {job['summary']}")
    if not running:
        sys.exit(1)


def _echo_ray(scoring: dict) -> None:
    """The Ray engine's line (``Services.scoring_summary``): where the actors run, or that none are held; nothing
    for the local engine."""
    if scoring.get("engine") != "ray":
        return
    cluster = "a local Ray" if scoring.get("cluster") == "local" else f"cluster {scoring.get('cluster')!r}"
    if not scoring.get("actors"):
        click.echo(f"scoring on {cluster}: no actors held (they start with the next score run)")
        return
    devices = Counter(scoring.get("devices") or [])
    click.echo(f"scoring on {cluster}: {scoring['actors']} actor(s) holding {scoring.get('model')} on "
               f"{', '.join(scoring.get('nodes') or []) or '?'} ("
               + ", ".join(f"{device} × {count}" for device, count in sorted(devices.items())) + ")"
               + (f"; Ray started {scoring['restarts']} again after its process died (see the log)"
                  if scoring.get("restarts") else ""))


def _test_set_drawn(state_dir: Path) -> bool:
    """Whether the state directory keeps a test set (`argilla-worker test-set` drew one)."""
    from worker.files import read_json

    return bool(read_json(state_dir / "test_sets.json", {}))


def _echo_model(model: dict, *, test_set_drawn: bool = False) -> None:
    """The current model's line (``ModelVersion.summary``; empty: none), its test-set figures (or what stands in for
    them: ``test_set_drawn``, whether a test set waits for answers) and its prediction stability."""
    click.echo(f"model: {model.get('version', 'none')}" + (
        f" (macro-F1 {_fmt(model.get('macro_f1'))}, ECE det {_fmt(model.get('ece_deterministic'))}, "
        f"MC {_fmt(model.get('ece_mc'))}" + _validation_note(model.get("validation_records")) + ")"
        if model.get("version") else ""))
    if model.get("version"):
        click.echo(_test_set_line(model.get("test"), drawn=test_set_drawn))
    if model.get("stability_kappa") is not None:
        click.echo(f"prediction stability: κ {_fmt(model['stability_kappa'])} vs the previous model"
                   + ("; more annotation is unlikely to change the model" if model.get("stop_signal") else ""))


def _taught_test_records_line(current: str | None, taught: int, size: int) -> str:
    """What it means that the current model learnt ``taught`` of the ``size`` test records (their own labels, before
    the draw): it is measured and gated only on the others."""
    which = "every one" if taught == size else f"{taught}"
    rest = ("it cannot be measured or compared on them" if taught == size else
            f"it is measured and compared on the other {size - taught} only")
    return (f"{current} learnt {which} of these records (from their own labels, before the draw): {rest}; later "
            f"models never train on any of them (a test set drawn before a first model trains on the records' own "
            f"labels has none of this)")


def _test_set_line(test: dict | None, *, drawn: bool = False) -> str:
    """The current model's figures on the test set (:mod:`worker.test_set`), or what the validation figures are
    when none is measured (``drawn``: a test set waits for its first answers)."""
    if not test and drawn:
        return ("test set: drawn, not measured yet — review its records in the UI sorted by test_set_rank from 1; the "
                "running worker measures the model as their answers come (the validation records are ones picked "
                "for review, usually harder than the rest)")
    if not test:
        return ("test set: none measured — the validation records are ones picked for review, usually harder than "
                "the rest (`argilla-worker test-set` draws records at random to measure on)")
    from worker.test_set import accuracy_name, calibration_note, test_notes

    low, high = test["accuracy_interval"]
    notes = test_notes(test.get("left_out_taught", 0), test.get("reviewed_out_of_order", 0))
    return (f"test set: {accuracy_name(test.get('label_sets', False))} {test['accuracy']:.4f} (95 % interval "
            f"{low:.4f} to {high:.4f}), macro-F1 "
            f"{test['macro_f1']:.4f}{calibration_note(test.get('ece'), test.get('ece_deterministic'))} on "
            f"{test['records']} reviewed records drawn at random{notes}")


def _registered_model(root: Path) -> dict:
    """The registry's current version (``ModelVersion.summary``), read without creating the registry; {} if none:
    what ``status`` shows a team that trains and scores from the command line, with no worker running."""
    from worker.registry import ModelRegistry

    if not (Path(root).expanduser() / "versions").is_dir():
        return {}
    current = ModelRegistry(root).current()
    return current.summary() if current is not None else {}


def _validation_note(records: int | None) -> str:
    """How many validation records the figures come from, and whether that is too few for the ECE to mean much."""
    if not records:
        return ""
    rough = f": too few for the ECE to mean much (≥ {ECE_MIN_RECORDS} give a usable figure)" \
        if records < ECE_MIN_RECORDS else ""
    return f"; {records} validation records{rough}"


def _echo_annotators(crowd: dict) -> None:
    """The team lead's view of the last crowd estimate (see :mod:`worker.crowd`); nothing before the first."""
    annotators = crowd.get("annotators") or {}
    if not annotators:
        return
    click.echo(f"annotators (from {crowd.get('overlapping_records', 0)} records with ≥ 2 votes; "
               f"{_model_weight_note(crowd)}):")
    click.echo(f"  {'annotator':<38} {'labels':>6} {'agree':>6} {'model':>6} {'weight':>6} {'quality':>7}")
    for user, stats in sorted(annotators.items(), key=lambda item: -(item[1].get("quality") or 0)):
        name = stats.get("username") or user
        click.echo(f"  {name:<38} {stats['labels']:>6} {_fmt(stats.get('agreement_with_annotators')):>6} "
                   f"{_fmt(stats.get('agreement_with_model')):>6} {_fmt(stats.get('weight')):>6} "
                   f"{_fmt(stats.get('quality')):>7}")


def _model_weight_note(crowd: dict) -> str:
    """The model's weight in the crowd estimate and what it was measured on: the reviewed records its model was not
    taught (its answer on the others repeats its training label; see :func:`worker.crowd.echoes_training`)."""
    measured = crowd.get("model_records")
    temperature = f"read at temperature {_fmt(crowd.get('model_temperature', 1.0))}"
    if measured == 0:
        return (f"model weight {_fmt(crowd.get('model_weight'))} — not measured yet: no decided record with ≥ 2 "
                f"votes carries the view of a model not taught it, so it breaks only ties the annotators' weights "
                f"leave equal —, {temperature}")
    on = f" from {measured} records it was not taught" if measured is not None else ""
    return f"model weight {_fmt(crowd.get('model_weight'))}{on}, {temperature}"


def _not_blank(context: click.Context, parameter: click.Parameter, value: object) -> object:
    """A blank option value is refused: a blank path would be the working directory, a blank name no name."""
    if value is not None and not str(value).strip():
        raise click.BadParameter("is blank: give a value, or leave the option out")
    return value


def _hub_repo_id(context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
    from worker.config import check_hub_repo_id

    if value is not None:
        try:
            check_hub_repo_id(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return value


def _no_single_fold(context: click.Context, parameter: click.Parameter, folds: int | None) -> int | None:
    if folds == 1:
        raise click.BadParameter("K must be 2 or more: one fold would hold every record out of its only model")
    return folds


@cli.command()
@config_option
@click.option("--full", is_flag=True, help="Consider every record, not only those changed since the last run.")
@click.option("--oof", "folds", type=click.IntRange(min=0), default=None, callback=_no_single_fold,
              help="K ≥ 2: give labelled records out-of-fold scores (K models trained from training.base_model); "
                   "0: none, whatever scoring.kfold says.")
def score(config_file: Path | None, full: bool, folds: int | None) -> None:
    """Score records with the current model and push suggestions + metadata (loss, BALD, entropy…).

    Records already carrying the current model's values for their current label are skipped, so a
    stopped run resumes where it stopped (a run over every record goes on after the last record it pushed); after a
    change of the [scoring] options (samples, mc_layers, calibrated …) every record is scored again, once. Records
    nobody reviewed yet are scored first. SIGTERM / Ctrl-C: the run ends after its current batch (exit 143 / 130);
    with --oof, after the fold model's current step or pushed batch, the completed fold models kept for the rerun.
    """
    services = _services(config_file, writes=("state_dir",))
    from worker.jobs import oof_score_job, score_job

    folds = folds if folds is not None else (services.settings.scoring.kfold or None)
    failures: dict[str, str] = {}
    if folds:
        with _until_signalled() as stop:
            oof_report = oof_score_job(services, folds, stop=stop)
        click.echo(oof_report.summary())
        click.echo(_label_issue_hint(oof_report, services.gateway.binding.stored_name))
        failures.update(oof_report.failures)
    if folds and services.registry.current() is None:
        click.echo("no current model yet: records without a label are scored once one is trained or registered")
    else:
        with _stopped_by_signal() as stop:
            report = score_job(services, full=full or bool(folds), stop=stop)
        click.echo(report.summary())
        failures.update(report.failures)
        if stop.is_set():
            click.echo("stopped on request: every pushed batch stands; the next `argilla-worker score` goes on from "
                       "there", err=True)
            _exit_on_push_failures(failures, status=stop.exit_status())
            sys.exit(stop.exit_status())
    _exit_on_push_failures(failures)


def _label_issue_hint(report: ScoreReport, name: Callable[[str], str]) -> str:
    """Where to look after ``score --oof``: label_issue for the records the fold models trained on, the held-out
    loss for the others (a sample of a large dataset, ``training.max_original``). ``name``: a worker property's
    name on the server (the binding's prefix)."""
    hint = (f"{name('label_issue')} and {name('area_under_margin')} pushed{{scope}}: in the UI, sort by metadata "
            f"'{name('label_issue')}', descending, to fix the likeliest label errors first")
    others = report.scored - report.label_issues
    if others <= 0:
        return hint.format(scope="")
    return (hint.format(scope=f" for the {report.label_issues} records the fold models trained on")
            + f"; the other {others} (outside training.max_original's sample) have the held-out '{name('loss')}': "
              "sort them by it")


def _exit_on_push_failures(failures: dict[str, str], status: int = 1) -> None:
    """Name the records whose push failed (kept and pushed again by the next run) and exit with ``status``."""
    if not failures:
        return
    for record_id, reason in list(failures.items())[:20]:
        click.echo(f"push failed for record {record_id}: {reason}", err=True)
    click.echo(f"{len(failures)} record(s) could not be pushed; the rest of the run landed. They are kept in "
               f"the state directory and pushed again by the next run.", err=True)
    sys.exit(status)


@cli.command()
@config_option
def train(config_file: Path | None) -> None:
    """Fine-tune on the annotators' consensus labels, compare with the current model, register, gate.

    A stratified validation split is held out from annotated records; the new model becomes current
    only if its macro-F1 is within training.gate_tolerance of the current model's on the same records (the
    validation records and the test set's answered, that the current model did not learn). Otherwise it is kept as
    'rejected' with the reason, and how to promote it anyway. A training that would repeat the newest
    version (the same training set and settings, the same current model) says so and trains nothing. SIGTERM /
    Ctrl-C: the training is abandoned after its current step, nothing registered (exit 143 / 130).
    """
    services = _services(config_file, writes=("registry.path", "state_dir"))
    from worker.errors import NothingNewError
    from worker.jobs import train_job
    from worker.test_set import accuracy_name
    from worker.training.data import own_label_validations

    try:
        with _stopped_by_signal() as stop:
            outcome = train_job(services, stop=stop)
    except NothingNewError as repeat:  # the exit code that version's training gave
        click.echo(str(repeat))
        sys.exit(0 if repeat.version == services.registry.current_version() else 3)
    except Interrupted as stopped:  # nothing registered; what it had staged is removed
        click.echo(str(stopped), err=True)
        sys.exit(stop.exit_status())
    validation = outcome.model.metrics["validation"]
    click.echo(f"model {outcome.model.version}: {'promoted' if outcome.promoted else 'rejected'} — "
               f"{outcome.decision.reason}")
    own = own_label_validations(outcome.model.metrics["training"], validation["records"])
    what = (f"{validation['records']} records, {own} of them by their own labels: agreement with labels that may be "
            f"wrong, not accuracy): agreement" if own else
            f"{validation['records']} records): {accuracy_name(services.gateway.binding.multi_label)}")
    click.echo(f"validation ({what} {validation['accuracy']:.4f}, macro-F1 {validation['macro_f1']:.4f}, ECE "
               f"deterministic {validation['ece_deterministic']:.4f}, MC {validation['ece_mc']:.4f}")
    refit_on = outcome.model.metrics["training"].get("refit_on")
    if refit_on:
        click.echo(f"measured on a model trained without those {validation['records']} records; "
                   f"{outcome.model.version} then trained on all {refit_on} (training.refit)")
    if validation.get("temperature") is not None:
        source = validation.get("temperature_fitted_on", "validation")
        click.echo(f"scores reported at temperature {validation['temperature']:.3f}, fitted on the {source} records "
                   f"({validation.get('temperature_records', validation['records'])}): their ECE "
                   f"{validation['ece_scores']:.4f} → {validation['ece_scores_at_temperature']:.4f} (cross-fitted)")
    if outcome.model.metrics.get("test"):
        click.echo(_test_set_line(outcome.model.metrics["test"]))
    if not outcome.promoted:
        from worker.training.compare import rejection_advice
        click.echo(rejection_advice(outcome.model.version, outcome.model.metrics["gate"]))
        sys.exit(3)


@cli.command("test-set")
@config_option
@click.option("--size", type=click.IntRange(min=1), default=None,
              help=f"records to draw (default {DEFAULT_TEST_SET_SIZE}, and at most {DEFAULT_TEST_SET_SHARE:.0%} of "
                   f"those nobody has reviewed); on a test set drawn before, a size above its records adds records at "
                   f"the next ranks (a test set never shrinks)")
def test_set(config_file: Path | None, size: int | None) -> None:
    """Draw records at random from those nobody has reviewed and mark them with metadata `test_set_rank`; the
    model is never trained on them and, once annotators review them, is measured on them — an honest accuracy,
    unlike the validation records, which are ones picked for review. Run again: how many are reviewed, and the
    current model's figures on them; with a larger --size, more records drawn the same way at the next ranks.
    SIGTERM / Ctrl-C: stops within a pass over the records (exit 143 / 130), saying what stands."""
    services = _services(config_file, writes=("state_dir",))
    from worker.jobs import test_set_job

    with _until_signalled() as stop:
        report = test_set_job(services, size, stop=stop)
    drawn, state = report.test_set, report.progress
    name = services.gateway.binding.stored_name(TEST_SET_PROPERTY)
    if report.drawn:
        click.echo(f"test set: {len(drawn.ids)} records drawn at random from the {drawn.drawn_from} nobody had "
                   f"responded to; marked with metadata '{name}' (1 … {len(drawn.ids)})" + _share_note(size, drawn))
    elif report.recovered:
        click.echo(f"test set: {len(drawn.ids)} records carry metadata '{name}' (drawn before; the state directory "
                   f"did not keep it): kept as the test set")
    if report.added:
        first = len(drawn.ids) - report.added + 1
        click.echo(f"test set grown: {report.added} records drawn at random from the {drawn.grown[-1].drawn_from} "
                   f"nobody had responded to, marked with metadata '{name}' {first} … {len(drawn.ids)} (ranks 1 … "
                   f"{first - 1} as before)" + (f"; only {report.added} such records were left, not {size - first + 1}"
                                                if size is not None and len(drawn.ids) < size else ""))
    elif not (report.drawn or report.recovered):
        click.echo(f"test set of {len(drawn.ids)} records drawn {_draw_dates(drawn)}"
                   + _unchanged_size_note(size, len(drawn.ids))
                   + (f": {len(drawn.ids) - state.found} of them are no longer in the dataset"
                      if state.found < len(drawn.ids) else ""))
    if report.taught_to_current:
        click.echo(_taught_test_records_line(services.registry.current_version(), report.taught_to_current,
                                             len(drawn.ids)))
    push = report.push
    click.echo(f"{state.answered} of {state.found} reviewed, {len(state.in_order)} of them in rank order from 1"
               + (f" (rank {len(state.in_order) + 1} is not: the {state.beyond} after it count once it is)"
                  if state.beyond else "")
               + f"; {push.sent} records marked, {push.unchanged} already were"
               + (f", {len(push.failed) + len(push.rejected)} could not be (run again)"
                  if push.failed or push.rejected else ""))
    withdrawn = report.withdrawn
    if withdrawn.sent:
        click.echo(f"the model's suggestion and values taken off {withdrawn.sent} test records nobody has reviewed "
                   f"(they stay without them until reviewed: a pre-selected answer accepted unread would measure the "
                   f"model against itself)")
    copies = report.copies_withdrawn
    if copies.sent:
        click.echo(f"… and off {copies.sent} other records carrying a test record's text (the model's answer there "
                   f"is its answer on the test record; no model trains on them either)")
    if report.measured is not None:
        click.echo(_test_set_line(report.measured.as_dict()))
    if len(state.in_order) < state.found:
        click.echo(f"next: in the Argilla UI, filter metadata '{name}' from 1, sort by it ascending and review in "
                   f"that order (the records answered from rank 1 on are a random sample; one picked out of order is "
                   f"not); every training and this command measure the model on them")
    unmarked = {**push.rejected, **push.failed}
    for record_id, reason in list(unmarked.items())[:20]:
        click.echo(f"record {record_id} not marked: {reason}", err=True)
    still_answered = {**withdrawn.failed, **copies.failed}
    for record_id, reason in list(still_answered.items())[:20]:
        click.echo(f"record {record_id}: the model's answer is still on it: {reason} (run again)", err=True)
    if unmarked or still_answered:
        sys.exit(1)


def _draw_dates(test_set) -> str:
    """When a test set was drawn: ``2026-12-05T01:02:03+00:00``, and when it grew."""
    return test_set.drawn_at + "".join(f", {draw.added} more {draw.drawn_at}" for draw in test_set.grown)


def _share_note(size: int | None, drawn: TestSet) -> str:
    """Why a draw without ``--size`` took fewer than the default: at most a share of the records (a small dataset)."""
    if size is not None or len(drawn.ids) >= min(DEFAULT_TEST_SET_SIZE, drawn.drawn_from):
        return ""
    return (f" — {DEFAULT_TEST_SET_SHARE:.0%} of them, so that most are left for the model to suggest on and learn "
            f"from (--size N to draw more)")


def _unchanged_size_note(size: int | None, records: int) -> str:
    """Why ``--size`` changed nothing: a test set never shrinks, and no record was left to add."""
    if size is None or size == records:
        return ""
    if size < records:
        return f" (a test set never shrinks: --size {size} is below its {records})"
    return " (no record nobody has responded to is left to add)"


@cli.command()
@config_option
@click.option("--version", "version", default=None, callback=_not_blank,
              help="Model version (default: the current one).")
@click.option("--max-samples", type=click.IntRange(min=1), default=50, show_default=True,
              help="Largest T of the ECE-vs-T curve (the MC figures use scoring.samples, drawn however small this is).")
@click.option("--on", "on", type=click.Choice(["validation", "test-set"]), default="validation", show_default=True,
              help="the records measured: the model's validation records, or the test set's answered in rank order "
                   "(drawn at random, never trained on: `argilla-worker test-set`)")
def calibrate(config_file: Path | None, version: str | None, max_samples: int, on: str) -> None:
    """Calibration report of a model version on its validation records (or the test set's): ECE deterministic vs
    MC dropout, ECE vs T, reliability diagram, confusion matrix, temperature scaling. Stored beside the model."""
    services = _services(config_file)
    from worker.jobs import CALIBRATION_SETS, calibrate_job

    report = calibrate_job(services, version, max_samples=max_samples, on=on)
    click.echo(report.markdown())
    click.echo(f"written to {services.registry.get(report.model_version).path / CALIBRATION_SETS[on]}")


@cli.command()
@config_option
@click.option("--directory", type=click.Path(file_okay=False, path_type=str), default=None, callback=_not_blank,
              help="Local sink (overrides publish.directory).")
@click.option("--repo-id", default=None, callback=_hub_repo_id,
              help="Hub dataset repo (overrides publish.repo_id); token from HF_TOKEN, "
                   "ARGILLA_WORKER_PUBLISH__HF_TOKEN or `huggingface-cli login`.")
def publish(config_file: Path | None, directory: str | None, repo_id: str | None) -> None:
    """Publish the cleaned dataset: corrected `label` beside `original_label`, review stats, model scores,
    and a dataset card with plots — to a local directory and/or a Hub dataset repo. Nothing is written
    when the content is unchanged since the last publication. SIGTERM / Ctrl-C: stops while reading the records or
    before writing (exit 143 / 130), nothing published; a write under way (a directory swap, a Hub commit) ends."""
    services = _services(config_file)
    from worker.jobs import publish_job

    with _until_signalled() as stop:
        results = publish_job(services, directory=Path(directory) if directory is not None else None,
                              repo_id=repo_id, stop=stop)
    for result in results:
        state = "published" if result.published else "unchanged, nothing written"
        commit = f" (commit {result.commit})" if result.commit else ""
        click.echo(f"{result.sink} {result.location}: {state}{commit}")


@cli.command("cold-start")
@config_option
@click.option("--clusters", type=click.IntRange(min=2), default=None,
              help="clusters of the embedding space: about the size of the first batch to annotate "
                   "(default: cold_start.clusters, 50)")
@click.option("--max-records", type=click.IntRange(min=2), default=None,
              help="a larger pool is sampled (seeded); the others get no rank (default: cold_start.max_records, 50000)")
@click.option("--vector", default=None, metavar="NAME",
              help="rank by this vector of the dataset (embeddings it already holds) instead of embedding the "
                   "records with training.base_model (default: cold_start.vector)")
def cold_start(config_file: Path | None, clusters: int | None, max_records: int | None, vector: str | None) -> None:
    """No labels yet: rank records for a representative first batch (metadata cold_start_rank, 1 first).

    Annotate in that order (sort by cold_start_rank, ascending); once training.min_annotated records have
    a consensus label, `argilla-worker train` (or the running worker's retrain trigger) trains the first model.
    Each ranked record also gets outlier_score (sort descending: the records least like the rest).
    SIGTERM / Ctrl-C: stops after the current batch (exit 143 / 130); ranks already pushed are the top ones.
    """
    services = _services(config_file, writes=("state_dir",))
    from worker.jobs import cold_start_job, cold_start_settings

    settings = cold_start_settings(services.settings, clusters=clusters, max_records=max_records, vector=vector)
    with _until_signalled() as stop:
        report = cold_start_job(services, settings, stop=stop)
    name = services.gateway.binding.stored_name
    click.echo(f"cold start: {report.sent} records ranked ({report.unchanged} unchanged, {len(report.failed)} "
               f"failed batches); in the Argilla UI sort by {name('cold_start_rank')}, ascending, and annotate from "
               f"the top ({name('outlier_score')}, descending: the records least like the rest)")


@cli.command("copies")
@config_option
def copies(config_file: Path | None) -> None:
    """Find the records that carry the same text (letter case and spacing aside) or nearly the same (a word or a
    number changed, a signature added: copies.similarity) and mark them: metadata `copies` (how many others carry
    it), `copy_group` (sort by it to see each text's records together; texts whose copies carry different labels
    first) and `copies_disagree` (filter ≥ 1: copies labelled differently). SIGTERM / Ctrl-C: stops after the
    current page (exit 143 / 130); run it again to finish."""
    services = _services(config_file, writes=("state_dir",))
    from worker.duplicates import EXACT
    from worker.jobs import copies_job

    similarity = services.settings.copies.similarity
    with _until_signalled() as stop:
        counts, report = copies_job(services, stop=stop)
    alike = "near copies included: copies.similarity" if similarity < EXACT else "exact copies only: similarity"
    click.echo(f"copies: {counts.in_copies} of {counts.records} records share {counts.texts} texts "
               f"({alike} {similarity:g}); "
               f"{counts.disagreeing_texts} of those texts carry different labels"
               + (f" (e.g. records {', '.join(counts.example)})" if counts.example else ""))
    click.echo(f"pushed to {report.sent} records ({report.unchanged} unchanged, "
               f"{len(report.failed) + len(report.rejected)} failed"
               + "".join(f"; {record_id}: {why}" for record_id, why in
                         list({**report.rejected, **report.failed}.items())[:3]) + ")")
    if counts.disagreeing_texts:
        name = services.gateway.binding.stored_name
        click.echo(f"in the Argilla UI filter {name('copies_disagree')} ≥ 1 and sort by {name('copy_group')}, "
                   "ascending: each text's records side by side")


@cli.group()
def models() -> None:
    """The model registry: list versions, promote one, roll back."""


@models.command("list")
@config_option
def models_list(config_file: Path | None) -> None:
    """Every version with its status, validation metrics and parent."""
    registry = _services(config_file).registry
    versions = registry.versions()
    if not versions:
        click.echo(f"no models in {registry.root}")
        return
    click.echo(f"{'version':<8} {'status':<9} {'macro-F1':>8} {'accuracy':>8} {'ECE det':>7} {'ECE MC':>7} "
               f"{'parent':<8} created")
    for entry in versions:
        validation = entry.metrics.get("validation", {})
        click.echo(f"{entry.version:<8} {entry.status:<9} {_fmt(validation.get('macro_f1')):>8} "
                   f"{_fmt(validation.get('accuracy')):>8} {_fmt(validation.get('ece_deterministic')):>7} "
                   f"{_fmt(validation.get('ece_mc')):>7} {entry.metrics.get('parent') or '-':<8} "
                   f"{entry.metrics.get('created_at', '')}")
        if entry.metrics.get("rejection_reason"):
            later = "" if entry.status == "rejected" else f"; promoted later ({entry.metrics.get('promotion_reason')})"
            click.echo(f"         rejected by the gate: {entry.metrics['rejection_reason']}{later}")
        if entry.metrics.get("registered_from"):
            click.echo(f"         registered from {entry.metrics['registered_from']}"
                       + _registered_comparison_note(entry.metrics.get("registered_comparison")))


def _registered_comparison_note(comparison: dict | None) -> str:
    """`models list`'s words on a registered version's comparison with the model current then (none: nothing)."""
    if not comparison:
        return ""
    return (f"; beside {comparison['current_version']} on {comparison['records']} reviewed records: macro-F1 "
            f"{comparison['candidate_macro_f1']:.4f} vs {comparison['current_macro_f1']:.4f}")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


@models.command("register")
@config_option
@click.argument("source")
@click.option("--label-map", default=None, help="MODEL_LABEL=DATASET_LABEL,… when the model names its labels "
                                                "differently from the dataset question; `auto`: read which output is "
                                                "which label from the records that carry a label (a model trained "
                                                "without label names: LABEL_0, LABEL_1, …)")
def models_register(config_file: Path | None, source: str, label_map: str | None) -> None:
    """Register SOURCE (a directory or Hub id of a fine-tuned classifier) as the next version; it becomes
    current when there is none yet."""
    from worker.training.label_order import AUTO_LABEL_MAP
    from worker.training.register import parse_label_map, register_model
    from worker.training.trainer import check_model_source

    services = _services(config_file)
    read_map = (label_map or "").strip().lower() == AUTO_LABEL_MAP
    mapping = {} if read_map else parse_label_map(label_map)
    # before reaching Argilla: a path with nothing there says so first
    check_model_source(source, "models register SOURCE", trust_remote_code=services.settings.registry.trust_remote_code)
    labels = services.labels()
    services.registry.avoid(services.gateway.model_versions())
    before = {version.version for version in services.registry.versions()}
    entry = register_model(source, services.registry, labels, label_map=mapping,
                           trust_remote_code=services.settings.registry.trust_remote_code,
                           multi_label=services.gateway.binding.multi_label,
                           label_titles=services.gateway.label_titles(),
                           label_map_reader=_records_label_map(services, labels, services.gateway.binding.multi_label)
                           if read_map else None)
    state = "current" if entry.status == "current" else f"{entry.status}; `argilla-worker models promote " \
                                                          f"{entry.version}` makes it current"
    if entry.version in before:
        click.echo(f"{source} is registered already as {entry.version} (the same weights, labels and tokenizer): "
                   f"nothing registered; {entry.version} is {state}")
    else:
        click.echo(f"registered {source} as {entry.version} ({state})")
    from worker.jobs import registered_comparison

    try:
        compared = registered_comparison(services, entry)
    except WorkerError as error:  # the registration stands; only its comparison could not be made
        compared = f"not compared with the current model: {error}"
    if compared is not None:
        click.echo(f"  {compared}")


def _records_label_map(services, labels: Sequence[str], multi_label: bool):
    """``--label-map auto``: a reader of the model's map from a sample of the dataset's labelled records (label sets,
    for a ``multi_label`` question; see :mod:`worker.training.label_order`), which says what it read and the map to
    keep."""
    from worker.training.label_order import labelled_sample, read_label_map, reading_note

    def read(model, tokenizer, model_labels: list[str], thresholds: tuple[float, ...] | None) -> dict[str, str]:
        sample = labelled_sample(services.gateway.pull())
        reading = read_label_map(model, tokenizer, model_labels, labels, sample,
                                 max_length=services.settings.training.max_length, multi_label=multi_label,
                                 thresholds=thresholds)
        click.echo(f"{reading_note(reading)}\n  to register it so again: --label-map {reading.as_option()}")
        return reading.mapping

    return read


@models.command("promote")
@config_option
@click.argument("version")
def models_promote(config_file: Path | None, version: str) -> None:
    """Make VERSION current (bypasses the gate: an explicit human decision)."""
    entry = _services(config_file).registry.promote(version, reason="promoted by hand")
    click.echo(f"{entry.version} is now current")


@models.command("rollback")
@config_option
def models_rollback(config_file: Path | None) -> None:
    """Make the previously promoted version current again."""
    entry = _services(config_file).registry.rollback()
    click.echo(f"rolled back: {entry.version} is now current")


def _print_access(settings: LocalArgillaSettings) -> None:
    click.echo(f"Argilla UI: {settings.api_url}")
    click.echo(f"  username: {settings.username}   password: {settings.password.get_secret_value()}")
    click.echo(f"  API key:  {settings.api_key.get_secret_value()}   workspace: {settings.workspace}")


def main() -> None:
    cli(prog_name="argilla-worker")
