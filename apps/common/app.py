"""What the ``seqapps`` command knows of an app before TensorFlow loads.

An app is two objects: an ``App`` (this file: its name, its own flags and its defaults, in the
app's ``__init__.py``, importable in milliseconds so that ``--help`` answers at once) and a
``Task`` (``apps/common/task.py``: data, preprocessing, model, serving, report, in the app's
``task.py``), which ``App.load_task`` imports when a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.common.task import Task

COMMANDS = {
    "train": "train a model and write a run directory",
    "evaluate": "report metrics of a run directory or an export on labeled data",
    "predict": "print predictions of a run directory or an export",
    "export": "publish a run directory as a TF Serving SavedModel version",
}

# ``App.ensemble`` for apps whose ensemble size follows the size of the training data.
AUTO_ENSEMBLE = "auto"


def no_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    del command, parser


@dataclass(frozen=True)
class App:
    r"""An app's command-line face and its defaults.

    Attributes:
        name: the app's name on the command line (``seqapps train NAME``), its run directory
            (``runs/NAME``) and its export folder (``saved_models/NAME``).
        summary: one line for ``--help``.
        load_task: returns the app's ``Task``; may import TensorFlow.
        architectures: the values of ``--arch``, the first one the default.
        data_help: what ``--data`` accepts, and what is used without it.
        add_arguments: adds the app's own flags for a command (``train``, ``evaluate``,
            ``predict``, ``export``); the shared ones (``apps/common/command_line.py``) are
            already there. Must not import TensorFlow. Their values reach the task as
            ``options``, a dict keyed by the flags' ``dest``.
        hyperparameter_flags: ``dest``\ s of the app's ``train`` flags that set hyperparameters
            (``--encoder NAME`` sets ``encoder``): a given value overrides the hyperparameter as
            ``--set`` would, and config.json records it with the others.
        ensemble: ``None`` when the app's model outputs cannot be averaged (no ``--ensemble``
            flag); otherwise the default number of members, or ``AUTO_ENSEMBLE`` for
            ``Task.default_ensemble_size``.
        epochs, batch_size, patience: defaults of ``--epochs``, ``--batch-size``, ``--patience``.
        load_hypermodel: returns the app's search space for ``seqapps tune`` (a subclass of
            ``tuning.hypermodel.AppHyperModel``); may import TensorFlow. None: no search.
    """

    name: str
    summary: str
    load_task: Callable[[], Task]
    architectures: tuple[str, ...]
    data_help: str = "the dataset (default: the app's built-in data)"
    add_arguments: Callable[[str, argparse.ArgumentParser], None] = no_arguments
    hyperparameter_flags: tuple[str, ...] = ()
    ensemble: int | str | None = None
    epochs: int = 20
    batch_size: int = 32
    patience: int = 3
    load_hypermodel: Callable[[], type] | None = None

    def __post_init__(self):
        if not self.architectures:
            raise ValueError(f"app {self.name!r} needs at least one architecture")
        if self.ensemble is not None and self.ensemble != AUTO_ENSEMBLE:
            if not isinstance(self.ensemble, int) or self.ensemble < 1:
                raise ValueError(
                    f"app {self.name!r}: ensemble must be None, {AUTO_ENSEMBLE!r} or a "
                    f"positive integer, got {self.ensemble!r}"
                )

    @property
    def default_architecture(self) -> str:
        return self.architectures[0]
