"""Keras' own tests of LSTM and ConvLSTM, run against PeepholeLSTM and seqlayers' ConvLSTM.

The README says that ``ConvLSTM1D``/``2D``/``3D`` compute what Keras' layers of those names
compute and that ``PeepholeLSTM`` is ``keras.layers.LSTM`` with peepholes. The proof: the unit
tests that ship in the installed Keras wheel (``keras/src/layers/rnn/lstm_test.py``,
``conv_lstm_test.py``, ``conv_lstm1d_test.py``, ``conv_lstm2d_test.py``,
``conv_lstm3d_test.py``), copied out with the class under test replaced by ours and nothing
else changed (``tests/seqlayers/keras_suites.py``), pass, except the documented differences
listed below with their reasons and the failure message that shows each is that difference.

The substitutions:

* ``layers.LSTM`` becomes ``ZeroPeepholeLSTM``, a ``PeepholeLSTM`` whose peepholes start at
  zero (``peephole_initializer="zeros"``, a subclass registered for the run so that Keras'
  serialization checks find it): a peephole LSTM that starts as a plain LSTM, whose numbers
  Keras' tests check. Every other argument goes to ``PeepholeLSTM`` as written in Keras' test.
* ``layers.ConvLSTM1D``/``2D``/``3D`` become ``seqlayers.ConvLSTM1D``/``2D``/``3D`` (peepholes
  off by default, as in Keras).
* The generic ``ConvLSTM``/``ConvLSTMCell`` that ``conv_lstm_test.py`` imports from
  ``keras.src.layers.rnn.conv_lstm`` become ``seqlayers.conv_lstm``'s.

One documented difference: ``PeepholeLSTM`` has six trainable weights where ``keras.layers.LSTM``
has three (the three peephole vectors), which ``test_basics`` counts. That test runs a second
time with the count substituted too (``6`` for ``3``), so that everything else it checks
(config and ``.keras`` round trips, a training step, mixed precision, masking, regularizer
losses, dropout in training) is proven as well.

A suite takes 4 to 8 seconds (a fresh Python process that imports TensorFlow, then Keras'
tests): ``make test`` runs the LSTM suite, the generic ConvLSTM suite and the 2D one, in one
process with the attention suite (the ``keras_suite_outcomes`` fixture); the 1D and 3D suites
and the second LSTM run are marked slow.

Quantization is held to the same bar: ``model.quantize("int8")`` does to our layers what it does
to their Keras counterparts (``keras.layers.LSTM``, ``ConvLSTM2D``, ``Conv1D`` for the TCN),
which in Keras 3.15 is to leave them float with a warning while the model's ``Dense`` layers
are quantized. When a Keras release quantizes a counterpart, these tests fail: ours must follow.
"""

import warnings
from dataclasses import dataclass

import keras
import numpy as np
import pytest

from seqlayers import TCN, ConvLSTM2D, PeepholeLSTM
from tests.seqlayers.keras_suites import KerasSuite

ZERO_PEEPHOLE_LSTM = '''
import keras
import seqlayers
from seqlayers._signatures import takes_parameters_of


@keras.saving.register_keras_serializable(package="seqlayers_keras_parity")
class ZeroPeepholeLSTM(seqlayers.PeepholeLSTM):
    """PeepholeLSTM with its peepholes at zero to start with: keras.layers.LSTM's function."""

    @takes_parameters_of(seqlayers.PeepholeLSTM.__init__)
    def __init__(self, units, *, peephole_initializer="zeros", **kwargs):
        super().__init__(units, peephole_initializer=peephole_initializer, **kwargs)
'''

PEEPHOLE_WEIGHT_COUNT = (
    "PeepholeLSTM has 6 trainable weights, keras.layers.LSTM 3: the three peephole vectors "
    "(input, forget and output gate) come on top of kernel, recurrent_kernel and bias"
)


@dataclass(frozen=True)
class ParitySuite:
    """A ``KerasSuite`` and, for each expected failure, what its failure message contains."""

    suite: KerasSuite
    failure_messages: dict[str, str]

    def check(self, outcomes):
        self.suite.check(outcomes)
        assert set(self.failure_messages) == set(self.suite.expected_failures)
        for name, fragment in self.failure_messages.items():
            message = outcomes[name].message
            assert fragment in message, (
                f"keras/src/{self.suite.path}::{name} fails, as listed, but not for the listed "
                f"reason ({self.suite.expected_failures[name]}): {message}"
            )


def lstm_suite(extra_substitutions=(), expected_failures=None, failure_messages=None):
    return ParitySuite(
        KerasSuite(
            "layers/rnn/lstm_test.py",
            substitutions=[("layers.LSTM", "ZeroPeepholeLSTM"), *extra_substitutions],
            preamble=ZERO_PEEPHOLE_LSTM,
            expected_failures=expected_failures or {},
        ),
        failure_messages or {},
    )


def conv_lstm_suite(rank):
    name = f"ConvLSTM{rank}D"
    return ParitySuite(
        KerasSuite(
            f"layers/rnn/conv_lstm{rank}d_test.py",
            substitutions=[(f"layers.{name}", f"seqlayers.{name}")],
        ),
        {},
    )


