"""Peephole LSTM (Gers & Schmidhuber, 2000): an LSTM whose gates also look at the cell state."""

import keras
from keras import ops

from seqlayers._argument_checks import check_positive_int
from seqlayers._lstm_base import LSTMCellBase, LSTMLayerBase
from seqlayers._signatures import constructor_config, pop_arguments_of, takes_parameters_of

# keras.layers.LSTM's two arguments that choose how it computes, not what: taken so that code
# written for it runs unchanged. Each function is both a signature source for
# takes_parameters_of (where the default is written, once) and the argument's check.


def lstm_implementation(*, implementation=2):
    """``implementation`` of ``keras.layers.LSTMCell``, checked: 1 or 2."""
    if isinstance(implementation, bool) or implementation not in (1, 2):
        raise ValueError(f"implementation must be 1 or 2, got {implementation!r}")
    return implementation


def lstm_use_cudnn(*, use_cudnn="auto"):
    """``use_cudnn`` of ``keras.layers.LSTM``, checked: ``"auto"`` or False; True is an error."""
    if use_cudnn is True:
        raise ValueError(
            "use_cudnn=True asks for cuDNN's LSTM kernel, which has no peephole connections; "
            "PeepholeLSTM always runs its own loop: pass use_cudnn='auto' or False"
        )
    if use_cudnn is not False and use_cudnn != "auto":
        raise ValueError(f"use_cudnn must be 'auto' or False, got {use_cudnn!r}")
    return use_cudnn


