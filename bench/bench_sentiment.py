"""Sentiment on SST-2 (sentence level): accuracy, training time and export latency per architecture.

    .venv/bin/python bench/bench_sentiment.py --data ../shared/data/sst2 [--arch tcn lstm]
    .venv/bin/python bench/bench_sentiment.py --data ../shared/data/sst2 --quick   # smoke run

Each architecture trains from scratch with the app's defaults (``seqapps train sentiment``: an
ensemble sized to the data, 10 models on SST-2, with seeds 0, 1, ..., each with early stopping on
SST-2's dev split), is evaluated on the test split (the ensemble, and each member on its own),
exported, and the export is timed on this CPU: one request of one sentence, and one request of
64 sentences (median of repeats, after warm-up), through the ``serving_default`` signature as TF
Serving would call it.
Anchors: CNN-rand 82.7 (Kim 2014); BiLSTM 87.5 with phrase-level data (Tai et al. 2015).
Output: a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import apps.quiet_tensorflow  # noqa: F401  (first: TensorFlow loads without its C++ start-up noise)

import keras
import numpy as np
import tensorflow as tf
from machine_info import describe_machine

from apps.common import drivers, training
from apps.common.predictor import RunPredictor
from apps.sentiment import APP
from apps.sentiment.data import load_labeled_text
from apps.sentiment.task import label_ids, probabilities

TASK = APP.load_task()


def export_latency_ms(export_dir: Path, sentences: list[str], batch: int, repeats: int) -> float:
    serving = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    request = tf.constant(sentences[:batch])
    for _ in range(5):
        serving(text=request)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        serving(text=request)["label"].numpy()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def member_test_accuracies(run_dir: Path, data_path: Path) -> list[float]:
    """Test accuracy of each ensemble member on its own (the run's single model if none)."""
    member_dirs = sorted((run_dir / training.MEMBERS_DIR).glob("*"), key=lambda d: int(d.name))
    if not member_dirs:
        return [drivers.evaluate(TASK, run_dir, data_path, split="test")["accuracy"]]
    run = RunPredictor(TASK, run_dir)
    examples = load_labeled_text(data_path, for_training=False).split("test")
    true_ids = label_ids(examples, run.preprocessor.label_names)
    accuracies = []
    for member_dir in member_dirs:
        member = keras.models.load_model(member_dir / training.MODEL_FILE)
        predictor = RunPredictor(TASK, run_dir, model=member, preprocessor=run.preprocessor)
        predicted = np.argmax(probabilities(predictor, examples.texts, "member"), axis=-1)
        accuracies.append(float(np.mean(predicted == true_ids)))
    return accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the SST-2 folder")
    parser.add_argument("--arch", nargs="+", default=["lstm", "tcn", "transformer"])
    parser.add_argument(
        "--ensemble", type=int, help="members (default: the app's, sized to the data)"
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="one epoch, 2 members: a smoke run")
    args = parser.parse_args()
    members = 2 if args.quick else args.ensemble
    test_sentences = load_labeled_text(args.data, for_training=False).split("test").texts
    print(f"\n### Sentiment, SST-2 sentence level ({describe_machine()})\n")
    print(
        "| architecture | members | test accuracy | each member alone: mean (min–max) "
        "| test macro-F1 | dev accuracy | training minutes "
        "| export latency, 1 sentence (ms) | export latency, batch of 64 (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for architecture in args.arch:
            run_dir = Path(scratch) / architecture
            start = time.perf_counter()
            settings = drivers.TrainingSettings(
                out=run_dir,
                hyperparameters=drivers.resolve_hyperparameters(TASK, architecture),
                data=args.data,
                seed=args.seed,
                epochs=1 if args.quick else args.epochs,
                ensemble=members,
                verbose=0,
            )
            validation = drivers.train(TASK, settings)
            minutes = (time.perf_counter() - start) / 60
            trained = training.read_json(run_dir / training.CONFIG_FILE)["ensemble"]
            test = drivers.evaluate(TASK, run_dir, args.data, split="test")
            alone = member_test_accuracies(run_dir, args.data)
            export_dir = drivers.export(TASK, run_dir, Path(scratch) / "saved_models")
            repeats = 5 if args.quick else 50
            single = export_latency_ms(export_dir, test_sentences, 1, repeats)
            batch = export_latency_ms(export_dir, test_sentences, 64, repeats)
            print(
                f"| {architecture} | {trained} | {100 * test['accuracy']:.1f} "
                f"| {100 * statistics.mean(alone):.1f} "
                f"({100 * min(alone):.1f}–{100 * max(alone):.1f}) "
                f"| {100 * test['macro_f1']:.1f} | {100 * validation['accuracy']:.1f} "
                f"| {minutes:.1f} | {single:.1f} | {batch:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
