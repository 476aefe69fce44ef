"""``seqapps <command> sentiment``: arguments, and the calls into ``apps.sentiment.task``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from apps.common.app import AppCommands
from apps.sentiment import ARCHITECTURES, DEFAULT_ENSEMBLE

# The best measured on SST-2 (bench/RESULTS.md).
DEFAULT_ARCHITECTURE = "lstm"


def add_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    if command in ("train", "evaluate"):
        parser.add_argument(
            "--data",
            type=Path,
            help="aclImdb folder, SST-2 folder, or TSV/CSV file or folder "
            "(default: the built-in synthetic reviews)",
        )
        parser.add_argument("--text-column", help="text column of a TSV/CSV file")
        parser.add_argument("--label-column", help="label column of a TSV/CSV file")
        parser.add_argument("--seed", type=int, default=0, help="data split and training seed")
    if command == "train":
        parser.add_argument("--arch", choices=ARCHITECTURES, default=DEFAULT_ARCHITECTURE)
        parser.add_argument(
            "--ensemble",
            type=int,
            default=DEFAULT_ENSEMBLE,
            metavar="N",
            help=f"train N models with seeds SEED..SEED+N-1 and average their probabilities "
            f"(default {DEFAULT_ENSEMBLE}; 1 trains a single model, N times faster)",
        )
        parser.add_argument("--epochs", type=int, default=20, help="at most (early stopping)")
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--out", type=Path, default=Path("runs") / "sentiment")
        parser.add_argument("--max-tokens", type=int, default=400, help="tokens kept per text")
        parser.add_argument("--vocabulary-size", type=int, default=20_000)
        parser.add_argument("--patience", type=int, default=3, help="early-stopping patience")
        parser.add_argument(
            "--overwrite", action="store_true", help="replace a finished run in --out"
        )
    if command in ("evaluate", "predict", "export"):
        parser.add_argument(
            "--model",
            type=Path,
            required=True,
            help="training run directory" + ("" if command == "export" else " or export"),
        )
    if command == "evaluate":
        parser.add_argument("--split", choices=("train", "validation", "test"), default="test")
        parser.add_argument(
            "--json", action="store_true", help="last line of stdout: the metrics as JSON"
        )
    if command == "predict":
        parser.add_argument("texts", nargs="*", metavar="TEXT", help="default: lines of stdin")
    if command == "export":
        parser.add_argument("--base", type=Path, default=Path("saved_models"))
        parser.add_argument("--version", type=int, help="default: the next free integer")


def run(command: str, args: argparse.Namespace) -> int:
    from apps.common.metrics import format_report
    from apps.sentiment import task

    columns = {}
    if command in ("train", "evaluate"):
        columns = {"text_column": args.text_column, "label_column": args.label_column}
    if command == "train":
        task.train(
            args.data,
            args.arch,
            args.epochs,
            args.batch_size,
            args.out,
            args.seed,
            ensemble=args.ensemble,
            max_tokens=args.max_tokens,
            vocabulary_size=args.vocabulary_size,
            patience=args.patience,
            overwrite=args.overwrite,
            **columns,
        )
    elif command == "evaluate":
        report = task.evaluate(args.model, args.data, args.split, args.seed, **columns)
        print(f"split     {report['split']}")
        print(format_report(report))
        if args.json:
            print(json.dumps(report, sort_keys=True))
    elif command == "predict":
        texts = task.read_texts(args.texts)
        for text, (label, probability) in zip(texts, task.predict(args.model, texts), strict=True):
            print(f"{label}\t{probability:.4f}\t{text}")
    elif command == "export":
        target = task.export(args.model, args.base, args.version)
        print(f"exported {target}")
    return 0


APP = AppCommands(
    name="sentiment",
    summary="text -> label (aclImdb, SST-2, TSV/CSV)",
    add_arguments=add_arguments,
    run=run,
)
