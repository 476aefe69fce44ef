"""The HyperModel every app's search shares: a trial's values -> the app's own model and training.

An app's search space (``tuning/<app>.py``) is a subclass of ``AppHyperModel`` that says, for
each architecture, which of the app's hyperparameters are tuned and over which values
(``architecture_space``); everything else keeps the app's default (or the value ``--set`` gave
it). ``build(hp)`` turns a trial's values into the app's hyperparameter dict and calls the
app's own ``Task.build_model`` and ``Task.compile_model``: there is no second copy of any model.
``fit(hp, model, ...)`` trains it with the app's own ``Task.dataset`` and the same resumable
loop as ``seqapps train`` (``apps/common/training.py``), at the trial's batch size, for
``epochs`` (Hyperband's budget for the trial, or the search's ``--epochs`` with early
stopping).

Hyperparameter names in the search space: ``architecture`` (a ``Choice`` of the app's
architectures), ``batch_size``, and ``ARCH/KEY`` for the app's hyperparameter ``KEY`` under
architecture ``ARCH`` (a conditional hyperparameter, active only when ``architecture`` is
``ARCH``). Each tuned value defaults to the app's default, so a trial of all defaults is
exactly what ``seqapps train`` trains.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import keras_tuner
import numpy as np

from apps.common import drivers, training
from apps.common.datasets import Splits
from apps.common.errors import SeqappsError
from apps.common.task import Task

ARCHITECTURE = "architecture"
BATCH_SIZE = "batch_size"
#: Values that Hyperband adds to a trial's hyperparameters for its own bookkeeping.
HYPERBAND_PREFIX = "tuner/"
LIST_SEPARATOR = ","


@dataclass
class SearchContext:
    """What every trial of a search reads, prepared once per process (``tuning/search.py``).

    Attributes:
        task: the app's task.
        data: its splits (``train`` and ``validation``).
        preprocessor: the preprocessing learned once from the training split with the fixed
            hyperparameters (preprocessing is not tuned: each trial would learn it again).
        fixed: hyperparameters set for every trial (``--set``), keyed by the app's names.
        seed: seeds every trial's weights and batch order alike, so trials differ only in
            their hyperparameters.
        epochs, patience: the most epochs of a trial, and early stopping's patience.
        objective, direction: the validation metric the search optimizes ("max" or "min").
        verbose: Keras' progress bar (1) or lines (0, also ``None`` off a terminal).
    """

    task: Task
    data: Splits
    preprocessor: object
    fixed: dict
    seed: int
    epochs: int
    patience: int
    objective: str
    direction: str
    verbose: int | None = None


class Space:
    """Declares an architecture's tuned hyperparameters under their ``ARCH/KEY`` names and
    collects the trial's values under the app's keys.

    Defaults come from the app's defaults for the architecture; a list-valued hyperparameter
    (``dilations``) is a ``Choice`` of its values written ``"1,2,4"``.
    """

    def __init__(self, hp: keras_tuner.HyperParameters, architecture: str, defaults: dict):
        self.hp, self.architecture, self.defaults = hp, architecture, defaults
        self.values: dict = {}

    def _name(self, key: str) -> str:
        if key not in self.defaults:
            raise ValueError(
                f"search space: {self.architecture!r} has no hyperparameter {key!r} "
                f"(it has: {', '.join(sorted(self.defaults))})"
            )
        return f"{self.architecture}/{key}"

    def choice(self, key: str, options: Sequence) -> None:
        name, default = self._name(key), self.defaults.get(key)
        if options and isinstance(options[0], list):
            encoded = [LIST_SEPARATOR.join(str(item) for item in option) for option in options]
            default_text = LIST_SEPARATOR.join(str(item) for item in default or [])
            value = self.hp.Choice(
                name, encoded, default=default_text if default_text in encoded else None
            )
            self.values[key] = [int(item) for item in value.split(LIST_SEPARATOR)]
            return
        self.values[key] = self.hp.Choice(
            name, list(options), default=default if default in options else None
        )

    def integer(self, key: str, low: int, high: int, step: int = 1) -> None:
        default = self.defaults.get(key)
        default = default if isinstance(default, int) and low <= default <= high else None
        self.values[key] = self.hp.Int(self._name(key), low, high, step=step, default=default)

    def real(self, key: str, low: float, high: float, *, step=None, log=False) -> None:
        default = self.defaults.get(key)
        default = float(default) if default is not None and low <= default <= high else None
        self.values[key] = without_noise(
            self.hp.Float(
                self._name(key),
                low,
                high,
                step=step,
                sampling="log" if log else "linear",
                default=default,
            )
        )

    def boolean(self, key: str) -> None:
        self.values[key] = self.hp.Boolean(self._name(key), default=bool(self.defaults.get(key)))


class AppHyperModel(keras_tuner.HyperModel):
    """An app's search space (subclasses: ``architecture_space``, ``batch_sizes``) over its own
    model builders; see the module docstring."""

    #: Batch sizes tried; the app's default batch size should be one of them.
    batch_sizes: tuple[int, ...] = (16, 32, 64)

    def __init__(self, context: SearchContext, architectures: Sequence[str] | None = None):
        app = context.task.app
        super().__init__(name=f"{app.name}_search")
        self.context = context
        self.architectures = tuple(architectures or app.architectures)
        unknown = [a for a in self.architectures if a not in app.architectures]
        if unknown:
            raise SeqappsError(
                f"unknown architecture {unknown[0]!r} (choose from {', '.join(app.architectures)})"
            )

    def architecture_space(self, space: Space, architecture: str) -> None:
        """Declares ``architecture``'s tuned hyperparameters (``space.choice``, ``.real``...)."""
        raise NotImplementedError

    # === From a trial's values to the app's hyperparameters ===

    def resolve(self, hp: keras_tuner.HyperParameters) -> tuple[dict, int]:
        """``(the app's hyperparameter dict, batch size)`` of a trial's values; declares the
        hyperparameters the first time (KerasTuner's way of discovering a search space)."""
        task = self.context.task
        default_architecture = (
            task.app.default_architecture
            if task.app.default_architecture in self.architectures
            else self.architectures[0]
        )
        architecture = hp.Choice(
            ARCHITECTURE, list(self.architectures), default=default_architecture
        )
        base = drivers.resolve_hyperparameters(
            task, architecture, overrides=self.fixed_for(architecture).items()
        )
        space = Space(hp, architecture, base)
        with hp.conditional_scope(ARCHITECTURE, [architecture]):
            self.architecture_space(space, architecture)
        fixed = [key for key in space.values if key in self.context.fixed]
        if fixed:
            raise SeqappsError(
                f"--set {fixed[0]}: {architecture}'s {fixed[0]} is tuned by the search; "
                "only hyperparameters the search does not tune can be set"
            )
        batch_default = task.app.batch_size if task.app.batch_size in self.batch_sizes else None
        batch_size = hp.Choice(BATCH_SIZE, list(self.batch_sizes), default=batch_default)
        hyperparameters = drivers.resolve_hyperparameters(
            task,
            architecture,
            overrides=[*self.fixed_for(architecture).items(), *space.values.items()],
        )
        return hyperparameters, batch_size

    def fixed_for(self, architecture: str) -> dict:
        # --set values apply to the architectures that have the key (dropout: all of them).
        defaults = self.context.task.default_hyperparameters(architecture)
        return {key: value for key, value in self.context.fixed.items() if key in defaults}

    # === KerasTuner's HyperModel interface ===

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """The app's compiled model for the trial's values, its weights seeded by the search."""
        hyperparameters, _ = self.resolve(hp)
        task = self.context.task
        keras.utils.set_random_seed(self.context.seed)
        model = task.build_model(hyperparameters, self.context.preprocessor)
        return task.compile_model(model, hyperparameters)

    def fit(
        self,
        hp: keras_tuner.HyperParameters,
        model: keras.Model,
        *,
        trial_dir: Path,
        best_weights_file: Path,
        epochs: int | None = None,
        initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        **kwargs,
    ) -> dict[str, float]:
        """Trains ``model`` in ``trial_dir`` (resumable: an interrupted trial goes on from its
        last finished epoch) and returns the logs of its best epoch by the objective."""
        del kwargs
        context, task = self.context, self.context.task
        hyperparameters, batch_size = self.resolve(hp)
        train_split = context.data.split("train")
        validation_split = context.data.split("validation")
        preprocessor = context.preprocessor
        training.fit_resumable(
            lambda: model,
            lambda: task.dataset(
                train_split, preprocessor, hyperparameters, batch_size, shuffle_seed=context.seed
            ),
            task.dataset(validation_split, preprocessor, hyperparameters, batch_size),
            Path(trial_dir),
            epochs=epochs or context.epochs,
            patience=context.patience,
            monitor=context.objective,
            mode=context.direction,
            expected_batches=math.ceil(len(train_split) / batch_size),
            verbose=context.verbose,
            epoch_metrics=lambda trained: task.epoch_metrics(
                trained, preprocessor, hyperparameters, validation_split
            ),
            extra_callbacks=[TrialGuard(context.objective), *callbacks],
            initial_epoch=initial_epoch,
            best_weights_file=Path(best_weights_file),
        )
        return best_epoch_logs(Path(trial_dir))


