"""What the peephole LSTM and the ConvLSTM share: the gates' cell base and the layer base.

``LSTMCellBase`` holds the arguments, weights and dropout of an LSTM's four gates, which
``PeepholeLSTMCell`` (matrix products) and ``ConvLSTMCell`` (convolutions) compute alike;
``LSTMLayerBase`` is the ``keras.layers.RNN`` that builds such a cell from its own keyword
arguments, reports them in its config and draws the dropout masks once per sequence.
"""

import keras
from keras import ops

from seqlayers._argument_checks import check_dropout_rate
from seqlayers._signatures import constructor_config, parameter_names, pop_arguments_of

PEEPHOLE_WEIGHT_NAMES = (
    "input_gate_peephole_weights",
    "forget_gate_peephole_weights",
    "output_gate_peephole_weights",
)

# What a recurrent layer takes besides its cell's arguments: keras.layers.RNN's and the base
# layer's (which pops input_shape and input_dim from its **kwargs, with a warning).
_LAYER_ARGUMENTS = (
    set(parameter_names(keras.layers.RNN.__init__))
    | set(parameter_names(keras.layers.Layer.__init__))
    | {"input_shape", "input_dim"}
) - {"cell"}


def dropout_keep_mask(like, rate, seed_generator):
    """A dropout mask shaped like ``like``: 0 or ``1 / (1 - rate)``; ``None`` when rate is 0."""
    if rate == 0:
        return None
    return keras.random.dropout(ops.ones_like(like), rate=rate, seed=seed_generator)


