"""Captioning models from ``seqlayers``: an image encoder and an attentive decoder.

A functional ``keras.Model`` from ``{"images" | "image_features", "caption_ids"}`` to next-word
logits, trained with teacher forcing:

- ``images``: ``uint8[b, S, S, 3]`` (``image_size`` S), decoded and cropped by the task's
  preprocessor; or, when a frozen ``keras.applications`` backbone computes the features once
  (``encoder`` a backbone name, ``fine_tune_encoder`` false), ``image_features``:
  ``float32[b, L, C]``, the backbone's grid of L positions, cached by the pipeline;
- ``caption_ids``: ``int32[b, K, T]``, every caption of each image (``[START] w1 w2 ...``, rows
  of zeros where an image has fewer than K), so that the encoder runs once per image, not once
  per caption; the logits are ``[b, K, T, vocabulary]``.

Encoders (``encoder``): ``cnn``, a small convolutional network trained from scratch (a strided
5x5 stem, then ``encoder_blocks`` blocks of a 3x3 convolution, batch normalization, ReLU and 2x2
max pooling, doubling ``encoder_width``): a 96x96 image becomes a 6x6 grid of 256 features.
Or a ``keras.applications`` model (``MobileNetV2``, ``ResNet50``, ``EfficientNetB0``...) without
its top, its weights read from ``encoder_weights`` (a file on disk; nothing is downloaded), its
own input preprocessing applied, frozen (in the task's preprocessor) or fine-tuned (in the model).

Decoders (``architecture``):

- ``lstm`` (default): the decoder of "Show, Attend and Tell" (Xu et al. 2015,
  https://arxiv.org/abs/1502.03044) on ``seqlayers.PeepholeLSTMCell``, with soft additive
  attention over the grid before each step, its gate, its deep output and its doubly stochastic
  attention regularization (``AttentiveLSTMDecoder``).
- ``transformer``: ``seqlayers.TransformerDecoder`` blocks (causal self-attention over the words,
  cross-attention to the grid features projected to ``model_dim`` plus a learned embedding of
  each grid position), as in the captioning transformers after Vaswani et al. 2017
  (``TransformerCaptionDecoder``).

Both decode one word at a time for ``apps/common/decoding.py`` (``start`` and ``step``: the LSTM
through its ``h`` and ``c``, the transformer through its key/value caches), and give their
attention over the grid for each word of a caption (``attention_maps``). Loss, accuracy and
learning-rate schedule are translation's (``apps/common/generation.py``).
"""

from __future__ import annotations

import importlib

import keras
import tensorflow as tf
from keras import ops

from apps.captioning import ARCHITECTURES
from apps.common.errors import SeqappsError
from apps.common.generation import TokenEmbedding, TransformerDecoding, compile_generator
from seqlayers import (
    PeepholeLSTMCell,
    PositionEmbedding,
    SinusoidalPositionalEncoding,
    TransformerDecoder,
)

PACKAGE = "seqapps_captioning"
CNN = "cnn"
IMAGES_INPUT = "images"
FEATURES_INPUT = "image_features"
CAPTIONS_INPUT = "caption_ids"
GRID_FEATURES = "grid_features"  # the cnn encoder's output layer
BACKBONE = "backbone"  # a keras.applications encoder, as one layer of the model

