"""``seqapps tune APP [flags]``: the command line of a search (``tuning/search.py``).

Nothing here imports TensorFlow, so that ``seqapps tune --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from apps.common import command_line
from apps.common.app import App
from apps.common.errors import SeqappsError

TUNERS = ("bayesian", "random", "hyperband")
DEFAULT_TUNER = "bayesian"
SUMMARY = "search an app's hyperparameters with KerasTuner (resumable, distributable)"
TUNING_DIR = command_line.RUNS_DIR / "tune"


def add_arguments(app: App, parser: argparse.ArgumentParser) -> None:
    from tuning.distributed import DEFAULT_WORKER_TIMEOUT

    parser.add_argument("--data", type=Path, help=app.data_help)
    parser.add_argument(
        "--tuner",
        choices=TUNERS,
        default=DEFAULT_TUNER,
        help=f"KerasTuner's algorithm (default {DEFAULT_TUNER}); hyperband gives each trial a "
        "budget of epochs up to --epochs",
    )
    parser.add_argument(
        "--max-trials",
        type=command_line.positive_int,
        default=10,
        help="trials in all (default 10); may grow when a search is continued",
    )
    parser.add_argument(
        "--directory",
        type=Path,
        default=TUNING_DIR / app.name,
        help=f"the search directory (default {TUNING_DIR / app.name}); re-run the same command "
        "to continue an interrupted search",
    )
    parser.add_argument(
        "--objective",
        metavar="METRIC[:min|max]",
        help="the validation metric to optimize (default: the one that selects "
        f"`seqapps train {app.name}`'s best epoch); names with 'loss' are minimized",
    )
    parser.add_argument("--seed", type=int, default=0, help="data split, weights and search seed")
    parser.add_argument(
        "--epochs",
        type=command_line.positive_int,
        default=app.epochs,
        help=f"most epochs of a trial, with early stopping (default {app.epochs})",
    )
    parser.add_argument(
        "--patience",
        type=command_line.positive_int,
        default=app.patience,
        help=f"stop a trial after this many epochs without a better objective (default "
        f"{app.patience})",
    )
    parser.add_argument(
        "--arch",
        action="append",
        choices=app.architectures,
        help="search only this architecture (repeatable; default: all of "
        f"{', '.join(app.architectures)})",
    )
    parser.add_argument(
        "--set",
        type=command_line.key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="fix a hyperparameter the search does not tune, for every trial (repeatable)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="delete a search in --directory and start over"
    )
    parser.add_argument(
        "--train-best",
        action="store_true",
        help="after the search, train the app's final model with the best hyperparameters "
        "into --out (an ordinary run directory)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"run directory of --train-best (default {command_line.RUNS_DIR / app.name})",
    )
    if app.ensemble is not None:
        parser.add_argument(
            "--ensemble",
            type=command_line.ensemble_size,
            metavar="N",
            help="members of --train-best's model (default: the app's, as for train; trials "
            "always train one model)",
        )
    distributed = parser.add_argument_group("distributed search (KerasTuner's chief/worker mode)")
    distributed.add_argument(
        "--chief",
        metavar="HOST:PORT",
        help="run the search's oracle, listening on HOST:PORT, for workers to run the trials",
    )
    distributed.add_argument(
        "--worker", metavar="HOST:PORT", help="run trials for the chief at HOST:PORT"
    )
    distributed.add_argument(
        "--worker-id", type=int, metavar="N", help="this worker's number, unique in the search"
    )
    distributed.add_argument(
        "--worker-timeout",
        type=float,
        default=DEFAULT_WORKER_TIMEOUT,
        metavar="SECONDS",
        help="the chief gives the trial of a worker silent this long to another worker "
        f"(default {DEFAULT_WORKER_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="last line of stdout: the best trial as JSON",
    )
    command_line.add_app_arguments("train", app, parser)


def run(app: App, args: argparse.Namespace) -> int:
    """Runs the search (imports TensorFlow), then ``--train-best``."""
    from tuning import search
    from tuning.distributed import Role

    if app.load_hypermodel is None:
        raise SeqappsError(f"{app.name} has no search space")
    role = Role(args.chief, args.worker, args.worker_id, args.worker_timeout)
    if args.train_best and role.is_worker:
        raise SeqappsError("--train-best: the chief trains the best model, not a worker")
    ensemble = getattr(args, "ensemble", None)
    if (args.out is not None or ensemble is not None) and not args.train_best:
        flag = "--out" if args.out is not None else "--ensemble"
        raise SeqappsError(f"{flag} goes with --train-best")
    task = app.load_task()
    options = command_line.app_options(args)
    flagged = command_line.hyperparameter_flags(app, options)
    settings = search.SearchSettings(
        directory=args.directory,
        data=args.data,
        options=options,
        tuner=args.tuner,
        max_trials=args.max_trials,
        objective=args.objective,
        seed=args.seed,
        epochs=args.epochs,
        patience=args.patience,
        architectures=tuple(dict.fromkeys(args.arch)) if args.arch else None,
        fixed=[*flagged, *args.overrides],
        overwrite=args.overwrite,
        role=role,
    )
    results = search.search(task, settings, app.load_hypermodel())
    if results is None:  # a worker
        return 0
    if args.train_best:
        out = args.out or command_line.RUNS_DIR / app.name
        metrics = search.train_best(task, settings, out, ensemble=ensemble)
        if args.json:
            print(json.dumps({"run": str(out), **metrics}, sort_keys=True))
        return 0
    if args.json:
        best_file = Path(args.directory) / search.BEST_TRIAL_FILE
        best = json.loads(best_file.read_text(encoding="utf-8")) if best_file.exists() else None
        print(json.dumps({"directory": str(args.directory), "best": best}, sort_keys=True))
    return 0