@keras.saving.register_keras_serializable(package="seqlayers")
class PeepholeLSTMCell(LSTMCellBase):
    """One step of a peephole LSTM: the gates also read the cell state (Gers et al., 2000).

    With ``σ`` the recurrent activation, ``tanh`` the activation and ``⊙`` the elementwise
    product::

        i   = σ(x W_i + h_{t-1} U_i + b_i + p_i ⊙ c_{t-1})
        f   = σ(x W_f + h_{t-1} U_f + b_f + p_f ⊙ c_{t-1})
        c_t = f ⊙ c_{t-1} + i ⊙ tanh(x W_c + h_{t-1} U_c + b_c)
        o   = σ(x W_o + h_{t-1} U_o + b_o + p_o ⊙ c_t)
        h_t = o ⊙ tanh(c_t)

    the formulation of the former ``tf.keras.experimental.PeepholeLSTMCell`` and of TF Addons.
    ``kernel`` ``[input_dim, 4 units]``, ``recurrent_kernel`` ``[units, 4 units]`` and ``bias``
    ``[4 units]`` hold the gates in the order i, f, c, o, exactly as ``keras.layers.LSTMCell``;
    the peepholes ``input_gate_peephole_weights``, ``forget_gate_peephole_weights`` and
    ``output_gate_peephole_weights`` are ``[units]`` each. With the peepholes at zero the cell is
    ``keras.layers.LSTMCell``. The four gates come from one fused matrix product per input per
    step (``x`` with ``kernel``, ``h_{t-1}`` with ``recurrent_kernel``), never four.

    Reference: Gers & Schmidhuber, "Recurrent nets that time and count", IJCNN 2000,
    https://doi.org/10.1109/IJCNN.2000.861302.

    ``PeepholeLSTM`` draws the dropout masks once per sequence and reuses them at every step
    (Gal & Ghahramani, 2016), as ``keras.layers.LSTM`` does. Run by a plain
    ``keras.layers.RNN``, whose per-sequence dropout hook is private to Keras, the cell draws
    fresh masks at every step instead.

    Args:
        units: int, size of ``h`` and ``c``.
        activation: default ``"tanh"``, for the candidate cell state and the output.
        recurrent_activation: default ``"sigmoid"``, for the gates.
        use_bias: default True.
        kernel_initializer: default ``"glorot_uniform"``.
        recurrent_initializer: default ``"orthogonal"``.
        bias_initializer: default ``"zeros"``.
        peephole_initializer: default ``"glorot_uniform"`` (the former tf.keras cell used the
            kernel initializer). ``"zeros"`` starts as a plain LSTM.
        unit_forget_bias: default True: the forget gate's bias starts at 1 (Jozefowicz et al.
            2015) whatever ``bias_initializer`` says for the other gates.
        kernel_regularizer, recurrent_regularizer, bias_regularizer, peephole_regularizer:
            default None.
        kernel_constraint, recurrent_constraint, bias_constraint, peephole_constraint:
            default None.
        dropout: float in [0, 1), default 0: dropout on the inputs ``x``.
        recurrent_dropout: float in [0, 1), default 0: dropout on ``h_{t-1}`` where it enters
            the gates (Gal & Ghahramani 2016).
        seed: int or None, seed of the dropout masks.
        implementation: 1 or 2, default 2, as for ``keras.layers.LSTMCell``, where it chooses
            between four products per gate group (1) and one fused product (2), a performance
            hint that does not change the function. Accepted and kept in the config; this cell
            always computes the fused product.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``[batch, input_dim]``, the input of one step.
        states: ``[h, c]``, each ``[batch, units]``, optionally followed by a recurrent
            dropout mask shaped like ``h`` (``PeepholeLSTM`` passes its per-sequence mask this
            way), which is returned unchanged.
        training: whether the cell draws its own dropout masks.

    Returns:
        ``(h, [h, c])`` (``[h, c, mask]`` when a mask came in).

    Example:

    >>> layer = keras.layers.RNN(PeepholeLSTMCell(16))
    >>> print(layer(keras.ops.zeros((2, 10, 8))).shape)
    (2, 16)
    """

    @takes_parameters_of(LSTMCellBase.__init__, lstm_implementation)
    def __init__(self, units, **kwargs):
        check_positive_int("units", units)
        implementation = lstm_implementation(**pop_arguments_of(lstm_implementation, kwargs))
        super().__init__(**kwargs)
        self.units = units
        self.implementation = implementation
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"PeepholeLSTMCell needs a known input size, got input shape {input_shape}"
            )
        self.add_gate_weights(
            kernel_shape=(input_dim, 4 * self.units),
            recurrent_kernel_shape=(self.units, 4 * self.units),
            peepholes=True,
        )
        self.built = True

    def call(self, inputs, states, training=False):
        h_previous, c_previous = states[:2]
        # PeepholeLSTM draws the masks once per sequence: it drops out the inputs itself and
        # hands the recurrent mask over as a third, constant state. Run by another RNN layer,
        # the cell draws its masks here, at every step.
        input_mask, recurrent_mask = self.dropout_masks(inputs, h_previous, training)
        if len(states) > 2:
            recurrent_mask = states[2]
        if input_mask is not None:
            inputs = inputs * input_mask
        if recurrent_mask is not None:
            h_previous = h_previous * recurrent_mask
        # [batch, 4 units]: all four gates from one product per input.
        gates = ops.matmul(inputs, self.kernel) + ops.matmul(h_previous, self.recurrent_kernel)
        if self.use_bias:
            gates = gates + self.bias
        input_gate, forget_gate, candidate, output_gate = ops.split(gates, 4, axis=-1)
        input_gate = self.recurrent_activation(
            input_gate + self.input_gate_peephole_weights * c_previous
        )
        forget_gate = self.recurrent_activation(
            forget_gate + self.forget_gate_peephole_weights * c_previous
        )
        c = forget_gate * c_previous + input_gate * self.activation(candidate)
        output_gate = self.recurrent_activation(output_gate + self.output_gate_peephole_weights * c)
        h = output_gate * self.activation(c)
        return h, [h, c, *states[2:]]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype) for _ in range(2)]

    def get_config(self):
        arguments = {"units": self.units, "implementation": self.implementation}
        return constructor_config(self, super().get_config(), arguments)


