"""TCNBlock and WeightNormalization: the layer kit, the equations, the receptive field."""

import keras
import numpy as np
import pytest

from seqlayers.tcn_block import TCNBlock, receptive_field
from seqlayers.weight_normalization import WeightNormalization
from tests.layer_checks import run_layer_checks


# One full kit per sublayer the block can build: each normalization, and the dropout (with the
# identity residual and "same" padding). Without normalization the block runs a subset of the
# ops the others export and compile, so it skips those two checks (see tests/layer_checks.py).
@pytest.mark.parametrize("normalization", ["weight", "layer", "batch", None])
def test_block_passes_the_layer_kit(tmp_path, normalization):
    run_layer_checks(
        TCNBlock,
        {"filters": 6, "kernel_size": 3, "dilation_rate": 2, "normalization": normalization},
        input_shape=(None, 4),
        expected_output_shape=(None, 6),
        tmp_path=tmp_path,
        masking=True,
        export_and_xla=normalization is not None,
    )


def test_block_with_same_padding_and_dropout_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        TCNBlock,
        {"filters": 5, "kernel_size": 2, "dilation_rate": 1, "padding": "same", "dropout": 0.2},
        input_shape=(None, 5),  # equal channel counts: identity residual
        expected_output_shape=(None, 5),
        tmp_path=tmp_path,
        masking=True,
    )


def test_weight_normalization_saves_and_loads_without_custom_objects(tmp_path):
    # The kit runs WeightNormalization inside TCNBlock(normalization="weight") above; here the
    # wrapper stands alone, as a user would put it around any layer with a kernel.
    inputs = keras.Input((None, 3))
    wrapper = WeightNormalization(keras.layers.Conv1D(4, 3, padding="causal"), epsilon=1e-9)
    model = keras.Model(inputs, wrapper(inputs))
    wrapper.magnitude.assign(np.arange(1, 5, dtype="float32"))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    x = np.random.default_rng(0).standard_normal((2, 9, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    clone = WeightNormalization.from_config(wrapper.get_config())
    assert clone.get_config() == wrapper.get_config()
    assert clone.epsilon == 1e-9


def weight_normalized_dense_model(units=8, input_size=5):
    inputs = keras.Input((input_size,))
    wrapper = WeightNormalization(keras.layers.Dense(units, name="dense"), name="wrapper")
    model = keras.Model(inputs, wrapper(inputs))
    rng = np.random.default_rng(3)
    wrapper.layer.kernel.assign(rng.standard_normal((input_size, units)).astype("float32"))
    wrapper.layer.bias.assign(rng.standard_normal(units).astype("float32"))
    wrapper.magnitude.assign(rng.uniform(0.5, 2.0, units).astype("float32"))
    return model, wrapper


def int8_abs_max(values, axis):
    """Keras' default int8 quantizer: ``(round(values * scale), scale)`` along ``axis``."""
    scale = 127 / (np.max(np.abs(values), axis=axis, keepdims=True) + keras.config.epsilon())
    return np.clip(np.round(values * scale), -127, 127), scale


@pytest.mark.filterwarnings("ignore:Layer InputLayer does not have")
def test_weight_normalization_of_a_dense_layer_quantizes_to_int8(tmp_path):
    model, wrapper = weight_normalized_dense_model()
    x = np.random.default_rng(4).standard_normal((16, 5)).astype("float32")
    float_outputs = model.predict(x, verbose=0)
    kernel = keras.ops.convert_to_numpy(wrapper.layer.kernel).astype("float64")
    bias = keras.ops.convert_to_numpy(wrapper.layer.bias)
    magnitude = keras.ops.convert_to_numpy(wrapper.magnitude)
    # Keras' own Dense holding the normalized kernel, quantized by Keras.
    reference_inputs = keras.Input((5,))
    dense = keras.layers.Dense(8)
    reference = keras.Model(reference_inputs, dense(reference_inputs))
    dense.set_weights([keras.ops.convert_to_numpy(wrapper.normalized_kernel()), bias])
    reference.quantize("int8")
    model.quantize("int8")

    assert wrapper.layer.kernel.dtype == "int8"
    outputs = model.predict(x, verbose=0)
    # Exactly w = g q / ||q|| on the int8 inputs that Keras' int8 Dense computes with.
    q, _ = int8_abs_max(kernel, axis=0)
    x_q, x_scale = int8_abs_max(x.astype("float64"), axis=-1)
    expected = (x_q @ q) / x_scale / (np.linalg.norm(q, axis=0) / magnitude) + bias
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    # Within int8 error of the float layer and of Keras' quantization of the normalized kernel.
    tolerance = 0.01 * np.max(np.abs(float_outputs))
    np.testing.assert_allclose(outputs, float_outputs, atol=tolerance)
    np.testing.assert_allclose(outputs, reference.predict(x, verbose=0), atol=tolerance)
    model.save(tmp_path / "quantized.keras")
    reloaded = keras.models.load_model(tmp_path / "quantized.keras")
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), outputs)
    assert reloaded.get_layer("wrapper").layer.kernel.dtype == "int8"


