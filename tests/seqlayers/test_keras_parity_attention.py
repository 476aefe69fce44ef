"""Keras's own tests of ``keras.layers.MultiHeadAttention``, run against ours.

``seqlayers.MultiHeadAttention`` claims to be a drop-in for Keras's layer. The proof is Keras's
test file from the installed wheel (``keras/src/layers/attention/multi_head_attention_test.py``)
with the class under test replaced by ours and nothing else changed: every test passes but
the expected failures listed here, each a documented difference with its reason. A Keras
release whose tests our layer no longer passes fails this test, and so does a listed failure
that starts passing.

Not run here, because Keras skips them on the TensorFlow backend: the flash-attention tests
(``test_basics_with_flash_attention``, ``test_flash_attention_with_errors``);
``test_multi_head_attention.py`` checks that ``flash_attention`` behaves as Keras's on this
backend.
"""

import pytest

from tests.seqlayers.keras_suites import KerasSuite

MULTI_HEAD_ATTENTION = KerasSuite(
    "layers/attention/multi_head_attention_test.py",
    [("layers.MultiHeadAttention", "seqlayers.MultiHeadAttention")],
    # None: the documented differences (zero outputs for queries with nothing to attend,
    # explicit padding masks taking precedence, the cache) are outside what these tests check.
    expected_failures={},
)


# A parameter, so that the keras_suite_outcomes fixture (tests/seqlayers/conftest.py) runs this
# suite in the same process as the recurrent ones.
@pytest.mark.parametrize("suite", [MULTI_HEAD_ATTENTION], ids=["multi_head_attention"])
def test_keras_multi_head_attention_tests_pass_against_ours(suite, keras_suite_outcomes):
    outcomes = keras_suite_outcomes(suite)
    suite.check(outcomes)
    # The whole file ran: 48 tests in Keras 3.15.1, the two flash-attention ones skipped.
    assert len(outcomes) >= 48, sorted(outcomes)
