"""``seqapps tune APP``: a KerasTuner search over an app's space, resumable and bounded in memory.

A search directory (``--directory``, default ``runs/tune/APP``) holds::

    search.json                 what the search is: app, tuner, objective, seed, epochs, fixed
                                hyperparameters, the search space and the data's fingerprint
    preprocessing/              what preprocessing learned once from the training split
    trials/oracle.json          KerasTuner's oracle (trials/tuner*.json: its tuners)
    trials/trial_N/             trial.json (KerasTuner's record: values, status, score, the
                                reason a trial failed), and the trial's run files:
                                training_log.csv, best.json, checkpoint.weights.h5 (its best
                                epoch), tensorboard/, backup/ while it trains
    results.tsv                 every trial, best first (written at the end)
    best_hyperparameters.json   the best trial's hyperparameters, as ``seqapps train
                                --hyperparameters`` reads them
    best_trial.json             the best trial: its values, score and batch size

Re-running the same command continues the search: finished trials are kept, the trial that
was running goes on from its last finished epoch (KerasTuner re-queues it; its ``backup/``
restores it). Another search space, objective, tuner, seed, epoch budget or other data is an
error unless ``--overwrite``; ``--max-trials`` may grow. Keras' state is cleared before each
trial (``keras.backend.clear_session``), so memory stays flat over a long search.

The first trial of a random or Bayesian search is the app's default configuration, so the
best trial is never worse on validation than what ``seqapps train`` gives by default.
Trials are ranked by the objective, ties broken by the validation loss. A trial that fails
(its loss becomes NaN, it runs out of memory, its values do not build a model) is recorded
with the reason and the search goes on.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras_tuner
from keras_tuner.engine import trial as trial_module

from apps.common import drivers, training
from apps.common.errors import SeqappsError
from apps.common.progress import duration
from apps.common.task import Task
from tuning import distributed
from tuning.command import DEFAULT_TUNER, TUNERS
from tuning.hypermodel import (
    ARCHITECTURE,
    AppHyperModel,
    SearchContext,
    app_values,
)

SEARCH_FILE = "search.json"
RESULTS_FILE = "results.tsv"
BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.json"
BEST_TRIAL_FILE = "best_trial.json"
PREPROCESSING_DIR = "preprocessing"
PROJECT = "trials"
# What a search directory holds (workers that share it may write the first two before the
# chief writes search.json).
SEARCH_ENTRIES = {PREPROCESSING_DIR, PROJECT, SEARCH_FILE, RESULTS_FILE, BEST_HYPERPARAMETERS_FILE,
                  BEST_TRIAL_FILE}  # fmt: skip
HYPERBAND_FACTOR = 3
TIE_BREAK = "val_loss"
FAILURE_VALUE = "seqapps/failure"  # a failed trial's reason, from a worker to the chief
COMPLETED, FAILED = trial_module.TrialStatus.COMPLETED, trial_module.TrialStatus.FAILED
RUNNING, IDLE, STOPPED = (
    trial_module.TrialStatus.RUNNING,
    trial_module.TrialStatus.IDLE,
    trial_module.TrialStatus.STOPPED,
)


@dataclass
class SearchSettings:
    """Everything a search needs besides the task (``seqapps tune`` flags)."""

    directory: Path
    data: Path | None = None
    options: dict = field(default_factory=dict)
    tuner: str = DEFAULT_TUNER
    max_trials: int = 10
    objective: str | None = None  # None: the app's validation metric
    seed: int = 0
    epochs: int = 20
    patience: int = 3
    architectures: Sequence[str] | None = None  # None: all of the app's
    fixed: Sequence[tuple[str, object]] = ()  # --set KEY=VALUE
    overwrite: bool = False
    verbose: int | None = None
    role: distributed.Role = field(default_factory=distributed.Role)


@dataclass
class TrialResult:
    trial_id: str
    status: str
    values: dict  # the trial's tuned values, the app's names
    score: float | None
    metrics: dict  # the best epoch's logs, and epochs, best_epoch, seconds
    reason: str = ""
    hyperparameters: keras_tuner.HyperParameters | None = None  # the trial's own


# === The objective ===


def parse_objective(text: str) -> tuple[str, str]:
    """``"val_loss"`` -> ``("val_loss", "min")``; ``"val_f1:max"``; a name with "loss" or
    "error" is minimized unless told, anything else maximized."""
    name, _, direction = text.partition(":")
    if not name:
        raise SeqappsError(f"--objective: expected METRIC or METRIC:min|max, got {text!r}")
    if direction and direction not in ("min", "max"):
        raise SeqappsError(f"--objective {text}: the direction must be min or max")
    if not direction:
        direction = "min" if ("loss" in name or "error" in name) else "max"
    return name, direction


# === What a search is, for resume ===


def data_fingerprint(data) -> str:
    """A hash of the training and validation examples (their ``repr``: texts, labels, image
    names and captions), so that a resumed search knows it reads the same data."""
    digest = hashlib.sha256()
    for name in ("train", "validation"):
        digest.update(name.encode())
        digest.update(repr(data.split(name)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def declared_space(hypermodel: AppHyperModel) -> keras_tuner.HyperParameters:
    """The whole search space (every architecture's conditional hyperparameters), declared
    without building a model."""
    hp = keras_tuner.HyperParameters()
    hypermodel.resolve(hp)
    for architecture in hypermodel.architectures:
        hp.values[ARCHITECTURE] = architecture
        hypermodel.resolve(hp)
    return hp


def space_summary(space: keras_tuner.HyperParameters) -> dict:
    """``{name: description}`` of a space, for search.json and the error on a changed space."""
    summary = {}
    for hp in space.space:
        config = hp.get_config()
        config.pop("name")
        conditions = config.pop("conditions", [])
        text = f"{type(hp).__name__} " + json.dumps(config, sort_keys=True)
        if conditions:
            condition_text = ", ".join(
                f"{c['config']['name']} in {c['config']['values']}" for c in conditions
            )
            text += f" if {condition_text}"
        summary[hp.name] = text
    return summary


def describe_changes(previous: dict, current: dict) -> str:
    changes = []
    for key in sorted(set(previous) | set(current)):
        if previous.get(key) == current.get(key):
            continue
        if key == "space":
            old, new = previous.get(key) or {}, current.get(key) or {}
            for name in sorted(set(old) | set(new)):
                if old.get(name) != new.get(name):
                    changes.append(f"search space {name}: {old.get(name)} -> {new.get(name)}")
        else:
            changes.append(f"{key}: {previous.get(key)!r} -> {current.get(key)!r}")
    return "; ".join(changes)


def prepare_directory(directory: Path, definition: dict, overwrite: bool) -> None:
    """Creates or reopens the search directory.

    A directory with another search in it is an error naming what changed, unless
    ``overwrite``; a non-empty directory without ``search.json`` is never touched.
    """
    search_file = directory / SEARCH_FILE
    foreign = [
        entry.name
        for entry in (directory.iterdir() if directory.exists() else ())
        if entry.name not in SEARCH_ENTRIES
    ]
    if not search_file.exists() and foreign:
        raise SeqappsError(
            f"{directory} is not empty and holds no search (no {SEARCH_FILE}); choose another "
            "--directory"
        )
    if search_file.exists():
        previous = training.read_json(search_file)
        if overwrite:
            shutil.rmtree(directory)
        elif previous != definition:
            raise SeqappsError(
                f"{directory} holds a search with other settings "
                f"({describe_changes(previous, definition)}); re-run with the same arguments to "
                "continue it, choose another --directory, or pass --overwrite to start over"
            )
        else:
            return
    directory.mkdir(parents=True, exist_ok=True)
    training.write_json_atomically(search_file, definition)


# === KerasTuner, made crash-safe, quiet and ours ===


class SafeOracle:
    """Mixed into KerasTuner's oracles: state written atomically (a ``kill -9`` during a write
    must not leave half an ``oracle.json``), the app's defaults as the first trial, and the
    chief's bookkeeping of live workers (``tuning/distributed.py``)."""

    default_first = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.verbose = 0  # our lines replace KerasTuner's tables

    def save(self):
        training.write_json_atomically(Path(self._get_oracle_fname()), self.get_state())

    def _save_trial(self, trial):
        path = Path(self._get_trial_dir(trial.trial_id)) / "trial.json"
        training.write_json_atomically(path, trial.get_state())

    def populate_space(self, trial_id):
        if self.default_first and not self.trials:
            return {"status": RUNNING, "values": default_values(self.hyperparameters)}
        return super().populate_space(trial_id)

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        distributed.note_alive(self, tuner_id)
        trial = super().create_trial(tuner_id)
        if trial.status == STOPPED and self.ongoing_trials:
            # Other workers still run trials that may come back (a worker that dies hands
            # its trial to the next one that asks): wait rather than stop.
            self.tuner_ids.add(tuner_id)
            return trial_module.Trial(self.get_space(), status=IDLE)
        return trial

    @keras_tuner.synchronized
    def check_workers(self) -> tuple[list[str], bool]:
        """For the chief's loop: reclaims the trials of silent workers; returns the ended
        trials and whether any worker still runs or waits for a trial."""
        distributed.reclaim_lost_trials(self, distributed.now())
        return list(self.end_order), bool(self.ongoing_trials or self.tuner_ids)

    @keras_tuner.synchronized
    def end_trial(self, trial):
        # A worker's reason for a failure travels as a value (KerasTuner's Trial message has
        # no field in the gRPC protocol).
        reason = trial.hyperparameters.values.pop(FAILURE_VALUE, None)
        if reason and not trial.message:
            trial.message = reason
        if trial.trial_id in self.end_order:
            # Reported twice: a worker thought dead finished the trial given to another one.
            # The first report stands.
            return
        if trial.trial_id in self._retry_queue:
            # A restarted chief queued the trials that were running; this one came back.
            self._retry_queue.remove(trial.trial_id)
        super().end_trial(trial)

    @keras_tuner.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        if not metrics:  # a worker's heartbeat (tuning/distributed.py)
            distributed.note_heartbeat(self, trial_id)
            return self.trials[trial_id]
        return super().update_trial(trial_id, metrics, step=step)


