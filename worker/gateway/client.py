"""The one place the worker talks to Argilla.

Everything the worker reads from or writes to an Argilla server goes through
:class:`ArgillaGateway`. The worker writes suggestions and metadata only: it never creates,
changes or deletes an annotator's response.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import argilla as rg

from worker.demo_data import LabelledText
from worker.errors import ArgillaGatewayError, LabelSetMismatchError
from worker.gateway.schema import (
    LABEL_QUESTION,
    ORIGINAL_AGENT,
    TEXT_FIELD,
    dataset_settings,
    metadata_properties,
)

logger = logging.getLogger(__name__)


class ArgillaGateway:
    """A dataset on an Argilla server, seen through the worker's schema."""

    def __init__(self, *, api_url: str, api_key: str, dataset_name: str, workspace: str):
        self.api_url = api_url
        self.dataset_name = dataset_name
        self.workspace = workspace
        try:
            self.client = rg.Argilla(api_url=api_url, api_key=api_key)
        except Exception as error:  # the SDK raises several unrelated types on connect
            raise ArgillaGatewayError(f"cannot connect to Argilla at {api_url}: {error}") from error

    def ensure_dataset(self, labels: Sequence[str]) -> rg.Dataset:
        """Create the dataset, or bring an existing one up to date (never removing anything).

        Raises:
            LabelSetMismatchError: the existing label question has other labels than ``labels``.
        """
        dataset = self._find_dataset()
        if dataset is None:
            logger.info("creating dataset %s/%s with labels %s", self.workspace, self.dataset_name, list(labels))
            dataset = rg.Dataset(
                name=self.dataset_name,
                workspace=self.workspace,
                settings=dataset_settings(labels),
                client=self.client,
            )
            return dataset.create()
        self._check_labels(dataset, labels)
        self._add_missing_metadata(dataset)
        return dataset

    def log_labelled_texts(self, records: Iterable[LabelledText], *, batch_size: int = 500) -> int:
        """Upsert records by id with their original label as metadata and as an ``original`` suggestion.

        Returns:
            the number of records sent.
        """
        dataset = self._dataset()
        sent = 0
        for batch in _batched(records, batch_size):
            dataset.records.log([_ingest_record(record) for record in batch], batch_size=batch_size)
            sent += len(batch)
        logger.info("logged %d records to %s/%s", sent, self.workspace, self.dataset_name)
        return sent

    def _find_dataset(self) -> rg.Dataset | None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Dataset with name")  # absence is a normal answer here
            return self.client.datasets(name=self.dataset_name, workspace=self.workspace)

    def _dataset(self) -> rg.Dataset:
        dataset = self._find_dataset()
        if dataset is None:
            raise ArgillaGatewayError(
                f"dataset {self.workspace}/{self.dataset_name} does not exist on {self.api_url}"
            )
        return dataset

    def _check_labels(self, dataset: rg.Dataset, labels: Sequence[str]) -> None:
        question = dataset.settings.questions[LABEL_QUESTION]
        if question is None:
            raise ArgillaGatewayError(
                f"dataset {self.dataset_name} has no question named {LABEL_QUESTION!r}"
            )
        existing = list(question.labels)
        if set(existing) != set(labels):
            raise LabelSetMismatchError(
                f"dataset {self.dataset_name} question {LABEL_QUESTION!r} has labels {sorted(existing)}, "
                f"but the worker expects {sorted(labels)}"
            )

    def _add_missing_metadata(self, dataset: rg.Dataset) -> None:
        present = {prop.name for prop in dataset.settings.metadata}
        missing = [prop for prop in metadata_properties() if prop.name not in present]
        for prop in missing:
            dataset.settings.metadata.add(prop)
        if missing:
            dataset.update()
            logger.info("added metadata properties %s to %s", [p.name for p in missing], self.dataset_name)


def _ingest_record(record: LabelledText) -> rg.Record:
    return rg.Record(
        id=record.id,
        fields={TEXT_FIELD: record.text},
        metadata={"original_label": record.label},
        suggestions=[rg.Suggestion(question_name=LABEL_QUESTION, value=record.label, agent=ORIGINAL_AGENT)],
    )


def _batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
