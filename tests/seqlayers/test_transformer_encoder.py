"""TransformerEncoder: the kit, the block equations against Keras built-ins, masks, arguments."""

import keras
import numpy as np
import pytest

from seqlayers.transformer_encoder import TransformerEncoder
from tests.layer_checks import run_layer_checks
from tests.seqlayers.references import keras_dense_copy, keras_layer_norm_copy


def test_post_norm_encoder_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        TransformerEncoder,
        {"intermediate_dim": 12, "num_heads": 2},
        input_shape=(None, 8),
        expected_output_shape=(None, 8),
        tmp_path=tmp_path,
        masking=True,
    )


def test_pre_norm_encoder_with_dropout_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        TransformerEncoder,
        {
            "intermediate_dim": 12,
            "num_heads": 4,
            "dropout": 0.1,
            "activation": "gelu",
            "normalize_first": True,
        },
        input_shape=(None, 8),
        expected_output_shape=(None, 8),
        tmp_path=tmp_path,
        masking=True,
    )


def randomized_encoder(features=8, **kwargs):
    encoder = TransformerEncoder(**{"intermediate_dim": 12, "num_heads": 2, **kwargs})
    encoder.build((None, None, features))
    rng = np.random.default_rng(3)
    for variable in encoder.trainable_weights:
        variable.assign(rng.standard_normal(variable.shape).astype("float32") * 0.5)
    return encoder


def keras_reference(encoder, x, value_mask=None):
    """The block equations with Keras's own layers, holding the encoder's weights."""
    attention = keras.layers.MultiHeadAttention(encoder.num_heads, key_dim=x.shape[-1] // 2)
    attention(x, x)
    attention.set_weights(encoder.self_attention.get_weights())

    def norm(ours):
        return keras_layer_norm_copy(ours, encoder.layer_norm_epsilon, x.shape)

    attention_norm, feedforward_norm = (
        norm(encoder.self_attention_norm),
        norm(encoder.feedforward_norm),
    )
    intermediate = keras_dense_copy(encoder.intermediate_dense, encoder.activation)
    output = keras_dense_copy(encoder.output_dense)

    def self_attention(h):
        return attention(h, h, value_mask=value_mask)

    if encoder.normalize_first:
        h = x + self_attention(attention_norm(x))
        return h + output(intermediate(feedforward_norm(h)))
    h = attention_norm(x + self_attention(x))
    return feedforward_norm(h + output(intermediate(h)))


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_computes_the_block_equations(normalize_first):
    encoder = randomized_encoder(normalize_first=normalize_first)
    x = np.random.default_rng(0).standard_normal((2, 7, 8)).astype("float32")
    value_mask = np.array([[1] * 7, [1] * 4 + [0] * 3], bool)
    expected = keras.ops.convert_to_numpy(keras_reference(encoder, x, value_mask))
    # Keys masked only (every query sees a key), so the two agree on every row.
    attention = encoder.self_attention
    actual = keras.ops.convert_to_numpy(encoder(x, attention_mask=value_mask[:, None, :]))
    np.testing.assert_allclose(actual, expected, atol=2e-5)
    assert attention.key_dim == 4


def test_explicit_padding_mask_equals_the_keras_mask():
    token_ids = np.array([[5, 3, 2, 0, 0], [1, 2, 3, 4, 5]])
    embedding = keras.layers.Embedding(10, 8, mask_zero=True)
    encoder = randomized_encoder()
    embedded = embedding(token_ids)
    implicit = keras.ops.convert_to_numpy(encoder(embedded))
    explicit = keras.ops.convert_to_numpy(
        encoder(keras.ops.convert_to_tensor(embedded.numpy()), padding_mask=token_ids > 0)
    )
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    alone = keras.ops.convert_to_numpy(encoder(embedding(token_ids[:1, :3])))
    np.testing.assert_allclose(implicit[:1, :3], alone, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"intermediate_dim": 0, "num_heads": 2}, "intermediate_dim must be a positive integer"),
        ({"intermediate_dim": 8, "num_heads": 2.0}, "num_heads must be a positive integer"),
        ({"intermediate_dim": 8, "num_heads": 2, "dropout": -0.1}, "dropout must be a float"),
        ({"intermediate_dim": 8, "num_heads": 2, "layer_norm_epsilon": 0}, "layer_norm_epsilon"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransformerEncoder(**kwargs)


def test_feature_size_must_split_across_heads():
    with pytest.raises(ValueError, match="feature size 10 must be divisible by num_heads=4"):
        TransformerEncoder(intermediate_dim=8, num_heads=4)(np.zeros((1, 3, 10), "float32"))