def default_values(space: keras_tuner.HyperParameters) -> dict:
    """Every active hyperparameter at its default (the app's default configuration)."""
    values = keras_tuner.HyperParameters()
    chosen = {}
    for hp in space.space:
        values.merge([hp])
        if values.is_active(hp):
            chosen[hp.name] = values.values[hp.name] = hp.default
    return chosen


class SearchTuner:
    """Mixed into KerasTuner's tuners: trials train with the app's resumable loop, report
    progress as ``seqapps train`` does, and fail with a reason instead of stopping the search."""

    def __init__(self, *args, hypermodel: AppHyperModel, space, **kwargs):
        self.space = space
        self.trial_started: dict[str, float] = {}
        self.trial_seconds: list[float] = []
        super().__init__(*args, hypermodel=hypermodel, **kwargs)

    def _populate_initial_space(self):
        # The space is declared without building a model per architecture (KerasTuner's way).
        self.oracle.update_space(self.space)

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        training.write_json_atomically(Path(self._get_tuner_fname()), self.get_state())

    def _get_tuner_fname(self):
        # One name for the process that holds the oracle, alone or as the chief: KerasTuner
        # reloads the oracle only when this file exists, and would otherwise start a fresh
        # oracle over the trials of a search first run the other way.
        name = self.tuner_id if self._is_worker() else "tuner"
        return os.path.join(self.project_dir, f"{name}.json")

    def search(self):
        """KerasTuner's search loop (``BaseTuner.search``), with a pause when the oracle has
        nothing to hand out yet and a heartbeat to the chief while a trial runs."""
        if distributed.is_chief():
            self.save()
            distributed.serve(self.oracle)
            return
        while True:
            trial = self.oracle.create_trial(self.tuner_id)
            if trial.status == STOPPED:
                break
            if trial.status == IDLE:
                time.sleep(distributed.IDLE_SECONDS)
                continue
            self.on_trial_begin(trial)
            with distributed.heartbeat(self.oracle, trial.trial_id, self._is_worker()):
                self._try_run_and_update_trial(trial)
            self.on_trial_end(trial)

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        if "tuner/epochs" in hp.values:  # Hyperband's budget for this trial
            kwargs["epochs"] = hp.values["tuner/epochs"]
            kwargs["initial_epoch"] = hp.values["tuner/initial_epoch"]
        started = time.perf_counter()
        try:
            results = self._build_and_fit_model(
                trial,
                *args,
                trial_dir=Path(self.get_trial_dir(trial.trial_id)),
                best_weights_file=Path(self._get_checkpoint_fname(trial.trial_id)),
                **kwargs,
            )
        except (keras_tuner.errors.FailedTrialError, keras_tuner.errors.FatalError):
            raise
        except Exception as error:
            raise keras_tuner.errors.FailedTrialError(failure_reason(error)) from error
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        best = training.read_json(trial_dir / training.BEST_FILE)
        return {
            **results,
            "epochs": float(epochs_trained(trial_dir)),
            "best_epoch": float(best["epoch"]),
            "seconds": time.perf_counter() - started,
        }

    def on_trial_begin(self, trial):
        self.trial_started[trial.trial_id] = time.perf_counter()
        worker = f" [{self.tuner_id}]" if self._is_worker() else ""
        print(
            f"\ntrial {trial.trial_id}{worker} ({trial_position(self.oracle, trial)}): "
            f"{format_values(app_values(trial.hyperparameters))}",
            flush=True,
        )

    def on_trial_end(self, trial):
        if self._is_worker() and trial.status != COMPLETED:
            trial.hyperparameters.values[FAILURE_VALUE] = last_line(trial.message)
        super().on_trial_end(trial)  # reports to the oracle and saves
        trial.hyperparameters.values.pop(FAILURE_VALUE, None)
        seconds = time.perf_counter() - self.trial_started.pop(trial.trial_id)
        self.trial_seconds.append(seconds)
        objective = self.oracle.objective.name
        if trial.status == COMPLETED:
            scored = self.oracle.get_trial(trial.trial_id)
            outcome = f"{objective} {scored.score:.4f}"
        else:
            trial_file = Path(self.get_trial_dir(trial.trial_id)) / "trial.json"
            where = "the chief's trial.json" if self._is_worker() else trial_file
            outcome = f"failed: {last_line(trial.message)} (traceback in {where})"
        line = f"trial {trial.trial_id}: {outcome} ({duration(seconds)})"
        if not self._is_worker():
            ranked = collect_results(self.oracle, self.hypermodel.context)
            if ranked and ranked[0].status == COMPLETED:
                line += f"; best {objective} {ranked[0].score:.4f} (trial {ranked[0].trial_id})"
            left = self.oracle.remaining_trials()
            if left:
                mean = sum(self.trial_seconds) / len(self.trial_seconds)
                # Hyperband's brackets may end the search before --max-trials.
                bound = "at most " if "tuner/epochs" in trial.hyperparameters.values else ""
                line += f"; {bound}{left} trial{'s' * (left != 1)} left, ~{duration(left * mean)}"
        print(line, flush=True)
        gc.collect()