class LSTMCellBase(keras.layers.Layer):
    """Base of the LSTM cells: the arguments, weights and dropout of the four gates i, f, c, o.

    A subclass validates and stores the arguments that shape its gates, calls
    ``add_gate_weights`` in ``build`` and computes the step in ``call``. The arguments here are
    documented on the subclasses (``PeepholeLSTMCell``, ``ConvLSTMCell``), whose signatures
    list them after their own (``takes_parameters_of``).
    """

    def __init__(
        self,
        *,
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
        check_dropout_rate("dropout", dropout)
        check_dropout_rate("recurrent_dropout", recurrent_dropout)
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.unit_forget_bias = unit_forget_bias
        for kind, initializer, regularizer, constraint in (
            ("kernel", kernel_initializer, kernel_regularizer, kernel_constraint),
            ("recurrent", recurrent_initializer, recurrent_regularizer, recurrent_constraint),
            ("bias", bias_initializer, bias_regularizer, bias_constraint),
            ("peephole", peephole_initializer, peephole_regularizer, peephole_constraint),
        ):
            setattr(self, f"{kind}_initializer", keras.initializers.get(initializer))
            setattr(self, f"{kind}_regularizer", keras.regularizers.get(regularizer))
            setattr(self, f"{kind}_constraint", keras.constraints.get(constraint))
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _gate_bias_initializer(self, shape, dtype=None):
        # [4 channels]: bias_initializer for i, c, o; ones for f (unit_forget_bias).
        channels = shape[0] // 4
        return ops.concatenate(
            [
                self.bias_initializer((channels,), dtype=dtype),
                ops.ones((channels,), dtype=dtype),
                self.bias_initializer((2 * channels,), dtype=dtype),
            ]
        )

    def _add_gate_weight(self, name, kind, shape, initializer):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer,
            regularizer=getattr(self, f"{kind}_regularizer"),
            constraint=getattr(self, f"{kind}_constraint"),
        )

    def add_gate_weights(self, kernel_shape, recurrent_kernel_shape, peepholes):
        """``kernel``, ``recurrent_kernel``, ``bias`` and (with ``peepholes``) the peepholes.

        Both kernel shapes end in ``4 channels``, the gates i, f, c, o side by side (as in
        Keras' LSTM cells); ``bias`` is ``[4 channels]`` (None without ``use_bias``) and each
        peephole ``[channels]``.
        """
        channels = kernel_shape[-1] // 4
        self.kernel = self._add_gate_weight(
            "kernel", "kernel", kernel_shape, self.kernel_initializer
        )
        self.recurrent_kernel = self._add_gate_weight(
            "recurrent_kernel", "recurrent", recurrent_kernel_shape, self.recurrent_initializer
        )
        self.bias = None
        if self.use_bias:
            initializer = (
                self._gate_bias_initializer if self.unit_forget_bias else self.bias_initializer
            )
            self.bias = self._add_gate_weight("bias", "bias", (4 * channels,), initializer)
        if peepholes:
            input_gate, forget_gate, output_gate = (
                self._add_gate_weight(name, "peephole", (channels,), self.peephole_initializer)
                for name in PEEPHOLE_WEIGHT_NAMES
            )
            self.input_gate_peephole_weights = input_gate
            self.forget_gate_peephole_weights = forget_gate
            self.output_gate_peephole_weights = output_gate

    def dropout_masks(self, inputs, h, training):
        """Dropout masks shaped like ``inputs`` and like ``h``; None where none applies.

        ``h`` is None for the zero state, which needs no recurrent mask.
        """
        if not training:
            return None, None
        input_mask = dropout_keep_mask(inputs, self.dropout, self.seed_generator)
        if h is None:
            return input_mask, None
        return input_mask, dropout_keep_mask(h, self.recurrent_dropout, self.seed_generator)

    def quantize(self, mode=None, type_check=True, config=None):
        # keras.layers.LSTMCell and Keras' ConvLSTMCell have no quantization either (Keras
        # 3.15). model.quantize() turns this error into a warning and leaves the cell's weights
        # as they are, as it does for theirs, and still quantizes the model's other layers.
        raise NotImplementedError(
            f"{type(self).__name__} {self.name!r} has no {mode!r} quantization, nor have "
            f"Keras' LSTM and ConvLSTM cells: its weights stay {self.variable_dtype}"
        )

    def get_config(self):
        config = {
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


class LSTMLayerBase(keras.layers.RNN):
    """Base of the LSTM layers: a ``keras.layers.RNN`` made from its cell's arguments.

    ``__init__(cell_class, *cell_args, cell_name=..., **kwargs)``: the keyword arguments that
    ``cell_class``'s constructor names make the cell (named ``cell_name``, with the layer's
    ``dtype`` and ``trainable``); the others are ``keras.layers.RNN``'s and the base layer's,
    and any other name is a ``TypeError``. ``get_config`` holds the cell's arguments beside the
    layer's own, flat, exactly as the subclass's constructor names them, and ``from_config``
    passes them back.

    Dropout masks are drawn once per sequence (Gal & Ghahramani, 2016). The cell provides
    ``dropout_masks(step_inputs, h, training)`` (masks shaped like one step's inputs and like
    ``h``, None where none applies) and accepts the recurrent mask as a third state after
    ``[h, c]``, which it applies to ``h`` and returns unchanged. The input mask multiplies every
    step here, before the loop. (Keras' own hook for this is private.)

    ``call`` does what ``keras.layers.RNN.call`` does, and tells the loop
    (``loop_over_steps``, a subclass's hook) whether the states start at zero.
    """

    def __init__(self, cell_class, *cell_args, cell_name, activity_regularizer=None, **kwargs):
        cell_arguments = pop_arguments_of(cell_class.__init__, kwargs)
        unknown = sorted(set(kwargs) - _LAYER_ARGUMENTS)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword arguments {unknown}: they are "
                f"arguments neither of {cell_class.__name__} nor of keras.layers.RNN"
            )
        cell = cell_class(
            *cell_args,
            **cell_arguments,
            name=cell_name,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
        )
        super().__init__(cell, activity_regularizer=activity_regularizer, **kwargs)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        # What keras.layers.RNN.call does, written out so that the loop is told whether the
        # states start at zero (Keras' call hands its inner_loop the states alone). The test
        # tests/seqlayers/test_keras_rnn_contract.py fails when Keras changes RNN.call.
        starts_from_zero_state = initial_state is None and not self.stateful
        if self.unroll and sequences.shape[1] is None:
            raise ValueError(
                "unroll=True needs a known number of time steps, got sequences of shape "
                f"{sequences.shape}"
            )
        if self.stateful:
            expected_batch_size = keras.tree.flatten(self.states)[0].shape[0]
            if sequences.shape[0] not in (None, expected_batch_size):
                raise ValueError(
                    f"a stateful {type(self).__name__} takes batches of {expected_batch_size} "
                    f"sequences (the batch size of its states), got {sequences.shape[0]}"
                )
        if initial_state is None:
            initial_state = (
                self.states if self.stateful else self.get_initial_state(ops.shape(sequences)[0])
            )
        initial_state = [
            ops.convert_to_tensor(state, dtype=self.cell.compute_dtype)
            for state in keras.tree.flatten(initial_state)
        ]
        last_output, outputs, states = self.run_steps(
            sequences, initial_state, mask, training, starts_from_zero_state
        )
        last_output = ops.cast(last_output, self.compute_dtype)
        outputs = ops.cast(outputs, self.compute_dtype)
        states = [ops.cast(state, self.compute_dtype) for state in states]
        if self.stateful:
            for variable, state in zip(keras.tree.flatten(self.states), states, strict=True):
                variable.assign(state)
        output = outputs if self.return_sequences else last_output
        return (output, *states) if self.return_state else output

    def run_steps(self, sequences, initial_state, mask, training, starts_from_zero_state):
        """``keras.layers.RNN.inner_loop`` with dropout masks drawn once for the sequence.

        Returns ``(last_output, outputs, [h, c])``.
        """
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
        last_output, outputs, final_states = self.loop_over_steps(
            sequences, states, mask, starts_from_zero_state
        )
        return last_output, outputs, final_states[:2]

    def loop_over_steps(self, sequences, states, mask, starts_from_zero_state):
        """``keras.layers.RNN``'s loop over ``sequences`` (dropout applied): a subclass's hook.

        ``states`` are ``[h, c]``, followed by the recurrent dropout mask if one applies;
        ``starts_from_zero_state``: no ``initial_state`` was given and the layer is not
        stateful, so ``h`` and ``c`` are zeros (a subclass may skip work on them). Returns
        ``(last_output, outputs, final_states)`` as ``keras.layers.RNN.inner_loop``.
        """
        # training=False: the cell must not draw masks of its own at every step.
        return super().inner_loop(sequences, states, mask, training=False)

    def get_config(self):
        config = super().get_config()
        cell_config = config.pop("cell")["config"]
        config["activity_regularizer"] = keras.regularizers.serialize(self.activity_regularizer)
        return constructor_config(self, config, cell_config)

    @classmethod
    def from_config(cls, config):
        return cls(**config)
