"""Entity tags in the BIO scheme: detection, IOB1 to IOB2, spans and the transitions IOB2 allows.

Tags are ``O`` (outside), ``B-X`` (begins an entity of type ``X``) and ``I-X`` (inside one).
In IOB2 (also called BIO) every entity starts with ``B-``; in IOB1 (the original CoNLL-2003
files) an entity starts with ``I-`` and ``B-`` only separates two adjacent entities of one type.
Spans follow conlleval (and seqeval), so ill-formed input such as ``O I-PER`` or ``B-PER I-LOC``
still yields entities: an ``I-X`` that does not continue an ``X`` starts a new one.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

OUTSIDE = "O"


def _prefix_and_type(tag: str) -> tuple[str, str | None]:
    """``("B", "PER")`` for ``B-PER``, ``("O", None)`` for ``O``; other tags are a ValueError."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    if tag[:2] in ("B-", "I-") and len(tag) > 2:
        return tag[0], tag[2:]
    raise ValueError(f"not a BIO entity tag (O, B-X or I-X): {tag!r}")


def is_bio(tags: Iterable[str]) -> bool:
    """Whether every tag is ``O``, ``B-X`` or ``I-X`` (with a non-empty type ``X``)."""
    return all(tag == OUTSIDE or (tag[:2] in ("B-", "I-") and len(tag) > 2) for tag in tags)


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """The IOB2 form of ``tags``: an ``I-X`` that starts an entity becomes ``B-X``.

    The identity on IOB2. Entity spans are unchanged (``entity_spans`` of both are equal).

    >>> iob1_to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"])
    ['B-PER', 'I-PER', 'B-PER', 'O', 'B-LOC', 'B-ORG']
    """
    converted = []
    previous_type = None  # the type of the entity the previous tag belongs to; None after O
    for tag in tags:
        prefix, entity_type = _prefix_and_type(tag)
        if prefix == "I" and entity_type != previous_type:
            tag = f"B-{entity_type}"
        converted.append(tag)
        previous_type = entity_type
    return converted


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """``(type, start, end)`` of each entity, ``end`` exclusive, in order (conlleval semantics).

    An entity starts at ``B-X``, or at an ``I-X`` that does not follow ``B-X``/``I-X``; it ends
    before ``O``, ``B-*`` or a tag of another type.

    >>> entity_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"])
    [('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5), ('ORG', 5, 6)]
    """
    spans = []
    current_type, start = None, 0
    for index, tag in enumerate(tags):
        prefix, entity_type = _prefix_and_type(tag)
        if current_type is not None and (prefix != "I" or entity_type != current_type):
            spans.append((current_type, start, index))
            current_type = None
        if prefix == "B" or (prefix == "I" and current_type is None):
            current_type, start = entity_type, index
    if current_type is not None:
        spans.append((current_type, start, len(tags)))
    return spans


def allowed_transitions(tag_names: list[str]) -> np.ndarray:
    """Which tag may follow which in IOB2: bool ``[n + 1, n + 1]`` for ``n = len(tag_names)``.

    ``allowed[i, j]``: tag ``j`` may follow tag ``i``. Index ``n`` is the start state as a row
    (``allowed[n, j]``: a sentence may begin with ``j``) and the end state as a column
    (``allowed[i, n]``: a sentence may end with ``i``; always true). ``I-X`` may only follow
    ``B-X`` or ``I-X``, never begin a sentence; every other transition is allowed, so tags
    that are not entity tags (part-of-speech tags) are unconstrained.

    >>> allowed_transitions(["O", "B-PER", "I-PER"]).astype(int)
    array([[1, 1, 0, 1],
           [1, 1, 1, 1],
           [1, 1, 1, 1],
           [1, 1, 0, 1]])
    """
    size = len(tag_names)
    allowed = np.ones((size + 1, size + 1), dtype=bool)
    for column, tag in enumerate(tag_names):
        if tag.startswith("I-") and len(tag) > 2:
            continuing = (f"B-{tag[2:]}", f"I-{tag[2:]}")
            allowed[:, column] = False
            for row, previous in enumerate(tag_names):
                allowed[row, column] = previous in continuing
    return allowed
