"""The dataset binding on hand-made dataset shapes: defaults, every misconfiguration's message, the
model input of one / two / more fields, and where the reference label comes from."""

from __future__ import annotations

import pytest

from worker.binding import (
    BindingError,
    DatasetBinding,
    DatasetShape,
    FieldInfo,
    LabelReading,
    MetadataInfo,
    QuestionInfo,
    Reference,
    bind,
    new_dataset_names,
)
from worker.gateway.schema import WORKER_METADATA_TYPES
from worker.records import has_text

THEIRS = DatasetShape(
    name="support-tickets",
    fields=(FieldInfo("subject", "text", "Subject"), FieldInfo("body", "text", "Body"),
            FieldInfo("screenshot", "image", "Screenshot")),
    questions=(QuestionInfo("intent", "label_selection", ("billing", "bug", "other"), "q-1"),
               QuestionInfo("notes", "text")),
    metadata=(MetadataInfo("team", "terms"), MetadataInfo("priority", "integer")),
)


def test_one_text_field_and_one_label_question_bind_without_config():
    shape = DatasetShape("d", (FieldInfo("review", "text", "Review"),), THEIRS.questions, ())
    binding = bind(shape)
    assert (binding.fields, binding.question, binding.labels, binding.question_id) == (
        ("review",), "intent", ("billing", "bug", "other"), "q-1")
    assert binding.model_input({"review": "great"}) == ("great", None)


@pytest.mark.parametrize(("options", "message"), [
    ({}, (r"has 2 text or chat fields \(subject, body\): set argilla.fields .* fields: subject \(text\), "
          r"body \(text\), screenshot \(image\)")),
    ({"fields": ["title"]}, r"argilla.fields: no field named 'title'; dataset 'support-tickets' has fields"),
    ({"fields": ["screenshot"]}, r"'screenshot' is not a text or chat field"),
    ({"fields": ["body"], "question": "label"}, (r"argilla.question: no question named 'label'; .*questions: "
                                                 r"intent \(label_selection\), notes \(text\)")),
    ({"fields": ["body"], "question": "notes"},
     r"question 'notes' is a text question, not a label or rating question"),
    ({"fields": ["body"], "reference": "metadata:gold"}, r"no metadata property 'gold'; .*metadata: team \(terms\)"),
    ({"fields": ["body"], "reference": "suggestions"}, r"argilla.reference = 'suggestions': expected"),
])
def test_every_misconfiguration_is_one_error_listing_the_dataset(options, message):
    with pytest.raises(BindingError, match=message):
        bind(THEIRS, **options)


def test_a_rating_question_is_served_when_named_its_values_as_classes_and_integers_on_the_server():
    """A RatingQuestion (answer quality 1–5): classes "1" … "5" inside the worker, integers on the server. It is
    never picked by itself (a dataset with a label question keeps binding that one), and its worker's metadata
    gets the question's prefix beside a label question's worker."""
    quality = QuestionInfo("quality", "rating", ("1", "2", "3", "4", "5"), "q-2", ("1", "2", "3", "4", "5"))
    shape = DatasetShape("answers", THEIRS.fields[:1], (*THEIRS.questions, quality), ())
    assert bind(shape).question == "intent"  # unchanged for the label question's worker …
    assert bind(shape).metadata_prefix == "" and not bind(shape).rating
    rated = bind(shape, question="quality", worker_metadata=WORKER_METADATA_TYPES)
    assert (rated.labels, rated.rating, rated.multi_label) == (("1", "2", "3", "4", "5"), True, False)
    assert rated.metadata_prefix == "quality_"  # … and the rating's worker writes beside it, not over it
    assert rated.label_value(4) == "4" and rated.server_value("4") == 4
    assert rated.reference_label({"original_label": "2"}, None, None) == "2"
    assert bind(shape, fields=["subject"]).server_value("bug") == "bug"
    alone = DatasetShape("answers", THEIRS.fields[:1], (quality,), ())
    with pytest.raises(BindingError, match=r"has no label question: set argilla.question \(a rating question is "
                                           r"served once named: quality\)"):
        bind(alone)
    assert bind(alone, question="quality").metadata_prefix == ""


