"""TCN benchmarks: throughput against keras-tcn 3.5.7, and the adding problem against an LSTM.

    make bench-tcn                  # both, full size (about 45 minutes on 2 CPU cores)
    .venv/bin/python bench/bench_tcn.py throughput [--quick]
    .venv/bin/python bench/bench_tcn.py adding [--minutes 5] [--lengths 200 600] [--quick]

throughput: training-step and inference time of ``seqlayers.TCN`` and keras-tcn's ``TCN`` at the
same configuration (64 filters, kernel 3, dilations 1..32, batch 32, length 512, 8 channels),
built side by side in one process and timed in alternation, median of several repeats after a
warm-up. keras-tcn is not a project dependency: ``make bench-tcn`` installs it (without its
dependencies, whose metadata names tensorflow-macos) into ``bench/.keras-tcn``, which this
script puts on ``sys.path``.

adding: the adding problem of Bai, Kolter & Koltun (2018): two input channels (random values in
[0, 1], and a marker channel with one 1 in each half of the sequence), target the sum of the two
marked values, loss MSE. A TCN and a ``keras.layers.LSTM`` of about 70K parameters each train
for the same wall-clock budget on fresh batches from a seeded 50,000-sequence training set; the
test MSE on 1,000 held-out sequences is reported. Predicting 1 always scores about 0.167.

Output: Markdown tables on stdout, to be pasted into bench/RESULTS.md with the date and machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import apps.quiet_tensorflow  # noqa: F401  (first: TensorFlow loads without its C++ start-up noise)

import keras
import numpy as np
from machine_info import describe_machine

from seqlayers.tcn import TCN

KERAS_TCN_DIR = Path(__file__).resolve().parent / ".keras-tcn"


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# === throughput ===


def build_keras_tcn_model(length, channels, **tcn_arguments):
    sys.path.insert(0, str(KERAS_TCN_DIR))
    try:
        from tcn import TCN as KerasTCN
    except ImportError as error:
        raise SystemExit(
            f"keras-tcn is not installed in {KERAS_TCN_DIR}: run `make bench-tcn` "
            f"(or pip install --no-deps --target {KERAS_TCN_DIR} keras-tcn==3.5.7). {error}"
        ) from error
    inputs = keras.Input((length, channels))
    outputs = KerasTCN(
        nb_filters=tcn_arguments["filters"],
        kernel_size=tcn_arguments["kernel_size"],
        dilations=tcn_arguments["dilations"],
        use_skip_connections=tcn_arguments["use_skip_connections"],
        return_sequences=tcn_arguments["return_sequences"],
    )(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(outputs))


def build_seqlayers_model(length, channels, **tcn_arguments):
    inputs = keras.Input((length, channels))
    outputs = TCN(**tcn_arguments)(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(outputs))


def run_throughput(args) -> None:
    batch, length, channels = (8, 64, 8) if args.quick else (32, 512, 8)
    repeats = 3 if args.quick else 15
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, length, channels)).astype("float32")
    print(f"\n### TCN throughput vs keras-tcn 3.5.7 ({describe_machine()})\n")
    print(
        f"64 filters, kernel 3, dilations 1..32, batch {batch}, length {length}, "
        f"{channels} channels, Dense(1) head, Adam, MSE; median of {repeats} after warm-up.\n"
    )
    print("| configuration | implementation | params | train step (ms) | inference (ms) |")
    print("|---|---|---|---|---|")
    for return_sequences, use_skip in ((False, True), (True, False)):
        arguments = {
            "filters": 64,
            "kernel_size": 3,
            "dilations": (1, 2, 4, 8, 16, 32),
            "use_skip_connections": use_skip,
            "return_sequences": return_sequences,
        }
        target_shape = (batch, length, 1) if return_sequences else (batch, 1)
        y = rng.standard_normal(target_shape).astype("float32")
        models = {
            "seqlayers.TCN": build_seqlayers_model(length, channels, **arguments),
            "keras-tcn 3.5.7": build_keras_tcn_model(length, channels, **arguments),
        }
        for model in models.values():
            model.compile(keras.optimizers.Adam(1e-3), "mse")
            for _ in range(3):  # warm-up: tracing and first-call allocation
                model.train_on_batch(x, y)
                model.predict_on_batch(x)
        train = {name: [] for name in models}
        infer = {name: [] for name in models}
        for _ in range(repeats):  # alternate, so machine load affects both alike
            for name, model in models.items():
                train[name].append(median_seconds(lambda m=model, y=y: m.train_on_batch(x, y), 1))
                infer[name].append(median_seconds(lambda m=model: m.predict_on_batch(x), 1))
        configuration = f"return_sequences={return_sequences}, skip={use_skip}"
        for name, model in models.items():
            print(
                f"| {configuration} | {name} | {model.count_params():,} | "
                f"{1000 * statistics.median(train[name]):.1f} | "
                f"{1000 * statistics.median(infer[name]):.1f} |"
            )
        ours, theirs = models
        train_ratio = statistics.median(train[theirs]) / statistics.median(train[ours])
        infer_ratio = statistics.median(infer[theirs]) / statistics.median(infer[ours])
        print(f"| {configuration} | speed-up of ours | | {train_ratio:.2f}x | {infer_ratio:.2f}x |")


# === adding problem ===


def adding_problem(count: int, length: int, rng: np.random.Generator):
    """Bai et al.'s adding problem: sum the two values marked in the second channel."""
    values = rng.uniform(0.0, 1.0, (count, length)).astype("float32")
    markers = np.zeros((count, length), "float32")
    rows = np.arange(count)
    first = rng.integers(0, length // 2, count)
    second = rng.integers(length // 2, length, count)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = (values[rows, first] + values[rows, second])[:, None]
    return np.stack([values, markers], axis=-1), targets


def tcn_for_adding(length: int) -> keras.Model:
    # 8 blocks of 24 filters, kernel 8: about 70K parameters; receptive field 1 + 2*7*255 = 3571.
    inputs = keras.Input((length, 2))
    features = TCN(24, kernel_size=8, dilations=[2**i for i in range(8)], return_sequences=False)(
        inputs
    )
    return keras.Model(inputs, keras.layers.Dense(1)(features), name="tcn")


def lstm_for_adding(length: int) -> keras.Model:
    inputs = keras.Input((length, 2))
    features = keras.layers.LSTM(130)(inputs)  # 4 * (130 * (2 + 130) + 130) = 69,160 parameters
    return keras.Model(inputs, keras.layers.Dense(1)(features), name="lstm")


def train_for_budget(model, data, test, seconds: float, batch_size: int, seed: int):
    x_train, y_train = data
    x_test, y_test = test
    model.compile(keras.optimizers.Adam(2e-3, clipnorm=1.0), "mse")
    rng = np.random.default_rng(seed)
    evaluate_every = max(seconds / 12, 1.0)
    start = time.perf_counter()
    next_evaluation = start + evaluate_every
    steps = 0
    curve = []
    while time.perf_counter() - start < seconds:
        rows = rng.integers(0, len(x_train), batch_size)
        model.train_on_batch(x_train[rows], y_train[rows])
        steps += 1
        if time.perf_counter() >= next_evaluation:
            mse = float(model.evaluate(x_test, y_test, batch_size=250, verbose=0))
            curve.append((time.perf_counter() - start, mse))
            next_evaluation += evaluate_every
    elapsed = time.perf_counter() - start
    final = float(model.evaluate(x_test, y_test, batch_size=250, verbose=0))
    curve.append((elapsed, final))
    return final, min(m for _, m in curve), steps, elapsed, curve


def run_adding(args) -> None:
    seconds = 20.0 if args.quick else 60.0 * args.minutes
    train_count = 2_000 if args.quick else 50_000
    lengths = [50] if args.quick else args.lengths
    print(f"\n### Adding problem ({describe_machine()})\n")
    print(
        f"Budget {seconds / 60:.1f} min of training per model and length, batch 32, Adam 2e-3 "
        f"(clipnorm 1), {train_count:,} training and 1,000 test sequences; "
        "always predicting 1 scores about 0.167.\n"
    )
    print("| T | model | params | steps | test MSE (final) | test MSE (best) | minutes |")
    print("|---|---|---|---|---|---|---|")
    curves = []
    for length in lengths:
        rng = np.random.default_rng(length)
        data = adding_problem(train_count, length, rng)
        test = adding_problem(1_000, length, rng)
        baseline = float(np.mean((test[1] - 1.0) ** 2))
        for build in (tcn_for_adding, lstm_for_adding):
            keras.utils.set_random_seed(length)
            model = build(length)
            final, best, steps, elapsed, curve = train_for_budget(
                model, data, test, seconds, batch_size=32, seed=length
            )
            print(
                f"| {length} | {model.name} | {model.count_params():,} | {steps:,} | "
                f"{final:.2e} | {best:.2e} | {elapsed / 60:.1f} |",
                flush=True,
            )
            curves.append((length, model.name, curve))
        print(f"| {length} | predict 1 | 0 | | {baseline:.3f} | | |", flush=True)
    print("\nTest MSE during training (minutes: MSE):\n")
    for length, name, curve in curves:
        points = ", ".join(f"{t / 60:.1f}: {m:.2e}" for t, m in curve)
        print(f"- T={length} {name}: {points}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="benchmark", required=True)
    throughput = subparsers.add_parser("throughput", help="seqlayers.TCN vs keras-tcn 3.5.7")
    throughput.add_argument("--quick", action="store_true", help="tiny smoke run")
    adding = subparsers.add_parser("adding", help="adding problem, TCN vs LSTM")
    adding.add_argument("--minutes", type=float, default=5.0, help="budget per model and T")
    adding.add_argument("--lengths", type=int, nargs="+", default=[200, 600])
    adding.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    {"throughput": run_throughput, "adding": run_adding}[args.benchmark](args)


if __name__ == "__main__":
    main()
