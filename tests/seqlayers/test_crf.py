"""LinearChainCRF: likelihood and Viterbi against enumeration of every tag sequence in NumPy,
masks (post, pre, gaps, empty), BIO-style constraints, gradients and learning, mixed precision,
XLA, the layer kit, training through compute_loss, and a decoding SavedModel in a clean process.
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from seqlayers.crf import (
    DISALLOWED_TRANSITION_SCORE,
    LinearChainCRF,
    crf_decode,
    crf_log_likelihood,
)
from tests.layer_checks import (
    LayerUnderTest,
    MaskReader,
    _CleanWorker,
    check_config_round_trip,
    check_export_in_fresh_process,
    check_keras_file_round_trip,
    check_masking,
    check_mixed_precision,
    check_output_shapes,
)

# === Reference: enumeration of every tag sequence, in float64 ===


def constrained_tables(transitions, start, end, allowed):
    if allowed is None:
        return transitions, start, end
    k = len(start)
    return (
        np.where(allowed[:k, :k], transitions, DISALLOWED_TRANSITION_SCORE),
        np.where(allowed[k, :k], start, DISALLOWED_TRANSITION_SCORE),
        np.where(allowed[:k, k], end, DISALLOWED_TRANSITION_SCORE),
    )


def is_allowed(sequence, allowed):
    if allowed is None:
        return True
    k = len(allowed) - 1
    path = [k, *sequence, k]  # start, tags, end
    return all(allowed[a, b] for a, b in itertools.pairwise(path))


def enumerated_scores(emissions, transitions, start, end, allowed=None):
    """{tag sequence: score} over every sequence of len(emissions) tags (one example)."""
    transitions, start, end = constrained_tables(transitions, start, end, allowed)
    length, num_tags = emissions.shape
    scores = {}
    for sequence in itertools.product(range(num_tags), repeat=length):
        score = start[sequence[0]] + end[sequence[-1]]
        score += sum(emissions[t, tag] for t, tag in enumerate(sequence))
        score += sum(transitions[a, b] for a, b in itertools.pairwise(sequence))
        scores[sequence] = float(score)
    return scores


def log_sum_exp(values):
    values = np.asarray(list(values), "float64")
    return float(values.max() + np.log(np.exp(values - values.max()).sum()))


def random_crf(num_tags, rng):
    return (
        rng.standard_normal((num_tags, num_tags)).astype("float32"),
        rng.standard_normal(num_tags).astype("float32"),
        rng.standard_normal(num_tags).astype("float32"),
    )


def bio_allowed(num_entity_types):
    """O, B-1, I-1, B-2, I-2, ...: no I-X after O, another type, or the start."""
    num_tags = 1 + 2 * num_entity_types
    allowed = np.ones((num_tags + 1, num_tags + 1), bool)
    for entity in range(num_entity_types):
        inside = 2 + 2 * entity
        for previous in range(num_tags + 1):
            allowed[previous, inside] = previous in (inside - 1, inside)
    allowed[num_tags, num_tags] = False
    return allowed


def padded_batch(examples, masks):
    """Scatters each example's valid steps into the positions its mask marks."""
    batch = np.zeros((len(masks), masks.shape[1], examples[0].shape[-1]), "float32")
    for row, (example, mask) in enumerate(zip(examples, masks, strict=True)):
        batch[row, mask] = example
    return batch


# Post-padded, pre-padded, with gaps, full, and one sequence without any valid step.
MASKS = np.array(
    [
        [1, 1, 1, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 1, 1, 1],
        [1, 0, 1, 0, 1],
        [0, 1, 1, 0, 1],
        [1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0],
    ],
    bool,
)

CASES = [(3, None), (4, None), (3, bio_allowed(1)), (5, bio_allowed(2))]


def case_ids(case):
    return f"{case[0]}tags-" + ("constrained" if case[1] is not None else "free")


