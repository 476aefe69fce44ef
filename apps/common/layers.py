"""Small layers the apps share (registered, so saved apps load without custom_objects)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqapps")
class MaskedGlobalMaxPooling1D(keras.layers.Layer):
    """Max over the valid (unmasked) steps of each sequence: ``[batch, time, ch] -> [batch, ch]``.

    ``keras.layers.GlobalMaxPooling1D`` ignores masks, so padding could win the max; here masked
    steps never count, and a fully masked sequence gives zeros. Returns no mask.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.max(inputs, axis=1)
        valid = ops.expand_dims(ops.cast(mask, "bool"), -1)
        lowest = ops.cast(keras.config.epsilon() - 65504.0, inputs.dtype)  # fits float16 too
        maximum = ops.max(ops.where(valid, inputs, lowest), axis=1)
        return ops.where(ops.any(valid, axis=1), maximum, ops.zeros_like(maximum))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def compute_mask(self, inputs, mask=None):
        return None


@keras.saving.register_keras_serializable(package="seqapps")
class WithPaddingMask(keras.layers.Layer):
    """``[values, ids] -> values`` carrying the Keras mask ``ids != 0`` (0 is padding).

    Sets the mask explicitly where Keras would derive a wrong one: ``Concatenate`` of a masked
    and an unmasked tensor (character features, say) marks a step valid when *any* input is,
    so the padding mask of the word ids would be lost.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        values, _ = inputs
        return values

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs[1], 0)
