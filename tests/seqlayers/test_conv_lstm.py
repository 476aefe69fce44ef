"""ConvLSTM1D/2D/3D: the kit, keras.layers.ConvLSTM2D, a NumPy reference with peepholes."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlayers._lstm_base import PEEPHOLE_WEIGHT_NAMES
from seqlayers.conv_lstm import (
    ConvLSTM1D,
    ConvLSTM2D,
    ConvLSTM2DCell,
    ConvLSTM3D,
    ConvLSTMCell,
)
from tests.layer_checks import (
    LayerUnderTest,
    check_config_round_trip,
    check_export_in_fresh_process,
    check_jit_training_step,
    check_keras_file_round_trip,
    check_masking,
    check_output_shapes,
    run_layer_checks,
)
from tests.seqlayers.references import peephole_lstm_update

TOLERANCE = 1e-5


def same_padding(length, kernel_size, stride, dilation_rate):
    """(before, after) padding of TensorFlow's "same" convolution along one axis."""
    span = dilation_rate * (kernel_size - 1) + 1
    output_length = -(-length // stride)
    total = max((output_length - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


def numpy_conv2d(x, kernel, strides=(1, 1), padding="valid", dilation_rate=(1, 1)):
    """[batch, rows, cols, in] * [kr, kc, in, out] -> [batch, out_rows, out_cols, out]."""
    if padding == "same":
        pads = [
            same_padding(x.shape[axis + 1], kernel.shape[axis], strides[axis], dilation_rate[axis])
            for axis in range(2)
        ]
        x = np.pad(x, [(0, 0), *pads, (0, 0)])
    kernel_rows, kernel_cols = kernel.shape[:2]
    out_rows = (x.shape[1] - dilation_rate[0] * (kernel_rows - 1) - 1) // strides[0] + 1
    out_cols = (x.shape[2] - dilation_rate[1] * (kernel_cols - 1) - 1) // strides[1] + 1
    result = np.zeros((x.shape[0], out_rows, out_cols, kernel.shape[-1]))
    for i in range(kernel_rows):
        for j in range(kernel_cols):
            row, col = i * dilation_rate[0], j * dilation_rate[1]
            window = x[
                :,
                row : row + strides[0] * (out_rows - 1) + 1 : strides[0],
                col : col + strides[1] * (out_cols - 1) + 1 : strides[1],
            ]
            result += window @ kernel[i, j]
    return result


def numpy_conv_lstm2d(x, kernel, recurrent_kernel, bias, peepholes, **conv_arguments):
    """Shi et al. (2015), eq. 3, step by step on channels_last inputs: ``(outputs, h, c)``."""
    x = x.astype("float64")
    filters = recurrent_kernel.shape[-2]
    h = c = None
    outputs = []
    for t in range(x.shape[1]):
        z = numpy_conv2d(x[:, t], kernel, **conv_arguments) + bias
        if h is None:
            h = c = np.zeros((*z.shape[:-1], filters))
        z = z + numpy_conv2d(h, recurrent_kernel, padding="same")
        h, c = peephole_lstm_update(z, c, peepholes)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


def randomize_weights(layer, seed):
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign((0.4 * rng.standard_normal(variable.shape)).astype("float32"))


def numpy_weights(layer):
    cell = layer.cell
    arrays = [
        keras.ops.convert_to_numpy(w).astype("float64")
        for w in (cell.kernel, cell.recurrent_kernel, cell.bias)
    ]
    peepholes = tuple(
        keras.ops.convert_to_numpy(getattr(cell, name)).astype("float64")
        for name in PEEPHOLE_WEIGHT_NAMES
    )
    return (*arrays, peepholes)


def random_sequences(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


# --- The layer test kit ---------------------------------------------------------------------
# keras.layers.Masking flags pixels ([batch, time, rows, cols]) on 5D inputs; the layer reduces
# that to one flag per step, so the kit's Masking-based check applies unchanged.
#
# One kit check cannot run on masked sequence outputs: check_jit_training_step trains with
# "mse", whose per-pixel loss [batch, time, rows, cols] Keras cannot weight with the output's
# [batch, time] mask (Keras broadcasts a mask only against a loss of the same rank). For
# return_sequences=True the kit runs unmasked, and check_masking runs on its own.


def kit_subject(layer_cls, init_kwargs, input_shape, output_shapes):
    return LayerUnderTest(
        layer_cls=layer_cls,
        init_kwargs=init_kwargs,
        input_shapes=[input_shape],
        output_shapes=output_shapes,
        masking=True,
    )


def test_conv_lstm2d_with_peepholes_passes_the_layer_kit(tmp_path):
    init_kwargs = {
        "filters": 4,
        "kernel_size": 3,
        "padding": "same",
        "use_peepholes": True,
        "return_sequences": True,
        "dropout": 0.2,
        "recurrent_dropout": 0.2,
    }
    input_shape, output_shape = (None, 6, 5, 2), (None, 6, 5, 4)
    run_layer_checks(
        ConvLSTM2D,
        init_kwargs,
        input_shape=input_shape,
        expected_output_shape=output_shape,
        tmp_path=tmp_path,
    )
    check_masking(kit_subject(ConvLSTM2D, init_kwargs, input_shape, [output_shape]))


def test_strided_conv_lstm2d_with_states_passes_the_layer_kit(tmp_path):
    # valid padding, strides 2: rows (7 - 3) // 2 + 1 = 3, cols (6 - 2) // 2 + 1 = 3.
    run_layer_checks(
        ConvLSTM2D,
        {"filters": 3, "kernel_size": (3, 2), "strides": 2, "return_state": True},
        input_shape=(None, 7, 6, 2),
        expected_output_shape=[(3, 3, 3), (3, 3, 3), (3, 3, 3)],
        tmp_path=tmp_path,
        masking=True,
    )


@pytest.mark.slow
def test_conv_lstm1d_passes_the_layer_kit(tmp_path):
    init_kwargs = {"filters": 3, "kernel_size": 3, "use_peepholes": True, "return_sequences": True}
    input_shape, output_shape = (None, 8, 2), (None, 6, 3)
    run_layer_checks(
        ConvLSTM1D,
        init_kwargs,
        input_shape=input_shape,
        expected_output_shape=output_shape,
        tmp_path=tmp_path,
    )
    check_masking(kit_subject(ConvLSTM1D, init_kwargs, input_shape, [output_shape]))


@pytest.mark.slow
def test_conv_lstm3d_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        ConvLSTM3D,
        {"filters": 2, "kernel_size": 2, "padding": "same", "use_peepholes": True},
        input_shape=(None, 3, 4, 4, 2),
        expected_output_shape=(3, 4, 4, 2),
        tmp_path=tmp_path,
        masking=True,
    )


@pytest.mark.slow
def test_channels_first_conv_lstm2d_passes_the_layer_kit(tmp_path):
    # All checks but mixed_float16: TensorFlow's CPU convolutions run channels_first (NCHW) in
    # float32 only ("Conv2D ... only supports the NHWC tensor format"), for Keras' layers too.
    subject = kit_subject(
        ConvLSTM2D,
        {
            "filters": 3,
            "kernel_size": 3,
            "padding": "same",
            "data_format": "channels_first",
            "use_peepholes": True,
            "return_state": True,
        },
        input_shape=(None, 2, 5, 5),
        output_shapes=[(3, 5, 5)] * 3,
    )
    check_config_round_trip(subject)
    check_output_shapes(subject)
    check_keras_file_round_trip(subject, tmp_path / "keras_file")
    check_export_in_fresh_process(subject, tmp_path / "export")
    check_jit_training_step(subject)
    check_masking(subject)


# --- Numerical references -------------------------------------------------------------------


def ours_and_keras(x, filters, seed, **arguments):
    """``ConvLSTM2D(filters, 3)`` and ``keras.layers.ConvLSTM2D`` with the same random weights."""
    ours = ConvLSTM2D(filters, 3, **arguments)
    theirs = keras.layers.ConvLSTM2D(filters, 3, **arguments)
    ours(x)
    theirs(x)
    randomize_weights(ours, seed=seed)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


@pytest.mark.parametrize(
    "conv_arguments",
    [
        {"padding": "same"},
        {"padding": "valid", "strides": 2},
        {"padding": "same", "dilation_rate": 2},
        {"padding": "same", "use_bias": False},
    ],
    ids=["same", "valid_strided", "same_dilated", "without_bias"],
)
def test_without_peepholes_equals_keras_conv_lstm2d(conv_arguments):
    x = random_sequences((2, 4, 9, 8, 3))
    # An explicit [batch, time] mask: the second sequence is two steps long.
    mask = np.array([[True] * 4, [True, True, False, False]])
    arguments = {"return_sequences": True, "return_state": True, **conv_arguments}
    ours, theirs = ours_and_keras(x, 5, seed=1, **arguments)
    for actual, expected in zip(ours(x, mask=mask), theirs(x, mask=mask), strict=True):
        np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=TOLERANCE)


def outputs_and_gradients(layer, x, mask=None):
    """The layer's outputs and states, then the gradients of their sum of squares."""
    with tf.GradientTape() as tape:
        outputs = layer(x, mask=mask)
        loss = sum(tf.reduce_sum(tf.square(output)) for output in outputs)
    return [*outputs, *tape.gradient(loss, layer.trainable_weights)]


@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
def test_from_the_zero_state_equals_keras_conv_lstm2d(steps, go_backwards):
    # No initial state: the first step runs outside the loop, without the recurrent
    # convolution. Outputs, states and gradients must not change.
    x = random_sequences((2, steps, 6, 5, 3))
    arguments = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    ours, theirs = ours_and_keras(x, 4, seed=5, padding="same", **arguments)
    for actual, expected in zip(
        outputs_and_gradients(ours, x), outputs_and_gradients(theirs, x), strict=True
    ):
        np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-4)


MASKS = {
    # Full; valid at the first step only (post-padded, length 1); pre-padded.
    "padded": [[True] * 4, [True, False, False, False], [False, False, True, True]],
    # Gaps, and a sequence with no valid step at all.
    "gaps": [[False, True, False, True], [True, False, True, False], [False] * 4],
}


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["carried", "zeros"])
def test_masked_from_the_zero_state_equals_keras_conv_lstm2d(
    mask_name, go_backwards, zero_output_for_mask
):
    # A masked first step keeps the zero state; Keras' loop repeats the previous output at
    # masked steps (or outputs zeros), which the first step outside the loop must reproduce.
    x = random_sequences((3, 4, 6, 5, 3))
    mask = np.array(MASKS[mask_name])
    arguments = {
        "return_sequences": True,
        "return_state": True,
        "go_backwards": go_backwards,
        "zero_output_for_mask": zero_output_for_mask,
    }
    ours, theirs = ours_and_keras(x, 4, seed=6, padding="same", **arguments)
    for actual, expected in zip(
        outputs_and_gradients(ours, x, mask), outputs_and_gradients(theirs, x, mask), strict=True
    ):
        np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-4)
    last_only = {**arguments, "return_sequences": False}
    ours, theirs = ours_and_keras(x, 4, seed=6, padding="same", **last_only)
    for actual, expected in zip(ours(x, mask=mask), theirs(x, mask=mask), strict=True):
        np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["carried", "zeros"])