def trial_position(oracle, trial) -> str:
    total = getattr(oracle, "max_trials", None)
    number = int(trial.trial_id) + 1 if trial.trial_id.isdigit() else "?"
    return f"{number} of {total}" if total else f"{number}"


def failure_reason(error: BaseException) -> str:
    """One line for the results table: out of memory, or the error's type and first line."""
    import tensorflow as tf

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, (tf.errors.ResourceExhaustedError, MemoryError)):
        return f"out of memory ({type(error).__name__}: {text[:200]})"
    return f"{type(error).__name__}: {text[:300]}"


def last_line(message: str | None) -> str:
    """The reason a trial failed from KerasTuner's message (a traceback ending in it)."""
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    if not lines:
        return "unknown reason"
    reason = lines[-1]
    for prefix in ("keras_tuner.src.errors.FailedTrialError: ", "FailedTrialError: "):
        reason = reason.removeprefix(prefix)
    return reason


def epochs_trained(trial_dir: Path) -> int:
    """The model's epochs at the trial's end, those of the trial it continues included
    (Hyperband), as ``training_log.csv`` counts them (from 0)."""
    log = trial_dir / training.LOG_FILE
    if not log.exists():
        return 0
    rows = log.read_text(encoding="utf-8").splitlines()[1:]
    return int(rows[-1].split(",", 1)[0]) + 1 if rows else 0


