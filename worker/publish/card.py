"""The dataset card: README.md with YAML metadata the Hub understands, counts, label changes, plots."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import yaml

from worker.calibration import plot_confusion_matrix, png_figure
from worker.duplicates import EXACT
from worker.gateway.schema import published_scores
from worker.publish.build import Publication
from worker.test_set import accuracy_name
from worker.training.data import own_label_validations

CONFUSION_PLOT = "images/correction_confusion.png"
LOSS_PLOT = "images/loss_corrected_vs_confirmed.png"
TOP_CHANGES = 10


def size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if count < limit:
            return name
    return "n>10M" if count >= 10_000_000 else "1M<n<10M"


def _metadata_list(publication: Publication) -> str:
    return ", ".join(f"`{column}`" + (f" (property `{name}`)" if column != name else "")
                     for name, (column, _) in publication.metadata_columns.items())


def _answers_list(publication: Publication) -> str:
    return ", ".join(f"`{column}`" + (f" (question `{name}`)" if column != name else "")
                     for name, (column, _) in publication.question_columns.items())


def card_metadata(publication: Publication, *, license: str, pretty_name: str) -> dict:
    """The YAML header: license, task, size, label names, and where each split's parquet files are."""
    return {
        "license": license,
        "pretty_name": pretty_name,
        "task_categories": ["text-classification"],
        **({"task_ids": ["multi-label-classification"]} if publication.multi_label else {}),
        "size_categories": [size_category(publication.num_rows)],
        "tags": ["argilla", "label-cleaning", "active-learning"],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": name, "path": data_file_pattern(publication, name)}
                                    for name in publication.splits]}],
        "dataset_info": {
            "features": card_features(publication.features),
            # name, num_bytes and num_examples, or datasets ignores the split info with a warning when loading
            "splits": [{"name": name, "num_bytes": split.data.nbytes, "num_examples": split.num_rows}
                       for name, split in publication.splits.items()],
        },
    }


def data_file(publication: Publication, split: str) -> str:
    """Where a split's parquet file goes, relative to the publication's root. Its name carries the content
    hash: ``datasets.load_dataset(directory)`` caches a local dataset under a key made from its card, so a card
    that did not change when the rows did would load the previous publication's rows from that cache."""
    return f"{_data_stem(publication, split)}-00000-of-00001.parquet"


def data_file_pattern(publication: Publication, split: str) -> str:
    """The card's ``configs`` path of a split's files (see :func:`data_file`)."""
    return f"{_data_stem(publication, split)}-*.parquet"


def _data_stem(publication: Publication, split: str) -> str:
    return f"data/{split}-{publication.content_hash()[:12]}"


def card_features(features: datasets.Features) -> list[dict]:
    """The published columns as the Hub's ``dataset_info.features`` YAML (names and dtypes, label names)."""
    def dtype(feature):
        if isinstance(feature, datasets.ClassLabel):
            return {"class_label": {"names": {str(index): name for index, name in enumerate(feature.names)}}}
        if isinstance(feature, datasets.Sequence):  # a label set: a list of class labels
            return {"sequence": dtype(feature.feature)}
        return feature.dtype

    def column(name, feature):
        messages = getattr(feature, "feature", None)
        if isinstance(messages, dict):  # a conversation: a list of {role, content}
            return {"name": name, "list": [{"name": key, "dtype": dtype(value)} for key, value in messages.items()]}
        return {"name": name, "dtype": dtype(feature)}
    return [column(name, feature) for name, feature in features.items()]


def _copies_line(publication: Publication, counts: dict) -> str:
    """What a Hub user deduplicating or splitting the data again needs to know about repeated texts."""
    similarity = publication.options.similarity
    alike = ("letter case and spacing aside" if similarity >= EXACT else
             f"counting near copies: texts whose 5-character pieces overlap at least {similarity:g} (Jaccard)")
    if not counts["copied_texts"]:
        return f"- Every row's text is distinct ({alike})."
    stratified = (" The `test` split holds none of the `train` split's texts" + (
        " nor a near copy of one." if similarity < EXACT else ".")) if publication.options.split == "stratified" else ""
    return (f"- {counts['copied_texts']} texts appear in more than one row ({counts['copied_rows']} rows, {alike}); "
            f"{counts['disagreeing_texts']} of them carry different labels.{stratified}")


