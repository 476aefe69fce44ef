"""PositionEmbedding: the kit, the lookup, start_index, masks and the max_length error."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlayers.position_embedding import PositionEmbedding
from tests.layer_checks import MaskReader, run_layer_checks


def test_position_embedding_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        PositionEmbedding,
        {"max_length": 12},
        input_shape=(None, 5),
        expected_output_shape=(None, 5),
        tmp_path=tmp_path,
        masking=True,
    )


def built_layer(max_length=20, features=4):
    layer = PositionEmbedding(max_length)
    layer.build((None, None, features))
    table = np.random.default_rng(0).standard_normal((max_length, features)).astype("float32")
    layer.embeddings.assign(table)
    return layer, table


def test_outputs_are_inputs_plus_the_rows_of_their_positions():
    layer, table = built_layer()
    x = np.random.default_rng(1).standard_normal((3, 7, 4)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), x + table[:7], atol=1e-6)
    shifted = keras.ops.convert_to_numpy(layer(x, start_index=13))
    np.testing.assert_allclose(shifted, x + table[13:20], atol=1e-6)


def test_start_index_as_a_tensor_in_a_compiled_decoding_step():
    layer, table = built_layer()
    step = tf.function(lambda x, index: layer(x, start_index=index), jit_compile=True)
    x = np.ones((2, 1, 4), "float32")
    for index in (0, 9, 19):
        expected = np.broadcast_to(1 + table[index], (2, 1, 4))
        np.testing.assert_allclose(step(x, tf.constant(index)).numpy(), expected, atol=1e-6)


def test_positions_count_valid_steps_and_the_mask_passes_through():
    layer, table = built_layer(features=3)
    token_ids = np.array([[0, 0, 5, 6], [5, 6, 7, 0]])  # pre- and post-padded
    embedding = keras.layers.Embedding(10, 3, mask_zero=True, embeddings_initializer="zeros")
    outputs = layer(embedding(token_ids))
    values = keras.ops.convert_to_numpy(outputs)
    np.testing.assert_allclose(values[0, 2:], table[:2], atol=1e-6)
    np.testing.assert_allclose(values[1, :3], table[:3], atol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(MaskReader()(outputs)), token_ids > 0)


def test_sequences_beyond_max_length_raise_a_clear_error():
    layer, _ = built_layer(max_length=8)
    with pytest.raises(ValueError, match="max_length=8, got 9 steps starting at position 0"):
        layer(np.zeros((1, 9, 4), "float32"))
    with pytest.raises(ValueError, match="max_length=8, got 3 steps starting at position 6"):
        layer(np.zeros((1, 3, 4), "float32"), start_index=6)
    with pytest.raises(ValueError, match="max_length=8, got 10 steps"):
        PositionEmbedding(8)(keras.Input((10, 4)))


@pytest.mark.parametrize("max_length", [0, -1, 2.5, None, True])
def test_invalid_max_length_is_named(max_length):
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        PositionEmbedding(max_length)


def test_mixed_precision_keeps_the_table_in_float32():
    layer = PositionEmbedding(16, dtype="mixed_float16")
    outputs = layer(np.zeros((2, 16, 4), "float32"))
    assert keras.backend.standardize_dtype(outputs.dtype) == "float16"
    assert layer.embeddings.dtype == "float32"