def test_a_conversation_is_read_one_role_and_content_line_per_message_beside_a_text_field():
    """A ChatField (LLM conversations to classify): bound by itself when it is the only readable field, read as
    ``role: content`` lines; beside a text field it is one of the tokenizer's two texts."""
    chat = FieldInfo("conversation", "chat", "Conversation")
    alone = bind(DatasetShape("chats", (chat, THEIRS.fields[2]), THEIRS.questions, ()))
    assert alone.fields == ("conversation",) and alone.chat_fields == ("conversation",)
    conversation = [{"role": "user", "content": "my invoice is wrong"},
                    {"role": "assistant", "content": "Sorry! Which invoice?"}]
    assert alone.model_input({"conversation": conversation}) == (
        "user: my invoice is wrong\nassistant: Sorry! Which invoice?", None)
    assert alone.model_input({"conversation": []}) == (None, None)  # nothing to read: skipped, with that reason
    assert alone.model_input({"conversation": "not a conversation"}) == ("not a conversation", None)

    both = DatasetShape("chats", (chat, THEIRS.fields[0]), THEIRS.questions, ())
    with pytest.raises(BindingError, match=r"has 2 text or chat fields \(conversation, subject\)"):
        bind(both)
    paired = bind(both, fields=["subject", "conversation"])
    assert paired.chat_fields == ("conversation",)
    assert paired.model_input({"subject": "Invoice", "conversation": conversation[:1]}) == (
        "Invoice", "user: my invoice is wrong")


def test_a_multi_label_question_binds_to_label_sets_and_a_metadata_name_clash_is_named():
    multi = DatasetShape("d", THEIRS.fields[:1], (QuestionInfo("topics", "multi_label_selection", ("b", "a")),),
                         (MetadataInfo("gold", "terms"),))
    binding = bind(multi)
    assert (binding.question, binding.multi_label, binding.labels) == ("topics", True, ("b", "a"))
    assert binding.label_value(["b", "a", "b"]) == ("a", "b")  # sorted, each label once: equal sets compare equal
    assert binding.label_value("a") == ("a",) and binding.label_value(None) is None
    assert bind(multi, reference="metadata:gold").reference_label({"gold": ["b", "a"]}, None, None) == ("a", "b")
    assert binding.reference_label({"original_label": ["a"]}, None, None) == ("a",)
    assert binding.reference_label({"model_version": "v1"}, ("b",), "llm") == ("b",)  # another agent's set
    assert not bind(THEIRS, fields=["body"]).multi_label
    served = (MetadataInfo("expected_loss", "float"),)  # the worker's values are there: its names are its own
    clash = DatasetShape("d", THEIRS.fields[:1], THEIRS.questions[:1], (*served, MetadataInfo("loss", "terms")))
    with pytest.raises(BindingError, match="loss is terms, the worker writes float"):
        bind(clash, worker_metadata=WORKER_METADATA_TYPES)
    same = DatasetShape("d", THEIRS.fields[:1], THEIRS.questions[:1], (*served, MetadataInfo("loss", "float")))
    assert bind(same, worker_metadata=WORKER_METADATA_TYPES).metadata_prefix == ""


THEIR_NAMES = DatasetShape("tickets", THEIRS.fields[:1], THEIRS.questions[:1],
                           (MetadataInfo("confidence", "float"), MetadataInfo("model_version", "terms"),
                            MetadataInfo("loss", "terms"), MetadataInfo("split", "terms"),
                            MetadataInfo("team", "terms")))


