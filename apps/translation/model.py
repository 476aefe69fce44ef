"""Encoder-decoder translators from ``seqlayers``, their training loss, and one-step decoding.

Two architectures (hyperparameter ``architecture``), each a functional ``keras.Model`` from
``(source_ids, target_ids)`` (the target shifted right: ``[START] y1 y2 ...``) to next-token
logits ``(batch, target_time, vocabulary)``, trained with teacher forcing:

- ``transformer`` (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762): token embeddings
  scaled by ``sqrt(model_dim)`` plus positions (``SinusoidalPositionalEncoding`` or a learned
  ``PositionEmbedding``), ``TransformerEncoder`` blocks over the source, ``TransformerDecoder``
  blocks (causal self-attention, cross-attention to the source) over the target; pre-norm blocks
  with a final layer norm by default (``normalize_first``), which trains stably at the higher
  learning rates that a short CPU budget needs (Xiong et al. 2020, https://arxiv.org/abs/2002.04745).
- ``lstm``: a bidirectional ``PeepholeLSTM`` encoder; a ``PeepholeLSTM`` decoder started from
  the encoder's final states; each decoder output attends to the encoder outputs (global
  attention after the recurrence, Luong et al. 2015, https://arxiv.org/abs/1508.04025:
  ``attention="dot"``, the "general" score ``h_t W h_s``, or ``"additive"``, Bahdanau et al.
  2015, https://arxiv.org/abs/1409.0473), and ``tanh(W [context; h_t])`` predicts the token.

With ``shared_vocabulary`` (one SentencePiece model for both languages) source and target share
one embedding matrix; with ``tie_embeddings`` the output projection is that matrix transposed
(Press & Wolf 2017, https://arxiv.org/abs/1608.05859), which needs ``model_dim`` (or the LSTM's
``units`` equal to ``embedding_dim``).

Padding (id 0) is a Keras mask: attention ignores padded source steps, and the loss and the
accuracy count only real target tokens (``MaskedSmoothedCrossEntropy``, ``MaskedTokenAccuracy``).
The learning rate warms up linearly, then decays with the inverse square root of the step
(``WarmupInverseSquareRoot``); gradients are clipped by their global norm. These, and the
transformer decoder's cached steps, are shared with captioning (``apps/common/generation.py``).

Inference (``translator_for``) runs the model's own layers one token at a time for
``apps/common/decoding.py``: ``encode`` the source once, then ``step`` with a cache (the
transformer's key/value caches, the LSTM's ``h`` and ``c``), so that each generated token costs
the same whatever the length of the output.
"""

from __future__ import annotations

import re

import keras
import tensorflow as tf

from apps.common.generation import (
    TokenEmbedding,
    TransformerDecoding,
    compile_generator,
    output_projection,
)
from apps.translation import ARCHITECTURES
from seqlayers import (
    PeepholeLSTM,
    PositionEmbedding,
    SinusoidalPositionalEncoding,
    TransformerDecoder,
    TransformerEncoder,
)

POSITIONS = ("sinusoidal", "learned")
ATTENTIONS = ("dot", "additive")

COMMON_DEFAULTS = {
    "vocabulary_size": 8000,  # subwords per SentencePiece model (a soft limit on small data)
    "shared_vocabulary": True,  # one subword model and one embedding for both languages
    "tie_embeddings": True,  # the output projection is the target embedding, transposed
    "max_source_tokens": 128,  # source subwords read (the rest is cut, in training and serving)
    "max_target_tokens": 128,  # target subwords trained on, and the most ever generated
    "dropout": 0.1,
    "label_smoothing": 0.1,
    "learning_rate": 1e-3,  # the peak, reached after warmup_steps
    "warmup_steps": 500,
    "clipnorm": 1.0,
    # Decoding: beam width and GNMT length penalty of serving_default; outputs stop at
    # max_length_ratio * source subwords + max_length_offset (and max_target_tokens).
    "beam_width": 4,
    "length_penalty": 0.6,
    "max_length_ratio": 1.5,
    "max_length_offset": 10,
}
ARCHITECTURE_DEFAULTS = {
    "transformer": {
        "model_dim": 256,
        "num_heads": 4,
        "intermediate_dim": 1024,
        "encoder_layers": 3,
        "decoder_layers": 3,
        "positions": "sinusoidal",
        "normalize_first": True,
    },
    "lstm": {"embedding_dim": 256, "units": 256, "attention": "dot"},
}


