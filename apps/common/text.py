"""Text to token ids with core TensorFlow string ops, identical in training and in the export.

The same functions run in the ``tf.data`` pipeline during training and inside the exported
SavedModel, so a served model sees exactly the tokens it was trained on, and TF Serving needs no
custom op. The steps, per string:

1. cut to ``max_bytes`` bytes (a 1 MB request costs no more than a short one), then repair
   invalid UTF-8 (and the character the cut may have split) with U+FFFD;
2. Unicode lower-casing, HTML line breaks (``<br />``, common in aclImdb) to spaces, ASCII
   punctuation split off as tokens of their own;
3. split on white space and keep the first ``max_tokens`` tokens;
4. look each token up in the vocabulary: 0 is padding, 1 is ``[UNK]`` (unknown words, and the
   single token an empty text becomes, so that no sequence is empty).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from pathlib import Path

import tensorflow as tf

from apps.common.errors import SeqappsError

PADDING_TOKEN = "[PAD]"
UNKNOWN_TOKEN = "[UNK]"
PADDING_ID = 0
UNKNOWN_ID = 1
RESERVED_TOKENS = (PADDING_TOKEN, UNKNOWN_TOKEN)
BYTES_PER_TOKEN_BUDGET = 32


def normalize(texts: tf.Tensor, max_bytes: int) -> tf.Tensor:
    """Cut, repair, lower-case and space out punctuation; ``tf.string[...]`` in and out."""
    texts = tf.strings.substr(texts, 0, max_bytes, unit="BYTE")
    texts = tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, r"<br\s*/?>", " ")
    return tf.strings.regex_replace(texts, r"([[:punct:]])", r" \1 ")


def tokenize(texts: tf.Tensor, max_tokens: int) -> tf.RaggedTensor:
    """``tf.string[batch]`` -> ragged ``tf.string[batch, (tokens)]``, at most ``max_tokens``."""
    tokens = tf.strings.split(normalize(texts, max_tokens * BYTES_PER_TOKEN_BUDGET))
    return tokens[:, :max_tokens]


def python_tokenize(texts: Iterable[str], max_tokens: int, batch_size: int = 1024):
    """Yields the token list of each text, running the TensorFlow tokenizer in batches."""
    batch: list[str] = []

    def flush():
        for row in tokenize(tf.constant(batch), max_tokens).to_list():
            yield [token.decode("utf-8") for token in row]

    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


def build_vocabulary(
    texts: Iterable[str], max_tokens: int, max_size: int, min_count: int = 2
) -> list[str]:
    """The reserved tokens, then the most frequent tokens (ties broken alphabetically)."""
    counts = collections.Counter()
    for tokens in python_tokenize(texts, max_tokens):
        counts.update(tokens)
    frequent = [
        token
        for token, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if count >= min_count and token not in RESERVED_TOKENS
    ]
    return [*RESERVED_TOKENS, *frequent[: max(0, max_size - len(RESERVED_TOKENS))]]


def write_vocabulary(vocabulary: list[str], path: Path) -> None:
    path.write_text("".join(f"{token}\n" for token in vocabulary), encoding="utf-8")


def read_vocabulary(path: Path) -> list[str]:
    try:
        vocabulary = path.read_text(encoding="utf-8").split("\n")[:-1]
    except FileNotFoundError as error:
        raise SeqappsError(f"{path}: vocabulary file not found") from error
    if tuple(vocabulary[: len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
        raise SeqappsError(
            f"{path}: not a seqapps vocabulary (its first lines must be {RESERVED_TOKENS})"
        )
    return vocabulary


class TextEncoder(tf.Module):
    """Strings to padded token ids with a vocabulary file; exportable (the file is an asset).

    Args:
        vocabulary_path: one token per line; the line number is the id.
        max_tokens: tokens kept per text (the first ones).
    """

    def __init__(self, vocabulary_path: Path, max_tokens: int, name: str | None = None):
        super().__init__(name=name)
        self.max_tokens = max_tokens
        self.vocabulary_size = len(read_vocabulary(Path(vocabulary_path)))
        self.vocabulary_file = tf.saved_model.Asset(str(vocabulary_path))
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.vocabulary_file,
                key_dtype=tf.string,
                key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                value_dtype=tf.int64,
                value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            ),
            default_value=UNKNOWN_ID,
        )

    def encode(self, texts: tf.Tensor) -> tf.Tensor:
        """``tf.string[batch]`` -> ``int32[batch, longest]``, padded with 0; no row is empty."""
        tokens = tokenize(texts, self.max_tokens)
        ids = tf.cast(tf.ragged.map_flat_values(self.table.lookup, tokens), tf.int32)
        dense = ids.to_tensor(default_value=PADDING_ID)
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(dense)[1])]])
        # A text without tokens becomes one [UNK]: a fully masked row has no defined answer.
        first = tf.where(tf.equal(ids.row_lengths(), 0), UNKNOWN_ID, dense[:, 0])
        return tf.concat([first[:, None], dense[:, 1:]], axis=1)
