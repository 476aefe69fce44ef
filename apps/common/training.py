"""Training runs that survive a crash: run directories, resumable fit, the best model kept.

A run directory holds everything one ``seqapps train`` produced::

    config.json         the app, its hyperparameters, training settings and data (written first)
    (preprocessing)     what the task learned from the training data (vocabulary.txt, ...)
    model.keras         the best model so far by the task's monitored validation metric
    best.json           that metric's best value and epoch (so a resumed run keeps it)
    training_log.csv    one row per epoch, each epoch once across resumes
    tensorboard/        TensorBoard logs
    backup/             the last finished epoch's weights and optimizer state while training
                        is unfinished (``AtomicBackupAndRestore``)
    fitted.json         training finished (the best value and epoch); a resumed run goes on
                        from here without training again
    members/<k>/        with an ensemble of N > 1 models: member k's own model.keras, best.json,
                        training_log.csv, tensorboard/ and backup/, and member.json once it is
                        finished; model.keras above then averages the members' outputs
    metrics.json        validation metrics of the final model (written last)

Re-running the same command on the same directory after a crash, Ctrl-C or ``kill -9`` resumes
from the last completed epoch (of the unfinished ensemble member; finished members are kept); a
finished run is never overwritten unless asked. At the end of an epoch the backup is written
after everything else the epoch writes (then its summary line is printed), so a run killed at
any moment repeats at most the epoch it was in and loses nothing.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import keras

from apps.common.errors import SeqappsError
from apps.common.progress import TrainingProgress, on_terminal

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
BEST_FILE = "best.json"
FITTED_FILE = "fitted.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "training_log.csv"
BACKUP_DIR = "backup"
MEMBERS_DIR = "members"
MEMBER_FILE = "member.json"


def write_json_atomically(path: Path, content: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def save_model_atomically(model: keras.Model, path: Path) -> None:
    """``model.save(path)`` through a temporary file: a crash never leaves half a model."""
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    model.save(temporary)
    os.replace(temporary, path)


def save_weights_atomically(model: keras.Model, path: Path) -> None:
    """``model.save_weights(path)`` through a temporary file (``path`` ends in .weights.h5)."""
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    model.save_weights(temporary)
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
    if run_dir.exists() and not config_path.exists() and any(run_dir.iterdir()):
        # Never delete or mix into a folder that is not a run, --overwrite or not.
        raise SeqappsError(
            f"{run_dir} is not empty and holds no run (no {CONFIG_FILE}); choose another --out"
        )
    if overwrite and config_path.exists():
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


class EpochMetrics(keras.callbacks.Callback):
    """Adds ``val_<name>`` entries to each epoch's logs from ``compute(model)`` (a task's
    ``epoch_metrics``); placed first, so that the callbacks after it see them."""

    def __init__(self, compute: Callable[[keras.Model], dict[str, float]]):
        super().__init__()
        self.compute = compute

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update({f"val_{name}": float(v) for name, v in self.compute(self.model).items()})


class KeepBestModel(keras.callbacks.Callback):
    """Saves the model (or only its weights, to ``weights_file``) whenever the monitored metric
    improves; remembers the best across resumes."""

    def __init__(
        self, run_dir: Path, monitor: str, mode: str = "max", weights_file: Path | None = None
    ):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.model_path = run_dir / MODEL_FILE
        self.weights_file = weights_file
        self.best_path = run_dir / BEST_FILE
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        best = read_json(self.best_path) if self.best_path.exists() else {}
        self.best = best.get("value")
        self.best_epoch = best.get("epoch", 0)  # 1-based; 0: none yet

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isnan(value):
            return
        if self.best is None or self.sign * (value - self.best) > 0:
            self.best, self.best_epoch = float(value), epoch + 1
            if self.weights_file is None:
                save_model_atomically(self.model, self.model_path)
            else:
                save_weights_atomically(self.model, self.weights_file)
            write_json_atomically(
                self.best_path, {"monitor": self.monitor, "value": self.best, "epoch": epoch + 1}
            )


class StopWithoutProgress(keras.callbacks.Callback):
    """Early stopping after ``patience`` epochs without a better score, counted from the best
    epoch that ``KeepBestModel`` remembers, so that a resumed run keeps its count (Keras'
    ``EarlyStopping`` would start again from zero)."""

    def __init__(self, best: KeepBestModel, patience: int):
        super().__init__()
        self.best, self.patience = best, patience

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 - self.best.best_epoch >= self.patience:
            self.model.stop_training = True


class TrainingLog(keras.callbacks.Callback):
    """``training_log.csv``: a row per epoch (as Keras' ``CSVLogger``), each epoch exactly once.

    A resumed run starts at the epoch after its last backup; rows of later epochs (written
    before the crash, then lost with it) are dropped before that epoch's row is written again.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.checked = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.checked or not self.path.exists():
            return
        self.checked = True
        with self.path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
        kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epoch]
        if len(kept) != len(rows):
            temporary = self.path.with_name(f".{self.path.name}.tmp")
            with temporary.open("w", newline="", encoding="utf-8") as file:
                csv.writer(file).writerows(kept)
            os.replace(temporary, self.path)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(sorted((logs or {}).items()))
        new_file = not self.path.exists()
        with self.path.open("a", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            if new_file:
                writer.writerow(["epoch", *logs])
            writer.writerow([epoch, *(float(value) for value in logs.values())])


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


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' ``BackupAndRestore`` whose backup is always whole, wherever a kill lands.

    Each epoch's weights (with the optimizer's state) go to a file of their own, written under a
    temporary name; only then does ``training_metadata.json`` (written atomically) name that
    file and the epoch, and older files are removed. Keras' own callback writes the weights and
    the metadata in place, one after the other: killed while it wrote the first epoch's weights
    (``double_checkpoint`` has no earlier file to fall back to) the run could not resume
    ("bad object header version number"), and killed between the two files it resumed an epoch
    with the next epoch's weights. A backup written by Keras' callback still loads.
    """

    METADATA = "training_metadata.json"

    def __init__(self, backup_dir: str):
        super().__init__(backup_dir, delete_checkpoint=True)

    def on_train_begin(self, logs=None):
        self._load_model()

    def _load_model(self):
        metadata_path = Path(self.backup_dir) / self.METADATA
        if not metadata_path.exists():
            return
        metadata = read_json(metadata_path)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # its state is in the file
        self.model.load_weights(
            Path(self.backup_dir) / metadata.get("weights", "latest.weights.h5")
        )
        self.model._initial_epoch = metadata["epoch"]

    def _save_model(self):
        directory = Path(self.backup_dir)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self._current_epoch}.weights.h5"
        save_weights_atomically(self.model, directory / name)
        write_json_atomically(
            directory / self.METADATA,
            {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name},
        )
        for older in directory.glob("*.weights.h5*"):
            if older.name != name:
                older.unlink()


def fit_resumable(
    build_model: Callable[[], keras.Model],
    train_data: Callable[[], object],
    validation_data,
    run_dir: Path,
    *,
    epochs: int,
    patience: int,
    monitor: str = "val_accuracy",
    mode: str = "max",
    expected_batches: int | None = None,
    verbose: int | None = None,
    epoch_metrics: Callable[[keras.Model], dict[str, float]] | None = None,
    finished_file: str = FITTED_FILE,
    finished_facts: dict | None = None,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    initial_epoch: int = 0,
    best_weights_file: Path | None = None,
) -> keras.Model | None:
    """Fits with early stopping and crash-safe resume; returns the best model, loaded back.

    ``build_model()`` returns the compiled model and ``train_data()`` its training batches
    (neither is called when ``finished_file`` shows that training ended earlier; the model is
    built first, so that its seed also seeds the data order). ``verbose`` defaults to Keras'
    progress bar on a terminal; in a log, ``TrainingProgress`` prints lines within the epoch
    (``expected_batches`` estimates the first epoch's length), and ``EpochSummary`` prints one
    line per epoch either way.
    ``epoch_metrics(model)`` adds validation metrics to each epoch's logs (``EpochMetrics``).
    ``finished_file`` gets the best value and epoch, and ``finished_facts``, at the end.

    For a tuner's trial: ``extra_callbacks`` run after the ones that write the run directory;
    ``initial_epoch`` starts from a model trained that far (Hyperband continues a trial); with
    ``best_weights_file``, the best epoch's weights go there instead of ``model.keras`` and
    nothing is loaded back (returns None).
    """
    model_path = run_dir / MODEL_FILE
    best_file = model_path if best_weights_file is None else best_weights_file
    if (run_dir / finished_file).exists() and best_file.exists():
        return keras.models.load_model(model_path) if best_weights_file is None else None
    if verbose is None:
        verbose = 1 if on_terminal() else 0
    keep_best = KeepBestModel(run_dir, monitor, mode, weights_file=best_weights_file)
    callbacks = [EpochMetrics(epoch_metrics)] if epoch_metrics is not None else []
    callbacks += [
        keep_best,
        StopWithoutProgress(keep_best, patience),
        TrainingLog(run_dir / LOG_FILE),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        *extra_callbacks,
    ]
    if verbose == 0:
        callbacks.append(TrainingProgress(epochs, expected_batches))
    callbacks += [
        # After the callbacks that write, so that everything an epoch writes is on disk before
        # the backup says it is done; the summary line then says so.
        AtomicBackupAndRestore(str(run_dir / BACKUP_DIR)),
        EpochSummary(epochs),
    ]
    with warnings.catch_warnings():
        # Bucketed datasets have no known length, so Keras warns at the end of the first epoch.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model = build_model()
        model.fit(
            train_data(),
            validation_data=validation_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            shuffle=False,  # the pipeline shuffles; Keras cannot shuffle a tf.data.Dataset
            verbose=verbose,
        )
    if not best_file.exists():
        raise SeqappsError(f"training produced no finite {monitor}; no model was kept")
    write_json_atomically(
        run_dir / finished_file, {**(finished_facts or {}), **read_json(run_dir / BEST_FILE)}
    )
    return keras.models.load_model(model_path) if best_weights_file is None else None


def fit_ensemble(
    build_member: Callable[[int], keras.Model],
    train_data_for: Callable[[int], object],
    validation_data,
    run_dir: Path,
    *,
    members: int,
    seed: int,
    **fit_options,
) -> keras.Model:
    """Trains ``members`` models that differ only in their seed; returns their average.

    Member ``k`` (1-based) gets seed ``seed + k - 1``: ``build_member(seed)`` returns it
    compiled, ``train_data_for(seed)`` its training batches (shuffled with that seed). The
    result is one model whose output is the mean of the members' outputs (for classifiers, the
    mean of their probabilities), so it saves, loads and exports like a single model. Averaging
    independently trained networks is the oldest reliable way to cut the variance of small-data
    models (Hansen & Salamon, "Neural network ensembles", IEEE TPAMI 1990).

    With one member, training happens in ``run_dir`` itself (``fit_resumable``). With more,
    member ``k`` trains in ``run_dir/members/<k>/``, resumable on its own; a member that
    finished (``member.json``) is loaded, not retrained, when an interrupted run resumes.
    ``fit_options`` (``epochs``, ``patience``, ``monitor``...) go to ``fit_resumable``.
    """
    if members < 1:
        raise SeqappsError(f"an ensemble needs at least one member, got {members}")
    if members == 1:
        return fit_resumable(
            lambda: build_member(seed), lambda: train_data_for(seed), validation_data, run_dir,
            **fit_options,
        )  # fmt: skip
    trained = []
    for index in range(1, members + 1):
        member_dir = run_dir / MEMBERS_DIR / str(index)
        member_seed = seed + index - 1
        if (member_dir / MEMBER_FILE).exists():
            print(f"member {index}/{members}: finished earlier, loaded from {member_dir}")
        else:
            print(f"member {index}/{members} (seed {member_seed}) in {member_dir}", flush=True)
            member_dir.mkdir(parents=True, exist_ok=True)
        member = fit_resumable(
            lambda member_seed=member_seed: build_member(member_seed),
            lambda member_seed=member_seed: train_data_for(member_seed),
            validation_data,
            member_dir,
            finished_file=MEMBER_FILE,
            finished_facts={"seed": member_seed},
            **fit_options,
        )
        best = read_json(member_dir / MEMBER_FILE)
        print(
            f"member {index}/{members}: best {best['monitor']} {best['value']:.4f} "
            f"at epoch {best['epoch']}",
            flush=True,
        )
        trained.append(member)
    ensemble = average_of(trained)
    save_model_atomically(ensemble, run_dir / MODEL_FILE)
    return ensemble


def average_of(models: list[keras.Model]) -> keras.Model:
    """One functional model whose output is the mean of ``models``' outputs (same inputs).

    Only for outputs whose mean means something: probabilities of the same classes.
    """
    inputs = [
        keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
        for tensor in models[0].inputs
    ]
    inputs = inputs[0] if len(inputs) == 1 else inputs
    outputs = []
    for index, model in enumerate(models, start=1):
        model.name = f"member_{index}"  # nested models need distinct names to save
        outputs.append(model(inputs))
    average = keras.layers.Average(dtype="float32", name="ensemble_mean")(outputs)
    return keras.Model(inputs, average, name=f"ensemble_of_{len(models)}")
