"""What the apps that generate tokens share: embedding, loss, metric, schedule and cached decoding.

Translation (text -> text) and captioning (image -> text) both train a decoder with teacher
forcing (inputs ``[START] y1 y2 ...``, targets ``y1 y2 ... [END]``, padding id 0) and decode it
one token at a time with ``apps/common/decoding.py``:

- ``TokenEmbedding``: token embeddings that also project hidden states back onto the vocabulary
  (tied embeddings);
- ``MaskedSmoothedCrossEntropy`` and ``MaskedTokenAccuracy``: loss and accuracy over the real
  (non-padding) target tokens, for targets of any rank (``[b, T]`` sentences, ``[b, K, T]`` the
  captions of an image);
- ``WarmupInverseSquareRoot`` and ``compile_generator``: Adam with warm-up, inverse square root
  decay and global-norm clipping;
- ``TransformerDecoding``: a stack of ``seqlayers.TransformerDecoder`` blocks over a fixed memory
  (an encoded source sentence, an image's feature grid), one token a step with key/value caches;
- the searches' plumbing: ``search`` (greedy or beam), ``decoding_hyperparameters``
  (``export --beam-width``), ``score_searches`` (``evaluate --search``) and ``outputs_path``.
  Their flags: ``apps/common/command_line.py``'s ``add_search_arguments``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops

from apps.common import decoding
from apps.common.errors import SeqappsError
from apps.common.predictor import Predictor, RunPredictor
from apps.common.task import SERVING_DEFAULT

PACKAGE = "seqapps"


# === Layers ===


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenEmbedding(keras.layers.Embedding):
    """An ``Embedding`` that also projects back onto its vocabulary (tied embeddings).

    ``call(ids)`` gives ``E[ids] * scale`` with ``scale = sqrt(output_dim)`` when ``scale`` is
    set (Vaswani et al. 2017, section 3.4); ``call(hidden, reverse=True)`` gives the logits
    ``hidden @ E^T`` in float32 (Press & Wolf 2017, https://arxiv.org/abs/1608.05859). Id 0 is
    padding (``mask_zero``).
    """

    def __init__(self, input_dim, output_dim, scale=False, **kwargs):
        super().__init__(input_dim, output_dim, mask_zero=True, **kwargs)
        self.scale = scale

    def call(self, inputs, reverse=False):
        if reverse:
            kernel = ops.cast(self.embeddings, self.compute_dtype)
            return ops.cast(ops.matmul(inputs, ops.transpose(kernel)), "float32")
        embedded = super().call(inputs)
        if self.scale:
            embedded = embedded * ops.cast(math.sqrt(self.output_dim), embedded.dtype)
        return embedded

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def compute_output_spec(self, inputs, reverse=False):
        if reverse:
            return keras.KerasTensor((*inputs.shape[:-1], self.input_dim), dtype="float32")
        return keras.KerasTensor((*inputs.shape, self.output_dim), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("mask_zero", None)
        return {**config, "scale": self.scale}


def output_projection(tie_embeddings: bool, target_embedding: TokenEmbedding, width: int):
    """Hidden states of size ``width`` -> float32 logits: the target embedding transposed
    (``tie_embeddings``), or a dense layer named ``output_projection``."""
    if tie_embeddings:
        if target_embedding.output_dim != width:
            raise ValueError(
                f"tie_embeddings needs the embedding size ({target_embedding.output_dim}) to equal "
                f"the decoder's output size ({width}); set tie_embeddings=false"
            )
        return lambda hidden: target_embedding(hidden, reverse=True)
    return keras.layers.Dense(target_embedding.input_dim, name="output_projection", dtype="float32")


# === Training ===


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedSmoothedCrossEntropy(keras.losses.Loss):
    """Cross-entropy with label smoothing, averaged over the real (non-padding) target tokens.

    With ``eps`` the smoothing and ``V`` the vocabulary, the target distribution is
    ``(1 - eps) * onehot(y) + eps / V`` (Szegedy et al. 2016, https://arxiv.org/abs/1512.00567).
    Tokens with id 0 (padding) weigh nothing; the loss of a batch is its sum over real tokens
    divided by their number, so long and short batches weigh each token alike.
    """

    def __init__(self, label_smoothing=0.0, name="masked_smoothed_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, "float32")
        log_probabilities = ops.log_softmax(logits, axis=-1)
        true_log_probability = ops.take_along_axis(
            log_probabilities, ops.expand_dims(y_true, -1), axis=-1
        )[..., 0]
        per_token = -(1.0 - self.label_smoothing) * true_log_probability
        per_token -= self.label_smoothing * ops.mean(log_probabilities, axis=-1)
        mask = ops.cast(ops.not_equal(y_true, 0), "float32")
        return ops.sum(per_token * mask) / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedTokenAccuracy(keras.metrics.Metric):
    """The fraction of real (non-padding) target tokens whose most likely prediction is right."""

    def __init__(self, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        del sample_weight
        y_true = ops.cast(y_true, "int32")
        mask = ops.cast(ops.not_equal(y_true, 0), "float32")
        hits = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), y_true), "float32")
        self.correct.assign_add(ops.sum(hits * mask))
        self.total.assign_add(ops.sum(mask))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class WarmupInverseSquareRoot(keras.optimizers.schedules.LearningRateSchedule):
    """``peak * min(step / warmup, sqrt(warmup / step))``: a linear warm-up to ``peak`` at
    ``warmup_steps``, then the inverse-square-root decay of Vaswani et al. (2017, eq. 3)."""

    def __init__(self, peak, warmup_steps):
        self.peak, self.warmup_steps = peak, warmup_steps

    def __call__(self, step):
        step = ops.maximum(ops.cast(step, "float32") + 1.0, 1.0)
        warmup = float(max(1, self.warmup_steps))
        return self.peak * ops.minimum(step / warmup, ops.sqrt(warmup / step))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}


def compile_generator(model: keras.Model, hyperparameters: dict) -> keras.Model:
    """Adam (``learning_rate`` the peak after ``warmup_steps``, ``clipnorm``) on the masked,
    smoothed cross-entropy (``label_smoothing``), with token accuracy."""
    schedule = WarmupInverseSquareRoot(
        hyperparameters["learning_rate"], hyperparameters["warmup_steps"]
    )
    # beta_2 = 0.98 as in Vaswani et al.: the second-moment estimate follows the warm-up.
    optimizer = keras.optimizers.Adam(
        schedule, beta_2=0.98, epsilon=1e-9, global_clipnorm=hyperparameters["clipnorm"]
    )
    model.compile(
        optimizer=optimizer,
        loss=MaskedSmoothedCrossEntropy(hyperparameters["label_smoothing"]),
        metrics=[MaskedTokenAccuracy()],
        # Keras' "auto" picks XLA for these layers, and XLA compiles anew for every batch
        # shape: bucketed sentence pairs have dozens, and a Multi30k epoch took minutes longer
        # compiling than computing. The graph runs every shape.
        jit_compile=False,
    )
    return model


# Run directories written before these classes moved here name them after the translation app.
for _legacy_name, _cls in {
    "TokenEmbedding": TokenEmbedding,
    "MaskedSmoothedCrossEntropy": MaskedSmoothedCrossEntropy,
    "MaskedTokenAccuracy": MaskedTokenAccuracy,
    "WarmupInverseSquareRoot": WarmupInverseSquareRoot,
}.items():
    keras.saving.get_custom_objects().setdefault(f"seqapps_translation>{_legacy_name}", _cls)


# === One-step decoding ===


class TransformerDecoding:
    """``TransformerDecoder`` blocks over a fixed memory, for ``apps/common/decoding.py``.

    ``start`` computes each block's cross-attention keys and values from the memory (the
    ``context``, fixed during the search) and empty self-attention caches (the ``state``);
    ``step`` embeds one token per row at position ``index`` and runs every block on it against
    its cache, so each generated token costs the same whatever the length of the output.

    Args:
        target_embedding: a ``TokenEmbedding`` of the generated tokens.
        target_positions: adds positions (``SinusoidalPositionalEncoding``,
            ``PositionEmbedding``); called with ``start_index`` during the search.
        decoders: the ``TransformerDecoder`` blocks, in order.
        decoder_norm: the final layer norm of a pre-norm stack, or None.
        project: hidden states -> logits.
    """

    def __init__(self, target_embedding, target_positions, decoders, decoder_norm, project):
        self.target_embedding, self.target_positions = target_embedding, target_positions
        self.decoders, self.decoder_norm, self.project = list(decoders), decoder_norm, project

    def start(self, memory, memory_mask, max_length):
        """``(state, context)`` for a search over at most ``max_length`` tokens;
        ``memory [b, S, dim]``, ``memory_mask [b, S]`` (None: every position is valid)."""
        batch = tf.shape(memory)[0]
        context = {
            "cross_caches": tuple(d.compute_cross_attention_cache(memory) for d in self.decoders),
            "memory_mask": memory_mask,
        }
        state = tuple(d.empty_self_attention_cache(batch, max_length) for d in self.decoders)
        return state, context

    def step(self, tokens, index, state, context):
        """``tokens [n]`` at position ``index`` -> ``(logits [n, vocabulary], state)``."""
        y = self.target_embedding(tokens[:, None])
        y = self.target_positions(y, start_index=index)
        caches = []
        for decoder, cache, cross_cache in zip(
            self.decoders, state, context["cross_caches"], strict=True
        ):
            y, cache, _ = decoder(
                y,
                encoder_padding_mask=context["memory_mask"],
                self_attention_cache=cache,
                self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache,
            )
            caches.append(cache)
        if self.decoder_norm is not None:
            y = self.decoder_norm(y)
        return self.project(y)[:, 0], tuple(caches)

    def decoder_outputs(self, memory, memory_mask, target_ids, blocks=None):
        """The hidden states after ``blocks`` (default: all, with the final norm) for a whole
        teacher-forced target."""
        y = self.target_positions(self.target_embedding(target_ids))
        target_mask = tf.not_equal(target_ids, 0)
        for decoder in self.decoders[:blocks]:
            y = decoder(
                y, memory, decoder_padding_mask=target_mask, encoder_padding_mask=memory_mask
            )
        if blocks is None and self.decoder_norm is not None:
            y = self.decoder_norm(y)
        return y

    def uncached_start(self, memory, memory_mask, max_length):
        """``start`` for ``uncached_step``: the state is the output so far, ``[n, max_length]``."""
        tokens = tf.zeros([tf.shape(memory)[0], max_length], tf.int32)
        return tokens, {"memory": memory, "memory_mask": memory_mask}

    def uncached_step(self, tokens, index, state, context):
        """A step that recomputes the whole prefix (what tutorials' exports do), to measure the
        cache against: the cost of step ``i`` grows with ``i``."""
        state = tf.tensor_scatter_nd_update(
            state,
            tf.stack([tf.range(tf.shape(tokens)[0]), tf.fill(tf.shape(tokens), index)], 1),
            tokens,
        )
        prefix = state[:, : index + 1]
        hidden = self.decoder_outputs(context["memory"], context["memory_mask"], prefix)
        return self.project(hidden[:, -1:])[:, 0], state

    def cross_attention(self, memory, memory_mask, target_ids):
        """The last block's cross-attention, averaged over heads: ``[b, T, S]``."""
        y = self.decoder_outputs(memory, memory_mask, target_ids, blocks=-1)
        scores = self.decoders[-1].cross_attention_scores(
            y,
            memory,
            decoder_padding_mask=tf.not_equal(target_ids, 0),
            encoder_padding_mask=memory_mask,
        )
        return tf.reduce_mean(tf.cast(scores, tf.float32), axis=1)


# === Searches, for serving and reports ===

BEAM = "beam"
GREEDY = "greedy"
SEARCHES = (BEAM, GREEDY)
# The export's signature of each search: beam search is the default answer.
SEARCH_SIGNATURES = {BEAM: SERVING_DEFAULT, GREEDY: GREEDY}


def decoding_hyperparameters(hyperparameters: Mapping, options: dict | None) -> dict:
    """The run's hyperparameters, with ``export --beam-width``."""
    hyperparameters = dict(hyperparameters)
    if options and options.get("beam_width"):
        if options["beam_width"] < 1:
            raise SeqappsError(f"--beam-width must be at least 1, got {options['beam_width']}")
        hyperparameters["beam_width"] = options["beam_width"]
    return hyperparameters


def search(kind: str, step, state, context, hyperparameters: Mapping, **common) -> dict:
    """``greedy_search`` or ``beam_search`` (``beam_width``, ``length_penalty`` and, where the
    app has it, ``no_repeat_ngram_size`` of ``hyperparameters``) of ``apps/common/decoding.py``;
    ``common``: their shared arguments."""
    common = {"no_repeat_ngram_size": hyperparameters.get("no_repeat_ngram_size", 0), **common}
    if kind == GREEDY:
        return decoding.greedy_search(step, state, context, **common)
    return decoding.beam_search(
        step,
        state,
        context,
        beam_width=hyperparameters["beam_width"],
        length_penalty=hyperparameters["length_penalty"],
        **common,
    )


def score_searches(
    predictor: Predictor,
    options: dict,
    generate: Callable[[str, str], list[str]],
    score: Callable[[list[str]], dict],
) -> tuple[dict, dict[str, list[str]]]:
    """Scores the searches of ``evaluate --search`` (both by default, beam first).

    ``generate(signature, search)`` gives every output of one search, ``score(outputs)`` its
    metrics. Returns the report (the first search's metrics as they are, the greedy ones
    prefixed ``greedy_``, ``search`` and, for beam search, ``beam_width``) and the outputs.
    """
    chosen = options.get("search") or "both"
    searches = SEARCHES if chosen == "both" else (chosen,)
    report, outputs = {}, {}
    for kind in searches:
        outputs[kind] = generate(SEARCH_SIGNATURES[kind], kind)
        prefix = "" if kind == searches[0] else f"{kind}_"
        report.update({f"{prefix}{name}": value for name, value in score(outputs[kind]).items()})
    report["search"] = searches[0]
    if searches[0] == BEAM:
        report["beam_width"] = beam_width_of(predictor)
    return report, outputs


def beam_width_of(predictor: Predictor) -> int | None:
    """The beam width an export was written with, else the run's."""
    metadata = predictor.metadata
    return metadata.get("beam_width") or metadata.get("hyperparameters", {}).get("beam_width")


def outputs_path(predictor: Predictor, options: dict, option: str, stem: str) -> Path | None:
    """Where ``evaluate`` writes each example's outputs: the flag ``option``'s file, else
    ``STEM-SPLIT.tsv`` in a run directory (an export's folder is TF Serving's and stays as it
    was published)."""
    if options.get(option):
        return Path(options[option])
    if isinstance(predictor, RunPredictor):
        split = str(options.get("split", "test")).replace(" ", "_").replace(os.sep, "_")
        return predictor.source / f"{stem}-{split}.tsv"
    return None
