from __future__ import annotations

from collections import Counter

import pytest

from worker.demo_data import LabelledText, flip_labels, load_movie_snippets, load_sms_spam
from worker.errors import DataError


def _write(tmp_path, body: str):
    path = tmp_path / "snippets.txt"
    path.write_bytes(body.replace("\n", "\r\n").encode())
    return path


def test_snippets_are_labelled_by_the_sign_of_the_mean_rating(tmp_path):
    path = _write(tmp_path, "id\tsentiment\ttext\n1\t2.27\tA splash.\n2\t-0.6\tToo tepid \n3\t0\tNeutral.\n")

    snippets = load_movie_snippets(path)

    assert snippets == [LabelledText("movie-1", "A splash.", "positive"),
                        LabelledText("movie-2", "Too tepid", "negative")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("id\tscore\ttext\n", "expected header"),
        ("id\tsentiment\ttext\n1\t2.0\n", "snippets.txt:2: expected 3 tab-separated columns, found 2"),
        ("id\tsentiment\ttext\n1\t2.0\tok\n2\tgood\tbad\n", "snippets.txt:3: sentiment 'good' is not a number"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, body, message):
    with pytest.raises(DataError, match=message):
        load_movie_snippets(_write(tmp_path, body))


def test_text_messages_are_ham_or_spam_and_a_multi_line_message_stays_one(tmp_path):
    path = tmp_path / "sms-spam.csv"
    path.write_text(',spam,text\n0,0,"Ok lar, see u"\n2,1,"Free entry!\nText WIN now"\n3,0,  \n')

    assert load_sms_spam(path) == [LabelledText("sms-0", "Ok lar, see u", "ham"),
                                   LabelledText("sms-2", "Free entry!\nText WIN now", "spam")]


def test_a_text_message_labelled_otherwise_names_its_line(tmp_path):
    path = tmp_path / "sms-spam.csv"
    path.write_text(",spam,text\n0,0,fine\n1,yes,odd\n")

    with pytest.raises(DataError, match=r"sms-spam.csv:3: expected an id, 0 or 1 and a text, found \['1', 'yes'"):
        load_sms_spam(path)


def test_flipping_is_seeded_and_changes_exactly_the_requested_fraction():
    records = [LabelledText(str(i), f"t{i}", ("a", "b", "c")[i % 3]) for i in range(200)]

    noisy, flipped = flip_labels(records, fraction=0.1, labels=("a", "b", "c"), seed=7)
    again, flipped_again = flip_labels(records, fraction=0.1, labels=("a", "b", "c"), seed=7)

    assert len(flipped) == 20 and noisy == again and flipped == flipped_again
    changed = {new.id for old, new in zip(records, noisy, strict=True) if old.label != new.label}
    assert changed == flipped
    assert Counter(record.label for record in noisy).keys() == {"a", "b", "c"}


def test_flip_fraction_out_of_range_is_refused():
    with pytest.raises(ValueError, match="fraction must be in"):
        flip_labels([], fraction=1.5, labels=("a", "b"), seed=0)
