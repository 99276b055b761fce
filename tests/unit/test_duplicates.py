"""Copies of one text: the key (case and spacing aside; a pair's both sides), near copies (MinHash groups), the
SQLite index that numbers the texts with copies and counts disagreeing labels (memory O(batch)), and the split's
clusters."""

from __future__ import annotations

import random
import sqlite3
import string

import pytest

from worker.duplicates import NO_LABEL, PERMUTATIONS, STORED, CopyIndex, NearCopies, copy_keys, signatures, text_key
from worker.iterables import take_clusters


def test_a_text_key_ignores_case_and_spacing_only():
    assert text_key("Reset my password") == text_key("  reset MY\tpassword\n") != text_key("Reset my password!")
    assert text_key("title", "body") == text_key("TITLE", " body ") != text_key("title", "other body")
    assert text_key("title", "") != text_key("title") and len(text_key("x" * 100_000)) == 16
    assert text_key("ＲＥＳＥＴ my pass\u200bword") == text_key("reset my password")  # full-width, zero-width space
    assert text_key("ﬁle a claim") == text_key("file a claim") != text_key("fi le a claim")


def test_the_index_numbers_disagreeing_texts_first_counts_disagreement_and_resets_lost_copies(tmp_path):
    index = CopyIndex(tmp_path / "copies.sqlite")
    rows = [("s1", "r1", text_key("z text"), "pos", False), ("s2", "r2", text_key("Z  TEXT"), "pos", False),
            ("s3", "r3", text_key("a text"), "pos", False), ("s4", "r4", text_key("A text"), "neg", False),
            ("s5", "r5", text_key("a text "), NO_LABEL, False), ("s6", "r6", text_key("alone"), "neg", True),
            ("s7", "r7", text_key("alone too"), "neg", False)]
    index.add(rows[:4])
    index.add(rows[4:])

    counts = index.count()
    values = {server_id: marks for batch in index.values(2) for server_id, (_, marks) in batch.items()}
    index.close()

    assert (counts.records, counts.texts, counts.in_copies, counts.disagreeing_texts) == (7, 2, 5, 1)
    assert counts.example == ["r3", "r4", "r5"]
    assert {server_id: tuple(marks.values()) for server_id, marks in values.items()} == {
        "s3": (2, 1, 1), "s4": (2, 1, 1), "s5": (2, 1, 0),  # the disagreeing text first; unlabelled: no one
        "s1": (1, 2, 0), "s2": (1, 2, 0),
        "s6": (0, 0, 0)}  # held copy metadata, has no copy now: reset; s7 never had any: not written


TICKET = "Order #{} has not arrived yet and the tracking page shows no update since Monday, please help"
REVIEW = "The acting alone is worth the price of admission, and the last twenty minutes are a marvel."


def test_near_copies_share_a_key_unrelated_texts_do_not_and_similarity_one_finds_exact_copies_only():
    texts = [(TICKET.format(48213), None), (TICKET.format(90577), None),  # a template, another number
             (REVIEW, None), (REVIEW.replace("marvel", "delight"), None),  # a word changed
             (REVIEW + " Sent from my phone", None),  # a signature added: chains to both reviews
             ("The soundtrack is worth the price of admission.", None),  # shares words, not the text
             ("Reset my password", None), ("RESET  my password", None)]  # an exact copy (case, spacing)

    near = copy_keys(texts, similarity=0.6)
    exact = copy_keys(texts)

    assert near[0] == near[1] and near[2] == near[3] == near[4] and near[6] == near[7]
    assert len({near[0], near[2], near[5], near[6]}) == 4
    assert exact == [text_key(text) for text, _ in texts] and exact[6] == exact[7] and len(set(exact)) == 7


def test_a_pairs_other_side_takes_part_in_near_copies():
    question = "Does the premium plan include phone support on weekends and public holidays?"
    texts = [(question, "Yes, every day of the year."), (question + "!", "Yes, every day of the year."),
             (question, "No: weekdays from nine to five only, and never on public holidays.")]
    keys = copy_keys(texts, similarity=0.6)
    assert keys[0] == keys[1] != keys[2]