def format_values(values: dict) -> str:
    return " ".join(f"{name}={format_value(value)}" for name, value in values.items())


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def tuner_class(kind: str):
    """Our tuner over KerasTuner's algorithm ``kind``."""
    bases = {
        "random": (keras_tuner.RandomSearch, keras_tuner.oracles.RandomSearchOracle),
        "bayesian": (
            keras_tuner.BayesianOptimization,
            keras_tuner.oracles.BayesianOptimizationOracle,
        ),
        "hyperband": (keras_tuner.Hyperband, keras_tuner.oracles.HyperbandOracle),
    }
    if kind not in bases:
        raise SeqappsError(f"--tuner must be one of {', '.join(TUNERS)}, got {kind!r}")
    tuner, oracle = bases[kind]
    oracle_class = type(f"Safe{oracle.__name__}", (SafeOracle, oracle), {})
    # Hyperband picks values per bracket; it has no single "first trial" to give the defaults.
    oracle_class.default_first = kind != "hyperband"
    return type(f"Search{tuner.__name__}", (SearchTuner, keras_tuner.Tuner), {}), oracle_class


# === The search ===


@dataclass
class PreparedSearch:
    context: SearchContext
    hypermodel: AppHyperModel
    space: keras_tuner.HyperParameters
    definition: dict


