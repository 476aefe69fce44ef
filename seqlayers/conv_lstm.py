"""Convolutional LSTM (Shi et al., 2015) in 1, 2 and 3 dimensions, with the paper's peepholes."""

import math

import keras
from keras import ops

from seqlayers._argument_checks import as_int_tuple, check_one_of, check_positive_int
from seqlayers._lstm_base import LSTMCellBase, LSTMLayerBase
from seqlayers._signatures import constructor_config, takes_parameters_of

PADDINGS = ("valid", "same")
DATA_FORMATS = ("channels_last", "channels_first")


def conv_output_length(length, kernel_size, stride, dilation_rate, padding):
    """Length of a convolution's output along one spatial axis."""
    if padding == "same":
        return math.ceil(length / stride)
    return (length - dilation_rate * (kernel_size - 1) - 1) // stride + 1


def time_step_mask(mask):
    """A ``[batch, time]`` mask from one that may carry spatial axes too.

    ``keras.layers.Masking`` on ``[batch, time, *spatial, channels]`` flags each pixel; a step
    is valid if any of its pixels is.
    """
    if mask is None or len(mask.shape) == 2:
        return mask
    return ops.any(ops.cast(mask, "bool"), axis=tuple(range(2, len(mask.shape))))


@keras.saving.register_keras_serializable(package="seqlayers")
class ConvLSTMCell(LSTMCellBase):
    """One step of a convolutional LSTM of any rank 1-3, optionally with peepholes.

    With ``*`` a convolution, ``⊙`` the elementwise product, ``σ`` the recurrent activation and
    ``tanh`` the activation (Shi et al. 2015, eq. 3)::

        i   = σ(W_i * x + U_i * h_{t-1} + b_i + p_i ⊙ c_{t-1})
        f   = σ(W_f * x + U_f * h_{t-1} + b_f + p_f ⊙ c_{t-1})
        c_t = f ⊙ c_{t-1} + i ⊙ tanh(W_c * x + U_c * h_{t-1} + b_c)
        o   = σ(W_o * x + U_o * h_{t-1} + b_o + p_o ⊙ c_t)
        h_t = o ⊙ tanh(c_t)

    The input convolution uses ``strides``, ``padding`` and ``dilation_rate``; the recurrent
    one has stride 1 and ``"same"`` padding, so ``h`` and ``c`` keep the spatial shape of the
    input convolution's output. ``kernel`` ``[*kernel_size, input_channels, 4 filters]``,
    ``recurrent_kernel`` ``[*kernel_size, filters, 4 filters]`` and ``bias`` ``[4 filters]``
    hold the gates in the order i, f, c, o, exactly as ``keras.layers.ConvLSTM2D``. With
    ``use_peepholes=True`` the peepholes ``input_gate_peephole_weights``,
    ``forget_gate_peephole_weights`` and ``output_gate_peephole_weights`` are ``[filters]``
    each: one weight per channel, shared over space. Without them the cell computes what
    ``keras.layers.ConvLSTM2D``'s cell computes. The four gates come from one convolution per
    input per step (``x`` with ``kernel``, ``h_{t-1}`` with ``recurrent_kernel``), not four;
    from the zero state (``states=None``) only the first: ``U * 0 = 0`` exactly.

    Reference: Shi et al., "Convolutional LSTM Network: A Machine Learning Approach for
    Precipitation Nowcasting", NeurIPS 2015, https://arxiv.org/abs/1506.04214.

    Use it through ``ConvLSTM1D``, ``ConvLSTM2D`` or ``ConvLSTM3D``: they draw the dropout
    masks once per sequence and know the cell's output shape (a plain ``keras.layers.RNN``
    assumes ``[batch, filters]``, and the cell would draw fresh dropout masks at every step).

    Args:
        rank: 1, 2 or 3, the number of spatial axes.
        filters: int, channels of ``h`` and ``c``.
        kernel_size: int or tuple of ``rank`` ints, for both convolutions.
        strides: int or tuple, default 1, of the input convolution. Strides above 1 exclude
            dilation rates above 1.
        padding: ``"valid"`` (default) or ``"same"``, of the input convolution.
        data_format: ``"channels_last"``, ``"channels_first"`` or None (default: Keras'
            ``image_data_format``).
        dilation_rate: int or tuple, default 1, of the input convolution.
        activation: default ``"tanh"``, for the candidate cell state and the output.
        recurrent_activation: default ``"sigmoid"``, for the gates.
        use_bias: default True.
        use_peepholes: default False: add Shi et al.'s peephole terms ``p ⊙ c``.
        kernel_initializer: default ``"glorot_uniform"``.
        recurrent_initializer: default ``"orthogonal"``.
        bias_initializer: default ``"zeros"``.
        peephole_initializer: default ``"glorot_uniform"``; ``"zeros"`` starts without them.
        unit_forget_bias: default True: the forget gate's bias starts at 1.
        kernel_regularizer, recurrent_regularizer, bias_regularizer, peephole_regularizer:
            default None.
        kernel_constraint, recurrent_constraint, bias_constraint, peephole_constraint:
            default None.
        dropout: float in [0, 1), default 0: dropout on the inputs.
        recurrent_dropout: float in [0, 1), default 0: dropout on ``h_{t-1}``.
        seed: int or None, seed of the dropout masks.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``[batch, *spatial, channels]`` (channels_last) or
            ``[batch, channels, *spatial]``, one step.
        states: ``[h, c]``, optionally followed by a recurrent dropout mask shaped like ``h``
            (the ConvLSTM layers pass their per-sequence mask this way), returned unchanged;
            or None for the zero state, which skips the recurrent convolution (of zeros).
        training: whether the cell draws its own dropout masks.

    Returns:
        ``(h, [h, c])`` (``[h, c, mask]`` when a mask came in).

    Example:

    >>> cell = ConvLSTMCell(2, filters=8, kernel_size=3, padding="same")
    >>> step = keras.ops.zeros((2, 16, 16, 3))
    >>> cell.build(step.shape)
    >>> output, (h, c) = cell(step, cell.get_initial_state(batch_size=2))
    >>> print(output.shape, h.shape, c.shape)
    (2, 16, 16, 8) (2, 16, 16, 8) (2, 16, 16, 8)
    """

    @takes_parameters_of(LSTMCellBase.__init__)
    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        use_peepholes=False,
        **kwargs,
    ):
        check_one_of("rank", rank, (1, 2, 3))
        check_positive_int("filters", filters)
        kernel_size_tuple = as_int_tuple("kernel_size", kernel_size, rank)
        strides_tuple = as_int_tuple("strides", strides, rank)
        dilation_rate_tuple = as_int_tuple("dilation_rate", dilation_rate, rank)
        if max(strides_tuple) > 1 and max(dilation_rate_tuple) > 1:
            # Keras' own wording, so that code matching its message works with these layers too.
            raise ValueError(
                "Specifying `strides > 1` is not compatible with `dilation_rate > 1`, got "
                f"strides={strides!r} and dilation_rate={dilation_rate!r}"
            )
        check_one_of("padding", padding, PADDINGS)
        data_format = data_format or keras.config.image_data_format()
        check_one_of("data_format", data_format, DATA_FORMATS)
        super().__init__(**kwargs)
        self.rank = rank
        self.filters = filters
        self.kernel_size = kernel_size_tuple
        self.strides = strides_tuple
        self.padding = padding
        self.data_format = data_format
        self.dilation_rate = dilation_rate_tuple
        self.use_peepholes = use_peepholes
        # The channel counts of h and c; their spatial shape follows from the input.
        self.state_size = [filters, filters]
        self.output_size = filters
        self.channel_axis = -1 if data_format == "channels_last" else 1

    def output_shape_for(self, step_shape):
        """The shape of ``h`` (and ``c``) for one step's input shape (batch axis included)."""
        if self.data_format == "channels_last":
            spatial = step_shape[1:-1]
        else:
            spatial = step_shape[2:]
        output_spatial = tuple(
            None
            if length is None
            else conv_output_length(length, kernel, stride, dilation, self.padding)
            for length, kernel, stride, dilation in zip(
                spatial, self.kernel_size, self.strides, self.dilation_rate, strict=True
            )
        )
        if self.data_format == "channels_last":
            return (step_shape[0], *output_spatial, self.filters)
        return (step_shape[0], self.filters, *output_spatial)

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"a rank-{self.rank} ConvLSTM cell takes [batch, *spatial, channels] inputs "
                f"with {self.rank} spatial axes, got input shape {input_shape}"
            )
        input_channels = input_shape[self.channel_axis]
        if input_channels is None:
            raise ValueError(f"the channel count must be known, got input shape {input_shape}")
        self.state_shape = self.output_shape_for(input_shape)[1:]
        if any(length is None for length in self.state_shape):
            raise ValueError(f"the spatial shape must be known, got input shape {input_shape}")
        if min(self.state_shape) < 1:
            raise ValueError(
                f"input shape {input_shape} is too small for kernel_size={self.kernel_size}, "
                f"strides={self.strides}, dilation_rate={self.dilation_rate} and "
                f"padding={self.padding!r}"
            )
        self.add_gate_weights(
            kernel_shape=(*self.kernel_size, input_channels, 4 * self.filters),
            recurrent_kernel_shape=(*self.kernel_size, self.filters, 4 * self.filters),
            peepholes=self.use_peepholes,
        )
        self.built = True

    def _per_channel(self, vector):
        """``[channels]`` shaped to broadcast over ``[batch, channels, *spatial]`` if needed."""
        if self.data_format == "channels_last":
            return vector
        return ops.reshape(vector, (-1,) + (1,) * self.rank)

    def call(self, inputs, states, training=False):
        if states is None:
            h_previous = c_previous = recurrent_mask = None
        else:
            h_previous, c_previous = states[:2]
            # The ConvLSTM layers draw the masks once per sequence: they drop out the inputs
            # themselves and hand the recurrent mask over as a third, constant state.
            recurrent_mask = states[2] if len(states) > 2 else None
        input_mask, own_recurrent_mask = self.dropout_masks(inputs, h_previous, training)
        if recurrent_mask is None:
            recurrent_mask = own_recurrent_mask
        if input_mask is not None:
            inputs = inputs * input_mask
        # [batch, *spatial, 4 filters] (channels_last): all four gates from one convolution
        # per input. The bias joins the input convolution first: neither depends on h, so
        # they can run while the previous step is still being computed.
        gates = ops.conv(
            inputs,
            self.kernel,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        if self.use_bias:
            gates = gates + self._per_channel(self.bias)
        if h_previous is not None:
            if recurrent_mask is not None:
                h_previous = h_previous * recurrent_mask
            gates = gates + ops.conv(
                h_previous, self.recurrent_kernel, padding="same", data_format=self.data_format
            )
        input_gate, forget_gate, candidate, output_gate = ops.split(
            gates, 4, axis=self.channel_axis
        )
        if c_previous is None:
            # From the zero state: f ⊙ c_{t-1} and the peephole terms p ⊙ c_{t-1} are zero.
            c = self.recurrent_activation(input_gate) * self.activation(candidate)
        else:
            if self.use_peepholes:
                input_peephole = self._per_channel(self.input_gate_peephole_weights)
                forget_peephole = self._per_channel(self.forget_gate_peephole_weights)
                input_gate = input_gate + input_peephole * c_previous
                forget_gate = forget_gate + forget_peephole * c_previous
            input_gate = self.recurrent_activation(input_gate)
            forget_gate = self.recurrent_activation(forget_gate)
            c = forget_gate * c_previous + input_gate * self.activation(candidate)
        if self.use_peepholes:
            output_gate = output_gate + self._per_channel(self.output_gate_peephole_weights) * c
        h = self.recurrent_activation(output_gate) * self.activation(c)
        return h, [h, c, *(states[2:] if states is not None else ())]

    def compute_output_shape(self, inputs_shape, states_shape=None):
        shape = self.output_shape_for(inputs_shape)
        return shape, [shape, shape]

    def get_initial_state(self, batch_size=None):
        shape = (batch_size, *self.state_shape)
        return [ops.zeros(shape, dtype=self.compute_dtype) for _ in range(2)]

    def get_config(self):
        arguments = {
            "rank": self.rank,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "use_peepholes": self.use_peepholes,
        }
        # The rank subclasses fix rank: their constructors, so their configs, leave it out.
        return constructor_config(self, super().get_config(), arguments)


@keras.saving.register_keras_serializable(package="seqlayers")
class ConvLSTM1DCell(ConvLSTMCell):
    """One step of ``ConvLSTM1D``: ``ConvLSTMCell`` with ``rank=1`` (see it for the arguments)."""

    @takes_parameters_of(ConvLSTMCell.__init__)
    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(1, filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="seqlayers")
class ConvLSTM2DCell(ConvLSTMCell):
    """One step of ``ConvLSTM2D``: ``ConvLSTMCell`` with ``rank=2`` (see it for the arguments)."""

    @takes_parameters_of(ConvLSTMCell.__init__)
    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(2, filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="seqlayers")
class ConvLSTM3DCell(ConvLSTMCell):
    """One step of ``ConvLSTM3D``: ``ConvLSTMCell`` with ``rank=3`` (see it for the arguments)."""

    @takes_parameters_of(ConvLSTMCell.__init__)
    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(3, filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="seqlayers")
class ConvLSTM(LSTMLayerBase):
    """Convolutional LSTM layer of any rank 1-3 (Shi et al., 2015), optionally with peepholes.

    Runs ``ConvLSTMCell`` (see it for the equations and the weight layout) over axis 1 of
    ``[batch, time, *spatial, channels]`` inputs. It is a ``keras.layers.RNN``, so
    ``return_sequences``, ``return_state``, ``go_backwards``, ``stateful``, ``initial_state`` and
    ``keras.layers.Bidirectional`` behave as for ``keras.layers.ConvLSTM2D``, whose weights it
    shares in layout: with ``use_peepholes=False`` it computes the same function. Use the fixed
    rank subclasses ``ConvLSTM1D``, ``ConvLSTM2D`` and ``ConvLSTM3D``.

    Each step makes one convolution of the inputs and one of ``h`` for all four gates (Keras'
    ConvLSTM makes four of each). A sequence that starts from the zero state (no
    ``initial_state``, not ``stateful``) makes no recurrent convolution at its first step,
    where it would convolve zeros: the result is the same, and ``T >= 2`` steps make ``T - 1``
    recurrent convolutions instead of ``T``. Dropout masks are drawn once per sequence and
    reused at every step; one input mask serves all four gates.

    Masking: a ``[batch, time]`` mask, or one with spatial axes too (``keras.layers.Masking``
    flags every pixel of ``[batch, time, *spatial, channels]`` inputs), which is reduced to
    ``[batch, time]``: a step is valid if any of its pixels is. At a masked step ``h`` and
    ``c`` keep their values and the output repeats the previous step's output (zeros before
    the first valid step, and always zeros with ``zero_output_for_mask``), so padding never
    changes the valid steps. The ``[batch, time]`` mask is returned with the sequence output
    (``return_sequences=True``); the last output and the states carry none. Keras weights a
    loss by an output mask only if the per-element loss has the mask's rank, so to train masked
    sequence outputs directly, use a loss that reduces the pixel axes to ``[batch, time]``.

    Reference: Shi et al., "Convolutional LSTM Network: A Machine Learning Approach for
    Precipitation Nowcasting", NeurIPS 2015, https://arxiv.org/abs/1506.04214.

    Args:
        rank, filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
        recurrent_activation, use_bias, use_peepholes, kernel_initializer,
        recurrent_initializer, bias_initializer, peephole_initializer, unit_forget_bias,
        kernel_regularizer, recurrent_regularizer, bias_regularizer, peephole_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint, peephole_constraint,
        dropout, recurrent_dropout, seed: as for ``ConvLSTMCell`` (same defaults).
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask,
        activity_regularizer: as for ``PeepholeLSTM`` (``keras.layers.RNN``'s arguments, same
            defaults; ``unroll`` needs a fixed sequence length).
        **kwargs: base layer arguments (``name``, ``dtype``, ``trainable``).

    Call arguments:
        sequences: ``[batch, time, *spatial, channels]`` (channels_last) or
            ``[batch, time, channels, *spatial]`` (channels_first); the spatial shape must be
            known when the layer is built.
        initial_state: optional ``[h, c]``, each shaped like the output of one step.
        mask: optional booleans, ``[batch, time]`` or ``[batch, time, *spatial]``.
        training: whether dropout is applied.

    Returns:
        ``[batch, time, *output_spatial, filters]`` (channels_last) with ``return_sequences``,
        else ``[batch, *output_spatial, filters]``; with ``return_state`` followed by the final
        ``h`` and ``c``, shaped like the last output. ``output_spatial`` is the spatial shape
        after the input convolution (unchanged with ``padding="same"`` and stride 1).

    Example:

    >>> layer = ConvLSTM(2, filters=16, kernel_size=3, padding="same", use_peepholes=True)
    >>> print(layer(keras.ops.zeros((2, 5, 32, 32, 3))).shape)
    (2, 32, 32, 16)
    """

    @takes_parameters_of(ConvLSTMCell.__init__, keras.layers.RNN.__init__, LSTMLayerBase.__init__)
    def __init__(self, rank, filters, kernel_size, **kwargs):
        super().__init__(
            ConvLSTMCell, rank, filters, kernel_size, cell_name="conv_lstm_cell", **kwargs
        )
        self.input_spec = keras.layers.InputSpec(ndim=rank + 3)

    def loop_over_steps(self, sequences, states, mask, starts_from_zero_state):
        mask = time_step_mask(mask)
        steps = sequences.shape[1]
        # A single step takes the loop, so that recurrent_kernel still gets a (zero) gradient.
        # So does an unrolled backward pass over a mask: Keras' unrolled loop zeroes masked
        # outputs in time order rather than in the reversed order it read them, and the same
        # quirk on the remaining steps alone would differ from it.
        unrolled_backwards_masked = self.unroll and self.go_backwards and mask is not None
        if not starts_from_zero_state or steps is None or steps < 2 or unrolled_backwards_masked:
            return super().loop_over_steps(sequences, states, mask, starts_from_zero_state)
        # The first step from the zero state, outside the loop: the cell skips the recurrent
        # convolution, which would convolve zeros.
        first, rest = (steps - 1, slice(0, -1)) if self.go_backwards else (0, slice(1, None))
        h, (_, c, *_) = self.cell(sequences[:, first], None)
        rest_mask = None
        if mask is not None:
            # A masked first step leaves the states at zero, and its output is zero too.
            mask = ops.cast(mask, "bool")
            valid = self._over_pixels(mask[:, first])
            h = ops.where(valid, h, ops.zeros_like(h))
            c = ops.where(valid, c, ops.zeros_like(c))
            rest_mask = mask[:, rest]
        last_output, outputs, final_states = super().loop_over_steps(
            sequences[:, rest], [h, c, *states[2:]], rest_mask, starts_from_zero_state=False
        )
        if rest_mask is not None and not self.zero_output_for_mask:
            # At a masked step Keras' loop repeats its previous output, which would be the
            # first step's output h; the loop over the rest starts from zeros instead. Every
            # output of this cell equals its h state (both are carried over masked steps), so
            # the last output is the final h, and the masked steps before the first valid one
            # of the rest (in the order they are read) output the first step's h.
            last_output = final_states[0]
            if self.return_sequences:
                read_order = ops.flip(rest_mask, axis=1) if self.go_backwards else rest_mask
                before_valid = ops.cumsum(ops.cast(read_order, "int32"), axis=1) == 0
                outputs = ops.where(self._over_pixels(before_valid), ops.expand_dims(h, 1), outputs)
        if self.return_sequences:
            outputs = ops.concatenate([ops.expand_dims(h, 1), outputs], axis=1)
        return last_output, outputs, final_states

    def _over_pixels(self, flags):
        """``[batch]`` or ``[batch, time]`` flags shaped to broadcast over steps' pixels."""
        for _ in range(self.cell.rank + 1):
            flags = ops.expand_dims(flags, -1)
        return flags

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch_size, steps = sequences_shape[:2]
        state_shape = self.cell.output_shape_for((batch_size, *sequences_shape[2:]))
        if self.return_sequences:
            output_shape = (batch_size, steps, *state_shape[1:])
        else:
            output_shape = state_shape
        if self.return_state:
            return output_shape, state_shape, state_shape
        return output_shape

    def compute_mask(self, sequences, mask):
        return super().compute_mask(sequences, time_step_mask(keras.tree.flatten(mask)[0]))


@keras.saving.register_keras_serializable(package="seqlayers")
class ConvLSTM1D(ConvLSTM):
    """1D convolutional LSTM (Shi et al., 2015), optionally with peepholes.

    ``ConvLSTM`` with ``rank=1``: inputs ``[batch, time, length, channels]``; see ``ConvLSTM``
    for the equations, masking, the other arguments (all keyword arguments here) and returns.

    Args:
        filters: int, channels of ``h`` and ``c``.
        kernel_size: int or tuple of 1 int.
        **kwargs: every other argument of ``ConvLSTM`` except ``rank``.

    Example:

    >>> print(ConvLSTM1D(8, 3, padding="same")(keras.ops.zeros((2, 5, 20, 3))).shape)
    (2, 20, 8)
    """

    @takes_parameters_of(ConvLSTM.__init__)
    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(1, filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="seqlayers")
class ConvLSTM2D(ConvLSTM):
    """2D convolutional LSTM (Shi et al., 2015), with the paper's peepholes as an option.

    ``ConvLSTM`` with ``rank=2``, on ``[batch, time, rows, cols, channels]`` inputs
    (channels_last) or ``[batch, time, channels, rows, cols]`` (channels_first). Same weights
    and, with ``use_peepholes=False``, the same function as ``keras.layers.ConvLSTM2D``; with
    ``use_peepholes=True`` the gates i, f also see ``c_{t-1}`` and the gate o sees ``c_t``
    through per-channel weights (see ``ConvLSTMCell`` for the equations). See ``ConvLSTM`` for
    masking and the return values.

    Args:
        filters: int, channels of ``h`` and ``c``.
        kernel_size: int or tuple of 2 ints, for the input and the recurrent convolution.
        **kwargs: every other argument of ``ConvLSTM`` except ``rank``, by keyword:
            ``strides=1``, ``padding="valid"``, ``data_format=None``, ``dilation_rate=1``,
            ``use_peepholes=False``, ``return_sequences=False``, ``return_state=False``,
            ``go_backwards=False``, ``stateful=False``, ``dropout=0.0``,
            ``recurrent_dropout=0.0``, the activations, initializers, regularizers,
            constraints, ``seed``, ``unroll`` and the base layer arguments.

    Call arguments:
        sequences: ``[batch, time, rows, cols, channels]``.
        initial_state: optional ``[h, c]``.
        mask: optional booleans, ``[batch, time]`` or ``[batch, time, rows, cols]``.
        training: whether dropout is applied.

    Returns:
        ``[batch, time, out_rows, out_cols, filters]`` with ``return_sequences``, else
        ``[batch, out_rows, out_cols, filters]``; with ``return_state`` followed by ``h`` and
        ``c``.

    Example:

    >>> layer = ConvLSTM2D(16, 3, padding="same", use_peepholes=True, return_sequences=True)
    >>> print(layer(keras.ops.zeros((2, 5, 32, 32, 3))).shape)
    (2, 5, 32, 32, 16)

    Strided, returning the final states too:

    >>> layer = ConvLSTM2D(16, 3, strides=2, return_state=True)
    >>> output, h, c = layer(keras.ops.zeros((2, 5, 32, 32, 3)))
    >>> print(output.shape, h.shape, c.shape)
    (2, 15, 15, 16) (2, 15, 15, 16) (2, 15, 15, 16)
    """

    @takes_parameters_of(ConvLSTM.__init__)
    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(2, filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="seqlayers")
class ConvLSTM3D(ConvLSTM):
    """3D convolutional LSTM (Shi et al., 2015), optionally with peepholes.

    ``ConvLSTM`` with ``rank=3``: inputs ``[batch, time, depth, rows, cols, channels]``; see
    ``ConvLSTM`` for the equations, masking, the other arguments (all keyword arguments here)
    and returns.

    Args:
        filters: int, channels of ``h`` and ``c``.
        kernel_size: int or tuple of 3 ints.
        **kwargs: every other argument of ``ConvLSTM`` except ``rank``.

    Example:

    >>> print(ConvLSTM3D(8, 3, padding="same")(keras.ops.zeros((2, 5, 4, 8, 8, 3))).shape)
    (2, 4, 8, 8, 8)
    """

    @takes_parameters_of(ConvLSTM.__init__)
    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(3, filters, kernel_size, **kwargs)
