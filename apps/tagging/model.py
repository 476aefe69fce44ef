"""Taggers from ``seqlayers``: word ids and the characters of each word in, tag scores out.

Each token is represented by a word embedding (lower-cased, digits as 0; whole-word dropout so
that the model learns to rely on the characters of unknown words) concatenated with a character
representation: a one-block ``TCN`` over the word's characters, max-pooled over valid characters
(the character CNN of Ma & Hovy 2016, ACL, https://aclanthology.org/P16-1101/). A sequence
encoder reads the tokens in both directions: a bidirectional ``PeepholeLSTM`` (``lstm``, the
BiLSTM tagger of Plank et al. 2016 and Lample et al. 2016) or a non-causal ``TCN``
(``tcn``, ``padding="same"``). A dense layer gives one score per tag and token.

Decoders (hyperparameter ``decoder``):

- ``crf``: a linear-chain CRF (``seqlayers.LinearChainCRF``) trained with its log-likelihood and
  decoded with Viterbi (Lample et al. 2016), over allowed transitions only (for entity tags: no
  ``I-X`` after ``O`` or another type);
- ``softmax``: per-token cross-entropy; decoding takes the most likely tag of each token, or,
  for entity tags, the most likely *valid* sequence (Viterbi over the log-probabilities with
  the same allowed transitions and no learned transition scores).

Padding (id 0) becomes a Keras mask: the loss, the metrics and the decoding ignore it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from apps.common.layers import MaskedGlobalMaxPooling1D, WithPaddingMask
from apps.tagging import ARCHITECTURES
from seqlayers import TCN, LinearChainCRF, PeepholeLSTM

DECODERS = ("crf", "softmax")

# Shared by every architecture: what the encoder keeps, the token representation, training.
COMMON_DEFAULTS = {
    "max_tokens": 200,  # tokens per sentence (the rest is cut)
    "max_word_characters": 24,  # characters per token (the first ones)
    "vocabulary_size": 50_000,
    "word_dim": 100,
    "char_dim": 32,
    "char_filters": 64,
    "word_dropout": 0.1,  # whole word vectors dropped: the characters must carry unknown words
    "dropout": 0.3,
    "decoder": "crf",
    "learning_rate": 2e-3,
}
ARCHITECTURE_DEFAULTS = {
    "lstm": {"units": 128},
    "tcn": {"filters": 256, "kernel_size": 3, "dilations": [1, 2, 4]},
}


def default_hyperparameters(architecture: str) -> dict:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    return {"architecture": architecture, **COMMON_DEFAULTS, **ARCHITECTURE_DEFAULTS[architecture]}


def build_tagger(
    hp: dict,
    vocabulary_size: int,
    character_vocabulary_size: int,
    allowed_transitions: np.ndarray,
) -> keras.Model:
    """An uncompiled model ``(word_ids [b, t], char_ids [b, t, c]) -> tag scores [b, t, tags]``.

    ``allowed_transitions``: bool ``[tags + 1, tags + 1]`` (index ``tags`` is the start state as
    a row and the end state as a column), all True for tags without structure. With the
    ``crf`` decoder the model is a ``CRFTagger`` whose outputs are the CRF's emission scores;
    with ``softmax`` its outputs are probabilities.
    """
    architecture, decoder = hp["architecture"], hp["decoder"]
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    num_tags = allowed_transitions.shape[0] - 1
    word_ids = keras.Input(shape=(None,), dtype="int32", name="word_ids")
    char_ids = keras.Input(shape=(None, None), dtype="int32", name="char_ids")

    # === Token representation ===
    words = keras.layers.Embedding(
        vocabulary_size, hp["word_dim"], mask_zero=True, name="word_embedding"
    )(word_ids)
    words = keras.layers.Dropout(
        hp["word_dropout"], noise_shape=(None, None, 1), name="word_dropout"
    )(words)
    characters = CharacterCNN(
        character_vocabulary_size, hp["char_dim"], hp["char_filters"], name="characters"
    )(char_ids)
    tokens = keras.layers.Concatenate(name="token_features")([words, characters])
    tokens = WithPaddingMask(name="padding_mask")([tokens, word_ids])
    tokens = keras.layers.Dropout(hp["dropout"], name="token_dropout")(tokens)

    # === Sequence encoder ===
    if architecture == "lstm":
        encoded = keras.layers.Bidirectional(
            PeepholeLSTM(hp["units"], return_sequences=True, name="peephole_lstm"),
            name="bidirectional",
        )(tokens)
    else:
        encoded = TCN(
            hp["filters"],
            kernel_size=hp["kernel_size"],
            dilations=hp["dilations"],
            padding="same",
            normalization="layer",
            dropout=hp["dropout"] / 2,
            return_sequences=True,
            name="tcn",
        )(tokens)
    encoded = keras.layers.Dropout(hp["dropout"], name="encoder_dropout")(encoded)

    # === Tag scores ===
    if decoder == "crf":
        emissions = keras.layers.Dense(num_tags, dtype="float32", name="emissions")(encoded)
        emissions = LinearChainCRF(
            num_tags, allowed_transitions=allowed_transitions.tolist(), name="crf"
        )(emissions)
        return CRFTagger([word_ids, char_ids], emissions, name=f"tagger_{architecture}_crf")
    probabilities = keras.layers.Dense(
        num_tags, activation="softmax", dtype="float32", name="probabilities"
    )(encoded)
    return keras.Model([word_ids, char_ids], probabilities, name=f"tagger_{architecture}")


@keras.saving.register_keras_serializable(package="seqapps")
class CharacterCNN(keras.layers.Layer):
    """``char_ids [batch, words, chars] -> [batch, words, filters]``: each word's characters
    embedded, convolved (a one-block ``TCN``, kernel 3, ``padding="same"``) and max-pooled
    over its valid characters (Ma & Hovy 2016); a word without characters gives zeros.

    The words of a batch are folded into one batch of character sequences (a reshape, not
    ``TimeDistributed``, whose vectorized map fails on a dynamic number of words).
    """

    def __init__(self, character_vocabulary_size, char_dim, filters, **kwargs):
        super().__init__(**kwargs)
        self.character_vocabulary_size = character_vocabulary_size
        self.char_dim = char_dim
        self.filters = filters
        self.embedding = keras.layers.Embedding(
            character_vocabulary_size, char_dim, name="char_embedding"
        )
        self.convolution = TCN(
            filters,
            kernel_size=3,
            dilations=[1],
            padding="same",
            normalization=None,
            return_sequences=True,
            name="char_cnn",
        )
        self.pooling = MaskedGlobalMaxPooling1D(name="max_over_characters")

    def build(self, input_shape):
        self.embedding.build((None, None))
        self.convolution.build((None, None, self.char_dim))
        self.built = True

    def call(self, char_ids):
        shape = ops.shape(char_ids)
        words = ops.reshape(char_ids, (-1, shape[2]))  # [batch * words, chars]
        mask = ops.not_equal(words, 0)
        convolved = self.convolution(self.embedding(words), mask=mask)
        pooled = self.pooling(convolved, mask=mask)
        return ops.reshape(pooled, (shape[0], shape[1], self.filters))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "character_vocabulary_size": self.character_vocabulary_size,
            "char_dim": self.char_dim,
            "filters": self.filters,
        }


@keras.saving.register_keras_serializable(package="seqapps")
class CRFTagger(keras.Model):
    """A functional tagger whose loss is its CRF's negative log-likelihood.

    Its outputs are the emission scores; ``compute_loss`` reads the padding mask from the word
    ids (``x[0] != 0``) and asks the ``crf`` layer for the log-likelihood of the gold tags.
    """

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        mask = ops.not_equal(x[0], 0)
        loss = self.get_layer("crf").negative_log_likelihood(y_pred, y, mask)
        losses = [loss]
        if self.losses:
            losses.append(ops.sum(self.losses))
        return ops.sum(ops.stack(losses))