COMMON_DEFAULTS = {
    # Images: decoded, the centre square cropped and resized to image_size x image_size.
    "image_size": 96,
    "encoder": CNN,  # or a keras.applications model name
    "encoder_weights": "",  # that model's weights file ("" : random, trained from scratch)
    "fine_tune_encoder": False,  # train a keras.applications backbone (else frozen, cached)
    "encoder_width": 32,  # cnn: filters of the stem, doubled by each block
    "encoder_blocks": 3,  # cnn: each halves the grid (96 -> 48 by the stem -> 6 after three)
    # Training images (a trained encoder only): random horizontal flips, which swap the words
    # "left" and "right" in the captions, and shifts by up to an eighth of the image.
    "augment": True,
    # Words: lower-cased, punctuation split off; the most frequent vocabulary_size words seen
    # at least min_word_count times in the training captions (the rest is [UNK]).
    "vocabulary_size": 5000,
    "min_word_count": 2,
    "max_caption_tokens": 30,  # words trained on per caption, and the most ever generated
    "max_captions_per_image": 5,  # the first K captions of each image are trained on
    "dropout": 0.3,
    "label_smoothing": 0.1,
    "learning_rate": 1e-3,  # the peak, reached after warmup_steps
    "warmup_steps": 200,
    "clipnorm": 5.0,
    "tie_embeddings": True,  # the output projection is the word embedding, transposed
    # Decoding: beam width and GNMT length penalty of serving_default; no word triple twice in
    # a caption (trigram blocking: it stops an undertrained decoder's loops, "a man in a red
    # shirt and a red shirt and ...", bench/RESULTS.md).
    "beam_width": 3,
    "length_penalty": 0.6,
    "no_repeat_ngram_size": 3,
}
ARCHITECTURE_DEFAULTS = {
    "lstm": {
        "embedding_dim": 256,
        "units": 256,
        "attention_dim": 256,
        # lambda of the doubly stochastic regularization (Xu et al. 2015, eq. 14).
        "attention_regularization": 1.0,
    },
    "transformer": {
        "model_dim": 256,
        "num_heads": 4,
        "intermediate_dim": 512,
        "decoder_layers": 2,
        "normalize_first": True,
    },
}


def default_hyperparameters(architecture: str) -> dict:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    return {"architecture": architecture, **COMMON_DEFAULTS, **ARCHITECTURE_DEFAULTS[architecture]}


def caches_features(hyperparameters: dict) -> bool:
    """Whether a frozen backbone computes the features once, outside the trained model."""
    return hyperparameters["encoder"] != CNN and not hyperparameters["fine_tune_encoder"]


def trains_encoder(hyperparameters: dict) -> bool:
    return not caches_features(hyperparameters)


# === Encoders ===


def backbone_module(name: str):
    """The ``keras.applications`` submodule of model ``name`` (for its ``preprocess_input``)."""
    constructor = getattr(keras.applications, name, None)
    if name.startswith("_") or not callable(constructor):
        available = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise SeqappsError(
            f"encoder {name!r} is neither {CNN!r} nor a keras.applications model "
            f"(available: {', '.join(available)})"
        )
    submodule = constructor.__module__.rsplit(".", 1)[-1]
    return constructor, importlib.import_module(f"keras.applications.{submodule}")


@keras.saving.register_keras_serializable(package=PACKAGE)
class BackbonePreprocessing(keras.layers.Layer):
    """``uint8`` images -> the input scaling a ``keras.applications`` model expects (its module's
    ``preprocess_input``: [-1, 1], ImageNet mean and deviation, or BGR minus the mean)."""

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        _, self.module = backbone_module(encoder)

    def call(self, images):
        return self.module.preprocess_input(ops.cast(images, self.compute_dtype))

    def compute_output_spec(self, images):
        return keras.KerasTensor(images.shape, dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "encoder": self.encoder}


def build_backbone(hyperparameters: dict, weights: str | None) -> keras.Model:
    """``uint8[b, S, S, 3]`` -> ``[b, L, C]``: a ``keras.applications`` model without its top,
    ``weights`` read from a file (None: random)."""
    name, size = hyperparameters["encoder"], hyperparameters["image_size"]
    constructor, _ = backbone_module(name)
    images = keras.Input((size, size, 3), dtype="uint8", name="backbone_images")
    try:
        network = constructor(include_top=False, weights=weights, input_shape=(size, size, 3))
    except (ValueError, OSError) as error:
        # Keras lists every weight that did not fit: its first line says enough.
        reason = str(error).strip().splitlines()[0][:300]
        raise SeqappsError(
            f"encoder {name}: cannot use the weights {weights or 'none'} at image_size {size} "
            f"(weights of another model or variant?): {reason}"
        ) from None
    grid = network(BackbonePreprocessing(name, name="backbone_preprocessing")(images))
    features = keras.layers.Reshape((-1, grid.shape[-1]), name="grid_features")(grid)
    return keras.Model(images, features, name=BACKBONE)


