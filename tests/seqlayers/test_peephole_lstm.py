"""PeepholeLSTM and PeepholeLSTMCell: the kit, keras.layers.LSTM, a NumPy reference, dropout."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlayers._lstm_base import PEEPHOLE_WEIGHT_NAMES
from seqlayers.peephole_lstm import PeepholeLSTM, PeepholeLSTMCell
from tests.layer_checks import (
    LayerUnderTest,
    check_export_in_fresh_process,
    check_keras_file_round_trip,
    check_masking,
    run_layer_checks,
)
from tests.seqlayers.references import peephole_lstm_update

TOLERANCE = 1e-5


def numpy_peephole_lstm(
    x, kernel, recurrent_kernel, bias, peepholes, input_mask=None, recurrent_mask=None
):
    """Gers & Schmidhuber (2000) written out step by step: ``(outputs [b, t, u], h, c)``.

    ``peepholes`` = (p_i, p_f, p_o); the optional dropout masks multiply ``x`` and ``h_{t-1}``
    at every step.
    """
    x = x.astype("float64")
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    h = np.zeros((batch, units))
    c = np.zeros((batch, units))
    outputs = []
    for t in range(steps):
        x_t = x[:, t] if input_mask is None else x[:, t] * input_mask
        h_in = h if recurrent_mask is None else h * recurrent_mask
        z = x_t @ kernel + h_in @ recurrent_kernel + bias
        h, c = peephole_lstm_update(z, c, peepholes)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


def randomize_weights(layer, seed, zero_peepholes=False):
    """Random values for every weight (so zero biases or zero peepholes hide nothing)."""
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        value = 0.5 * rng.standard_normal(variable.shape)
        if zero_peepholes and variable.name in PEEPHOLE_WEIGHT_NAMES:
            value = np.zeros(variable.shape)
        variable.assign(value.astype("float32"))


def cell_weights(layer):
    """``(kernel, recurrent_kernel, bias, (p_i, p_f, p_o))`` as float64 arrays."""
    cell = layer.cell
    peepholes = tuple(
        keras.ops.convert_to_numpy(getattr(cell, name)).astype("float64")
        for name in PEEPHOLE_WEIGHT_NAMES
    )
    arrays = [
        keras.ops.convert_to_numpy(w).astype("float64")
        for w in (cell.kernel, cell.recurrent_kernel, cell.bias)
    ]
    return (*arrays, peepholes)


def random_sequences(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


# --- The layer test kit ---------------------------------------------------------------------


def test_peephole_lstm_sequences_pass_the_layer_kit(tmp_path):
    run_layer_checks(
        PeepholeLSTM,
        {"units": 8, "return_sequences": True, "dropout": 0.2, "recurrent_dropout": 0.2},
        input_shape=(None, 4),
        expected_output_shape=(None, 8),
        tmp_path=tmp_path,
        masking=True,
    )


def test_peephole_lstm_backwards_with_states_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        PeepholeLSTM,
        {"units": 6, "return_state": True, "go_backwards": True},
        input_shape=(None, 3),
        expected_output_shape=[(6,), (6,), (6,)],
        tmp_path=tmp_path,
        masking=True,
    )


def bidirectional_peephole_lstm(**kwargs):
    return keras.layers.Bidirectional(PeepholeLSTM(**kwargs), name="bidirectional")


def test_bidirectional_peephole_lstm_masks_saves_and_exports(tmp_path):
    # The kit's own checks, on Bidirectional(PeepholeLSTM): run_layer_checks takes a layer
    # class with its own config, so the checks that fit a wrapped layer are called one by one.
    subject = LayerUnderTest(
        layer_cls=bidirectional_peephole_lstm,
        init_kwargs={"units": 5, "return_sequences": True},
        input_shapes=[(None, 3)],
        output_shapes=[(None, 10)],
        masking=True,
    )
    check_masking(subject)
    check_keras_file_round_trip(subject, tmp_path / "keras_file")
    check_export_in_fresh_process(subject, tmp_path / "export")


def test_saved_model_has_no_cudnn_ops(tmp_path):
    # keras.layers.LSTM bakes CudnnRNN ops into SavedModels exported on a GPU machine, which then
    # fail on CPU-only servers (keras issue #18504). PeepholeLSTM never calls Keras' cuDNN path;
    # on any machine, its exported graph holds only portable ops.
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, keras.layers.Bidirectional(PeepholeLSTM(4))(inputs))
    model.export(str(tmp_path / "export"), format="tf_saved_model", verbose=False)
    serving = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    graph = serving.graph.as_graph_def()
    op_types = {node.op for node in graph.node}
    op_types |= {node.op for function in graph.library.function for node in function.node_def}
    assert "While" in op_types or "StatelessWhile" in op_types
    assert not [op for op in op_types if "cudnn" in op.lower()]


# --- Numerical references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("masked", "use_bias"),
    [(False, True), (True, True), (False, False)],
    ids=["unmasked", "post_padded", "without_bias"],
)
def test_zero_peepholes_equal_keras_lstm(masked, use_bias):
    x = random_sequences((3, 7, 4))
    if masked:
        x[0, 5:] = 0.0
        x[1, 2:] = 0.0
    arguments = {"return_sequences": True, "return_state": True, "use_bias": use_bias}
    ours = PeepholeLSTM(6, **arguments)
    theirs = keras.layers.LSTM(6, **arguments)
    ours(x)
    theirs(x)
    randomize_weights(ours, seed=1, zero_peepholes=True)
    theirs.set_weights([w.numpy() for w in ours.weights[: len(theirs.weights)]])
    masking = keras.layers.Masking(0.0)
    inputs = masking(x) if masked else x
    for actual, expected in zip(ours(inputs), theirs(inputs), strict=True):
        np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
def test_matches_numpy_reference(go_backwards):
    x = random_sequences((3, 9, 5))
    layer = PeepholeLSTM(7, return_sequences=True, return_state=True, go_backwards=go_backwards)
    layer(x)
    randomize_weights(layer, seed=2)
    outputs, h, c = layer(x)
    expected_outputs, expected_h, expected_c = numpy_peephole_lstm(
        x[:, ::-1] if go_backwards else x, *cell_weights(layer)
    )
    np.testing.assert_allclose(outputs, expected_outputs, atol=TOLERANCE, rtol=TOLERANCE)
    np.testing.assert_allclose(h, expected_h, atol=TOLERANCE, rtol=TOLERANCE)
    np.testing.assert_allclose(c, expected_c, atol=TOLERANCE, rtol=TOLERANCE)


def test_cell_in_plain_keras_rnn_equals_the_layer():
    x = random_sequences((2, 6, 3))
    layer = PeepholeLSTM(5, return_sequences=True)
    rnn = keras.layers.RNN(PeepholeLSTMCell(5), return_sequences=True)
    layer(x)
    rnn(x)
    randomize_weights(layer, seed=3)
    rnn.set_weights(layer.get_weights())
    np.testing.assert_allclose(rnn(x), layer(x), atol=TOLERANCE, rtol=TOLERANCE)


def test_the_four_gates_come_from_one_product_per_input():
    # Four per-gate products (or a per-gate loop) would show as 8 narrower MatMuls.
    units = 5
    cell = PeepholeLSTMCell(units)
    cell.build((None, 3))

    @tf.function
    def one_step(x, h, c):
        return cell(x, [h, c])

    graph = one_step.get_concrete_function(
        tf.TensorSpec((2, 3)), tf.TensorSpec((2, units)), tf.TensorSpec((2, units))
    ).graph
    products = [op for op in graph.get_operations() if "MatMul" in op.type]
    assert len(products) == 2
    assert [op.outputs[0].shape[-1] for op in products] == [4 * units, 4 * units]


# --- Dropout, state, direction ------------------------------------------------------------


def test_dropout_masks_are_drawn_once_per_sequence():
    x = random_sequences((3, 6, 4))
    layer = PeepholeLSTM(
        5, dropout=0.3, recurrent_dropout=0.4, seed=11, return_sequences=True, return_state=True
    )
    layer(x)
    randomize_weights(layer, seed=4)
    outputs, h, c = layer(x, training=True)
    # The layer draws the input mask, then the recurrent mask, from a generator seeded alike.
    seed_generator = keras.random.SeedGenerator(11)
    input_mask = keras.random.dropout(np.ones((3, 4), "float32"), 0.3, seed=seed_generator)
    recurrent_mask = keras.random.dropout(np.ones((3, 5), "float32"), 0.4, seed=seed_generator)
    expected_outputs, expected_h, expected_c = numpy_peephole_lstm(
        x,
        *cell_weights(layer),
        input_mask=keras.ops.convert_to_numpy(input_mask),
        recurrent_mask=keras.ops.convert_to_numpy(recurrent_mask),
    )
    np.testing.assert_allclose(outputs, expected_outputs, atol=TOLERANCE, rtol=TOLERANCE)
    np.testing.assert_allclose(h, expected_h, atol=TOLERANCE, rtol=TOLERANCE)
    np.testing.assert_allclose(c, expected_c, atol=TOLERANCE, rtol=TOLERANCE)


def test_dropout_only_in_training():
    x = random_sequences((4, 6, 4))
    layer = PeepholeLSTM(8, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    plain = PeepholeLSTM(8, return_sequences=True)
    layer(x)
    plain(x)
    plain.set_weights(layer.get_weights())
    inference = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_array_equal(inference, keras.ops.convert_to_numpy(layer(x)))
    np.testing.assert_allclose(inference, plain(x), atol=TOLERANCE, rtol=TOLERANCE)
    first, second = (keras.ops.convert_to_numpy(layer(x, training=True)) for _ in range(2))
    assert not np.allclose(first, inference)
    assert not np.allclose(first, second)  # fresh masks for every batch


def test_stateful_layer_carries_states_between_batches():
    x = random_sequences((2, 8, 3))
    stateful = PeepholeLSTM(4, stateful=True, return_sequences=True)
    whole = PeepholeLSTM(4, return_sequences=True)
    inputs = keras.Input(batch_shape=(2, None, 3))
    model = keras.Model(inputs, stateful(inputs))
    whole(x)
    randomize_weights(whole, seed=5)
    stateful.set_weights(whole.get_weights())
    expected = keras.ops.convert_to_numpy(whole(x))
    halves = [model.predict_on_batch(x[:, :5]), model.predict_on_batch(x[:, 5:])]
    np.testing.assert_allclose(np.concatenate(halves, axis=1), expected, atol=TOLERANCE)
    stateful.reset_state()
    np.testing.assert_allclose(
        model.predict_on_batch(x[:, :5]), expected[:, :5], atol=TOLERANCE, rtol=TOLERANCE
    )


def test_initial_state_continues_a_sequence():
    x = random_sequences((2, 5, 3))
    layer = PeepholeLSTM(4, return_state=True)
    _, h, c = layer(x)
    _, continued_h, continued_c = layer(x, initial_state=[h, c])
    _, whole_h, whole_c = layer(np.concatenate([x, x], axis=1))
    np.testing.assert_allclose(continued_h, whole_h, atol=TOLERANCE, rtol=TOLERANCE)
    np.testing.assert_allclose(continued_c, whole_c, atol=TOLERANCE, rtol=TOLERANCE)


def test_unrolled_loop_equals_the_symbolic_loop():
    x = random_sequences((2, 5, 3))
    looped = PeepholeLSTM(4, return_sequences=True, return_state=True)
    unrolled = PeepholeLSTM(4, return_sequences=True, return_state=True, unroll=True)
    looped(x)
    unrolled(x)
    unrolled.set_weights(looped.get_weights())
    mask = np.array([[True] * 5, [False, True, True, True, False]])
    for actual, expected in zip(unrolled(x, mask=mask), looped(x, mask=mask), strict=True):
        np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=TOLERANCE)


# --- Arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"units": 0}, "units must be a positive integer, got 0"),
        ({"units": 4.0}, "units must be a positive integer, got 4.0"),
        ({"units": 4, "dropout": 1.0}, "dropout must be a float in \\[0, 1\\), got 1.0"),
        ({"units": 4, "recurrent_dropout": -0.1}, "recurrent_dropout must be a float"),
        ({"units": 4, "implementation": 3}, "implementation must be 1 or 2, got 3"),
        ({"units": 4, "implementation": True}, "implementation must be 1 or 2, got True"),
        ({"units": 4, "use_cudnn": "yes"}, "use_cudnn must be 'auto' or False, got 'yes'"),
        ({"units": 4, "use_cudnn": True}, "use_cudnn=True asks for cuDNN's LSTM kernel"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PeepholeLSTM(**kwargs)


def test_config_holds_the_cell_arguments_once():
    layer = PeepholeLSTM(3, peephole_initializer="zeros", dropout=0.1, name="peep")
    config = layer.get_config()
    assert "cell" not in config
    assert config["peephole_initializer"]["class_name"] == "Zeros"
    rebuilt = PeepholeLSTM.from_config(config)
    assert rebuilt.cell.dropout == 0.1
    assert rebuilt.get_config() == config


def test_unknown_argument_is_a_type_error_that_names_it():
    with pytest.raises(TypeError, match=r"PeepholeLSTM got unexpected .*'recurent_dropout'"):
        PeepholeLSTM(3, recurent_dropout=0.1)


def test_signature_lists_the_cell_and_rnn_arguments_with_their_defaults():
    # The layer takes the cell's arguments as **kwargs; help() and inspect still list them.
    parameters = inspect.signature(PeepholeLSTM).parameters
    assert list(parameters)[:3] == ["units", "activation", "recurrent_activation"]
    assert parameters["peephole_initializer"].default == "glorot_uniform"
    assert parameters["return_sequences"].default is False
    assert parameters["activity_regularizer"].default is None
    assert list(inspect.signature(PeepholeLSTMCell).parameters)[:2] == ["units", "activation"]


# --- keras.layers.LSTM's constructor --------------------------------------------------------


def test_takes_every_argument_of_keras_lstm_with_its_default():
    ours = inspect.signature(PeepholeLSTM).parameters
    theirs = inspect.signature(keras.layers.LSTM).parameters
    for name, parameter in theirs.items():
        assert name in ours, name
        assert ours[name].default == parameter.default, name
    # keras.layers.LSTM takes `implementation` through **kwargs, for its cell; so do ours.
    assert ours["implementation"].default == 2
    assert inspect.signature(PeepholeLSTMCell).parameters["implementation"].default == 2
    # All but units by keyword: a positional argument beyond it fails rather than land elsewhere.
    with pytest.raises(TypeError):
        PeepholeLSTM(4, "relu")


@pytest.mark.parametrize(
    "arguments",
    [{"implementation": 1}, {"implementation": 2}, {"use_cudnn": "auto"}, {"use_cudnn": False}],
    ids=["implementation_1", "implementation_2", "use_cudnn_auto", "use_cudnn_false"],
)
def test_lstm_performance_arguments_do_not_change_the_function(arguments):
    # In Keras both choose how the same function is computed; here the one loop computes it.
    x = random_sequences((2, 5, 3))
    plain = PeepholeLSTM(4, return_sequences=True)
    layer = PeepholeLSTM(4, return_sequences=True, **arguments)
    plain(x)
    layer(x)
    randomize_weights(plain, seed=6)
    layer.set_weights(plain.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), plain(x))
    config = layer.get_config()
    for name, value in arguments.items():
        assert config[name] == value
    assert PeepholeLSTM.from_config(config).get_config() == config


def test_configs_written_before_implementation_and_use_cudnn_still_load():
    config = PeepholeLSTM(3, return_sequences=True, name="peephole").get_config()
    older = {k: v for k, v in config.items() if k not in ("implementation", "use_cudnn")}
    assert PeepholeLSTM.from_config(older).get_config() == config
    cell_config = PeepholeLSTMCell(3, name="cell").get_config()
    older_cell = {k: v for k, v in cell_config.items() if k != "implementation"}
    assert PeepholeLSTMCell.from_config(older_cell).get_config() == cell_config