LSTM = lstm_suite(
    expected_failures={"test_basics": PEEPHOLE_WEIGHT_COUNT},
    failure_messages={"test_basics": "6 != 3 : Unexpected number of trainable_weights"},
)
LSTM_COUNTING_PEEPHOLES = lstm_suite(
    extra_substitutions=[("expected_num_trainable_weights=3", "expected_num_trainable_weights=6")]
)
GENERIC_CONV_LSTM = ParitySuite(
    KerasSuite(
        "layers/rnn/conv_lstm_test.py",
        substitutions=[
            (
                "from keras.src.layers.rnn.conv_lstm import ConvLSTM\n",
                "from seqlayers.conv_lstm import ConvLSTM\n",
            ),
            (
                "from keras.src.layers.rnn.conv_lstm import ConvLSTMCell\n",
                "from seqlayers.conv_lstm import ConvLSTMCell\n",
            ),
        ],
    ),
    {},
)


@pytest.mark.parametrize(
    "parity_suite",
    [
        pytest.param(LSTM, id="lstm"),
        pytest.param(GENERIC_CONV_LSTM, id="conv_lstm"),
        pytest.param(conv_lstm_suite(2), id="conv_lstm2d"),
        pytest.param(LSTM_COUNTING_PEEPHOLES, id="lstm_counting_peepholes", marks=pytest.mark.slow),
        pytest.param(conv_lstm_suite(1), id="conv_lstm1d", marks=pytest.mark.slow),
        pytest.param(conv_lstm_suite(3), id="conv_lstm3d", marks=pytest.mark.slow),
    ],
)
def test_keras_suite_passes_but_for_documented_differences(parity_suite, keras_suite_outcomes):
    parity_suite.check(keras_suite_outcomes(parity_suite.suite))


# --- model.quantize("int8") -----------------------------------------------------------------

# (our layer, its Keras counterpart, input shape without the batch, our leaves' warning)
QUANTIZATION_COUNTERPARTS = {
    "peephole_lstm": (
        lambda: PeepholeLSTM(6, name="layer"),
        lambda: keras.layers.LSTM(6, name="layer"),
        (7, 4),
        "PeepholeLSTMCell 'peephole_lstm_cell' has no 'int8' quantization",
    ),
    "conv_lstm2d": (
        lambda: ConvLSTM2D(3, 3, use_peepholes=True, name="layer"),
        lambda: keras.layers.ConvLSTM2D(3, 3, name="layer"),
        (3, 6, 6, 2),
        "ConvLSTMCell 'conv_lstm_cell' has no 'int8' quantization",
    ),
    "tcn": (
        lambda: TCN(6, dilations=(1, 2), normalization="weight", name="layer"),
        lambda: keras.layers.Conv1D(6, 3, padding="causal", name="layer"),
        (7, 4),
        "Layer Conv1D does not have a `quantize` method implemented",
    ),
}


def quantized_model_report(make_layer, input_shape, tmp_path):
    """A model ``layer -> Flatten -> Dense`` quantized to int8: what happened to each part."""
    inputs = keras.Input(input_shape)
    layer = make_layer()
    outputs = keras.layers.Dense(3, name="head")(keras.layers.Flatten()(layer(inputs)))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).standard_normal((2, *input_shape)).astype("float32")
    float_outputs = model.predict(x, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.quantize("int8")
    quantized_outputs = model.predict(x, verbose=0)
    tmp_path.mkdir()
    model.save(tmp_path / "quantized.keras")
    reloaded = keras.models.load_model(tmp_path / "quantized.keras")
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), quantized_outputs)
    return {
        "layer_dtypes": {variable.dtype for variable in layer.weights},
        "head_dtypes": {variable.dtype for variable in model.get_layer("head").weights},
        "warnings": [str(warning.message) for warning in caught],
        "max_abs_difference": float(np.max(np.abs(quantized_outputs - float_outputs))),
    }


@pytest.mark.parametrize("name", sorted(QUANTIZATION_COUNTERPARTS))
def test_int8_quantization_treats_ours_as_keras_treats_the_counterpart(name, tmp_path):
    make_ours, make_theirs, input_shape, our_warning = QUANTIZATION_COUNTERPARTS[name]
    theirs = quantized_model_report(make_theirs, input_shape, tmp_path / "theirs")
    ours = quantized_model_report(make_ours, input_shape, tmp_path / "ours")
    assert theirs["layer_dtypes"] == {"float32"}, (
        f"Keras {keras.__version__} now quantizes the counterpart of our {name}: quantize ours too"
    )
    # Keras' Dense is quantized in both models; the layers before it stay float, with a warning
    # for every leaf left as it was, and the quantized model saves and loads.
    for report in (theirs, ours):
        assert report["head_dtypes"] == {"int8", "float32"}
        assert report["max_abs_difference"] < 0.05
    assert ours["layer_dtypes"] == {"float32"}
    assert any(our_warning in message for message in ours["warnings"]), ours["warnings"]


def test_our_cells_say_why_they_are_not_quantized():
    layer = PeepholeLSTM(3)
    layer(np.zeros((1, 2, 2), "float32"))
    with pytest.raises(NotImplementedError, match="its weights stay float32"):
        layer.cell.quantize("int8")
