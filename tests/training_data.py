"""Small labelled sentiment examples built from the tiny models' corpus (real words, known labels)."""

from __future__ import annotations

from tests.tiny_models import CORPUS
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
