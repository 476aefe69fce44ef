"""Training-step time of PeepholeLSTM and ConvLSTM2D against their Keras counterparts (issue 4).

    .venv/bin/python bench/bench_recurrent.py           # full run: ~20 min, alone on the machine
    .venv/bin/python bench/bench_recurrent.py --quick   # smoke run: tiny sizes, seconds
    .venv/bin/python bench/bench_recurrent.py --only conv --conv-time 30   # longer sequences
    .venv/bin/python bench/bench_recurrent.py --only conv --conv-masking   # the masked paths

Each model is ``Input -> layer`` trained with Adam on an MSE loss against random targets, with
``model.compile``'s defaults (on a CPU-only machine Keras picks ``jit_compile=False``).

The design answers one question, "is ours slower than Keras?", for differences of about 1 %,
below the few percent by which two identical models can differ. Two identical Keras models
built in one process differ by up to 2 % (memory placement), and so do two processes running
the same script. So each table is measured in ``--processes`` fresh processes, one after the
other. In each process every layer is built ``--instances`` times, every model is warmed up
(tracing and the first steps are not timed), and then each repeat times ``--steps``
consecutive ``train_on_batch`` calls of every model in turn, the order rotating between repeats
so that none always runs first. A process gives each layer the median of all its instances'
repeats, and the ratio of that median to the Keras layer's. The tables give the median time
per step over all processes, the median of the per-process ratios (the verdict), and their
range. The targets of the issue: a peephole LSTM costs at most 15 % more than
``keras.layers.LSTM``; our ConvLSTM2D without peepholes is no slower than
``keras.layers.ConvLSTM2D``.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import apps.quiet_tensorflow  # noqa: F401  (first: TensorFlow loads without its C++ start-up noise)

import keras
import numpy as np
from machine_info import describe_machine

from seqlayers.conv_lstm import ConvLSTM2D
from seqlayers.peephole_lstm import PeepholeLSTM

FULL = {
    "lstm": {"batch": 64, "length": 100, "features": 64, "units": 256},
    "conv": {"batch": 8, "length": 10, "rows": 32, "cols": 32, "channels": 8, "filters": 32},
    "repeats": 9,
    "steps": 5,
    "warmup_steps": 3,
    "instances": 3,
    "processes": 5,
}
QUICK = {
    "lstm": {"batch": 4, "length": 10, "features": 8, "units": 16},
    "conv": {"batch": 2, "length": 3, "rows": 8, "cols": 8, "channels": 4, "filters": 4},
    "repeats": 2,
    "steps": 2,
    "warmup_steps": 1,
    "instances": 2,
    "processes": 2,
}


def training_model(layer, input_shape, masking=False):
    """``Input -> layer`` (``Input -> Masking -> layer`` with ``masking``), Keras' defaults.

    The Masking layer's value never occurs in the random inputs: every step stays valid, and
    the layers take their masked code paths.
    """
    inputs = keras.Input(shape=input_shape)
    sequences = keras.layers.Masking(mask_value=-1e9)(inputs) if masking else inputs
    model = keras.Model(inputs, layer(sequences))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def batch_for(model, batch_size, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *model.input_shape[1:])).astype("float32")
    y = rng.standard_normal((batch_size, *model.output_shape[1:])).astype("float32")
    return keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)


def time_models(builders, batch_size, repeats, steps, warmup_steps, instances):
    """Seconds per training step of each model, measured side by side in this process.

    ``builders`` maps a name to a function returning a fresh compiled model; each is built
    ``instances`` times. Returns, for each name, the times of all repeats of all its instances.
    """
    models = {
        (name, index): build() for index in range(instances) for name, build in builders.items()
    }
    batches = {key: batch_for(model, batch_size, seed=0) for key, model in models.items()}
    for key, model in models.items():
        for _ in range(warmup_steps):
            model.train_on_batch(*batches[key])
    timings = {name: [] for name in builders}
    keys = list(models)
    for repeat in range(repeats):
        shift = repeat % len(keys)
        for key in keys[shift:] + keys[:shift]:
            model = models[key]
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(*batches[key])
            timings[key[0]].append((time.perf_counter() - start) / steps)
    return timings


def lstm_builders(sizes):
    shape = (sizes["length"], sizes["features"])
    units = sizes["units"]
    return {
        f"keras.layers.LSTM({units})": lambda: training_model(keras.layers.LSTM(units), shape),
        f"PeepholeLSTM({units})": lambda: training_model(PeepholeLSTM(units), shape),
    }


def conv_lstm_builders(sizes):
    shape = (sizes["length"], sizes["rows"], sizes["cols"], sizes["channels"])
    filters = sizes["filters"]
    masking = sizes.get("masking", False)
    arguments = f"{filters}, 3, padding='same'"
    return {
        f"keras.layers.ConvLSTM2D({arguments})": lambda: training_model(
            keras.layers.ConvLSTM2D(filters, 3, padding="same"), shape, masking
        ),
        f"ConvLSTM2D({arguments})": lambda: training_model(
            ConvLSTM2D(filters, 3, padding="same"), shape, masking
        ),
        f"ConvLSTM2D({arguments}, use_peepholes=True)": lambda: training_model(
            ConvLSTM2D(filters, 3, padding="same", use_peepholes=True), shape, masking
        ),
    }


TABLES = {"lstm": lstm_builders, "conv": conv_lstm_builders}


def measure_table_here(table, plan, settings):
    """One process's measurement of a table: ``{name: [seconds, ...]}``, Keras first."""
    keras.utils.set_random_seed(0)
    builders = TABLES[table](plan[table])
    return time_models(builders, plan[table]["batch"], **settings)


