"""Sentiment: text -> label. ``apps/sentiment/task.py`` implements it; this file is its face on
the command line (importable without TensorFlow, so that ``seqapps --help`` answers at once)."""

from __future__ import annotations

import argparse

from apps.common.app import AUTO_ENSEMBLE, App

# The first is the default: the best measured on SST-2 (bench/RESULTS.md).
ARCHITECTURES = ("lstm", "tcn", "transformer")

# Largest default ensemble (``--ensemble auto``): on SST-2, 10 LSTMs trained with different
# seeds score about 3 points of test accuracy above their average member and reach 83 % within
# 15 minutes of training (bench/RESULTS.md). Members cost training time in proportion to the
# words they read, so ``auto`` takes as many members (1 to 10) as fit in the words of 10 SST-2
# runs: 10 on SST-2 (131 k words), 1 on IMDB (5.2 M words, 200 s an epoch for one model).
DEFAULT_ENSEMBLE = 10
ENSEMBLE_WORD_BUDGET = 1_500_000


def add_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    if command in ("train", "evaluate"):
        parser.add_argument("--text-column", help="text column of a TSV/CSV file")
        parser.add_argument("--label-column", help="label column of a TSV/CSV file")


def load_task():
    from apps.sentiment.task import SentimentTask

    return SentimentTask()


def load_hypermodel():
    from tuning.sentiment import SentimentHyperModel

    return SentimentHyperModel


APP = App(
    name="sentiment",
    summary="text -> label (aclImdb, SST-2, TSV/CSV)",
    load_task=load_task,
    load_hypermodel=load_hypermodel,
    architectures=ARCHITECTURES,
    data_help="aclImdb folder, SST-2 folder, or TSV/CSV file or folder "
    "(default: the built-in synthetic reviews)",
    add_arguments=add_arguments,
    ensemble=AUTO_ENSEMBLE,
)
