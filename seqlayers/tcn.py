"""A temporal convolutional network: stacks of dilated residual blocks (Bai et al., 2018)."""

import keras
from keras import ops

from seqlayers._argument_checks import check_positive_int
from seqlayers.tcn_block import TCNBlock, TCNLayerBase, receptive_field, zero_masked_steps


def last_valid_step(sequences, mask=None):
    """The output at the last unmasked step of each sequence; zeros where none is valid.

    Args:
        sequences: ``[batch, time, channels]``.
        mask: optional boolean ``[batch, time]``; without it, the last step.

    Returns:
        ``[batch, channels]``.

    Example:

    >>> sequences = ops.reshape(ops.arange(6, dtype="float32"), (2, 3, 1))
    >>> mask = ops.convert_to_tensor([[True, True, False], [False, False, False]])
    >>> print(ops.convert_to_numpy(last_valid_step(sequences, mask)))
    [[1.]
     [0.]]
    """
    if mask is None:
        return sequences[:, -1]
    positions = ops.arange(ops.shape(sequences)[1], dtype="int32")
    # [batch]: index of the last True step, -1 for a fully masked sequence.
    last_index = ops.max(ops.where(mask, positions[None, :], -1), axis=1)
    gathered = ops.take_along_axis(sequences, ops.maximum(last_index, 0)[:, None, None], axis=1)[
        :, 0
    ]
    return ops.where((last_index >= 0)[:, None], gathered, ops.zeros_like(gathered))


@keras.saving.register_keras_serializable(package="seqlayers")
class TCN(TCNLayerBase):
    """Temporal convolutional network: residual blocks with exponentially growing dilation.

    ``stacks`` repetitions of one ``TCNBlock`` per entry of ``dilations`` (Bai, Kolter & Koltun,
    "An Empirical Evaluation of Generic Convolutional and Recurrent Networks for Sequence
    Modeling", 2018, https://arxiv.org/abs/1803.01271). Each block holds two dilated
    convolutions, so one output step sees

        R = 1 + 2 (kernel_size - 1) * stacks * sum(dilations)

    input steps (attribute ``receptive_field``): with ``padding="causal"`` exactly the steps
    ``t - R + 1 ... t``, with ``padding="same"`` a window of ``R`` steps centred on ``t``.
    Sequences of any length work, including ones shorter than ``R``.

    With ``use_skip_connections=True`` the output is the sum of every block's output
    (WaveNet-style skip connections, van den Oord et al. 2016) instead of the last block's.

    Masking: masked steps are zeroed before every convolution, so a padded batch gives the same
    valid outputs as each sequence alone, for pre- and post-padding and both paddings. With
    ``return_sequences=True`` masked output steps are zero and the mask is returned; with
    ``return_sequences=False`` the output is that of the last *unmasked* step of each sequence
    (the last step without a mask) and no mask is returned.

    Args:
        filters: int, or a list with one int per block (``stacks * len(dilations)`` blocks).
        kernel_size: int, default 3.
        dilations: dilation of each block in a stack, default ``(1, 2, 4, 8)``.
        stacks: int, default 1. How many times the dilations repeat.
        dropout: float in [0, 1), default 0. Spatial dropout inside each block.
        normalization: ``"weight"``, ``"layer"``, ``"batch"`` or ``None`` (default).
        padding: ``"causal"`` (default) or ``"same"``.
        return_sequences: bool, default True. Every step, or only the last valid one.
        use_skip_connections: bool, default False. Sum the outputs of all blocks.
        activation: default ``"relu"``.
        kernel_initializer: initializer of the convolution kernels, default ``"he_normal"``.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``[batch, time, channels]``.
        mask: optional boolean tensor ``[batch, time]``, e.g. from
            ``Embedding(mask_zero=True)``.
        training: whether dropout and batch normalization run in training mode.

    Returns:
        ``[batch, time, last_filters]`` with ``return_sequences=True``, else
        ``[batch, last_filters]``.

    Example:

    >>> tcn = TCN(filters=64, kernel_size=3, dilations=(1, 2, 4, 8, 16, 32))
    >>> tcn.receptive_field
    253
    >>> print(tcn(keras.ops.zeros((4, 512, 8))).shape)
    (4, 512, 64)
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        dilations=(1, 2, 4, 8),
        stacks=1,
        dropout=0.0,
        normalization=None,
        padding="causal",
        return_sequences=True,
        use_skip_connections=False,
        activation="relu",
        kernel_initializer="he_normal",
        **kwargs,
    ):
        super().__init__(
            kernel_size, dropout, normalization, padding, activation, kernel_initializer, **kwargs
        )
        check_positive_int("stacks", stacks)
        dilations = [dilations] if isinstance(dilations, int) else list(dilations)
        if not dilations:
            raise ValueError("dilations must name at least one dilation, got an empty list")
        for dilation in dilations:
            check_positive_int("each dilation", dilation)
        block_count = stacks * len(dilations)
        if isinstance(filters, (list, tuple)):
            filters = list(filters)
            if len(filters) != block_count:
                raise ValueError(
                    f"filters must have one entry per block ({stacks} stacks x {len(dilations)} "
                    f"dilations = {block_count}), got {len(filters)}: {filters!r}"
                )
            for block_filters in filters:
                check_positive_int("each entry of filters", block_filters)
            if use_skip_connections and len(set(filters)) > 1:
                raise ValueError(
                    "use_skip_connections sums the outputs of all blocks, so every block needs "
                    f"the same number of filters, got {filters!r}"
                )
        else:
            check_positive_int("filters", filters)
        self.filters = filters
        self.dilations = dilations
        self.stacks = stacks
        self.return_sequences = return_sequences
        self.use_skip_connections = use_skip_connections

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.kernel_size, self.dilations, self.stacks)

    @property
    def block_filters(self) -> list[int]:
        block_count = self.stacks * len(self.dilations)
        return self.filters if isinstance(self.filters, list) else [self.filters] * block_count

    def build(self, input_shape):
        self.blocks = []
        shape = tuple(input_shape)
        block_dilations = self.dilations * self.stacks
        for index, (filters, dilation) in enumerate(
            zip(self.block_filters, block_dilations, strict=True)
        ):
            block = TCNBlock(
                filters=filters,
                kernel_size=self.kernel_size,
                dilation_rate=dilation,
                dropout=self.dropout,
                normalization=self.normalization,
                padding=self.padding,
                activation=self.activation,
                kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                name=f"block_{index}_dilation_{dilation}",
                dtype=self.dtype_policy,
            )
            block.build(shape)
            shape = block.compute_output_shape(shape)
            self.blocks.append(block)
        self.built = True

    def call(self, inputs, mask=None, training=None):
        hidden = inputs
        skip_sum = None
        for block in self.blocks:
            hidden = block(hidden, mask=mask, training=training)
            if self.use_skip_connections:
                skip_sum = hidden if skip_sum is None else skip_sum + hidden
        outputs = skip_sum if self.use_skip_connections else hidden
        if self.return_sequences:
            return zero_masked_steps(outputs, mask)
        return last_valid_step(outputs, mask)

    def compute_output_shape(self, input_shape):
        last_filters = self.block_filters[-1]
        if self.return_sequences:
            return (*input_shape[:-1], last_filters)
        return (input_shape[0], last_filters)

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "dilations": self.dilations,
            "stacks": self.stacks,
            "return_sequences": self.return_sequences,
            "use_skip_connections": self.use_skip_connections,
        }
