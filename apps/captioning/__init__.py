"""Captioning: image -> text (a convolutional encoder, an attentive decoder, beam search, BLEU).
``apps/captioning/task.py`` implements it; this file is its face on the command line
(importable without TensorFlow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from apps.common.app import App
from apps.common.command_line import add_search_arguments

# The first is the default: the decoder of Show, Attend and Tell (Xu et al. 2015).
ARCHITECTURES = ("lstm", "transformer")


def add_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    if command == "train":
        # Hyperparameters with flags of their own (config.json records them as hyperparameters).
        parser.add_argument(
            "--encoder",
            metavar="NAME",
            help="image encoder: cnn (default, a small CNN trained from scratch) or a "
            "keras.applications model (MobileNetV2, ResNet50, EfficientNetB0, ...) whose weights "
            "are read from --encoder-weights",
        )
        parser.add_argument(
            "--encoder-weights",
            type=Path,
            metavar="FILE",
            help="weights of the --encoder backbone on disk (for example ImageNet weights saved "
            "with model.save_weights); nothing is downloaded",
        )
        parser.add_argument(
            "--fine-tune-encoder",
            action="store_const",
            const=True,
            help="train the backbone's weights too (default: frozen, its image features "
            "computed once and cached)",
        )
    add_search_arguments(
        command,
        parser,
        outputs_option="captions",
        outputs_help="write each image's generated captions and references here (default for "
        "a run directory: captions-SPLIT.tsv in it)",
        attention_help="draw the first image with its attention map for each generated word",
        default_beam_width=3,
    )


def load_task():
    from apps.captioning.task import CaptioningTask

    return CaptioningTask()


def load_hypermodel():
    from tuning.captioning import CaptioningHyperModel

    return CaptioningHyperModel


APP = App(
    name="captioning",
    summary="image -> text (CNN encoder, LSTM with visual attention or transformer, beam search)",
    load_task=load_task,
    load_hypermodel=load_hypermodel,
    architectures=ARCHITECTURES,
    data_help="a Flickr8k-style folder (images/ or Flicker8k_Dataset/ with Flickr8k.token.txt "
    "and optional Flickr_8k.{train,dev,test}Images.txt), a captions.txt CSV (image,caption) "
    "beside images/, or that caption file itself (default: built-in generated shapes)",
    add_arguments=add_arguments,
    hyperparameter_flags=("encoder", "encoder_weights", "fine_tune_encoder"),
    ensemble=None,
    epochs=30,
    batch_size=16,
    patience=5,
)
