"""BIO entity tags: spans agree with seqeval, IOB1 becomes IOB2, and the allowed transitions."""

import doctest
import itertools
import random

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from apps.tagging import bio
from apps.tagging.bio import allowed_transitions, entity_spans, iob1_to_iob2, is_bio

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def seqeval_spans(tags):
    """seqeval's entities with an exclusive end, as ``entity_spans`` returns them."""
    return [(kind, start, end + 1) for kind, start, end in get_entities(list(tags))]


def test_docstring_examples():
    assert doctest.testmod(bio).failed == 0


@pytest.mark.parametrize(
    "tags, valid",
    [
        ([], True),
        (["O", "O"], True),
        (["B-PER", "I-PER", "O", "I-LOC"], True),
        (["B-MISC-X"], True),  # a type may contain hyphens
        (["B-"], False),
        (["B"], False),
        (["NOUN", "O"], False),
        (["E-PER"], False),
        (["o"], False),
    ],
)
def test_is_bio(tags, valid):
    assert is_bio(tags) is valid


def test_edge_cases_match_seqeval():
    cases = [
        [],
        ["O"],
        ["I-PER"],
        ["B-PER"],
        ["I-PER", "I-PER", "B-PER"],
        ["B-PER", "I-LOC"],
        ["B-PER", "B-PER", "I-PER"],
        ["O", "I-LOC", "I-LOC", "O", "I-LOC"],
        ["I-PER", "I-LOC", "I-PER"],
        ["B-LOC", "I-LOC", "I-LOC"],
        ["B-A-B", "I-A-B", "I-A"],
    ]
    for tags in cases:
        assert entity_spans(tags) == seqeval_spans(tags), tags


def test_random_sequences_match_seqeval_before_and_after_conversion():
    rng = random.Random(0)
    for _ in range(3000):
        tags = [rng.choice(TAGS) for _ in range(rng.randint(0, 12))]
        expected = seqeval_spans(tags)
        assert entity_spans(tags) == expected, tags
        converted = iob1_to_iob2(tags)
        assert entity_spans(converted) == expected, tags  # conversion keeps every span
        assert iob1_to_iob2(converted) == converted  # and its result is IOB2


def test_iob1_from_conll2003():
    # "U.N. official Ekeus heads for Baghdad" as CoNLL-2003 writes it, with two adjacent persons.
    iob1 = ["I-ORG", "O", "I-PER", "O", "O", "I-LOC", "I-PER", "I-PER", "B-PER", "I-PER"]
    iob2 = iob1_to_iob2(iob1)
    assert iob2 == ["B-ORG", "O", "B-PER", "O", "O", "B-LOC", "B-PER", "I-PER", "B-PER", "I-PER"]
    assert entity_spans(iob2) == [
        ("ORG", 0, 1),
        ("PER", 2, 3),
        ("LOC", 5, 6),
        ("PER", 6, 8),
        ("PER", 8, 10),
    ]


def test_non_bio_tags_are_refused_by_name():
    with pytest.raises(ValueError, match="not a BIO entity tag .*'NOUN'"):
        entity_spans(["O", "NOUN"])
    with pytest.raises(ValueError, match="'S-PER'"):
        iob1_to_iob2(["S-PER"])


def test_allowed_transitions_accept_exactly_the_iob2_sequences():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed = allowed_transitions(names)
    start = end = len(names)
    assert allowed.shape == (6, 6) and allowed.dtype == bool
    for length in range(1, 5):
        for sequence in itertools.product(range(len(names)), repeat=length):
            path = [start, *sequence, end]
            accepted = all(allowed[a, b] for a, b in itertools.pairwise(path))
            tags = [names[i] for i in sequence]
            assert accepted == (iob1_to_iob2(tags) == tags), tags


def test_allowed_transitions_by_rule():
    names = ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
    allowed = allowed_transitions(names)
    start = end = len(names)
    index = names.index
    assert not allowed[start, index("I-PER")] and allowed[start, index("B-PER")]
    assert allowed[index("B-PER"), index("I-PER")] and allowed[index("I-PER"), index("I-PER")]
    assert not allowed[index("B-LOC"), index("I-PER")] and not allowed[index("O"), index("I-LOC")]
    assert allowed[:, end].all()


def test_allowed_transitions_leave_other_tags_unconstrained():
    assert allowed_transitions(["ADJ", "NOUN", "VERB"]).all()
    assert allowed_transitions([]).shape == (1, 1)
