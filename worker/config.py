"""The worker's configuration: one TOML file + environment overrides, validated at start.

Precedence (highest first): init arguments, ``ARGILLA_WORKER_<SECTION>__<KEY>`` environment variables,
the TOML file given with ``-c``, defaults. Secrets (the Argilla API key, the Hugging Face token)
come only from the environment or from files named in the config
(``*_file`` keys); a secret written in the TOML file is an error. Secrets are ``SecretStr``: they
never appear in logs, ``status`` or ``config show``.
"""

from __future__ import annotations

import json
import math
import os
import re
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from worker.binding import Reference
from worker.constants import (
    ALIGNMENT_MEASURED,
    AUTO_HEAD_LEARNING_RATE,
    AUTO_HEAD_MIN_LABELS,
    AUTO_HEAD_SKEW,
    AUTO_HEAD_SKEW_MIN_LABELS,
    CUDA_GRAPH_PAD_MULTIPLE,
)
from worker.errors import ConfigError

ENV_PREFIX = "ARGILLA_WORKER_"
SECRET_KEYS = {("argilla", "api_key"), ("argilla", "hf_token"), ("argilla", "headers"), ("publish", "hf_token")}
HF_SPACE_HOST_SUFFIX = ".hf.space"  # a Space's own host name: an Argilla there may be private (a Hub token opens it)
# keys earlier versions accepted: where each value lives now
REMOVED_KEYS = {
    ("training", "mc_samples"): "scoring.samples is the one MC-dropout sample count (scoring, calibration, "
                                "out-of-fold scores)",
    ("training", "keep_versions"): "registry.keep sets how many model versions are kept",
    ("training", "kfold"): "scoring.kfold sets K for `score --oof`",
}
DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
Monitor = Literal["macro_f1", "accuracy", "loss"]


def check_device_name(requested: str) -> str:
    """``requested`` if it names a device kind the worker knows (available or not), else ValueError."""
    index = requested.removeprefix("cuda:")
    if requested not in DEVICE_CHOICES and not (requested.startswith("cuda:") and index.isdigit()):
        raise ValueError(f"device must be one of {DEVICE_CHOICES} or 'cuda:N', got {requested!r}")
    return requested


def _non_empty_path(value: object) -> object:
    """A path setting's value unless it is blank (``Path("")`` is the working directory: never what was meant)."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("an empty path: leave the key out for its default, or give a path")
    return value


SettingPath = Annotated[Path, BeforeValidator(_non_empty_path)]  # a path a setting names; blank is refused


def _crontab(value: str) -> str:
    """A crontab expression APScheduler reads (five fields, UTC), or its reason as the ValueError pydantic reports
    with the key: found when the config is read (``config show`` / ``check``), not when the service starts."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value, timezone="UTC")  # raises ValueError naming the field that is wrong
    except ValueError as error:
        raise ValueError(f"{error} (five fields, minute hour day month weekday, in UTC: e.g. '0 2 * * *' at 02:00 "
                         f"every day)") from None
    return value