def test_the_users_own_properties_with_the_workers_names_are_never_written():
    """Their labeller's confidence, their model_version, a terms 'loss': the worker takes worker_<name> and keeps
    it on later runs; split is the records' and shared; a configured prefix that would write into theirs is refused."""
    binding = bind(THEIR_NAMES, worker_metadata=WORKER_METADATA_TYPES)
    assert binding.metadata_prefix == "worker_"
    assert binding.stored({"confidence": 0.9, "model_version": "v0001", "split": "train"}) == {
        "worker_confidence": 0.9, "worker_model_version": "v0001", "split": "train"}
    stored = {"confidence": 0.4, "model_version": "gpt-x", "team": "a", "worker_confidence": 0.9}
    assert binding.worker_view(stored) == {"confidence": 0.9}  # the worker never reads theirs as its own
    after = DatasetShape(THEIR_NAMES.name, THEIR_NAMES.fields, THEIR_NAMES.questions,
                         (*THEIR_NAMES.metadata, MetadataInfo("worker_expected_loss", "float")))
    assert bind(after, worker_metadata=WORKER_METADATA_TYPES).metadata_prefix == "worker_"
    # the user later renames their property away: the worker keeps the names its values are under
    renamed = DatasetShape(after.name, after.fields, after.questions, after.metadata[3:])
    assert bind(renamed, worker_metadata=WORKER_METADATA_TYPES).metadata_prefix == "worker_"
    with pytest.raises(BindingError, match=(r"argilla.metadata_prefix = '' would write the worker's values into "
                                            r"metadata properties of the dataset's own \(confidence, model_version, "
                                            r"loss\), which the worker never overwrites: .*dataset 'tickets' has")):
        bind(THEIR_NAMES, metadata_prefix="", worker_metadata=WORKER_METADATA_TYPES)
    assert bind(THEIR_NAMES, metadata_prefix="m_", worker_metadata=WORKER_METADATA_TYPES).metadata_prefix == "m_"
    only_split = DatasetShape("d", THEIR_NAMES.fields, THEIR_NAMES.questions, (MetadataInfo("split", "terms"),))
    assert bind(only_split, worker_metadata=WORKER_METADATA_TYPES).metadata_prefix == ""


def test_two_fields_are_a_text_pair_and_more_are_joined_with_their_titles():
    pair = bind(THEIRS, fields=["subject", "body"])
    assert pair.model_input({"subject": "Refund", "body": "I was charged twice"}) == ("Refund", "I was charged twice")
    # an optional field left empty on a record: the other one is still read, in its own place of the pair
    assert pair.model_input({"subject": "Refund", "body": None}) == ("Refund", "")
    assert pair.model_input({"body": "I was charged twice"}) == ("", "I was charged twice")
    assert pair.model_input({}) == (None, None)  # nothing to read: skipped with a reason

    shape = DatasetShape("d", (*THEIRS.fields[:2], FieldInfo("product", "text", "Product")), THEIRS.questions, ())
    three = bind(shape, fields=["subject", "body", "product"])
    text, pair_text = three.model_input({"subject": "Refund", "body": "charged twice", "product": "Pro"})
    assert (text, pair_text) == ("Subject: Refund\nBody: charged twice\nProduct: Pro", None)
    assert three.model_input({"subject": "Refund", "product": "Pro"}) == ("Subject: Refund\nProduct: Pro", None)
    assert three.model_input({"other": "x"}) == (None, None)


def test_a_record_has_text_when_either_side_of_a_pair_has_some():
    assert has_text("Refund", "") and has_text("", "charged twice") and has_text("Refund")
    assert not has_text("", "  ") and not has_text(" \n") and not has_text(None, "body") and not has_text(3)


def test_where_the_reference_label_comes_from():
    auto = bind(THEIRS, fields=["body"])
    # another agent's suggestion, not yet preserved
    assert auto.reference_label({}, "bug", "gpt-labeller") == "bug"
    # the worker's own suggestion is never a reference; the preserved one is
    mine = {"model_version": "v0002", "original_label": "billing", "original_agent": "gpt-labeller"}
    assert auto.reference_label(mine, "bug", "v0002") == "billing"
    assert auto.reference_label({"model_version": "v0002"}, "bug", "v0002") is None

    by_agent = bind(THEIRS, fields=["body"], reference="suggestion:gpt-labeller")
    assert by_agent.reference_label({}, "bug", "gpt-labeller") == "bug"
    assert by_agent.reference_label({}, "bug", "other-model") is None
    assert by_agent.reference_label(mine, "bug", "v0002") == "billing"

    by_metadata = bind(THEIRS, fields=["body"], reference="metadata:team")
    assert by_metadata.reference_label({"team": "bug"}, "other", "x") == "bug"
    assert bind(THEIRS, fields=["body"], reference="none").reference_label(mine, "bug", "x") is None
    assert str(Reference.parse("suggestion:gpt-labeller")) == "suggestion:gpt-labeller"