@pytest.mark.filterwarnings("ignore:Layer InputLayer does not have")
def test_weight_normalization_of_a_layer_quantized_otherwise_is_a_clear_error():
    model, _ = weight_normalized_dense_model()
    model.quantize("int4")
    with pytest.raises(NotImplementedError, match="its layer 'dense' is quantized to 'int4'"):
        model(np.zeros((1, 5), "float32"))


def causal_conv_reference(x, kernel, bias, dilation):
    """NumPy causal dilated convolution: y[t] = b + sum_j x[t - (k-1-j) d] @ W[j]."""
    batch, time, _ = x.shape
    kernel_size = kernel.shape[0]
    y = np.tile(bias, (batch, time, 1)).astype("float64")
    for t in range(time):
        for j in range(kernel_size):
            source = t - (kernel_size - 1 - j) * dilation
            if source >= 0:
                y[:, t] += x[:, source] @ kernel[j]
    return y


def test_block_computes_the_residual_equations_of_bai_et_al():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 11, 3)).astype("float32")
    block = TCNBlock(filters=4, kernel_size=3, dilation_rate=2, normalization="weight")
    block(x)
    for variable in block.trainable_weights:  # no zero biases, g != ||v||
        variable.assign(rng.standard_normal(variable.shape).astype("float32"))
    relu = lambda a: np.maximum(a, 0)  # noqa: E731

    def weight_normalized(wrapper):
        v = wrapper.layer.kernel.numpy()
        g = wrapper.magnitude.numpy()
        return g * v / np.sqrt(np.sum(v**2, axis=(0, 1)))

    hidden = x
    for conv in block.convolutions:
        kernel = weight_normalized(conv)
        hidden = relu(causal_conv_reference(hidden, kernel, conv.layer.bias.numpy(), 2))
    projection = block.residual_projection
    residual = x @ projection.kernel.numpy()[0] + projection.bias.numpy()
    expected = relu(residual + hidden)
    np.testing.assert_allclose(block(x).numpy(), expected, atol=1e-5, rtol=1e-5)


def test_weight_normalization_starts_as_the_plain_layer_and_splits_direction_and_length():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 3)).astype("float32")
    conv = keras.layers.Conv1D(4, 3, padding="causal")
    wrapped = WeightNormalization(conv)
    before = wrapped(x).numpy()
    np.testing.assert_allclose(before, conv(x).numpy(), atol=1e-6)
    # Scaling the direction v changes nothing: only g sets the length of each filter.
    conv.kernel.assign(conv.kernel.numpy() * 7.0)
    np.testing.assert_allclose(wrapped(x).numpy(), before, atol=1e-5)
    wrapped.magnitude.assign(wrapped.magnitude.numpy() * 2.0)
    bias = conv.bias.numpy()
    np.testing.assert_allclose(wrapped(x).numpy() - bias, 2.0 * (before - bias), atol=1e-5)


def test_weight_normalization_trains_direction_and_magnitude():
    conv = keras.layers.Conv1D(2, 3, padding="causal")
    model = keras.Sequential([keras.Input((5, 3)), WeightNormalization(conv)])
    model.compile("sgd", "mse")
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.train_on_batch(np.ones((2, 5, 3)), np.zeros((2, 5, 2)))
    names = [w.path for w in model.trainable_weights]
    assert any(name.endswith("magnitude") for name in names)
    for variable, old in zip(model.trainable_weights, before, strict=True):
        assert not np.array_equal(variable.numpy(), old), variable.path


def test_weight_normalization_rejects_a_layer_without_kernel():
    with pytest.raises(ValueError, match=r"needs a layer with a `kernel` variable.*Dropout"):
        WeightNormalization(keras.layers.Dropout(0.1))(np.zeros((1, 3, 2)))


@pytest.mark.parametrize(
    ("kernel_size", "dilation", "expected"), [(3, 1, 5), (3, 4, 17), (2, 8, 17), (5, 2, 17)]
)
def test_block_receptive_field_formula(kernel_size, dilation, expected):
    block = TCNBlock(filters=2, kernel_size=kernel_size, dilation_rate=dilation)
    assert block.receptive_field == expected == receptive_field(kernel_size, dilation)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"filters": 0}, "filters must be a positive integer, got 0"),
        ({"kernel_size": 2.5}, "kernel_size must be a positive integer, got 2.5"),
        ({"dilation_rate": -1}, "dilation_rate must be a positive integer, got -1"),
        ({"dropout": 1.0}, r"dropout must be a float in \[0, 1\), got 1.0"),
        ({"normalization": "group"}, "normalization must be one of .* got 'group'"),
        ({"padding": "valid"}, "padding must be one of .* got 'valid'"),
    ],
)
def test_block_rejects_bad_arguments_by_name(arguments, message):
    with pytest.raises(ValueError, match=message):
        TCNBlock(**{"filters": 4, "kernel_size": 3, "dilation_rate": 1, **arguments})
