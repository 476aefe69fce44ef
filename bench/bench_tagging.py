"""Tagging: UD English-EWT part of speech, Universal NER entities, and training at CoNLL-2003 size.

    .venv/bin/python bench/bench_tagging.py pos --data ../shared/data/ud_en_ewt [--arch lstm tcn]
    .venv/bin/python bench/bench_tagging.py ner --data ../shared/data/uner_en_ewt
    .venv/bin/python bench/bench_tagging.py scale [--tokens 200000]
    (any of them with --quick: 2 epochs, a smoke run)

Every model is trained by the command a user types, ``seqapps train tagging --data PATH``, with
no other flag (``--arch`` only where the table names another architecture), timed wall-clock.

- ``pos``: UD English-EWT UPOS: train on train, select on dev, report test token accuracy and
  the accuracy on test tokens whose word never occurs in training. Anchors: BiLSTM with
  character features about 95 (Plank et al. 2016), Stanza 95.4 with pretrained vectors.
- ``ner``: Universal NER English-EWT (IOB2; only dev and test are published): train on the dev
  file (the app holds a seeded 10 % back for selection), report entity-level precision, recall
  and F1 on test, overall and per type, for the CRF decoder (the default) and the softmax
  decoder, each decoded with the structure (CRF Viterbi; softmax with Viterbi over valid BIO
  transitions) and without it (each token's best tag alone). Inter-annotator F1 on this data
  (its ``.stats`` file): PER 0.95, LOC 0.79, ORG 0.64.
- ``scale``: a CoNLL-2003-format training set of about 200k tokens (four columns,
  ``-DOCSTART-`` lines, IOB1 tags as in the original files) written from the app's built-in
  grammar (no CoNLL-2003 copy is available here), with testa/testb files: training time of the
  default command at that size, and test F1.

Output: Markdown tables for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import apps.quiet_tensorflow  # noqa: F401  (first: TensorFlow loads without its C++ start-up noise)

import numpy as np
import tensorflow as tf
from machine_info import describe_machine
from seqeval.metrics import classification_report as entity_report

from apps import cli
from apps.common import drivers, training
from apps.common.datasets import WHOLE_FILE
from apps.common.predictor import RunPredictor
from apps.tagging import APP
from apps.tagging.builtin_data import builtin_tagging_data
from apps.tagging.task import tag_sentences

TASK = APP.load_task()
UNER_INTER_ANNOTATOR = {"PER": 0.95, "LOC": 0.79, "ORG": 0.64}


def train(data: Path, out: Path, *arguments: str) -> float:
    """``seqapps train tagging --data DATA --out OUT [arguments]``; returns wall minutes."""
    start = time.perf_counter()
    code = cli.main(["train", "tagging", "--data", str(data), "--out", str(out), *arguments])
    if code != 0:
        raise SystemExit(f"seqapps train failed with exit status {code}")
    return (time.perf_counter() - start) / 60


def epochs_of(run_dir: Path) -> tuple[int, int]:
    """(epochs trained, the best epoch)."""
    with (run_dir / training.LOG_FILE).open(encoding="utf-8") as file:
        trained = len(list(csv.DictReader(file)))
    best = json.loads((run_dir / "best.json").read_text(encoding="utf-8"))
    return trained, int(best["epoch"])


def pos(args: argparse.Namespace, scratch: Path) -> None:
    print(f"\n### Tagging: UD English-EWT UPOS ({describe_machine()})\n")
    print(
        "| architecture | test accuracy | test accuracy, unseen words (tokens) | dev accuracy "
        "| epochs (best) | training minutes |"
    )
    print("|---|---|---|---|---|---|")
    for architecture in args.arch:
        run_dir = scratch / f"pos-{architecture}"
        extra = [] if architecture == "lstm" else ["--arch", architecture]
        minutes = train(args.data, run_dir, *extra, *quick(args))
        test = drivers.evaluate(TASK, run_dir, args.data, split="test")
        dev = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        trained, best = epochs_of(run_dir)
        print(
            f"| {architecture} | {100 * test['accuracy']:.2f} "
            f"| {100 * test['unseen_accuracy']:.2f} ({test['unseen_tokens']}) "
            f"| {100 * dev['accuracy']:.2f} | {trained} ({best}) | {minutes:.1f} |",
            flush=True,
        )


def unstructured_tags(run_dir: Path, sentences) -> list[list[str]]:
    """Each token's best tag alone (the emission or softmax argmax): no transition structure."""
    run = RunPredictor(TASK, run_dir)
    names = np.array(run.preprocessor.tag_names, dtype=object)

    def tag_batch(tokens):
        ragged = tf.RaggedTensor.from_tensor(tf.constant(tokens), padding="")
        word_ids, char_ids = run.preprocessor.encode(ragged)
        scores = run.model([word_ids, char_ids], training=False)
        return names[np.argmax(np.asarray(scores), axis=-1)]

    return tag_sentences(tag_batch, sentences, what=None)