def test_a_label_property_of_the_teams_reads_their_spellings_as_the_questions_labels_and_the_rest_as_none():
    """`argilla.reference = "metadata:gold"` on a property the team filled their way: the title the UI shows,
    another letter case, spaces around it are the label; a value that names none of the labels (`unsure`) is a
    record without a label — not a label the model does not have, which stopped every training and score run."""
    sentiment = QuestionInfo("sentiment", "label_selection", ("positive", "negative"), "q-1",
                             ("Positive 👍", "Negative 👎"))
    shape = DatasetShape("reviews", THEIRS.fields[:1], (sentiment,), (MetadataInfo("gold", "terms"),))
    binding = bind(shape, reference="metadata:gold")
    for written, label in [("positive", "positive"), ("POSITIVE", "positive"), (" Negative ", "negative"),
                           ("Positive 👍", "positive"), ("negative 👎", "negative"), ("unsure", None), (3, None)]:
        assert binding.reference_label({}, None, None, stored={"gold": written}) == label, written
        assert binding.unread_reference({"gold": written}) == (written if label is None else None)
    assert binding.unread_reference({}) is None  # no value: simply no label
    assert bind(shape, reference="auto").unread_reference({"gold": "unsure"}) is None  # not the label source
    # a spelling that two labels share reads as neither
    assert LabelReading(["pos", "POS"]).read("Pos") is None and LabelReading(["pos", "POS"]).read("POS") == "POS"
    # a rating written as a decimal (a CSV column with empty cells) is its rating
    quality = QuestionInfo("quality", "rating", ("1", "2", "3"), "q-2", ("1", "2", "3"))
    rated = bind(DatasetShape("r", THEIRS.fields[:1], (quality,), (MetadataInfo("stars", "float"),)),
                 question="quality", reference="metadata:stars")
    assert rated.reference_label({}, None, None, stored={"stars": 2.0}) == "2"
    assert rated.reference_label({}, None, None, stored={"stars": 2.5}) is None
    # a label set: each name read; one name that reads as none makes the set none
    topics = QuestionInfo("topics", "multi_label_selection", ("sport", "tech"), "q-3", ("Sport ⚽", "Tech"))
    tagged = bind(DatasetShape("t", THEIRS.fields[:1], (topics,), (MetadataInfo("tags", "terms"),)),
                  reference="metadata:tags")
    assert tagged.reference_label({}, None, None, stored={"tags": ["TECH", "Sport ⚽"]}) == ("sport", "tech")
    assert tagged.reference_label({}, None, None, stored={"tags": ["tech", "cooking"]}) is None
    assert tagged.unread_reference({"tags": ["tech", "cooking"]}) == ["tech", "cooking"]
    # what config check and the log say of a value: the names read as another label, and those read as none
    assert tagged.spellings(["TECH", "Sport ⚽", "tech"]) == ([("TECH", "tech"), ("Sport ⚽", "sport")], [])
    assert tagged.spellings(["tech", "cooking"]) == ([], ["cooking"]) and tagged.spellings(None) == ([], [])
    assert rated.spellings(2.0) == ([], []) and binding.spellings("unsure") == ([], ["unsure"])
    # codes read through argilla.reference_map (first: a code may be spelled like a label); a map to no label refused
    coded = bind(shape, reference="metadata:gold", reference_map={"0": "negative", "1": "positive"})
    assert [coded.reference_label({}, None, None, stored={"gold": code}) for code in (0, 1, 1.0, "2")] == [
        "negative", "positive", "positive", None]
    assert coded.spellings(0) == ([("0", "negative")], [])
    with pytest.raises(BindingError, match=r"argilla.reference_map maps to \['neutral'\], which are not labels of "
                                           r"question 'sentiment' \['positive', 'negative'\]"):
        bind(shape, reference="metadata:gold", reference_map={"2": "neutral"})


def test_a_created_dataset_takes_the_configured_names_and_has_one_field():
    assert new_dataset_names() == ("text", "label")
    assert new_dataset_names(["review"], "verdict") == ("review", "verdict")
    with pytest.raises(BindingError, match="creates datasets with one text field"):
        new_dataset_names(["title", "body"])