def test_unrolled_masked_equals_keras_unrolled(go_backwards, zero_output_for_mask):
    x = random_sequences((3, 4, 6, 5, 3))
    mask = np.array(MASKS["gaps"])
    arguments = {
        "return_sequences": True,
        "return_state": True,
        "go_backwards": go_backwards,
        "zero_output_for_mask": zero_output_for_mask,
        "unroll": True,
    }
    ours, theirs = ours_and_keras(x, 4, seed=7, padding="same", **arguments)
    for actual, expected in zip(ours(x, mask=mask), theirs(x, mask=mask), strict=True):
        np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=TOLERANCE)


def test_masked_model_with_unknown_batch_size_exports_and_serves(tmp_path):
    # The first step outside the loop must not need a known batch size (serving signatures
    # have none).
    x = random_sequences((2, 4, 5, 5, 2))
    x[1, 2:] = 0.0
    inputs = keras.Input((4, 5, 5, 2))
    layer = ConvLSTM2D(3, 3, padding="same", return_sequences=True, use_peepholes=True)
    model = keras.Model(inputs, layer(keras.layers.Masking(0.0)(inputs)))
    expected = keras.ops.convert_to_numpy(model(x))
    model.export(tmp_path / "export", verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "export"))
    served = reloaded.serve(tf.constant(x))
    np.testing.assert_allclose(served, expected, atol=TOLERANCE, rtol=TOLERANCE)
    # Past the second sequence's last valid step its outputs repeat that step's.
    np.testing.assert_allclose(expected[1, 2:], np.stack([expected[1, 1]] * 2), atol=TOLERANCE)


