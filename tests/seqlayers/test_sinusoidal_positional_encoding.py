"""SinusoidalPositionalEncoding and sinusoidal_encoding: the kit, the formula, masks, decoding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlayers.sinusoidal_positional_encoding import (
    SinusoidalPositionalEncoding,
    sinusoidal_encoding,
)
from tests.layer_checks import MaskReader, run_layer_checks


def reference_table(positions, depth, max_wavelength=10000):
    """PE(pos, 2i) = sin(pos / w^(2i/d)), PE(pos, 2i+1) = cos(pos / w^(2i/d)), in float64."""
    table = np.zeros((len(positions), depth))
    for feature in range(depth):
        angle = np.asarray(positions, "float64") / max_wavelength ** (2 * (feature // 2) / depth)
        table[:, feature] = np.sin(angle) if feature % 2 == 0 else np.cos(angle)
    return table


def float32_tolerance(positions):
    # Angles are float32: the error grows with the position (about 1.2e-7 * pos, see the
    # docstring); 2.5e-7 * pos leaves room for the sin/cos rounding itself.
    return 2.5e-7 * np.asarray(positions, "float64")[:, None] + 1e-6


def test_encoding_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        SinusoidalPositionalEncoding,
        {"max_wavelength": 500},
        input_shape=(None, 6),
        expected_output_shape=(None, 6),
        tmp_path=tmp_path,
        masking=True,
    )


@pytest.mark.parametrize(
    ("length", "depth", "start_index", "max_wavelength"),
    [(16, 8, 0, 10000), (4096, 64, 0, 10000), (3000, 33, 1000, 10000), (50, 7, 5, 100)],
)
def test_table_equals_the_formula(length, depth, start_index, max_wavelength):
    table = sinusoidal_encoding(length, depth, max_wavelength, start_index=start_index)
    positions = np.arange(length) + start_index
    expected = reference_table(positions, depth, max_wavelength)
    actual = keras.ops.convert_to_numpy(table)
    assert actual.shape == (length, depth) and actual.dtype == np.float32
    assert np.all(np.abs(actual - expected) <= float32_tolerance(positions))


def test_start_index_as_a_tensor_gives_the_same_rows_as_the_full_table():
    full = keras.ops.convert_to_numpy(sinusoidal_encoding(4000, 16))
    window = sinusoidal_encoding(5, 16, start_index=keras.ops.convert_to_tensor(3990))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(window), full[3990:3995], atol=1e-6)


def test_layer_adds_the_table_to_its_inputs():
    x = np.random.default_rng(0).standard_normal((2, 2500, 10)).astype("float32")
    outputs = keras.ops.convert_to_numpy(SinusoidalPositionalEncoding()(x))
    positions = np.arange(2500)
    difference = outputs - x - reference_table(positions, 10)[None]
    assert np.all(np.abs(difference) <= float32_tolerance(positions)[None] + 1e-6)


def test_start_index_continues_the_sequence_in_a_compiled_decoding_step():
    layer = SinusoidalPositionalEncoding()
    x = np.random.default_rng(1).standard_normal((2, 12, 8)).astype("float32")
    full = keras.ops.convert_to_numpy(layer(x))

    @tf.function(jit_compile=True)
    def encode_step(step_inputs, step):
        return layer(step_inputs, start_index=step)

    for step in (0, 5, 11):
        actual = encode_step(x[:, step : step + 1], tf.constant(step)).numpy()
        np.testing.assert_allclose(actual, full[:, step : step + 1], atol=1e-6)


def test_positions_count_valid_steps_and_the_mask_passes_through():
    # Post-padding: plain indices. Pre-padding: the first valid step is position 0.
    token_ids = np.array([[3, 4, 5, 0, 0], [0, 0, 7, 8, 9]])
    embedding = keras.layers.Embedding(10, 6, mask_zero=True, embeddings_initializer="zeros")
    outputs = SinusoidalPositionalEncoding()(embedding(token_ids))
    table = reference_table(np.arange(3), 6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs)[0, :3], table, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs)[1, 2:], table, atol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(MaskReader()(outputs)), token_ids > 0)


def test_mask_is_read_when_start_index_is_a_tensor():
    # With two tensor arguments Keras passes the mask as `inputs_mask`, not `mask`.
    embedding = keras.layers.Embedding(10, 4, mask_zero=True, embeddings_initializer="zeros")
    layer = SinusoidalPositionalEncoding()

    @tf.function
    def encode(token_ids, start_index):
        return layer(embedding(token_ids), start_index=start_index)

    outputs = encode(tf.constant([[0, 7, 8]]), tf.constant(4)).numpy()
    np.testing.assert_allclose(outputs[0, 1:], reference_table([4, 5], 4), atol=1e-6)


def test_long_sequences_stay_finite_under_mixed_precision():
    layer = SinusoidalPositionalEncoding(dtype="mixed_float16")
    outputs = layer(np.zeros((1, 8192, 32), "float32"), start_index=1000)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float16"
    values = keras.ops.convert_to_numpy(outputs).astype("float32")
    assert np.all(np.isfinite(values)) and np.abs(values).max() <= 1.0


@pytest.mark.parametrize("max_wavelength", [0, -5, "10000", True, None])
def test_invalid_max_wavelength_is_named(max_wavelength):
    with pytest.raises(ValueError, match="max_wavelength must be a positive number"):
        SinusoidalPositionalEncoding(max_wavelength=max_wavelength)
