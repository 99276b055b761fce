"""Records that carry the same text: one key per text as the model reads it, so that the validation split (and a
published test split) never puts two copies of one text on both of its sides, and the ``copies`` job that marks
them in Argilla.

A validation record whose copy the model trained on is not held out: the figure the promotion gate compares (and a
Hub user's test score) would measure memory instead of generalisation. Those splits therefore take or leave the
records of one key together (:func:`worker.iterables.shuffled_label_clusters`). The K folds of ``score --oof`` do
not: there another copy's label is evidence about the record's (see :func:`worker.training.data.stratified_folds`).

Two texts are the same when they differ only in letter case, whitespace (runs of spaces, tabs, line breaks; leading
and trailing), Unicode compatibility forms (full-width letters, ligatures) and invisible format characters
(zero-width spaces); for a two-field binding both sides must be the same.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# format characters that change no visible letter: soft hyphen, zero-width space / (non-)joiner, direction marks
# and embeddings, word joiner and invisible operators, byte-order mark
INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
KEY_BYTES = 8  # 64-bit keys: a chance collision among 10^6 distinct texts ≈ 3·10^-8


def text_key(text: str, text_pair: str | None = None) -> str:
    """The key of a text (and its pair) as duplicates are found (module docstring): a hex digest of the normalised
    text, 16 characters whatever the text's length. O(len(text))."""
    digest = hashlib.blake2b(digest_size=KEY_BYTES)
    digest.update(_normalised(text).encode())
    if text_pair is not None:
        digest.update(b"\x00")
        digest.update(_normalised(text_pair).encode())
    return digest.hexdigest()


def _normalised(text: str) -> str:
    """NFKC (full-width letters, ligatures, compatibility forms as their plain letters), :data:`INVISIBLE`
    characters dropped, whitespace runs as one space, case-folded."""
    if not text.isascii():  # plain ASCII has no other form and no format character
        text = INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    return " ".join(text.split()).casefold()


COPIES, COPY_GROUP, COPIES_DISAGREE = "copies", "copy_group", "copies_disagree"  # the worker's metadata
NO_LABEL = ""  # the label of a record without a label under review (none given, none decided)


@dataclass
class CopyCounts:
    """What one pass found: ``records`` indexed, ``texts`` that more than one record carries, ``in_copies`` the
    records carrying one of those, ``disagreeing_texts`` those whose records carry different labels."""

    records: int = 0
    texts: int = 0
    in_copies: int = 0
    disagreeing_texts: int = 0
    example: list[str] = field(default_factory=list)  # record ids of the first disagreeing text


class CopyIndex:
    """Every record's text key and label under review in an SQLite file (memory O(batch) whatever the dataset's
    size), and from it each record's metadata: ``copies`` (how many other records carry its text), ``copy_group``
    (one number per text with copies — the texts whose records disagree first — so sorting by it shows each text's
    records together) and ``copies_disagree`` (how many of its copies carry another label; unlabelled records
    disagree with none). Time O(N log N) in SQLite's indexes."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(path)
        self._db.executescript("""
            CREATE TABLE records (server_id TEXT PRIMARY KEY, record_id TEXT, key TEXT, label TEXT, had INTEGER);
            CREATE INDEX by_key ON records (key, label);""")

    def add(self, rows: Iterable[tuple[str, str, str, str, bool]]) -> None:
        """(server id, record id, text key, label under review or NO_LABEL, whether the record holds copy metadata
        from an earlier pass) of each record."""
        self._db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)", rows)

    def count(self) -> CopyCounts:
        """Numbers the texts with copies (disagreeing ones first, then by key) and counts what was found."""
        self._db.executescript(f"""
            CREATE TABLE groups AS
                SELECT key, COUNT(*) AS size, COUNT(DISTINCT NULLIF(label, '{NO_LABEL}')) AS labels
                FROM records GROUP BY key HAVING COUNT(*) > 1 ORDER BY labels > 1 DESC, key;
            CREATE UNIQUE INDEX group_key ON groups (key);
            CREATE TABLE same_label AS SELECT key, label, COUNT(*) AS size FROM records
                WHERE key IN (SELECT key FROM groups) GROUP BY key, label;
            CREATE UNIQUE INDEX same_label_key ON same_label (key, label);
            CREATE TABLE labelled AS SELECT key, COUNT(*) AS size FROM records
                WHERE key IN (SELECT key FROM groups) AND label != '{NO_LABEL}' GROUP BY key;
            CREATE UNIQUE INDEX labelled_key ON labelled (key);""")
        records, = self._db.execute("SELECT COUNT(*) FROM records").fetchone()
        texts, in_copies, disagreeing = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(labels > 1), 0) FROM groups").fetchone()
        first = self._db.execute("SELECT key FROM groups WHERE labels > 1 ORDER BY rowid LIMIT 1").fetchone()
        example = [] if first is None else [row[0] for row in self._db.execute(
            "SELECT record_id FROM records WHERE key = ? ORDER BY record_id LIMIT 5", first)]
        return CopyCounts(records, texts, in_copies, disagreeing, example)

    def values(self, batch_size: int) -> Iterator[dict[str, tuple[str, dict[str, int]]]]:
        """Batches of server id → (record id, its copy metadata) for every record with copies, and 0s for a record
        that held copy metadata and has no copy any more (after :meth:`count`)."""
        cursor = self._db.execute(f"""
            SELECT r.server_id, r.record_id, g.size - 1, g.rowid,
                   CASE WHEN r.label = '{NO_LABEL}' THEN 0 ELSE l.size - s.size END
            FROM records r JOIN groups g ON g.key = r.key
                 JOIN same_label s ON s.key = r.key AND s.label = r.label
                 LEFT JOIN labelled l ON l.key = r.key
            UNION ALL
            SELECT server_id, record_id, 0, 0, 0 FROM records
            WHERE had AND key NOT IN (SELECT key FROM groups)""")
        while rows := cursor.fetchmany(batch_size):
            yield {server_id: (record_id, {COPIES: copies, COPY_GROUP: group, COPIES_DISAGREE: disagree or 0})
                   for server_id, record_id, copies, group, disagree in rows}

    def close(self) -> None:
        self._db.close()
