"""Translation: text -> text (encoder-decoder, beam search, sacreBLEU). ``apps/translation/task.py``
implements it; this file is its face on the command line (importable without TensorFlow)."""

from __future__ import annotations

import argparse

from apps.common.app import App
from apps.common.command_line import add_search_arguments

# The first is the default.
ARCHITECTURES = ("transformer", "lstm")


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
    add_search_arguments(
        command,
        parser,
        outputs_option="translations",
        outputs_help="write each sentence's source, reference and translations here (default "
        "for a run directory: translations-SPLIT.tsv in it)",
        attention_help="draw the cross-attention map of the first input sentence into this image",
        default_beam_width=4,
    )


def load_task():
    from apps.translation.task import TranslationTask

    return TranslationTask()


def load_hypermodel():
    from tuning.translation import TranslationHyperModel

    return TranslationHyperModel


APP = App(
    name="translation",
    summary="text -> text (transformer or LSTM with attention, beam search, sacreBLEU)",
    load_task=load_task,
    load_hypermodel=load_hypermodel,
    architectures=ARCHITECTURES,
    data_help="a folder of line-aligned pairs NAME.SRC[.gz]/NAME.TGT[.gz] (Multi30k layout), or a "
    "tab-separated pair file source<TAB>target (default: built-in generated English-German)",
    add_arguments=add_arguments,
    ensemble=None,
    epochs=30,
    batch_size=64,
    patience=5,
)