def test_first_step_from_the_zero_state_makes_no_recurrent_convolution():
    # A NaN recurrent kernel poisons every step that convolves h; the first step from the
    # zero state does not, with or without a mask, unless an initial state comes in.
    x = random_sequences((2, 3, 5, 5, 2))
    for go_backwards in (False, True):
        layer = ConvLSTM2D(3, 3, padding="same", return_sequences=True, go_backwards=go_backwards)
        layer(x)
        layer.cell.recurrent_kernel.assign(np.full(layer.cell.recurrent_kernel.shape, np.nan))
        for mask in (None, np.ones((2, 3), bool)):
            outputs = keras.ops.convert_to_numpy(layer(x, mask=mask))
            assert np.isfinite(outputs[:, 0]).all()
            assert np.isnan(outputs[:, 1:]).all()
    zeros = np.zeros((2, 5, 5, 3), "float32")
    assert np.isnan(keras.ops.convert_to_numpy(layer(x, initial_state=[zeros, zeros]))).all()


def test_one_by_one_kernel_is_a_peephole_lstm_per_pixel():
    # With a 1x1 kernel every pixel is an independent peephole LSTM over its channels.
    x = random_sequences((2, 5, 3, 4, 3))
    layer = ConvLSTM2D(6, 1, use_peepholes=True, return_sequences=True, return_state=True)
    layer(x)
    randomize_weights(layer, seed=2)
    kernel, recurrent_kernel, bias, peepholes = numpy_weights(layer)
    kernel, recurrent_kernel = kernel[0, 0], recurrent_kernel[0, 0]
    h = c = np.zeros((2, 3, 4, 6))
    expected_outputs = []
    for t in range(5):
        z = x[:, t].astype("float64") @ kernel + h @ recurrent_kernel + bias
        h, c = peephole_lstm_update(z, c, peepholes)
        expected_outputs.append(h)
    outputs, final_h, final_c = layer(x)
    np.testing.assert_allclose(outputs, np.stack(expected_outputs, 1), atol=TOLERANCE)
    np.testing.assert_allclose(final_h, h, atol=TOLERANCE, rtol=TOLERANCE)
    np.testing.assert_allclose(final_c, c, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize(
    "conv_arguments",
    [{"padding": "same"}, {"padding": "valid", "strides": (2, 1)}],
    ids=["same", "valid_strided"],
)
def test_peepholes_match_numpy_reference(conv_arguments):
    x = random_sequences((2, 4, 7, 6, 2))
    layer = ConvLSTM2D(
        3, 3, use_peepholes=True, return_sequences=True, return_state=True, **conv_arguments
    )
    layer(x)
    randomize_weights(layer, seed=3)
    strides = conv_arguments.get("strides", 1)
    expected = numpy_conv_lstm2d(
        x,
        *numpy_weights(layer),
        padding=conv_arguments["padding"],
        strides=strides if isinstance(strides, tuple) else (strides, strides),
    )
    for actual, reference in zip(layer(x), expected, strict=True):
        np.testing.assert_allclose(actual, reference, atol=TOLERANCE, rtol=TOLERANCE)


def test_channels_first_equals_channels_last():
    x = random_sequences((2, 3, 5, 6, 2))
    last = ConvLSTM2D(4, 3, padding="same", use_peepholes=True, return_sequences=True)
    first = ConvLSTM2D(
        4,
        3,
        padding="same",
        use_peepholes=True,
        return_sequences=True,
        data_format="channels_first",
    )
    channels_first_x = np.moveaxis(x, -1, 2)
    last(x)
    first(channels_first_x)
    randomize_weights(last, seed=4)
    first.set_weights(last.get_weights())
    np.testing.assert_allclose(
        np.moveaxis(keras.ops.convert_to_numpy(first(channels_first_x)), 2, -1),
        last(x),
        atol=TOLERANCE,
        rtol=TOLERANCE,
    )


def test_the_four_gates_come_from_one_convolution_per_input():
    # keras.layers.ConvLSTM2D makes 8 convolutions per step (4 of x, 4 of h), of `filters`
    # channels each; here there are 2, of 4 * filters channels.
    filters = 3
    cell = ConvLSTM2DCell(filters, 3, padding="same", use_peepholes=True)
    cell.build((None, 5, 5, 2))

    @tf.function
    def one_step(x, h, c):
        return cell(x, [h, c])

    state_spec = tf.TensorSpec((2, 5, 5, filters))
    graph = one_step.get_concrete_function(
        tf.TensorSpec((2, 5, 5, 2)), state_spec, state_spec
    ).graph
    convolutions = [op for op in graph.get_operations() if op.type.startswith("Conv")]
    assert len(convolutions) == 2
    assert [op.outputs[0].shape[-1] for op in convolutions] == [4 * filters, 4 * filters]


# --- Masks, dropout, state, direction -------------------------------------------------------


def test_pixel_mask_from_masking_equals_step_mask():
    x = random_sequences((2, 5, 4, 4, 2))
    x[1, 3:] = 0.0
    layer = ConvLSTM2D(3, 3, use_peepholes=True, return_sequences=True)
    masked = layer(keras.layers.Masking(0.0)(x))
    explicit = layer(x, mask=np.array([[True] * 5, [True] * 3 + [False] * 2]))
    np.testing.assert_allclose(masked, explicit, atol=TOLERANCE, rtol=TOLERANCE)
    mask = layer.compute_mask(x, keras.ops.not_equal(x, 0.0)[..., 0])
    np.testing.assert_array_equal(mask, [[True] * 5, [True] * 3 + [False] * 2])


def test_dropout_only_in_training():
    x = random_sequences((2, 4, 5, 5, 2))
    layer = ConvLSTM2D(3, 3, use_peepholes=True, dropout=0.5, recurrent_dropout=0.5)
    inference = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_array_equal(inference, keras.ops.convert_to_numpy(layer(x)))
    first, second = (keras.ops.convert_to_numpy(layer(x, training=True)) for _ in range(2))
    assert not np.allclose(first, inference)
    assert not np.allclose(first, second)


def test_go_backwards_reads_the_reversed_sequence():
    x = random_sequences((2, 4, 5, 5, 2))
    backwards = ConvLSTM2D(3, 3, use_peepholes=True, go_backwards=True, return_sequences=True)
    forwards = ConvLSTM2D(3, 3, use_peepholes=True, return_sequences=True)
    backwards(x)
    forwards(x)
    forwards.set_weights(backwards.get_weights())
    np.testing.assert_allclose(backwards(x), forwards(x[:, ::-1]), atol=TOLERANCE, rtol=TOLERANCE)


def test_stateful_layer_carries_states_between_batches():
    x = random_sequences((2, 6, 4, 4, 2))
    stateful = ConvLSTM2D(3, 3, padding="same", use_peepholes=True, stateful=True)
    whole = ConvLSTM2D(3, 3, padding="same", use_peepholes=True)
    inputs = keras.Input(batch_shape=(2, None, 4, 4, 2))
    model = keras.Model(inputs, stateful(inputs))
    whole(x)
    stateful.set_weights(whole.get_weights())
    model.predict_on_batch(x[:, :4])
    np.testing.assert_allclose(
        model.predict_on_batch(x[:, 4:]), whole(x), atol=TOLERANCE, rtol=TOLERANCE
    )


def test_bidirectional_conv_lstm2d():
    x = random_sequences((2, 3, 4, 4, 2))
    layer = keras.layers.Bidirectional(
        ConvLSTM2D(3, 3, padding="same", use_peepholes=True, return_sequences=True)
    )
    assert layer(x).shape == (2, 3, 4, 4, 6)


@pytest.mark.parametrize(
    ("layer_cls", "input_shape", "expected_shape"),
    [
        (ConvLSTM1D, (2, 3, 9, 2), (2, 9, 4)),
        (ConvLSTM3D, (2, 3, 3, 4, 5, 2), (2, 3, 4, 5, 4)),
    ],
)
def test_other_ranks(layer_cls, input_shape, expected_shape):
    layer = layer_cls(4, 3, padding="same", use_peepholes=True)
    assert layer(np.zeros(input_shape, "float32")).shape == expected_shape
    assert layer.compute_output_shape(input_shape) == expected_shape
    assert "rank" not in layer.get_config()


def test_plain_keras_rnn_runs_the_cell():
    x = random_sequences((2, 3, 5, 5, 2))
    layer = ConvLSTM2D(3, 3, use_peepholes=True)
    rnn = keras.layers.RNN(ConvLSTMCell(2, 3, 3, use_peepholes=True))
    layer(x)
    rnn(x)
    rnn.set_weights(layer.get_weights())
    np.testing.assert_allclose(rnn(x), layer(x), atol=TOLERANCE, rtol=TOLERANCE)


# --- Arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filters": 0, "kernel_size": 3}, "filters must be a positive integer, got 0"),
        ({"filters": 2, "kernel_size": (3, 3, 3)}, "kernel_size must be a positive integer"),
        ({"filters": 2, "kernel_size": 3, "padding": "causal"}, "padding must be one of"),
        (
            {"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2},
            # Keras' wording (its own tests match it), with the values received.
            r"Specifying `strides > 1` is not compatible with `dilation_rate > 1`, got "
            r"strides=2 and dilation_rate=2",
        ),
        ({"filters": 2, "kernel_size": 3, "data_format": "NHWC"}, "data_format must be one of"),
        ({"filters": 2, "kernel_size": 3, "dropout": 1.5}, "dropout must be a float in"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConvLSTM2D(**kwargs)


def test_input_too_small_for_the_kernel_is_reported():
    with pytest.raises(ValueError, match="too small"):
        ConvLSTM2D(2, 5)(np.zeros((1, 2, 3, 3, 1), "float32"))


def test_rank_subclasses_take_every_argument_but_rank():
    for layer_cls in (ConvLSTM2D, ConvLSTM2DCell):
        parameters = inspect.signature(layer_cls).parameters
        assert list(parameters)[:3] == ["filters", "kernel_size", "strides"]
        assert "rank" not in parameters
        assert parameters["use_peepholes"].default is False
    assert "return_state" in inspect.signature(ConvLSTM2D).parameters
    assert "rank" not in ConvLSTM2DCell(2, 3).get_config()
    assert ConvLSTMCell(2, 2, 3).get_config()["rank"] == 2


def test_unknown_argument_is_a_type_error_that_names_it():
    with pytest.raises(TypeError, match=r"ConvLSTM2D got unexpected .*'use_peephole'"):
        ConvLSTM2D(2, 3, use_peephole=True)
