"""Records that carry the same text: one key per text as the model reads it, so that a split never puts two
copies of one text on both of its sides.

A held-out record whose copy the model trained on is not held out: the validation metric the promotion gate
compares, an out-of-fold loss (``score --oof``: "a model that never saw the record") and a published test split
would all measure memory instead of generalisation — and an out-of-fold model that learnt a wrong label from one
copy vouches for it on the other. Every seeded split (validation, K folds, publishing's test split) therefore takes
or leaves the records of one key together (:func:`worker.iterables.shuffled_label_clusters`).

Two texts are the same when they differ only in letter case and whitespace (runs of spaces, tabs, line breaks;
leading and trailing); for a two-field binding both sides must be the same.
"""

from __future__ import annotations

import hashlib

KEY_BYTES = 8  # 64-bit keys: a chance collision among 10^6 distinct texts ≈ 3·10^-8


def text_key(text: str, text_pair: str | None = None) -> str:
    """The key of a text (and its pair) as duplicates are found: a hex digest of the case-folded text with its
    whitespace runs as one space (16 characters whatever the text's length)."""
    digest = hashlib.blake2b(digest_size=KEY_BYTES)
    digest.update(_normalised(text).encode())
    if text_pair is not None:
        digest.update(b"\x00")
        digest.update(_normalised(text_pair).encode())
    return digest.hexdigest()


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()
