"""MultiHeadAttention: the kit, equality with Keras, mask semantics, precision and the cache."""

import warnings

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
        {"num_heads": 2, "key_dim": 4, "use_gate": True},
        {"num_heads": 3, "key_dim": 2, "value_dim": 5, "use_bias": False, "use_gate": True},
        {"num_heads": 2, "key_dim": 4, "activity_regularizer": "l2"},
    ],
)
def test_equals_keras_for_self_and_cross_attention(init_kwargs):
    query, value, key = random((2, 5, 8), 1), random((2, 7, 6), 2), random((2, 7, 3), 3)
    ours, theirs = twin_layers(query, value, key, **init_kwargs)
    assert_same_results(ours, theirs, query, value, key)  # cross-attention, separate key
    ours, theirs = twin_layers(query, query, **init_kwargs)
    assert_same_results(ours, theirs, query, query)  # self-attention
    assert_same_results(ours, theirs, query, query, use_causal_mask=True)
    # As in Keras, an activity regularizer applies to the outputs of the projections.
    np.testing.assert_allclose(
        sorted(keras.ops.convert_to_numpy(loss) for loss in ours.losses),
        sorted(keras.ops.convert_to_numpy(loss) for loss in theirs.losses),
        rtol=1e-5,
    )


@pytest.mark.parametrize("use_causal_mask", [False, True])
def test_a_sliding_window_equals_keras(use_causal_mask):
    x = random((2, 9, 8))
    ours, theirs = twin_layers(x, x, num_heads=2, key_dim=4, sliding_window=3)
    assert_same_results(ours, theirs, x, x, use_causal_mask=use_causal_mask)


@pytest.mark.parametrize(
    ("query_shape", "value_shape", "attention_axes"),
    [
        ((2, 3, 4, 8), (2, 3, 5, 8), (2,)),  # axis 1 joins the batch
        ((2, 4, 3, 8), (2, 5, 3, 8), -3),  # attention over axis 1, axis 2 joins the batch
        ((2, 3, 4, 8), (2, 2, 5, 6), None),  # every axis but batch and features
        ((2, 2, 3, 4, 8), (2, 5, 3, 2, 8), (3, 1)),  # two axes, in that order, around a batch axis
    ],
)
def test_attention_over_other_axes_equals_keras(query_shape, value_shape, attention_axes):
    query, value = random(query_shape, 1), random(value_shape, 2)
    init_kwargs = {"num_heads": 2, "key_dim": 4, "attention_axes": attention_axes}
    ours, theirs = twin_layers(query, value, **init_kwargs)
    assert_same_results(ours, theirs, query, value)
    ours, theirs = twin_layers(query, value, use_gate=True, output_shape=(3, 2), **init_kwargs)
    assert_same_results(ours, theirs, query, value)
    # A mask in Keras's layout: the scores' without the heads axis.
    ours, theirs = twin_layers(query, value, **init_kwargs)
    _, scores = theirs(query, value, return_attention_scores=True)
    attended = len(scores.shape) - len(query_shape)  # the number of attended axes
    heads_axis = len(scores.shape) - 2 * attended - 1
    mask_shape = tuple(s for axis, s in enumerate(scores.shape) if axis != heads_axis)
    mask = np.random.default_rng(3).random(mask_shape) > 0.4
    mask[..., 0] = True  # no query without a key: Keras treats those differently
    assert_same_results(ours, theirs, query, value, attention_mask=mask)


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


def test_configs_load_into_either_layer():
    ours = MultiHeadAttention(
        2, 4, output_shape=(6,), attention_axes=(1,), sliding_window=3, use_gate=True, seed=5
    )
    theirs = keras.layers.MultiHeadAttention.from_config(ours.get_config())
    assert MultiHeadAttention.from_config(theirs.get_config()).get_config() == ours.get_config()


