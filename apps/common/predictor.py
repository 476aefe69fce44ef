"""A run directory or an export, answering through the same serving signatures.

``load_predictor(task, path)`` takes a training run directory, an export version
(``saved_models/APP/3``) or an app's export folder (its newest version). Both kinds answer
through the task's serving functions, traced in this process for a run directory and loaded from
the SavedModel for an export, so ``evaluate`` and ``predict`` give the same answers for a run and
its export (the tests hold them to it).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps.common import export as export_tools
from apps.common import training
from apps.common.errors import SeqappsError
from apps.common.progress import Progress
from apps.common.task import SERVING_DEFAULT, Task

PREDICTION_BATCH = 256


class Predictor:
    """Serving signatures with their export config (``metadata``), called in batches.

    Attributes:
        source: the run directory or export version it came from.
        signatures: ``{name: callable(**inputs) -> {output: tensor}}``.
        metadata: the export config (``apps/common/export.py``): app, architecture, label
            names and what else a client needs to read the answers (a run directory's lacks
            the signature descriptions, which only an export writes).
    """

    def __init__(self, source: Path, signatures: dict[str, Callable], metadata: dict):
        self.source, self.signatures, self.metadata = Path(source), signatures, metadata

    def batched(self, items: Iterable, size: int = PREDICTION_BATCH) -> Iterator[list]:
        iterator = iter(items)
        while batch := list(itertools.islice(iterator, size)):
            yield batch

    def outputs(
        self, inputs: dict[str, Sequence], signature: str = SERVING_DEFAULT
    ) -> dict[str, np.ndarray]:
        """The signature's outputs for one batch of ``inputs``."""
        if signature not in self.signatures:
            raise SeqappsError(
                f"{self.source}: no signature {signature!r} (it has {sorted(self.signatures)})"
            )
        outputs = self.signatures[signature](
            **{name: tf.constant(list(values)) for name, values in inputs.items()}
        )
        return {name: value.numpy() for name, value in outputs.items()}

    def answer(
        self, inputs: dict[str, Sequence], signature: str = SERVING_DEFAULT
    ) -> list[dict[str, np.ndarray]]:
        """The signature's outputs for one batch of ``inputs``, one dict per example."""
        arrays = self.outputs(inputs, signature)
        count = len(next(iter(inputs.values())))
        return [{name: array[index] for name, array in arrays.items()} for index in range(count)]

    def answer_all(
        self, inputs: dict[str, Sequence], signature: str = SERVING_DEFAULT, what="predicting"
    ) -> list[dict[str, np.ndarray]]:
        """``answer`` over any number of examples, in batches, with progress."""
        names = list(inputs)
        count = len(inputs[names[0]]) if names else 0
        rows = []
        with Progress(what, count, "examples") as progress:
            for start in range(0, count, PREDICTION_BATCH):
                batch = {name: inputs[name][start : start + PREDICTION_BATCH] for name in names}
                rows.extend(self.answer(batch, signature))
                progress.advance(len(batch[names[0]]))
        return rows


class RunPredictor(Predictor):
    """A training run directory: its model, its preprocessor and the task's serving functions."""

    def __init__(
        self,
        task: Task,
        run_dir: Path,
        *,
        model: keras.Model | None = None,
        preprocessor: tf.Module | None = None,
        options: dict | None = None,
        float16: bool = False,
    ):
        """``float16``: the model computes under ``mixed_float16`` and the signatures still
        return float32 (``export --float16``)."""
        run_dir = Path(run_dir)
        self.config = training.read_json(run_dir / training.CONFIG_FILE)
        check_app(task, self.config.get("app"), run_dir, "run")
        if model is None:
            model_path = run_dir / training.MODEL_FILE
            if not model_path.exists():
                raise SeqappsError(f"{run_dir}: no {training.MODEL_FILE} yet (is training done?)")
            model = keras.models.load_model(model_path)
        self.model = export_tools.mixed_float16_copy(model) if float16 else model
        hyperparameters = self.config["hyperparameters"]
        self.preprocessor = preprocessor or task.load_preprocessor(run_dir, hyperparameters)
        options = options or {}
        signatures = task.serving_functions(self.model, self.preprocessor, options)
        if next(iter(signatures), None) != SERVING_DEFAULT:
            raise ValueError(
                f"{type(task).__name__}.serving_functions must list {SERVING_DEFAULT} first"
            )
        metadata = export_tools.export_config(
            task.app.name, self.config, task.export_metadata(self.preprocessor, options)
        )
        if float16:
            signatures = {
                name: export_tools.with_float32_outputs(function)
                for name, function in signatures.items()
            }
            metadata["precision"] = export_tools.MIXED_FLOAT16
        super().__init__(run_dir, signatures, metadata)


class ExportPredictor(Predictor):
    """A SavedModel written by ``seqapps export``: calls its signatures."""

    def __init__(self, task: Task, export_dir: Path):
        metadata = export_tools.read_export_config(export_dir)
        check_app(task, metadata.get("app"), export_dir, "export")
        loaded = tf.saved_model.load(str(export_dir))
        super().__init__(export_dir, dict(loaded.signatures), metadata)
        self.loaded = loaded  # keeps the signatures' resources alive


def check_app(task: Task, app: str | None, path: Path, kind: str) -> None:
    if app != task.app.name:
        raise SeqappsError(f"{path}: a {app!r} {kind}, not {task.app.name!r}")


def resolve_model_path(path: Path) -> Path:
    """An export version for an app's export folder (its newest version); else ``path``."""
    path = Path(path)
    versions = export_tools.existing_versions(path)
    if not export_tools.is_export(path) and versions:
        return path / str(versions[-1])
    return path


def load_predictor(task: Task, path: Path) -> Predictor:
    """A run directory, an export version, or an app's export folder (its newest version)."""
    path = resolve_model_path(path)
    if export_tools.is_export(path):
        return ExportPredictor(task, path)
    if (path / training.CONFIG_FILE).exists():
        return RunPredictor(task, path)
    raise SeqappsError(
        f"{path}: neither a training run directory (config.json, model.keras) nor an export "
        "(saved_model.pb, or numbered versions of one)"
    )