@pytest.fixture(params=CASES, ids=case_ids)
def crf_case(request):
    num_tags, allowed = request.param
    rng = np.random.default_rng(num_tags + (allowed is not None))
    lengths = MASKS.sum(axis=1)
    examples = [rng.standard_normal((n, num_tags)).astype("float32") for n in lengths]
    return num_tags, allowed, examples, random_crf(num_tags, rng), rng


# === Likelihood and decoding against enumeration ===


def test_log_likelihood_equals_enumeration_for_every_mask(crf_case):
    _, allowed, examples, tables, rng = crf_case
    references = [enumerated_scores(x, *tables, allowed) if len(x) else {} for x in examples]
    # A random allowed tag sequence per example (any tags: -1 and junk at masked steps).
    tags = np.full(MASKS.shape, -1, "int32")
    expected = []
    for row, scores in enumerate(references):
        if not scores:
            expected.append(0.0)
            continue
        candidates = [s for s in scores if is_allowed(s, allowed)]
        chosen = candidates[rng.integers(len(candidates))]
        tags[row, MASKS[row]] = chosen
        expected.append(scores[chosen] - log_sum_exp(scores.values()))
    log_likelihood = crf_log_likelihood(
        padded_batch(examples, MASKS), tags, MASKS, *tables, allowed_transitions=allowed
    )
    assert keras.backend.standardize_dtype(log_likelihood.dtype) == "float32"
    np.testing.assert_allclose(ops.convert_to_numpy(log_likelihood), expected, atol=1e-4)


def test_viterbi_equals_enumeration_for_every_mask(crf_case):
    _, allowed, examples, tables, _ = crf_case
    tags, best_score = crf_decode(
        padded_batch(examples, MASKS), MASKS, *tables, allowed_transitions=allowed
    )
    tags, best_score = ops.convert_to_numpy(tags), ops.convert_to_numpy(best_score)
    assert tags.dtype == np.int32 and best_score.dtype == np.float32
    for row, example in enumerate(examples):
        np.testing.assert_array_equal(tags[row, ~MASKS[row]], 0)
        if not len(example):
            assert best_score[row] == 0
            continue
        scores = enumerated_scores(example, *tables, allowed)
        best = max(scores, key=scores.get)
        assert tuple(tags[row, MASKS[row]]) == best, f"row {row}"
        np.testing.assert_allclose(best_score[row], scores[best], atol=1e-4)


@pytest.mark.parametrize("case", CASES, ids=case_ids)
def test_probabilities_of_all_allowed_sequences_sum_to_one(case):
    num_tags, allowed = case
    rng = np.random.default_rng(7)
    length = 4 if num_tags <= 4 else 3
    emissions = rng.standard_normal((1, length, num_tags)).astype("float32")
    sequences = np.array(list(itertools.product(range(num_tags), repeat=length)), "int32")
    probabilities = ops.convert_to_numpy(
        ops.exp(
            crf_log_likelihood(
                np.repeat(emissions, len(sequences), axis=0),
                sequences,
                None,
                *random_crf(num_tags, rng),
                allowed_transitions=allowed,
            )
        )
    )
    permitted = np.array([is_allowed(s, allowed) for s in sequences])
    np.testing.assert_allclose(probabilities[permitted].sum(), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probabilities[~permitted], 0.0)


def test_decoding_never_emits_a_disallowed_pair():
    allowed = bio_allowed(3)  # 7 tags
    rng = np.random.default_rng(3)
    # Strong emissions that favour disallowed pairs (I-X everywhere) must not win.
    emissions = 4 * rng.standard_normal((64, 9, 7)).astype("float32")
    emissions[:, :, 2::2] += 3.0
    lengths = rng.integers(1, 10, size=64)
    mask = np.arange(9)[None] < lengths[:, None]
    tags, best_score = crf_decode(emissions, mask, *random_crf(7, rng), allowed)
    tags = ops.convert_to_numpy(tags)
    for row, length in enumerate(lengths):
        assert is_allowed(tuple(tags[row, :length]), allowed), tags[row, :length]
    assert np.all(ops.convert_to_numpy(best_score) > DISALLOWED_TRANSITION_SCORE / 2)


