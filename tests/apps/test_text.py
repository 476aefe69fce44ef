"""Text encoding with core TF string ops: normalization options, bounds, vocabulary, decoding."""

import gc

import numpy as np
import pytest
import tensorflow as tf

from apps.common.errors import SeqappsError
from apps.common.text import (
    CLASSIFICATION_TOKENS,
    END_ID,
    GENERATION_TOKENS,
    START_ID,
    UNKNOWN_ID,
    TextEncoder,
    Tokenizer,
    build_vocabulary,
    read_vocabulary,
    write_vocabulary,
)


def tokens_of(texts, max_tokens=50, **options):
    tokens = Tokenizer(max_tokens, **options).tokenize(tf.constant(texts))
    return [[t.decode() for t in row] for row in tokens.to_list()]


def test_lowercases_splits_punctuation_and_html_breaks():
    assert tokens_of(["Great MOVIE!<br /><br/>Loved it, really."]) == [
        ["great", "movie", "!", "loved", "it", ",", "really", "."]
    ]
    assert tokens_of(["ÉCOLE Straße"]) == [["école", "straße"]]


def test_case_and_punctuation_are_options():
    # A tagger keeps case (named entities) and tokens as they came (U.S. stays one token).
    kept = tokens_of(["Angela Merkel visited the U.S. <br />"], lowercase=False,
                     split_punctuation=False, html_line_breaks=False)  # fmt: skip
    assert kept == [["Angela", "Merkel", "visited", "the", "U.S.", "<br", "/>"]]
    assert tokens_of(["Paris, France"], lowercase=False) == [["Paris", ",", "France"]]


def test_truncates_to_max_tokens_and_bounds_huge_inputs():
    assert tokens_of(["a b c d e f"], max_tokens=3) == [["a", "b", "c"]]
    huge = "word " * 300_000  # 1.5 MB
    (row,) = tokens_of([huge], max_tokens=10)
    assert row == ["word"] * 10


def test_invalid_utf8_is_replaced_not_fatal():
    (row,) = tokens_of([b"ok \xff\xfe then \xc3"])
    assert row[0] == "ok" and "then" in row
    assert "\ufffd" in "".join(row)


def test_max_tokens_must_be_positive():
    with pytest.raises(ValueError, match="max_tokens must be a positive integer, got 0"):
        Tokenizer(0)


@pytest.fixture
def encoder(tmp_path):
    texts = ["good film", "good plot", "bad film"]
    vocabulary = build_vocabulary(Tokenizer(20).python_tokens(texts), 100, min_count=1)
    write_vocabulary(vocabulary, tmp_path / "vocabulary.txt")
    return TextEncoder(tmp_path / "vocabulary.txt", Tokenizer(4))


def test_vocabulary_is_ordered_by_frequency_after_reserved_tokens(encoder, tmp_path):
    assert read_vocabulary(tmp_path / "vocabulary.txt") == [
        "[PAD]", "[UNK]", "film", "good", "bad", "plot",
    ]  # fmt: skip


def test_vocabulary_keeps_frequent_tokens_within_its_size():
    tokens = [["a", "b"], ["a", "c"], ["a", "b"], ["d"]]
    assert build_vocabulary(tokens, 4) == ["[PAD]", "[UNK]", "a", "b"]  # c, d: seen once
    assert build_vocabulary(tokens, 3, min_count=1) == ["[PAD]", "[UNK]", "a"]


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


@pytest.fixture
def generating_encoder(tmp_path):
    tokens = [["a", "man", "rides", "a", "bike", "."], ["a", "dog", "runs", ","]]
    vocabulary = build_vocabulary(tokens, 50, min_count=1, reserved=GENERATION_TOKENS)
    write_vocabulary(vocabulary, tmp_path / "captions.txt")
    return TextEncoder(
        tmp_path / "captions.txt", Tokenizer(8), add_start=True, add_end=True
    ), vocabulary


def test_start_and_end_tokens_frame_every_text(generating_encoder):
    encoder, vocabulary = generating_encoder
    ids = encoder.encode(tf.constant(["A man rides", ""])).numpy()
    assert vocabulary[:4] == list(GENERATION_TOKENS)
    index = {token: i for i, token in enumerate(vocabulary)}
    np.testing.assert_array_equal(
        ids,
        [[START_ID, index["a"], index["man"], index["rides"], END_ID], [START_ID, END_ID, 0, 0, 0]],
    )


def test_decode_stops_at_end_and_attaches_punctuation(generating_encoder):
    encoder, _ = generating_encoder
    ids = encoder.encode(tf.constant(["A man rides a bike.", "a dog, runs"]))
    assert [t.decode() for t in encoder.decode(ids).numpy()] == [
        "a man rides a bike.",
        "a dog, runs",
    ]
    # Everything after the first [END] is cut; padding and [START] never show.
    tail = tf.constant([[START_ID, 4, END_ID, 4, 4], [4, 0, 0, 0, 0]])
    decoded = [t.decode() for t in encoder.decode(tail).numpy()]
    assert decoded == [encoder_token(encoder, 4)] * 2
    tokens = encoder.decode_tokens(tf.constant([[START_ID, 4, 5, END_ID, 0]])).to_list()
    assert len(tokens[0]) == 2


def encoder_token(encoder, token_id):
    return encoder.tokens_by_id.lookup(tf.constant(token_id, tf.int64)).numpy().decode()


def test_start_and_end_need_a_generating_vocabulary(tmp_path):
    write_vocabulary(["[PAD]", "[UNK]", "x"], tmp_path / "v.txt")
    with pytest.raises(SeqappsError, match=r"has no \[START\]/\[END\] tokens"):
        TextEncoder(tmp_path / "v.txt", Tokenizer(4), add_start=True)


def test_encode_tokens_takes_pre_split_input(encoder):
    tokens = tf.ragged.constant([["good", "film"], []])
    np.testing.assert_array_equal(encoder.encode_tokens(tokens).numpy(), [[3, 2], [UNKNOWN_ID, 0]])


def test_encoders_never_share_a_stale_table(tmp_path):
    """Each encoder looks up its own file. TensorFlow shares a named table by name, and names a
    file's table after the file argument: for an Asset, its memory address, which a later
    Asset reuses once the first is freed (6 encoders in 60 read an old vocabulary before)."""
    stale = []
    for index in range(60):
        path = tmp_path / f"v{index}.txt"
        write_vocabulary([*CLASSIFICATION_TOKENS, f"word{index}"], path)
        encoder = TextEncoder(path, Tokenizer(4))
        if encoder.encode(tf.constant([f"word{index}"])).numpy().tolist() != [[2]]:
            stale.append(index)
        del encoder
        gc.collect(0)
    assert stale == []
