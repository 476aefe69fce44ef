"""The generic drivers: ``train``, ``evaluate``, ``predict`` and ``export`` for any ``Task``.

They hold everything apps share (run directories and resume, ensembles, progress, the export's
layout, checks and atomic publication, run-directory/export resolution), so that an app's
folder holds only what is its own (``apps/common/task.py`` lists it). ``seqapps`` calls them
through ``apps/common/command_line.py``; ``tuning/`` and the benchmarks call them directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from apps.common import export as export_tools
from apps.common import hyperparameters as hyperparameter_tools
from apps.common import training
from apps.common.app import AUTO_ENSEMBLE
from apps.common.command_line import EXPORTS_DIR
from apps.common.errors import SeqappsError
from apps.common.predictor import RunPredictor, load_predictor, resolve_model_path
from apps.common.task import Task

read_export_config = export_tools.read_export_config
VALIDATION_FRACTION = 0.1


def resolve_hyperparameters(
    task: Task,
    architecture: str | None = None,
    file: Path | None = None,
    overrides: Iterable[tuple[str, object]] = (),
) -> dict:
    """The task's defaults for the architecture, overridden (``apps/common/hyperparameters.py``)."""
    return hyperparameter_tools.resolve_hyperparameters(
        task.default_hyperparameters, task.app.architectures, architecture, file, overrides
    )


@dataclass
class TrainingSettings:
    """Everything ``train`` needs besides the task; ``config.json`` records all but
    ``overwrite``, ``patience`` and ``verbose`` (which a resumed run may change)."""

    out: Path
    hyperparameters: dict
    data: Path | None = None
    options: dict = field(default_factory=dict)
    seed: int = 0
    epochs: int = 20
    batch_size: int = 32
    patience: int = 3
    ensemble: int | str | None = None  # None: the app's default
    overwrite: bool = False
    verbose: int | None = None  # None: a progress bar on a terminal, lines in a log


def ensemble_members(task: Task, requested: int | str | None, train_examples) -> int:
    """How many models to average: ``--ensemble``, else the app's default (1 for an app whose
    outputs do not average)."""
    if task.app.ensemble is None:
        if requested not in (None, 1):
            raise SeqappsError(
                f"{task.app.name} does not average its models' outputs; --ensemble is not available"
            )
        return 1
    if requested is None:
        requested = task.app.ensemble
    if requested == AUTO_ENSEMBLE:
        return task.default_ensemble_size(train_examples)
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise SeqappsError(f"--ensemble must be at least 1, got {requested}")
    return requested


def check_averageable(task: Task, members: int, hyperparameters: dict) -> None:
    reason = task.averages(hyperparameters) if members > 1 else None
    if reason:
        raise SeqappsError(f"--ensemble {members}: {reason}")


def train(task: Task, settings: TrainingSettings) -> dict:
    """Trains into a run directory (``apps/common/training.py``); returns validation metrics.

    Re-running with the same settings resumes an interrupted run.
    """
    out, hp = Path(settings.out), settings.hyperparameters
    if settings.ensemble not in (None, AUTO_ENSEMBLE):
        # Refuse a bad size before reading the data.
        check_averageable(task, ensemble_members(task, settings.ensemble, ()), hp)
    data = task.load_data(settings.data, settings.options, seed=settings.seed, for_training=True)
    train_split, validation_split = data.split("train"), data.split("validation")
    members = ensemble_members(task, settings.ensemble, train_split)
    check_averageable(task, members, hp)
    monitor, monitor_mode = task.monitor_for(data)
    config = {
        "app": task.app.name,
        "architecture": hp["architecture"],
        "hyperparameters": hp,
        "options": settings.options,
        "data": data.description,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "seed": settings.seed,
        "ensemble": members,
    }
    resuming = training.prepare_run_directory(out, config, settings.overwrite)
    print(f"data: {data.description}")
    print(f"splits: {data.sizes()}")
    task.learn_preprocessing(data, hp, out)
    preprocessor = task.load_preprocessor(out, hp)
    print(
        f"{'resuming' if resuming else 'training'} {hp['architecture']}"
        + (f" (an ensemble of {members})" if members > 1 else "")
        + f" in {out}",
        flush=True,
    )

    def build_member(member_seed: int) -> keras.Model:
        keras.utils.set_random_seed(member_seed)
        return task.compile_model(task.build_model(hp, preprocessor), hp)

    def train_batches(member_seed: int):
        return task.dataset(
            train_split, preprocessor, hp, settings.batch_size, shuffle_seed=member_seed
        )

    model = training.fit_ensemble(
        build_member,
        train_batches,
        task.dataset(validation_split, preprocessor, hp, settings.batch_size),
        out,
        members=members,
        seed=settings.seed,
        epochs=settings.epochs,
        patience=settings.patience,
        monitor=monitor,
        mode=monitor_mode,
        expected_batches=math.ceil(len(train_split) / settings.batch_size),
        verbose=settings.verbose,
        epoch_metrics=lambda model: task.epoch_metrics(model, preprocessor, hp, validation_split),
    )
    predictor = RunPredictor(task, out, model=model, preprocessor=preprocessor)
    options = {**settings.options, "split": "validation"}
    metrics = {"split": "validation", **task.evaluate(predictor, validation_split, options)}
    training.write_json_atomically(out / training.METRICS_FILE, metrics)
    print(format_evaluation(task, metrics))
    print(f"model in {out / training.MODEL_FILE}")
    return metrics


