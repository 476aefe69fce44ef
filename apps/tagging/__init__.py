"""Tagging: tokens -> tags (part of speech, named entities). ``apps/tagging/task.py`` implements
it; this file is its face on the command line (importable without TensorFlow)."""

from __future__ import annotations

import argparse

from apps.common.app import App

# The first is the default.
ARCHITECTURES = ("lstm", "tcn")


def add_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    if command in ("train", "evaluate"):
        parser.add_argument(
            "--column",
            choices=("upos", "xpos", "entities"),
            help="the tags to learn: upos (default) or xpos of a CoNLL-U file; entities for "
            "column files (detected) and the built-in data (its default)",
        )
        parser.add_argument(
            "--token-column",
            type=int,
            metavar="N",
            help="column of the token in a column file, counted from 1 (negative: from the "
            "end); default: detected",
        )
        parser.add_argument(
            "--tag-column",
            type=int,
            metavar="N",
            help="column of the tag in a column file (default: detected)",
        )


def load_task():
    from apps.tagging.task import TaggingTask

    return TaggingTask()


def load_hypermodel():
    from tuning.tagging import TaggingHyperModel

    return TaggingHyperModel


APP = App(
    name="tagging",
    summary="tokens -> tags (CoNLL-U part of speech, CoNLL-2003/UNER entities)",
    load_task=load_task,
    load_hypermodel=load_hypermodel,
    architectures=ARCHITECTURES,
    data_help="a CoNLL-U file or UD folder (*-ud-{train,dev,test}.conllu), or a CoNLL-2003 / "
    "Universal NER column file or folder (default: built-in generated sentences)",
    add_arguments=add_arguments,
    ensemble=1,
    epochs=20,
    batch_size=32,
    patience=4,
)