def _test_set_line(publication: Publication, counts: dict) -> str:
    """Where the worker's test set is: the rows that can measure a model without the bias of records picked for
    review."""
    split = publication.options.split
    where = (" The `test` split holds every one of them (and any copy of their texts)." if split == "stratified"
             else " They stay in the split their records came from." if split == "keep" else "")
    return (f"- Test set: `test_set_rank` is set on {counts['test_set']} of the rows ({counts['test_set_reviewed']} "
            f"of them reviewed) — records drawn at random from those nobody had reviewed, which the ranking model "
            f"never trained on. The rows reviewed from rank 1 on, in order, are a random sample: a model measured on "
            f"them is measured without the bias of the records picked for review.{where}")


def _validation_line(validation: dict, training: dict) -> str:
    """The ranking model's validation figures, named for what they measured: a first model trained before enough
    reviews was validated (partly) on records' own labels — agreement with labels that may be wrong, not accuracy (a
    model 97 % right on BBC sections read 0.73 against 20 % wrong labels). ``training``: the registry entry's
    training counts."""
    figures = (f"macro-F1 {validation['macro_f1']:.4f}, expected calibration error "
               f"{validation['ece_deterministic']:.4f} (deterministic) and {validation['ece_mc']:.4f} (MC dropout)")
    records = validation.get("records") or 0
    own = own_label_validations(training, records)
    if training.get("refit_on"):
        figures += (f" (measured on a model trained without these {records} records; the ranking model then "
                    f"trained on all {training['refit_on']})")
    if own:
        which = f"{own} records' own labels" + (f" and {records - own} reviewed ones" if own < records else "")
        return (f"Validated on {which}: agreement {validation['accuracy']:.4f}, {figures} — agreement with labels "
                f"that may be wrong, not accuracy.")
    return f"Validated on {records} reviewed records: accuracy {validation['accuracy']:.4f}, {figures}."


def render_card(publication: Publication, *, license: str, pretty_name: str, source: str,
                model_metrics: dict | None = None) -> str:
    """README.md text. ``model_metrics`` is the ranking model's registry entry (for its ECE), if known."""
    counts = publication.counts()
    fresh = labelled_from_scratch(publication)
    header = yaml.safe_dump(card_metadata(publication, license=license, pretty_name=pretty_name), sort_keys=False,
                            allow_unicode=True)
    intro = (f"Text-classification data labelled in [Argilla]({source}) with a model in the loop. The records came "
             "without labels: annotators labelled them, the model suggesting a label and putting the records it was "
             "least sure of, or most typical of the rest, first. `label` is the annotators' majority vote; "
             "`original_label` is empty (no record came with a label)." if fresh else
             f"Text-classification data reviewed in [Argilla]({source}) with a model in the loop. Every record was "
             "scored by a classifier; annotators sorted by the model's per-example loss (how implausible the model "
             "finds the current label) and reviewed the worst records first. `label` is the annotators' majority "
             "vote where a record was reviewed, else the original label; `original_label` keeps the label the record "
             "came with, so every correction can be audited.")
    lines = [
        "---", header.rstrip(), "---", "", f"# {pretty_name}", "", intro, "",
        f"## How it was {'labelled' if fresh else 'cleaned'}",
        "",
        "- Scores: every record was scored with MC dropout; the score columns are",
        *(f"  - `{spec.name}`: {spec.meaning}" + ("" if publication.stats.scored[spec.name] else
                                                    " (No row has a value yet.)")
          for spec in published_scores(publication.multi_label, publication.rating)),
        "- Review: annotators submitted labels in Argilla; drafts and discarded responses are ignored.",
        (f"- Records with tied votes are left out ({counts['tied_left_out']}), as are records with no label at "
        f"all ({counts['unlabelled_left_out']}): nothing is guessed."),
        (f"- Published: {'reviewed records only' if publication.options.only_reviewed else 'all records'}; "
        f"split: {publication.options.split}."),
        _copies_line(publication, counts),
        *([_test_set_line(publication, counts)] if counts["test_set"] else []),
        *([f"- From the Argilla dataset's metadata: {_metadata_list(publication)}."]
          if publication.metadata_columns else []),
        *([(f"- The annotators' answers to the dataset's other questions: {_answers_list(publication)} — a list "
            f"per row, one item per submitted answer, oldest first (empty: nobody answered it).")]
          if publication.question_columns else []),
        *([(f"- Ratings: `label` and `original_label` hold the ratings themselves, integers "
            f"({', '.join(publication.labels)}; `original_label` null where the record came without one).")]
          if publication.rating else []),
        "",
        "## Counts",
        "",
        "| | records |",
        "|---|---:|",
        f"| published | {counts['records']} |",
        f"| reviewed | {counts['reviewed']} |",
        "| came with a label | 0 |" if fresh else f"| corrected (label ≠ original) | {counts['corrected']} |",
        *(f"| split `{name}` | {size} |" for name, size in counts["per_split"].items()),
        "",
        f"| {'rating' if publication.rating else 'class'} | label | original_label |",
        "|---|---:|---:|",
        *(f"| {label} | {counts['per_class'][label]} | {counts['per_original_class'][label]} |"
          for label in publication.labels),
        "",
    ]
    lines += (["No record came with a label: every label is an annotator's, none corrects another."] if fresh else
              ["## Most frequent corrections", "", *_corrections(publication)])
    lines += ["", "## Ranking model", ""]
    lines.append(f"Model version: `{publication.model_version or 'unknown'}`.")
    validation = (model_metrics or {}).get("validation")
    if validation:
        lines.append(_validation_line(validation, (model_metrics or {}).get("training") or {}))
    test = (model_metrics or {}).get("test")
    if test:
        low, high = test["accuracy_interval"]
        calibration = (f"; the confidence it writes has an expected calibration error of {test['ece']:.4f} there "
                       f"({test['ece_deterministic']:.4f} for the deterministic model)" if test.get("ece") is not None
                       else "")
        lines.append(f"On {test['records']} reviewed records drawn at random (a test set it never trained on): "
                     f"{accuracy_name(publication.multi_label)} {test['accuracy']:.4f} (95 % interval {low:.4f} to "
                     f"{high:.4f}), macro-F1 "
                     f"{test['macro_f1']:.4f}{calibration}.")
    if not publication.multi_label and not fresh:
        lines += ["", f"![Corrections: original vs corrected label]({CONFUSION_PLOT})"]
    if not fresh:
        lines += ["", f"![Loss of the original label: corrected vs confirmed records]({LOSS_PLOT})"]
    return "\n".join([*lines, ""])