def test_a_gapped_or_pre_padded_sequence_equals_its_valid_steps_alone():
    rng = np.random.default_rng(11)
    tables = random_crf(4, rng)
    emissions = rng.standard_normal((3, 6, 4)).astype("float32")
    tags = rng.integers(0, 4, size=(3, 6)).astype("int32")
    mask = np.array([[1, 0, 1, 1, 0, 1], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], bool)
    log_likelihood = ops.convert_to_numpy(crf_log_likelihood(emissions, tags, mask, *tables))
    decoded, best = (ops.convert_to_numpy(x) for x in crf_decode(emissions, mask, *tables))
    for row in range(3):
        alone = emissions[row : row + 1, mask[row]], tags[row : row + 1, mask[row]]
        expected = ops.convert_to_numpy(crf_log_likelihood(alone[0], alone[1], None, *tables))
        np.testing.assert_allclose(log_likelihood[row], expected[0], atol=1e-5)
        tags_alone, best_alone = crf_decode(alone[0], None, *tables)
        np.testing.assert_array_equal(decoded[row, mask[row]], ops.convert_to_numpy(tags_alone)[0])
        np.testing.assert_allclose(best[row], ops.convert_to_numpy(best_alone)[0], atol=1e-5)


# === Gradients and learning ===


def test_gradients_are_finite_and_disallowed_scores_get_none():
    allowed = bio_allowed(1)
    rng = np.random.default_rng(5)
    tables = [tf.Variable(t) for t in random_crf(3, rng)]
    emissions = tf.constant(rng.standard_normal((len(MASKS), 5, 3)).astype("float32"))
    tags = np.zeros(MASKS.shape, "int32")  # all O: allowed
    with tf.GradientTape() as tape:
        tape.watch(emissions)
        loss = -tf.reduce_mean(crf_log_likelihood(emissions, tags, MASKS, *tables, allowed))
    gradients = tape.gradient(loss, [emissions, *tables])
    for gradient in gradients:
        assert np.all(np.isfinite(gradient.numpy()))
    np.testing.assert_array_equal(gradients[0].numpy()[~MASKS], 0)  # padding learns nothing
    np.testing.assert_array_equal(gradients[1].numpy()[~allowed[:3, :3]], 0)
    np.testing.assert_array_equal(gradients[2].numpy()[~allowed[3, :3]], 0)
    assert np.any(gradients[1].numpy() != 0)


def test_gradient_ascent_learns_a_transition_pattern():
    # Uninformative emissions: only the transitions can say 0 -> 1 -> 2 -> 0 ... starting at 2.
    pattern = np.array([[2, 0, 1, 2, 0, 1, 2], [2, 0, 1, 2, 0, 0, 0]], "int32")
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3], bool)
    rng = np.random.default_rng(2)
    emissions = 0.1 * rng.standard_normal((2, 7, 3)).astype("float32")
    tables = [tf.Variable(np.zeros(shape, "float32")) for shape in ((3, 3), (3,), (3,))]

    @tf.function
    def ascend():
        with tf.GradientTape() as tape:
            log_likelihood = tf.reduce_sum(crf_log_likelihood(emissions, pattern, mask, *tables))
        for table, gradient in zip(tables, tape.gradient(log_likelihood, tables), strict=True):
            table.assign_add(0.5 * gradient)
        return log_likelihood

    first = float(ascend())
    for _ in range(300):
        last = float(ascend())
    assert last > first and last > -0.1, (first, last)
    tags, _ = crf_decode(emissions, mask, *tables)
    np.testing.assert_array_equal(ops.convert_to_numpy(tags), np.where(mask, pattern, 0))


# === Precision, graphs, XLA ===


