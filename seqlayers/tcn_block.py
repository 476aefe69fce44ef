"""The residual block of a temporal convolutional network (Bai, Kolter & Koltun, 2018)."""

import keras
from keras import ops

from seqlayers._argument_checks import check_dropout_rate, check_one_of, check_positive_int
from seqlayers.weight_normalization import WeightNormalization

NORMALIZATIONS = ("weight", "layer", "batch", None)
PADDINGS = ("causal", "same")


def receptive_field(kernel_size: int, dilations, stacks: int = 1) -> int:
    """Steps of input that one output step of a TCN sees: 1 + 2 (k - 1) * stacks * sum(d).

    Each residual block holds two convolutions of kernel size ``k`` and dilation ``d``; each
    widens the view by ``(k - 1) * d`` steps.

    Args:
        kernel_size: convolution kernel size ``k``.
        dilations: the dilation of each block in one stack (an int for a single block).
        stacks: how many times the dilations repeat.

    Example:

    >>> receptive_field(kernel_size=3, dilations=(1, 2, 4, 8))
    61
    """
    if isinstance(dilations, int):
        dilations = (dilations,)
    check_positive_int("kernel_size", kernel_size)
    check_positive_int("stacks", stacks)
    for dilation in dilations:
        check_positive_int("dilation", dilation)
    return 1 + 2 * (kernel_size - 1) * stacks * sum(dilations)


def zero_masked_steps(sequences, mask):
    """Sets the steps where ``mask`` is False to zero; [batch, time, channels]."""
    if mask is None:
        return sequences
    return sequences * ops.expand_dims(ops.cast(mask, sequences.dtype), -1)


class TCNLayerBase(keras.layers.Layer):
    """What ``TCN`` and ``TCNBlock`` share: the convolutions' arguments, their checks, config.

    The arguments are documented on the subclasses, which take them in their own order.
    """

    def __init__(
        self, kernel_size, dropout, normalization, padding, activation, kernel_initializer, **kwargs
    ):
        check_positive_int("kernel_size", kernel_size)
        check_dropout_rate("dropout", dropout)
        check_one_of("normalization", normalization, NORMALIZATIONS)
        check_one_of("padding", padding, PADDINGS)
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.normalization = normalization
        self.padding = padding
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "dropout": self.dropout,
            "normalization": self.normalization,
            "padding": self.padding,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package="seqlayers")
