"""What an app gives the ``seqapps`` command: its arguments and how to run each subcommand."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

COMMANDS = {
    "train": "train a model and write a run directory",
    "evaluate": "report metrics of a run directory or an export on labeled data",
    "predict": "print predictions of a run directory or an export",
    "export": "publish a run directory as a TF Serving SavedModel version",
}


@dataclass(frozen=True)
class AppCommands:
    """An app's command-line face. ``run`` imports TensorFlow; ``add_arguments`` must not."""

    name: str
    summary: str
    add_arguments: Callable[[str, argparse.ArgumentParser], None]
    run: Callable[[str, argparse.Namespace], int]
