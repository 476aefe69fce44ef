"""The ``seqapps`` console command: one entry point for every app.

    seqapps --help                      lists the subcommands
    seqapps --version                   prints the installed version
    seqapps info                        versions of the stack and the devices TensorFlow sees
    seqapps train|evaluate|predict|export APP [options]    (seqapps train --help lists the apps)
    seqapps tune APP [options]          a KerasTuner search of the app's hyperparameters
    seqapps serve [options]             TF Serving's REST and gRPC APIs over saved_models/

The app commands come from ``APPS`` (each app's ``App``, its flags added to the shared ones of
``apps/common/command_line.py``); other subcommands from ``SUBCOMMANDS``. TensorFlow is imported
only when a command runs, so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata

from apps.captioning import APP as CAPTIONING
from apps.common import command_line
from apps.common.app import COMMANDS, App
from apps.common.errors import SeqappsError
from apps.sentiment import APP as SENTIMENT
from apps.tagging import APP as TAGGING
from apps.translation import APP as TRANSLATION
from serving import command as serving_command
from tuning import command as tuning_command

APPS: list[App] = [SENTIMENT, TAGGING, TRANSLATION, CAPTIONING]

PROGRAM = "seqapps"


def installed_version(distribution: str = PROGRAM) -> str:
    """The installed version of ``distribution``, or a note saying it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Subcommand:
    name: str
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _add_no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def _run_info(args: argparse.Namespace) -> int:
    del args
    import tensorflow as tf

    print(f"{PROGRAM} {installed_version()}")
    print(f"python {platform.python_version()} ({platform.machine()})")
    for distribution in ("tensorflow", "tensorflow-text", "keras", "keras-tuner"):
        print(f"{distribution} {installed_version(distribution)}")
    devices = tf.config.list_physical_devices()
    print("devices: " + ", ".join(f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}" for d in devices))
    return 0


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        name="info",
        summary="print the versions of the stack and the devices TensorFlow sees",
        add_arguments=_add_no_arguments,
        run=_run_info,
    ),
    Subcommand(
        name="serve",
        summary=serving_command.SUMMARY,
        add_arguments=serving_command.add_arguments,
        run=serving_command.run,
    ),
]


def build_parser(apps: Sequence[App] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Train, evaluate, predict with and export sequence-model apps.",
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {installed_version()}")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    for command, summary in COMMANDS.items():
        command_parser = subparsers.add_parser(command, help=summary, description=summary)
        app_parsers = command_parser.add_subparsers(dest="app", metavar="APP", required=True)
        for app in APPS if apps is None else apps:
            app_parser = app_parsers.add_parser(
                app.name, help=app.summary, description=f"{command} {app.name}: {app.summary}"
            )
            command_line.add_arguments(command, app, app_parser)
            app_parser.set_defaults(
                run=lambda args, app=app, command=command: command_line.run(command, app, args)
            )
    tune_parser = subparsers.add_parser(
        "tune", help=tuning_command.SUMMARY, description=tuning_command.SUMMARY
    )
    tune_apps = tune_parser.add_subparsers(dest="app", metavar="APP", required=True)
    for app in APPS if apps is None else apps:
        if app.load_hypermodel is None:
            continue
        app_parser = tune_apps.add_parser(
            app.name, help=app.summary, description=f"tune {app.name}: {tuning_command.SUMMARY}"
        )
        tuning_command.add_arguments(app, app_parser)
        app_parser.set_defaults(run=lambda args, app=app: tuning_command.run(app, args))
    for subcommand in SUBCOMMANDS:
        subparser = subparsers.add_parser(
            subcommand.name, help=subcommand.summary, description=subcommand.summary
        )
        subcommand.add_arguments(subparser)
        subparser.set_defaults(run=subcommand.run)
    return parser


def main(argv: Sequence[str] | None = None, apps: Sequence[App] | None = None) -> int:
    """Runs ``seqapps`` with ``argv``; ``apps`` replaces the registered apps (for tests and
    for programs that add apps of their own)."""
    parser = build_parser(apps)
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    # Every command runs TensorFlow: load it now, before any module imports keras, without its
    # C++ start-up noise (--help and --version never get here).
    from apps.quiet_tensorflow import import_tensorflow_quietly

    import_tensorflow_quietly()
    try:
        return args.run(args)
    except SeqappsError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROGRAM}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
