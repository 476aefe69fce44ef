"""Training runs that survive a crash: run directories, resumable fit, the best model kept.

A run directory holds everything one ``seqapps train`` produced::

    config.json         the app, its arguments and what the data was (written first)
    model.keras         the best model so far by the monitored validation metric
    best.json           that metric's best value and epoch (so a resumed run keeps it)
    training_log.csv    one row per epoch (appended across resumes)
    tensorboard/        TensorBoard logs
    backup/             Keras BackupAndRestore state while training is unfinished
    metrics.json        validation metrics of the final model (written last)

Re-running the same command on the same directory after a crash or Ctrl-C resumes from the last
completed epoch; a finished run is never overwritten unless asked.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import keras

from apps.common.errors import SeqappsError

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
BEST_FILE = "best.json"
METRICS_FILE = "metrics.json"
BACKUP_DIR = "backup"


def write_json_atomically(path: Path, content: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise SeqappsError(f"{path}: not found") from error
    except json.JSONDecodeError as error:
        raise SeqappsError(f"{path}, line {error.lineno}: invalid JSON ({error.msg})") from error


def prepare_run_directory(run_dir: Path, config: dict, overwrite: bool) -> bool:
    """Creates or reopens ``run_dir``; returns True when an unfinished run is resumed.

    Raises SeqappsError when the directory holds a finished run (unless ``overwrite``) or an
    unfinished run with a different configuration.
    """
    config_path = run_dir / CONFIG_FILE
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    if config_path.exists():
        previous = read_json(config_path)
        if (run_dir / METRICS_FILE).exists():
            raise SeqappsError(
                f"{run_dir} holds a finished run; choose another --out or pass --overwrite"
            )
        differences = sorted(
            key for key in set(previous) | set(config) if previous.get(key) != config.get(key)
        )
        if differences:
            details = ", ".join(
                f"{key}: {previous.get(key)!r} -> {config.get(key)!r}" for key in differences
            )
            raise SeqappsError(
                f"{run_dir} holds an unfinished run with other settings ({details}); re-run with "
                "the same arguments to resume it, or pass --overwrite to start over"
            )
        return True
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(config_path, config)
    return False


class KeepBestModel(keras.callbacks.Callback):
    """Saves the model whenever the monitored metric improves; remembers the best across resumes."""

    def __init__(self, run_dir: Path, monitor: str, mode: str = "max"):
        super().__init__()
        self.model_path = run_dir / MODEL_FILE
        self.best_path = run_dir / BEST_FILE
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = read_json(self.best_path)["value"] if self.best_path.exists() else None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isnan(value):
            return
        if self.best is None or self.sign * (value - self.best) > 0:
            self.best = float(value)
            temporary = self.model_path.with_name(f".tmp-{os.getpid()}-{MODEL_FILE}")
            self.model.save(temporary)
            os.replace(temporary, self.model_path)
            write_json_atomically(
                self.best_path, {"monitor": self.monitor, "value": self.best, "epoch": epoch + 1}
            )


class EpochSummary(keras.callbacks.Callback):
    """One line per epoch: every logged metric and the epoch's wall-clock time."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        metrics = " ".join(f"{name} {value:.4f}" for name, value in sorted((logs or {}).items()))
        seconds = time.perf_counter() - self.started
        print(f"epoch {epoch + 1}/{self.epochs}: {metrics} ({seconds:.1f} s)", flush=True)


def fit_resumable(
    model: keras.Model,
    train_data,
    validation_data,
    run_dir: Path,
    *,
    epochs: int,
    patience: int,
    monitor: str = "val_accuracy",
    mode: str = "max",
    verbose: int | None = None,
) -> keras.Model:
    """Fits with early stopping and crash-safe resume; returns the best model, loaded back.

    ``verbose`` defaults to Keras progress bars on a terminal and none otherwise (logs, pipes);
    ``EpochSummary`` prints one line per epoch either way.
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 0
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / BACKUP_DIR), delete_checkpoint=True),
        keras.callbacks.CSVLogger(str(run_dir / "training_log.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        KeepBestModel(run_dir, monitor, mode),
        keras.callbacks.EarlyStopping(monitor, patience=patience, mode=mode),
        EpochSummary(epochs),
    ]
    with warnings.catch_warnings():
        # Bucketed datasets have no known length, so Keras warns at the end of the first epoch.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model.fit(
            train_data,
            validation_data=validation_data,
            epochs=epochs,
            callbacks=callbacks,
            shuffle=False,  # the pipeline shuffles; Keras cannot shuffle a tf.data.Dataset
            verbose=verbose,
        )
    if not (run_dir / MODEL_FILE).exists():
        raise SeqappsError(f"training produced no finite {monitor}; no model was kept")
    return keras.models.load_model(run_dir / MODEL_FILE)
