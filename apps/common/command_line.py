"""The flags every app shares, defined once, and the dispatch of a command to the generic drivers.

``seqapps COMMAND APP [flags]``: this module adds the shared flags of COMMAND (their defaults
live here, or in the ``App`` where an app needs another value), then the app's own flags
(``App.add_arguments``); ``run`` hands the parsed arguments to ``apps/common/drivers.py``.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from apps.common.app import AUTO_ENSEMBLE, App
from apps.common.errors import SeqappsError

RUNS_DIR = Path("runs")
EXPORTS_DIR = Path("saved_models")
SPLITS = ("train", "validation", "test")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def ensemble_size(text: str) -> int | str:
    # Range checked by the driver, whose message API callers get too.
    return text if text == AUTO_ENSEMBLE else int(text)


def key_value(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as JSON where it parses (``3``, ``0.5``, ``[1, 2]``,
    ``true``), else kept as a string (``architecture=tcn``)."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _add_training_arguments(app: App, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help=app.data_help)
    parser.add_argument(
        "--out",
        type=Path,
        default=RUNS_DIR / app.name,
        help=f"run directory (default: {RUNS_DIR / app.name}); re-run the same command to "
        "resume an interrupted run",
    )
    parser.add_argument(
        "--arch",
        choices=app.architectures,
        help=f"architecture (default: {app.default_architecture}, or the one of --hyperparameters)",
    )
    parser.add_argument(
        "--hyperparameters",
        type=Path,
        metavar="FILE.json",
        help="a JSON object of hyperparameters (e.g. the best of `seqapps tune`)",
    )
    parser.add_argument(
        "--set",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override one hyperparameter (repeatable; VALUE is read as JSON where it parses); "
        "the run's config.json lists them all",
    )
    parser.add_argument("--seed", type=int, default=0, help="data split and training seed")
    parser.add_argument(
        "--epochs", type=positive_int, default=app.epochs, help="at most (early stopping)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=app.batch_size)
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=app.patience,
        help="stop after this many epochs without a better validation score",
    )
    if app.ensemble is not None:
        default = (
            "auto: sized to the training data, see --help of the app"
            if app.ensemble == AUTO_ENSEMBLE
            else app.ensemble
        )
        parser.add_argument(
            "--ensemble",
            type=ensemble_size,
            default=app.ensemble,
            metavar="N",
            help=f"train N models with seeds SEED..SEED+N-1 and average their outputs "
            f"(default {default}; 1 trains a single model, N times faster)",
        )
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")


def add_shared_arguments(command: str, app: App, parser: argparse.ArgumentParser) -> None:
    if command == "train":
        _add_training_arguments(app, parser)
    if command in ("evaluate", "predict", "export"):
        parser.add_argument(
            "--model",
            type=Path,
            required=True,
            help="training run directory"
            + ("" if command == "export" else ", export version, or export folder (its newest)"),
        )
    if command == "evaluate":
        parser.add_argument("--data", type=Path, help=app.data_help)
        parser.add_argument(
            "--split",
            default="test",
            help=f"the split to score: {', '.join(SPLITS)} or a name the dataset defines "
            "(default test; a single file is scored whole)",
        )
        parser.add_argument("--seed", type=int, default=0, help="seed of a held-out split")
    if command == "predict":
        parser.add_argument(
            "inputs", nargs="*", metavar="INPUT", help="default: one per line of stdin"
        )
    if command == "export":
        parser.add_argument("--base", type=Path, default=EXPORTS_DIR, help="export base folder")
        parser.add_argument("--version", type=int, help="default: the next free integer")
        parser.add_argument(
            "--no-check",
            action="store_false",
            dest="check",
            help="skip loading the export in a fresh Python process before publishing it",
        )
        parser.add_argument(
            "--float16",
            action="store_true",
            help="compute in float16 (Keras' mixed_float16: for GPUs with tensor cores; "
            "outputs stay float32); bench/RESULTS.md has its drift against float32",
        )
        parser.add_argument(
            "--batching-config",
            action="store_true",
            help="also write BASE/batching_parameters.txt, TF Serving's batching parameters "
            "for a GPU (tensorflow_model_server --enable_batching --batching_parameters_file)",
        )
    parser.add_argument(
        "--json",
        action="store_true",
        help={
            "train": "last line of stdout: the validation metrics as JSON",
            "evaluate": "last line of stdout: the metrics as JSON",
            "predict": "print one JSON object per input instead of text",
            "export": "last line of stdout: the export's path and description as JSON",
        }[command],
    )


def add_search_arguments(
    command: str,
    parser: argparse.ArgumentParser,
    *,
    outputs_option: str,
    outputs_help: str,
    attention_help: str,
    default_beam_width: int,
) -> None:
    """The flags of an app that generates text with ``apps/common/decoding.py``: ``evaluate
    --search`` and ``--OUTPUTS_OPTION FILE.tsv``, ``predict --search`` and ``--attention-plot``,
    ``export --beam-width`` (``apps/common/generation.py`` reads them)."""
    searches = ("beam", "greedy")
    if command == "evaluate":
        parser.add_argument(
            "--search",
            choices=(*searches, "both"),
            default="both",
            help="score beam search, greedy search or both (default both)",
        )
        parser.add_argument(f"--{outputs_option}", type=Path, metavar="FILE.tsv", help=outputs_help)
    if command == "predict":
        parser.add_argument(
            "--search",
            choices=searches,
            default="beam",
            help="beam search (the export's serving_default) or greedy search",
        )
        parser.add_argument("--attention-plot", metavar="FILE.png", help=attention_help)
    if command == "export":
        parser.add_argument(
            "--beam-width",
            type=int,
            metavar="K",
            help=f"beam width of serving_default (default: the run's beam_width, "
            f"{default_beam_width})",
        )


def add_arguments(command: str, app: App, parser: argparse.ArgumentParser) -> None:
    """The shared flags, then the app's own."""
    add_shared_arguments(command, app, parser)
    add_app_arguments(command, app, parser)