def _cnn_encoder(hp: dict, images):
    width, blocks = hp["encoder_width"], hp["encoder_blocks"]
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="encoder_scaling")(images)
    x = keras.layers.Conv2D(
        width, 5, strides=2, padding="same", use_bias=False, name="encoder_stem"
    )(x)
    x = keras.layers.BatchNormalization(name="encoder_stem_norm")(x)
    x = keras.layers.ReLU(name="encoder_stem_relu")(x)
    for block in range(blocks):
        filters = width * 2 ** (block + 1)
        x = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=False, name=f"encoder_conv_{block}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"encoder_norm_{block}")(x)
        x = keras.layers.ReLU(name=f"encoder_relu_{block}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"encoder_pool_{block}")(x)
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise SeqappsError(
            f"image_size {hp['image_size']} is too small for {blocks} encoder blocks"
        )
    # [b, h * w, C]: the grid positions, row by row.
    return keras.layers.Reshape((-1, x.shape[-1]), name=GRID_FEATURES)(x)


# === Decoders ===


def check_positive_integers(**values) -> None:
    """A ``ValueError`` naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentiveLSTMDecoder(keras.layers.Layer):
    """The decoder of "Show, Attend and Tell" (Xu et al. 2015, https://arxiv.org/abs/1502.03044).

    Over a grid of features ``a_1 ... a_L`` (``[b, L, C]``), each step ``t`` reads the previous
    word ``y_{t-1}`` and the previous state ``h_{t-1}``::

        e_ti = w^T tanh(W_a a_i + W_h h_{t-1} + b)        (soft additive attention, eq. 4-5)
        alpha_t = softmax_i(e_t)
        z_t = sigmoid(W_b h_{t-1} + b_b) * sum_i alpha_ti a_i    (the gating scalar of 4.2.1,
                                                             one per feature channel here)
        h_t, c_t = PeepholeLSTMCell([E y_{t-1}; z_t], h_{t-1}, c_{t-1})
        logits_t = L_o(E y_{t-1} + L_h h_t + L_z z_t)        (deep output, eq. 7)

    with ``h_0 = tanh(W_h0 mean_i a_i)``, ``c_0 = tanh(W_c0 mean_i a_i)``, and ``L_o`` the
    word embedding transposed when ``tie_embeddings``. Training adds the doubly stochastic
    regularization (eq. 14), which asks every grid position to receive about one unit of
    attention over the caption, ``lambda * mean_i (tau - sum_t alpha_ti)^2``, averaged over
    the captions with at least one word (``add_loss``). The paper's ``tau`` is 1, which its
    196 positions allow; a caption of T words spends T units of attention, so on a grid of
    fewer positions than words (a backbone's 1x1 or 2x2 grid of a small image) no attention
    can meet it and the term would swamp the loss: there ``tau = T / L``, the even spread.

    Args:
        vocabulary_size: words, including padding (id 0) and the start token.
        embedding_dim: word embedding size (and the deep output's).
        units: LSTM size.
        attention_dim: size of the attention's hidden layer.
        dropout: on the word embeddings and on the deep output.
        attention_regularization: ``lambda``; 0 turns it off.
        tie_embeddings: ``L_o = E^T`` (else a dense layer).

    Call arguments:
        features: ``[b, L, C]``.
        caption_ids: ``int32[b, K, T]``, K captions per image, 0 is padding.

    Returns:
        float32 logits ``[b, K, T, vocabulary_size]``. Padded words (id 0) change no valid
        output: the recurrence runs left to right and padding comes last.
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=256,
        units=256,
        attention_dim=256,
        dropout=0.0,
        attention_regularization=1.0,
        tie_embeddings=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_integers(
            vocabulary_size=vocabulary_size,
            embedding_dim=embedding_dim,
            units=units,
            attention_dim=attention_dim,
        )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if attention_regularization < 0:
            raise ValueError(
                f"attention_regularization must be >= 0, got {attention_regularization!r}"
            )
        self.vocabulary_size, self.embedding_dim = vocabulary_size, embedding_dim
        self.units, self.attention_dim = units, attention_dim
        self.dropout, self.attention_regularization = dropout, attention_regularization
        self.tie_embeddings = tie_embeddings

    def build(self, features_shape, caption_ids_shape=None):
        channels = features_shape[-1]

        def dense(units, name, input_dim, **kwargs):
            layer = keras.layers.Dense(units, name=name, dtype=self.dtype_policy, **kwargs)
            layer.build((None, input_dim))
            return layer

        self.embedding = TokenEmbedding(
            self.vocabulary_size, self.embedding_dim, name="embedding", dtype=self.dtype_policy
        )
        self.embedding.build((None, None))
        self.feature_attention = dense(
            self.attention_dim, "feature_attention", channels, use_bias=False
        )
        self.hidden_attention = dense(self.attention_dim, "hidden_attention", self.units)
        self.attention_score = dense(1, "attention_score", self.attention_dim)
        self.gate = dense(channels, "gate", self.units, activation="sigmoid")
        self.initial_h = dense(self.units, "initial_h", channels, activation="tanh")
        self.initial_c = dense(self.units, "initial_c", channels, activation="tanh")
        self.cell = PeepholeLSTMCell(self.units, name="cell", dtype=self.dtype_policy)
        self.cell.build((None, self.embedding_dim + channels))
        self.hidden_output = dense(self.embedding_dim, "hidden_output", self.units)
        self.context_output = dense(self.embedding_dim, "context_output", channels, use_bias=False)
        self.embedding_dropout = keras.layers.Dropout(self.dropout, name="embedding_dropout")
        self.output_dropout = keras.layers.Dropout(self.dropout, name="output_dropout")
        self.projection = None
        if not self.tie_embeddings:
            # float32 logits under any policy (the searches take their log-softmax).
            self.projection = keras.layers.Dense(
                self.vocabulary_size, name="projection", dtype="float32"
            )
            self.projection.build((None, self.embedding_dim))
        self.built = True

    # --- one step, shared by training and decoding ---

    def attend(self, h, features, projected):
        """``(z_t [n, C], alpha_t [n, L])`` from ``h_{t-1}``."""
        hidden = ops.expand_dims(self.hidden_attention(h), 1)  # [n, 1, A]
        scores = self.attention_score(ops.tanh(projected + hidden))[..., 0]  # [n, L]
        alpha = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        context = ops.einsum("nl,nlc->nc", ops.cast(alpha, features.dtype), features)
        return self.gate(h) * context, alpha

    def initial_state(self, features):
        mean = ops.mean(features, axis=1)
        return self.initial_h(mean), self.initial_c(mean)

    def output_logits(self, embedded, h, z, training=False):
        deep = embedded + self.hidden_output(h) + self.context_output(z)
        deep = self.output_dropout(deep, training=training)
        if self.projection is None:
            return self.embedding(deep, reverse=True)
        return self.projection(deep)

    def recur(self, features, ids, training=False):
        """Teacher forcing over ``ids [n, T]``: ``(embedded, h, z, alpha)`` for every step."""
        projected = self.feature_attention(features)
        embedded = self.embedding_dropout(self.embedding(ids), training=training)

        def step(carry, word):
            h, c, _, _ = carry
            z, alpha = self.attend(h, features, projected)
            h, (_, c) = self.cell(ops.concatenate([word, z], axis=-1), [h, c], training=training)
            # Keras' scan stacks outputs shaped as the carry: the carry is the step's output.
            return (h, c, z, alpha), (h, c, z, alpha)

        h, c = self.initial_state(features)
        z = ops.zeros_like(features[:, 0])
        alpha = ops.zeros_like(ops.cast(features[..., 0], "float32"))
        _, (h, _, z, alpha) = ops.scan(step, (h, c, z, alpha), ops.transpose(embedded, (1, 0, 2)))
        h, z, alpha = (ops.transpose(x, (1, 0, 2)) for x in (h, z, alpha))
        return embedded, h, z, alpha

    def call(self, features, caption_ids, training=False):
        shape = ops.shape(caption_ids)
        batch, captions, time = shape[0], shape[1], shape[2]
        ids = ops.reshape(caption_ids, (-1, time))
        features = ops.repeat(features, captions, axis=0)
        embedded, h, z, alpha = self.recur(features, ids, training)
        logits = self.output_logits(embedded, h, z, training)
        if self.attention_regularization:
            self.add_loss(self.regularization(alpha, ops.not_equal(ids, 0)))
        return ops.reshape(logits, (batch, captions, time, self.vocabulary_size))

    def regularization(self, alpha, mask):
        """``lambda * mean_i (tau - sum_t alpha_ti)^2`` over the captions with a word, where
        ``tau = max(1, T / L)`` for a caption of T words over L positions."""
        mask = ops.cast(mask, "float32")
        attention = ops.sum(alpha * mask[..., None], axis=1)  # [n, L]
        words = ops.sum(mask, axis=-1, keepdims=True)  # [n, 1]
        positions = ops.cast(ops.shape(alpha)[-1], "float32")
        target = ops.maximum(1.0, words / positions)
        per_caption = ops.mean(ops.square(target - attention), axis=-1)
        has_words = ops.cast(ops.sum(mask, axis=-1) > 0, "float32")
        mean = ops.sum(per_caption * has_words) / ops.maximum(ops.sum(has_words), 1.0)
        return self.attention_regularization * mean

    def compute_output_spec(self, features, caption_ids, training=False):
        return keras.KerasTensor((*caption_ids.shape, self.vocabulary_size), dtype="float32")

    # --- decoding (apps/common/decoding.py) ---

    def start(self, features, max_length):
        del max_length  # the recurrent state does not grow
        context = {"features": features, "projected": self.feature_attention(features)}
        return self.initial_state(features), context

    def step(self, tokens, index, state, context):
        del index  # the recurrence carries the position
        h, c = state
        # The table itself, not the layer's call: cast to the compute dtype as the call would
        # (float16 under mixed_float16, where the table stays float32).
        embedded = ops.cast(ops.take(self.embedding.embeddings, tokens, axis=0), self.compute_dtype)
        z, _ = self.attend(h, context["features"], context["projected"])
        h, (_, c) = self.cell(ops.concatenate([embedded, z], axis=-1), [h, c])
        return self.output_logits(embedded, h, z), (h, c)

    def attention_maps(self, features, ids):
        """``alpha [n, T, L]``: the attention over the grid as each word of ``ids`` is read."""
        return self.recur(features, ids)[3]

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "attention_dim": self.attention_dim,
            "dropout": self.dropout,
            "attention_regularization": self.attention_regularization,
            "tie_embeddings": self.tie_embeddings,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerCaptionDecoder(keras.layers.Layer):
    """``TransformerDecoder`` blocks over an image's feature grid.

    The memory is ``Dense(model_dim)(a_i) + P_i`` with ``P`` a learned embedding of the grid
    positions (the features carry no position of their own); the words are embedded, scaled by
    ``sqrt(model_dim)`` and given sinusoidal positions (Vaswani et al. 2017,
    https://arxiv.org/abs/1706.03762); each block has causal self-attention over the words and
    cross-attention to the memory; pre-norm blocks with a final layer norm when
    ``normalize_first`` (Xiong et al. 2020, https://arxiv.org/abs/2002.04745).

    Args:
        vocabulary_size: words, including padding (id 0) and the start token.
        model_dim, num_heads, intermediate_dim, decoder_layers: the blocks' sizes.
        dropout: after the embeddings and inside the blocks.
        normalize_first: pre-norm blocks (else post-norm, as in Vaswani et al.).
        tie_embeddings: the output projection is the word embedding transposed.

    Call arguments:
        features: ``[b, L, C]``.
        caption_ids: ``int32[b, K, T]``, 0 is padding.

    Returns:
        float32 logits ``[b, K, T, vocabulary_size]``; padded words are masked out of the
        self-attention, so they change no valid output.
    """

    def __init__(
        self,
        vocabulary_size,
        model_dim=256,
        num_heads=4,
        intermediate_dim=512,
        decoder_layers=2,
        dropout=0.0,
        normalize_first=True,
        tie_embeddings=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_integers(
            vocabulary_size=vocabulary_size,
            model_dim=model_dim,
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            decoder_layers=decoder_layers,
        )
        self.vocabulary_size, self.model_dim = vocabulary_size, model_dim
        self.num_heads, self.intermediate_dim = num_heads, intermediate_dim
        self.decoder_layers, self.dropout = decoder_layers, dropout
        self.normalize_first, self.tie_embeddings = normalize_first, tie_embeddings

    def build(self, features_shape, caption_ids_shape=None):
        positions, channels, dim = features_shape[1], features_shape[-1], self.model_dim
        if positions is None:
            raise ValueError(f"the feature grid needs a known size, got shape {features_shape}")
        self.memory_projection = keras.layers.Dense(
            dim, name="memory_projection", dtype=self.dtype_policy
        )
        self.memory_projection.build((None, None, channels))
        self.memory_positions = PositionEmbedding(
            positions, name="memory_positions", dtype=self.dtype_policy
        )
        self.memory_positions.build((None, positions, dim))
        self.embedding = TokenEmbedding(
            self.vocabulary_size, dim, scale=True, name="embedding", dtype=self.dtype_policy
        )
        self.embedding.build((None, None))
        self.word_positions = SinusoidalPositionalEncoding(
            name="word_positions", dtype=self.dtype_policy
        )
        self.word_positions.build((None, None, dim))
        self.embedding_dropout = keras.layers.Dropout(self.dropout, name="embedding_dropout")
        blocks = []
        for index in range(self.decoder_layers):
            block = TransformerDecoder(
                intermediate_dim=self.intermediate_dim,
                num_heads=self.num_heads,
                dropout=self.dropout,
                normalize_first=self.normalize_first,
                name=f"decoder_{index}",
                dtype=self.dtype_policy,
            )
            block.build((None, None, dim), (None, positions, dim))
            blocks.append(block)
        self.blocks = blocks
        self.final_norm = None
        if self.normalize_first:
            self.final_norm = keras.layers.LayerNormalization(
                epsilon=1e-5, name="decoder_norm", dtype=self.dtype_policy
            )
            self.final_norm.build((None, None, dim))
        self.projection = None
        if not self.tie_embeddings:
            self.projection = keras.layers.Dense(
                self.vocabulary_size, name="projection", dtype="float32"
            )
            self.projection.build((None, None, dim))
        self.built = True

    def project(self, hidden):
        if self.projection is None:
            return self.embedding(hidden, reverse=True)
        return self.projection(hidden)

    def embed_words(self, ids, start_index=0, training=False):
        embedded = self.word_positions(self.embedding(ids), start_index=start_index)
        return self.embedding_dropout(embedded, training=training)

    @property
    def decoding(self) -> TransformerDecoding:
        """The blocks as ``apps/common/generation.py``'s cached decoding (words embedded with
        their positions by ``word_positions``, no dropout at inference)."""
        return TransformerDecoding(
            self.embedding, self.word_positions, self.blocks, self.final_norm, self.project
        )

    def memory(self, features, training=False):
        """``[b, L, model_dim]``: projected features plus their grid positions."""
        memory = self.memory_positions(self.memory_projection(features))
        return self.embedding_dropout(memory, training=training)

    def call(self, features, caption_ids, training=False):
        shape = ops.shape(caption_ids)
        batch, captions, time = shape[0], shape[1], shape[2]
        ids = ops.reshape(caption_ids, (-1, time))
        memory = ops.repeat(self.memory(features, training), captions, axis=0)
        y = self.embed_words(ids, training=training)
        mask = ops.not_equal(ids, 0)
        for block in self.blocks:
            y = block(y, memory, decoder_padding_mask=mask, training=training)
        if self.final_norm is not None:
            y = self.final_norm(y)
        return ops.reshape(self.project(y), (batch, captions, time, self.vocabulary_size))

    def compute_output_spec(self, features, caption_ids, training=False):
        return keras.KerasTensor((*caption_ids.shape, self.vocabulary_size), dtype="float32")

    def _memory_and_mask(self, features):
        memory = self.memory(features)
        return memory, tf.ones(tf.shape(memory)[:2], tf.bool)

    def start(self, features, max_length):
        return self.decoding.start(*self._memory_and_mask(features), max_length)

    def step(self, tokens, index, state, context):
        return self.decoding.step(tokens, index, state, context)

    def attention_maps(self, features, ids):
        """The last block's cross-attention, averaged over heads: ``[n, T, L]``."""
        return self.decoding.cross_attention(*self._memory_and_mask(features), ids)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "model_dim": self.model_dim,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "decoder_layers": self.decoder_layers,
            "dropout": self.dropout,
            "normalize_first": self.normalize_first,
            "tie_embeddings": self.tie_embeddings,
        }


# === Functional model ===


def build_captioner(hyperparameters: dict, vocabulary_size: int) -> keras.Model:
    """The uncompiled model (see the module): encoder inputs and caption ids -> logits."""
    hp = hyperparameters
    if hp["architecture"] not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {hp['architecture']!r}")
    size = hp["image_size"]
    if caches_features(hp):
        backbone = build_backbone(hp, None)  # only for the shape of its features
        encoder_input = keras.Input(backbone.output.shape[1:], dtype="float32", name=FEATURES_INPUT)
        features = encoder_input
    else:
        encoder_input = keras.Input((size, size, 3), dtype="uint8", name=IMAGES_INPUT)
        if hp["encoder"] == CNN:
            features = _cnn_encoder(hp, encoder_input)
        else:
            backbone = build_backbone(hp, hp["encoder_weights"] or None)
            # Batch normalization keeps its ImageNet statistics while the weights fine-tune
            # (a small batch's statistics would replace them: the usual transfer-learning
            # failure, see keras.io's transfer learning guide).
            features = backbone(encoder_input, training=False)
    caption_ids = keras.Input((None, None), dtype="int32", name=CAPTIONS_INPUT)
    logits = _decoder(hp, vocabulary_size)(features, caption_ids)
    inputs = {encoder_input.name: encoder_input, CAPTIONS_INPUT: caption_ids}
    return keras.Model(inputs, logits, name=f"{hp['architecture']}_captioner")


def _decoder(hp: dict, vocabulary_size: int) -> keras.layers.Layer:
    if hp["architecture"] == "lstm":
        return AttentiveLSTMDecoder(
            vocabulary_size,
            embedding_dim=hp["embedding_dim"],
            units=hp["units"],
            attention_dim=hp["attention_dim"],
            dropout=hp["dropout"],
            attention_regularization=hp["attention_regularization"],
            tie_embeddings=hp["tie_embeddings"],
            name="decoder",
        )
    return TransformerCaptionDecoder(
        vocabulary_size,
        model_dim=hp["model_dim"],
        num_heads=hp["num_heads"],
        intermediate_dim=hp["intermediate_dim"],
        decoder_layers=hp["decoder_layers"],
        dropout=hp["dropout"],
        normalize_first=hp["normalize_first"],
        tie_embeddings=hp["tie_embeddings"],
        name="decoder",
    )


def compile_captioner(model: keras.Model, hyperparameters: dict) -> keras.Model:
    return compile_generator(model, hyperparameters)


class Captioner:
    """A trained model's parts for inference: ``features`` (encoder inputs -> ``[b, L, C]``),
    the grid's ``positions``, ``rows`` and ``columns``, and the decoder's ``start``, ``step``
    and ``attention_maps``."""

    def __init__(self, model: keras.Model):
        layer_names = {layer.name for layer in model.layers}
        self.decoder = model.get_layer("decoder")
        if FEATURES_INPUT in layer_names:
            grid = model.get_layer(FEATURES_INPUT).output
            self.features = lambda features: tf.cast(features, tf.float32)
        elif BACKBONE in layer_names:
            backbone = model.get_layer(BACKBONE)
            grid = backbone.output
            self.features = lambda images: backbone(images, training=False)
        else:
            # The encoder: the model from the images to the grid the decoder reads.
            grid = model.get_layer(GRID_FEATURES).output
            encoder = keras.Model(model.get_layer(IMAGES_INPUT).output, grid)
            self.features = lambda images: encoder(images, training=False)
        # The grid: positions L, rows x columns (square images, square grids).
        self.positions = grid.shape[1]
        self.rows = round(self.positions**0.5)
        self.columns = self.positions // self.rows
        self.start = self.decoder.start
        self.step = self.decoder.step
        self.attention_maps = self.decoder.attention_maps
