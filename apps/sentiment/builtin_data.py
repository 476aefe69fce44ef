"""The built-in sentiment dataset: short synthetic reviews, generated deterministically.

A smoke-test dataset, not a benchmark: it lets ``seqapps train sentiment`` and ``make demo`` run
with no download and still show a model learning something a bag of words cannot fully do.
Each review is built from clauses of known polarity:

- a clause is ``<subject> <verb> [intensifier] [negation] <adjective>``; a negation (``not``,
  ``never``, ``hardly``) flips the adjective's polarity;
- a review is one clause, or two joined by ``but`` (the clause after ``but`` decides), or three
  joined by ``and`` (the majority decides), with neutral filler sentences mixed in.

About a third of the label information sits in word order (negation scope and ``but``), so a
sequence model should clearly beat a bag of words; held-out accuracy well above 90 % is
reachable, 50 % is chance.
"""

from __future__ import annotations

import random

from apps.sentiment.data import BINARY_LABELS, LabeledTextData, LabeledTexts

SUBJECTS = (
    "the movie", "this film", "the acting", "the plot", "the soundtrack", "the script",
    "the ending", "the cast", "the story", "the dialogue", "the photography", "the pacing",
    "the lead actor", "the villain", "the direction", "the second half", "the humour",
)  # fmt: skip
VERBS = ("is", "was", "felt", "seemed", "turned out")
INTENSIFIERS = ("", "", "really", "truly", "very", "quite", "so", "incredibly")
NEGATIONS = ("not", "never", "hardly")
POSITIVE = (
    "great", "wonderful", "brilliant", "moving", "delightful", "superb", "charming", "gripping",
    "clever", "beautiful", "excellent", "memorable", "touching", "funny", "fresh", "solid",
)  # fmt: skip
NEGATIVE = (
    "awful", "boring", "dull", "terrible", "clumsy", "tedious", "bland", "weak", "predictable",
    "forgettable", "messy", "lifeless", "painful", "shallow", "stale", "silly",
)  # fmt: skip
FILLERS = (
    "i saw it last weekend.", "it runs for about two hours.", "my sister picked it.",
    "we watched it at home.", "the theatre was half full.", "it is based on a novel.",
    "there is a long car chase.", "it was released in the spring.", "i had popcorn.",
)  # fmt: skip
SPLIT_SIZES = {"train": 4000, "validation": 500, "test": 1000}


def _clause(polarity: int, rng: random.Random) -> str:
    negated = rng.random() < 0.35
    adjective_polarity = polarity ^ negated  # a negation flips the adjective's polarity
    adjective = rng.choice(POSITIVE if adjective_polarity else NEGATIVE)
    words = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(INTENSIFIERS)]
    if negated:
        words.append(rng.choice(NEGATIONS))
    words.append(adjective)
    return " ".join(word for word in words if word)


def _review(label: int, rng: random.Random) -> str:
    shape = rng.random()
    if shape < 0.4:
        body = _clause(label, rng) + "."
    elif shape < 0.75:  # the clause after "but" decides
        body = f"{_clause(1 - label, rng)}, but {_clause(label, rng)}."
    else:  # two of three clauses carry the label
        clauses = [_clause(label, rng), _clause(label, rng), _clause(1 - label, rng)]
        rng.shuffle(clauses)
        body = f"{clauses[0]}, {clauses[1]} and {clauses[2]}."
    sentences = [body]
    for _ in range(rng.randint(0, 2)):
        sentences.insert(rng.randint(0, len(sentences)), rng.choice(FILLERS))
    return " ".join(sentences)


def builtin_sentiment_data(seed: int = 0) -> LabeledTextData:
    """Train 4,000 / validation 500 / test 1,000 synthetic reviews, balanced, for ``seed``."""
    splits = {}
    for offset, (split, size) in enumerate(SPLIT_SIZES.items()):
        rng = random.Random(f"seqapps-sentiment-{seed}-{offset}")
        examples = LabeledTexts()
        for index in range(size):
            label = index % 2
            examples.add(_review(label, rng), BINARY_LABELS[label], f"builtin:{split}:{index}")
        splits[split] = examples
    return LabeledTextData(
        splits,
        f"built-in synthetic reviews (seed {seed}; a smoke-test dataset, not a benchmark)",
        list(BINARY_LABELS),
    )
