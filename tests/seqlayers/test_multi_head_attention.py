"""MultiHeadAttention: the kit, equality with Keras, mask semantics, precision and the cache."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlayers.multi_head_attention import MultiHeadAttention
from tests.layer_checks import MaskReader, run_layer_checks

# === The layer kit ===


def test_cross_attention_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        MultiHeadAttention,
        {"num_heads": 2, "key_dim": 4},
        input_shape=[(None, 8), (None, 6)],
        expected_output_shape=(None, 8),
        tmp_path=tmp_path,
        masking=True,
    )


def test_causal_attention_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        MultiHeadAttention,
        {"num_heads": 2, "key_dim": 4},
        input_shape=[(None, 8), (None, 8)],
        expected_output_shape=(None, 8),
        tmp_path=tmp_path,
        call_kwargs={"use_causal_mask": True},
        masking=True,
    )


def test_unfused_configuration_passes_the_layer_kit(tmp_path):
    # value_dim != key_dim and dropout take the explicit (non-fused) softmax path.
    run_layer_checks(
        MultiHeadAttention,
        {"num_heads": 3, "key_dim": 2, "value_dim": 5, "dropout": 0.2, "output_shape": 7},
        input_shape=[(None, 4), (None, 6)],
        expected_output_shape=(None, 7),
        tmp_path=tmp_path,
        call_kwargs={"use_causal_mask": True},
        masking=True,
    )


# === Equality with keras.layers.MultiHeadAttention ===


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def twin_layers(query, value, key=None, **init_kwargs):
    """Ours and Keras's, built on the same shapes, ours holding Keras's weights."""
    ours = MultiHeadAttention(**init_kwargs)
    theirs = keras.layers.MultiHeadAttention(**init_kwargs)
    ours(query, value, key)
    theirs(query, value, key)
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    rng = np.random.default_rng(7)  # non-zero biases too
    theirs.set_weights([rng.standard_normal(w.shape).astype("float32") for w in theirs.weights])
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def assert_same_results(ours, theirs, *inputs, rows=slice(None), **call_kwargs):
    for return_scores in (False, True):  # the fused path, then the explicit softmax
        actual = ours(*inputs, return_attention_scores=return_scores, **call_kwargs)
        expected = theirs(*inputs, return_attention_scores=return_scores, **call_kwargs)
        for a, e in zip(keras.tree.flatten(actual), keras.tree.flatten(expected), strict=True):
            a, e = keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(e)
            assert a.shape == e.shape
            if a.ndim == 4:  # scores (batch, heads, T, S)
                a, e = a[:, :, rows], e[:, :, rows]
            else:
                a, e = a[:, rows], e[:, rows]
            np.testing.assert_allclose(a, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "init_kwargs",
    [
        {"num_heads": 2, "key_dim": 4},
        {"num_heads": 3, "key_dim": 2, "value_dim": 5, "output_shape": (6,)},
        {"num_heads": 2, "key_dim": 3, "use_bias": False, "output_shape": 4},
    ],
)
def test_equals_keras_for_self_and_cross_attention(init_kwargs):
    query, value, key = random((2, 5, 8), 1), random((2, 7, 6), 2), random((2, 7, 3), 3)
    ours, theirs = twin_layers(query, value, key, **init_kwargs)
    assert_same_results(ours, theirs, query, value, key)  # cross-attention, separate key
    ours, theirs = twin_layers(query, query, **init_kwargs)
    assert_same_results(ours, theirs, query, query)  # self-attention
    assert_same_results(ours, theirs, query, query, use_causal_mask=True)


def test_equals_keras_with_an_attention_mask():
    query, value = random((2, 5, 8), 1), random((2, 7, 8), 2)
    attention_mask = np.random.default_rng(3).random((2, 5, 7)) > 0.4
    attention_mask[:, :, 2] = True  # no row fully masked: Keras treats those differently
    ours, theirs = twin_layers(query, value, num_heads=2, key_dim=4)
    assert_same_results(ours, theirs, query, value, attention_mask=attention_mask)
    causal = np.tril(np.ones((5, 5), bool))[None] & (np.arange(5) != 3)[None, None, :]
    causal[:, 0, 0] = True
    ours, theirs = twin_layers(query, query, num_heads=2, key_dim=4)
    assert_same_results(ours, theirs, query, query, attention_mask=causal, use_causal_mask=True)


def test_equals_keras_with_implicit_masks_from_embeddings():
    target_ids = np.array([[4, 2, 9, 0, 0], [3, 3, 1, 5, 8]])
    source_ids = np.array([[1, 2, 3, 4, 0, 0, 0], [6, 0, 0, 0, 0, 0, 0]])
    target_embedding = keras.layers.Embedding(10, 8, mask_zero=True)
    source_embedding = keras.layers.Embedding(10, 8, mask_zero=True)
    query, value = target_embedding(target_ids), source_embedding(source_ids)
    ours, theirs = twin_layers(query, value, num_heads=2, key_dim=4)
    # Keras gives padded query rows uniform attention, we give them zeros: compare valid rows.
    valid_rows = slice(0, 3)
    assert_same_results(ours, theirs, query, value, rows=valid_rows)
    ours, theirs = twin_layers(query, query, num_heads=2, key_dim=4)
    assert_same_results(ours, theirs, query, query, rows=valid_rows, use_causal_mask=True)

    # The same inside functional models: the masks travel with the symbolic tensors.
    targets, sources = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    models = [
        keras.Model(
            [targets, sources],
            layer(target_embedding(targets), source_embedding(sources), use_causal_mask=True),
        )
        for layer in twin_layers(query, value, num_heads=2, key_dim=4)
    ]
    actual, expected = (m.predict_on_batch([target_ids, source_ids]) for m in models)
    np.testing.assert_allclose(actual[:, :3], expected[:, :3], atol=1e-5)


def test_weights_have_the_keras_names_and_shapes():
    query, value = random((1, 3, 8)), random((1, 4, 6))
    ours, theirs = twin_layers(query, value, num_heads=2, key_dim=4, output_shape=(3, 5))
    short_path = lambda variable: variable.path.split("/", 1)[1]  # noqa: E731
    assert [short_path(v) for v in ours.weights] == [short_path(v) for v in theirs.weights]
    assert ours(query, value).shape == theirs(query, value).shape == (1, 3, 3, 5)


def test_scores_in_a_saved_functional_model(tmp_path):
    query, value = keras.Input((None, 8)), keras.Input((None, 6))
    output, scores = MultiHeadAttention(3, 4, output_shape=(2, 5))(
        query, value, return_attention_scores=True
    )
    assert tuple(output.shape) == (None, None, 2, 5)
    assert tuple(scores.shape) == (None, 3, None, None)
    model = keras.Model([query, value], [output, scores])
    model.save(tmp_path / "attention.keras")
    loaded = keras.models.load_model(tmp_path / "attention.keras")
    inputs = [random((2, 4, 8), 1), random((2, 9, 6), 2)]
    for actual, expected in zip(loaded(inputs), model(inputs), strict=True):
        np.testing.assert_array_equal(actual, expected)
    assert tuple(model(inputs)[1].shape) == (2, 3, 4, 9)


# === Mask semantics ===


def test_causal_outputs_before_a_step_do_not_depend_on_it():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    x = random((2, 9, 8))
    for return_scores in (False, True):
        before = keras.ops.convert_to_numpy(
            keras.tree.flatten(
                layer(x, x, use_causal_mask=True, return_attention_scores=return_scores)
            )[0]
        )
        for step in (0, 4, 8):
            changed = x.copy()
            changed[:, step:] += 10 * random((2, 9 - step, 8), step)
            after = keras.ops.convert_to_numpy(
                keras.tree.flatten(
                    layer(
                        changed,
                        changed,
                        use_causal_mask=True,
                        return_attention_scores=return_scores,
                    )
                )[0]
            )
            np.testing.assert_allclose(after[:, :step], before[:, :step], atol=1e-6)
            assert not np.allclose(after[:, step], before[:, step])


def test_padded_keys_get_exactly_zero_attention():
    layer = MultiHeadAttention(num_heads=3, key_dim=4)
    query, value = random((2, 4, 8), 1), random((2, 6, 8), 2)
    value_mask = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 1]], bool)
    _, scores = layer(query, value, value_mask=value_mask, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(scores)
    assert scores.shape == (2, 3, 4, 6)
    assert np.all(
        scores[:, :, :, :][np.broadcast_to(~value_mask[:, None, None], scores.shape)] == 0
    )
    np.testing.assert_allclose(scores.sum(axis=-1), 1, atol=1e-6)
    # Changing the padded values changes nothing.
    changed = value.copy()
    changed[~value_mask] = 100.0
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(query, changed, value_mask=value_mask)),
        keras.ops.convert_to_numpy(layer(query, value, value_mask=value_mask)),
        atol=1e-6,
    )


@pytest.mark.parametrize("return_scores", [False, True])
def test_query_rows_without_visible_keys_are_zero_never_nan(return_scores):
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    query, value = random((3, 4, 8), 1), random((3, 5, 8), 2)
    layer(query, value)
    for variable in layer.trainable_weights:  # non-zero output bias
        variable.assign(random(variable.shape, 5))
    query_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]], bool)
    value_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
    attention_mask = np.ones((3, 4, 5), bool)
    attention_mask[1, 3] = False  # one query row of example 1 sees nothing
    results = layer(
        query,
        value,
        query_mask=query_mask,
        value_mask=value_mask,
        attention_mask=attention_mask,
        return_attention_scores=return_scores,
    )
    output = keras.ops.convert_to_numpy(keras.tree.flatten(results)[0])
    assert np.all(np.isfinite(output))
    empty_rows = np.array([[0, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]], bool)
    assert np.all(output[empty_rows] == 0)
    assert np.all(np.abs(output[~empty_rows]).sum(axis=-1) > 0)
    if return_scores:
        scores = keras.ops.convert_to_numpy(results[1])
        assert np.all(scores.transpose(0, 2, 1, 3)[empty_rows] == 0)


def test_the_query_mask_is_passed_on():
    embedding = keras.layers.Embedding(10, 8, mask_zero=True)
    target_ids, source_ids = np.array([[1, 2, 0]]), np.array([[3, 0, 0, 0]])
    output = MultiHeadAttention(2, 4)(embedding(target_ids), embedding(source_ids))
    mask = keras.ops.convert_to_numpy(MaskReader()(output))
    np.testing.assert_array_equal(mask, target_ids > 0)


# === Mixed precision ===


def twin_mixed_and_float32_layers(x):
    mixed = MultiHeadAttention(num_heads=2, key_dim=8, dtype="mixed_float16")
    exact = MultiHeadAttention(num_heads=2, key_dim=8)
    exact(x, x)
    mixed(x, x)
    mixed.set_weights(exact.get_weights())
    return mixed, exact


def padded_causal_call(layer, x, return_scores):
    # The last 100 steps are padding: as keys (never attended) and as queries (rows with
    # nothing to attend to, where a float16 mask constant would give -inf - -inf = NaN).
    padding_mask = np.ones(x.shape[:2], bool)
    padding_mask[:, -100:] = False
    outputs = layer(
        x,
        x,
        query_mask=padding_mask,
        value_mask=padding_mask,
        use_causal_mask=True,
        return_attention_scores=return_scores,
    )
    return [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(outputs)]


@pytest.mark.parametrize("return_scores", [False, True])
def test_long_sequences_under_mixed_precision_match_float32(return_scores):
    x = random((1, 2048, 16))
    mixed, exact = twin_mixed_and_float32_layers(x)
    actual = padded_causal_call(mixed, x, return_scores)
    expected = padded_causal_call(exact, x, return_scores)
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == np.float16 and np.all(np.isfinite(a))
        np.testing.assert_allclose(a.astype("float32"), e, atol=0.02, rtol=0.02)


@pytest.mark.parametrize("return_scores", [False, True])
def test_large_logits_over_long_sequences_stay_finite_under_mixed_precision(return_scores):
    # Logits in the thousands, beyond float16's exp() range.
    x = 20 * random((1, 2048, 16))
    mixed, _ = twin_mixed_and_float32_layers(x)
    results = padded_causal_call(mixed, x, return_scores)
    for result in results:
        assert result.dtype == np.float16 and np.all(np.isfinite(result))
    if return_scores:
        row_sums = results[1].astype("float32").sum(axis=-1)  # [batch, heads, T]
        np.testing.assert_allclose(row_sums[:, :, :-100], 1, atol=1e-2)
        assert np.all(row_sums[:, :, -100:] == 0)
    assert np.all(results[0][:, -100:] == 0)


# === The decoding cache ===


def test_cached_step_by_step_attention_equals_the_full_causal_pass():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    x = random((2, 7, 8))
    full = keras.ops.convert_to_numpy(layer(x, x, use_causal_mask=True))
    cache = layer.empty_cache(batch_size=2, max_length=7)
    assert tuple(cache.shape) == (2, 2, 7, 2, 4)
    steps = []
    for step in range(7):
        token = x[:, step : step + 1]
        output, cache = layer(token, token, cache=cache, cache_update_index=step)
        steps.append(keras.ops.convert_to_numpy(output))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    # A prompt of 3 steps at once, then single steps.
    cache = layer.empty_cache(2, 7)
    prompt, cache = layer(x[:, :3], x[:, :3], cache=cache, cache_update_index=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(prompt), full[:, :3], atol=1e-5)
    output, scores, cache = layer(
        x[:, 3:4], x[:, 3:4], cache=cache, cache_update_index=3, return_attention_scores=True
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(output), full[:, 3:4], atol=1e-5)
    assert np.all(keras.ops.convert_to_numpy(scores)[..., 4:] == 0)  # empty slots unseen


def test_cached_decoding_of_a_pre_padded_batch_uses_an_attention_mask_over_slots():
    # The documented recipe: padding among earlier cached steps comes as attention_mask.
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    x = random((2, 5, 8))
    padding_mask = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]], bool)
    full = keras.ops.convert_to_numpy(
        layer(x, x, query_mask=padding_mask, value_mask=padding_mask, use_causal_mask=True)
    )
    cache = layer.empty_cache(2, 5)
    for step in range(5):
        token = x[:, step : step + 1]
        output, cache = layer(
            token,
            token,
            query_mask=padding_mask[:, step : step + 1],
            attention_mask=padding_mask[:, None, :],  # (batch, 1, cache slots)
            cache=cache,
            cache_update_index=step,
        )
        np.testing.assert_allclose(output, full[:, step : step + 1], atol=1e-5)


def test_cross_attention_cache_equals_projecting_the_source_every_time():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    query, source = random((2, 3, 8), 1), random((2, 6, 5), 2)
    source_mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    expected = keras.ops.convert_to_numpy(layer(query, source, value_mask=source_mask))
    cache = layer.compute_cache(source)
    output, returned = layer(query, None, value_mask=source_mask, cache=cache)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(output), expected, atol=1e-6)
    assert returned is cache


def test_cached_decoding_compiles_with_xla():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    length = 6
    x = random((2, length, 8))
    full = keras.ops.convert_to_numpy(layer(x, x, use_causal_mask=True))

    @tf.function(jit_compile=True)
    def decode(sequence):
        def step(index, state):
            cache, outputs = state
            token = keras.ops.slice(sequence, [0, index, 0], [2, 1, 8])
            output, cache = layer(token, token, cache=cache, cache_update_index=index)
            return cache, keras.ops.slice_update(outputs, [0, index, 0], output)

        state = (layer.empty_cache(2, length), keras.ops.zeros_like(sequence))
        return keras.ops.fori_loop(0, length, step, state)[1]

    np.testing.assert_allclose(decode(tf.constant(x)).numpy(), full, atol=1e-5)


def test_cache_misuse_is_reported():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3)
    with pytest.raises(ValueError, match="value_dim == key_dim"):
        layer.empty_cache(1, 4)
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    x = random((1, 2, 8))
    with pytest.raises(ValueError, match="without a cache"):
        layer(x, x, cache_update_index=0)


# === Arguments ===


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_heads": 0, "key_dim": 4}, "num_heads must be a positive integer, got 0"),
        ({"num_heads": 2, "key_dim": 4.0}, "key_dim must be a positive integer, got 4.0"),
        ({"num_heads": 2, "key_dim": 4, "value_dim": -1}, "value_dim must be"),
        ({"num_heads": 2, "key_dim": 4, "dropout": 1.0}, "dropout must be a float in"),
        ({"num_heads": 2, "key_dim": 4, "output_shape": (0,)}, "output_shape must be"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        MultiHeadAttention(**kwargs)
