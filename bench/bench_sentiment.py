"""Sentiment on SST-2 (sentence level): accuracy, training time and export latency per architecture.

    .venv/bin/python bench/bench_sentiment.py --data ../shared/data/sst2 [--arch tcn lstm]
    .venv/bin/python bench/bench_sentiment.py --data ../shared/data/sst2 --quick   # smoke run

Each architecture trains from scratch with the app's defaults (``seqapps train sentiment``: early
stopping on SST-2's dev split), is evaluated on the test split, exported, and the export is timed
on this CPU: one request of one sentence, and one request of 64 sentences (median of repeats,
after warm-up), through the ``serving_default`` signature as TF Serving would call it.
Anchors: CNN-rand 82.7 (Kim 2014); BiLSTM 87.5 with phrase-level data (Tai et al. 2015).
Output: a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import seqlayers._quiet_import  # noqa: F401  (before keras: TensorFlow loads quietly)

import tensorflow as tf
from machine_info import describe_machine

from apps.common.labeled_text import load_labeled_text
from apps.sentiment import task


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the SST-2 folder")
    parser.add_argument("--arch", nargs="+", default=["tcn", "lstm", "transformer"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="one epoch: a smoke run")
    args = parser.parse_args()
    test_sentences = load_labeled_text(args.data, for_training=False).split("test").texts
    print(f"\n### Sentiment, SST-2 sentence level ({describe_machine()})\n")
    print(
        "| architecture | test accuracy | test macro-F1 | dev accuracy | epochs | training minutes "
        "| export latency, 1 sentence (ms) | export latency, batch of 64 (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for architecture in args.arch:
            run_dir = Path(scratch) / architecture
            start = time.perf_counter()
            validation = task.train(
                args.data,
                architecture,
                epochs=1 if args.quick else args.epochs,
                out=run_dir,
                verbose=0,
            )
            minutes = (time.perf_counter() - start) / 60
            epochs = len((run_dir / "training_log.csv").read_text().splitlines()) - 1
            test = task.evaluate(run_dir, args.data, "test")
            export_dir = task.export(run_dir, Path(scratch) / "saved_models")
            repeats = 5 if args.quick else 50
            single = export_latency_ms(export_dir, test_sentences, 1, repeats)
            batch = export_latency_ms(export_dir, test_sentences, 64, repeats)
            print(
                f"| {architecture} | {100 * test['accuracy']:.1f} | {100 * test['macro_f1']:.1f} "
                f"| {100 * validation['accuracy']:.1f} | {epochs} | {minutes:.1f} "
                f"| {single:.1f} | {batch:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