def prepare(task: Task, settings: SearchSettings, hypermodel_class) -> PreparedSearch:
    """Reads the data, learns the preprocessing once and declares the search space."""
    data = task.load_data(settings.data, settings.options, seed=settings.seed, for_training=True)
    print(f"data: {data.description}")
    print(f"splits: {data.sizes()}", flush=True)
    objective, direction = (
        parse_objective(settings.objective) if settings.objective else task.monitor_for(data)
    )
    fixed = dict(settings.fixed)
    check_fixed(task, fixed)
    architectures = tuple(settings.architectures or task.app.architectures)
    preprocessing_dir = Path(settings.directory) / PREPROCESSING_DIR
    context = SearchContext(
        task=task,
        data=data,
        preprocessor=None,
        fixed=fixed,
        seed=settings.seed,
        epochs=settings.epochs,
        patience=settings.patience,
        objective=objective,
        direction=direction,
        verbose=settings.verbose,
    )
    hypermodel = hypermodel_class(context, architectures)
    space = declared_space(hypermodel)
    # Preprocessing does not depend on the architecture: learned once, with the first one's.
    base = drivers.resolve_hyperparameters(
        task, architectures[0], overrides=hypermodel.fixed_for(architectures[0]).items()
    )
    definition = {
        "app": task.app.name,
        "tuner": settings.tuner,
        "objective": objective,
        "direction": direction,
        "seed": settings.seed,
        "epochs": settings.epochs,
        "patience": settings.patience,
        "fixed": fixed,
        "options": settings.options,
        "space": space_summary(space),
        "data": {"description": data.description, "fingerprint": data_fingerprint(data)},
    }
    if not settings.role.is_worker:
        prepare_directory(Path(settings.directory), definition, settings.overwrite)
    else:
        Path(settings.directory).mkdir(parents=True, exist_ok=True)
        check_worker_data(Path(settings.directory), definition)
    preprocessing_dir.mkdir(parents=True, exist_ok=True)
    task.learn_preprocessing(data, base, preprocessing_dir)
    context.preprocessor = task.load_preprocessor(preprocessing_dir, base)
    return PreparedSearch(context, hypermodel, space, definition)


def check_worker_data(directory: Path, definition: dict) -> None:
    """A worker that shares the chief's directory checks that it reads the chief's data (on
    another machine, ``check_same_space`` still holds the flags to the chief's)."""
    search_file = directory / SEARCH_FILE
    if not search_file.exists():
        return
    chief = training.read_json(search_file)
    if chief.get("data") != definition["data"]:
        raise SeqappsError(
            f"this worker reads other data than the search in {directory}: "
            f"{describe_changes({'data': chief.get('data')}, {'data': definition['data']})}"
        )


def check_fixed(task: Task, fixed: dict) -> None:
    known = set()
    for architecture in task.app.architectures:
        known |= set(task.default_hyperparameters(architecture))
    for key in fixed:
        if key == ARCHITECTURE:
            raise SeqappsError(
                "--set architecture: use --arch to choose the architectures searched"
            )
        if key not in known:
            raise SeqappsError(
                f"--set {key}: {task.app.name} has no hyperparameter {key!r} "
                f"(it has: {', '.join(sorted(known))})"
            )


