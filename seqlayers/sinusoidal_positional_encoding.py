"""Fixed sinusoidal positional encoding (Vaswani et al. 2017), for any length, mask-aware."""

import keras
import numpy as np
from keras import ops

from seqlayers._argument_checks import check_positive_number


def sinusoidal_encoding(length, depth, max_wavelength=10000, start_index=0, dtype="float32"):
    """The sinusoidal position table of Vaswani et al. (2017), interleaved.

    ``table[p, 2i] = sin(pos / max_wavelength ** (2i / depth))`` and
    ``table[p, 2i + 1] = cos(pos / max_wavelength ** (2i / depth))`` with
    ``pos = start_index + p``. For an odd ``depth`` the last column is a sine.

    Angles are computed in float32 whatever ``dtype`` is (float16 cannot even count past 2048),
    with frequencies rounded once from float64, so the absolute error is about
    ``1.2e-7 * pos``: below 1e-3 for positions under 8192, as for any float32 implementation.

    Args:
        length: number of positions (int or scalar tensor).
        depth: number of features (int).
        max_wavelength: the longest wavelength, ``2 * pi * max_wavelength``. Defaults to 10000.
        start_index: the position of the first row (int or scalar tensor). Defaults to 0.
        dtype: dtype of the returned table. Defaults to ``"float32"``.

    Returns:
        A tensor of shape ``(length, depth)``.

    Example:

    >>> table = sinusoidal_encoding(4, 6)
    >>> print(table.shape)
    (4, 6)
    >>> print(ops.convert_to_numpy(table[0]))  # position 0: sin 0 = 0, cos 0 = 1
    [0. 1. 0. 1. 0. 1.]
    """
    positions = ops.arange(length, dtype="float32") + ops.cast(start_index, "float32")
    return encode_positions(positions, depth, max_wavelength, dtype)


def encode_positions(positions, depth, max_wavelength=10000, dtype="float32"):
    """Sinusoidal encodings of arbitrary (float32) positions: ``[...]`` -> ``[..., depth]``."""
    # Frequencies from float64, rounded once: ops.power in float32 would add an error
    # proportional to the position (1e-3 rad at position 8192).
    feature_index = np.arange(depth)
    inverse_frequencies = np.power(float(max_wavelength), -2.0 * (feature_index // 2) / depth)
    angles = ops.expand_dims(ops.cast(positions, "float32"), -1) * ops.convert_to_tensor(
        inverse_frequencies.astype("float32")
    )
    even_feature = ops.convert_to_tensor(feature_index % 2 == 0)
    return ops.cast(ops.where(even_feature, ops.sin(angles), ops.cos(angles)), dtype)


def valid_step_positions(mask, start_index=0):
    """Position of each step counting only the valid steps before it: ``[batch, time]`` int32.

    With a post-padding mask this is ``start_index + arange(time)`` on the valid steps; with
    pre-padding the first valid step gets ``start_index``, as if the padding were not there.
    Padded steps get the position of the nearest valid step before them (or ``start_index``).
    """
    valid_before_and_here = ops.cumsum(ops.cast(mask, "int32"), axis=1)
    return ops.maximum(valid_before_and_here - 1, 0) + ops.cast(start_index, "int32")


@keras.saving.register_keras_serializable(package="seqlayers")
class SinusoidalPositionalEncoding(keras.layers.Layer):
    """Adds the fixed sinusoidal position encoding of Vaswani et al. (2017) to its inputs.

    ``outputs[b, p] = inputs[b, p] + PE(pos)`` with, for feature pairs ``(2i, 2i + 1)``,
    ``PE(pos, 2i) = sin(pos / max_wavelength ** (2i / d))`` and
    ``PE(pos, 2i + 1) = cos(pos / max_wavelength ** (2i / d))`` (interleaved), ``d`` the
    feature size. Paper: "Attention Is All You Need", https://arxiv.org/abs/1706.03762.

    There is no maximum length. The table is computed on the fly in float32 and added in the
    compute dtype (see ``sinusoidal_encoding`` for its accuracy).

    Masking: with a mask, a step's position counts only the valid steps before it
    (``pos = start_index + number of valid earlier steps``), so a pre-padded sequence gets the
    same encodings as the sequence alone; with post-padding this is the plain step index.
    Padded steps are encoded too (their values are never read by mask-aware layers). The input
    mask is returned unchanged.

    Args:
        max_wavelength: the longest wavelength is ``2 * pi * max_wavelength``. Defaults to 10000.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, time, features)``.
        start_index: position of the first step, an int or a scalar int tensor; for incremental
            decoding, the number of steps already generated. Defaults to 0.
        mask: optional boolean ``(batch, time)``; Keras passes the inputs' mask here.
        inputs_mask: the same mask under the name Keras uses when ``start_index`` is a tensor
            (Keras then fills ``<argument>_mask``); not meant to be passed by hand.

    Returns:
        ``inputs + PE``, same shape and mask as ``inputs``.

    Example:

    >>> tokens = keras.Input((None,), dtype="int32")
    >>> embedded = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    >>> encoded = SinusoidalPositionalEncoding()(embedded)
    >>> print(encoded.shape)  # (batch, time, features), the mask kept
    (None, None, 64)
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        check_positive_number("max_wavelength", max_wavelength)
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.supports_masking = True

    def call(self, inputs, start_index=0, mask=None, inputs_mask=None):
        mask = inputs_mask if mask is None else mask
        depth = inputs.shape[-1]
        if mask is None:
            length = ops.shape(inputs)[1]
            positions = ops.arange(length, dtype="float32") + ops.cast(start_index, "float32")
            # [time, depth], broadcast over the batch.
            table = encode_positions(positions, depth, self.max_wavelength, self.compute_dtype)
        else:
            positions = valid_step_positions(mask, start_index)
            # [batch, time, depth]
            table = encode_positions(positions, depth, self.max_wavelength, self.compute_dtype)
        return ops.add(inputs, table)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}
