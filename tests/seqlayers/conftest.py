"""Fixtures of the seqlayers tests: the Keras suites a session checks, run together."""

import pytest

from tests.seqlayers.keras_suites import KerasSuite, SuiteOutcomes


@pytest.fixture(scope="session")
def keras_suite_outcomes(request, tmp_path_factory) -> SuiteOutcomes:
    """``keras_suite_outcomes(suite)``: ``{test name: outcome}`` of a ``KerasSuite``.

    The suites that the session's selected tests take as parameters (a ``KerasSuite``, or an
    object whose ``suite`` is one) share one fresh pytest process: it saves the 5-8 s that
    starting each one and importing TensorFlow takes. Suites of tests marked slow run on their
    own, as before: the second LSTM suite registers the same ``ZeroPeepholeLSTM`` name as the
    first, which one process would share between them.
    """
    together = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or item.get_closest_marker("slow") is not None:
            continue
        for value in callspec.params.values():
            suite = getattr(value, "suite", value)
            if isinstance(suite, KerasSuite) and all(suite is not s for s in together):
                together.append(suite)
    return SuiteOutcomes(together, lambda: tmp_path_factory.mktemp("keras_suites"))
