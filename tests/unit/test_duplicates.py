"""Copies of one text: the key (case and spacing aside; a pair's both sides) and the SQLite index that numbers
the texts with copies and counts disagreeing labels (memory O(batch))."""

from __future__ import annotations

from worker.duplicates import NO_LABEL, CopyIndex, text_key


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
