"""Records that carry the same text: one key per text as the model reads it, so that the validation split (and a
published test split) never puts two copies of one text on both of its sides, and the ``copies`` job that marks
them in Argilla.

A validation record whose copy the model trained on is not held out: the figure the promotion gate compares (and a
Hub user's test score) would measure memory instead of generalisation. Those splits therefore take or leave the
records of one key together (:func:`worker.iterables.hashed_label_clusters`). The K folds of ``score --oof`` do
not: there another copy's label is evidence about the record's (see :func:`worker.training.data.stratified_folds`).

Two texts are the same when they differ only in letter case, whitespace (runs of spaces, tabs, line breaks; leading
and trailing), Unicode compatibility forms (full-width letters, ligatures) and invisible format characters
(zero-width spaces); for a two-field binding both sides must be the same.

With ``copies.similarity`` below 1, texts that are *nearly* the same count as copies too: a templated ticket with
another order number, a re-posted review with a word changed or a signature added. Nearly the same means a Jaccard
similarity of at least ``similarity`` between the sets of 5-character pieces (shingles) of the two normalised texts
— one changed word in a 100-character text leaves about 0.85, two unrelated movie snippets rarely share 0.35
(benchmarks/near_copies.py). Pairs are found with MinHash signatures and locality-sensitive hashing (datasketch's
MinHash and its band layout for the threshold): texts that share a band are candidates, and a candidate counts when
its signatures agree on at least ``similarity`` of their positions. Near copies chain: A ~ B and B ~ C put A, B and
C in one group (one component), as they would be split together.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
import tempfile
import unicodedata
import zlib
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worker.files import Scratch

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


SHINGLE_CHARACTERS = 5  # the pieces near copies are compared by (characters of the normalised text)
PERMUTATIONS = 128  # MinHash signature length: a similarity estimate's standard error ≤ 0.045
# a stored signature keeps the low 16 bits of each minimum (b-bit minwise hashing, Li & König 2010): two different
# minima agree by chance with probability 2^-16, which raises a similarity estimate by < 2·10^-5, at half the disk
STORED = np.uint16
EXACT = 1.0  # copies.similarity that finds only copies (no signature computed)
LOOKUP_BATCH = 500  # keys per "IN (…)" query
SIGN_BATCH = 5_000  # texts signed at a time
Texts = Sequence[tuple[str, str | None]]  # (text, text pair or None) of each record


def shingles(text: str, text_pair: str | None = None) -> set[bytes]:
    """The :data:`SHINGLE_CHARACTERS`-character pieces of the normalised text (and its pair, after a separator that
    no piece of a text contains); a shorter text is one piece."""
    joined = _normalised(text) if text_pair is None else f"{_normalised(text)}\x00{_normalised(text_pair)}"
    if len(joined) <= SHINGLE_CHARACTERS:
        return {joined.encode()}
    return {joined[at:at + SHINGLE_CHARACTERS].encode() for at in range(len(joined) - SHINGLE_CHARACTERS + 1)}


def signatures(texts: Texts) -> np.ndarray:
    """MinHash signatures [N, PERMUTATIONS] (uint32) of ``texts``' shingles: the share of positions where two
    signatures agree estimates the Jaccard similarity of the two shingle sets. O(N × text length).

    Each shingle is hashed with CRC-32 (C code, deterministic across processes) rather than datasketch's default
    SHA-1 computed in Python: 2× faster signing. datasketch's ``affine32`` scheme (≥ 2.0) mixes every input hash
    with MurmurHash3's finalizer before permuting it, so CRC's linear structure does not reach the signatures
    (benchmarks/near_copies.py measures the pairs found)."""
    from datasketch import MinHash

    if not texts:
        return np.zeros((0, PERMUTATIONS), dtype=np.uint32)
    hashes = MinHash.bulk([list(shingles(text, pair)) for text, pair in texts], num_perm=PERMUTATIONS,
                          hashfunc=zlib.crc32, scheme="affine32")
    return np.stack([minhash.hashvalues for minhash in hashes]).astype(np.uint32)


@functools.cache
def band_layout(similarity: float) -> tuple[int, int]:
    """(bands, rows per band) of the locality-sensitive hashing for ``similarity``: datasketch's choice, weighing a
    pair above the threshold that is never a candidate 4 times a pair below it that is (candidates are checked, so
    those cost a comparison; a missed pair is a lost copy). At 0.6: 23 bands of 5 rows, a pair at 0.7 a candidate
    with probability 0.985, one at 0.3 with 0.054."""
    from datasketch import MinHashLSH

    layout = MinHashLSH(threshold=similarity, num_perm=PERMUTATIONS, weights=(0.2, 0.8))
    return layout.b, layout.r


MIX = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit multiplier: a band's rows as one number (mod 2^64)
BAND_SALT = np.uint64(0xC2B2AE3D27D4EB4F)  # keeps equal rows of two different bands apart


def band_keys(signed: np.ndarray, similarity: float) -> np.ndarray:
    """[N, bands] signed 64-bit keys of the bands of ``signed`` [N, PERMUTATIONS]: a polynomial of each band's rows
    plus a multiple of the band's number. Two texts that share a key are candidates (then checked on their
    signatures, so a chance collision costs one comparison)."""
    bands, rows = band_layout(similarity)
    parts = signed[:, :bands * rows].astype(np.uint64).reshape(len(signed), bands, rows)  # [N, bands, rows]
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(rows, MIX, dtype=np.uint64))  # [rows] MIX, MIX², … (mod 2^64)
        keys = (parts * powers).sum(axis=2, dtype=np.uint64) + np.arange(1, bands + 1, dtype=np.uint64) * BAND_SALT
    return keys.view(np.int64)


class NearCopies:
    """Groups of nearly the same texts (module docstring) in SQLite tables of a connection it is given: each
    distinct text key with a number, its signature (:data:`STORED`, 256 bytes) and its band keys (23 at 0.6).
    Disk ≈ 0.8 kB per distinct text, ≈ 1.3 kB at the peak while SQLite sorts the band keys (in its temporary
    files) to find the shared ones; the keys are not indexed, and are dropped once the candidates are listed
    (benchmarks/copies_index.py); memory O(batch); time
    O(N log N) plus O(candidates), where a band shared by m texts makes m − 1 candidates (each against the band's
    first text — the smallest number in it —, not all m² pairs)."""

    def __init__(self, db: sqlite3.Connection, similarity: float):
        if not 0.0 < similarity < EXACT:
            raise ValueError(f"near copies need a similarity in (0, 1), got {similarity}")
        self._db, self.similarity, self._texts = db, similarity, 0
        self._db.executescript("""
            CREATE TABLE signatures (id INTEGER PRIMARY KEY, key TEXT UNIQUE, signature BLOB);
            CREATE TABLE bands (band INTEGER, id INTEGER);""")

    def add(self, keys: Sequence[str], texts: Texts) -> None:
        """The texts of one batch with their :func:`text_key`; a key already added is not signed again."""
        known: set[str] = set()
        for start in range(0, len(keys), LOOKUP_BATCH):  # within SQLite's oldest limit on parameters (999)
            chunk = list(keys[start:start + LOOKUP_BATCH])
            known.update(key for key, in self._db.execute(
                f"SELECT key FROM signatures WHERE key IN ({','.join('?' * len(chunk))})", chunk))
        fresh: dict[str, tuple[str, str | None]] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in known:
                fresh.setdefault(key, text)
        signed = signatures(list(fresh.values()))  # [n, PERMUTATIONS] uint32
        ids = range(self._texts, self._texts + len(fresh))
        self._texts += len(fresh)
        self._db.executemany("INSERT INTO signatures VALUES (?, ?, ?)",
                             zip(ids, fresh, (row.tobytes() for row in signed.astype(STORED)), strict=True))
        self._db.executemany("INSERT INTO bands VALUES (?, ?)", (
            (int(band), text) for text, row in zip(ids, band_keys(signed, self.similarity), strict=True)
            for band in row))

    def groups(self, batch_size: int = 10_000) -> None:
        """Fill tables ``near`` (id, component) and ``near_keys`` (key, component key): every text with a near copy,
        and its group's first text."""
        self._db.executescript("""
            CREATE TABLE candidates AS SELECT DISTINCT head AS a, id AS b FROM (
                SELECT id, MIN(id) OVER (PARTITION BY band) AS head FROM bands) WHERE id != head;
            DROP TABLE bands;
            CREATE TABLE edges (a INTEGER, b INTEGER);""")
        candidates = self._db.execute("""
            SELECT c.a, c.b, sa.signature, sb.signature FROM candidates c
                JOIN signatures sa ON sa.id = c.a JOIN signatures sb ON sb.id = c.b""")
        writer = self._db.cursor()
        while pairs := candidates.fetchmany(batch_size):
            left = np.frombuffer(b"".join(pair[2] for pair in pairs), dtype=STORED).reshape(len(pairs), -1)
            right = np.frombuffer(b"".join(pair[3] for pair in pairs), dtype=STORED).reshape(len(pairs), -1)
            near = (left == right).mean(axis=1) >= self.similarity  # [n] estimated Jaccard ≥ the threshold
            writer.executemany("INSERT INTO edges VALUES (?, ?), (?, ?)",
                               ((a, b, b, a) for (a, b, _, _), keep in zip(pairs, near, strict=True) if keep))
        self._db.executescript("""
            CREATE INDEX edges_from ON edges (a, b);
            CREATE TABLE near (id INTEGER PRIMARY KEY, component INTEGER);
            INSERT INTO near SELECT DISTINCT a, a FROM edges;""")
        while self._db.execute("""
                UPDATE near SET component = (SELECT MIN(n.component) FROM edges e JOIN near n ON n.id = e.b
                                             WHERE e.a = near.id)
                WHERE component > (SELECT MIN(n.component) FROM edges e JOIN near n ON n.id = e.b
                                   WHERE e.a = near.id)""").rowcount:
            pass  # each round lowers every text's component to its neighbours' smallest: rounds ≈ a group's diameter
        self._db.executescript("""
            CREATE TABLE near_keys (key TEXT PRIMARY KEY, component TEXT);
            INSERT INTO near_keys SELECT s.key, c.key FROM near n
                JOIN signatures s ON s.id = n.id JOIN signatures c ON c.id = n.component;""")

    def members(self) -> Iterator[tuple[str, str]]:
        """(text key, its group's key) of every text with a near copy (after :meth:`groups`; table ``near_keys``)."""
        yield from self._db.execute("SELECT key, component FROM near_keys")


