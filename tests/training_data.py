"""Small labelled sentiment examples built from the tiny models' corpus (real words, known labels)."""

from __future__ import annotations

from pathlib import Path

from tests.tiny_models import CORPUS, save_tiny_classifier
from worker.training.data import Example

LABELS = ("negative", "positive")
SUFFIXES = ["", " indeed", " , really", " , truly", " overall", " , i think", " again", " for sure"]


def sentiment_examples(count: int = 48) -> list[Example]:
    """``count`` examples: CORPUS sentence i is positive when i is even; suffixes make the texts distinct."""
    examples = []
    for index in range(count):
        sentence = index % len(CORPUS)
        suffix = SUFFIXES[(index // len(CORPUS)) % len(SUFFIXES)]
        label = "positive" if sentence % 2 == 0 else "negative"
        examples.append(Example(f"e{index}", CORPUS[sentence] + suffix + f" #{index}", label))
    return examples


def save_nameless_sentiment_classifier(directory: Path, count: int = 48) -> Path:
    """A tiny classifier trained (here, in seconds) on :func:`sentiment_examples` and saved as a model fine-tuned
    without label names is: transformers' default names, ``LABEL_0`` / ``LABEL_1``, with its outputs in the other
    order than the question's — output 0 is `positive`, output 1 `negative`."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    directory = save_tiny_classifier(directory, labels=("LABEL_0", "LABEL_1"))
    examples = sentiment_examples(count)
    model = AutoModelForSequenceClassification.from_pretrained(directory)
    targets = torch.tensor([0 if e.label == "positive" else 1 for e in examples])
    logits = _fitted_logits(model, AutoTokenizer.from_pretrained(directory), examples, targets, steps=60)
    accuracy = (logits.argmax(-1) == targets).float().mean().item()
    assert accuracy >= 0.9, accuracy  # what the tests rely on: the model learnt the examples
    model.save_pretrained(directory)
    return directory


def _fitted_logits(model, tokenizer, examples: list[Example], targets, *, steps: int):
    """Train ``model`` in place on ``examples`` (one batch, ``steps`` AdamW steps, seeded) towards ``targets`` and
    return its logits [N, outputs] on them afterwards, dropout off."""
    import torch

    encoded = tokenizer([e.text for e in examples], truncation=True, max_length=32, padding=True, return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(**encoded, labels=targets).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return model(**encoded).logits


TAGS = ("acting", "humour", "praise")  # the label-set question of the tagging examples
TAGGED = [  # the tiny tokenizer's sentences with the label sets a tagger would give them
    ("a wonderful , moving film with a great cast", ("acting", "praise")),
    ("dull and lifeless , the plot never takes off", ()),
    ("the best movie of the year , funny and smart", ("humour", "praise")),
    ("a tedious mess that wastes its actors", ("acting",)),
    ("charming performances and a clever script", ("acting", "praise")),
    ("boring , predictable and far too long", ()),
    ("an instant classic that will make you laugh and cry", ("humour", "praise")),
    ("i want those two hours of my life back", ()),
]
NAMELESS_TAG_ORDER = ("praise", "acting", "humour")  # what a nameless tagging model's outputs 0, 1, 2 stand for


def tagging_examples(copies: int = 6) -> list[Example]:
    """``copies`` copies of :data:`TAGGED` (copy ``c`` ends in `` #c``), each with its label set."""
    return [Example(f"t{copy}-{index}", f"{text} #{copy}", tags)
            for copy in range(copies) for index, (text, tags) in enumerate(TAGGED)]


def save_nameless_tagging_classifier(directory: Path) -> Path:
    """A tiny multi-label classifier (one sigmoid per output) trained here on :func:`tagging_examples` and saved as a
    model fine-tuned without label names: ``LABEL_0`` … ``LABEL_2``, its outputs in :data:`NAMELESS_TAG_ORDER`,
    not the question's order."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    directory = save_tiny_classifier(directory, labels=("LABEL_0", "LABEL_1", "LABEL_2"))
    examples = tagging_examples()
    model = AutoModelForSequenceClassification.from_pretrained(directory, problem_type="multi_label_classification")
    targets = torch.tensor([[float(tag in e.label) for tag in NAMELESS_TAG_ORDER] for e in examples])  # [N, 3]
    logits = _fitted_logits(model, AutoTokenizer.from_pretrained(directory), examples, targets, steps=80)
    decided = (logits > 0) == targets.bool()
    assert decided.float().mean().item() >= 0.9, decided.float().mean()  # what the tests rely on: it learnt them
    model.save_pretrained(directory)
    return directory