def make_tuner(prepared: PreparedSearch, settings: SearchSettings):
    tuner_type, oracle_type = tuner_class(settings.tuner)
    context = prepared.context
    objective = keras_tuner.Objective(context.objective, context.direction)
    common = {
        "objective": objective,
        # KerasTuner draws a random seed for seed=0 (``seed or random.randint(...)``).
        "seed": settings.seed + 1,
        "hyperparameters": None,
        # Every failure is recorded and the search goes on; never stop on a streak (KerasTuner
        # raises inside its locked end_trial, which leaves the lock held).
        "max_consecutive_failed_trials": 10**9,
    }
    if settings.tuner == "hyperband":
        oracle = oracle_type(max_epochs=settings.epochs, factor=HYPERBAND_FACTOR, **common)
        oracle.max_trials = settings.max_trials
    elif settings.tuner == "bayesian":
        oracle = oracle_type(
            max_trials=settings.max_trials,
            # KerasTuner's default (3 random trials per dimension) would leave a conditional
            # space of ~18 dimensions random for 54 trials.
            num_initial_points=max(3, settings.max_trials // 3),
            **common,
        )
    else:
        oracle = oracle_type(max_trials=settings.max_trials, **common)
    with distributed.quiet_reload():
        tuner = tuner_type(
            oracle=oracle,
            hypermodel=prepared.hypermodel,
            space=prepared.space,
            directory=str(settings.directory),
            project_name=PROJECT,
            overwrite=False,
        )
    return tuner


def search(task: Task, settings: SearchSettings, hypermodel_class) -> list[TrialResult] | None:
    """Runs (or continues) the search; returns the trials best first (None on a worker)."""
    if settings.max_trials < 1:
        raise SeqappsError(f"--max-trials must be at least 1, got {settings.max_trials}")
    with distributed.environment(settings.role), quiet_failures():
        prepared = prepare(task, settings, hypermodel_class)
        tuner = make_tuner(prepared, settings)
        if settings.role.is_worker:
            print(
                f"{settings.role.tuner_id}: asking the chief at {settings.role.worker} for "
                "trials (waiting for it to start, up to an hour)",
                flush=True,
            )
            distributed.check_same_space(tuner.oracle, prepared.space)
        elif not distributed.is_chief():
            announce(tuner, settings)
        try:
            tuner.search()
        except keras_tuner.errors.FatalError as error:
            raise SeqappsError(str(error)) from error
        if settings.role.is_worker:
            print(f"{settings.role.tuner_id}: the search is over", flush=True)
            return None
        results = collect_results(tuner.oracle, prepared.context)
        write_results(Path(settings.directory), results, prepared, settings)
        print(format_results(results, prepared.context.objective))
        return results


@contextlib.contextmanager
def quiet_failures():
    """KerasTuner 1.4 prints the traceback of every failed trial (``config.DEBUG``); our line
    gives the reason, and the traceback stays in the trial's trial.json."""
    from keras_tuner.src import config

    debug, config.DEBUG = config.DEBUG, False
    try:
        yield
    finally:
        config.DEBUG = debug


def announce(tuner, settings: SearchSettings) -> None:
    done = len([t for t in tuner.oracle.trials.values() if t.status in (COMPLETED, FAILED)])
    verb = "continuing" if done else "starting"
    print(
        f"{verb} a {settings.tuner} search of {settings.max_trials} trials in "
        f"{settings.directory} ({done} done); objective {tuner.oracle.objective.name} "
        f"({tuner.oracle.objective.direction})",
        flush=True,
    )


def collect_results(oracle, context: SearchContext) -> list[TrialResult]:
    """Every trial, ranked: completed ones by the objective (ties: lower validation loss),
    then failed and unfinished ones."""
    results = []
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        metrics = {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}
        results.append(
            TrialResult(
                trial_id=trial_id,
                status=trial.status,
                values=app_values(trial.hyperparameters),
                score=trial.score if trial.status == COMPLETED else None,
                metrics=metrics,
                reason=last_line(trial.message) if trial.status != COMPLETED else "",
                hyperparameters=trial.hyperparameters,
            )
        )
    return rank(results, context.direction)


def rank(results: Iterable[TrialResult], direction: str) -> list[TrialResult]:
    sign = -1.0 if direction == "max" else 1.0

    def key(result: TrialResult):
        if result.status != COMPLETED or result.score is None or math.isnan(result.score):
            return (1, 0.0, 0.0, result.trial_id)
        tie = result.metrics.get(TIE_BREAK)
        return (0, sign * result.score, tie if tie is not None else math.inf, result.trial_id)

    return sorted(results, key=key)


def write_results(
    directory: Path, results: list[TrialResult], prepared: PreparedSearch, settings: SearchSettings
) -> None:
    """results.tsv; and, once a trial completed, best_hyperparameters.json and best_trial.json."""
    names = sorted({name for result in results for name in result.values})
    header = ["rank", "trial", "status", prepared.context.objective, "val_loss", "best_epoch",
              "epochs", "seconds", *names, "reason"]  # fmt: skip
    lines = ["\t".join(header)]
    for position, result in enumerate(results, start=1):
        metric = result.metrics
        row = [
            str(position), result.trial_id, result.status,
            "" if result.score is None else f"{result.score:.6g}",
            *(f"{metric[name]:.6g}" if name in metric else "" for name in (
                TIE_BREAK, "best_epoch", "epochs", "seconds")),
            *(str(result.values.get(name, "")) for name in names),
            result.reason.replace("\t", " "),
        ]  # fmt: skip
        lines.append("\t".join(row))
    temporary = directory / f".{RESULTS_FILE}.tmp-{os.getpid()}"
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, directory / RESULTS_FILE)
    best = results[0] if results and results[0].status == COMPLETED else None
    if best is None:
        return
    hyperparameters, batch_size = best_configuration(prepared, best)
    training.write_json_atomically(directory / BEST_HYPERPARAMETERS_FILE, hyperparameters)
    training.write_json_atomically(
        directory / BEST_TRIAL_FILE,
        {
            "trial": best.trial_id,
            "objective": prepared.context.objective,
            "score": best.score,
            "metrics": best.metrics,
            "tuned": best.values,
            "batch_size": batch_size,
            "hyperparameters": hyperparameters,
        },
    )