def test_near_copies_are_one_text_in_the_index_with_their_labels_compared(tmp_path):
    texts = [TICKET.format(48213), TICKET.format(90577), TICKET.format(11111), REVIEW, "alone"]
    rows = [(f"s{n}", f"r{n}", text_key(text), label, False)
            for n, (text, label) in enumerate(zip(texts, ["late", "late", "refund", "pos", "pos"], strict=True))]
    index = CopyIndex(tmp_path / "copies.sqlite", similarity=0.6)
    index.add(rows[:2], [(text, None) for text in texts[:2]])
    index.add(rows[2:], [(text, None) for text in texts[2:]])

    counts = index.count()
    values = {server_id: tuple(marks.values()) for batch in index.values(10) for server_id, (_, marks) in
              batch.items()}
    index.close()

    assert (counts.records, counts.texts, counts.in_copies, counts.disagreeing_texts) == (5, 1, 3, 1)
    assert values == {"s0": (2, 1, 1), "s1": (2, 1, 1), "s2": (2, 1, 2)}  # copies, group, copies_disagree


def test_stored_signatures_agree_where_the_full_ones_do_and_the_band_keys_go_once_grouped():
    """The low 16 bits are kept: a long text's minima are small numbers (the smallest of tens of thousands of
    hashes), so their high bits are mostly 0 and would agree between unrelated texts by themselves."""
    rng = random.Random(0)
    long_texts = [("".join(rng.choices(string.ascii_lowercase + " ", k=20_000)), None) for _ in range(2)]
    texts = [(TICKET.format(48213), None), (TICKET.format(90577), None), (REVIEW, None)]
    for pair in ((texts[0], texts[1]), (texts[0], texts[2]), tuple(long_texts)):
        full = signatures(list(pair))  # [2, PERMUTATIONS] uint32
        stored = full.astype(STORED)
        exact, kept = (full[0] == full[1]).mean(), (stored[0] == stored[1]).mean()
        assert exact <= kept <= exact + 0.01
    db = sqlite3.connect(":memory:")
    near = NearCopies(db, similarity=0.6)
    near.add([text_key(text) for text, _ in texts], texts)
    near.groups()

    blobs = [blob for blob, in db.execute("SELECT signature FROM signatures ORDER BY id")]
    assert blobs == [row.tobytes() for row in signatures(texts).astype(STORED)]  # what was checked above
    assert {len(blob) for blob in blobs} == {PERMUTATIONS * 2}
    assert "bands" not in {name for name, in db.execute("SELECT name FROM sqlite_master")}
    assert sorted(key for key, _ in near.members()) == sorted(text_key(text) for text, _ in texts[:2])
    db.close()


def test_near_copies_need_the_texts():
    index = CopyIndex(":memory:", similarity=0.6)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="texts"):
        index.add([("s1", "r1", text_key("a"), "pos", False)])
    index.close()


def test_a_cluster_past_the_held_sides_room_is_kept_and_the_smallest_is_held_when_all_are_large():
    template = list(range(10))  # one text copied ten times
    held, kept = take_clusters([template, [10], [11], [12]], target=2)
    assert held == [10, 11] and kept == [*template, 12]
    held, kept = take_clusters([[0, 1, 2, 3], [4, 5, 6], [7, 8, 9, 10, 11]], target=1)
    assert held == [4, 5, 6] and sorted(kept) == [0, 1, 2, 3, 7, 8, 9, 10, 11]
    held, kept = take_clusters([[0], [1], [2]], target=2)  # without large clusters: as before
    assert held == [0, 1] and kept == [2]
    held, kept = take_clusters([[0, 1, 2, 3, 4]], target=2)  # one cluster: nothing to hold
    assert held == [] and kept == [0, 1, 2, 3, 4]