class TCNBlock(TCNLayerBase):
    """Residual block of two dilated convolutions (Bai et al. 2018, Fig. 1b).

        x ─┬─ Conv1D(d) ─ norm ─ act ─ dropout ─ Conv1D(d) ─ norm ─ act ─ dropout ─(+)─ act ─ y
           │                                                                        │
           └─ identity, or a 1x1 Conv1D when the channel counts differ ─────────────┘

    ``y = activation(residual(x) + F(x))``. With ``padding="causal"`` the output at step ``t``
    depends on inputs ``t - R + 1 ... t`` only, where the receptive field is
    ``R = 1 + 2 (kernel_size - 1) dilation_rate`` (attribute ``receptive_field``). With
    ``padding="same"`` it spans ``R`` steps centred on ``t``.

    Reference: Bai, Kolter & Koltun, "An Empirical Evaluation of Generic Convolutional and
    Recurrent Networks for Sequence Modeling", 2018, https://arxiv.org/abs/1803.01271.

    Masking: masked steps are set to zero before every convolution (and in the output), so the
    valid steps of a padded batch equal those of each sequence run alone, for pre- and
    post-padding, as if the sequence were surrounded by the convolution's own zero padding.
    Batch normalization computes its statistics over valid steps only. The mask is returned
    unchanged.

    Args:
        filters: int, output channels of both convolutions.
        kernel_size: int, convolution kernel size.
        dilation_rate: int, dilation of both convolutions.
        dropout: float in [0, 1), default 0. Spatial dropout (whole channels) after each
            activation inside the block.
        normalization: ``"weight"`` (weight normalization of the convolutions, as in the
            paper), ``"layer"``, ``"batch"`` or ``None`` (default).
        padding: ``"causal"`` (default) or ``"same"``.
        activation: activation after each convolution and after the residual sum, default
            ``"relu"``.
        kernel_initializer: initializer of the convolution kernels, default ``"he_normal"``.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``[batch, time, channels]``.
        mask: optional boolean tensor ``[batch, time]``.
        training: whether dropout and batch normalization run in training mode.

    Returns:
        ``[batch, time, filters]``.

    Example:

    >>> block = TCNBlock(filters=32, kernel_size=3, dilation_rate=4)
    >>> block.receptive_field
    17
    >>> print(block(keras.ops.zeros((2, 50, 8))).shape)
    (2, 50, 32)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        dilation_rate,
        dropout=0.0,
        normalization=None,
        padding="causal",
        activation="relu",
        kernel_initializer="he_normal",
        **kwargs,
    ):
        check_positive_int("filters", filters)
        check_positive_int("dilation_rate", dilation_rate)
        super().__init__(
            kernel_size, dropout, normalization, padding, activation, kernel_initializer, **kwargs
        )
        self.filters = filters
        self.dilation_rate = dilation_rate

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.kernel_size, self.dilation_rate)

    def _fresh_kernel_initializer(self):
        # One instance per convolution: a shared instance would hand out one set of draws.
        return keras.initializers.get(keras.initializers.serialize(self.kernel_initializer))

    def _dilated_convolution(self, name):
        convolution = keras.layers.Conv1D(
            self.filters,
            self.kernel_size,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            kernel_initializer=self._fresh_kernel_initializer(),
            name=name,
            dtype=self.dtype_policy,
        )
        if self.normalization == "weight":
            return WeightNormalization(
                convolution, name=f"{name}_weight_norm", dtype=self.dtype_policy
            )
        return convolution

    def _normalization_layer(self, name):
        if self.normalization == "layer":
            return keras.layers.LayerNormalization(name=name, dtype=self.dtype_policy)
        if self.normalization == "batch":
            return keras.layers.BatchNormalization(name=name, dtype=self.dtype_policy)
        return None

    def build(self, input_shape):
        input_channels = input_shape[-1]
        if input_channels is None:
            raise ValueError(f"TCNBlock needs a known channel count, got input shape {input_shape}")
        hidden_shape = (*input_shape[:-1], self.filters)
        self.convolutions = [self._dilated_convolution(f"conv_{i}") for i in (1, 2)]
        self.normalizations = [self._normalization_layer(f"norm_{i}") for i in (1, 2)]
        self.dropouts = [
            keras.layers.SpatialDropout1D(
                self.dropout, name=f"dropout_{i}", dtype=self.dtype_policy
            )
            for i in (1, 2)
        ]
        self.convolutions[0].build(input_shape)
        self.convolutions[1].build(hidden_shape)
        for normalization in self.normalizations:
            if normalization is not None:
                normalization.build(hidden_shape)
        if input_channels != self.filters:
            self.residual_projection = keras.layers.Conv1D(
                self.filters,
                1,
                kernel_initializer=self._fresh_kernel_initializer(),
                name="residual_projection",
                dtype=self.dtype_policy,
            )
            self.residual_projection.build(input_shape)
        else:
            self.residual_projection = None
        self.built = True

    def call(self, inputs, mask=None, training=None):
        hidden = inputs
        for convolution, normalization, dropout in zip(
            self.convolutions, self.normalizations, self.dropouts, strict=True
        ):
            hidden = convolution(zero_masked_steps(hidden, mask))
            if isinstance(normalization, keras.layers.BatchNormalization):
                hidden = normalization(hidden, training=training, mask=mask)
            elif normalization is not None:
                hidden = normalization(hidden)
            hidden = dropout(self.activation(hidden), training=training)
        residual = inputs
        if self.residual_projection is not None:
            residual = self.residual_projection(zero_masked_steps(inputs, mask))
        return zero_masked_steps(self.activation(residual + hidden), mask)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "dilation_rate": self.dilation_rate,
        }
