"""The Argilla dataset layout the worker reads and writes.

Annotators answer one label question; the worker writes a suggestion for it and the metadata
below, which the Argilla UI lets annotators sort and filter by.
"""

from __future__ import annotations

from collections.abc import Sequence

import argilla as rg

ORIGINAL_AGENT = "original"

FLOAT_METADATA = {
    "loss": "−log p(current label) under the deterministic model: high = the label is probably wrong.",
    "original_loss": "−log p(original label) under the MC-dropout mean: stays comparable after review.",
    "expected_loss": "mean over MC-dropout samples of −log p(current label): a smoother label-error score.",
    "bald": "BALD mutual information: how much the MC-dropout samples disagree (model uncertainty).",
    "entropy": "entropy of the mean predicted distribution: total uncertainty.",
    "margin": "gap between the two most probable labels: small = the model hesitates.",
    "confidence": "mean probability of the predicted label.",
    "cold_start_rank": "before any label exists: the order to annotate a representative first batch in "
                       "(1 first; sort ascending) — typical records of as many clusters as possible.",
}
TERMS_METADATA = {
    "original_label": "the label the record came with, before any review (kept from another agent's suggestion "
                      "before the worker first replaced it).",
    "original_agent": "who wrote original_label (ingest's 'original', another model, an LLM labeller …).",
    "predicted_label": "the label the current model predicts.",
    "model_version": "the model version that computed these values.",
    "disagreement": "'yes' when the predicted label differs from the current label.",
    "split": "the split the record came from (train / test …), kept when publishing.",
    "reference_label": "the label loss was measured against: the annotators' consensus once reviewed, else the "
                       "original label.",
}

GUIDELINES = """\
# Reviewing labels with the model in the loop

Each record shows a text and a suggested label from the model (agent = model version; the
suggestion marked `original` is the label the record came with).

**Fix the worst records first:** sort by the metadata property `loss` (descending). Records at
the top are those whose current label the model finds least plausible — most label errors are
there. Submit the correct label (or confirm the current one); the worker retrains on your
answers and refreshes its suggestions.

Metadata properties:

""" + "\n".join(f"- `{name}`: {meaning}" for name, meaning in {**FLOAT_METADATA, **TERMS_METADATA}.items())


# name -> Argilla metadata type of every property the worker writes (a user's property of the same
# name and another type is a binding error)
WORKER_METADATA_TYPES = {**{name: "float" for name in FLOAT_METADATA}, **{name: "terms" for name in TERMS_METADATA}}


def dataset_settings(labels: Sequence[str], *, field: str, question: str) -> rg.Settings:
    """Settings for a new single-label text-classification dataset with the worker's metadata.

    ``field`` and ``question`` are the names the dataset binding asks for (see ``ArgillaGateway.ensure_dataset``).
    """
    return rg.Settings(
        guidelines=GUIDELINES,
        fields=[rg.TextField(name=field, title=field.replace("_", " ").capitalize(), use_markdown=False)],
        questions=[rg.LabelQuestion(name=question, title=question.replace("_", " ").capitalize(), labels=list(labels))],
        metadata=metadata_properties(),
        allow_extra_metadata=False,
    )


def metadata_properties() -> list[rg.MetadataProperty]:
    return [
        *(rg.FloatMetadataProperty(name=name, title=name, visible_for_annotators=True) for name in FLOAT_METADATA),
        *(rg.TermsMetadataProperty(name=name, title=name, visible_for_annotators=True) for name in TERMS_METADATA),
    ]