def test_float16_emissions_give_float32_results_close_to_float32():
    rng = np.random.default_rng(4)
    tables = random_crf(5, rng)
    emissions = (3 * rng.standard_normal((4, 20, 5))).astype("float32")
    tags = rng.integers(0, 5, size=(4, 20)).astype("int32")
    mask = np.arange(20)[None] < np.array([[20], [13], [1], [7]])
    exact = ops.convert_to_numpy(crf_log_likelihood(emissions, tags, mask, *tables))
    half = crf_log_likelihood(emissions.astype("float16"), tags, mask, *tables)
    assert keras.backend.standardize_dtype(half.dtype) == "float32"
    np.testing.assert_allclose(ops.convert_to_numpy(half), exact, rtol=2e-3, atol=2e-2)
    decoded, score = crf_decode(emissions.astype("float16"), mask, *tables)
    assert keras.backend.standardize_dtype(score.dtype) == "float32"
    assert keras.backend.standardize_dtype(decoded.dtype) == "int32"


def test_mixed_float16_layer_keeps_float32_scores_and_likelihoods():
    crf = LinearChainCRF(4, dtype="mixed_float16", initializer="random_normal")
    reference = LinearChainCRF(4)
    emissions = np.random.default_rng(6).standard_normal((2, 6, 4)).astype("float32")
    outputs = crf(emissions)
    reference(emissions)
    reference.set_weights(crf.get_weights())
    assert keras.backend.standardize_dtype(outputs.dtype) == "float16"
    assert all(v.dtype == "float32" for v in crf.weights)
    tags = np.zeros((2, 6), "int32")
    half = crf.log_likelihood(outputs, tags)
    assert keras.backend.standardize_dtype(half.dtype) == "float32"
    np.testing.assert_allclose(
        ops.convert_to_numpy(half),
        ops.convert_to_numpy(reference.log_likelihood(emissions, tags)),
        atol=1e-2,
    )


def test_xla_and_unknown_shapes_equal_eager():
    rng = np.random.default_rng(8)
    tables = [tf.Variable(t) for t in random_crf(5, rng)]
    allowed = bio_allowed(2)
    emissions = rng.standard_normal((3, 6, 5)).astype("float32")
    tags = np.zeros((3, 6), "int32")
    mask = np.array([[1] * 6, [1] * 2 + [0] * 4, [0, 1, 0, 1, 1, 0]], bool)

    def likelihood_and_gradients(x, y, m):
        with tf.GradientTape() as tape:
            log_likelihood = crf_log_likelihood(x, y, m, *tables, allowed)
        return log_likelihood, tape.gradient(log_likelihood, tables)

    def decode(x, m):
        return crf_decode(x, m, *tables, allowed)

    unknown = [
        tf.TensorSpec((None, None, 5), tf.float32),
        tf.TensorSpec((None, None), tf.int32),
        tf.TensorSpec((None, None), tf.bool),
    ]
    eager = (likelihood_and_gradients(emissions, tags, mask), decode(emissions, mask))
    for compiled in (
        (
            tf.function(likelihood_and_gradients, jit_compile=True),
            tf.function(decode, jit_compile=True),
        ),
        (
            tf.function(likelihood_and_gradients, input_signature=unknown),
            tf.function(decode, input_signature=[unknown[0], unknown[2]]),
        ),
    ):
        results = (compiled[0](emissions, tags, mask), compiled[1](emissions, mask))
        for actual, expected in zip(tf.nest.flatten(results), tf.nest.flatten(eager), strict=True):
            np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


# === The layer ===