def default_hyperparameters(architecture: str) -> dict:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    return {"architecture": architecture, **COMMON_DEFAULTS, **ARCHITECTURE_DEFAULTS[architecture]}


# === Layers ===


def _embeddings(
    hyperparameters: dict, source_vocabulary: int, target_vocabulary: int, dim: int, scale: bool
):
    """The source and target embeddings (one layer when the vocabulary is shared)."""
    target = TokenEmbedding(target_vocabulary, dim, scale=scale, name="target_embedding")
    if hyperparameters["shared_vocabulary"]:
        if source_vocabulary != target_vocabulary:
            raise ValueError(
                f"a shared vocabulary has one size, got {source_vocabulary} and {target_vocabulary}"
            )
        return target, target
    return TokenEmbedding(source_vocabulary, dim, scale=scale, name="source_embedding"), target


def _output_projection(hyperparameters: dict, target_embedding: TokenEmbedding, width: int):
    return output_projection(hyperparameters["tie_embeddings"], target_embedding, width)


def _positions(hyperparameters: dict, name: str):
    if hyperparameters["positions"] == "sinusoidal":
        return SinusoidalPositionalEncoding(name=name)
    if hyperparameters["positions"] == "learned":
        # Sources carry an end token, targets a start token: one position more than the limit.
        longest = max(hyperparameters["max_source_tokens"], hyperparameters["max_target_tokens"])
        return PositionEmbedding(longest + 1, name=name)
    raise ValueError(f"positions must be one of {POSITIONS}, got {hyperparameters['positions']!r}")


# === Functional models ===


def build_translator(
    hyperparameters: dict, source_vocabulary: int, target_vocabulary: int
) -> keras.Model:
    """The uncompiled model ``{source_ids, target_ids} -> logits`` (see the module)."""
    architecture = hyperparameters["architecture"]
    if architecture == "transformer":
        return _build_transformer(hyperparameters, source_vocabulary, target_vocabulary)
    if architecture == "lstm":
        return _build_lstm(hyperparameters, source_vocabulary, target_vocabulary)
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")


def _inputs():
    return (
        keras.Input((None,), dtype="int32", name="source_ids"),
        keras.Input((None,), dtype="int32", name="target_ids"),
    )


def _build_transformer(hp: dict, source_vocabulary: int, target_vocabulary: int) -> keras.Model:
    dim, dropout = hp["model_dim"], hp["dropout"]
    source_ids, target_ids = _inputs()
    source_embedding, target_embedding = _embeddings(
        hp, source_vocabulary, target_vocabulary, dim, scale=True
    )
    block = {
        "intermediate_dim": hp["intermediate_dim"],
        "num_heads": hp["num_heads"],
        "dropout": dropout,
        "normalize_first": hp["normalize_first"],
    }

    x = _positions(hp, "source_positions")(source_embedding(source_ids))
    x = keras.layers.Dropout(dropout, name="source_dropout")(x)
    for index in range(hp["encoder_layers"]):
        x = TransformerEncoder(**block, name=f"encoder_{index}")(x)
    if hp["normalize_first"]:
        x = keras.layers.LayerNormalization(epsilon=1e-5, name="encoder_norm")(x)

    y = _positions(hp, "target_positions")(target_embedding(target_ids))
    y = keras.layers.Dropout(dropout, name="target_dropout")(y)
    for index in range(hp["decoder_layers"]):
        y = TransformerDecoder(**block, name=f"decoder_{index}")(y, x)
    if hp["normalize_first"]:
        y = keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")(y)
    logits = _output_projection(hp, target_embedding, dim)(y)
    return keras.Model([source_ids, target_ids], logits, name="transformer_translator")