def add_app_arguments(command: str, app: App, parser: argparse.ArgumentParser) -> None:
    """The app's own flags of ``command``; records which ``dest``\\ s are the app's (for
    ``app_options``)."""
    shared = {action.dest for action in parser._actions}
    app.add_arguments(command, parser)
    own = sorted({action.dest for action in parser._actions} - shared)
    parser.set_defaults(app_option_names=own)


def app_options(args: argparse.Namespace) -> dict:
    """The values of the app's own flags, keyed by ``dest``."""
    return {name: getattr(args, name) for name in getattr(args, "app_option_names", [])}


def hyperparameter_flags(app: App, options: dict) -> list[tuple[str, object]]:
    """Takes the flags that stand for hyperparameters out of ``options``, as ``(key, value)``
    overrides that go before ``--set`` (which wins); paths absolute, so that a run does not
    depend on the directory it was started from."""
    return [
        (name, str(value.resolve()) if isinstance(value, Path) else value)
        for name in app.hyperparameter_flags
        if (value := options.pop(name, None)) is not None
    ]


def read_inputs(inputs: list[str]):
    """The INPUT arguments, or stdin's lines (read lazily, so that predictions stream)."""
    if inputs:
        yield from inputs
        return
    for line in sys.stdin:
        yield line.rstrip("\n")


def run(command: str, app: App, args: argparse.Namespace) -> int:
    """Runs ``command`` for ``app`` through the generic drivers (imports TensorFlow)."""
    from apps.common import drivers

    task = app.load_task()
    options = app_options(args)
    if command == "train":
        flagged = hyperparameter_flags(app, options)
        settings = drivers.TrainingSettings(
            out=args.out,
            hyperparameters=drivers.resolve_hyperparameters(
                task, args.arch, args.hyperparameters, [*flagged, *args.overrides]
            ),
            data=args.data,
            options=options,
            seed=args.seed,
            epochs=args.epochs,
            batch_size=args.batch_size,
            patience=args.patience,
            ensemble=getattr(args, "ensemble", None),
            overwrite=args.overwrite,
        )
        metrics = drivers.train(task, settings)
        if args.json:
            print(json.dumps(metrics, sort_keys=True))
    elif command == "evaluate":
        report = drivers.evaluate(
            task, args.model, args.data, split=args.split, seed=args.seed, options=options
        )
        print(drivers.format_evaluation(task, report))
        if args.json:
            print(json.dumps(report, sort_keys=True))
    elif command == "predict":
        for line in drivers.predict(task, args.model, read_inputs(args.inputs), options, args.json):
            print(line, flush=True)
    elif command == "export":
        target = drivers.export(
            task,
            args.model,
            args.base,
            args.version,
            check=args.check,
            options=options,
            float16=args.float16,
        )
        print(f"exported {target}")
        if args.batching_config:
            from serving.batching import write_default_batching_parameters

            parameters = write_default_batching_parameters(args.base)
            print(f"batching parameters in {parameters}")
        if args.json:
            print(json.dumps({"export": str(target), **drivers.read_export_config(target)}))
    else:
        raise SeqappsError(f"unknown command {command!r}")
    return 0