def best_configuration(prepared: PreparedSearch, best: TrialResult) -> tuple[dict, int]:
    """The app's hyperparameter dict and the batch size of a trial."""
    return prepared.hypermodel.resolve(best.hyperparameters.copy())


def format_results(results: list[TrialResult], objective: str, limit: int = 20) -> str:
    """The results table for people, best first (``epochs``: the best epoch / epochs trained)."""
    if not results:
        return "no trials"
    row = "{:>4}  {:>5}  {:>12}  {:>6}  {:>9}  {}".format
    lines = [row("rank", "trial", objective, "epochs", "time", "hyperparameters")]
    for position, result in enumerate(results[:limit], start=1):
        metric, values = result.metrics, format_values(result.values)
        if result.status == COMPLETED:
            score = f"{result.score:.4f}"
            epochs = f"{metric.get('best_epoch', 0):.0f}/{metric.get('epochs', 0):.0f}"
            seconds = duration(metric["seconds"]) if "seconds" in metric else ""
        else:
            score, epochs, seconds = result.status.lower(), "", ""
            values += f"  ({result.reason})" if result.reason else ""
        lines.append(row(position, result.trial_id, score, epochs, seconds, values))
    if len(results) > limit:
        lines.append(f"... and {len(results) - limit} more in {RESULTS_FILE}")
    return "\n".join(lines)


def train_best(
    task: Task, settings: SearchSettings, out: Path, ensemble=None, overwrite: bool = False
) -> dict:
    """Trains the app's final model with the best trial's hyperparameters into ``out``."""
    best_file = Path(settings.directory) / BEST_TRIAL_FILE
    if not best_file.exists():
        raise SeqappsError(
            f"{settings.directory}: no trial completed, so there is no best configuration to train"
        )
    best = training.read_json(best_file)
    print(
        f"\ntraining trial {best['trial']}'s configuration ({best['objective']} "
        f"{best['score']:.4f}) into {out}",
        flush=True,
    )
    return drivers.train(
        task,
        drivers.TrainingSettings(
            out=out,
            hyperparameters=best["hyperparameters"],
            data=settings.data,
            options=settings.options,
            seed=settings.seed,
            epochs=task.app.epochs,
            batch_size=best["batch_size"],
            patience=task.app.patience,
            ensemble=ensemble,
            overwrite=overwrite,
            verbose=settings.verbose,
        ),
    )
