"""TCN: the layer kit, an exact receptive field, masking and the last valid step."""

import keras
import numpy as np
import pytest

from seqlayers.tcn import TCN, last_valid_step
from seqlayers.tcn_block import receptive_field
from tests.layer_checks import run_layer_checks

# === The layer kit ===
# TCN's own code paths are the skip-connection sum and the last valid step, one full kit each
# (between them, both sides of every branch in TCN.call). Normalization, padding and dropout only
# pass through to TCNBlock, whose kits (test_tcn_block.py) export and XLA-compile each of them:
# here those configurations run every other check (export_and_xla=False), so a TCN that mishandles
# them in config, saving, precision, training or masking still fails.


def test_tcn_with_skip_connections_and_stacks_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        TCN,
        {
            "filters": 4,
            "kernel_size": 2,
            "dilations": [1, 2],
            "stacks": 2,
            "use_skip_connections": True,
        },
        input_shape=(None, 3),
        expected_output_shape=(None, 4),
        tmp_path=tmp_path,
        masking=True,
    )


def test_tcn_returning_the_last_step_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        TCN,
        {
            "filters": [6, 8],
            "kernel_size": 3,
            "dilations": [1, 2],
            "padding": "same",
            "return_sequences": False,
            "dropout": 0.1,
        },
        input_shape=(None, 2),
        expected_output_shape=(8,),
        tmp_path=tmp_path,
        masking=True,
    )


@pytest.mark.parametrize("normalization", ["weight", "layer", "batch", None])
def test_tcn_normalizations_pass_the_layer_kit_but_export_and_xla(tmp_path, normalization):
    run_layer_checks(
        TCN,
        {"filters": 4, "kernel_size": 2, "dilations": [1, 2], "normalization": normalization},
        input_shape=(None, 3),
        expected_output_shape=(None, 4),
        tmp_path=tmp_path,
        masking=True,
        sequence_lengths=(2, 9),  # shorter and longer than the receptive field (7)
        export_and_xla=False,
    )


def test_causal_tcn_returning_the_last_step_passes_the_layer_kit_but_export_and_xla(tmp_path):
    run_layer_checks(
        TCN,
        {
            "filters": [6, 8],
            "kernel_size": 3,
            "dilations": [1, 2],
            "return_sequences": False,
            "dropout": 0.1,
        },
        input_shape=(None, 2),
        expected_output_shape=(8,),
        tmp_path=tmp_path,
        masking=True,
        export_and_xla=False,
    )


def test_receptive_field_formula():
    assert receptive_field(3, [1, 2, 4, 8]) == 1 + 2 * 2 * 15 == 61
    assert receptive_field(2, [1, 2, 4], stacks=3) == 1 + 2 * 1 * 3 * 7 == 43
    assert TCN(8, kernel_size=3, dilations=(1, 2, 4, 8, 16, 32)).receptive_field == 253
    assert TCN(8, kernel_size=4, dilations=[1, 3], stacks=2).receptive_field == 49


def randomized_tcn(seed=0, **kwargs):
    """A built TCN whose biases and kernels are random: no zero weight can hide a dependency."""
    tcn = TCN(**{"filters": 16, "kernel_size": 3, "dilations": [1, 2, 4], **kwargs})
    tcn(np.zeros((1, 4, 2), "float32"))
    rng = np.random.default_rng(seed)
    for variable in tcn.trainable_weights:
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype("float32"))
    return tcn


def influence_on_output(tcn, length, output_step):
    """For each input step s: does changing x[s] change the output at output_step?"""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, length, 2)).astype("float32")
    reference = tcn(x).numpy()[0, output_step]
    changed = []
    for step in range(length):
        perturbed = x.copy()
        perturbed[0, step] += 3.0
        changed.append(not np.array_equal(tcn(perturbed).numpy()[0, output_step], reference))
    return np.array(changed)


@pytest.mark.parametrize(("stacks", "kernel_size"), [(1, 3), (2, 2)])
def test_causal_receptive_field_is_exact(stacks, kernel_size):
    tcn = randomized_tcn(stacks=stacks, kernel_size=kernel_size, activation="tanh")
    field = tcn.receptive_field
    length, t = field + 12, field + 5
    changed = influence_on_output(tcn, length, t)
    # Steps t-R+1 ... t change the output at t; nothing before, nothing after.
    expected = np.zeros(length, bool)
    expected[t - field + 1 : t + 1] = True
    np.testing.assert_array_equal(changed, expected)