def _attention_layer(kind: str):
    if kind == "dot":
        return keras.layers.Attention(name="attention")
    if kind == "additive":
        return keras.layers.AdditiveAttention(name="attention")
    raise ValueError(f"attention must be one of {ATTENTIONS}, got {kind!r}")


def _build_lstm(hp: dict, source_vocabulary: int, target_vocabulary: int) -> keras.Model:
    units, dropout = hp["units"], hp["dropout"]
    source_ids, target_ids = _inputs()
    source_embedding, target_embedding = _embeddings(
        hp, source_vocabulary, target_vocabulary, hp["embedding_dim"], scale=False
    )
    x = keras.layers.Dropout(dropout, name="source_dropout")(source_embedding(source_ids))
    encoded, forward_h, forward_c, backward_h, backward_c = keras.layers.Bidirectional(
        PeepholeLSTM(units, return_sequences=True, return_state=True), name="encoder"
    )(x)
    # The decoder starts from both directions' final states (Bahdanau et al. 2015 use the
    # backward one; both cost nothing more).
    initial_h = keras.layers.Dense(units, activation="tanh", name="bridge_h")(
        keras.layers.Concatenate()([forward_h, backward_h])
    )
    initial_c = keras.layers.Dense(units, name="bridge_c")(
        keras.layers.Concatenate()([forward_c, backward_c])
    )
    # [batch, source_time, units]: the encoder outputs in the decoder's space ("general" score).
    keys = keras.layers.Dense(units, use_bias=False, name="key_projection")(encoded)

    y = keras.layers.Dropout(dropout, name="target_dropout")(target_embedding(target_ids))
    decoded = PeepholeLSTM(units, return_sequences=True, name="decoder")(
        y, initial_state=[initial_h, initial_c]
    )
    attended = _attention_layer(hp["attention"])([decoded, keys])
    combined = keras.layers.Dense(units, activation="tanh", name="combine")(
        keras.layers.Concatenate()([attended, decoded])
    )
    combined = keras.layers.Dropout(dropout, name="combined_dropout")(combined)
    logits = _output_projection(hp, target_embedding, units)(combined)
    return keras.Model([source_ids, target_ids], logits, name="lstm_translator")


# === Training ===


def compile_translator(model: keras.Model, hyperparameters: dict) -> keras.Model:
    return compile_generator(model, hyperparameters)


# === One-step decoding ===


def embeddings_and_projection(model: keras.Model):
    """``(source embedding, target embedding, hidden -> logits)`` of a built translator: one
    embedding twice when the vocabulary is shared, its transpose when the output is tied."""
    layer_names = {layer.name for layer in model.layers}
    target = model.get_layer("target_embedding")
    source = model.get_layer("source_embedding") if "source_embedding" in layer_names else target
    if "output_projection" in layer_names:
        return source, target, model.get_layer("output_projection")
    return source, target, lambda hidden: target(hidden, reverse=True)


