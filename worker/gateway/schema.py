"""The Argilla dataset layout the worker reads and writes.

Annotators answer one label question; the worker writes a suggestion for it and the metadata
below, which the Argilla UI lets annotators sort and filter by.
"""

from __future__ import annotations

from collections.abc import Sequence

import argilla as rg

ORIGINAL_AGENT = "original"

FLOAT_METADATA = {
    "loss": "how implausible the model finds the label under review (−log p): high = probably wrong.",
    "expected_loss": "the same, averaged over MC-dropout samples: a steadier label-error score.",
    "original_loss": "the loss of the record's original label: stays comparable after review.",
    "bald": "how much the MC-dropout samples disagree: high = the model is unsure (annotate these first).",
    "entropy": "total uncertainty of the model's answer.",
    "margin": "gap between the model's two most likely labels: small = it hesitates.",
    "confidence": "the model's probability of its own predicted label.",
    "cold_start_rank": "before any label exists: annotate in this order (1 first, sort ascending).",
}
SUBMITTED_RESPONSES = "submitted_responses"  # also what an incremental poll finds first reviews by
INTEGER_METADATA = {
    "mc_samples": "MC-dropout samples the record got: fewer when its uncertainty was known early (adaptive).",
    SUBMITTED_RESPONSES: "submitted responses the values were computed with (0: nobody had reviewed the record).",
}
TERMS_METADATA = {
    "original_label": "the label the record came with, before any review.",
    "original_agent": "who wrote original_label (ingest's 'original', another model, an LLM labeller …).",
    "predicted_label": "the label the current model predicts.",
    "model_version": "the model version that computed these values.",
    "disagreement": "'yes' when the model predicts another label than the one under review.",
    "split": "the split the record came from (train / test …), kept when publishing.",
    "reference_label": "the label under review: the annotators' consensus once reviewed, else the original label.",
}

GUIDELINES_START = "<!-- argilla-worker guidelines: start (updated by the worker; edit outside these markers) -->"
GUIDELINES_END = "<!-- argilla-worker guidelines: end -->"
GUIDELINES_TITLE = "# Reviewing labels with the model in the loop"

GUIDELINES = f"""\
{GUIDELINES_TITLE}

1. Sort by the metadata property `loss`, **descending** (the first click sorts ascending).
2. The pre-selected label is the one under review; its score is how much the model believes it
   (a low score: probably wrong). If it is wrong, pick the right one.
3. Submit — the worker retrains on your answers and refreshes the order.

Records without a label show the model's prediction instead (agent = model version).

Metadata properties:

""" + "\n".join(f"- `{name}`: {meaning}"
            for name, meaning in {**FLOAT_METADATA, **INTEGER_METADATA, **TERMS_METADATA}.items())


def guidelines_section() -> str:
    """The worker's part of a dataset's guidelines, between markers it can find and update."""
    return f"{GUIDELINES_START}\n{GUIDELINES}\n{GUIDELINES_END}"


def merged_guidelines(existing: str | None) -> str:
    """``existing`` guidelines with the worker's section appended once, or updated in place."""
    existing = existing or ""
    if GUIDELINES_START in existing and GUIDELINES_END in existing:
        before, _, rest = existing.partition(GUIDELINES_START)
        _, _, after = rest.partition(GUIDELINES_END)
        return f"{before}{guidelines_section()}{after}"
    if existing.lstrip().startswith(GUIDELINES_TITLE):  # written whole by a worker before the markers existed
        return guidelines_section()
    return f"{existing.rstrip()}\n\n{guidelines_section()}" if existing.strip() else guidelines_section()


# name -> Argilla metadata type of every property the worker writes (a user's property of the same
# name and another type is a binding error)
WORKER_METADATA_TYPES = {**{name: "float" for name in FLOAT_METADATA}, **{name: "integer" for name in INTEGER_METADATA},
                         **{name: "terms" for name in TERMS_METADATA}}


def dataset_settings(labels: Sequence[str], *, field: str, question: str) -> rg.Settings:
    """Settings for a new single-label text-classification dataset with the worker's metadata.

    ``field`` and ``question`` are the names the dataset binding asks for (see ``ArgillaGateway.ensure_dataset``).
    """
    return rg.Settings(
        guidelines=guidelines_section(),
        fields=[rg.TextField(name=field, title=field.replace("_", " ").capitalize(), use_markdown=False)],
        questions=[rg.LabelQuestion(name=question, title=question.replace("_", " ").capitalize(), labels=list(labels))],
        metadata=metadata_properties(),
        allow_extra_metadata=False,
    )


def metadata_properties() -> list[rg.MetadataProperty]:
    return [
        *(rg.FloatMetadataProperty(name=name, title=name, visible_for_annotators=True) for name in FLOAT_METADATA),
        *(rg.IntegerMetadataProperty(name=name, title=name, visible_for_annotators=True) for name in INTEGER_METADATA),
        *(rg.TermsMetadataProperty(name=name, title=name, visible_for_annotators=True) for name in TERMS_METADATA),
    ]
