"""Captioning: the Flickr8k subset's held-back images, the default command against two baselines.

    .venv/bin/python bench/bench_captioning.py flickr8k --data ../shared/data/flickr8k_train_subset
                     [--arch lstm transformer] [--minutes 60] [--quick]
    .venv/bin/python bench/bench_captioning.py blocking --model runs/bench-captioning/lstm
                     --data ../shared/data/flickr8k_train_subset

Each architecture is trained by the command a user types, ``seqapps train captioning --data
PATH`` (``--arch transformer`` for the transformer, nothing else): the folder has no split
lists, so a seeded 10 % of its 753 images (75, with their 375 captions) is held back for
selecting the epoch, and the figures are measured on those same images (the run's
``metrics.json``, beam and greedy search), as the issue asks; the selection makes them slightly
optimistic. Two
baselines on the same images:

- ``most frequent caption``: the training caption that occurs most often (lower-cased, spaces
  normalized), written for every image;
- ``nearest image``: for each held-back image, the training image whose encoder features (the
  trained LSTM model's grid, averaged over positions) have the largest cosine similarity; its
  caption that agrees best with its other four (the highest BLEU against them, the consensus
  caption of Devlin et al. 2015, https://arxiv.org/abs/1505.04467).

``blocking``: the same held-back images captioned by a trained run with n-gram blocking off and
at n = 2, 3, 4 (``no_repeat_ngram_size``), beam and greedy search: what the default of 3 does.

Anchor: BLEU-4 19.5-21.3 on full Flickr8k (6,000 training images) with ImageNet-pretrained
encoders (Xu et al. 2015); here the encoder trains from scratch on 678 images.

Output: Markdown tables for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import apps.quiet_tensorflow  # noqa: F401  (first: TensorFlow loads without its C++ start-up noise)

import command_runs
import numpy as np
import sacrebleu
import tensorflow as tf
from machine_info import describe_machine

from apps.captioning import APP
from apps.captioning.model import Captioner
from apps.captioning.task import IMAGE_BATCH, caption_function, caption_scores
from apps.common.predictor import RunPredictor

TASK = APP.load_task()
SPLIT = "validation"


def normalized(caption: str) -> str:
    return " ".join(caption.lower().split())


def most_frequent_caption(train) -> str:
    counts = collections.Counter(normalized(c) for image in train for c in image.captions)
    return counts.most_common(1)[0][0]


def consensus_caption(captions) -> str:
    """The caption with the highest sentence BLEU against the image's other captions."""

    def agreement(index):
        others = [c for i, c in enumerate(captions) if i != index]
        return sacrebleu.sentence_bleu(captions[index], others, lowercase=True).score

    return captions[max(range(len(captions)), key=agreement)]


def encoder_features(predictor: RunPredictor, examples) -> np.ndarray:
    """The trained encoder's grid features of each image, averaged over positions, unit length."""
    captioner = Captioner(predictor.model)
    preprocessor = predictor.preprocessor

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def features(data):
        inputs = preprocessor.encoder_inputs(preprocessor.decode_images(data))
        return tf.reduce_mean(captioner.features(inputs), axis=1)

    rows = []
    for start in range(0, len(examples), IMAGE_BATCH):
        batch = examples[start : start + IMAGE_BATCH]
        rows.append(features(tf.constant([image.read() for image in batch])).numpy())
    matrix = np.concatenate(rows)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def baseline_rows(run_dir: Path, data: Path) -> list[str]:
    splits = TASK.load_data(data, {}, seed=0, for_training=True)
    train, held_back = splits.split("train"), splits.split(SPLIT)
    references = [image.captions for image in held_back]
    frequent = most_frequent_caption(train)
    predictor = RunPredictor(TASK, run_dir)
    similarity = encoder_features(predictor, held_back) @ encoder_features(predictor, train).T
    nearest = [consensus_caption(train[i].captions) for i in similarity.argmax(axis=1)]
    rows = []
    for name, captions in (
        (f'most frequent caption ("{frequent}")', [frequent] * len(held_back)),
        ("nearest image (encoder features), its consensus caption", nearest),
    ):
        scores = caption_scores(captions, references)
        rows.append(table_row(name, scores))
    return rows