def copy_keys(texts: Texts, similarity: float = EXACT) -> list[str]:
    """One key per text [N], equal for copies (:func:`text_key`) and, with ``similarity`` below 1, for texts in one
    group of near copies. The caller holds the texts (memory O(N) keys); the signatures go to an SQLite file in the
    system's temporary directory (≈ 1.3 kB per text at its peak), not to memory. Time O(N × text length)."""
    keys = [text_key(text, pair) for text, pair in texts]
    if similarity >= EXACT:
        return keys
    with Scratch(Path(tempfile.gettempdir()), "near-copies-") as work, \
            closing(sqlite3.connect(work.path / "near.sqlite")) as db:
        near = NearCopies(db, similarity)
        for start in range(0, len(keys), SIGN_BATCH):
            near.add(keys[start:start + SIGN_BATCH], texts[start:start + SIGN_BATCH])
        near.groups()
        component = dict(near.members())
    return [component.get(key, key) for key in keys]


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
    size) — with ``similarity`` below 1 also each distinct text's MinHash signature (:class:`NearCopies`), and a
    group of near copies counts as one text —, and from it each record's metadata: ``copies`` (how many other
    records carry its text), ``copy_group`` (one number per text with copies — the texts whose records disagree
    first — so sorting by it shows each text's records together) and ``copies_disagree`` (how many of its copies
    carry another label; unlabelled records disagree with none). Time O(N log N) in SQLite's indexes."""

    def __init__(self, path: Path, similarity: float = EXACT):
        self._db = sqlite3.connect(path)
        self._db.executescript("""
            CREATE TABLE records (server_id TEXT PRIMARY KEY, record_id TEXT, key TEXT, label TEXT, had INTEGER);
            CREATE INDEX by_key ON records (key, label);""")
        self._near = NearCopies(self._db, similarity) if similarity < EXACT else None

    def add(self, rows: Sequence[tuple[str, str, str, str, bool]], texts: Texts | None = None) -> None:
        """(server id, record id, text key, label under review or NO_LABEL, whether the record holds copy metadata
        from an earlier pass) of each record, and (with near copies) the records' texts in the same order."""
        self._db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)", rows)
        if self._near is not None:
            if texts is None:
                raise ValueError("near copies are found from the texts: pass them with the rows")
            self._near.add([row[2] for row in rows], texts)

    def count(self) -> CopyCounts:
        """Numbers the texts with copies (disagreeing ones first, then by key) and counts what was found; with near
        copies, a group of nearly the same texts is one text."""
        if self._near is not None:
            self._near.groups()
            self._db.execute("UPDATE records SET key = (SELECT component FROM near_keys n WHERE n.key = records.key) "
                             "WHERE key IN (SELECT key FROM near_keys)")
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