def test_flash_attention_means_what_it_means_for_keras_on_this_backend():
    x = random((1, 3, 8))
    for attention_class in (MultiHeadAttention, keras.layers.MultiHeadAttention):
        with pytest.raises(ValueError, match="Dropout is not supported when flash attention"):
            attention_class(2, 4, flash_attention=True, dropout=0.1)
        layer = attention_class(2, 4, flash_attention=True)
        with pytest.raises(ValueError, match="Returning attention scores is not supported"):
            layer(x, x, return_attention_scores=True)
        with pytest.raises(ValueError, match="Flash attention is not supported in tensorflow"):
            layer(x, x)
    ours, theirs = twin_layers(x, x, num_heads=2, key_dim=4, flash_attention=False)
    assert_same_results(ours, theirs, x, x)


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


def test_per_head_attention_masks_equal_keras_and_combine_with_padding():
    query, value = random((2, 5, 8), 1), random((2, 7, 8), 2)
    per_head = np.random.default_rng(3).random((2, 2, 5, 7)) > 0.4
    per_head[..., 0] = True  # no row fully masked: Keras treats those differently
    ours, theirs = twin_layers(query, value, num_heads=2, key_dim=4)
    assert_same_results(ours, theirs, query, value, attention_mask=per_head)
    # A padding mask holds for every head.
    value_mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 1, 1, 1]], bool)
    folded = per_head & value_mask[:, None, None, :]
    for return_scores in (False, True):
        actual = ours(
            query,
            value,
            value_mask=value_mask,
            attention_mask=per_head,
            return_attention_scores=return_scores,
        )
        expected = ours(query, value, attention_mask=folded, return_attention_scores=return_scores)
        for a, e in zip(keras.tree.flatten(actual), keras.tree.flatten(expected), strict=True):
            np.testing.assert_allclose(a, e, atol=1e-6)


def test_a_head_with_nothing_to_attend_contributes_zeros():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    query, value = random((1, 3, 8), 1), random((1, 4, 8), 2)
    layer(query, value)
    for variable in layer.trainable_weights:  # non-zero output bias
        variable.assign(random(variable.shape, 5))
    mask = np.ones((1, 2, 3, 4), bool)
    mask[0, 0, 1] = False  # head 0 of query 1 sees nothing
    mask[0, :, 2] = False  # query 2 sees nothing in any head
    fused = keras.ops.convert_to_numpy(layer(query, value, attention_mask=mask))
    output, scores = layer(query, value, attention_mask=mask, return_attention_scores=True)
    output, scores = keras.ops.convert_to_numpy(output), keras.ops.convert_to_numpy(scores)
    assert np.all(scores[0, 0, 1] == 0) and np.all(scores[0, :, 2] == 0)
    # The explicit softmax zeros head 0's context for query 1; the fused kernel agrees.
    np.testing.assert_allclose(fused, output, atol=1e-5)
    assert np.all(output[0, 2] == 0) and np.all(output[0, 1] != 0)


def test_padding_masks_over_other_axes_hide_the_padded_keys():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, attention_axes=2)
    query, value = random((2, 3, 4, 8), 1), random((2, 3, 5, 8), 2)
    value_mask = np.ones((2, 3, 5), bool)
    value_mask[:, :, 3:] = False
    value_mask[1, 2, 1:] = False
    _, scores = layer(query, value, value_mask=value_mask, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(scores)  # [batch, axis 1, heads, T, S]
    assert np.all(scores[np.broadcast_to(~value_mask[:, :, None, None, :], scores.shape)] == 0)
    np.testing.assert_allclose(scores.sum(axis=-1), 1, atol=1e-6)
    changed = value.copy()
    changed[~value_mask] = 100.0
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(query, changed, value_mask=value_mask)),
        keras.ops.convert_to_numpy(layer(query, value, value_mask=value_mask)),
        atol=1e-6,
    )


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


def test_cached_decoding_with_a_sliding_window_equals_the_full_causal_pass():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, sliding_window=3)
    x = random((2, 7, 8))
    full = keras.ops.convert_to_numpy(layer(x, x, use_causal_mask=True))
    cache = layer.empty_cache(2, 7)
    for step in range(7):
        token = x[:, step : step + 1]
        output, cache = layer(token, token, cache=cache, cache_update_index=step)
        np.testing.assert_allclose(output, full[:, step : step + 1], atol=1e-5)


