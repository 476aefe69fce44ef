"""Hyperparameters: a plain dict per architecture, overridden from a JSON file and ``--set``.

Precedence, lowest first: the task's defaults for the architecture, the JSON file
(``--hyperparameters FILE.json``, e.g. the best of a tuner search), then each ``--set KEY=VALUE``.
The architecture is ``--arch``, else the file's ``"architecture"``, else the app's default; a
file and ``--arch`` that disagree are an error rather than a guess. Every key must be one the
architecture has, with a value of its default's type (an integer where a float is expected is
fine), so that a typo is an error instead of a silently ignored setting.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from apps.common.errors import SeqappsError

ARCHITECTURE = "architecture"


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _compatible(value, default) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, list):
        return isinstance(value, list) and (
            not default or all(_compatible(item, default[0]) for item in value)
        )
    if default is None:
        return True  # optional settings take any JSON value; the builder checks it
    return isinstance(value, type(default))


def check_overrides(defaults: dict, overrides: dict, source: str) -> dict:
    """``overrides`` checked against ``defaults``: known keys, values of the default's type."""
    architecture = defaults.get(ARCHITECTURE, "?")
    for key, value in overrides.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise SeqappsError(
                f"{source}: unknown hyperparameter {key!r} for architecture {architecture!r} "
                f"(it has: {known})"
            )
        if not _compatible(value, defaults[key]):
            raise SeqappsError(
                f"{source}: hyperparameter {key!r} must be {_type_name(defaults[key])} like "
                f"its default {defaults[key]!r}, got {value!r}"
            )
    return {
        key: float(value) if isinstance(defaults[key], float) else value
        for key, value in overrides.items()
    }


def read_hyperparameter_file(path: Path) -> dict:
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise SeqappsError(f"{path}: not found") from error
    except json.JSONDecodeError as error:
        raise SeqappsError(f"{path}, line {error.lineno}: invalid JSON ({error.msg})") from error
    if not isinstance(content, dict):
        raise SeqappsError(f"{path}: expected a JSON object of hyperparameters")
    return content


def resolve_hyperparameters(
    defaults_for: Callable[[str], dict],
    architectures: Iterable[str],
    architecture: str | None = None,
    file: Path | None = None,
    overrides: Iterable[tuple[str, object]] = (),
) -> dict:
    """The full hyperparameter dict (see the module docstring for the precedence).

    Args:
        defaults_for: the task's ``default_hyperparameters(architecture)``.
        architectures: the app's architectures, the first one the default.
        architecture: ``--arch``, or None.
        file: ``--hyperparameters``, or None.
        overrides: the ``(key, value)`` pairs of ``--set``, in order.
    """
    architectures = tuple(architectures)
    from_file = read_hyperparameter_file(file) if file is not None else {}
    overrides = dict(overrides)
    chosen = [
        (source, value)
        for source, value in (
            ("--arch", architecture),
            (str(file), from_file.get(ARCHITECTURE)),
            ("--set", overrides.get(ARCHITECTURE)),
        )
        if value is not None
    ]
    if len({value for _, value in chosen}) > 1:
        said = ", ".join(f"{source} says {value!r}" for source, value in chosen)
        raise SeqappsError(f"conflicting architectures: {said}")
    architecture = chosen[0][1] if chosen else architectures[0]
    if architecture not in architectures:
        raise SeqappsError(
            f"unknown architecture {architecture!r} (choose from {', '.join(architectures)})"
        )
    defaults = defaults_for(architecture)
    hyperparameters = dict(defaults)
    hyperparameters.update(check_overrides(defaults, from_file, str(file)))
    hyperparameters.update(check_overrides(defaults, overrides, "--set"))
    return hyperparameters