def labelled_from_scratch(publication: Publication) -> bool:
    """Whether no published row came with a label (a dataset that started with none): there is nothing a review
    corrected, and no original label to plot."""
    return publication.stats.published > 0 and not any(publication.stats.per_original_class.values())


def _corrections(publication: Publication) -> list[str]:
    """The "most frequent corrections" table: original → corrected pairs, or for a multi-label question how
    many reviewed records gained and lost each label."""
    if publication.multi_label:
        per_label = publication.label_set_changes()[:TOP_CHANGES]
        if not per_label:
            return ["No label was changed."]
        return ["| label | added to records | removed from records |", "|---|---:|---:|",
                *(f"| {label} | {added} | {removed} |" for label, added, removed in per_label)]
    changes = publication.changes()[:TOP_CHANGES]
    if not changes:
        return ["No label was changed."]
    return ["| original → corrected | records |", "|---|---:|",
            *(f"| {original} → {corrected} | {count} |" for original, corrected, count in changes)]


def write_plots(publication: Publication, directory: Path) -> list[Path]:
    """The correction confusion matrix (single-label) and the loss histogram (corrected vs confirmed), as PNGs; none
    when no row came with a label (:func:`labelled_from_scratch`)."""
    if labelled_from_scratch(publication):
        return []
    stats = publication.stats
    plots = [_loss_histogram(stats.corrected_losses, stats.confirmed_losses, directory / LOSS_PLOT)]
    if not publication.multi_label:
        plots.insert(0, plot_confusion_matrix(stats.confusion, publication.labels, directory / CONFUSION_PLOT,
                                              title="Reviewed records", xlabel="label after review",
                                              ylabel="original label"))
    return plots


def _loss_histogram(corrected: list[float], confirmed: list[float], path: Path) -> Path:
    """Histograms of the original label's loss over reviewed records, corrected vs confirmed, as PNG."""
    with png_figure(path, (6, 4)) as axis:
        if corrected or confirmed:
            bins = list(np.linspace(0, max([*corrected, *confirmed, 1e-6]), 30))
            axis.hist(confirmed, bins=bins, alpha=0.6, label=f"confirmed ({len(confirmed)})")
            axis.hist(corrected, bins=bins, alpha=0.6, label=f"corrected ({len(corrected)})")
            axis.legend()
        axis.set(xlabel="loss of the original label", ylabel="records", title="Reviewed records by model loss")
    return path
