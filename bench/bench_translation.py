"""Translation: Multi30k en->de BLEU against training minutes, and the speed of decoding.

    .venv/bin/python bench/bench_translation.py multi30k --data ../shared/data/multi30k
                     [--arch transformer lstm] [--minutes 90]
    .venv/bin/python bench/bench_translation.py speed --model runs/bench-translation/transformer
    .venv/bin/python bench/bench_translation.py vocabulary --data ../shared/data/multi30k
                     [--arch lstm] [--epochs 3]
    (multi30k with --quick: 1 epoch, a smoke run)

- ``multi30k``: each architecture trained by the command a user types, ``seqapps train
  translation --data PATH`` (``--arch lstm`` for the LSTM, nothing else), stopped after
  ``--minutes`` of training if it has not stopped by itself (a kill is safe: the best epoch's
  model is already saved). The curve is validation BLEU (greedy) after each epoch against the
  minutes since the start; then sacreBLEU on test2016 for beam search (width 4) and greedy
  search, through ``seqapps evaluate``. Anchors (GPU, hours): text-only attention seq2seq about
  35-38, small transformers about 38-41 (``../shared/data/README.md``).
- ``vocabulary``: one subword vocabulary for both languages (the default) against one for each,
  trained by the same command for the same epochs: subwords per sentence, unknown pieces, the
  validation curve and test2016 BLEU.
- ``speed``: milliseconds per decoding step at output lengths 16, 32 and 64, for one sentence
  and for a batch of 64 (``--batch``), greedy and beam 4, with the decoder's cache against
  recomputing the whole prefix at every step (as the official tutorials' exports do), each
  under ``tf.function``, and cached under XLA too; outputs are forced to the length (the end
  token forbidden). Then sentences per second of the export's
  ``serving_default`` on the test sentences, in batches of 64.

Output: Markdown tables for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import apps.quiet_tensorflow  # noqa: F401  (first: TensorFlow loads without its C++ start-up noise)

import command_runs
import numpy as np
import tensorflow as tf
from machine_info import describe_machine

from apps.common import decoding
from apps.common.predictor import RunPredictor, load_predictor
from apps.common.text import END_ID, START_ID
from apps.translation import APP
from apps.translation.model import translator_for
from apps.translation.task import FORBIDDEN_IDS, subword_files, translate_texts

TASK = APP.load_task()
TEST_SPLIT = "test_2016_flickr"


def train_for(data: Path, out: Path, arguments: list[str], minutes: float) -> list[tuple]:
    return command_runs.train_for("translation", data, out, arguments, minutes, "bleu")


def evaluate(run_dir: Path, data: Path) -> dict:
    return command_runs.evaluate_run("translation", run_dir, data, TEST_SPLIT)


def multi30k(args: argparse.Namespace) -> None:
    print(f"\n### Translation: Multi30k en->de ({describe_machine()})\n")
    rows, curves = [], {}
    for architecture in args.arch:
        run_dir = args.runs / architecture
        extra = [] if architecture == "transformer" else ["--arch", architecture]
        if args.quick:
            extra += ["--epochs", "1"]
        curve = train_for(args.data, run_dir, extra, args.minutes)
        curves[architecture] = curve
        report = evaluate(run_dir, args.data)
        best = json.loads((run_dir / "best.json").read_text(encoding="utf-8"))
        minutes = curve[-1][1] if curve else float("nan")
        rows.append(
            f"| {architecture} | {report['bleu']:.2f} | {report['greedy_bleu']:.2f} "
            f"| {report['chrf']:.1f} | {len(curve)} ({int(best['epoch'])}) | {minutes:.0f} |"
        )
        print(f"sacreBLEU signature: {report['bleu_signature']}", file=sys.stderr)
    print(
        "| architecture | test2016 BLEU, beam 4 | BLEU, greedy | chrF, beam | epochs (best) "
        "| training minutes |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nValidation BLEU (greedy) after each epoch, against minutes of training:\n")
    for architecture, curve in curves.items():
        points = ", ".join(f"{m:.0f} min {b:.1f}" for _, m, b in curve)
        print(f"- {architecture}: {points}")


def vocabulary(args: argparse.Namespace) -> None:
    """Shared against separate subword vocabularies: the same command and number of epochs,
    only ``shared_vocabulary`` differs; the subwords per sentence and the test BLEU of each."""
    import sentencepiece

    print(f"\n### Translation: shared or separate vocabularies ({describe_machine()})\n")
    data = TASK.load_data(args.data, {}, seed=0, for_training=False)
    test = data.split(TEST_SPLIT)
    rows = []
    for shared in (True, False):
        name = "shared" if shared else "separate"
        run_dir = args.runs / f"{args.arch}-{name}-vocabulary"
        extra = ["--arch", args.arch, "--epochs", str(args.epochs)]
        extra += ["--set", f"shared_vocabulary={str(shared).lower()}"]
        curve = train_for(args.data, run_dir, extra, minutes=float("inf"))
        report = evaluate(run_dir, args.data)
        files = dict.fromkeys(subword_files({"shared_vocabulary": shared}))  # one when shared
        processors = [
            sentencepiece.SentencePieceProcessor(model_file=str(run_dir / file)) for file in files
        ]
        source_model, target_model = processors[0], processors[-1]
        sizes = " + ".join(str(p.get_piece_size()) for p in processors)
        source_pieces = np.mean([len(source_model.encode(p.source)) for p in test])
        target_pieces = np.mean([len(target_model.encode(p.target)) for p in test])
        unknown = sum(
            model.encode(text).count(model.unk_id())
            for pair in test
            for model, text in ((source_model, pair.source), (target_model, pair.target))
        )
        points = ", ".join(f"{b:.1f}" for _, _, b in curve)
        minutes = curve[-1][1] if curve else float("nan")
        rows.append(
            f"| {name} | {sizes} | {source_pieces:.1f} / {target_pieces:.1f} | {unknown} "
            f"| {points} | {report['bleu']:.2f} | {report['greedy_bleu']:.2f} | {minutes:.0f} |"
        )
    print(
        f"`{args.arch}`, {args.epochs} epochs each, everything else the defaults; subwords per "
        f"test2016 sentence (English / German) and unknown pieces in the {len(test)} test pairs.\n"
    )
    print(
        "| vocabulary | pieces | subwords per sentence | unknown | val BLEU per epoch "
        "| test2016 BLEU, beam 4 | greedy | training minutes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def time_per_step(translator, source, search, cached, xla, length, args, first_calls) -> float:
    """Median milliseconds per step of a ``search`` forced to ``length`` tokens; the seconds of
    its first call (tracing, and compiling under XLA) go to ``first_calls``."""
    encode = translator.encode if cached else translator.uncached_encode
    model_step = translator.step if cached else translator.uncached_step

    def step(tokens, index, state, context):
        # The end token never wins: every output is exactly ``length`` tokens long.
        logits, state = model_step(tokens, index, state, context)
        never_end = tf.one_hot(END_ID, tf.shape(logits)[-1], on_value=-1e9)
        return logits + tf.cast(never_end, logits.dtype), state

    # XLA needs the buffers' sizes at compile time: the length is a Python int there (one
    # compilation per length, as a server would need per shape); a tensor otherwise.
    @tf.function(jit_compile=xla)
    def generate(max_length):
        state, context = encode(source, max_length)
        common = {
            "max_length": max_length,
            "start_id": START_ID,
            "end_id": END_ID,
            "forbidden_ids": FORBIDDEN_IDS,
        }
        if search == "greedy":
            return decoding.greedy_search(step, state, context, **common)["tokens"]
        return decoding.beam_search(
            step, state, context, beam_width=4, length_penalty=0.6, **common
        )["tokens"]

    max_length = length if xla else tf.constant(length)
    start = time.perf_counter()
    generate(max_length).numpy()  # trace (and compile) and warm up
    first_calls[(search, source.shape[0], cached, xla, length)] = time.perf_counter() - start
    timings = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        generate(max_length).numpy()
        timings.append(time.perf_counter() - start)
    return 1000 * float(np.median(timings)) / length


def speed(args: argparse.Namespace) -> None:
    run = RunPredictor(TASK, args.model)
    hyperparameters = run.config["hyperparameters"]
    translator = translator_for(run.model, hyperparameters)
    sentence = tf.constant(["A man in a blue shirt is riding a bike ."])
    print(f"\n### Translation: decoding speed ({describe_machine()})\n")
    print(
        f"Model: {args.model} ({hyperparameters['architecture']}); milliseconds per decoding "
        "step (one token for every row of the batch; a beam-4 step scores 4 hypotheses per "
        f"row): the time of a whole search forced to the length, divided by the length, median "
        f"of {args.repeats} searches.\n"
    )
    print("| search | batch | cache | XLA | ms/step at 16 | at 32 | at 64 |")
    print("|---|---|---|---|---|---|---|")
    first: dict[tuple, float] = {}
    for batch in args.batch:
        source = run.preprocessor.source_ids(tf.repeat(sentence, batch)).to_tensor()
        for search in ("greedy", "beam"):
            for cached, xla in ((True, False), (False, False), (True, True)):
                cells = [
                    f"{time_per_step(translator, source, search, cached, xla, n, args, first):.2f}"
                    for n in (16, 32, 64)
                ]
                label = "beam 4" if search == "beam" else "greedy"
                print(
                    f"| {label} | {batch} | {'yes' if cached else 'no'} | {'yes' if xla else 'no'} "
                    f"| {' | '.join(cells)} |",
                    flush=True,
                )
    print("\nFirst call (tracing; with XLA also compiling, once per shape), seconds:\n")
    for (search, batch, cached, xla, length), seconds in first.items():
        if cached:
            xla_label = "XLA" if xla else "no XLA"
            print(f"- {search}, batch {batch}, {xla_label}, length {length}: {seconds:.1f}")
    if args.data is not None:
        export = args.export or args.model
        predictor = load_predictor(TASK, export)
        sentences = [
            p.source
            for p in TASK.load_data(args.data, {}, seed=0, for_training=False).split(TEST_SPLIT)
        ]
        for signature in ("serving_default", "greedy"):
            translate_texts(
                lambda texts, s=signature: predictor.outputs({"text": texts}, s)["translation"],
                sentences[:64],
                what=None,
            )  # warm up
            start = time.perf_counter()
            translate_texts(
                lambda texts, s=signature: predictor.outputs({"text": texts}, s)["translation"],
                sentences,
                what=None,
            )
            rate = len(sentences) / (time.perf_counter() - start)
            print(
                f"\n{export} `{signature}`: {rate:.1f} sentences/s on {len(sentences)} "
                "test2016 sentences, batches of 64"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    corpus = commands.add_parser("multi30k")
    corpus.add_argument("--data", type=Path, required=True)
    corpus.add_argument("--arch", nargs="+", default=["transformer", "lstm"])
    corpus.add_argument("--minutes", type=float, default=90.0)
    corpus.add_argument("--runs", type=Path, default=Path("runs/bench-translation"))
    corpus.add_argument("--quick", action="store_true")
    vocabularies = commands.add_parser("vocabulary")
    vocabularies.add_argument("--data", type=Path, required=True)
    vocabularies.add_argument("--arch", default="lstm")
    vocabularies.add_argument("--epochs", type=int, default=3)
    vocabularies.add_argument("--runs", type=Path, default=Path("runs/bench-translation"))
    timing = commands.add_parser("speed")
    timing.add_argument("--model", type=Path, required=True, help="a training run directory")
    timing.add_argument("--export", type=Path, help="its export (default: the run directory)")
    timing.add_argument("--data", type=Path, help="Multi30k folder, for sentences per second")
    timing.add_argument("--repeats", type=int, default=5)
    timing.add_argument("--batch", type=int, nargs="+", default=[1, 64], help="rows per search")
    args = parser.parse_args()
    {"multi30k": multi30k, "vocabulary": vocabulary, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