def table_row(name: str, scores: dict, extra: str = "| |") -> str:
    bleu = " | ".join(f"{scores[f'bleu{n}']:.2f}" for n in range(1, 5))
    return f"| {name} | {bleu} | {scores['distinct']:.1%} {extra}"


def flickr8k(args: argparse.Namespace) -> None:
    print(f"\n### Captioning: Flickr8k subset, held-back images ({describe_machine()})\n")
    rows, curves, held_back = [], {}, 0
    for architecture in args.arch:
        run_dir = args.runs / architecture
        extra = [] if architecture == "lstm" else ["--arch", architecture]
        if args.quick:
            extra += ["--epochs", "1", "--set", "image_size=32"]
        curve = command_runs.train_for(
            "captioning", args.data, run_dir, extra, args.minutes, "bleu4"
        )
        curves[architecture] = curve
        # The held-back images' scores, beam and greedy, as training wrote them at its end
        # (``evaluate`` on a folder without split lists scores every image of it).
        report = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        held_back = report["examples"]
        best = int(max(curve, key=lambda point: point[2])[0]) if curve else 0
        minutes = curve[-1][1] if curve else float("nan")
        rows.append(
            table_row(
                f"{architecture}, beam {report['beam_width']}",
                report,
                f"| {len(curve)} ({best}) | {minutes:.0f} |",
            )
        )
        greedy = {
            key[len("greedy_") :]: v for key, v in report.items() if key.startswith("greedy_")
        }
        rows.append(table_row(f"{architecture}, greedy", greedy))
        print(f"sacreBLEU signature: {report['bleu_signature']}", file=sys.stderr)
    rows += baseline_rows(args.runs / args.arch[0], args.data)
    print(
        f"| captions of the {held_back} held-back images | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 "
        "| distinct | epochs (best) | training minutes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nValidation BLEU-4 (greedy) after each epoch, against minutes of training:\n")
    for architecture, curve in curves.items():
        points = ", ".join(f"{m:.1f} min {b:.1f}" for _, m, b in curve)
        print(f"- {architecture}: {points}")


def blocking(args: argparse.Namespace) -> None:
    print(f"\n### Captioning: n-gram blocking, {args.model} ({describe_machine()})\n")
    splits = TASK.load_data(args.data, {}, seed=0, for_training=True)
    held_back = splits.split(SPLIT)
    references = [image.captions for image in held_back]
    predictor = RunPredictor(TASK, args.model)
    inputs = TASK.encoder_inputs(held_back, predictor.preprocessor)
    print("| no_repeat_ngram_size | search | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | distinct "
          "| words a caption |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for size in (0, 2, 3, 4):
        for search in ("beam", "greedy"):
            hyperparameters = {
                **predictor.preprocessor.hyperparameters,
                "no_repeat_ngram_size": size,
            }
            caption = tf.function(
                caption_function(predictor.model, predictor.preprocessor, hyperparameters, search)
            )
            captions = []
            for start in range(0, len(inputs), IMAGE_BATCH):
                output = caption(tf.constant(inputs[start : start + IMAGE_BATCH]))["caption"]
                captions += [c.decode("utf-8") for c in output.numpy()]
            words = np.mean([len(c.split()) for c in captions])
            print(table_row(f"{size or 'off'} | {search}", caption_scores(captions, references),
                            f"| {words:.1f} |"))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    flickr = commands.add_parser("flickr8k", help="the default command against two baselines")
    flickr.add_argument("--data", type=Path, default=Path("../shared/data/flickr8k_train_subset"))
    flickr.add_argument("--arch", nargs="+", default=["lstm"], choices=APP.architectures)
    flickr.add_argument("--runs", type=Path, default=Path("runs/bench-captioning"))
    flickr.add_argument("--minutes", type=float, default=60.0, help="training budget per run")
    flickr.add_argument("--quick", action="store_true", help="1 epoch at 32 pixels, a smoke run")
    flickr.set_defaults(run=flickr8k)
    ablation = commands.add_parser("blocking", help="n-gram blocking off and on, one run")
    ablation.add_argument("--model", type=Path, required=True, help="a trained run directory")
    ablation.add_argument("--data", type=Path, default=Path("../shared/data/flickr8k_train_subset"))
    ablation.set_defaults(run=blocking)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