Crontab = Annotated[str, AfterValidator(_crontab)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def positive_int_or(value: object, word: str) -> object:
    """``value`` when it is a positive integer (a string of digits, as an environment variable gives, read as one)
    or ``word``; else the ValueError pydantic reports with the key's name."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value == word or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"must be a positive integer or {word!r}")


def check_hub_repo_id(repo_id: str) -> None:
    """Refuse a repo id the Hub would refuse (huggingface_hub's own rule), before anything is built for it.

    Raises:
        ValueError: the Hub's reason, naming the id.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"not a Hub repo id: {error}") from None


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "argilla-worker"


class ArgillaSettings(_Section):
    api_url: str = "http://localhost:6900"
    api_key: SecretStr | None = Field(None, description="secret: env ARGILLA_WORKER_ARGILLA__API_KEY or api_key_file")
    api_key_file: SettingPath | None = None
    dataset: str = Field("", description="the Argilla dataset the worker serves")
    workspace: str = "argilla"
    labels: list[str] = Field(default_factory=list, description="label set when the dataset must be created")
    multi_label: bool = Field(False, description="when the dataset must be created: a multi-label question "
                                                 "(annotators tick any number of labels)")
    fields: list[str] = Field(default_factory=list,
                              description="text field(s) the model reads; default: the dataset's only text field")
    question: str = Field("", description="the label question; default: the dataset's only label question")
    guidelines: Literal["append", "keep"] = Field(
        "append", description="append the worker's section to the dataset's guidelines (updated in place between "
                              "markers), or keep them untouched")
    reference: str = Field("auto", description="where an unreviewed record's label comes from: auto | none | "
                                               "suggestion:AGENT | metadata:NAME")
    reference_map: dict[str, str] = Field(
        default_factory=dict, description="with reference = 'metadata:NAME': values of that property read as the "
                                          "question's labels, e.g. {\"0\" = \"negative\", \"1\" = \"positive\"} "
                                          "(titles and other letter case need none)")
    hf_token: SecretStr | None = Field(
        None, description="secret: a Hugging Face token, for an Argilla in a private Space (sent as 'Authorization: "
                          "Bearer'); env ARGILLA_WORKER_ARGILLA__HF_TOKEN or hf_token_file; unset, a *.hf.space "
                          "api_url gets HF_TOKEN when it is set")
    hf_token_file: SettingPath | None = None
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="secret: more HTTP headers for every request to Argilla, for a sign-in "
                                          "gateway in front of it (Cloudflare Access, an OAuth proxy…); env "
                                          "ARGILLA_WORKER_ARGILLA__HEADERS as JSON, or headers_file")
    headers_file: SettingPath | None = Field(
        None, description="a file of 'Name: value' lines (# starts a comment): more headers, read at start")
    verify: bool | Path = Field(True, description="TLS: check the server's certificate against the system's "
                                                  "authorities (true), against this CA bundle file, or not (false)")
    timeout_s: float = Field(60, gt=0, description="seconds one HTTP request to Argilla may take")
    metadata_prefix: str | None = Field(
        None, description="before the worker's metadata names on the server; default: none when the dataset has "
                          "one label question, '<question>_' when it has several (one worker per question), "
                          "'worker_' when the dataset's own properties already use the worker's names")

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_choice(cls, value: object) -> object:
        """One error naming the choices (not the union's two), and a blank path refused (it read as the working
        directory)."""
        if isinstance(value, bool | Path) or (isinstance(value, str) and value.strip()):
            return value
        raise ValueError("give true, false or the path of a CA bundle file")

    @field_validator("reference")
    @classmethod
    def _reference_source(cls, value: str) -> str:
        try:
            Reference.parse(value)
        except ConfigError as error:
            raise ValueError(str(error).split(": ", 1)[-1]) from None
        return value

    @model_validator(mode="after")
    def _map_for_a_property(self) -> ArgillaSettings:
        if self.reference_map and not self.reference.startswith("metadata:"):
            raise ValueError(f"argilla.reference_map reads the values of the team's label property: it needs "
                             f"argilla.reference = 'metadata:NAME' (it is {self.reference!r})")
        return self

    def key(self) -> str:
        """The API key from the environment / file, or the ARGILLA_API_KEY variable the SDK uses."""
        secret = _secret(self.api_key, self.api_key_file, "argilla.api_key") or os.environ.get("ARGILLA_API_KEY")
        if not secret:
            raise ConfigError("argilla.api_key is not set: export ARGILLA_WORKER_ARGILLA__API_KEY (or "
                              "ARGILLA_API_KEY), or point argilla.api_key_file at a file holding it")
        return secret

    def http(self) -> ArgillaHttp:
        """How to reach the server besides its URL and key: the headers (a Space's token), TLS, the timeout.

        Raises:
            ConfigError: argilla.verify names a file that cannot be read as a CA bundle, or argilla.hf_token_file
                cannot be read.
        """
        token = _secret(self.hf_token, self.hf_token_file, "argilla.hf_token")
        if token is None and (urlsplit(self.api_url).hostname or "").endswith(HF_SPACE_HOST_SUFFIX):
            token = os.environ.get("HF_TOKEN") or None
        headers = self._extra_headers()
        if token is not None:
            if "authorization" in {name.lower() for name in headers}:
                raise ConfigError("argilla.headers sets Authorization and a Hugging Face token would set it too "
                                  "(argilla.hf_token, or HF_TOKEN for a *.hf.space URL): keep one of them")
            headers["Authorization"] = f"Bearer {token}"
        return ArgillaHttp(headers=headers, verify=_tls_verification(self.verify), timeout_s=self.timeout_s,
                           hf_token_sent=token is not None)

    def _extra_headers(self) -> dict[str, str]:
        """argilla.headers_file's lines, then argilla.headers over them, each checked (see :func:`_checked_header`).

        Raises:
            ConfigError: the file cannot be read, a line is not 'Name: value', or a header is not one HTTP allows
                or is the worker's own (the line / key named, never the value).
        """
        headers: dict[str, str] = {}
        if self.headers_file is not None:
            path = Path(self.headers_file).expanduser()
            try:
                lines = path.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as error:
                reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
                raise ConfigError(f"argilla.headers_file {self.headers_file}: cannot read it ({reason})") from None
            for number, line in enumerate(lines, start=1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                name, colon, value = line.partition(":")
                where = f"argilla.headers_file {self.headers_file}, line {number}"
                if not colon:
                    raise ConfigError(f"{where}: expected 'Name: value' (the value is not shown)")
                headers[name.strip()] = _checked_header(name.strip(), value.strip(), where)
        for key, secret in self.headers.items():
            headers[key] = _checked_header(key, secret.get_secret_value(), f"argilla.headers[{key!r}]")
        return headers


class ScoringSettings(_Section):
    samples: int = Field(20, ge=1, description="T, MC-dropout samples per record (the most, when adaptive)")
    mc_layers: int | Literal["auto", "all"] = "auto"
    dropout_rate: float | None = Field(
        None, ge=0, lt=1, description="one dropout rate for every layer MC dropout samples; default: the model's "
                                      "own rates, or 0.1 for a model trained without dropout (ModernBERT …), "
                                      "whose MC samples would otherwise all be equal")
    adaptive: bool = Field(True, description="stop sampling a record once its BALD and expected loss are known "
                                             "(standard errors within adaptive_bald_rse / adaptive_loss_se); "
                                             "false: every record gets all `samples`")
    adaptive_round: int = Field(4, ge=2, description="MC samples drawn per round, before each stopping check")
    adaptive_bald_rse: float = Field(0.25, ge=0, description="settled once BALD's standard error is at most this "
                                                            "fraction of BALD …")
    adaptive_loss_se: float = Field(0.05, ge=0, description="… and the expected loss's at most this (nats)")
    calibrated: bool = Field(True, description="report the suggestion's score and confidence read at the "
                                               "temperature fitted on the validation records when the model was "
                                               "trained (temperature.json beside it; only where that lowered their "
                                               "calibration error); false: the MC-dropout mean as it is")
    batch_size: int | Literal["auto"] = Field(
        "auto", description="records per forward pass; auto = up to 32 records and 2,048 padded tokens on a CPU "
                           "(long documents get smaller batches), the largest that fits on a GPU")
    max_batch_size: int = Field(1024, ge=1, description="upper bound of batch_size = 'auto' on a GPU")
    compile: bool = Field(False, description="torch.compile the scoring passes (CUDA only)")
    push_batch: int = Field(256, ge=1, description="records per pushed (and checkpointed) batch")
    push_queue: int = Field(2, ge=1, description="scored batches waiting for the pusher (the next batch is "
                                                "scored while one is pushed); memory O(push_queue × push_batch)")
    push_concurrency: int = Field(1, ge=1, description="concurrent bulk requests per pushed batch (worth more "
                                                      "than 1 only when the Argilla server runs several processes)")
    view_rank_tolerance: float = Field(0.01, ge=0, lt=1, description=(
        "a record whose new values would move it by at most this rank percentile in every sort order (and change "
        "no label) keeps its old values: not pushed; 0 = push every changed value (exact everywhere)"))
    view_exact_top: int = Field(500, ge=0, description="records at either end of every sort order that are always "
                                                       "pushed exactly")
    reconcile_minutes: float = Field(60.0, gt=0, description="incremental runs also re-read the annotated records "
                                     "this often, for responses that do not touch their record (a second "
                                     "annotator's, an edited one); with webhooks those arrive as events")
    device: str = "auto"
    engine: Literal["local", "ray"] = Field("local", description="local: this process scores; ray: actors on a "
                                            "Ray cluster score (the [ray] table; pip install argilla-worker[ray])")
    interval_minutes: float = Field(5.0, gt=0, description="incremental scoring every N minutes")
    kfold: int = Field(0, ge=0, description="K ≥ 2: labelled records get out-of-fold scores (0: none)")
    power_beta: float = Field(1.0, ge=0, description="β of the bald_power sort key: a batch drawn with "
                                                     "probability ∝ BALD^β (0: uniform, large: plain top BALD)")
    suggestion: Literal["auto", "model", "reference"] = Field(
        "auto", description="the pre-selected label: the label under review (reference) until a record is "
                            "reviewed, then the model's (auto); always the model's; always the label under review")

    @field_validator("batch_size", mode="before")
    @classmethod
    def _positive_batch(cls, value: object) -> object:
        return positive_int_or(value, "auto")

    @field_validator("mc_layers", mode="before")
    @classmethod
    def _layer_count(cls, value: object) -> object:
        if value in ("auto", "all"):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ValueError("must be a number of encoder layers (0 or more: the model's last ones), 'all' or 'auto'")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return check_device_name(value)

    @field_validator("kfold")
    @classmethod
    def _no_single_fold(cls, value: int) -> int:
        if value == 1:
            raise ValueError("one fold holds every record out of its only model: K must be 2 or more (0: none)")
        return value


class TrainingSettings(_Section):
    """How a model is (re)trained: the ``[training]`` table."""

    base_model: str = Field("", description="Hub id or directory of the pretrained encoder to start from")
    start_from: Literal["auto", "base", "current"] = Field(
        "auto", description="what a new model is fine-tuned from: base: training.base_model; current: the current "
                            "model; auto: the model you registered (`argilla-worker models register`) when the "
                            "current one is it or was trained from it, else training.base_model (a team's sentiment "
                            "model, 80 reviewed tweets and reviews: macro-F1 0.87 from it vs 0.81 from the base "
                            "encoder on the 1,860 records nobody reviewed)")
    data: Literal["auto", "annotated", "annotated+original"] = Field(
        "auto", description="what a later model trains on: the annotated records, or also the unreviewed records' own "
                            "labels at original_weight; auto: the latter while the current model learnt from them and "
                            "the test set does not show a quarter or more of them wrong (a first model always takes "
                            "them)")
    original_weight: float = Field(0.3, gt=0, le=1, description="loss weight of unreviewed records' original labels")
    max_original: int | Literal["all"] = Field(
        100_000, description="unreviewed records' own labels a training (and each fold model of `score --oof`) takes "
                             "at most: a seeded sample (the same records give the same sample) plus up to 50 of each "
                             "label, so a first model on 10^6 labelled records trains in bounded memory and time; "
                             "every annotated record is always used; \"all\": no sample")
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    min_annotated: int = Field(20, ge=2)
    epochs: int = Field(5, ge=1)
    min_steps: int = Field(100, ge=0, description="optimizer steps a training takes at least: a small training set "
                                                  "gets more epochs (20 examples: 50 epochs of 2 batches)")
    patience: int = Field(2, ge=1)
    select_min_validation: int = Field(
        50, ge=0, description="validation records needed to pick the best epoch and stop early; with fewer every "
                              "epoch runs and the last is kept (a handful of records picks an epoch by chance)")
    refit: bool = Field(
        True, validation_alias=AliasChoices("refit", "refit_first_model"),
        description="a model whose validation is too small to pick an epoch (< select_min_validation records) and "
                    "that no gate compares on — a first model, or one the gate compares on the test set — is "
                    "measured on it, then trained again on every example, its validation records included, and that "
                    "model is gated and registered (a cold start's first labels of 20 newsgroups: 0.60 accuracy on "
                    "the other posts vs 0.49 with a third of them held out); its validation figures stay those of "
                    "the held-out measurement (refit_first_model: the name before it applied past the first model)")
    monitor: Monitor = "macro_f1"
    batch_size: int = Field(16, ge=1, description="examples per optimizer step")
    micro_batch_size: int | None = Field(
        None, ge=1, description="examples per forward / backward pass, their gradients accumulated to batch_size "
                                "(the same optimizer steps in less memory); unset: the whole batch, halved "
                                "automatically when a batch runs out of GPU memory")
    gradient_checkpointing: bool = Field(
        False, description="recompute the layers' activations in the backward pass instead of keeping them: "
                           "less memory for long texts or big models, about a third more training time")
    learning_rate: float = Field(5e-5, gt=0)
    head_learning_rate: float | Literal["auto", "same"] = Field(
        "auto", description="learning rate of the classification head; \"same\": learning_rate; \"auto\": "
                            f"{AUTO_HEAD_LEARNING_RATE:g} for a new head (one the start model does not have yet) "
                            f"of label sets, or of single labels when they are {AUTO_HEAD_MIN_LABELS} or more, or "
                            f"{AUTO_HEAD_SKEW_MIN_LABELS} or more whose rarest holds under {AUTO_HEAD_SKEW:g} of an "
                            "even share; learning_rate otherwise. "
                            "Measured (benchmarks/long_tail.py, label_set_head.py): 8 to 52 labels, macro-F1 "
                            "0.04-0.61 -> 0.47-0.94; 6 skewed labels 0.69-0.83 -> 0.83-0.92; 2 or 5 labels, a little "
                            "worse; 3 labels in sets from 500-1,000 reviews 0.53-0.58 -> 0.58-0.60")
    align_first_token: bool = Field(
        True, description="a sentence encoder as base_model (a sentence-transformers checkpoint that mean-pools its "
                          "tokens): before the first training from it, teach its first token, which a sequence "
                          "classifier reads, the mean of its token vectors on up to align_texts of the dataset's "
                          "texts (no labels needed; once: the aligned encoder is kept in the registry and every "
                          "later training from the base model starts from it). Measured "
                          "(benchmarks/pooling_alignment.py): " + ALIGNMENT_MEASURED)
    align_texts: int = Field(2000, ge=1, description="texts the first token is aligned on: the training set's, then "
                                                     "the first records the dataset returns")
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    max_length: int = Field(128, ge=8)
    truncation_side: Literal["right", "left"] | None = Field(
        None, description="which end of a text longer than max_length is cut: right keeps its start (a "
                          "conversation's first turns), left keeps its end (its last turns); the trained model keeps "
                          "it, so scoring cuts the same end; unset: the start model's tokenizer decides (right for "
                          "most)")
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    amp_dtype: Literal["auto", "bfloat16", "float16"] = Field(
        "auto", description="mixed-precision dtype on CUDA; auto = bf16 where the GPU supports it, else fp16")
    compile: bool | Literal["reduce-overhead"] = Field(
        False, description="torch.compile the training and validation passes (CUDA only): true fuses kernels; "
                           "'reduce-overhead' also replays each batch shape's kernels as one CUDA graph (for small "
                           "batches, whose steps are bound by kernel launches; batches are padded to a multiple of "
                           f"{CUDA_GRAPH_PAD_MULTIPLE} tokens so that few shapes, and graphs, occur; a step split "
                           "into micro-batches runs eagerly)")
    gate_tolerance: float = Field(0.01, ge=0, description="accepted macro-F1 drop against the current model")

    @field_validator("head_learning_rate", mode="before")
    @classmethod
    def _positive_head_rate(cls, value: object) -> object:
        if value in ("auto", "same"):
            return value
        try:
            rate = float(value)  # type: ignore[arg-type]  # a number, or a string of one from the environment
        except (TypeError, ValueError):
            rate = float("nan")
        if isinstance(value, bool) or not rate > 0:
            raise ValueError('must be a positive number, "auto" or "same"')
        return rate

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_mode(cls, value: object) -> object:
        if value == "reduce-overhead":
            return value
        try:
            return TypeAdapter(bool).validate_python(value)  # true / false, or a string of one from the environment
        except ValidationError:
            raise ValueError("must be true, false or 'reduce-overhead'") from None

    @field_validator("max_original", mode="before")
    @classmethod
    def _positive_sample(cls, value: object) -> object:
        return positive_int_or(value, "all")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return check_device_name(value)


class RegistrySettings(_Section):
    path: SettingPath = Field(default_factory=lambda: _data_home() / "models")
    keep: int = Field(5, ge=2)
    trust_remote_code: bool = Field(
        False, description="let models that ship their own Python code (auto_map in config.json: custom "
                           "architectures on the Hub) run it, wherever the worker loads one: training.base_model, "
                           "`models register`, the registry's versions; only for code you trust")


class RetrainSettings(_Section):
    cron: Crontab | None = Field(None, description="crontab expression, e.g. '0 3 * * *'")
    min_new_corrections: int = Field(50, ge=1, description="retrain once this many new submitted responses arrived")
    stop_set_size: int = Field(1000, ge=0, description="records (unreviewed when drawn) every promoted model predicts "
                                                       "to measure prediction stability; 0 = off")
    stop_kappa: float = Field(0.99, gt=0, le=1, description="the stopping signal: mean Cohen's κ between "
                                                           "consecutive models' predictions on the stop set …")
    stop_window: int = Field(3, ge=1, description="… over this many promotions")


class ColdStartConfig(_Section):
    auto: bool = Field(True, description="the running worker ranks a first batch by itself (cold_start_rank) when "
                       "there is no model, too few reviewed records for one, and the dataset was never ranked")
    clusters: int = Field(50, ge=2, description="clusters of the embedding space: about the size of the first batch")
    max_records: int = Field(50_000, ge=2, description="a larger dataset is sampled (seeded); the others get no rank")
    vector: str = Field("", description="rank by this vector of the dataset instead of embedding the records with "
                        "training.base_model ('': embed)")


class CopiesSettings(_Section):
    cron: Crontab | None = Field(None, description="crontab expression: mark the records that carry the same text "
                                               "(`argilla-worker copies`) on this schedule, e.g. '0 2 * * *'")
    similarity: float = Field(0.6, ge=0.3, le=1.0, description="texts whose 5-character pieces overlap at least this "
                              "much (Jaccard) are near copies: marked by `argilla-worker copies` and never split "
                              "between training and validation; 1: exact copies only (case and spacing aside)")


class PublishSettings(_Section):
    directory: SettingPath | None = Field(
        None, description="local sink: a directory loadable with datasets.load_dataset")
    repo_id: str | None = Field(None, description="Hub sink: a dataset repo id")
    private: bool = True
    hf_token: SecretStr | None = None
    hf_token_file: SettingPath | None = None
    only_reviewed: bool = False
    metadata: list[str] = Field(default_factory=list, description="metadata properties of the dataset published as "
                                "columns beside the labels (yours, or the worker's original_agent / original_score)")
    fields: Literal["all", "bound"] | list[str] = Field(
        "all", description="the dataset's fields published as columns: all (default), bound (only those the model "
        "reads), or a list of names (the bound ones are always published)")
    questions: list[str] = Field(default_factory=list, description="the dataset's other questions whose submitted "
                                 "answers are published, one column each: the list of a record's answers (the "
                                 "annotators' notes, a second label)")
    split: Literal["keep", "stratified", "none"] = "none"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    license: str = "other"
    cron: Crontab | None = None
    after_promotion: bool = True

    @field_validator("fields", mode="before")
    @classmethod
    def _field_choice(cls, value: object) -> object:
        """One error naming the choices (not the union's two: a literal's and a list's)."""
        if value in ("all", "bound"):
            return value
        if isinstance(value, list):
            wrong = [item for item in value if not isinstance(item, str) or not item.strip()]
            if not wrong:
                return value
            raise ValueError(f"{wrong[0]!r} is no field name: give 'all', 'bound' or a list of the dataset's field "
                             f"names")
        raise ValueError("give 'all', 'bound' or a list of the dataset's field names")

    @field_validator("repo_id")
    @classmethod
    def _hub_repo_id(cls, value: str | None) -> str | None:
        if value is not None:
            check_hub_repo_id(value)
        return value

    def token(self) -> str | None:
        """The Hub token from env / file, else None (then huggingface_hub's own login is used)."""
        return _secret(self.hf_token, self.hf_token_file, "publish.hf_token") or os.environ.get("HF_TOKEN")


class ConsensusSettings(_Section):
    """How the annotators' submitted votes become one label (see worker.crowd)."""

    weighted: bool = Field(True, description="weigh each annotator's vote by their reliability, estimated from "
                           "agreement at every training; false: plain majority vote")
    ties: Literal["keep", "resolve"] = Field(
        "resolve", description="resolve: a tie of the votes goes to the label the annotators' reliability and the "
        "model's view favour (on test-set records the annotators' alone); keep: a tie gives no label (left out of "
        "training, publishing and the test-set measure; first in needs_another_label)")


class RaySettings(_Section):
    """Scoring on Ray (``scoring.engine = "ray"``, see worker.scoring.distributed): the ``[ray]`` table."""

    address: str = Field("", description="the cluster to join (ray.init(address=…), e.g. 'auto' or "
                         "'ray://head:10001'); empty: a local Ray started for the run")
    actors: int = Field(0, ge=0, description="scoring actors, one model each; 0: one per GPU the cluster has "
                        "(at least 1)")
    gpus_per_actor: float | None = Field(None, ge=0, description="GPUs each actor reserves; empty: 1 when the "
                                         "cluster has GPUs, else 0")
    cpus_per_actor: float = Field(1.0, ge=0, description="CPUs each actor reserves (tokenizing runs there)")
    chunk_records: int | Literal["auto"] = Field(
        "auto", description="records per task sent to an actor; auto = about 2 s of the actors' work each (from 512, "
                            "sized again from each chunk an actor returns: small on a CPU, large on a GPU, where a "
                            "chunk's fixed costs — an actor scores its chunks one after the other — would show)")
    in_flight: int = Field(2, ge=1, description="tasks queued per actor: the next chunk waits on the actor while "
                           "one runs (memory O(actors × in_flight × chunk_records))")
    start_timeout_s: float = Field(600.0, gt=0, description="how long the actors may wait to be placed on the "
                                   "cluster (an autoscaling one adds nodes) before the run fails, naming what they "
                                   "asked and what the cluster has; a placed actor's process starting (its imports) "
                                   "and loading the model are not counted; the same for an actor started again "
                                   "after its process died (its node lost)")
    actor_restarts: int = Field(3, ge=0, description="times Ray starts an actor again whose process died (a lost "
                                "node, the OOM killer): it loads the model again and scores the chunks it held, "
                                "the run goes on; once they are spent the run fails and the next one starts new "
                                "actors; 0: the first death fails the run")
    keep_joined_s: float = Field(120.0, ge=0, description="a joined cluster (ray.address or RAY_ADDRESS): how long "
                                 "the actors and the connection are kept after a score run for the next one (a "
                                 "burst of webhooks); then the worker leaves the cluster until the next run — Ray "
                                 "ends a driver process whose node's Ray stops (a cluster restart), so an idle "
                                 "worker holds no connection; 0: leave after every run")

    @field_validator("chunk_records", mode="before")
    @classmethod
    def _positive_chunk(cls, value: object) -> object:
        return positive_int_or(value, "auto")


class WebhookSettings(_Section):
    """Argilla generates each webhook's signing secret at registration; the worker keeps it in memory."""

    enabled: bool = True


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    public_url: str | None = Field(None, description="how Argilla reaches this worker (for webhooks)")
    idle_timeout_s: float = Field(30.0, gt=0, description="a connection silent this long is closed")

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return check_http_url(value, example="http://worker:8900") if value is not None else None


class WorkerSettings(BaseSettings):
    """Everything the worker reads at start. Sections mirror the TOML file's tables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    state_dir: SettingPath = Field(default_factory=lambda: _data_home() / "state")
    argilla: ArgillaSettings = Field(default_factory=ArgillaSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    copies: CopiesSettings = Field(default_factory=CopiesSettings)
    cold_start: ColdStartConfig = Field(default_factory=ColdStartConfig)
    consensus: ConsensusSettings = Field(default_factory=ConsensusSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-plugin tables")
    plugin_modules: list[str] = Field(default_factory=list, description="extra plugin modules (dotted names)")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _CONFIG_FILE is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_CONFIG_FILE))
        return tuple(sources)

    def masked(self) -> dict:
        """The effective configuration as plain data, secrets shown as '***' (or null when unset)."""
        return self.model_dump(mode="json")  # SecretStr dumps as '**********'


_CONFIG_FILE: Path | None = None


def load_settings(config_file: Path | None = None, **overrides) -> WorkerSettings:
    """Read and validate the configuration.

    Raises:
        ConfigError: the file is missing or not TOML, a secret is in it, or a key has a bad value
            (the message names each key and the value it got).
    """
    global _CONFIG_FILE
    _check_environment()
    if config_file is not None:
        _check_file(Path(config_file))
    _CONFIG_FILE = Path(config_file) if config_file is not None else None
    try:
        return WorkerSettings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error, config_file)) from None
    except SettingsError as error:  # an environment variable of a list / table key that is not JSON
        raise ConfigError(_unparsed_environment(error)) from None
    finally:
        _CONFIG_FILE = None


# ARGILLA_WORKER_* variables that are not settings: the CLI's config file, the offline assets' cache, the local
# stack's server option (worker/local_argilla/launcher.py)
NOT_SETTINGS = frozenset({"CONFIG", "CACHE", "UPSTREAM_RESPONSE_MAPPING"})


def _check_environment() -> None:
    """Refuse an ARGILLA_WORKER_* variable that names no setting: pydantic-settings would ignore it, so a section's
    key written with one underscore (``ARGILLA_WORKER_SCORING_SAMPLES``) would leave the setting at its default
    in silence. (A key unknown inside a section is refused by the section itself.)

    Raises:
        ConfigError: naming each such variable, with the two-underscore spelling when it is one.
    """
    sections = set(_sections())
    unknown = []
    for name in sorted(os.environ):
        rest = name[len(ENV_PREFIX):] if name.upper().startswith(ENV_PREFIX) else None
        if not rest or rest.upper() in NOT_SETTINGS or rest.split("__", 1)[0].lower() in WorkerSettings.model_fields:
            continue
        section = next((section for section in sections if rest.lower().startswith(f"{section}_")), None)
        hint = f" (a section's key takes two underscores: {ENV_PREFIX}{section.upper()}__" \
               f"{rest[len(section) + 1:].upper()})" if section else ""
        unknown.append(f"{name}{hint}")
    if unknown:
        raise ConfigError(f"invalid configuration: {'; '.join(unknown)}: no such setting (the environment's names "
                          f"are {ENV_PREFIX}<KEY> or {ENV_PREFIX}<SECTION>__<KEY>, e.g. {ENV_PREFIX}SCORING__SAMPLES)")


def _takes_json(path: list[str]) -> bool:
    """Whether the key at ``path`` (section, key) holds a list or a table: its environment variable is JSON."""
    model: Any = WorkerSettings
    annotation: Any = None
    for part in path:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return False
        annotation = fields[part].annotation
        model = annotation
    return get_origin(annotation) in (list, dict)  # (a union with a word, publish.fields, takes the word too)


def _unparsed_environment(error: SettingsError) -> str:
    """Which ARGILLA_WORKER_* variable pydantic-settings could not read as JSON (it names only the section)."""
    for name, value in sorted(os.environ.items()):
        if not name.startswith(ENV_PREFIX) or not _takes_json(name.removeprefix(ENV_PREFIX).lower().split("__")):
            continue
        try:
            json.loads(value)
        except ValueError as parse_error:
            secret = any(part in name.lower() for part in ("api_key", "token", "headers", "secret"))
            shown = "(secret)" if secret else repr(value)
            return (f"invalid configuration: {name} = {shown}: not valid JSON ({parse_error}); a list or table "
                    f"value in the environment is JSON, e.g. '[\"text\"]' or '{{\"Name\": \"value\"}}'")
    return f"invalid configuration in the environment: {error}"


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start}); TOML files are UTF-8"
                          ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"config file {path}: cannot read it ({error.strerror})") from None
    for section, key in SECRET_KEYS:
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ConfigError(
                f"{path}: {section}.{key} is a secret and may not be written in the config file; set "
                f"{ENV_PREFIX}{section.upper()}__{key.upper()} or {section}.{key}_file instead")


def _describe(error: ValidationError, config_file: Path | None) -> str:
    where = f" in {config_file}" if config_file else ""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            problems.append(_unknown_key([str(part) for part in item["loc"]], item.get("input")))
            continue
        value = item.get("input")
        secret = any(part in ("api_key", "hf_token", "headers", "secret") for part in item["loc"])
        shown = "(secret)" if secret else repr(value)
        message = item["msg"].removeprefix("Value error, ")  # pydantic's prefix to a validator's own words
        if item["type"] == "model_type":  # a section given a value: pydantic names its class
            message = f"a section: write it as a table, [{key}] with its keys below"
        problems.append(f"{key} = {shown}: {message}")
    return f"invalid configuration{where}: " + "; ".join(problems)


def _sections() -> dict[str, type[BaseModel]]:
    """The configuration's sections (``[argilla]``, ``[scoring]``, …) by name, in their declared order."""
    return {name: info.annotation for name, info in WorkerSettings.model_fields.items()
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)}


def _unknown_key(path: list[str], value: Any = None) -> str:
    """The words for a key (``[section, key]``) or top-level name (``[name]``, ``value`` its table or value) the
    configuration does not have: a key removed in this version says where its value lives now; otherwise the nearest
    names — the same spelling with ``_`` for ``-``, a close spelling, the same key in other sections
    (``scoring.epochs`` → ``training.epochs``; ``[schedule] cron`` → ``retrain.cron``) — or, with none near, what
    there is."""
    sections = _sections()
    removed = REMOVED_KEYS.get((path[0], path[1])) if len(path) == 2 else None
    if removed:
        return f"{'.'.join(path)} was removed in this version: {removed}"
    *section, key = path
    if section and section[0] not in sections:  # (a key under a section that is unknown itself: that is named)
        return f"{'.'.join(path)}: no such setting"
    table = not section and isinstance(value, dict)
    what = "section" if table else "setting"
    owner = f"[{section[0]}]" if section else "the configuration"
    names = list(sections[section[0]].model_fields) if section else list(WorkerSettings.model_fields)
    near = [f"{section[0]}.{name}" if section else name for name in _close_names(key, names)]
    inner = list(value) if table else [key]  # the keys to look for in the other sections
    if not near:
        near += [f"{other}.{name.replace('-', '_')}" for name in inner for other, model in sections.items()
                 if other not in section and name.replace("-", "_") in model.model_fields]
    if near:
        return f"{'.'.join(path)}: no such {what} in {owner} (did you mean {' or '.join(near[:3])}?)"
    listed = f"its settings are {', '.join(names)}" if section else \
        f"its settings are {', '.join(name for name in names if name not in sections)} and its sections " \
        f"{', '.join(f'[{name}]' for name in sections)}"
    return f"{'.'.join(path)}: no such {what} in {owner}; {listed}"


def _close_names(key: str, names: list[str]) -> list[str]:
    """``names`` near ``key``: the same name written with hyphens, else difflib's close spellings (at most 3)."""
    import difflib

    written = key.replace("-", "_").lower()
    if written in names:
        return [written]
    return difflib.get_close_matches(written, names, n=3, cutoff=0.6)


@dataclass(frozen=True)
class ArgillaHttp:
    """The HTTP side of the connection to Argilla (see :meth:`ArgillaSettings.http`), as the SDK's client takes it."""

    headers: dict[str, str] = field(default_factory=dict)
    verify: bool | ssl.SSLContext = True
    timeout_s: float = 60
    hf_token_sent: bool = False  # Authorization carries a Hugging Face token (a 401 may be the token's)

    @property
    def gateway_headers_sent(self) -> bool:
        """The requests carry headers of argilla.headers / headers_file (besides a Hugging Face token)."""
        return len(self.headers) > (1 if self.hf_token_sent else 0)

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments of ``argilla.Argilla`` (its timeout is whole seconds).

        ``retries=0``: the SDK's transport would otherwise retry a refused connection 5 times itself (~7.5 s of
        backoff) under each of the gateway's attempts, so that "retry 1 of 4" came 7.5 s late and a server that is
        down took ~45 s instead of the policy's ~7.5 s to be reported. The gateway's RetryPolicy is the one policy.
        """
        return {"headers": dict(self.headers), "verify": self.verify, "timeout": max(1, math.ceil(self.timeout_s)),
                "retries": 0}


HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110's token)
OWN_HEADERS = {"x-argilla-api-key": "argilla.api_key", "host": "argilla.api_url",
               "content-type": "the worker", "content-length": "the worker"}  # set from elsewhere: not a header's


def _checked_header(name: str, value: str, where: str) -> str:
    """``value`` when ``name: value`` is a header the worker may add to its requests, else ConfigError naming
    ``where`` (the value itself is never shown: it may be a secret)."""
    if not HEADER_NAME.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)")
    if name.lower() in OWN_HEADERS:
        raise ConfigError(f"{where}: {name} is set by {OWN_HEADERS[name.lower()]}, not by argilla.headers")
    if any(char in value for char in "\r\n\0") or not value.isascii():
        raise ConfigError(f"{where}: the value of {name} has a line break or a character beyond ASCII (the value is "
                          f"not shown)")
    return value


def _tls_verification(verify: bool | Path) -> bool | ssl.SSLContext:
    """``argilla.verify`` as httpx takes it: a CA bundle file becomes an SSL context trusting its authorities."""
    if isinstance(verify, bool):
        return verify
    path = Path(verify).expanduser()
    try:
        return ssl.create_default_context(cafile=str(path))
    except ssl.SSLError:
        reason = "no PEM certificate in it"
    except OSError as error:
        reason = error.strerror or str(error)
    raise ConfigError(f"argilla.verify = {str(verify)!r}: cannot read it as a CA bundle ({reason}); give the PEM "
                      f"file of the authority that signed the server's certificate, or true / false")


def check_http_url(url: str, example: str = "http://localhost:6900") -> str:
    """``url`` when it is an http(s) URL with a host (and a port, if any, in 1–65535); ``example`` is shown in the
    error.

    Raises:
        ValueError: why it is not, in words (a pydantic validator's message).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises on a port that is not a number in range
    except ValueError as error:
        raise ValueError(f"not a URL ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"give an http:// or https:// URL, e.g. {example}")
    return url


def _secret(value: SecretStr | None, file: Path | None, name: str) -> str | None:
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if file is not None:
        try:
            secret = Path(file).expanduser().read_text().strip()
        except OSError as error:
            raise ConfigError(f"{name}_file {file}: cannot read it ({error.strerror})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{name}_file {file}: cannot read it (not UTF-8 text)") from None
        if not secret:
            raise ConfigError(f"{name}_file {file} is empty: it should hold the secret alone")
        return secret
    return None
