"""TransformerDecoder: the kit, the block equations, encoder masks and cached decoding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlayers.position_embedding import PositionEmbedding
from seqlayers.transformer_decoder import TransformerDecoder
from seqlayers.transformer_encoder import TransformerEncoder
from tests.layer_checks import run_layer_checks
from tests.seqlayers.references import keras_dense_copy, keras_layer_norm_copy

# === The layer kit ===


def test_decoder_with_cross_attention_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        TransformerDecoder,
        {"intermediate_dim": 12, "num_heads": 2},
        input_shape=[(None, 8), (None, 6)],  # (decoder sequence, encoder sequence)
        expected_output_shape=(None, 8),
        tmp_path=tmp_path,
        masking=True,
    )


def test_pre_norm_decoder_only_block_with_dropout_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        TransformerDecoder,
        {"intermediate_dim": 12, "num_heads": 4, "dropout": 0.1, "normalize_first": True},
        input_shape=(None, 8),
        expected_output_shape=(None, 8),
        tmp_path=tmp_path,
        masking=True,
    )


# === The block equations ===


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def randomized_decoder(with_encoder=True, features=8, encoder_features=6, **kwargs):
    decoder = TransformerDecoder(**{"intermediate_dim": 12, "num_heads": 2, **kwargs})
    decoder.build((None, None, features), (None, None, encoder_features) if with_encoder else None)
    rng = np.random.default_rng(3)
    for variable in decoder.trainable_weights:
        variable.assign(rng.standard_normal(variable.shape).astype("float32") * 0.5)
    return decoder


def keras_reference(decoder, x, encoder_sequence, encoder_mask):
    """The block equations with Keras's own layers, holding the decoder's weights."""

    def attention(ours, value):
        reference = keras.layers.MultiHeadAttention(ours.num_heads, ours.key_dim)
        reference(x, value)
        reference.set_weights(ours.get_weights())
        return reference

    def norm(ours):
        return keras_layer_norm_copy(ours, decoder.layer_norm_epsilon, x.shape)

    self_attention = attention(decoder.self_attention, x)
    cross_attention = attention(decoder.cross_attention, encoder_sequence)
    norms = [
        norm(decoder.self_attention_norm),
        norm(decoder.cross_attention_norm),
        norm(decoder.feedforward_norm),
    ]
    intermediate = keras_dense_copy(decoder.intermediate_dense, decoder.activation)
    output = keras_dense_copy(decoder.output_dense)
    sub_blocks = [
        lambda h: self_attention(h, h, use_causal_mask=True),
        lambda h: cross_attention(h, encoder_sequence, value_mask=encoder_mask),
        lambda h: output(intermediate(h)),
    ]
    h = x
    for sub_block, layer_norm in zip(sub_blocks, norms, strict=True):
        if decoder.normalize_first:
            h = h + sub_block(layer_norm(h))
        else:
            h = layer_norm(h + sub_block(h))
    return h


@pytest.mark.parametrize("normalize_first", [False, True])
def test_decoder_computes_the_block_equations(normalize_first):
    decoder = randomized_decoder(normalize_first=normalize_first)
    x, encoder_sequence = random((2, 5, 8), 1), random((2, 7, 6), 2)
    encoder_mask = np.array([[1] * 7, [1] * 3 + [0] * 4], bool)
    expected = keras.ops.convert_to_numpy(
        keras_reference(decoder, x, encoder_sequence, encoder_mask)
    )
    actual = decoder(x, encoder_sequence, encoder_padding_mask=encoder_mask)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(actual), expected, atol=2e-5)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_cross_attention_scores_are_those_of_the_block_equations(normalize_first):
    decoder = randomized_decoder(normalize_first=normalize_first)
    x, encoder_sequence = random((2, 5, 8), 1), random((2, 7, 6), 2)
    encoder_mask = np.array([[1] * 7, [1] * 3 + [0] * 4], bool)
    # The Keras reference of the first two sub-blocks, then its cross-attention's scores.
    self_attention = keras.layers.MultiHeadAttention(2, decoder.self_attention.key_dim)
    self_attention(x, x)
    self_attention.set_weights(decoder.self_attention.get_weights())
    cross_attention = keras.layers.MultiHeadAttention(2, decoder.cross_attention.key_dim)
    cross_attention(x, encoder_sequence)
    cross_attention.set_weights(decoder.cross_attention.get_weights())
    norms = [
        keras_layer_norm_copy(norm, decoder.layer_norm_epsilon, x.shape)
        for norm in (decoder.self_attention_norm, decoder.cross_attention_norm)
    ]
    if normalize_first:
        h = norms[0](x)
        h = x + self_attention(h, h, use_causal_mask=True)
        query = norms[1](h)
    else:
        query = norms[0](x + self_attention(x, x, use_causal_mask=True))
    _, expected = cross_attention(
        query, encoder_sequence, value_mask=encoder_mask, return_attention_scores=True
    )
    scores = keras.ops.convert_to_numpy(
        decoder.cross_attention_scores(x, encoder_sequence, encoder_padding_mask=encoder_mask)
    )
    assert scores.shape == (2, 2, 5, 7)
    np.testing.assert_allclose(scores, keras.ops.convert_to_numpy(expected), atol=2e-5)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
    assert np.all(scores[1, :, :, 3:] == 0)


# === Masks ===


def test_cross_attention_ignores_padded_encoder_steps():
    decoder = randomized_decoder(encoder_features=8)
    embedding = keras.layers.Embedding(20, 8, mask_zero=True)
    x = random((2, 4, 8))
    source_ids = np.array([[3, 4, 5, 0, 0, 0], [7, 8, 9, 10, 11, 0]])
    padded = keras.ops.convert_to_numpy(decoder(x, embedding(source_ids)))
    # Each example alone, unpadded: the same outputs.
    for row, length in enumerate((3, 5)):
        alone = decoder(x[row : row + 1], embedding(source_ids[row : row + 1, :length]))
        np.testing.assert_allclose(padded[row : row + 1], alone, atol=1e-5)
    # The explicit mask, with garbage in the padded encoder steps: the same outputs.
    garbage = keras.ops.convert_to_numpy(embedding(source_ids)).copy()
    garbage[source_ids == 0] = 50.0
    explicit = decoder(x, garbage, encoder_padding_mask=source_ids > 0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(explicit), padded, atol=1e-5)


def test_outputs_before_a_step_do_not_depend_on_it():
    decoder = randomized_decoder()
    x, encoder_sequence = random((2, 6, 8), 1), random((2, 4, 6), 2)
    before = keras.ops.convert_to_numpy(decoder(x, encoder_sequence))
    changed = x.copy()
    changed[:, 3:] = random((2, 3, 8), 9)
    after = keras.ops.convert_to_numpy(decoder(changed, encoder_sequence))
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-6)
    assert not np.allclose(after[:, 3], before[:, 3])


# === Cached incremental decoding ===


def decode_step_by_step(decoder, x, encoder_sequence=None, encoder_mask=None):
    """Feeds ``x`` one step at a time through the caches, in one XLA-compiled loop."""
    batch, length, features = x.shape

    @tf.function(jit_compile=True)
    def decode(x, encoder_sequence):
        with_encoder = encoder_sequence is not None

        def step(index, state):
            outputs, self_cache, *cross_cache = state
            token = keras.ops.slice(x, [0, index, 0], [batch, 1, features])
            results = decoder(
                token,
                encoder_sequence,
                encoder_padding_mask=encoder_mask,
                self_attention_cache=self_cache,
                self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache[0] if with_encoder else None,
            )
            output, *caches = results
            outputs = keras.ops.slice_update(outputs, [0, index, 0], output)
            return (outputs, *caches)

        state = (keras.ops.zeros_like(x), decoder.empty_self_attention_cache(batch, length))
        if with_encoder:
            state += (decoder.compute_cross_attention_cache(encoder_sequence),)
        return keras.ops.fori_loop(0, length, step, state)[0]

    return decode(x, encoder_sequence).numpy()


@pytest.mark.parametrize("normalize_first", [False, True])
def test_cached_decoding_equals_the_full_causal_pass(normalize_first):
    decoder = randomized_decoder(normalize_first=normalize_first)
    x, encoder_sequence = random((2, 9, 8), 1), random((2, 5, 6), 2)
    encoder_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    full = decoder(x, encoder_sequence, encoder_padding_mask=encoder_mask)
    # Garbage in the padded encoder steps: the cached cross-attention must mask them too.
    garbage = encoder_sequence.copy()
    garbage[~encoder_mask] = 50.0
    cached = decode_step_by_step(decoder, x, garbage, encoder_mask)
    np.testing.assert_allclose(cached, keras.ops.convert_to_numpy(full), atol=1e-5)


def test_cached_decoding_without_cross_attention_equals_the_full_pass():
    decoder = randomized_decoder(with_encoder=False)
    x = random((3, 7, 8))
    full = keras.ops.convert_to_numpy(decoder(x))
    np.testing.assert_allclose(decode_step_by_step(decoder, x), full, atol=1e-5)


def test_eager_cached_steps_compute_the_cross_attention_cache_when_missing():
    decoder = randomized_decoder()
    x, encoder_sequence = random((1, 4, 8), 1), random((1, 3, 6), 2)
    full = keras.ops.convert_to_numpy(decoder(x, encoder_sequence))
    cache = decoder.empty_self_attention_cache(1, 4)
    memory = None
    for index in range(4):
        output, cache, memory = decoder(
            x[:, index : index + 1],
            encoder_sequence,
            self_attention_cache=cache,
            self_attention_cache_update_index=index,
            cross_attention_cache=memory,
        )
        np.testing.assert_allclose(output, full[:, index : index + 1], atol=1e-5)
    assert tuple(memory.shape) == (1, 2, 3, 2, 4)


def test_greedy_generation_with_the_cache_picks_the_same_tokens():
    vocabulary, width, length = 11, 8, 6
    embedding = keras.layers.Embedding(vocabulary, width)
    positions = PositionEmbedding(max_length=length)
    decoder = randomized_decoder(with_encoder=False, features=width)
    logits = keras.layers.Dense(vocabulary)
    start = np.array([[1], [2]])

    def next_token(tokens):  # recomputes the whole prefix
        hidden = decoder(positions(embedding(tokens)))
        return np.argmax(keras.ops.convert_to_numpy(logits(hidden[:, -1])), axis=-1)[:, None]

    tokens = start
    for _ in range(length - 1):
        tokens = np.concatenate([tokens, next_token(tokens)], axis=1)

    cache, token, cached_tokens = decoder.empty_self_attention_cache(2, length), start, [start]
    for index in range(length - 1):
        hidden = positions(embedding(token), start_index=index)
        hidden, cache = decoder(
            hidden, self_attention_cache=cache, self_attention_cache_update_index=index
        )
        token = np.argmax(keras.ops.convert_to_numpy(logits(hidden[:, -1])), axis=-1)[:, None]
        cached_tokens.append(token)
    np.testing.assert_array_equal(np.concatenate(cached_tokens, axis=1), tokens)


# === Quantization ===


def translation_model():
    """Shared embeddings, an encoder block, a decoder block with cross-attention, logits."""
    source, target = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    embedding = keras.layers.Embedding(20, 8, mask_zero=True)
    encoded = TransformerEncoder(12, 2)(embedding(source))
    decoded = TransformerDecoder(12, 2)(embedding(target), encoded)
    return keras.Model([source, target], keras.layers.Dense(20)(decoded))


def test_model_quantize_int8_quantizes_every_kernel_and_the_keras_file_keeps_it(tmp_path):
    model = translation_model()
    tokens = [np.array([[3, 4, 5, 0], [6, 7, 8, 9]]), np.array([[1, 2, 3], [4, 5, 0]])]
    float_outputs = model.predict_on_batch(tokens)
    model.quantize("int8")
    tables = [v for v in model.weights if v.path.endswith(("/kernel", "/embeddings"))]
    # The embedding, 4 + 2 kernels in the encoder, 8 + 2 in the decoder, the logits.
    assert len(tables) == 18
    assert [v.path for v in tables if v.dtype != "int8"] == []
    quantized = model.predict_on_batch(tokens)
    error = np.abs(quantized - float_outputs).max() / np.abs(float_outputs).max()
    assert 0 < error < 0.05, error

    model.save(tmp_path / "translation.keras")
    loaded = keras.models.load_model(tmp_path / "translation.keras")
    np.testing.assert_array_equal(loaded.predict_on_batch(tokens), quantized)
    assert [v.dtype for v in loaded.weights] == [v.dtype for v in model.weights]


def test_cached_decoding_of_a_quantized_decoder_equals_its_full_causal_pass():
    decoder = randomized_decoder()
    x, encoder_sequence = random((2, 6, 8), 1), random((2, 5, 6), 2)
    inputs = [keras.Input((None, 8)), keras.Input((None, 6))]
    keras.Model(inputs, decoder(*inputs)).quantize("int8")
    assert decoder.cross_attention.key_dense.quantization_mode == "int8"
    full = keras.ops.convert_to_numpy(decoder(x, encoder_sequence))
    np.testing.assert_allclose(decode_step_by_step(decoder, x, encoder_sequence), full, atol=1e-5)


# === Misuse ===


def test_cross_attention_is_fixed_at_build():
    x, encoder_sequence = random((1, 3, 8)), random((1, 2, 8))
    decoder_only = TransformerDecoder(intermediate_dim=8, num_heads=2)
    decoder_only(x)
    with pytest.raises(ValueError, match="built without cross-attention"):
        decoder_only(x, encoder_sequence)
    with pytest.raises(ValueError, match="built without cross-attention"):
        decoder_only.compute_cross_attention_cache(encoder_sequence)
    decoder = TransformerDecoder(intermediate_dim=8, num_heads=2)
    decoder(x, encoder_sequence)
    with pytest.raises(ValueError, match="pass encoder_sequence"):
        decoder(x)


def test_a_cache_without_its_index_is_refused():
    decoder = randomized_decoder(with_encoder=False)
    x = random((1, 1, 8))
    with pytest.raises(ValueError, match="needs self_attention_cache_update_index"):
        decoder(x, self_attention_cache=decoder.empty_self_attention_cache(1, 4))