TWO_QUESTIONS = DatasetShape(
    name="reviews",
    fields=(FieldInfo("body", "text", "Body"),),
    questions=(QuestionInfo("sentiment", "label_selection", ("neg", "pos"), "q-s"),
               QuestionInfo("topics", "multi_label_selection", ("plot", "acting"), "q-t")),
    metadata=(MetadataInfo("team", "terms"), MetadataInfo("split", "terms")),
)


def test_one_worker_per_question_each_under_its_own_metadata_names():
    sentiment = bind(TWO_QUESTIONS, question="sentiment", worker_metadata=WORKER_METADATA_TYPES)
    topics = bind(TWO_QUESTIONS, question="topics", worker_metadata=WORKER_METADATA_TYPES)
    assert (sentiment.metadata_prefix, topics.metadata_prefix) == ("sentiment_", "topics_")
    assert sentiment.stored({"loss": 1.5, "split": "train"}) == {"sentiment_loss": 1.5, "split": "train"}
    # what the server holds: the user's property, both workers' values, a shared split
    stored = {"team": "pos", "split": "test", "sentiment_loss": 1.5, "sentiment_model_version": "v0003",
              "topics_loss": 0.2, "topics_original_label": ["plot"], "loss": 9.0}
    assert sentiment.worker_view(stored) == {"split": "test", "loss": 1.5, "model_version": "v0003"}
    assert topics.worker_view(stored) == {"split": "test", "loss": 0.2, "original_label": ["plot"]}
    # each worker's preserved reference is its own question's
    assert topics.reference_label(topics.worker_view(stored), None, None, stored=stored) == ("plot",)
    assert sentiment.reference_label(sentiment.worker_view(stored), None, None, stored=stored) is None
    # the user's metadata reference is read under its own name, whatever the prefix
    by_team = bind(TWO_QUESTIONS, question="sentiment", reference="metadata:team")
    assert by_team.reference_label(by_team.worker_view(stored), None, None, stored=stored) == "pos"
    # one label question: plain names, the record's metadata as it is
    single = bind(THEIRS, fields=["body"], worker_metadata=WORKER_METADATA_TYPES)
    assert single.metadata_prefix == "" and single.worker_view(stored) == stored
    assert single.stored({"loss": 1.0}) == {"loss": 1.0}


def test_the_metadata_prefix_can_be_set_and_a_clash_is_named_under_the_servers_name():
    assert bind(TWO_QUESTIONS, question="sentiment", metadata_prefix="").metadata_prefix == ""
    assert bind(TWO_QUESTIONS, question="sentiment", metadata_prefix="s-").stored({"bald": 0.1}) == {"s-bald": 0.1}
    with pytest.raises(BindingError, match=r"argilla.metadata_prefix = 'Sentiment ': use lowercase"):
        bind(TWO_QUESTIONS, question="sentiment", metadata_prefix="Sentiment ")
    clash = DatasetShape("reviews", TWO_QUESTIONS.fields, TWO_QUESTIONS.questions,
                         (MetadataInfo("topics_loss", "terms"), MetadataInfo("loss", "terms")))
    with pytest.raises(BindingError,
                       match=r"the prefix 'topics_' of question 'topics' would write .* own \(topics_loss\)"):
        bind(clash, question="topics", worker_metadata=WORKER_METADATA_TYPES)
    assert bind(clash, question="sentiment", worker_metadata=WORKER_METADATA_TYPES).metadata_prefix == "sentiment_"


def test_a_dataset_holding_an_earlier_workers_unprefixed_values_asks_which_question_they_belong_to():
    legacy = DatasetShape("reviews", TWO_QUESTIONS.fields, TWO_QUESTIONS.questions,
                          (MetadataInfo("model_version", "terms"), MetadataInfo("submitted_responses", "integer")))
    with pytest.raises(BindingError, match=(r"2 label questions \(sentiment, topics\) and already holds the worker's "
                                            r"metadata without a question prefix \(submitted_responses\)"
                                            r".*argilla.metadata_prefix = \"\" for the question that worker served")):
        bind(legacy, question="topics", worker_metadata=WORKER_METADATA_TYPES)
    assert bind(legacy, question="sentiment", metadata_prefix="", worker_metadata=WORKER_METADATA_TYPES)
    # once the other question's worker has its own prefixed values, it binds as before
    both = DatasetShape("reviews", legacy.fields, legacy.questions,
                        (*legacy.metadata, MetadataInfo("topics_submitted_responses", "integer")))
    assert bind(both, question="topics", worker_metadata=WORKER_METADATA_TYPES).metadata_prefix == "topics_"