def test_same_padding_sees_a_centred_window_of_the_receptive_field():
    tcn = randomized_tcn(padding="same", activation="tanh")
    field = tcn.receptive_field  # 1 + 2*2*7 = 29: 14 steps on each side
    length, t = 60, 30
    changed = influence_on_output(tcn, length, t)
    expected = np.zeros(length, bool)
    expected[t - field // 2 : t + field // 2 + 1] = True
    np.testing.assert_array_equal(changed, expected)


@pytest.mark.parametrize("length", [1, 2, 5])
def test_sequences_shorter_than_the_receptive_field(length):
    tcn = randomized_tcn()
    x = np.random.default_rng(2).standard_normal((3, length, 2)).astype("float32")
    y = tcn(x).numpy()
    assert y.shape == (3, length, 16)
    assert np.all(np.isfinite(y))
    # Causal: the first steps equal a run on the prefix alone.
    np.testing.assert_allclose(tcn(x[:, :1]).numpy()[:, 0], y[:, 0], atol=1e-6)


@pytest.mark.parametrize("padding", ["causal", "same"])
def test_return_sequences_false_returns_the_last_step_not_the_middle(padding):
    tcn = randomized_tcn(padding=padding)
    last = TCN.from_config({**tcn.get_config(), "return_sequences": False})
    x = np.random.default_rng(3).standard_normal((2, 13, 2)).astype("float32")
    last(x)
    last.set_weights(tcn.get_weights())
    np.testing.assert_allclose(last(x).numpy(), tcn(x).numpy()[:, -1], atol=1e-6)


@pytest.mark.parametrize("padding", ["causal", "same"])
@pytest.mark.parametrize("side", ["post", "pre"])
def test_last_unmasked_step_with_embedding_masks(padding, side):
    """Token ids with 0 as padding, masked by Embedding(mask_zero=True), as a user writes it."""
    lengths = [3, 7, 5]
    rng = np.random.default_rng(4)
    sequences = [rng.integers(1, 20, size=n) for n in lengths]
    padded = keras.utils.pad_sequences(sequences, padding=side, value=0)
    tokens = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(20, 6, mask_zero=True)(tokens)
    model = keras.Model(
        tokens, TCN(8, dilations=[1, 2], padding=padding, return_sequences=False)(embedded)
    )
    for weights in model.trainable_weights:
        weights.assign(rng.normal(0.0, 0.5, weights.shape).astype("float32"))
    batch = model(padded).numpy()
    for row, sequence in enumerate(sequences):
        alone = model(sequence[None]).numpy()[0]
        np.testing.assert_allclose(batch[row], alone, atol=1e-5)


def test_mask_passes_on_with_return_sequences():
    tokens = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    sequences = TCN(4, dilations=[1])(embedded)
    pooled = keras.layers.GlobalAveragePooling1D()(sequences)  # mask-aware mean
    model = keras.Model(tokens, [sequences, pooled])
    ids = np.array([[3, 4, 5, 0, 0]])
    steps, mean = (t.numpy() for t in model(ids))
    np.testing.assert_array_equal(steps[0, 3:], 0.0)  # masked steps are zero
    np.testing.assert_allclose(mean[0], steps[0, :3].mean(axis=0), atol=1e-6)


def test_last_valid_step_handles_fully_masked_rows():
    sequences = np.arange(2 * 4 * 1, dtype="float32").reshape(2, 4, 1)
    mask = np.array([[True, True, False, False], [False, False, False, False]])
    to_numpy = keras.ops.convert_to_numpy
    np.testing.assert_array_equal(to_numpy(last_valid_step(sequences, mask)), [[1.0], [0.0]])
    np.testing.assert_array_equal(to_numpy(last_valid_step(sequences)), [[3.0], [7.0]])


def test_tcn_learns_a_delayed_copy():
    """Causal TCN reproduces x[t-5] once trained: a small end-to-end sanity check."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((256, 24, 1)).astype("float32")
    y = np.concatenate([np.zeros((256, 5, 1), "float32"), x[:, :-5]], axis=1)
    model = keras.Sequential(
        [keras.Input((None, 1)), TCN(16, kernel_size=2, dilations=[1, 2, 4]), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    history = model.fit(x, y, batch_size=32, epochs=25, verbose=0)
    assert history.history["loss"][-1] < 0.05


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"filters": [4, 4]}, r"one entry per block \(1 stacks x 3 dilations = 3\), got 2"),
        ({"filters": [4, 5, 6], "use_skip_connections": True}, "the same number of filters"),
        ({"dilations": []}, "at least one dilation"),
        ({"dilations": [1, 0]}, "each dilation must be a positive integer, got 0"),
        ({"stacks": 0}, "stacks must be a positive integer, got 0"),
        ({"padding": "valid"}, "padding must be one of"),
        ({"normalization": "instance"}, "normalization must be one of"),
    ],
)
def test_tcn_rejects_bad_arguments_by_name(arguments, message):
    with pytest.raises(ValueError, match=message):
        TCN(**{"filters": 4, "dilations": [1, 2, 4], **arguments})
