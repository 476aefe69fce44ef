"""Words to ids and back with core TensorFlow string ops, identical in training and in the export.

The same code runs in the ``tf.data`` pipeline during training and inside the exported
SavedModel, so a served model sees exactly the tokens it was trained on, and TF Serving needs no
custom op. ``Tokenizer`` turns each string into tokens:

1. cut to ``max_tokens * bytes_per_token`` bytes (a 1 MB request costs no more than a short one),
   then repair invalid UTF-8 (and the character the cut may have split) with U+FFFD;
2. by option: Unicode lower-casing (``lowercase``), HTML line breaks (``<br />``, common in
   aclImdb) to spaces (``html_line_breaks``), ASCII punctuation split off as tokens of their own
   (``split_punctuation``); an app that needs case (named entities) or that receives tokens
   already split (CoNLL files) turns these off;
3. split on white space and keep the first ``max_tokens`` tokens.

A vocabulary file holds one token a line; the line number is the id. Its first lines are the
reserved tokens: ``[PAD]`` (0) and ``[UNK]`` (1, unknown tokens) always, then ``[START]`` (2) and
``[END]`` (3) for vocabularies that generate text (``GENERATION_TOKENS``). ``TextEncoder``
looks tokens up (and adds start/end tokens), and decodes ids back to text.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from apps.common.errors import SeqappsError
from apps.common.progress import Progress

PADDING_TOKEN = "[PAD]"
UNKNOWN_TOKEN = "[UNK]"
START_TOKEN = "[START]"
END_TOKEN = "[END]"
PADDING_ID = 0
UNKNOWN_ID = 1
START_ID = 2
END_ID = 3
CLASSIFICATION_TOKENS = (PADDING_TOKEN, UNKNOWN_TOKEN)
GENERATION_TOKENS = (PADDING_TOKEN, UNKNOWN_TOKEN, START_TOKEN, END_TOKEN)
RESERVED_TOKENS = CLASSIFICATION_TOKENS  # what every vocabulary starts with
# Closing punctuation that decoding attaches to the word before it, opening to the word after.
CLOSING_PUNCTUATION = r"[.,!?;:%)\]}]"
OPENING_PUNCTUATION = r"[(\[{]"


@dataclass(frozen=True)
class Tokenizer:
    """Strings to tokens (see the module docstring for the steps).

    Args:
        max_tokens: tokens kept per text (the first ones).
        lowercase: Unicode lower-casing.
        split_punctuation: ASCII punctuation becomes tokens of its own ("film." -> "film" ".").
        html_line_breaks: ``<br>``, ``<br />`` become spaces.
        bytes_per_token: with ``max_tokens``, the bytes read of each string.
    """

    max_tokens: int
    lowercase: bool = True
    split_punctuation: bool = True
    html_line_breaks: bool = True
    bytes_per_token: int = 32

    def __post_init__(self):
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise ValueError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """Cut, repair and normalize: ``tf.string[...]`` in and out."""
        texts = tf.strings.substr(texts, 0, self.max_tokens * self.bytes_per_token, unit="BYTE")
        texts = tf.strings.unicode_transcode(
            texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        if self.lowercase:
            texts = tf.strings.lower(texts, encoding="utf-8")
        if self.html_line_breaks:
            texts = tf.strings.regex_replace(texts, r"<br\s*/?>", " ")
        if self.split_punctuation:
            texts = tf.strings.regex_replace(texts, r"([[:punct:]])", r" \1 ")
        return texts

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """``tf.string[batch]`` -> ragged ``tf.string[batch, (tokens)]``, at most ``max_tokens``."""
        return tf.strings.split(self.normalize(texts))[:, : self.max_tokens]

    def python_tokens(
        self, texts: Sequence[str], batch_size: int = 1024, what: str = "tokenizing"
    ) -> Iterator[list[str]]:
        """Yields the token list of each text (TensorFlow's tokenizer, run in batches)."""
        with Progress(what, len(texts), "texts") as progress:
            for start in range(0, len(texts), batch_size):
                batch = list(texts[start : start + batch_size])
                for row in self.tokenize(tf.constant(batch, tf.string)).to_list():
                    yield [token.decode("utf-8") for token in row]
                progress.advance(len(batch))


def build_vocabulary(
    token_lists: Iterable[Sequence[str]],
    max_size: int,
    min_count: int = 2,
    reserved: Sequence[str] = CLASSIFICATION_TOKENS,
) -> list[str]:
    """The ``reserved`` tokens, then the most frequent tokens seen at least ``min_count`` times
    (ties broken alphabetically), ``max_size`` entries in all."""
    _check_reserved(reserved, "reserved")
    counts = collections.Counter()
    for tokens in token_lists:
        counts.update(tokens)
    frequent = [
        token
        for token, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if count >= min_count and token not in reserved
    ]
    return [*reserved, *frequent[: max(0, max_size - len(reserved))]]


def _check_reserved(tokens: Sequence[str], where: str) -> None:
    if tuple(tokens[: len(GENERATION_TOKENS)]) == GENERATION_TOKENS:
        return
    if tuple(tokens[: len(CLASSIFICATION_TOKENS)]) != CLASSIFICATION_TOKENS:
        raise SeqappsError(
            f"{where}: not a seqapps vocabulary (its first lines must be {RESERVED_TOKENS}, "
            f"optionally followed by {GENERATION_TOKENS[2:]})"
        )


def write_vocabulary(vocabulary: Sequence[str], path: Path) -> None:
    """One token a line, written atomically (a crash leaves no half file)."""
    if any("\n" in token or "\r" in token for token in vocabulary):
        raise ValueError("vocabulary tokens must not contain line breaks")
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("".join(f"{token}\n" for token in vocabulary), encoding="utf-8")
    temporary.replace(path)


def read_vocabulary(path: Path) -> list[str]:
    try:
        vocabulary = path.read_text(encoding="utf-8").split("\n")[:-1]
    except FileNotFoundError as error:
        raise SeqappsError(f"{path}: vocabulary file not found") from error
    _check_reserved(vocabulary, str(path))
    return vocabulary


def _vocabulary_table(file, key_dtype, value_dtype, default) -> tf.lookup.StaticHashTable:
    """A table from a vocabulary file: tokens to ids (string keys) or ids to tokens."""
    line, number = tf.lookup.TextFileIndex.WHOLE_LINE, tf.lookup.TextFileIndex.LINE_NUMBER
    string_keys = key_dtype == tf.string
    initializer = tf.lookup.TextFileInitializer(
        file,
        key_dtype=key_dtype,
        key_index=line if string_keys else number,
        value_dtype=value_dtype,
        value_index=number if string_keys else line,
    )
    # Anonymous: a named table is shared by name, and TensorFlow names a file-initialized
    # table after str(file), which for an Asset is its memory address. Once an Asset was freed,
    # a new encoder whose Asset reused the address silently looked up the old vocabulary.
    return tf.lookup.StaticHashTable(
        initializer, default_value=default, experimental_is_anonymous=True
    )


class TextEncoder(tf.Module):
    """Strings to padded token ids and ids back to strings; exportable (the file is an asset).

    Args:
        vocabulary_path: one token per line; the line number is the id.
        tokenizer: how strings become tokens.
        add_start: put ``[START]`` before each text's tokens (the vocabulary must have it).
        add_end: put ``[END]`` after them.
    """

    def __init__(
        self,
        vocabulary_path: Path,
        tokenizer: Tokenizer,
        *,
        add_start: bool = False,
        add_end: bool = False,
        name: str | None = None,
    ):
        super().__init__(name=name)
        vocabulary = read_vocabulary(Path(vocabulary_path))
        self.tokenizer = tokenizer
        self.vocabulary_size = len(vocabulary)
        self.generates = tuple(vocabulary[: len(GENERATION_TOKENS)]) == GENERATION_TOKENS
        if (add_start or add_end) and not self.generates:
            raise SeqappsError(
                f"{vocabulary_path}: has no {START_TOKEN}/{END_TOKEN} tokens to add "
                f"(its first lines must be {GENERATION_TOKENS})"
            )
        self.add_start, self.add_end = add_start, add_end
        self.vocabulary_file = tf.saved_model.Asset(str(vocabulary_path))
        # Line text -> line number, and back.
        self.table = _vocabulary_table(self.vocabulary_file, tf.string, tf.int64, UNKNOWN_ID)
        self.tokens_by_id = _vocabulary_table(
            self.vocabulary_file, tf.int64, tf.string, UNKNOWN_TOKEN
        )

    def lookup(self, tokens: tf.RaggedTensor) -> tf.RaggedTensor:
        """Ragged tokens -> ragged ``int32`` ids (unknown tokens: ``UNKNOWN_ID``)."""
        return tf.cast(tf.ragged.map_flat_values(self.table.lookup, tokens), tf.int32)

    def encode(self, texts: tf.Tensor) -> tf.Tensor:
        """``tf.string[batch]`` -> ``int32[batch, longest]``, padded with 0; no row is empty."""
        return self.encode_tokens(self.tokenizer.tokenize(texts))

    def encode_tokens(self, tokens: tf.RaggedTensor) -> tf.Tensor:
        """Ragged ``tf.string[batch, (tokens)]`` -> ``int32[batch, longest]`` with the start
        and end tokens asked for, padded with 0. A row without tokens (nor start/end tokens)
        becomes one ``[UNK]``: a fully masked row has no defined answer."""
        ids = self.lookup(tokens)
        if self.add_start or self.add_end:
            column = tf.ones([ids.nrows(), 1], tf.int32)
            start = [tf.RaggedTensor.from_tensor(column * START_ID)] if self.add_start else []
            end = [tf.RaggedTensor.from_tensor(column * END_ID)] if self.add_end else []
            ids = tf.concat([*start, ids, *end], axis=1)
        dense = ids.to_tensor(default_value=PADDING_ID)
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(dense)[1])]])
        first = tf.where(tf.equal(ids.row_lengths(), 0), UNKNOWN_ID, dense[:, 0])
        return tf.concat([first[:, None], dense[:, 1:]], axis=1)

    def decode_tokens(self, ids: tf.Tensor) -> tf.RaggedTensor:
        """``int[batch, time]`` -> ragged tokens: up to the first ``[END]``, without padding
        and ``[START]``."""
        ids = tf.cast(ids, tf.int64)
        if self.generates:
            # Everything from the first [END] on is cut.
            before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), 1), 0)
        else:
            before_end = tf.ones_like(ids, tf.bool)
        keep = before_end & tf.not_equal(ids, PADDING_ID)
        if self.generates:
            keep &= tf.not_equal(ids, START_ID)
        return tf.ragged.boolean_mask(self.tokens_by_id.lookup(ids), keep)

    def decode(self, ids: tf.Tensor, attach_punctuation: bool = True) -> tf.Tensor:
        """``int[batch, time]`` -> ``tf.string[batch]``: the tokens joined by spaces, closing
        punctuation attached to the word before it (when ``attach_punctuation``)."""
        texts = tf.strings.reduce_join(self.decode_tokens(ids), axis=-1, separator=" ")
        if attach_punctuation:
            texts = tf.strings.regex_replace(texts, f" ({CLOSING_PUNCTUATION})", r"\1")
            texts = tf.strings.regex_replace(texts, f"({OPENING_PUNCTUATION}) ", r"\1")
        return texts
