"""Peephole LSTM (Gers & Schmidhuber, 2000): an LSTM whose gates also look at the cell state."""

import keras
from keras import ops

from seqlayers._argument_checks import check_dropout_rate, check_positive_int

# The arguments of PeepholeLSTMCell that PeepholeLSTM forwards to its cell (and reports in its
# config); everything else in the cell's config (name, dtype, trainable) belongs to the layer.
_CELL_ARGUMENTS = (
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "peephole_initializer",
    "unit_forget_bias",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "peephole_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "peephole_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
)

PEEPHOLE_WEIGHT_NAMES = (
    "input_gate_peephole_weights",
    "forget_gate_peephole_weights",
    "output_gate_peephole_weights",
)


def dropout_keep_mask(like, rate, seed_generator):
    """A dropout mask shaped like ``like``: 0 or ``1 / (1 - rate)``; ``None`` when rate is 0."""
    if rate == 0:
        return None
    return keras.random.dropout(ops.ones_like(like), rate=rate, seed=seed_generator)


@keras.saving.register_keras_serializable(package="seqlayers")
class PeepholeLSTMCell(keras.layers.Layer):
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
    >>> layer(np.zeros((2, 10, 8))).shape
    TensorShape([2, 16])
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        peephole_initializer="glorot_uniform",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        peephole_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        peephole_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("units", units)
        check_dropout_rate("dropout", dropout)
        check_dropout_rate("recurrent_dropout", recurrent_dropout)
        self.units = units
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.peephole_initializer = keras.initializers.get(peephole_initializer)
        self.unit_forget_bias = unit_forget_bias
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.peephole_regularizer = keras.regularizers.get(peephole_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.peephole_constraint = keras.constraints.get(peephole_constraint)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = [units, units]
        self.output_size = units

    def _gate_bias_initializer(self, shape, dtype=None):
        # [4 units]: bias_initializer for i, c, o; ones for f (unit_forget_bias).
        units = shape[0] // 4
        return ops.concatenate(
            [
                self.bias_initializer((units,), dtype=dtype),
                ops.ones((units,), dtype=dtype),
                self.bias_initializer((2 * units,), dtype=dtype),
            ]
        )

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"PeepholeLSTMCell needs a known input size, got input shape {input_shape}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, 4 * self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(self.units, 4 * self.units),
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(4 * self.units,),
                initializer=(
                    self._gate_bias_initializer if self.unit_forget_bias else self.bias_initializer
                ),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.input_gate_peephole_weights = self._add_peephole_weight(PEEPHOLE_WEIGHT_NAMES[0])
        self.forget_gate_peephole_weights = self._add_peephole_weight(PEEPHOLE_WEIGHT_NAMES[1])
        self.output_gate_peephole_weights = self._add_peephole_weight(PEEPHOLE_WEIGHT_NAMES[2])
        self.built = True

    def _add_peephole_weight(self, name):
        return self.add_weight(
            name=name,
            shape=(self.units,),
            initializer=self.peephole_initializer,
            regularizer=self.peephole_regularizer,
            constraint=self.peephole_constraint,
        )

    def dropout_masks(self, inputs, h, training):
        """Dropout masks shaped like ``inputs`` and like ``h``; None where none applies."""
        if not training:
            return None, None
        return (
            dropout_keep_mask(inputs, self.dropout, self.seed_generator),
            dropout_keep_mask(h, self.recurrent_dropout, self.seed_generator),
        )

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
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "unit_forget_bias": self.unit_forget_bias,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        for kind in ("kernel", "recurrent", "bias", "peephole"):
            config[f"{kind}_initializer"] = keras.initializers.serialize(
                getattr(self, f"{kind}_initializer")
            )
            config[f"{kind}_regularizer"] = keras.regularizers.serialize(
                getattr(self, f"{kind}_regularizer")
            )
            config[f"{kind}_constraint"] = keras.constraints.serialize(
                getattr(self, f"{kind}_constraint")
            )
        return {**super().get_config(), **config}


class RNNWithSequenceDropout(keras.layers.RNN):
    """Base class: a ``keras.layers.RNN`` that draws its cell's dropout masks once per sequence.

    The cell provides ``dropout_masks(step_inputs, h, training)`` (masks shaped like one step's
    inputs and like ``h``, None where none applies) and accepts the recurrent mask as a third
    state after ``[h, c]``, which it applies to ``h`` and returns unchanged. The input mask
    multiplies every step here, before the loop. (Keras' own hook for this is private.)
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        input_mask, recurrent_mask = self.cell.dropout_masks(
            sequences[:, 0], initial_state[0], training
        )
        if input_mask is not None:
            sequences = sequences * ops.expand_dims(input_mask, 1)
        states = list(initial_state)
        if recurrent_mask is not None:
            states.append(recurrent_mask)
        last_output, outputs, final_states = self.loop_over_steps(sequences, states, mask)
        return last_output, outputs, final_states[:2]

    def loop_over_steps(self, sequences, states, mask):
        """``keras.layers.RNN``'s loop over ``sequences`` (dropout applied): a subclass's hook.

        ``states`` are ``[h, c]``, followed by the recurrent dropout mask if one applies.
        Returns ``(last_output, outputs, final_states)`` as ``keras.layers.RNN.inner_loop``.
        """
        # training=False: the cell must not draw masks of its own at every step.
        return super().inner_loop(sequences, states, mask, training=False)


@keras.saving.register_keras_serializable(package="seqlayers")
class PeepholeLSTM(RNNWithSequenceDropout):
    """Peephole LSTM layer (Gers et al., 2000): ``keras.layers.LSTM`` whose gates read the cell.

    Runs ``PeepholeLSTMCell`` (see its docstring for the equations and the weight layout) over
    the time axis. It is a ``keras.layers.RNN``, so ``return_sequences``, ``return_state``,
    ``go_backwards``, ``stateful``, ``initial_state`` and ``keras.layers.Bidirectional`` behave
    as for ``keras.layers.LSTM``. Unlike ``keras.layers.LSTM`` it never switches to cuDNN: the
    same portable loop runs on every device, trains under XLA, and exports to a SavedModel that
    serves on CPU-only machines.

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
        dropout, recurrent_dropout, seed: as for ``PeepholeLSTMCell`` (same defaults).
            ``dropout`` and ``recurrent_dropout`` masks are drawn once per sequence.
        activity_regularizer: default None, applied to the layer's output.
        return_sequences: default False: return the output of every step, not only the last.
        return_state: default False: also return the final ``h`` and ``c``.
        go_backwards: default False: read the sequence backwards (and return the outputs in
            that reversed order).
        stateful: default False: the final states of a batch are the initial states of the
            next one (needs a fixed batch size).
        unroll: default False: unroll the loop over time in the graph (needs a fixed sequence
            length; can speed up short sequences).
        **kwargs: base ``keras.layers.RNN`` arguments (``name``, ``dtype``,
            ``zero_output_for_mask``, ...).

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
    >>> layer(np.zeros((4, 20, 8))).shape
    TensorShape([4, 20, 32])
    >>> keras.layers.Bidirectional(PeepholeLSTM(32))(np.zeros((4, 20, 8))).shape
    TensorShape([4, 64])
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        peephole_initializer="glorot_uniform",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        peephole_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        peephole_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        cell = PeepholeLSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            peephole_initializer=peephole_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            peephole_regularizer=peephole_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            peephole_constraint=peephole_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            name="peephole_lstm_cell",
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def get_config(self):
        config = super().get_config()
        cell_config = config.pop("cell")["config"]
        config.update({name: cell_config[name] for name in _CELL_ARGUMENTS})
        config["activity_regularizer"] = keras.regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