class TrialGuard(keras.callbacks.Callback):
    """Ends a trial whose training loss is NaN or infinite as failed, with the epoch and batch
    (``keras.callbacks.TerminateOnNaN`` would stop it quietly, as if it had finished), and the
    whole search when the objective is not among the metrics an epoch logs (every trial would
    fail the same way)."""

    def __init__(self, objective: str):
        super().__init__()
        self.objective = objective

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise keras_tuner.errors.FailedTrialError(
                f"the training loss became {float(loss)} at epoch {self.epoch + 1}, batch "
                f"{batch + 1}"
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.objective not in logs:
            raise keras_tuner.errors.FatalError(
                f"--objective {self.objective}: not a metric of this app's epochs (they log "
                f"{', '.join(sorted(logs))})"
            )


def best_epoch_logs(trial_dir: Path) -> dict[str, float]:
    """The ``training_log.csv`` row of the best epoch (``best.json``), without the epoch."""
    best = training.read_json(trial_dir / training.BEST_FILE)
    with (trial_dir / training.LOG_FILE).open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if int(row["epoch"]) + 1 == best["epoch"]:
                return {name: float(value) for name, value in row.items() if name != "epoch"}
    raise SeqappsError(
        f"{trial_dir / training.LOG_FILE}: no row for the best epoch {best['epoch']}"
    )


def app_values(hp: keras_tuner.HyperParameters) -> dict:
    """A trial's tuned values under the app's names: ``architecture``, ``batch_size``, then
    ``KEY`` for each active ``ARCH/KEY`` in alphabetical order. Left out: Hyperband's
    bookkeeping, and inactive values (a trial that came through gRPC carries every
    architecture's defaults, keras-tuner #342); floats of a stepped range lose their binary
    noise (0.3, not 0.30000000000000004)."""
    active = {h.name for h in hp.space if hp.is_active(h)}
    values = hp.values
    shown = {name: values[name] for name in (ARCHITECTURE, BATCH_SIZE) if name in values}
    for name, value in sorted(values.items()):
        if name.startswith(HYPERBAND_PREFIX) or name in shown or name not in active:
            continue
        shown[name.split("/", 1)[1] if "/" in name else name] = without_noise(value)
    return shown


def without_noise(value):
    return float(f"{value:.12g}") if isinstance(value, float) else value
