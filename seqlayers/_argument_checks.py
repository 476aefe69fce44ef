"""Constructor argument checks shared by the layers: each error names the argument and value.

Every layer validates its arguments here, before it stores them, so that a wrong value fails
where it is given, with its name, rather than as a shape error deep inside ``build`` or ``call``.
"""

import numpy as np


def _is_positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_positive_int(name, value):
    if not _is_positive_int(value):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_positive_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def check_dropout_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")


def check_one_of(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def as_int_tuple(name, value, length=None):
    """``value`` as a tuple of positive ints: an int is repeated ``length`` times (once if None).

    A tuple or list must have ``length`` entries, or at least one when ``length`` is None.
    """
    values = (value,) * (length or 1) if isinstance(value, int) else value
    if (
        not isinstance(values, (tuple, list))
        or not values
        or (length is not None and len(values) != length)
        or not all(map(_is_positive_int, values))
    ):
        count = "" if length is None else f"{length} "
        raise ValueError(
            f"{name} must be a positive integer or a tuple of {count}positive integers, "
            f"got {value!r}"
        )
    return tuple(values)


def as_bool_matrix(name, value, shape):
    """``value`` (an array or nested sequences of booleans of ``shape``) as nested lists of bools.

    Integers are refused rather than read as truth values, so that a matrix of tag indices or
    scores passed by mistake fails here.
    """
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested sequences
        array = None
    if array is None or array.dtype != np.bool_ or array.shape != tuple(shape):
        received = (
            f"shape {array.shape} and dtype {array.dtype}" if array is not None else repr(value)
        )
        raise ValueError(f"{name} must be a boolean array of shape {tuple(shape)}, got {received}")
    return array.tolist()