def evaluate(
    task: Task,
    model_path: Path,
    data_path: Path | None,
    *,
    split: str = "test",
    seed: int = 0,
    options: dict | None = None,
) -> dict:
    """Metrics of a run directory or export on one split (a single file: all of it)."""
    predictor = load_predictor(task, model_path)
    data = task.load_data(data_path, options or {}, seed=seed, for_training=False)
    examples = data.split(split)
    name = data.split_name(split)
    return {"split": name, **task.evaluate(predictor, examples, {**(options or {}), "split": name})}


def format_evaluation(task: Task, report: dict) -> str:
    return f"split     {report['split']}\n{task.format_report(report)}"


def jsonable(value):
    """Signature outputs as JSON values: arrays as lists, bytes as text."""
    if isinstance(value, np.ndarray):
        return [jsonable(item) for item in value] if value.ndim else jsonable(value.item())
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def predict(
    task: Task, model_path: Path, lines: Iterable[str], options: dict, as_json: bool = False
) -> Iterator[str]:
    """Each input line's answer, as the task prints it or as one JSON object a line."""
    predictor = load_predictor(task, model_path)
    for line, outputs in task.predict_lines(predictor, lines, options):
        if as_json:
            record = task.prediction_record(outputs)
            answer = {name: jsonable(value) for name, value in sorted(record.items())}
            yield json.dumps({"input": line, **answer}, ensure_ascii=False)
        else:
            yield task.format_prediction(line, outputs)


def export(
    task: Task,
    run_dir: Path,
    base: Path = EXPORTS_DIR,
    version: int | None = None,
    *,
    check: bool = True,
    options: dict | None = None,
    float16: bool = False,
) -> Path:
    """Publishes ``base/APP/<version>/`` from a run directory (``apps/common/export.py``);
    ``options``: the app's flags of ``export``, for its serving functions; ``float16``: the
    model computes under ``mixed_float16`` (outputs still float32; the check then compares the
    export with the same float16 model run here)."""
    run_dir = Path(run_dir)
    if export_tools.is_export(resolve_model_path(run_dir)):
        raise SeqappsError(f"{run_dir} is already an export; pass the training run directory")
    predictor = RunPredictor(task, run_dir, options=options, float16=float16)
    if float16:
        for name, function in predictor.signatures.items():
            try:
                function.get_concrete_function()  # traced now: a failure names the signature
            except (TypeError, ValueError) as error:
                reason = str(error).strip().splitlines()[-1].strip()
                raise SeqappsError(
                    f"--float16: the {task.app.name} model ({predictor.config['architecture']}) "
                    f"does not trace under mixed_float16 in signature {name!r}: {reason}"
                ) from None
    requests = task.warmup_requests()

    def write(export_dir: Path) -> None:
        archive = keras.export.ExportArchive()
        archive.track(predictor.model)
        archive.track(predictor.preprocessor)
        for name, function in predictor.signatures.items():
            archive.add_endpoint(name, function)
        archive.write_out(str(export_dir), verbose=False)
        signatures = export_tools.describe_signatures(predictor.signatures)
        export_tools.write_warmup_requests(export_dir, task.app.name, requests)
        # Every export gets the op audit; with check, the same fresh process answers requests.
        checked = export_tools.check_in_fresh_process(export_dir, requests if check else ())
        export_tools.write_export_config(
            export_dir,
            {**predictor.metadata, "signatures": signatures, "serving_ops": checked.serving_ops},
        )
        if check:
            expected = [predictor.outputs(inputs, signature) for signature, inputs in requests]
            export_tools.assert_same_answers(expected, checked.answers, requests)

    return export_tools.publish_atomically(write, base, task.app.name, version)
