"""The task interface: what an app implements once, so that the generic drivers can run it.

``apps/common/drivers.py`` runs ``train``, ``evaluate``, ``predict`` and ``export`` for any
``Task``; an app's ``task.py`` implements the methods below, in their reading order:

1. data: ``load_data`` reads the dataset (or the built-in one) into ``Splits``;
2. preprocessing: ``learn_preprocessing`` writes what it learns from the training split
   (vocabularies, label names) into the run directory, ``load_preprocessor`` turns those files
   into a ``tf.Module`` that lives inside the export;
3. pipeline: ``dataset`` gives ``tf.data`` batches of ``(inputs, targets)``;
4. model: ``default_hyperparameters`` (a plain dict per architecture, which ``--set``,
   ``--hyperparameters`` and ``tuning/`` override) and ``build_model``; ``compile_model``
   adds the loss and metrics, ``monitor`` is the validation metric that selects the best epoch;
5. serving: ``serving_functions`` (the export's signatures, which also answer for a run
   directory, so both give the same answers), ``warmup_requests`` and ``export_metadata``;
6. report: ``evaluate`` scores a split through the serving signatures and ``format_report``
   prints it; ``prediction_inputs`` and ``format_prediction`` serve ``seqapps predict``.

An app whose outputs average (class probabilities) can be trained as an ensemble
(``App.ensemble``); the drivers average the members' outputs, the task does nothing more.
Nothing in this module imports TensorFlow; implementations do.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apps.common.app import App
from apps.common.datasets import Splits

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

    from apps.common.predictor import Predictor

SERVING_DEFAULT = "serving_default"


class Task(abc.ABC):
    """An app's data, preprocessing, model, serving signatures and report (see the module)."""

    #: The app's command-line face; a class attribute of each implementation.
    app: App
    #: The validation metric that selects the best epoch (``keras.Model.fit`` log name) and
    #: whether larger is better ("max") or smaller ("min").
    monitor: str = "val_accuracy"
    monitor_mode: str = "max"

    # === Data ===

    @abc.abstractmethod
    def load_data(
        self, path: Path | None, options: dict, *, seed: int, for_training: bool
    ) -> Splits:
        """The dataset at ``path`` (``None``: the app's built-in data).

        ``for_training``: the splits ``train`` and ``validation`` must exist (hold a seeded
        part of train back when the dataset has no validation split: ``Splits.hold_out``);
        otherwise a single file is one split, ``WHOLE_FILE``. Errors name file, line and value
        (``SeqappsError``).
        """

    def default_ensemble_size(self, train: Sized) -> int:
        """Members of an ensemble when ``App.ensemble`` is ``AUTO_ENSEMBLE``."""
        del train
        return 1

    def averages(self, hyperparameters: dict) -> str | None:
        """None when models with these hyperparameters can be averaged into an ensemble (their
        outputs are probabilities of the same classes); otherwise why not, for the error."""
        del hyperparameters
        return None

    # === Preprocessing learned from the training data ===

    @abc.abstractmethod
    def learn_preprocessing(self, data: Splits, hyperparameters: dict, run_dir: Path) -> None:
        """Writes into ``run_dir`` what preprocessing learns from ``data`` (vocabularies...).

        Called whenever training starts or resumes: keep files that exist, and write each
        atomically (a resumed run must see the files of the interrupted one).
        """

    @abc.abstractmethod
    def load_preprocessor(self, run_dir: Path, hyperparameters: dict) -> tf.Module:
        """The preprocessing written by ``learn_preprocessing``, as a ``tf.Module`` whose
        files are ``tf.saved_model.Asset``\\ s (the export carries them)."""

    # === tf.data pipeline ===

    @abc.abstractmethod
    def dataset(
        self,
        examples: Any,
        preprocessor: tf.Module,
        hyperparameters: dict,
        batch_size: int,
        *,
        shuffle_seed: int | None = None,
    ) -> tf.data.Dataset:
        """Batches of ``(inputs, targets)`` for ``keras.Model.fit`` (shuffled with a seed)."""

    # === Model ===

    @abc.abstractmethod
    def default_hyperparameters(self, architecture: str) -> dict:
        """Every hyperparameter of ``architecture`` with its default, ``"architecture"``
        included. ``--set`` may only change keys listed here, to values of the same type."""

    @abc.abstractmethod
    def build_model(self, hyperparameters: dict, preprocessor: tf.Module) -> keras.Model:
        """The uncompiled model for ``hyperparameters`` (sizes come from ``preprocessor``)."""

    def monitor_for(self, data: Splits) -> tuple[str, str]:
        """``(metric, "max" or "min")`` that selects the best epoch on this data; by default
        ``monitor`` and ``monitor_mode`` (entity data may rather select by entity F1)."""
        del data
        return self.monitor, self.monitor_mode

    def epoch_metrics(
        self, model: keras.Model, preprocessor: tf.Module, hyperparameters: dict, examples: Any
    ) -> dict[str, float]:
        """Validation metrics that Keras cannot compute batch by batch (entity F1, BLEU), after
        every epoch; they join the epoch's logs as ``val_<name>`` (to monitor, to log)."""
        del model, preprocessor, hyperparameters, examples
        return {}

    def compile_model(self, model: keras.Model, hyperparameters: dict) -> keras.Model:
        """Adam at ``hyperparameters["learning_rate"]``, sparse cross-entropy and accuracy;
        override for other losses, metrics or schedules."""
        import keras

        model.compile(
            optimizer=keras.optimizers.Adam(hyperparameters["learning_rate"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    # === Serving ===

    @abc.abstractmethod
    def serving_functions(
        self, model: keras.Model, preprocessor: tf.Module, options: dict | None = None
    ) -> dict:
        """``{signature name: tf.function with an input_signature}``; ``"serving_default"``
        first. Raw inputs in (strings, encoded images), readable answers out. ``options``: the
        app's flags of ``export`` (a beam width...), empty for other commands."""

    @abc.abstractmethod
    def warmup_requests(self) -> list[tuple[str, dict[str, list]]]:
        """``(signature name, inputs)`` pairs: TF Serving replays them when it loads the
        export, and ``seqapps export`` checks them in a fresh process before publishing."""

    def export_metadata(self, preprocessor: tf.Module, options: dict | None = None) -> dict:
        """What a client needs to read the answers (label names...), for the export config;
        ``options`` as for ``serving_functions``."""
        del preprocessor, options
        return {}

    # === Report ===

    @abc.abstractmethod
    def evaluate(self, predictor: Predictor, examples: Any, options: dict | None = None) -> dict:
        """Metrics of ``predictor`` (a run directory or an export) on ``examples``: a JSON-able
        dict with ``"examples"`` and the task's metrics (the driver adds ``"split"``).
        ``options``: the app's flags of the command, and ``"split"``, the split's name."""

    @abc.abstractmethod
    def format_report(self, report: dict) -> str:
        """``evaluate``'s report for people."""

    # === Prediction ===

    def prediction_inputs(self, lines: Sequence[str], options: dict) -> dict[str, list]:
        """The serving signature's inputs for lines of ``seqapps predict``."""
        del options
        return {"text": list(lines)}

    @abc.abstractmethod
    def format_prediction(self, line: str, outputs: dict[str, np.ndarray]) -> str:
        """One input line's answer (``outputs``: the signature's outputs for it) for people."""

    def prediction_record(self, outputs: dict[str, np.ndarray]) -> dict:
        """One input's answer for ``predict --json``: by default every signature output as it
        is (arrays become lists); override to drop batch padding or add derived fields."""
        return dict(outputs)

    def predict_lines(
        self, predictor: Predictor, lines: Iterable[str], options: dict
    ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """``(line, outputs)`` for each line, through ``serving_default``, in batches."""
        for batch in predictor.batched(lines):
            outputs = predictor.answer(self.prediction_inputs(batch, options))
            yield from zip(batch, outputs, strict=True)
