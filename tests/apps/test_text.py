"""Text encoding with core TF string ops: normalization, bounds and vocabulary."""

import numpy as np
import pytest
import tensorflow as tf

from apps.common.errors import SeqappsError
from apps.common.text import (
    UNKNOWN_ID,
    TextEncoder,
    build_vocabulary,
    read_vocabulary,
    tokenize,
    write_vocabulary,
)


def tokens_of(texts, max_tokens=50):
    return [[t.decode() for t in row] for row in tokenize(tf.constant(texts), max_tokens).to_list()]


def test_lowercases_splits_punctuation_and_html_breaks():
    assert tokens_of(["Great MOVIE!<br /><br/>Loved it, really."]) == [
        ["great", "movie", "!", "loved", "it", ",", "really", "."]
    ]
    assert tokens_of(["ÉCOLE Straße"]) == [["école", "straße"]]


def test_truncates_to_max_tokens_and_bounds_huge_inputs():
    assert tokens_of(["a b c d e f"], max_tokens=3) == [["a", "b", "c"]]
    huge = "word " * 300_000  # 1.5 MB
    (row,) = tokens_of([huge], max_tokens=10)
    assert row == ["word"] * 10


def test_invalid_utf8_is_replaced_not_fatal():
    (row,) = tokens_of([b"ok \xff\xfe then \xc3"])
    assert row[0] == "ok" and "then" in row
    assert "\ufffd" in "".join(row)


@pytest.fixture
def encoder(tmp_path):
    vocabulary = build_vocabulary(["good film", "good plot", "bad film"], 20, 100, min_count=1)
    write_vocabulary(vocabulary, tmp_path / "vocabulary.txt")
    return TextEncoder(tmp_path / "vocabulary.txt", max_tokens=4)


def test_vocabulary_is_ordered_by_frequency_after_reserved_tokens(encoder, tmp_path):
    assert read_vocabulary(tmp_path / "vocabulary.txt") == [
        "[PAD]", "[UNK]", "film", "good", "bad", "plot",
    ]  # fmt: skip


def test_encoder_pads_with_zero_and_maps_unknown_and_empty_to_unk(encoder):
    ids = encoder.encode(tf.constant(["good film", "", "   ", "weird good", "film " * 9]))
    np.testing.assert_array_equal(
        ids.numpy(),
        [[3, 2, 0, 0], [UNKNOWN_ID, 0, 0, 0], [UNKNOWN_ID, 0, 0, 0], [1, 3, 0, 0], [2, 2, 2, 2]],
    )
    assert encoder.encode(tf.constant([""])).shape == (1, 1)


def test_a_foreign_file_is_not_taken_for_a_vocabulary(tmp_path):
    (tmp_path / "v.txt").write_text("hello\nworld\n")
    with pytest.raises(SeqappsError, match="not a seqapps vocabulary"):
        read_vocabulary(tmp_path / "v.txt")