def test_cache_misuse_is_reported():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3)
    with pytest.raises(ValueError, match="value_dim == key_dim"):
        layer.empty_cache(1, 4)
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    x = random((1, 2, 8))
    with pytest.raises(ValueError, match="without a cache"):
        layer(x, x, cache_update_index=0)
    image = random((1, 2, 3, 8))
    with pytest.raises(ValueError, match="cache takes sequences"):
        MultiHeadAttention(2, 4)(image, image, cache=layer.empty_cache(1, 6))


# === Arguments ===


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_heads": 0, "key_dim": 4}, "num_heads must be a positive integer, got 0"),
        ({"num_heads": 2, "key_dim": 4.0}, "key_dim must be a positive integer, got 4.0"),
        ({"num_heads": 2, "key_dim": 4, "value_dim": -1}, "value_dim must be"),
        ({"num_heads": 2, "key_dim": 4, "dropout": 1.0}, "dropout must be a float in"),
        ({"num_heads": 2, "key_dim": 4, "output_shape": (0,)}, "output_shape must be"),
        ({"num_heads": 2, "key_dim": 4, "sliding_window": 0}, "sliding_window must be"),
        ({"num_heads": 2, "key_dim": 4, "attention_axes": "time"}, "attention_axes must be"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        MultiHeadAttention(**kwargs)


def test_attention_axes_outside_the_query_are_named():
    x = random((1, 2, 3, 8))
    for axes in (3, (1, -3), 0):
        with pytest.raises(ValueError, match="attention_axes must name distinct axes"):
            MultiHeadAttention(2, 4, attention_axes=axes)(x, x)


def test_shapes_that_do_not_fit_are_named():
    layer = MultiHeadAttention(2, 4)
    with pytest.raises(ValueError, match="`value` and `key`, except the last one, must be equal"):
        layer.compute_output_shape((2, 4, 8), (2, 5, 8), (2, 6, 8))
    with pytest.raises(ValueError, match="query and value must be"):
        layer(random((2, 4, 8)), random((2, 1, 5, 8)))


# === Quantization ===


def attention_model(layer, query, value):
    query_input, value_input = keras.Input(query.shape[1:]), keras.Input(value.shape[1:])
    return keras.Model([query_input, value_input], layer(query_input, value_input))


@pytest.mark.parametrize(("mode", "tolerance"), [("int8", 0.02), ("float8", 0.2), ("int4", 0.3)])
def test_model_quantize_quantizes_like_keras_and_the_keras_file_keeps_it(mode, tolerance, tmp_path):
    inputs = [random((2, 5, 16), 1), random((2, 6, 16), 2)]
    layers = twin_layers(*inputs, num_heads=2, key_dim=8, use_gate=True)
    ours, theirs = (attention_model(layer, *inputs) for layer in layers)
    float_outputs = ours.predict_on_batch(inputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours.quantize(mode)
    theirs.quantize(mode)
    skipped = [str(w.message) for w in caught if "Projection" in str(w.message)]
    assert not skipped, skipped

    projections = ["query", "key", "gate", "value", "attention_output"]
    layer = layers[0]
    for projection in layer._flatten_layers(include_self=False):
        if projection.name in projections:
            assert projection.quantization_mode == mode, projection.name
    quantized = ours.predict_on_batch(inputs)
    # The same quantization as keras.layers.MultiHeadAttention's, close to the float outputs.
    np.testing.assert_allclose(quantized, theirs.predict_on_batch(inputs), atol=1e-5)
    error = np.abs(quantized - float_outputs).max() / np.abs(float_outputs).max()
    assert 0 < error < tolerance, error

    ours.save(tmp_path / "quantized.keras")
    loaded = keras.models.load_model(tmp_path / "quantized.keras")
    np.testing.assert_array_equal(loaded.predict_on_batch(inputs), quantized)
    reloaded = [
        sublayer.quantization_mode
        for sublayer in loaded._flatten_layers()
        if sublayer.name in projections
    ]
    assert reloaded == [mode] * len(projections)