def test_another_agents_label_agent_and_score_are_kept_before_the_worker_replaces_their_suggestion():
    from worker.gateway.client import _preserved, _pulled_record

    binding = DatasetBinding(fields=("body",), question="intent", labels=("billing", "bug"), question_id="q1")
    item = {"id": "0b0e4b5a-0000-0000-0000-000000000002", "external_id": "t1", "fields": {"body": "charged twice"},
            "metadata": {"team": "north"},
            "suggestions": [{"question_id": "q1", "value": "billing", "score": 0.73, "agent": "gpt-labeller"}]}
    record = _pulled_record(item, binding)
    assert _preserved(record, binding) == {"original_label": "billing", "original_agent": "gpt-labeller",
                                           "original_score": 0.73}
    unscored = _pulled_record({**item, "suggestions": [{**item["suggestions"][0], "score": None}]}, binding)
    assert _preserved(unscored, binding) == {"original_label": "billing", "original_agent": "gpt-labeller"}
    kept_once = _pulled_record({**item, "metadata": {"original_label": "bug", "original_agent": "x"}}, binding)
    assert _preserved(kept_once, binding) == {}  # kept once: a later push never overwrites the first copy
    # the worker's own pre-selection of the team's label property (agent "gold", the model's probability as its
    # score) is not another agent's: the label stays in their property, and 0.81 was never gold's score
    by_property = DatasetBinding(fields=("body",), question="intent", labels=("billing", "bug"), question_id="q1",
                                 reference=Reference("metadata", "gold"))
    mine = {**item, "metadata": {"gold": "Billing", "model_version": "v0001"},
            "suggestions": [{"question_id": "q1", "value": "billing", "score": 0.81, "agent": "gold"}]}
    assert _preserved(_pulled_record(mine, by_property), by_property) == {}
    theirs = {**mine, "suggestions": [{**item["suggestions"][0]}]}  # another agent's suggestion is still kept
    assert _preserved(_pulled_record(theirs, by_property), by_property)["original_agent"] == "gpt-labeller"


def test_a_name_no_label_reads_is_named_once_a_process_not_on_every_pass(caplog):
    """A team that keeps `unsure` in its label property on purpose: the first pass names the records holding it
    (up to five), later passes count them in one INFO line; a new name is named again when it first appears."""
    import logging

    from worker.gateway.client import UnreadLabels
    from worker.records import PulledRecord

    sentiment = QuestionInfo("sentiment", "label_selection", ("positive", "negative"), "q-1", ("Positive", "Negative"))
    binding = bind(DatasetShape("reviews", THEIRS.fields[:1], (sentiment,), (MetadataInfo("gold", "terms"),)),
                   reference="metadata:gold")

    def one_pass(values, named):
        caplog.clear()
        unread = UnreadLabels(binding, named)
        for number, value in enumerate(values):
            stored = {"gold": value}
            unread.seen(PulledRecord(f"s{number}", f"r{number}", "text", {}, None, (), None,
                                     reference=binding.reference_label({}, None, None, stored=stored),
                                     stored_metadata=stored))
        unread.close()
        return [(record.levelno, record.getMessage()) for record in caplog.records]

    named: set[str] = set()
    with caplog.at_level(logging.INFO, logger="worker.gateway.client"):
        first = one_pass(["positive"] + ["unsure"] * 7, named)
        again = one_pass(["unsure"] * 7, named)
        newly = one_pass(["unsure", "maybe", "unsure"], named)

    assert [level for level, _ in first] == [logging.WARNING] * 2
    assert first[0][1].startswith("record 'r1': metadata gold = 'unsure': 'unsure' is none of the labels")
    assert first[1][1].startswith("7 records in all hold a gold with a name that is none of the labels of question "
                                  "'sentiment' (a record of each such name named above)")
    assert again == [(logging.INFO, ("7 records hold a gold with a name that is none of the labels of question "
                                     "'sentiment' (named before): read as records without a label"))]
    assert [level for level, _ in newly] == [logging.WARNING] * 2 and "record 'r1': metadata gold = 'maybe'" in \
        newly[0][1], newly