@keras.saving.register_keras_serializable(package="seqlayers")
class PeepholeLSTM(LSTMLayerBase):
    """Peephole LSTM layer (Gers et al., 2000): ``keras.layers.LSTM`` whose gates read the cell.

    Runs ``PeepholeLSTMCell`` (see its docstring for the equations and the weight layout) over
    the time axis. It is a ``keras.layers.RNN``, so ``return_sequences``, ``return_state``,
    ``go_backwards``, ``stateful``, ``initial_state`` and ``keras.layers.Bidirectional`` behave
    as for ``keras.layers.LSTM``. It takes every argument of ``keras.layers.LSTM`` (all but
    ``units`` by keyword). Unlike ``keras.layers.LSTM`` it never switches to cuDNN, which has
    no peephole kernel: the same portable loop runs on every device, trains under XLA, and
    exports to a SavedModel that serves on CPU-only machines.

    Dropout masks (inputs and recurrent state) are drawn once per sequence and reused at
    every step (Gal & Ghahramani, 2016), as in ``keras.layers.LSTM``.

    Masking: at a masked step the states ``h`` and ``c`` keep their values and the output
    repeats the previous step's output (zeros before the first valid step, and always zeros
    with ``zero_output_for_mask``, which ``Bidirectional`` sets), so a padded batch, pre- or
    post-padded, gives each sequence's own outputs at its valid steps and its own final states.
    The mask is returned with the sequence output (``return_sequences=True``); the last output
    and the states carry none.

    Reference: Gers & Schmidhuber, "Recurrent nets that time and count", IJCNN 2000,
    https://doi.org/10.1109/IJCNN.2000.861302.

    Args:
        units, activation, recurrent_activation, use_bias, kernel_initializer,
        recurrent_initializer, bias_initializer, peephole_initializer, unit_forget_bias,
        kernel_regularizer, recurrent_regularizer, bias_regularizer, peephole_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint, peephole_constraint,
        dropout, recurrent_dropout, seed, implementation: as for ``PeepholeLSTMCell`` (same
            defaults). ``dropout`` and ``recurrent_dropout`` masks are drawn once per sequence.
        activity_regularizer: default None, applied to the layer's output.
        return_sequences: default False: return the output of every step, not only the last.
        return_state: default False: also return the final ``h`` and ``c``.
        go_backwards: default False: read the sequence backwards (and return the outputs in
            that reversed order).
        stateful: default False: the final states of a batch are the initial states of the
            next one (needs a fixed batch size).
        unroll: default False: unroll the loop over time in the graph (needs a fixed sequence
            length; can speed up short sequences).
        zero_output_for_mask: default False: masked steps output zeros rather than repeat the
            previous output (``keras.layers.Bidirectional`` sets it).
        use_cudnn: ``"auto"`` (default) or False, as accepted by ``keras.layers.LSTM``: both
            run the layer's own loop, on every device. True, with which ``keras.layers.LSTM``
            demands its cuDNN kernel, is a ValueError: that kernel has no peepholes.
        **kwargs: base layer arguments (``name``, ``dtype``, ``trainable``).

    Call arguments:
        sequences: ``[batch, time, input_dim]``.
        initial_state: optional ``[h, c]``, each ``[batch, units]``.
        mask: optional ``[batch, time]`` booleans, True at valid steps.
        training: whether dropout is applied.

    Returns:
        ``[batch, time, units]`` with ``return_sequences``, else ``[batch, units]``; with
        ``return_state`` followed by the final ``h`` and ``c`` (``[batch, units]`` each).

    Example:

    >>> layer = PeepholeLSTM(32, return_sequences=True)
    >>> print(layer(keras.ops.zeros((4, 20, 8))).shape)
    (4, 20, 32)
    >>> print(keras.layers.Bidirectional(PeepholeLSTM(32))(keras.ops.zeros((4, 20, 8))).shape)
    (4, 64)
    """

    @takes_parameters_of(
        PeepholeLSTMCell.__init__,
        keras.layers.RNN.__init__,
        LSTMLayerBase.__init__,
        lstm_use_cudnn,
    )
    def __init__(self, units, **kwargs):
        use_cudnn = lstm_use_cudnn(**pop_arguments_of(lstm_use_cudnn, kwargs))
        super().__init__(PeepholeLSTMCell, units, cell_name="peephole_lstm_cell", **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.use_cudnn = use_cudnn

    def get_config(self):
        return constructor_config(self, super().get_config(), {"use_cudnn": self.use_cudnn})
