"""The one place the worker talks to Argilla.

Everything the worker reads from or writes to an Argilla server goes through
:class:`ArgillaGateway`. The worker writes suggestions and metadata only: it never creates,
changes or deletes an annotator's response.
"""

from __future__ import annotations

import logging
import math
import re
import ssl
import threading
import uuid
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import NamedTuple, TypeVar
from urllib.parse import urlsplit, urlunsplit

import argilla as rg
import httpx
import numpy as np
from packaging.version import InvalidVersion, Version
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from worker.binding import (
    OWN_NAMES_PREFIX,
    PRESERVED_AGENT,
    PRESERVED_LABEL,
    PRESERVED_SCORE,
    PRESERVED_SCORES,
    WORKER_MARKS,
    BindingError,
    DatasetBinding,
    DatasetShape,
    FieldInfo,
    MetadataInfo,
    QuestionInfo,
    bind,
    is_foreign,
    new_dataset_names,
    users_names,
)
from worker.config import ArgillaHttp
from worker.errors import (
    ArgillaGatewayError,
    ArgillaRefusedError,
    ArgillaUnavailableError,
    ConfigError,
    DatasetReplacedError,
    LabelSetMismatchError,
)
from worker.gateway.paging import keyset_pages, position
from worker.gateway.schema import (
    ORIGINAL_AGENT,
    SUBMITTED_RESPONSES,
    WORKER_METADATA_TYPES,
    GuidelinesScope,
    WorkerMetadata,
    dataset_settings,
    merged_guidelines,
    worker_metadata,
)
from worker.gateway.sync_state import SyncState
from worker.iterables import batched
from worker.records import (
    Correction,
    LabelledText,
    LabelValue,
    Prediction,
    PulledRecord,
    ResponseState,
    SuggestionState,
    consensus,
    same_value,
    sanitise_metadata,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 500  # the server's bulk upsert accepts at most 500 items
MAX_PAGE = 999  # a search request returns at most 1,000 records (keyset paging may ask for one more)
TERMS_FILTER_MAX = 250  # the most values one terms filter of the search endpoint accepts
INGEST_PROGRESS_EVERY = 10_000  # records between two progress lines of an ingest
OLDEST_TESTED_SERVER = Version("2.5.0")  # the oldest argilla-server release the integration suite passes on
FIELD_UPDATES_SINCE = Version("2.6.0")  # older servers' bulk upsert answers 200 but keeps a record's fields
ANNOTATED_FILTER: dict = {"type": "terms", "scope": {"entity": "response", "property": "status"},
                    "values": ["submitted", "draft", "discarded"]}
SUBMITTED_FILTER: dict = {"type": "terms", "scope": {"entity": "response", "property": "status"},
                          "values": ["submitted"]}


def new_reviews(binding: DatasetBinding) -> list[dict]:
    """Reviewed records the worker last scored as unreviewed: a first review, found without any time filter
    (the search index does not bump a record's updated_at for a response)."""
    return [SUBMITTED_FILTER, {"type": "range", "le": 0, "scope": {
        "entity": "metadata", "metadata_property": binding.stored_name(SUBMITTED_RESPONSES)}}]

# The server-side query reaches this far behind the watermark (the search index can lag the database);
# records are then kept only if they changed strictly after the watermark.
WATERMARK_OVERLAP = timedelta(seconds=2)


@dataclass
class Watermark:
    """The newest change a run may count as read: the latest change it saw, but never later than the newest
    change in the dataset when the run began (``ceiling``). A record read early in a streaming run and
    changed while the run went on may have been read before its change: every change after the ceiling is
    read again by the next run (found up to date and skipped if the run already handled it)."""

    value: datetime | None
    ceiling: datetime | None

    def see(self, record: PulledRecord) -> None:
        change = record.updated_at  # what the search index's updated_at filter compares (responses: see pull)
        if change is None or (self.ceiling is not None and change > self.ceiling):
            return
        if self.value is None or change > self.value:
            self.value = change


@dataclass
class Reconciliation:
    """What one reconciliation covers: responses changed after ``previous`` are read; the new mark is the
    latest response it saw, but never later than ``limit`` (the server's clock when the run began, one
    second early as its clock is read to the second, from a ``Date`` header refreshed once a second): a
    response given while the run went on may belong to a record already read, and is read again by the
    next reconciliation. The mark errs early: a response of the last seconds may be read twice, none is
    missed."""

    previous: datetime | None
    limit: datetime
    value: datetime | None = None

    def __post_init__(self):
        self.value = self.previous

    def wants(self, record: PulledRecord) -> bool:
        """Whether ``record`` has a response changed after the previous mark (every record if there was none)."""
        newest = max((r.updated_at for r in record.responses if r.updated_at is not None), default=None)
        if newest is not None and newest <= self.limit and (self.value is None or newest > self.value):
            self.value = newest
        return self.previous is None or (newest is not None and newest > self.previous)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for connection errors and 5xx answers."""

    attempts: int = 5
    initial_wait_s: float = 0.5
    max_wait_s: float = 10.0

    def __post_init__(self):
        if self.attempts < 1 or self.initial_wait_s < 0 or self.max_wait_s < self.initial_wait_s:
            raise ValueError(f"invalid retry policy {self}")


# A batch the server refuses for these reasons may hold one bad record among good ones: it is split
# to isolate it. Other 4xx (auth, missing dataset) concern every record and end the push.
SPLITTABLE_4XX = frozenset({400, 409, 413, 422})


@dataclass
class PushReport:
    """What one push did. ``sent_ids`` landed; ``failed`` (record id → the server's answer) were sent and
    refused or failed even alone, after their batch was split to let the others land."""

    sent: int = 0
    unchanged: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # record id -> reason (never sent)
    failed: dict[str, str] = field(default_factory=dict)
    sent_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)  # concurrent pushes

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.failed


@dataclass
class LogReport:
    """What one ingest wrote: records created, merged into (updated), left as they were (nothing would
    change), ``failed`` (record id → why it was not written; the others landed) and ``labels_kept`` (record id →
    why its label was not written although the rest of it was)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    labels_kept: dict[str, str] = field(default_factory=dict)  # record id -> why its label was not written
    texts_kept: dict[str, str] = field(default_factory=dict)  # record id -> why its new field values were not
    stopped: bool = False  # ended on request (a SIGTERM / Ctrl-C) before the records given were all read

    def summary(self, limit: int = 50) -> str:
        head = (f"Argilla: {self.created} records created, {self.updated} updated, {self.unchanged} unchanged, "
                f"{len(self.failed)} not written")
        if self.labels_kept:
            head += f", {len(self.labels_kept)} labels kept"
        if self.texts_kept:
            head += f", {len(self.texts_kept)} texts kept"
        lines = [head]
        for problems in (self.failed, self.labels_kept, self.texts_kept):
            lines += [f"  record {record_id}: {reason}" for record_id, reason in list(problems.items())[:limit]]
            if len(problems) > limit:
                lines.append(f"  … and {len(problems) - limit} more")
        return "\n".join(lines)


def _is_transport_error(error: BaseException) -> bool:
    return isinstance(error, httpx.TransportError)


def _is_retryable(error: BaseException) -> bool:
    if _is_transport_error(error):
        return True
    return isinstance(error, httpx.HTTPStatusError) and error.response.status_code >= 500


# what a server answered on connecting (the SDK's GET /api/v1/me) that no retry can change: status -> the fix
CONNECT_REFUSALS = {
    401: "the API key was refused (401): use the API key of an Argilla user (the user's settings page in the UI; "
         "argilla.api_key / ARGILLA_WORKER_ARGILLA__API_KEY)",
    403: "the API key's user may not read its own account (403): use the key of an owner or admin user",
    404: "it answered 404 to /api/v1/me, so this is not an Argilla 2.x server's root URL (e.g. http://localhost:6900, "
         "without /api or a page's path; Argilla 1.x servers are not supported)",
}


SPACE_TOKEN_HINT = (" — unless it is an Argilla in a private Hugging Face Space, which answers 404 without a Hugging "
                    "Face token: set HF_TOKEN or argilla.hf_token")  # said after a 404 when the requests carried none


SIGN_IN_HEADERS_HINT = ("give the worker the gateway's credentials as headers: argilla.headers_file (lines 'Name: "
                        "value') or ARGILLA_WORKER_ARGILLA__HEADERS (JSON), e.g. a Cloudflare Access service token's "
                        "CF-Access-Client-Id and CF-Access-Client-Secret")


def connect_failure(api_url: str, error: BaseException, *, token_sent: bool = False,
                    headers_sent: bool = False) -> ArgillaGatewayError:
    """One line for a failed connection: a refusal no retry can fix (a wrong key, not an Argilla 2.x URL, a
    certificate not trusted, a sign-in gateway in front of the server) as :class:`ArgillaRefusedError` with what to
    change; anything else (no answer, 5xx) as :class:`ArgillaUnavailableError` with the cause's first line (an HTML
    error page reduced to its text). ``token_sent``: the requests carried a Hugging Face token (argilla.hf_token),
    so a 401 may be the token's; ``headers_sent``: they carried argilla.headers."""
    # the SDK's errors carry the status; a 401 comes as its ArgillaCredentialsError, caused by the API error
    status = getattr(error, "status_code", None) or getattr(error.__cause__, "status_code", None)
    answer = _http_answer(error)
    if isinstance(status, int) and 300 <= status < 400:
        reason = _redirect_reason(api_url, answer, headers_sent)
        return ArgillaRefusedError(f"cannot connect to Argilla at {api_url}: {reason}", status=status)
    if status in (401, 403) and answer is not None and not _is_json(answer):
        sent = " (the argilla.headers sent were refused?)" if headers_sent else ""
        return ArgillaRefusedError(f"cannot connect to Argilla at {api_url}: it answered {status} with a web page, not "
                                   f"Argilla's JSON: a gateway in front of Argilla refused the request{sent}; "
                                   f"{SIGN_IN_HEADERS_HINT}", status=status)
    if status in CONNECT_REFUSALS:
        hint = ("; or the Hugging Face token (argilla.hf_token / HF_TOKEN) was refused" if token_sent and status == 401
                else SPACE_TOKEN_HINT if not token_sent and status == 404 else "")
        return ArgillaRefusedError(f"cannot connect to Argilla at {api_url}: {CONNECT_REFUSALS[status]}{hint}",
                                   status=status)
    untrusted = _untrusted_certificate(error)
    if untrusted is not None:
        return ArgillaRefusedError(f"cannot connect to Argilla at {api_url}: its TLS certificate is not trusted "
                                   f"({untrusted}): set argilla.verify to the PEM file of the authority that signed "
                                   f"it (or false to skip the check)")
    if isinstance(error, ValueError):  # an answer that is not JSON: a web page, not Argilla's API (retried all the
        # same: a proxy may show a page while Argilla restarts)
        text = ("it did not answer /api/v1/me with Argilla's JSON: is this an Argilla 2.x server's root URL (e.g. "
                "http://localhost:6900, without /api or a page's path)?")
    else:
        text = re.sub(r"^Argilla SDK error: \w+: ", "", " ".join(re.sub(r"<[^>]+>", " ", str(error)).split()))[:300]
    return ArgillaUnavailableError(f"cannot connect to Argilla at {api_url}: {text}", status=status)


def release_caveats(version: Version) -> list[str]:
    """What argilla-server ``version`` will not do that the worker relies on (none from FIELD_UPDATES_SINCE)."""
    caveats = []
    if version < OLDEST_TESTED_SERVER:
        caveats.append(f"argilla-server {version} is older than the oldest release the worker is tested with "
                       f"({OLDEST_TESTED_SERVER}): upgrade it if a job fails on a request it does not know")
    if version < FIELD_UPDATES_SINCE:
        caveats.append(f"argilla-server {version} keeps an existing record's fields: upgrade to {FIELD_UPDATES_SINCE} "
                       f"or later for `ingest` to change the text of records already there")
    return caveats


_E = TypeVar("_E", bound=BaseException)


def check_new_labels(labels: Sequence[str]) -> None:
    """Refuse the labels of a question to create that Argilla would refuse (fewer than 2, one repeated, an empty
    one) before anything is created.

    Raises:
        ConfigError: naming the labels and the rule.
    """
    names = [str(label) for label in labels]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if any(not name.strip() for name in names):
        problem = "one of them is empty"
    elif repeated:
        problem = f"{', '.join(map(repr, repeated))} repeated"
    elif len(names) < 2:
        problem = "a label question needs at least 2 (Argilla's rule)"
    else:
        return
    raise ConfigError(f"labels {names} for a new dataset's question: {problem}; give every label it should offer, "
                      "each once (ingest --labels a,b,…)")


def creation_failure(dataset: str, error: BaseException) -> ArgillaGatewayError:
    """One line for a dataset the server did not create, in its words: :class:`ArgillaUnavailableError` when it did
    not answer or answered 5xx (a later attempt may succeed), else :class:`ArgillaRefusedError`."""
    answer = _http_answer(error)
    unavailable = (answer is not None and answer.status_code >= 500
                   or _in_causes(error, httpx.TransportError) is not None)
    kind = ArgillaUnavailableError if unavailable else ArgillaRefusedError
    if answer is None:
        return kind(f"cannot create dataset {dataset}: {_sdk_reasons(error)}")
    detail = _server_detail(answer)
    words = _validation_errors(answer) or detail or answer.reason_phrase
    return kind(f"cannot create dataset {dataset}: Argilla answered {answer.status_code}: {words}",
                status=answer.status_code, detail=detail)


def _validation_errors(answer: httpx.Response) -> str | None:
    """An Argilla validation error's messages by field (``name: String should have at most 200 characters``), or
    None when the answer is not one."""
    try:
        detail = answer.json().get("detail")
        errors = detail["params"]["errors"]
        return "; ".join(f"{'.'.join(map(str, error['loc'][1:]))}: {error['msg']}" for error in errors) or None
    except (ValueError, AttributeError, KeyError, TypeError, IndexError):
        return None


def _sdk_reasons(error: BaseException) -> str:
    """The distinct messages along an SDK error's causes, in one line (the SDK's outer error often says only
    "Argilla SDK error"; the server's words are in a cause)."""
    reasons: list[str] = []
    for cause in _causes(error):
        text = re.sub(r"^(Argilla SDK error: )?\w+: ", "", " ".join(str(cause).split()))
        if text and text != "Argilla SDK error" and text not in reasons:
            reasons.append(text)
    return "; ".join(reasons[:4])[:500] or type(error).__name__


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from or while handling, outermost first (the SDK raises its own
    errors while handling httpx's and ssl's)."""
    cause: BaseException | None = error
    while cause is not None:
        yield cause
        cause = cause.__cause__ or cause.__context__


def _in_causes(error: BaseException, kind: type[_E]) -> _E | None:
    """The first error of ``kind`` along ``error``'s causes (itself included)."""
    return next((cause for cause in _causes(error) if isinstance(cause, kind)), None)


def _http_answer(error: BaseException) -> httpx.Response | None:
    """The HTTP answer behind an SDK error."""
    found = _in_causes(error, httpx.HTTPStatusError)
    return found.response if found is not None else None


def _is_json(answer: httpx.Response) -> bool:
    return answer.headers.get("content-type", "").split(";")[0].strip().endswith("json")


def _redirect_reason(api_url: str, answer: httpx.Response | None, headers_sent: bool) -> str:
    """What a redirect on connecting means: the same address on https (fix the URL), else a sign-in page."""
    location = answer.headers.get("location", "") if answer is not None else ""
    target = urlsplit(str(answer.url.join(location))) if answer is not None and location else None
    asked = urlsplit(api_url)
    if target is not None and target.hostname == asked.hostname and target.scheme != asked.scheme:
        return (f"it redirects to {target.scheme}://{target.netloc}: set argilla.api_url to "
                f"{urlunsplit((target.scheme, target.netloc, asked.path, '', ''))}")
    where = f" to {target.scheme}://{target.netloc}" if target is not None else ""
    if headers_sent:
        return (f"it redirects{where}, as a sign-in gateway does, although the requests carried argilla.headers: "
                f"the gateway did not accept them (check their names and values)")
    return (f"it redirects{where}, as a sign-in gateway does (Cloudflare Access, an OAuth proxy, Identity-Aware "
            f"Proxy…), not Argilla's API; {SIGN_IN_HEADERS_HINT}")


def _untrusted_certificate(error: BaseException) -> str | None:
    """The reason, when ``error`` was caused by a server certificate that failed verification."""
    found = _in_causes(error, ssl.SSLCertVerificationError)
    return str(found.verify_message or found.reason or "verification failed") if found is not None else None


ANNOTATOR_ROLE = "annotator"  # Argilla's role that may only answer questions (see ArgillaGateway._check_role)


class ArgillaGateway:
    """A dataset on an Argilla server, seen through the worker's schema."""

    def __init__(self, *, api_url: str, api_key: str, dataset_name: str, workspace: str,
                 retry: RetryPolicy | None = None, fields: Sequence[str] = (), question: str = "",
                 reference: str = "auto", guidelines: str = "append", metadata_prefix: str | None = None,
                 http: ArgillaHttp | None = None, reference_map: Mapping[str, str] | None = None):
        self.api_url = api_url
        self.dataset_name = dataset_name
        self.workspace = workspace
        self.retry = retry or RetryPolicy()
        self._fields, self._question, self._reference = tuple(fields), question, reference  # the [argilla] config
        self._metadata_prefix = metadata_prefix
        self._reference_map = dict(reference_map or {})
        self.guidelines_mode = guidelines  # append: add/update the worker's section; keep: never touch them
        self._cached_dataset: rg.Dataset | None = None
        self._binding: DatasetBinding | None = None
        self._server_version: Version | None = None
        self._properties: set[str] | None = None  # the dataset's metadata properties (server names), read per job
        self._properties_lock = threading.Lock()  # concurrent pushes create a missing property once
        self._unread_named: set[str] = set()  # a team's label names no label reads, named in the log (UnreadLabels)
        self._plugin_properties: set[str] = set()  # the plugins' float scores (server names): created on first write
        try:
            self.client = rg.Argilla(api_url=api_url, api_key=api_key, **(http or ArgillaHttp()).client_args())
        except Exception as error:  # the SDK raises several unrelated types on connect
            raise connect_failure(api_url, error, token_sent=bool(http and http.hf_token_sent),
                                      headers_sent=bool(http and http.gateway_headers_sent)) from error

    def ensure_dataset(self, labels: Sequence[str], *, multi_label: bool = False) -> rg.Dataset:
        """Create the dataset (a single- or multi-label question), or bring an existing one up to date (never
        removing anything).

        Raises:
            LabelSetMismatchError: the existing question has other labels than ``labels``, or is single-label
                where ``multi_label`` asks for label sets (or the reverse).
        """
        dataset = self._find_dataset()
        if dataset is None:
            check_new_labels(labels)
            field, question = new_dataset_names(self._fields, self._question)
            logger.info("creating dataset %s/%s: field %r, %s question %r with labels %s", self.workspace,
                        self.dataset_name, field, "multi-label" if multi_label else "single-label", question,
                        list(labels))
            dataset = rg.Dataset(
                name=self.dataset_name,
                workspace=self.workspace,
                settings=dataset_settings(labels, field=field, question=question, multi_label=multi_label),
                client=self.client,
            )
            try:
                return dataset.create()
            except Exception as error:  # the SDK's errors share no base class (it removes what it had created)
                raise creation_failure(f"{self.workspace}/{self.dataset_name} on {self.api_url}", error) from error
        self._check_labels(labels, multi_label)
        self._properties = None  # read again before the next write
        return dataset

    def existing_labels(self) -> list[str] | None:
        """The bound question's labels if the dataset exists, else None (nothing is created)."""
        if self._find_dataset() is None:
            return None
        return list(self.binding.labels)

    def label_titles(self) -> dict[str, str]:
        """The bound question's labels and what the UI shows for each (value → title); {} when the dataset does not
        exist yet."""
        if self._find_dataset() is None:
            return {}
        return dict(zip(self.binding.labels, self.binding.label_titles, strict=False))

    def prepare(self) -> DatasetBinding:
        """Bind to the existing dataset, read its metadata properties again (one request: a property of the
        worker's deleted since is created again by the next write, see :meth:`_add_written_properties`) and
        update the worker's section of the guidelines.

        Raises:
            ArgillaGatewayError: the dataset does not exist (a reading job never creates it).
            BindingError: the dataset and the ``[argilla]`` config do not fit (the message lists the dataset).
        """
        binding = self.binding
        self._properties = self.metadata_property_names()
        if self.guidelines_mode == "append":
            self._update_guidelines(self._dataset())
        return binding

    @property
    def binding(self) -> DatasetBinding:
        """The dataset binding, built and validated once per gateway (see :mod:`worker.binding`)."""
        if self._binding is None:
            self._check_role()
            self._check_server_release()
            shape = self.shape()
            self._binding = bind(shape, worker_metadata=WORKER_METADATA_TYPES, fields=self._fields,
                                 question=self._question, reference=self._reference,
                                 metadata_prefix=self._metadata_prefix, reference_map=self._reference_map)
            logger.info("bound to %s/%s: fields %s, question %r, labels %s, reference %s%s", self.workspace,
                        self.dataset_name, list(self._binding.fields), self._binding.question,
                        list(self._binding.labels), self._binding.reference, _metadata_names_note(shape, self._binding))
        return self._binding

    @property
    def server_version(self) -> Version:
        """The argilla-server release (``GET /api/v1/version``, read once); one that does not parse as a release
        (a development build) reads as the newest tested."""
        if self._server_version is None:
            text = str(self._request("GET", "/api/v1/version").get("version", ""))
            try:
                self._server_version = Version(text)
            except InvalidVersion:
                logger.info("argilla-server reports version %r: read as %s", text, FIELD_UPDATES_SINCE)
                self._server_version = FIELD_UPDATES_SINCE
        return self._server_version

    def _check_server_release(self) -> None:
        """Say in the log what an older server will not do (each job still runs: nothing here is refused)."""
        for caveat in release_caveats(self.server_version):
            logger.warning("%s (at %s)", caveat, self.api_url)

    def _check_role(self) -> None:
        """An annotator's key can neither search a dataset's records nor write suggestions and metadata properties:
        say so before the first job fails half-way on a 403.

        Raises:
            ArgillaRefusedError: the key belongs to an annotator (names the user and what to use instead).
        """
        me = self._request("GET", "/api/v1/me")
        if me.get("role") == ANNOTATOR_ROLE:
            raise ArgillaRefusedError(
                f"the API key belongs to {me.get('username')!r}, an annotator: the worker searches every record and "
                f"writes suggestions and metadata properties, which Argilla allows owners and admins only — use an "
                f"owner's key or that of an admin of workspace {self.workspace!r} (argilla.api_key)")

    def model_versions(self) -> set[str]:
        """The model versions whose values the records hold (the terms of the worker's ``model_version`` property,
        as the search index counts them: one request, whatever the dataset's size); empty before any push."""
        dataset_id = self._dataset().id
        name = self.binding.stored_name("model_version")
        properties = self._request("GET", f"/api/v1/me/datasets/{dataset_id}/metadata-properties")["items"]
        found = next((prop for prop in properties if prop["name"] == name), None)
        if found is None:
            return set()
        metrics = self._request("GET", f"/api/v1/metadata-properties/{found['id']}/metrics")
        return {str(value["term"]) for value in metrics.get("values") or []}

    def shape(self) -> DatasetShape:
        """The dataset's fields, questions and metadata properties, as plain values."""
        dataset_id = self._dataset().id
        fields = self._request("GET", f"/api/v1/datasets/{dataset_id}/fields")["items"]
        questions = self._request("GET", f"/api/v1/datasets/{dataset_id}/questions")["items"]
        metadata = self._request("GET", f"/api/v1/me/datasets/{dataset_id}/metadata-properties")["items"]
        return DatasetShape(
            name=self.dataset_name,
            fields=tuple(FieldInfo(f["name"], f["settings"]["type"], f.get("title") or f["name"]) for f in fields),
            questions=tuple(QuestionInfo(q["name"], q["settings"]["type"],
                                         tuple(str(o["value"]) for o in q["settings"].get("options") or []),
                                         str(q["id"]),
                                         tuple(str(o.get("text") or o["value"])
                                               for o in q["settings"].get("options") or [])) for q in questions),
            metadata=tuple(MetadataInfo(m["name"], m["settings"]["type"]) for m in metadata),
        )

    def vector_dimensions(self) -> dict[str, int]:
        """The dataset's vectors: name → dimensions (empty when it has none)."""
        items = self._request("GET", f"/api/v1/datasets/{self._dataset().id}/vectors-settings")["items"]
        return {str(item["name"]): int(item["dimensions"]) for item in items}

    def log_labelled_texts(self, records: Iterable[LabelledText], *, batch_size: int = TERMS_FILTER_MAX,
                           stop: threading.Event | None = None) -> LogReport:
        """Upsert records by id (the record's external id): the text into the bound (first) field, the original
        label into metadata ``original_label`` and, where no other agent's suggestion holds the question, an
        ``original`` suggestion — never a response.

        A record that already exists is merged into, never replaced: its other fields, its metadata (the user's
        and the worker's values), vectors, responses and any suggestion not by agent ``original`` stay as they
        are (the server replaces fields and metadata as a whole, so the payload carries the merged values), and
        a record nothing would change in is not sent: ingesting the same data again writes nothing. A new record
        the dataset cannot take (a required field ingest does not fill) or one the server refuses is reported in
        ``failed`` with the reason; the rest land.

        One search per batch finds the existing records by external id: memory O(batch), work O(records given),
        independent of the dataset's size. ``stop`` set (a SIGTERM / Ctrl-C): the batches sent stand, the next is
        not sent, and the report says ``stopped`` — ingesting the same records again finishes (what landed is
        found unchanged).

        Raises:
            ArgillaUnavailableError: the server could not be reached (the batches sent before it stay).
            ArgillaRefusedError: the server refused the ingest as a whole (authorisation, no dataset).
            BindingError: the text would go to a chat field (a conversation is a list of messages, not a text).
        """
        binding = self.binding
        if binding.fields[0] in binding.chat_fields:
            raise BindingError(f"ingest writes each text into field {binding.fields[0]!r}, which is a chat field (a "
                               f"conversation of messages): log conversations with the Argilla SDK, or bind "
                               f"argilla.fields to a text field")
        dataset = self._dataset()
        plan = _IngestPlan(binding, _required_fields(dataset), self.server_version)
        report, seen = LogReport(), 0
        for batch in batched(records, min(batch_size, TERMS_FILTER_MAX, PAGE_SIZE)):
            if stop is not None and stop.is_set():
                report.stopped = True
                break
            existing = self._existing_by_external_id([record.id for record in batch], dataset.id)
            payloads, created = [], set()
            for record in batch:
                found = existing.get(record.id)
                planned = plan.payload(record, found)
                if planned.kept_label is not None:
                    report.labels_kept[record.id] = planned.kept_label
                if planned.kept_text is not None:
                    report.texts_kept[record.id] = planned.kept_text
                if planned.refusal is not None:
                    report.failed[record.id] = planned.refusal
                elif planned.item is None:
                    report.unchanged += 1
                else:
                    payloads.append((record.id, planned.item))
                    if found is None:
                        created.add(record.id)
            if payloads:
                sent = PushReport()
                self._add_written_properties(dataset, payloads)
                self._send_batch(dataset.id, payloads, sent, retry=True)
                report.failed.update(sent.failed)
                report.created += sum(record_id in created for record_id in sent.sent_ids)
                report.updated += sum(record_id not in created for record_id in sent.sent_ids)
            seen += len(batch)
            if seen // INGEST_PROGRESS_EVERY > (seen - len(batch)) // INGEST_PROGRESS_EVERY:
                logger.info("ingest: %d records so far (%s)", seen, report.summary(limit=0).splitlines()[0])
        logger.info("ingest into %s/%s: %s", self.workspace, self.dataset_name, report.summary().splitlines()[0])
        return report

    def texts_by_external_id(self, external_ids: Sequence[str]) -> dict[str, str | None]:
        """The records of the dataset with these ids (at most ``TERMS_FILTER_MAX``): id → the text of the bound
        (first) field, None where it has none; {} when the dataset does not exist yet (nothing is created). One
        search request."""
        dataset = self._find_dataset()
        if dataset is None:
            return {}
        field = self.binding.fields[0]
        found = self._existing_by_external_id(list(external_ids), dataset.id)
        return {record_id: (item.get("fields") or {}).get(field) for record_id, item in found.items()}

    def _existing_by_external_id(self, external_ids: Sequence[str], dataset_id) -> dict[str, dict]:
        """The dataset's records with these external ids (at most ``TERMS_FILTER_MAX``), as the server's JSON
        (fields, metadata, suggestions), by external id: one search request."""
        if not external_ids:
            return {}
        condition = {"type": "terms", "scope": {"entity": "record", "property": "external_id"},
                     "values": list(external_ids)}
        found = self._search(dataset_id, [condition], None, len(external_ids))
        return {str(item["external_id"]): item for item in found if item.get("external_id") is not None}

    # ------------------------------------------------------------------ pull

    def pull(self, *, since: datetime | None = None, reconciliation: Reconciliation | None = None,
             condition: dict | None = None, page_size: int = PAGE_SIZE,
             vector: str | None = None, fields: Sequence[str] = (),
             questions: Sequence[str] = (), after: tuple[datetime, str] | None = None) -> Iterator[PulledRecord]:
        """Records with their metadata, suggestion and responses, a page at a time (keyset paging, see
        :mod:`worker.gateway.paging`: memory O(page), no ceiling on the dataset's size).

        ``since=None`` pulls every record (used after a model change), or with ``after`` (a record's
        ``PulledRecord.position``) every record after that one. Otherwise only what changed, each
        record once, without reading the rest of the dataset:

        * records inserted or updated after ``since`` (fields, metadata, suggestions: the search index's
          ``updated_at``);
        * reviewed records the worker last scored as unreviewed (metadata ``submitted_responses`` = 0 and a
          submitted response): the search index does not bump ``updated_at`` for a response, so a first
          review is found by what the worker wrote, not by time;
        * with a ``reconciliation``, the annotated records with a response changed after its previous mark
          (None: every annotated record): a second annotator's response, an edited or discarded one.
          With webhooks those arrive as events at once; reconciliation is the safety net of polling, run
          every ``scoring.reconcile_minutes``.

        ``condition`` is a search filter every record must also match. ``vector`` names one of the dataset's
        vectors to read with each record (``PulledRecord.vector``; check the name with :meth:`vector_dimensions`).
        ``fields``: other fields of the dataset whose values each record also carries in ``field_values`` (beside the
        bound ones: what publishing writes). ``questions``: other questions of the dataset whose submitted answers
        each record also carries in ``answers``.
        """
        conditions = [condition] if condition else []
        if since is None:
            yield from self._records(self._pages(conditions, page_size, vector, after), vector, fields, questions)
            return
        if after is not None:
            raise ValueError("after goes with since=None: a pull of what changed has no single order to resume")
        updated = {"type": "range", "scope": {"entity": "record", "property": "updated_at"},
                   "ge": (since - WATERMARK_OVERLAP).isoformat()}
        seen: set[str] = set()  # O(records changed since `since`)
        for record in self._records(self._pages(conditions + [updated], page_size)):
            if record.last_change is not None and record.last_change > since:
                seen.add(record.server_id)
                yield record
        binding = self.binding
        if binding.stored_name(SUBMITTED_RESPONSES) in {prop.name for prop in self._dataset().settings.metadata}:
            for record in self._records(self._pages(conditions + new_reviews(binding), page_size)):
                if record.server_id not in seen:
                    seen.add(record.server_id)
                    yield record
        if reconciliation is None:
            return
        for record in self._records(self._pages(conditions + [ANNOTATED_FILTER], page_size)):
            if reconciliation.wants(record) and record.server_id not in seen:
                yield record

    def newest_change(self, since: datetime | None = None) -> datetime | None:
        """The latest ``updated_at`` of any record of the dataset (server clock): one search request, over the
        records changed since ``since`` when given (an incremental run's cost stays independent of N)."""
        order = [{"scope": {"entity": "record", "property": "updated_at"}, "order": "desc"}]
        after = [] if since is None else [{"type": "range", "scope": {"entity": "record", "property": "updated_at"},
                                           "ge": (since - WATERMARK_OVERLAP).isoformat()}]
        newest = self._search(self._dataset().id, after, order, 1)
        return _parse_time(newest[0].get("updated_at")) if newest else since

    def server_time(self) -> datetime:
        """The server's clock now, to the second below (its HTTP ``Date`` header), as naive UTC like its
        timestamps; this machine's clock if the server sends no date."""
        stamp = self._response("GET", "/api/v1/version").headers.get("date")
        now = parsedate_to_datetime(stamp) if stamp else datetime.now(UTC)
        return now.astimezone(UTC).replace(tzinfo=None)

    def reconciliation(self, previous: datetime | None) -> Reconciliation:
        """A :class:`Reconciliation` for a run starting now, after the one that covered ``previous``."""
        return Reconciliation(previous, limit=self.server_time() - timedelta(seconds=1))

    def watermark(self, previous: datetime | None) -> Watermark:
        """A :class:`Watermark` for a run starting now, after ``previous``."""
        return Watermark(previous, ceiling=self.newest_change(previous))

    @property
    def dataset_key(self) -> str:
        """What the worker's state (watermarks, annotator estimates …) is kept under: the dataset, and the
        question when the dataset has several (one worker per question)."""
        key = self._base_key
        return f"{key}#{self.binding.question}" if self.binding.metadata_prefix else key

    @property
    def _base_key(self) -> str:
        return f"{self.api_url}|{self.workspace}/{self.dataset_name}"

    def pull_incremental(self, state: SyncState, *, reconcile: bool = False) -> Iterator[PulledRecord]:
        """Records changed since the persisted watermark (with ``reconcile``: and the annotated records whose
        responses changed since the last reconciliation); the watermark advances only once the pull is complete."""
        since = state.watermark(self.dataset_key)
        watermark = self.watermark(since)
        reconciliation = self.reconciliation(state.reconciled(self.dataset_key)[0]) if reconcile else None
        for record in self.pull(since=since, reconciliation=reconciliation):
            watermark.see(record)
            yield record
        state.set_watermark(self.dataset_key, watermark.value)
        if reconciliation is not None:
            state.set_reconciled(self.dataset_key, reconciliation.value)

    def corrections(self) -> tuple[list[Correction], list[Correction]]:
        """Consensus labels from submitted responses: (records with a consensus, tied records).

        Unweighted votes (:func:`worker.records.consensus`): what the dataset holds as annotators answered it.
        The jobs weigh the votes by each annotator's estimated reliability instead (:mod:`worker.crowd`)."""
        verdicts = [verdict for record in self.pull_annotated() if (verdict := consensus(record))]
        ties = [verdict for verdict in verdicts if verdict.label is None]
        for tie in ties:
            logger.warning("record %s: no consensus, votes tied between %s", tie.record_id, list(tie.tied_labels))
        return [verdict for verdict in verdicts if verdict.label is not None], ties

    def count_submitted(self, *, marked: str | None = None) -> int:
        """How many records have a submitted response — with ``marked`` (a worker's metadata name, e.g.
        ``test_set_rank``), only those that carry it, at 1 or more: one search request (its ``total``), O(1) in the
        dataset's size."""
        mark = [] if marked is None else [{"type": "range", "ge": 1, "scope": {
            "entity": "metadata", "metadata_property": self.binding.stored_name(marked)}}]
        return self._count([SUBMITTED_FILTER, *mark])

    def min_submitted(self) -> int:
        """How many submitted responses the dataset's task distribution asks of each record before Argilla calls it
        completed (the ``overlap`` strategy's ``min_submitted``; 1 when the server gives none). One request: the team
        may change it while the worker runs."""
        body = self._request("GET", f"/api/v1/datasets/{self._dataset().id}")
        value = (body.get("distribution") or {}).get("min_submitted")
        return value if isinstance(value, int) and value >= 1 else 1

    def count_records(self) -> int:
        """How many records the dataset holds: one search request, O(1) in the dataset's size."""
        return self._count([])

    def _count(self, conditions: list[dict]) -> int:
        query = {"filters": {"and": conditions}} if conditions else {}
        body = self._request("POST", f"/api/v1/datasets/{self._dataset().id}/records/search",
                             params={"offset": 0, "limit": 1}, json=query)
        return int(body["total"])

    def pull_annotated(self) -> Iterator[PulledRecord]:
        """Only the records that have at least one response (any status)."""
        yield from self._records(self._pages([ANNOTATED_FILTER], PAGE_SIZE))

    def _records(self, pages: Iterable[list[dict]], vector: str | None = None,
                 fields: Sequence[str] = (), questions: Sequence[str] = ()) -> Iterator[PulledRecord]:
        binding = self.binding
        unread = UnreadLabels(binding, self._unread_named)
        for page in pages:
            for item in page:
                yield unread.seen(_pulled_record(item, binding, vector, fields, questions))
        unread.close()

    def _pages(self, conditions: list[dict], page_size: int, vector: str | None = None,
               after: tuple[datetime, str] | None = None) -> Iterator[list[dict]]:
        dataset_id = self._dataset().id
        return keyset_pages(lambda filters, sort, limit: self._search(dataset_id, filters, sort, limit, vector),
                            conditions, min(page_size, MAX_PAGE), after)

    def _search(self, dataset_id, conditions: list[dict], sort: list[dict] | None, limit: int,
                vector: str | None = None, *, responses: bool = True) -> list[dict]:
        """One request to the dataset's search endpoint: the first ``limit`` records matching every condition
        (with the vector named ``vector`` when one is; without their responses when ``responses`` is False)."""
        query: dict = {}
        if conditions:
            query["filters"] = {"and": conditions}
        if sort:
            query["sort"] = sort
        include = [*(["responses"] if responses else []), "suggestions", *([f"vectors:{vector}"] if vector else [])]
        body = self._request("POST", f"/api/v1/datasets/{dataset_id}/records/search",
                             params={"include": include, "offset": 0, "limit": limit}, json=query)
        return [item["record"] for item in body["items"]]

    # ------------------------------------------------------------------ push

    def push(self, predictions: Iterable[Prediction], *, current: Mapping[str, PulledRecord],
             batch_size: int = PAGE_SIZE, force: Collection[str] = (), concurrency: int = 1) -> PushReport:
        """Write each prediction as the record's suggestion and metadata, in bulk batches.

        ``current`` is the records' state from the last pull (external id → record): records whose values
        would not change there are not sent — except those in ``force`` (an earlier push of theirs failed:
        the database may hold the values while the search index does not). The others are merged into
        the record as the server holds it just before their batch is sent (see :meth:`_send_current`: the
        server replaces metadata as a whole). Responses are never part of the payload. A batch the server
        fails or refuses is split until the records that fail alone are isolated (see :meth:`_send`); the
        others land. ``concurrency`` > 1 sends the payloads as that many bulk requests at once (for a
        server with several processes).

        Raises:
            ArgillaUnavailableError: the server could not be reached (nothing more is attempted).
            ArgillaRefusedError: the server refused the push as a whole (authorisation, no dataset).
        """
        binding = self.binding
        context = _PushContext(binding, self._writable_properties())
        report = PushReport()
        items = (self._push_item(p, current, context, report, force) for p in predictions)
        return self._send(items, report, batch_size, concurrency=concurrency)

    def read(self, server_ids: Iterable[str], *, responses: bool = True) -> Iterator[PulledRecord]:
        """The records of the bound dataset with these server ids, through the dataset's search endpoint
        filtered on ``record.id`` (``TERMS_FILTER_MAX`` ids per request: O(len(server_ids)) work, independent
        of the dataset's size; without their responses when ``responses`` is False). Ids that are not records
        of this dataset (deleted meanwhile, another dataset's, not an id at all) are skipped with a log line.

        Not ``GET /api/v1/records/{id}``: argilla-server 2.8 answers it with a 500 for any record that has
        a vector (it serialises ``vector.vector_settings`` without loading it: ``MissingGreenlet``)."""
        binding, dataset_id = self.binding, self._dataset().id
        wanted = list(dict.fromkeys(str(server_id) for server_id in server_ids))
        for start in range(0, len(wanted), TERMS_FILTER_MAX):
            found = self._with_ids(dataset_id, [server_id for server_id in wanted[start:start + TERMS_FILTER_MAX]
                                                if _is_uuid(server_id)], responses=responses)
            missing = set(wanted[start:start + TERMS_FILTER_MAX]) - {str(item["id"]) for item in found}
            if missing:
                logger.info("%d record id(s) are not records of %s (deleted meanwhile?): skipped, e.g. %s",
                            len(missing), self.dataset_name, sorted(missing)[:3])
            for item in found:
                yield _pulled_record(item, binding)

    def _with_ids(self, dataset_id, server_ids: list[str], *, responses: bool = True) -> list[dict]:
        """The raw records among ``server_ids`` (at most ``TERMS_FILTER_MAX`` record UUIDs): one search request."""
        if not server_ids:
            return []
        condition = {"type": "terms", "scope": {"entity": "record", "property": "id"}, "values": server_ids}
        return self._search(dataset_id, [condition], None, len(server_ids), responses=responses)

    def push_metadata(self, values: Mapping[str, Mapping[str, float | str]], *,
                      current: Mapping[str, PulledRecord], batch_size: int = PAGE_SIZE,
                      report: PushReport | None = None) -> PushReport:
        """Merge metadata ``values`` (external id → {property: value}) into records; no suggestion is
        written or removed (the server upserts only the suggestions a payload names). ``report``: add to
        this one (a job pushing page by page), else a new one."""
        binding = self.binding
        known = self._writable_properties()
        report = report if report is not None else PushReport()

        def item(record_id: str, new: Mapping[str, float | str]) -> _Write | None:
            record = current.get(record_id)
            unknown = sorted(set(binding.stored(new)) - known)
            if record is None or unknown:
                report.rejected[record_id] = ("not in the dataset (pull it first)" if record is None
                                              else f"metadata {unknown} are not properties of the dataset")
                return None
            write = _Write(record_id, record, _MetadataWrite(binding.stored(sanitise_metadata(record_id, dict(new)))))
            if write.payload(record) is None:
                report.unchanged += 1
                return None
            return write

        return self._send((item(record_id, new) for record_id, new in values.items()), report, batch_size)

    def drop_metadata(self, names: Collection[str], *, current: Mapping[str, PulledRecord],
                      batch_size: int = PAGE_SIZE) -> PushReport:
        """Remove the worker's metadata ``names`` (plain names; the binding's prefix is added) from each record of
        ``current`` (external id → record) that holds any of them — values a newer run no longer computes for it,
        which a sort would otherwise mix with the new ones. Nothing else of a record changes (merged into it as the
        server holds it when sent)."""
        drop = _MetadataDrop(tuple(self.binding.stored_name(name) for name in names))
        writes = [_Write(record_id, record, drop) for record_id, record in current.items() if drop(record) is not None]
        return self._send(writes, PushReport(), batch_size) if writes else PushReport()

    def withdraw_model_answers(self, records: Mapping[str, PulledRecord], names: Collection[str], *,
                               batch_size: int = PAGE_SIZE) -> PushReport:
        """Take the worker's answer off each record of ``records`` (external id → record): its suggestion for the bound
        question (the agent the record's ``model_version`` names, or the consensus agent; another agent's suggestion
        stays) and its metadata ``names`` (plain names). Suggestions go first, one DELETE each: a failure leaves the
        record's ``model_version`` there, so a later call still knows the suggestion for the worker's. A suggestion
        the server no longer has counts as withdrawn. ``sent``: records changed. O(len(records)) requests."""
        report = PushReport()
        for record_id, record in records.items():
            suggestion = record.suggestion
            if suggestion is None or suggestion.id is None or is_foreign(suggestion.agent, record.metadata):
                continue
            try:
                self._request("DELETE", f"/api/v1/suggestions/{suggestion.id}")
            except ArgillaRefusedError as error:
                if error.status != 404:
                    report.failed[record_id] = f"its suggestion was not removed: {error.detail or error}"
                    continue
            report.sent += 1
            report.sent_ids.append(record_id)
        keep = {record_id: record for record_id, record in records.items() if record_id not in report.failed}
        dropped = self.drop_metadata(names, current=keep, batch_size=batch_size)
        report.failed.update(dropped.failed)
        report.sent_ids = list(dict.fromkeys([*report.sent_ids, *dropped.sent_ids]))
        report.sent = len(report.sent_ids)
        return report

    def _send(self, items: Iterable[_Write | None], report: PushReport, batch_size: int, *,
              concurrency: int = 1) -> PushReport:
        """Bulk-upsert the writes in batches of at most ``batch_size``, each merged into its records as the server
        holds them just before it is sent (:meth:`_send_current`).

        A batch the server answers with 5xx (after the retries) or a record-level 4xx is split in
        halves, each sent once without retries, down to single records: one bad record costs
        O(log batch) extra requests and the rest of its batch lands. Records that fail alone are
        reported in ``report.failed`` with the server's answer. (A bulk upsert the server answers
        with 500 may still have committed to its database while its search index was not updated:
        only a successful push of the record's own counts.) With ``concurrency`` > 1 the payloads
        (held in memory: O(len(items))) are cut into that many requests sent at once.
        """
        dataset_id = self._dataset().id
        payloads = (item for item in items if item is not None)
        if concurrency > 1:
            held = list(payloads)
            size = max(1, min(batch_size, PAGE_SIZE, -(-len(held) // concurrency)))
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="push") as pool:
                list(pool.map(lambda batch: self._send_current(dataset_id, batch, report), batched(held, size)))
        else:
            for batch in batched(payloads, min(batch_size, PAGE_SIZE)):
                self._send_current(dataset_id, batch, report)
        if report.failed:
            logger.error("push: %d record(s) failed even alone: %s", len(report.failed),
                         "; ".join(f"{record_id}: {reason}" for record_id, reason in list(report.failed.items())[:5]))
        logger.info("push: %d sent, %d unchanged, %d rejected, %d failed", report.sent, report.unchanged,
                    len(report.rejected), len(report.failed))
        return report

    def _send_current(self, dataset_id, writes: list[_Write], report: PushReport) -> None:
        """Send ``writes`` merged into their records as the server holds them now. The server replaces a record's
        metadata as a whole, so a payload built on the copy pulled before scoring would put back what another
        writer set since — a property of the team's, the values of the worker serving another question. The
        records are read again by id (one search per ``TERMS_FILTER_MAX``, suggestions only) right before the
        upsert; what remains is the time between that read and the upsert (about a second), where the server
        offers no conditional write. A record the search does not find (deleted meanwhile, or not indexed; logged) is
        written from its pulled copy: the server refuses a deleted one alone (:meth:`_send_batch`)."""
        now = {record.server_id: record for record in self.read((write.pulled.server_id for write in writes),
                                                                  responses=False)}
        batch = []
        for write in writes:
            payload = write.payload(now.get(write.pulled.server_id, write.pulled))
            if payload is None:  # another writer set the same values meanwhile
                with report.lock:
                    report.unchanged += 1
            else:
                batch.append((write.record_id, payload))
        if batch:
            self._add_written_properties(self._dataset(), batch)
            self._send_batch(dataset_id, batch, report, retry=True)

    def _send_batch(self, dataset_id, batch: list[tuple[str, dict]], report: PushReport, *, retry: bool) -> None:
        try:
            self._request("PUT", f"/api/v1/datasets/{dataset_id}/records/bulk",
                          json={"items": [payload for _, payload in batch]}, retry_5xx=retry)
        except ArgillaGatewayError as error:
            if error.status is None or (error.status < 500 and error.status not in SPLITTABLE_4XX):
                raise  # unreachable, or refused as a whole: no smaller batch can do better
            if len(batch) == 1:
                with report.lock:
                    refused = error.detail and error.status is not None and error.status < 500
                    report.failed[batch[0][0]] = (f"Argilla refused it ({error.status}): {error.detail}"
                                                  if refused else str(error))
                return
            logger.warning("push of %d records failed (%s): splitting the batch to isolate the record(s) at fault",
                           len(batch), error)
            middle = len(batch) // 2
            self._send_batch(dataset_id, batch[:middle], report, retry=False)
            self._send_batch(dataset_id, batch[middle:], report, retry=False)
            return
        with report.lock:
            report.sent += len(batch)
            report.sent_ids.extend(record_id for record_id, _ in batch)

    def _push_item(self, prediction: Prediction, current: Mapping[str, PulledRecord], context: _PushContext,
                   report: PushReport, force: Collection[str] = ()) -> _Write | None:
        """The write of ``prediction``, or None: refused (``report.rejected``) or nothing to change in the record as
        pulled (``report.unchanged``; unless the record is in ``force``)."""
        record = current.get(prediction.record_id)
        reason = context.problem(prediction, record)
        if record is None or reason is not None:
            reason = reason or "not in the dataset (pull it first)"
            logger.warning("record %s not pushed: %s", prediction.record_id, reason)
            report.rejected[prediction.record_id] = reason
            return None
        write = _Write(prediction.record_id, record, _PredictionWrite(
            context.binding, prediction, context.binding.stored(sanitise_metadata(prediction.record_id,
                                                                                  prediction.metadata)),
            forced=prediction.record_id in force))
        if write.payload(record) is None:
            report.unchanged += 1
            return None
        return write

    # ------------------------------------------------------------------ webhooks

    def dataset_id(self) -> str:
        """The bound dataset's id on the server (what webhook events name it by)."""
        return str(self._dataset().id)

    def usernames(self) -> dict[str, str]:
        """{user id: username} of the server's users, or {} when the API key may not list them (owner only)."""
        try:
            return {str(user["id"]): user["username"] for user in self._request("GET", "/api/v1/users")["items"]}
        except ArgillaRefusedError as error:
            logger.info("annotators are shown by user id: this API key may not list users (%s)", error.status)
            return {}

    def list_webhooks(self) -> list[dict]:
        """Every webhook of the server (``id``, ``url``, ``events``, ``enabled``, ``description``, ``secret``)."""
        return self._request("GET", "/api/v1/webhooks")["items"]

    def create_webhook(self, url: str, events: Sequence[str], description: str) -> dict:
        """A new webhook delivering ``events`` to ``url``; the answer carries its signing ``secret``."""
        return self._request("POST", "/api/v1/webhooks",
                             json={"url": url, "events": list(events), "description": description})

    def update_webhook(self, webhook_id: str, *, events: Sequence[str], enabled: bool = True) -> dict:
        """Set a webhook's events and whether it is enabled; answers the webhook as it now is."""
        return self._request("PATCH", f"/api/v1/webhooks/{webhook_id}", json={"events": list(events),
                                                                              "enabled": enabled})

    def delete_webhook(self, webhook_id: str) -> None:
        self._request("DELETE", f"/api/v1/webhooks/{webhook_id}")

    def ping_webhook(self, webhook_id: str) -> None:
        """Ask the server to deliver a ``ping`` event to the webhook now."""
        self._request("POST", f"/api/v1/webhooks/{webhook_id}/ping")

    # ------------------------------------------------------------------ HTTP

    def _request(self, method: str, path: str, *, retry_5xx: bool = True, **kwargs) -> dict:
        """One HTTP call with retries on connection errors and 5xx (``retry_5xx=False``: a 5xx answer is final);
        errors become ArgillaUnavailableError (no answer, 5xx) or ArgillaRefusedError (4xx), with ``status``.

        (Connection errors are always retried: after a 500 the server may reset the kept-alive connection.)
        """
        response = self._response(method, path, retry_5xx=retry_5xx, **kwargs)
        return response.json() if response.content else {}

    def _response(self, method: str, path: str, *, retry_5xx: bool = True, **kwargs) -> httpx.Response:
        """:meth:`_request`'s HTTP call and error mapping, answering the response itself."""
        http = self.client.http_client

        def call() -> httpx.Response:
            response = http.request(method, path, **kwargs)
            response.raise_for_status()
            return response

        retrying = Retrying(
            retry=retry_if_exception(_is_retryable if retry_5xx else _is_transport_error),
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_exponential(multiplier=self.retry.initial_wait_s, max=self.retry.max_wait_s),
            before_sleep=lambda state: logger.warning("Argilla %s %s failed (%s); retry %d of %d", method, path,
                                                      state.outcome.exception() if state.outcome else None,
                                                      state.attempt_number, self.retry.attempts - 1),
            reraise=True,
        )
        try:
            return retrying(call)
        except httpx.HTTPStatusError as error:
            status = error.response.status_code
            if status == 404:
                self._check_still_bound(path, error.response)
            kind = ArgillaUnavailableError if status >= 500 else ArgillaRefusedError
            raise kind(f"Argilla {method} {path} answered {status}: {error.response.text[:500]}",
                       status=status, detail=_server_detail(error.response)) from error
        except httpx.TransportError as error:
            raise ArgillaUnavailableError(f"Argilla at {self.api_url} unreachable after {self.retry.attempts} "
                                          f"attempts ({method} {path}): {error}") from error

    def _find_dataset(self) -> rg.Dataset | None:
        """The dataset, or None when its workspace has none of that name.

        Raises:
            ConfigError: the key's user sees no workspace of that name (it does not exist, or they are not a member:
                an admin sees only their own workspaces) — the message lists those they see.
            ArgillaUnavailableError: the server did not answer.
        """
        try:
            with warnings.catch_warnings():  # the SDK warns of an absent one: a normal answer here, said below
                warnings.filterwarnings("ignore", message="(Workspace|Dataset) with name")
                workspace = self.client.workspaces(self.workspace)
                if workspace is None:
                    visible = sorted(w.name for w in self.client.workspaces)
                else:
                    return self.client.datasets(name=self.dataset_name, workspace=workspace)
        except Exception as error:  # the SDK's errors share no base class
            raise ArgillaUnavailableError(f"cannot read dataset {self.workspace}/{self.dataset_name} "
                                          f"from {self.api_url}: {error}") from error
        raise ConfigError(f"argilla.workspace: workspace {self.workspace!r} does not exist on {self.api_url}, or the "
                          f"API key's user is not a member of it (an admin sees only their workspaces); the user "
                          f"sees {', '.join(map(repr, visible)) or 'none'} (an owner creates one in the UI's settings "
                          f"or with the SDK: rg.Workspace(name=...).create())")

    def _check_still_bound(self, path: str, response: httpx.Response) -> None:
        """After a 404 on a path under the bound dataset: when the server no longer has that dataset (deleted, or
        deleted and created again under its name), forget it and its binding.

        Raises:
            DatasetReplacedError: the bound dataset is gone (names it and its id; the next attempt binds anew).
        """
        cached = self._cached_dataset
        if cached is None or f"/datasets/{cached.id}" not in path:
            return
        try:  # one plain call (not _request: its 404 would come back here)
            if self.client.http_client.get(f"/api/v1/datasets/{cached.id}").status_code != 404:
                return  # the dataset is there: the 404 was about something else
        except httpx.TransportError:
            return  # unknown: the caller's error stands
        key = self.dataset_key if self._binding is not None else self._base_key
        self._cached_dataset, self._binding, self._properties = None, None, None
        raise DatasetReplacedError(
            f"dataset {self.workspace}/{self.dataset_name} (id {cached.id}) is no longer on {self.api_url}: it was "
            f"deleted, or deleted and created again under its name — the next attempt binds to the dataset of "
            f"that name, if there is one", dataset_id=str(cached.id), dataset_key=key, status=404,
            detail=_server_detail(response))

    def _dataset(self) -> rg.Dataset:
        """The dataset (looked up once per gateway and kept; forgotten when the server no longer has it, see
        :meth:`_check_still_bound`)."""
        if self._cached_dataset is not None:
            return self._cached_dataset
        dataset = self._find_dataset()
        if dataset is None:
            raise ArgillaRefusedError(
                f"dataset {self.workspace}/{self.dataset_name} does not exist on {self.api_url}"
            )
        self._cached_dataset = dataset
        return dataset

    def _check_labels(self, labels: Sequence[str], multi_label: bool = False) -> None:
        binding = self.binding
        if binding.multi_label != multi_label:
            kinds = {True: "a multi-label question (label sets)", False: "a single-label question (one label)"}
            raise LabelSetMismatchError(
                f"dataset {self.dataset_name} question {binding.question!r} is {kinds[binding.multi_label]}, "
                f"but the input has {'label sets' if multi_label else 'one label per record'}"
            )
        if set(binding.labels) != set(labels):
            raise LabelSetMismatchError(
                f"dataset {self.dataset_name} question {binding.question!r} has labels {sorted(binding.labels)}, "
                f"but the worker expects {sorted(labels)}"
            )

    def expect_float_metadata(self, names: Iterable[str]) -> None:
        """Plugin scores (float, plain names) a job will write: each becomes a metadata property of the dataset with
        its first values, as the worker's own do (see :meth:`_add_written_properties`), not as an empty entry in the
        UI's sort and filter menus beforehand. No request."""
        with self._properties_lock:
            self._plugin_properties.update(map(self.binding.stored_name, names))

    def check_other_fields(self, names: Iterable[str]) -> None:
        """Fields besides the bound one that an ingest fills (e.g. ``--field-column``).

        Raises:
            BindingError: a name is not a field of the dataset (the message lists them), or is the bound field.
        """
        shape, bound = self.shape(), self.binding.fields[0]
        unknown = [name for name in names if name not in {f.name for f in shape.fields}]
        if unknown:
            raise BindingError(f"dataset {self.dataset_name} has no field {', '.join(map(repr, unknown))}; "
                               f"{shape.describe()}")
        if bound in names:
            raise BindingError(f"field {bound!r} of dataset {self.dataset_name} takes the text column already")

    def ensure_user_metadata(self, kinds: Mapping[str, str]) -> None:
        """Metadata properties of the user's own (name → ``terms`` / ``integer`` / ``float``, e.g. from ingest's
        metadata columns): the missing ones are created; existing ones are used as they are.

        Raises:
            BindingError: a name is one of the worker's own properties on this dataset, or an existing property
                cannot hold the values (integers go into a float property, nothing else crosses kinds).
        """
        dataset, binding = self._dataset(), self.binding
        worker_names = {binding.stored_name(name) for name in WORKER_METADATA_TYPES}
        taken = sorted(name for name in kinds if name in worker_names)
        if taken:
            raise BindingError(f"metadata {taken} would be the worker's own propert{'y' if len(taken) == 1 else 'ies'}"
                               f" on dataset {self.dataset_name}: ingest them under other names (COLUMN=NAME)")
        present = {prop.name: prop.type for prop in self.shape().metadata}
        for name, kind in kinds.items():
            existing = present.get(name)
            if existing is None:
                self._create_metadata_property(dataset, name, kind)
                logger.info("added metadata property %r (%s) to %s", name, kind, self.dataset_name)
                self._cached_dataset = None
            elif existing != kind and not (existing == "float" and kind == "integer"):
                raise BindingError(f"metadata property {name!r} of dataset {self.dataset_name} is {existing}, but "
                                   f"the input's values are {kind}")

    def _create_metadata_property(self, dataset: rg.Dataset, name: str, kind: str) -> None:
        self._request("POST", f"/api/v1/datasets/{dataset.id}/metadata-properties",
                      json={"name": name, "title": name, "visible_for_annotators": True, "settings": {"type": kind}})
        if self._properties is not None:
            self._properties.add(name)

    def _update_guidelines(self, dataset: rg.Dataset) -> None:
        """Append the worker's section to the dataset's guidelines once, or update it between its markers;
        the rest of the text is the user's and stays as it is. One PATCH, only when the text changes."""
        current = dataset.settings.guidelines
        wanted = merged_guidelines(current, self.binding.multi_label, self._guidelines_scope(), self.binding.rating)
        if wanted != current:
            self._request("PATCH", f"/api/v1/datasets/{dataset.id}", json={"guidelines": wanted})
            self._cached_dataset = None
            logger.info("guidelines of %s: the worker's section %s", self.dataset_name,
                        "updated" if current and "argilla-worker guidelines" in current else "appended")

    def _guidelines_scope(self) -> GuidelinesScope | None:
        """The question and metadata prefix the worker's guidelines section speaks of (None: the dataset's only
        label question, plain metadata names)."""
        binding = self.binding
        return GuidelinesScope(binding.question, binding.metadata_prefix) if binding.metadata_prefix else None

    def metadata_property_names(self) -> set[str]:
        """The dataset's metadata property names as the server has them now (one request, reads only; not the
        settings cached with the dataset, which miss a property deleted or added since)."""
        return {str(item["name"]) for item in self._request(
            "GET", f"/api/v1/me/datasets/{self._dataset().id}/metadata-properties")["items"]}

    def worker_properties(self) -> dict[str, WorkerMetadata]:
        """The worker's metadata properties for the bound question, by server name, in the order of
        :data:`WORKER_METADATA` (the order of the UI's sort menu when they are created together)."""
        binding = self.binding
        return {binding.stored_name(spec.name): spec for spec in worker_metadata(binding.multi_label, binding.rating)}

    def _writable_properties(self) -> set[str]:
        """The metadata names a write may carry: the dataset's properties and the worker's own (created on their
        first write)."""
        with self._properties_lock:
            if self._properties is None:
                self._properties = self.metadata_property_names()
            return self._properties | set(self.worker_properties()) | self._plugin_properties

    def _add_written_properties(self, dataset: rg.Dataset, batch: list[tuple[str, dict]]) -> None:
        """Create the worker's metadata properties the dataset lacks when ``batch`` (bulk-upsert items) first writes
        one of them, before the batch is sent: a job's properties appear together in the UI's sort and filter menus
        when it first has values (``copies`` after `argilla-worker copies`, ``label_issue`` after `score --oof`; the
        scores with the first scoring), not as empty entries beforehand. With the first of them come
        :data:`~worker.binding.WORKER_MARKS`, by which a later binding tells the worker's names from the team's.
        The plugins' scores (:meth:`expect_float_metadata`) are created the same way, each with its first value.
        One POST each; the user's settings (guidelines, fields, questions, their properties) are not sent, so never
        touched. O(batch) set work; a property another process created meanwhile is taken as there."""
        written = {name for _, payload in batch for name in payload.get("metadata") or ()}
        ours = self.worker_properties()
        with self._properties_lock:
            present = self._properties if self._properties is not None else self.metadata_property_names()
            jobs = {ours[name].written_by for name in written if name in ours and name not in present}
            if jobs:
                marks = {self.binding.stored_name(mark) for mark in WORKER_MARKS}
                missing = [name for name, spec in ours.items()
                           if name not in present and (spec.written_by in jobs or name in marks)]
                for name in missing:
                    self._create_worker_property(dataset, name, ours[name].kind)
                present.update(missing)
                logger.info("added metadata properties %s to %s", missing, self.dataset_name)
                self._cached_dataset = None
            plugins = sorted(name for name in written & self._plugin_properties if name not in present)
            for name in plugins:
                self._create_worker_property(dataset, name, "float")
            if plugins:
                present.update(plugins)
                logger.info("added plugin metadata properties %s to %s", plugins, self.dataset_name)
                self._cached_dataset = None
            self._properties = present

    def _create_worker_property(self, dataset: rg.Dataset, name: str, kind: str) -> None:
        """Create the property, or find it there: another worker process created it first."""
        try:
            self._create_metadata_property(dataset, name, kind)
        except ArgillaRefusedError:
            if name not in self.metadata_property_names():
                raise


def _metadata_names_note(shape: DatasetShape, binding: DatasetBinding) -> str:
    """The bound-to log's words on the worker's metadata names: nothing for the plain ones, the prefix, and why
    when the dataset's own properties hold the plain names."""
    if not binding.metadata_prefix:
        return ""
    theirs = users_names(shape, "", WORKER_METADATA_TYPES) if binding.metadata_prefix == OWN_NAMES_PREFIX else []
    what = f"property {theirs[0]} keeps its name" if len(theirs) == 1 else f"properties {', '.join(theirs)} keep theirs"
    why = f" (the dataset's own {what}, untouched)" if theirs else ""
    return f", metadata named {binding.metadata_prefix}<name>{why}"


@dataclass(frozen=True)
class _PushContext:
    binding: DatasetBinding
    metadata_names: set[str]  # the dataset's properties and the worker's own, the server's names

    def problem(self, prediction: Prediction, record: PulledRecord | None) -> str | None:
        if record is None:
            return "not in the dataset (pull it first)"
        labels = prediction.label if isinstance(prediction.label, tuple) else (prediction.label,)
        scores = prediction.score if isinstance(prediction.score, tuple) else (prediction.score,)
        if not labels:
            return "an empty label set (Argilla keeps at least one label per answer)"
        unknown_labels = [label for label in labels if label not in self.binding.labels]
        if unknown_labels:
            return f"label {unknown_labels[0]!r} is not one of the question's labels {sorted(self.binding.labels)}"
        if len(scores) != len(labels):
            return f"{len(scores)} suggestion scores for {len(labels)} labels"
        if not all(0.0 <= score <= 1.0 for score in scores):
            return f"suggestion score {prediction.score!r} is not in [0, 1]"
        unknown = set(self.binding.stored(prediction.metadata)) - self.metadata_names
        if unknown:
            return f"metadata {sorted(unknown)} are not properties of the dataset"
        return None


@dataclass(frozen=True)
class _PredictionWrite:
    """A prediction as the bound question's suggestion and the worker's metadata (``metadata``: sanitised, the
    server's names), merged into a record's metadata with another agent's suggestion preserved first."""

    binding: DatasetBinding
    prediction: Prediction
    metadata: dict
    forced: bool = False  # sent even when the record already holds it (an earlier push of it failed)

    def __call__(self, record: PulledRecord) -> dict | None:
        """The bulk-upsert item for ``record`` as it is; None when the record already holds it all."""
        prediction, binding = self.prediction, self.binding
        metadata = {**record.server_metadata, **binding.stored(_preserved(record, binding)), **self.metadata}
        suggestion = SuggestionState(prediction.label, prediction.agent, prediction.score)
        if (not self.forced and _same_metadata(metadata, record.server_metadata)
                and _same_suggestion(suggestion, record.suggestion)):
            return None
        return {"id": record.server_id, "metadata": metadata,
                "suggestions": [{"question_id": str(binding.question_id),
                                 "value": binding.server_value(prediction.label),
                                 "type": "model", "score": _json_value(prediction.score), "agent": prediction.agent}]}


@dataclass(frozen=True)
class _MetadataWrite:
    """Metadata values (the server's names) merged into a record's metadata; no suggestion written."""

    metadata: dict

    def __call__(self, record: PulledRecord) -> dict | None:
        metadata = {**record.server_metadata, **self.metadata}
        return None if _same_metadata(metadata, record.server_metadata) else {"id": record.server_id,
                                                                               "metadata": metadata}


@dataclass(frozen=True)
class _MetadataDrop:
    """Metadata properties (the server's names) removed from a record's metadata; no suggestion written."""

    names: tuple[str, ...]

    def __call__(self, record: PulledRecord) -> dict | None:
        if not any(name in record.server_metadata for name in self.names):
            return None
        kept = {key: value for key, value in record.server_metadata.items() if key not in self.names}
        return {"id": record.server_id, "metadata": kept}


class _Write(NamedTuple):
    """One record's pending write: ``payload(record)`` is its bulk-upsert item against ``record`` as the server holds
    it (None: nothing would change); ``pulled`` the copy it was decided on."""

    record_id: str
    pulled: PulledRecord
    payload: Callable[[PulledRecord], dict | None]


def _server_detail(response: httpx.Response) -> str | None:
    """The server's ``detail`` of an error answer, without the bulk endpoint's "Record at position N is not valid
    because" (the caller knows the record); None when the answer has none."""
    try:
        body = response.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    if detail is None:
        return None
    text = detail if isinstance(detail, str) else str(detail)
    return re.sub(r"^Record at position \d+ is not valid because ", "", text)[:500]


def _same_metadata(new: dict, old: dict) -> bool:
    return new.keys() == old.keys() and all(same_value(new[key], old[key]) for key in new)


def _same_suggestion(new: SuggestionState, old: SuggestionState | None) -> bool:
    return (old is not None and new.value == old.value and new.agent == old.agent
            and same_value(new.score, old.score))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _parse_time(value: str | None) -> datetime | None:
    """A server timestamp as naive UTC, as the server writes them (and :meth:`ArgillaGateway.server_time` gives): one
    with an offset is converted, so that the two always compare."""
    if not value:
        return None
    stamp = datetime.fromisoformat(value)
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo is not None else stamp


class UnreadLabels:
    """The records of one pass over the dataset (a score run's, a training's) whose own label (``argilla.reference =
    'metadata:NAME'``, the team's property) names none of the question's labels (``unsure``, a typo): each is read as
    a record without a label — scored for its uncertainty, trained on once annotated. A record holding a name not
    named before in this process (``named``: the gateway's, shared by its passes) is named in the log with the value,
    :attr:`SHOWN` in a pass at most; the rest are counted when the pass ends — a WARNING when the pass named some,
    an INFO line when every one holds a name said before (a team that keeps ``unsure`` on purpose is not warned on
    every pass).
    O(1) memory per pass; ``named`` holds at most :attr:`REMEMBERED` names."""

    SHOWN = 5
    REMEMBERED = 1000

    def __init__(self, binding: DatasetBinding, named: set[str] | None = None) -> None:
        self.binding = binding
        self.named = named if named is not None else set()
        self.count = 0
        self.shown = 0

    def seen(self, record: PulledRecord) -> PulledRecord:
        if record.reference is not None:  # read already (the common case: nothing to read twice)
            return record
        value = self.binding.unread_reference(record.server_metadata)
        if value is None:
            return record
        self.count += 1
        _, unknown = self.binding.spellings(value)
        new = [name for name in unknown if name not in self.named]
        if new and self.shown < self.SHOWN:
            self.shown += 1
            if len(self.named) < self.REMEMBERED:
                self.named.update(new)
            logger.warning("record %r: metadata %s = %r: %s none of the labels of question %r %s: read as a "
                           "record without a label (its uncertainty is scored, no loss; a review labels it)",
                           record.record_id, self.binding.reference.name, value,
                           ", ".join(map(repr, unknown)) + (" is" if len(unknown) == 1 else " are"),
                           self.binding.question, list(self.binding.labels))
        return record

    def close(self) -> None:
        if self.count <= self.shown:
            return
        if self.shown:
            logger.warning("%d records in all hold a %s with a name that is none of the labels of question %r (a "
                           "record of each such name named above): read as records without a label", self.count,
                           self.binding.reference.name, self.binding.question)
        else:
            logger.info("%d records hold a %s with a name that is none of the labels of question %r (named before): "
                        "read as records without a label", self.count, self.binding.reference.name,
                        self.binding.question)


def _pulled_record(item: dict, binding: DatasetBinding, vector: str | None = None,
                   fields: Sequence[str] = (), questions: Sequence[str] = ()) -> PulledRecord:
    """A record of the server's JSON as the binding sees it: its model input, question and reference label (and
    the vector named ``vector``, [D] float32, when the record has it; the values of the other ``fields`` too; the
    submitted answers to the other ``questions``)."""
    found = next((s for s in item.get("suggestions") or [] if str(s["question_id"]) == binding.question_id), None)
    suggestion = _suggestion_state(found, binding) if found else None
    stored = dict(item.get("metadata") or {})
    metadata = binding.worker_view(stored)
    values = item.get("fields") or {}
    text, text_pair = binding.model_input(values)
    return PulledRecord(
        server_id=str(item["id"]),
        record_id=str(item.get("external_id") or item["id"]),
        text=text,
        text_pair=text_pair,
        field_values={name: values.get(name) for name in (*binding.fields, *fields)},
        metadata=metadata,
        stored_metadata=stored if binding.metadata_prefix else None,
        suggestion=suggestion,
        responses=tuple(
            ResponseState(
                user_id=str(response["user_id"]),
                value=binding.label_value(((response.get("values") or {}).get(binding.question) or {}).get("value")),
                status=response["status"],
                updated_at=_parse_time(response.get("updated_at")),
            )
            for response in item.get("responses") or []
        ),
        updated_at=_parse_time(item.get("updated_at")),
        reference=binding.reference_label(metadata, suggestion.value if suggestion else None,
                                          suggestion.agent if suggestion else None, stored=stored),
        vector=_vector(item, vector),
        answers=_answers(item, questions) if questions else {},
        position=position(item) if item.get("inserted_at") else None,
    )


def _answers(item: dict, questions: Sequence[str]) -> dict[str, tuple]:
    """Each of ``questions``' values in the record's submitted responses, oldest response first (drafts and discarded
    responses are no answer; nor is a response that left an optional question blank)."""
    submitted = sorted((response for response in item.get("responses") or [] if response.get("status") == "submitted"),
                       key=lambda response: str(response.get("updated_at") or ""))
    values = [response.get("values") or {} for response in submitted]
    answers = {}
    for question in questions:
        given = ((answer.get(question) or {}).get("value") for answer in values)
        answers[question] = tuple(value for value in given if value is not None)
    return answers


def _vector(item: dict, name: str | None) -> np.ndarray | None:
    """[D] float32: the record's vector ``name`` as the server sent it, None when not asked for or absent."""
    values = (item.get("vectors") or {}).get(name) if name else None
    return None if values is None else np.asarray(values, dtype=np.float32)


def _suggestion_state(found: dict, binding: DatasetBinding) -> SuggestionState:
    """The bound question's suggestion; a label set's labels (and their scores, kept beside them) sorted."""
    value, score = found["value"], found.get("score")
    if binding.multi_label and isinstance(value, list) and isinstance(score, list) and len(score) == len(value):
        pairs = sorted(zip(map(str, value), score, strict=True))
        return SuggestionState(tuple(label for label, _ in pairs), found.get("agent"),
                               tuple(float(item) for _, item in pairs), _suggestion_id(found),
                               _parse_time(found.get("updated_at")))
    return SuggestionState(binding.label_value(value) or "", found.get("agent"),
                           tuple(score) if isinstance(score, list) else score, _suggestion_id(found),
                           _parse_time(found.get("updated_at")))


def _suggestion_id(found: dict) -> str | None:
    return str(found["id"]) if found.get("id") is not None else None


def _preserved(record: PulledRecord, binding: DatasetBinding) -> dict:
    """Another agent's suggestion, kept in metadata once before the worker first replaces it. Not the worker's own
    pre-selection of a label from the team's property (``argilla.reference = 'metadata:NAME'``, agent NAME, scored
    with the model's probability): that label stays in their property, and the score is not NAME's."""
    suggestion = record.suggestion
    if suggestion is None or PRESERVED_LABEL in record.metadata or not is_foreign(suggestion.agent, record.metadata):
        return {}
    if binding.reference.kind == "metadata" and suggestion.agent == binding.reference.name \
            and record.metadata.get("model_version"):
        return {}
    kept = {PRESERVED_LABEL: _json_value(suggestion.value), PRESERVED_AGENT: suggestion.agent or "unknown"}
    if isinstance(suggestion.score, (int, float)) and math.isfinite(suggestion.score):
        kept[PRESERVED_SCORE] = float(suggestion.score)
    elif (isinstance(suggestion.score, tuple) and isinstance(suggestion.value, tuple)
          and len(suggestion.score) == len(suggestion.value) > 0
          and all(isinstance(score, (int, float)) and math.isfinite(score) for score in suggestion.score)):
        kept[PRESERVED_SCORES] = [f"{label}={score:.6g}" for label, score in zip(suggestion.value, suggestion.score,
                                                                               strict=True)]
    return kept


def _json_value(value):
    """A label set as the server stores it (a list); anything else unchanged."""
    return list(value) if isinstance(value, tuple) else value


def _required_fields(dataset: rg.Dataset) -> list[str]:
    """The names of the dataset's required fields."""
    return [f.name for f in dataset.settings.fields if getattr(f, "required", False)]


def _kept_label_note(label: LabelValue | None, foreign: tuple[str, object] | None) -> str | None:
    """Why an input ``label`` is not written over another agent's preserved ``(agent, label)``; None when there is
    nothing to say (no label, no such agent, or the same label)."""
    if label is None or foreign is None or same_value(foreign[1], _json_value(label)):
        return None
    agent, value = foreign
    return (f"label {_json_value(label)!r} not written: original_label holds agent {agent!r}'s label {value!r}, "
            f"kept by the worker when its suggestion replaced theirs")


class Planned(NamedTuple):
    """One input record's write: the bulk-upsert item (None: nothing to send), or why it cannot be written;
    ``kept_label`` says why its label was left out of an item that is otherwise written."""

    item: dict | None
    refusal: str | None = None
    kept_label: str | None = None
    kept_text: str | None = None  # why the record's new field values are not in the item


@dataclass(frozen=True)
class _IngestPlan:
    """How one input record is written into the bound dataset (see :meth:`ArgillaGateway.log_labelled_texts`)."""

    binding: DatasetBinding
    required_fields: list[str]
    server_version: Version = FIELD_UPDATES_SINCE

    def payload(self, record: LabelledText, found: dict | None) -> Planned:
        """What to send for ``record``: the bulk-upsert item (None when nothing would change), or why it cannot be
        written, and a note when its label is not written. ``found`` is the existing record as the server's JSON,
        None for a new one."""
        binding = self.binding
        field_name = binding.fields[0]
        metadata = dict(record.metadata or {})  # the user's own names (see ensure_user_metadata)
        if record.split:
            metadata[binding.stored_name("split")] = record.split
        foreign = self._foreign_original(found)
        label = record.label if foreign is None else None
        kept = _kept_label_note(record.label, foreign)
        if label is not None:
            metadata.update(binding.stored({PRESERVED_LABEL: _json_value(label), PRESERVED_AGENT: ORIGINAL_AGENT}))
        suggestion = ({"question_id": str(binding.question_id), "value": binding.server_value(label),
                       "agent": ORIGINAL_AGENT} if label is not None else None)
        fields = {**(record.fields or {}), field_name: record.text}
        if found is None:
            unfilled = [name for name in self.required_fields if name not in fields]
            if unfilled:
                return Planned(None, refusal=(
                    f"not in the dataset, and a new record needs the required field(s) {unfilled}, which the input "
                    f"does not fill (the text goes to {field_name!r}; others: --field-column FIELD=COLUMN)"))
            item = {"external_id": record.id, "fields": fields, "metadata": metadata}
            return Planned({**item, "suggestions": [suggestion] if suggestion else []})
        changed = self._changed_fields(found, fields)
        if changed and self.server_version < FIELD_UPDATES_SINCE:
            kept_text = (f"field(s) {sorted(changed)} differ from the record's, which argilla-server "
                         f"{self.server_version} keeps (it updates an existing record's fields from "
                         f"{FIELD_UPDATES_SINCE}): upgrade the server, or delete the record and ingest it again")
            return Planned(self._merged(found, {}, metadata, suggestion), kept_label=kept, kept_text=kept_text)
        return Planned(self._merged(found, changed, metadata, suggestion), kept_label=kept)

    @staticmethod
    def _changed_fields(found: dict, fields: dict) -> dict:
        current = found.get("fields") or {}
        return {name: value for name, value in fields.items() if current.get(name) != value}

    def _foreign_original(self, found: dict | None) -> tuple[str, object] | None:
        """(agent, label) when the record's ``original_label`` is another agent's label that the worker kept when
        its own suggestion replaced theirs — that agent's only copy, not ingest's to overwrite; else None."""
        stored = (found or {}).get("metadata") or {}
        agent = stored.get(self.binding.stored_name(PRESERVED_AGENT))
        if agent in (None, ORIGINAL_AGENT):
            return None
        return str(agent), stored.get(self.binding.stored_name(PRESERVED_LABEL))

    def _merged(self, found: dict, changed: dict, metadata: dict, suggestion: dict | None) -> dict | None:
        """The upsert item for ``found``: ``changed`` fields over its own, the merged metadata, ingest's suggestion."""
        binding = self.binding
        item: dict[str, object] = {"id": str(found["id"])}
        if changed:
            item["fields"] = {**(found.get("fields") or {}), **changed}
        stored = dict(found.get("metadata") or {})
        merged = {**stored, **metadata}
        if not _same_metadata(merged, stored):
            item["metadata"] = merged
        current = next((s for s in found.get("suggestions") or [] if str(s["question_id"]) == binding.question_id),
                       None)
        if suggestion is not None and (current is None or (  # only ever replaces ingest's own suggestion
                current.get("agent") == ORIGINAL_AGENT and not same_value(current.get("value"), suggestion["value"]))):
            item["suggestions"] = [suggestion]
        return item if len(item) > 1 else None