def test_the_layer_passes_the_kit_as_a_mask_aware_identity_with_weights(tmp_path):
    # Every check of run_layer_checks but its XLA training step, which fits the layer's output
    # with an MSE loss: the output is the input, so no gradient reaches the CRF's weights there.
    # test_xla_training_through_compute_loss_moves_every_weight is that check with the CRF loss.
    subject = LayerUnderTest(
        LinearChainCRF,
        {"num_tags": 5, "allowed_transitions": bio_allowed(2).tolist()},
        input_shapes=[(None, 5)],
        output_shapes=[(None, 5)],
        masking=True,
    )
    check_config_round_trip(subject)
    check_output_shapes(subject)
    check_keras_file_round_trip(subject, tmp_path / "keras_file")
    check_export_in_fresh_process(subject, tmp_path / "export")
    check_mixed_precision(subject)
    check_masking(subject)


def tagger(num_tags=3, vocabulary=12, allowed=None):
    """Embedding (0 = padding) -> Dense emissions -> CRF, as the tagging app builds it."""
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    embedded = keras.layers.Embedding(vocabulary, 8, mask_zero=True)(tokens)
    emissions = keras.layers.Dense(num_tags)(embedded)
    crf = LinearChainCRF(num_tags, allowed_transitions=allowed, name="crf")
    return CRFTagger(tokens, crf(emissions)), crf