def entity_scores(gold, predicted) -> dict:
    report = entity_report(gold, predicted, output_dict=True, zero_division=0)
    return {name.replace("micro avg", "overall"): row for name, row in report.items()}


def ner(args: argparse.Namespace, scratch: Path) -> None:
    dev_file = next(args.data.glob("*dev*"))
    test_file = next(args.data.glob("*test*.iob2"), None) or next(args.data.glob("*test*"))
    test = TASK.load_data(test_file, {}, seed=0, for_training=False).split(WHOLE_FILE)
    gold = [sentence.tags for sentence in test]
    print(f"\n### Tagging: Universal NER English-EWT, trained on dev ({describe_machine()})\n")
    print(
        "| decoder | decoding | test F1 | precision | recall | PER F1 | LOC F1 | ORG F1 "
        "| training minutes |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for decoder in ("crf", "softmax"):
        run_dir = scratch / f"ner-{decoder}"
        extra = [] if decoder == "crf" else ["--set", "decoder=softmax"]
        minutes = train(dev_file, run_dir, *extra, *quick(args))
        structured = drivers.evaluate(TASK, run_dir, test_file, split=WHOLE_FILE)
        rows = {
            "structured": {
                **{name: {"f1-score": row["f1"]} for name, row in structured["per_type"].items()},
                "overall": {
                    "f1-score": structured["f1"],
                    "precision": structured["precision"],
                    "recall": structured["recall"],
                },
            },
            "each token alone": entity_scores(gold, unstructured_tags(run_dir, test)),
        }
        for decoding, scores in rows.items():
            overall = scores["overall"]
            per_type = " | ".join(
                f"{scores.get(kind, {}).get('f1-score', 0.0):.3f}" for kind in ("PER", "LOC", "ORG")
            )
            print(
                f"| {decoder} | {decoding} | {overall['f1-score']:.3f} "
                f"| {overall['precision']:.3f} | {overall['recall']:.3f} | {per_type} "
                f"| {minutes:.1f} |",
                flush=True,
            )
    print(
        "\nInter-annotator F1: "
        + ", ".join(f"{kind} {f1:.2f}" for kind, f1 in UNER_INTER_ANNOTATOR.items())
    )


def iob1(tags: list[str]) -> list[str]:
    """IOB2 tags in CoNLL-2003's IOB1: ``B-X`` only where an entity follows one of its type."""
    converted, previous = [], "O"
    for tag in tags:
        if tag.startswith("B-") and previous[2:] != tag[2:]:
            tag = "I-" + tag[2:]
        converted.append(tag)
        previous = tag
    return converted


def write_conll2003(path: Path, sentences) -> int:
    """Sentences in CoNLL-2003's layout (token, POS, chunk, IOB1 entity); returns tokens."""
    lines, tokens = ["-DOCSTART- -X- -X- O", ""], 0
    for number, sentence in enumerate(sentences):
        if number and number % 20 == 0:  # documents of 20 sentences, as the original has
            lines += ["-DOCSTART- -X- -X- O", ""]
        for token, tag in zip(sentence.tokens, iob1(sentence.tags), strict=True):
            lines.append(f"{token} NN I-NP {tag}")
        lines.append("")
        tokens += len(sentence.tokens)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tokens


def scale(args: argparse.Namespace, scratch: Path) -> None:
    folder = scratch / "conll2003-format"
    folder.mkdir()
    train_sentences, seed = [], 0
    while sum(len(s.tokens) for s in train_sentences) < args.tokens:
        train_sentences += builtin_tagging_data(seed=seed).split("train")
        seed += 1
    first = builtin_tagging_data(seed=0)
    tokens = write_conll2003(folder / "eng.train", train_sentences)
    write_conll2003(folder / "eng.testa", first.split("validation"))
    write_conll2003(folder / "eng.testb", first.split("test"))
    run_dir = scratch / "scale"
    minutes = train(folder, run_dir, *quick(args))
    test = drivers.evaluate(TASK, run_dir, folder, split="test")
    trained, best = epochs_of(run_dir)
    print(f"\n### Tagging: CoNLL-2003-format training at full size ({describe_machine()})\n")
    print("| training tokens | sentences | epochs (best) | training minutes | test F1 |")
    print("|---|---|---|---|---|")
    print(
        f"| {tokens} | {len(train_sentences)} | {trained} ({best}) | {minutes:.1f} "
        f"| {test['f1']:.3f} |"
    )


def quick(args: argparse.Namespace) -> list[str]:
    return ["--epochs", "2"] if args.quick else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("pos", "ner"):
        command = commands.add_parser(name)
        command.add_argument("--data", type=Path, required=True)
        command.add_argument("--quick", action="store_true")
    commands.choices["pos"].add_argument("--arch", nargs="+", default=["lstm"])
    command = commands.add_parser("scale")
    command.add_argument("--tokens", type=int, default=200_000)
    command.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        {"pos": pos, "ner": ner, "scale": scale}[args.command](args, Path(scratch))


if __name__ == "__main__":
    main()
