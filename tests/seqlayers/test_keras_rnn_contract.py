"""What the LSTM layers take from keras.layers.RNN beyond its documented API, as verified.

``seqlayers._lstm_base.LSTMLayerBase`` does what ``keras.layers.RNN.call`` does, written out so
that its loop is told whether the states start at zero, and runs the steps with
``keras.layers.RNN.inner_loop(sequences, states, mask, training=False)``, a method Keras does
not document. Both were read in the Keras version below; setup.cfg admits only that version's
series. When Keras changes either one, these tests fail and say what to re-verify.
"""

import configparser
import hashlib
import inspect
from pathlib import Path

import keras
import pytest
from packaging.requirements import Requirement

VERIFIED_KERAS = "3.15.1"
INNER_LOOP_SIGNATURE = "(self, sequences, initial_state, mask, training=False)"
# sha256 of inspect.getsource(keras.layers.RNN.<method>) in VERIFIED_KERAS.
SOURCE_FINGERPRINTS = {
    "call": "e580bb43258da9c3ece1b7346d52dfd0c2c4ad8dafa18521811ea60263e28185",
    "inner_loop": "95624f67dd86cc320a939b97040628bb7a5b119bb7c2dd7683723a81cc27d5ae",
}

RE_VERIFY = f"""
seqlayers relies on this: LSTMLayerBase.call (seqlayers/_lstm_base.py) re-does
keras.layers.RNN.call, and LSTMLayerBase.loop_over_steps calls keras.layers.RNN.inner_loop.
Verified with Keras {VERIFIED_KERAS}; installed: Keras {keras.__version__}. To move on:
  1. read keras.layers.RNN.call and keras.layers.RNN.inner_loop in the new Keras and port any
     change to LSTMLayerBase.call / run_steps / loop_over_steps (initial and stateful states,
     dtype casts, state updates, masks, dropout hooks, how inner_loop is called);
  2. run tests/seqlayers/test_peephole_lstm.py and tests/seqlayers/test_conv_lstm.py whole
     (no -m: the slow tests too); they compare against keras.layers.LSTM and
     keras.layers.ConvLSTM2D, masked, backwards, unrolled, stateful;
  3. record the new version, signature and fingerprints in this file, and move the keras pin
     in setup.cfg (and its assertion in tests/test_cli_and_packaging.py) to the version verified.
"""


def source_fingerprint(function):
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def test_inner_loop_takes_the_arguments_we_pass():
    signature = str(inspect.signature(keras.layers.RNN.inner_loop))
    assert signature == INNER_LOOP_SIGNATURE, (
        f"keras.layers.RNN.inner_loop{signature} is not inner_loop{INNER_LOOP_SIGNATURE}."
        f"{RE_VERIFY}"
    )


@pytest.mark.parametrize("method", sorted(SOURCE_FINGERPRINTS))
def test_keras_rnn_method_is_the_one_verified(method):
    fingerprint = source_fingerprint(getattr(keras.layers.RNN, method))
    assert fingerprint == SOURCE_FINGERPRINTS[method], (
        f"The source of keras.layers.RNN.{method} changed (sha256 {fingerprint[:12]}..., "
        f"verified {SOURCE_FINGERPRINTS[method][:12]}...).{RE_VERIFY}"
    )


def test_the_keras_pin_admits_the_verified_version_and_its_patch_releases_only():
    config = configparser.ConfigParser()
    config.read(Path(__file__).parents[2] / "setup.cfg")
    (pin,) = (
        Requirement(line)
        for line in config["options"]["install_requires"].split()
        if Requirement(line).name == "keras"
    )
    major, minor, patch = (int(part) for part in VERIFIED_KERAS.split("."))
    assert pin.specifier.contains(VERIFIED_KERAS), f"{pin} excludes {VERIFIED_KERAS}.{RE_VERIFY}"
    assert pin.specifier.contains(f"{major}.{minor}.{patch + 1}")
    for unverified in (f"{major}.{minor + 1}.0", f"{major + 1}.0.0", f"{major}.{minor - 1}.0"):
        assert not pin.specifier.contains(unverified), (
            f"{pin} admits Keras {unverified}, which these tests never ran on.{RE_VERIFY}"
        )
    assert pin.specifier.contains(keras.__version__), (
        f"the installed Keras {keras.__version__} is outside {pin}.{RE_VERIFY}"
    )
