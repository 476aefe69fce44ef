"""Imports TensorFlow without its C++ start-up noise: for the ``seqapps`` command, tests, scripts.

Importing this module loads TensorFlow quietly; that side effect is its purpose, so it belongs to
programs (``seqapps``, pytest's conftest, the benchmarks), never to the ``seqlayers`` library,
whose import leaves the process as it found it.

TensorFlow's native libraries write INFO lines to file descriptor 2 while they load (oneDNN notices,
"Could not find cuda drivers", "failed call to cuInit" on CPU-only machines), before its own
log-level setting is read, so ``TF_CPP_MIN_LOG_LEVEL`` alone cannot hide them. We raise the log
level (process-wide, so child processes inherit it) and point descriptor 2 at /dev/null only while
TensorFlow loads and enumerates devices.

A user who sets ``TF_CPP_MIN_LOG_LEVEL`` (to any value, e.g. ``0`` for everything) keeps full
control: then nothing is redirected and their level applies. The level we set is marked as ours
(``SEQAPPS_QUIET_TENSORFLOW``), so that child processes, which inherit it, start quietly too.
"""

import contextlib
import os
import sys

LEVEL = "TF_CPP_MIN_LOG_LEVEL"
MARKER = "SEQAPPS_QUIET_TENSORFLOW"  # holds the level we set, inherited with it
QUIET_LEVEL = "3"


@contextlib.contextmanager
def _stderr_descriptor_silenced():
    sys.stderr.flush()
    saved_descriptor = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved_descriptor, 2)
        os.close(saved_descriptor)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow (once) with its native start-up logging hidden, unless the user asked."""
    if "tensorflow" in sys.modules:
        return
    ours = os.environ.get(MARKER) == QUIET_LEVEL == os.environ.get(LEVEL)
    if LEVEL in os.environ and not ours:
        import tensorflow  # noqa: F401  (the user's log level applies)

        return
    # 3: also runtime ERROR-level notices such as "oneDNN supports DT_BOOL only on platforms
    # with AVX-512", which are fallbacks, not failures (real failures raise Python exceptions).
    os.environ[LEVEL] = os.environ[MARKER] = QUIET_LEVEL
    with _stderr_descriptor_silenced():
        # A Python exception raised here propagates and is printed after stderr is restored.
        import tensorflow as tf

        # Device discovery (and cuInit's error on CPU-only machines) happens lazily otherwise.
        tf.config.list_physical_devices()


import_tensorflow_quietly()