class CRFTagger(keras.Model):
    """The compute_loss override of LinearChainCRF's docstring."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        crf = self.get_layer("crf")
        loss = crf.negative_log_likelihood(y_pred, y, mask=ops.not_equal(x, 0))
        return loss + ops.sum(self.losses)


def tagging_data(rng, size=32):
    """Token t in 1..11 has tag t % 3; sequences of 2..6 tokens, post-padded with 0."""
    lengths = rng.integers(2, 7, size=size)
    tokens = rng.integers(1, 12, size=(size, 6)) * (np.arange(6)[None] < lengths[:, None])
    return tokens.astype("int32"), np.where(tokens > 0, tokens % 3, -1).astype("int32")


def test_xla_training_through_compute_loss_moves_every_weight():
    keras.utils.set_random_seed(0)
    model, crf = tagger()
    tokens, tags = tagging_data(np.random.default_rng(0))
    model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=True)
    before = [ops.convert_to_numpy(v).copy() for v in model.trainable_variables]
    history = model.fit(tokens, tags, batch_size=16, epochs=15, verbose=0)
    assert model.jit_compile is True
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0], losses
    for variable, old in zip(model.trainable_variables, before, strict=True):
        assert not np.array_equal(ops.convert_to_numpy(variable), old), variable.path
    decoded, _ = crf.decode(model(tokens), tokens > 0)
    accuracy = np.mean(ops.convert_to_numpy(decoded)[tokens > 0] == tags[tokens > 0])
    assert accuracy > 0.9, accuracy


def test_regularizer_adds_its_loss():
    crf = LinearChainCRF(3, initializer="ones", regularizer=keras.regularizers.L2(0.5))
    crf(np.zeros((1, 2, 3), "float32"))
    # 0.5 * (9 + 3 + 3) ones
    np.testing.assert_allclose(float(ops.sum(crf.losses)), 7.5)


def test_a_decoding_savedmodel_runs_in_a_clean_process(tmp_path):
    """ExportArchive endpoint token ids -> (tags, best score), loaded without the project."""
    keras.utils.set_random_seed(1)
    model, crf = tagger(num_tags=5, allowed=bio_allowed(2))
    for variable in crf.weights:
        variable.assign(np.random.default_rng(1).standard_normal(variable.shape))
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(tokens):
        return crf.decode(model(tokens), ops.not_equal(tokens, 0))

    archive.add_endpoint(
        "serving_default", serve, input_signature=[tf.TensorSpec((None, None), tf.int32)]
    )
    archive.write_out(str(tmp_path / "export"), verbose=False)
    feeds = {
        "short": np.array([[3, 4, 0], [5, 0, 0]], "int32"),
        "long": np.random.default_rng(2).integers(0, 12, size=(4, 9)).astype("int32"),
    }
    np.savez(tmp_path / "inputs.npz", **{f"{key}/tokens": value for key, value in feeds.items()})
    error = _CleanWorker.serve(
        (tmp_path / "export").resolve(),
        (tmp_path / "inputs.npz").resolve(),
        (tmp_path / "outputs.npz").resolve(),
    )
    assert not error, error
    served = np.load(tmp_path / "outputs.npz")
    for key, tokens in feeds.items():
        expected_tags, expected_score = (ops.convert_to_numpy(x) for x in serve(tokens))
        np.testing.assert_array_equal(served[f"{key}/output_0"], expected_tags)
        np.testing.assert_allclose(served[f"{key}/output_1"], expected_score, atol=1e-5)


def test_mask_passes_through_and_masked_emissions_are_untouched():
    tokens = np.array([[4, 5, 0], [6, 0, 0]], "int32")
    embedded = keras.layers.Embedding(10, 3, mask_zero=True)(tokens)
    crf = LinearChainCRF(3)
    outputs = crf(embedded)
    np.testing.assert_array_equal(ops.convert_to_numpy(outputs), ops.convert_to_numpy(embedded))
    np.testing.assert_array_equal(ops.convert_to_numpy(MaskReader()(outputs)), tokens > 0)


def test_config_keeps_allowed_transitions_as_nested_lists_of_bools():
    allowed = bio_allowed(1)
    config = LinearChainCRF(3, allowed_transitions=allowed).get_config()
    assert config["allowed_transitions"] == allowed.tolist()
    assert all(type(value) is bool for row in config["allowed_transitions"] for value in row)
    assert LinearChainCRF(3).get_config()["allowed_transitions"] is None
    assert LinearChainCRF.from_config(config).get_config() == config


# === Errors that name the culprit ===


@pytest.mark.parametrize("num_tags", [0, -2, 2.0, None, True])
def test_invalid_num_tags_is_named(num_tags):
    with pytest.raises(ValueError, match="num_tags must be a positive integer"):
        LinearChainCRF(num_tags)


@pytest.mark.parametrize(
    ("allowed", "message"),
    [
        (np.ones((3, 3), bool), r"shape \(4, 4\), got shape \(3, 3\) and dtype bool"),
        (np.ones((4, 4), int), r"boolean array of shape \(4, 4\), got shape \(4, 4\) and dtype"),
        ([[True] * 4] * 3 + [[True, True]], r"boolean array of shape \(4, 4\), got \[\["),
    ],
)
def test_invalid_allowed_transitions_are_named(allowed, message):
    with pytest.raises(ValueError, match=message):
        LinearChainCRF(3, allowed_transitions=allowed)


def test_a_sequence_that_can_start_nowhere_is_refused():
    allowed = np.ones((4, 4), bool)
    allowed[3, :3] = False
    with pytest.raises(ValueError, match="no tag at the start: its row 3"):
        LinearChainCRF(3, allowed_transitions=allowed)


def test_a_sequence_that_can_end_nowhere_is_refused():
    allowed = np.ones((4, 4), bool)
    allowed[:3, 3] = False
    with pytest.raises(ValueError, match="no tag at the end: its column 3"):
        LinearChainCRF(3, allowed_transitions=allowed)


def test_emissions_with_the_wrong_number_of_tags_are_named():
    with pytest.raises(ValueError, match="num_tags=4, got emissions of shape"):
        LinearChainCRF(4)(keras.Input((None, 5)))
    tables = random_crf(4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="emissions have 5 tags"):
        crf_decode(np.zeros((1, 2, 5), "float32"), None, *tables)
    with pytest.raises(ValueError, match=r"allowed_transitions must have shape \(5, 5\)"):
        crf_decode(np.zeros((1, 2, 4), "float32"), None, *tables, np.ones((4, 4), bool))
    with pytest.raises(ValueError, match=r"end_transitions must have shape \(4,\)"):
        crf_decode(np.zeros((1, 2, 4), "float32"), None, *tables[:2], np.zeros(3, "float32"))
