"""Learned absolute position embeddings, mask-aware, with a start index for decoding."""

import keras
from keras import ops

from seqlayers._argument_checks import check_positive_int
from seqlayers.sinusoidal_positional_encoding import valid_step_positions


@keras.saving.register_keras_serializable(package="seqlayers")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding of each step's position to its inputs.

    ``outputs[b, p] = inputs[b, p] + E[pos]`` with ``E`` a trainable ``(max_length, features)``
    table, as in BERT and GPT ("BERT", https://arxiv.org/abs/1810.04805).

    Masking: with a mask, a step's position counts only the valid steps before it
    (``pos = start_index + number of valid earlier steps``), so a pre-padded sequence gets the
    same embeddings as the sequence alone; with post-padding this is the plain step index. The
    input mask is returned unchanged.

    Sequences longer than ``max_length`` (counting ``start_index``) raise a ``ValueError``
    whenever the length and start index are known when the layer is called (eager calls,
    symbolic model building, fixed-shape graphs). Inside a compiled function with a tensor
    ``start_index`` no check is possible; keep ``start_index + length <= max_length`` there.

    Args:
        max_length: number of positions with an embedding (positive int).
        embeddings_initializer: initializer of the table. Defaults to ``"glorot_uniform"``.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, time, features)``.
        start_index: position of the first step, an int or a scalar int tensor; for incremental
            decoding, the number of steps already generated. Defaults to 0.
        mask: optional boolean ``(batch, time)``; Keras passes the inputs' mask here.
        inputs_mask: the same mask under the name Keras uses when ``start_index`` is a tensor;
            not meant to be passed by hand.

    Returns:
        ``inputs + E[positions]``, same shape and mask as ``inputs``.

    Example:

    >>> tokens = keras.Input((None,), dtype="int32")
    >>> embedded = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    >>> encoded = PositionEmbedding(max_length=512)(embedded)
    >>> print(encoded.shape)  # (batch, time, features), the mask kept
    (None, None, 64)
    """

    def __init__(self, max_length, embeddings_initializer="glorot_uniform", **kwargs):
        check_positive_int("max_length", max_length)
        super().__init__(**kwargs)
        self.max_length = max_length
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        self._check_length(input_shape[1], 0)
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.max_length, input_shape[-1]),
            initializer=self.embeddings_initializer,
        )

    def _check_length(self, length, start_index):
        if isinstance(length, int) and isinstance(start_index, int):
            if start_index + length > self.max_length:
                raise ValueError(
                    f"PositionEmbedding {self.name!r} has max_length={self.max_length}, got "
                    f"{length} steps starting at position {start_index}"
                )

    def call(self, inputs, start_index=0, mask=None, inputs_mask=None):
        mask = inputs_mask if mask is None else mask
        length = ops.shape(inputs)[1]
        self._check_length(length, start_index)
        embeddings = ops.cast(self.embeddings, self.compute_dtype)
        if mask is None:
            # [time, features], broadcast over the batch.
            positioned = ops.slice(
                embeddings, [ops.cast(start_index, "int32"), 0], [length, embeddings.shape[-1]]
            )
        else:
            # [batch, time, features]
            positioned = ops.take(embeddings, valid_step_positions(mask, start_index), axis=0)
        return ops.add(inputs, positioned)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
