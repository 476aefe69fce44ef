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
tests): ``make test`` runs the LSTM suite, the generic ConvLSTM suite and the 2D one (about 17
seconds on 2 CPU cores); the 1D and 3D suites and the second LSTM run are marked slow.
"""

from dataclasses import dataclass

import pytest

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

    def run_and_check(self, directory):
        outcomes = self.suite.run(directory)
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
def test_keras_suite_passes_but_for_documented_differences(parity_suite, tmp_path):
    parity_suite.run_and_check(tmp_path)
