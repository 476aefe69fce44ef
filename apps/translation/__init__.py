"""Translation: text -> text (encoder-decoder, beam search, sacreBLEU). ``apps/translation/task.py``
implements it; this file is its face on the command line (importable without TensorFlow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from apps.common.app import App

# The first is the default.
ARCHITECTURES = ("transformer", "lstm")
SEARCHES = ("beam", "greedy")


def add_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    if command in ("train", "evaluate"):
        parser.add_argument(
            "--source",
            metavar="LANG",
            help="source language: the suffix of a folder's files (train.en); default en when "
            "the folder holds exactly en and de",
        )
        parser.add_argument(
            "--target", metavar="LANG", help="target language (default de, as for --source)"
        )
    if command == "evaluate":
        parser.add_argument(
            "--search",
            choices=(*SEARCHES, "both"),
            default="both",
            help="score beam search, greedy search or both (default both)",
        )
        parser.add_argument(
            "--translations",
            type=Path,
            metavar="FILE.tsv",
            help="write each sentence's source, reference and translations here (default for "
            "a run directory: translations-SPLIT.tsv in it)",
        )
    if command == "predict":
        parser.add_argument(
            "--search",
            choices=SEARCHES,
            default="beam",
            help="beam search (the export's serving_default) or greedy search",
        )
        parser.add_argument(
            "--attention-plot",
            metavar="FILE.png",
            help="draw the cross-attention map of the first input sentence into this image",
        )
    if command == "export":
        parser.add_argument(
            "--beam-width",
            type=int,
            metavar="K",
            help="beam width of serving_default (default: the run's beam_width, 4)",
        )


def load_task():
    from apps.translation.task import TranslationTask

    return TranslationTask()


APP = App(
    name="translation",
    summary="text -> text (transformer or LSTM with attention, beam search, sacreBLEU)",
    load_task=load_task,
    architectures=ARCHITECTURES,
    data_help="a folder of line-aligned pairs NAME.SRC[.gz]/NAME.TGT[.gz] (Multi30k layout), or a "
    "tab-separated pair file source<TAB>target (default: built-in generated English-German)",
    add_arguments=add_arguments,
    ensemble=None,
    epochs=30,
    batch_size=64,
    patience=5,
)