def measure_table(table, settings, processes, plan_arguments):
    """The measurements of ``processes`` fresh processes, one after the other.

    ``plan_arguments`` are the command-line arguments that choose the sizes (``--quick``,
    ``--conv-time``), passed on to each process.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", table]
    command += [f"--{name}={value}" for name, value in settings.items() if name != "warmup_steps"]
    command += plan_arguments
    measurements = []
    for index in range(processes):
        print(f"  {table}: process {index + 1}/{processes}", file=sys.stderr, flush=True)
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            raise RuntimeError(
                f"benchmark process {index + 1} for {table!r} failed "
                f"(exit {finished.returncode}):\n{finished.stderr[-3000:]}"
            )
        measurements.append(json.loads(finished.stdout.strip().splitlines()[-1]))
    return measurements


def summarize(measurements):
    """Per name: median ms over all processes, median and range of the per-process ratios."""
    names = list(measurements[0])
    reference = names[0]
    summary = {}
    for name in names:
        ratios = [
            statistics.median(times[name]) / statistics.median(times[reference])
            for times in measurements
        ]
        summary[name] = {
            "ms": 1000 * statistics.median(t for times in measurements for t in times[name]),
            "ratio": statistics.median(ratios),
            "ratios": ratios,
        }
    return summary


def markdown_table(title, summary):
    lines = [
        f"**{title}**",
        "",
        "| layer | ms / training step (median) | vs. Keras (median of processes) "
        "| per-process ratios |",
        "|---|---:|---:|---:|",
    ]
    for index, (name, row) in enumerate(summary.items()):
        ratios = row["ratios"]
        spread = "reference" if index == 0 else f"{min(ratios):.3f}–{max(ratios):.3f}x"
        lines.append(f"| {name} | {row['ms']:.1f} | {row['ratio']:.3f}x | {spread} |")
    return "\n".join(lines)


def percent(ratio):
    return f"{100 * (ratio - 1):+.1f} %"


def lstm_report(plan, summary):
    sizes = plan["lstm"]
    _, peephole_row = summary.values()
    title = (
        f"LSTM, batch {sizes['batch']}, length {sizes['length']}, "
        f"{sizes['features']} features, {sizes['units']} units"
    )
    verdict = (
        f"Peepholes cost {percent(peephole_row['ratio'])} against keras.layers.LSTM "
        "(target: at most +15 %)."
    )
    return markdown_table(title, summary) + "\n\n" + verdict


def conv_lstm_report(plan, summary):
    sizes = plan["conv"]
    _, plain_row, peephole_row = summary.values()
    title = (
        f"ConvLSTM2D, batch {sizes['batch']}, time {sizes['length']}, "
        f"{sizes['rows']}x{sizes['cols']}x{sizes['channels']} inputs, {sizes['filters']} filters"
        + (", behind keras.layers.Masking (every step valid)" if sizes.get("masking") else "")
    )
    slower = sum(ratio > 1 for ratio in plain_row["ratios"])
    verdict = (
        f"Without peepholes: {percent(plain_row['ratio'])} against keras.layers.ConvLSTM2D "
        f"(target: no slower), slower in {slower} of {len(plain_row['ratios'])} processes. "
        f"Peepholes cost {percent(peephole_row['ratio'] / plain_row['ratio'])} on top."
    )
    return markdown_table(title, summary) + "\n\n" + verdict


REPORTS = {"lstm": lstm_report, "conv": conv_lstm_report}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", choices=tuple(TABLES), help="run one of the two tables")
    parser.add_argument("--repeats", type=int, help="timed repeats per model")
    parser.add_argument("--steps", type=int, help="training steps per timed repeat")
    parser.add_argument("--instances", type=int, help="fresh models built per layer")
    parser.add_argument("--processes", type=int, help="fresh processes measuring each table")
    parser.add_argument("--conv-time", type=int, help="time steps of the ConvLSTM sequences")
    parser.add_argument(
        "--conv-masking", action="store_true", help="a Masking layer before the ConvLSTMs"
    )
    parser.add_argument("--worker", choices=tuple(TABLES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan_arguments = ["--quick"] if args.quick else []
    if args.conv_time:
        plan = {**plan, "conv": {**plan["conv"], "length": args.conv_time}}
        plan_arguments.append(f"--conv-time={args.conv_time}")
    if args.conv_masking:
        plan = {**plan, "conv": {**plan["conv"], "masking": True}}
        plan_arguments.append("--conv-masking")
    settings = {
        name: getattr(args, name) or plan[name] for name in ("repeats", "steps", "instances")
    }
    settings["warmup_steps"] = plan["warmup_steps"]
    if args.worker:
        print(json.dumps(measure_table_here(args.worker, plan, settings)))
        return
    processes = args.processes or plan["processes"]
    quick_note = " (--quick: smoke-test sizes, not a measurement)" if args.quick else ""
    print(
        f"{describe_machine()}. {processes} processes per table, each building "
        f"{settings['instances']} models per layer, timed in turn: {settings['repeats']} "
        f"repeats of {settings['steps']} training steps after {settings['warmup_steps']} "
        f"warm-up steps; batch and sizes in each title{quick_note}."
    )
    for table in (args.only,) if args.only else tuple(TABLES):
        measurements = measure_table(table, settings, processes, plan_arguments)
        print()
        print(REPORTS[table](plan, summarize(measurements)))


if __name__ == "__main__":
    main()