class TransformerTranslator:
    """The transformer's layers for ``apps/common/decoding.py``: ``encode`` runs the encoder once,
    then the decoder blocks decode over its outputs with their caches
    (``apps/common/generation.py``'s ``TransformerDecoding``)."""

    def __init__(self, model: keras.Model):
        layer_names = {layer.name for layer in model.layers}

        def count(prefix):
            return sum(re.fullmatch(rf"{prefix}_\d+", name) is not None for name in layer_names)

        def optional(name):
            return model.get_layer(name) if name in layer_names else None

        self.source_embedding, target_embedding, project = embeddings_and_projection(model)
        self.source_positions = model.get_layer("source_positions")
        self.encoders = [model.get_layer(f"encoder_{i}") for i in range(count("encoder"))]
        self.encoder_norm = optional("encoder_norm")
        self.decoding = TransformerDecoding(
            target_embedding,
            model.get_layer("target_positions"),
            [model.get_layer(f"decoder_{i}") for i in range(count("decoder"))],
            optional("decoder_norm"),
            project,
        )
        self.step = self.decoding.step
        self.uncached_step = self.decoding.uncached_step

    def encoder_outputs(self, source_ids):
        """``(encoded [batch, S, dim], source_mask [batch, S])``."""
        mask = tf.not_equal(source_ids, 0)
        x = self.source_positions(self.source_embedding(source_ids), mask=mask)
        for encoder in self.encoders:
            x = encoder(x, padding_mask=mask)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return x, mask

    def encode(self, source_ids, max_length):
        """``(state, context)`` for a search over at most ``max_length`` output tokens."""
        return self.decoding.start(*self.encoder_outputs(source_ids), max_length)

    def uncached_encode(self, source_ids, max_length):
        return self.decoding.uncached_start(*self.encoder_outputs(source_ids), max_length)

    def cross_attention(self, source_ids, target_ids):
        """The last decoder block's cross-attention, averaged over heads: ``[b, T, S]``."""
        return self.decoding.cross_attention(*self.encoder_outputs(source_ids), target_ids)


class LSTMTranslator:
    """The LSTM encoder-decoder's layers for ``apps/common/decoding.py``: the state is the
    decoder's ``(h, c)``, the context the projected encoder outputs and the source mask."""

    def __init__(self, model: keras.Model):
        self.source_embedding, self.target_embedding, self.project = embeddings_and_projection(
            model
        )
        self.encoder = model.get_layer("encoder")
        self.bridge_h = model.get_layer("bridge_h")
        self.bridge_c = model.get_layer("bridge_c")
        self.key_projection = model.get_layer("key_projection")
        self.decoder = model.get_layer("decoder")
        self.attention = model.get_layer("attention")
        self.combine = model.get_layer("combine")

    def encode(self, source_ids, max_length):
        del max_length  # the recurrent state does not grow
        mask = tf.not_equal(source_ids, 0)
        embedded = self.source_embedding(source_ids)
        encoded, forward_h, forward_c, backward_h, backward_c = self.encoder(embedded, mask=mask)
        state = (
            self.bridge_h(tf.concat([forward_h, backward_h], -1)),
            self.bridge_c(tf.concat([forward_c, backward_c], -1)),
        )
        return state, {"keys": self.key_projection(encoded), "source_mask": mask}

    def _attend(self, decoded, context, return_attention_scores=False):
        """``decoded [n, T, units]`` -> the combined outputs (and the attention scores)."""
        outputs = self.attention(
            [decoded, context["keys"]],
            mask=[None, context["source_mask"]],
            return_attention_scores=return_attention_scores,
        )
        attended, scores = outputs if return_attention_scores else (outputs, None)
        return self.combine(tf.concat([attended, decoded], -1)), scores

    def step(self, tokens, index, state, context):
        del index  # the recurrence carries the position
        # The embedding table itself: the layer's call would attach a mask the cell cannot take.
        embedded = tf.gather(self.target_embedding.embeddings, tokens)
        decoded, (h, c) = self.decoder.cell(embedded, list(state), training=False)
        combined, _ = self._attend(decoded[:, None], context)
        return self.project(combined)[:, 0], (h, c)

    uncached_encode = encode
    uncached_step = step  # a recurrent state is its own cache

    def cross_attention(self, source_ids, target_ids):
        (h, c), context = self.encode(source_ids, None)
        decoded = self.decoder(
            self.target_embedding(target_ids), initial_state=[h, c], mask=target_ids != 0
        )
        _, scores = self._attend(decoded, context, return_attention_scores=True)
        return tf.cast(scores, tf.float32)


def translator_for(model: keras.Model, hyperparameters: dict):
    """The one-step decoding view of a trained model."""
    if hyperparameters["architecture"] == "transformer":
        return TransformerTranslator(model)
    return LSTMTranslator(model)
