"""Training-step time of PeepholeLSTM and ConvLSTM2D against their Keras counterparts (issue 4).

    .venv/bin/python bench/bench_recurrent.py           # full run: minutes, alone on the machine
    .venv/bin/python bench/bench_recurrent.py --quick   # smoke run: tiny sizes, seconds

Each model is ``Input -> layer`` trained with Adam on an MSE loss against random targets, with
``model.compile``'s defaults (on a CPU-only machine Keras picks ``jit_compile=False``). Every
model is built and warmed up first (tracing and the first steps are not timed); then each
repeat times ``--steps`` consecutive ``train_on_batch`` calls of every model in turn, the order
rotating between repeats so that none always runs first. The tables give the median time per
step over the repeats, and the ratio to the Keras layer of the same table. The target of the
issue: a peephole LSTM costs at most 15 % more than ``keras.layers.LSTM``; our ConvLSTM2D
without peepholes is no slower than ``keras.layers.ConvLSTM2D``.
"""

import argparse
import os
import platform
import statistics
import time

import seqlayers._quiet_import  # noqa: F401  (first: TensorFlow loads without its C++ noise)

import keras
import numpy as np

from seqlayers.conv_lstm import ConvLSTM2D
from seqlayers.peephole_lstm import PeepholeLSTM

FULL = {
    "lstm": {"batch": 64, "length": 100, "features": 64, "units": 256},
    "conv": {"batch": 8, "length": 10, "rows": 32, "cols": 32, "channels": 8, "filters": 32},
    "repeats": 15,
    "steps": 5,
    "warmup_steps": 3,
}
QUICK = {
    "lstm": {"batch": 4, "length": 10, "features": 8, "units": 16},
    "conv": {"batch": 2, "length": 3, "rows": 8, "cols": 8, "channels": 4, "filters": 4},
    "repeats": 2,
    "steps": 2,
    "warmup_steps": 1,
}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def training_model(layer, input_shape):
    """``Input -> layer``, compiled with Keras' defaults."""
    inputs = keras.Input(shape=input_shape)
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def batch_for(model, batch_size, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *model.input_shape[1:])).astype("float32")
    y = rng.standard_normal((batch_size, *model.output_shape[1:])).astype("float32")
    return keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)


def time_models(models, batch_size, repeats, steps, warmup_steps):
    """Median seconds per training step of each model, measured side by side."""
    batches = {name: batch_for(model, batch_size, seed=0) for name, model in models.items()}
    for name, model in models.items():
        for _ in range(warmup_steps):
            model.train_on_batch(*batches[name])
    timings = {name: [] for name in models}
    names = list(models)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            model = models[name]
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(*batches[name])
            timings[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(values) for name, values in timings.items()}


def percent(time, reference_time):
    return f"{100 * (time / reference_time - 1):+.1f} %"


def markdown_table(title, medians, reference):
    lines = [
        f"**{title}**",
        "",
        "| layer | ms / training step (median) | vs. Keras |",
        "|---|---:|---:|",
    ]
    for name, seconds in medians.items():
        lines.append(f"| {name} | {1000 * seconds:.1f} | {seconds / medians[reference]:.2f}x |")
    return "\n".join(lines)


def bench_lstm(sizes, settings):
    shape = (sizes["length"], sizes["features"])
    units = sizes["units"]
    models = {
        f"keras.layers.LSTM({units})": training_model(keras.layers.LSTM(units), shape),
        f"PeepholeLSTM({units})": training_model(PeepholeLSTM(units), shape),
    }
    medians = time_models(models, sizes["batch"], **settings)
    keras_time, peephole_time = medians.values()
    title = (
        f"LSTM, batch {sizes['batch']}, length {sizes['length']}, "
        f"{sizes['features']} features, {units} units"
    )
    verdict = (
        f"Peepholes cost {percent(peephole_time, keras_time)} against keras.layers.LSTM "
        "(target: at most +15 %)."
    )
    return markdown_table(title, medians, reference=next(iter(models))) + "\n\n" + verdict


def bench_conv_lstm(sizes, settings):
    shape = (sizes["length"], sizes["rows"], sizes["cols"], sizes["channels"])
    filters = sizes["filters"]
    arguments = f"{filters}, 3, padding='same'"
    models = {
        f"keras.layers.ConvLSTM2D({arguments})": training_model(
            keras.layers.ConvLSTM2D(filters, 3, padding="same"), shape
        ),
        f"ConvLSTM2D({arguments})": training_model(ConvLSTM2D(filters, 3, padding="same"), shape),
        f"ConvLSTM2D({arguments}, use_peepholes=True)": training_model(
            ConvLSTM2D(filters, 3, padding="same", use_peepholes=True), shape
        ),
    }
    medians = time_models(models, sizes["batch"], **settings)
    keras_time, plain_time, peephole_time = medians.values()
    title = (
        f"ConvLSTM2D, batch {sizes['batch']}, time {sizes['length']}, "
        f"{sizes['rows']}x{sizes['cols']}x{sizes['channels']} inputs, {filters} filters"
    )
    verdict = (
        f"Without peepholes: {percent(plain_time, keras_time)} against keras.layers.ConvLSTM2D "
        f"(target: no slower). Peepholes cost {percent(peephole_time, plain_time)} on top."
    )
    return markdown_table(title, medians, reference=next(iter(models))) + "\n\n" + verdict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", choices=("lstm", "conv"), help="run one of the two tables")
    parser.add_argument("--repeats", type=int, help="timed repeats per model")
    parser.add_argument("--steps", type=int, help="training steps per timed repeat")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    settings = {
        "repeats": args.repeats or plan["repeats"],
        "steps": args.steps or plan["steps"],
        "warmup_steps": plan["warmup_steps"],
    }
    keras.utils.set_random_seed(0)
    quick_note = " (--quick: smoke-test sizes, not a measurement)" if args.quick else ""
    print(
        f"Keras {keras.__version__} ({keras.backend.backend()}), {cpu_name()}, "
        f"{os.cpu_count()} cores. Median of {settings['repeats']} repeats of "
        f"{settings['steps']} training steps, after {settings['warmup_steps']} warm-up steps; "
        f"batch and sizes in each title{quick_note}."
    )
    print()
    if args.only in (None, "lstm"):
        print(bench_lstm(plan["lstm"], settings))
        print()
    if args.only in (None, "conv"):
        print(bench_conv_lstm(plan["conv"], settings))


if __name__ == "__main__":
    main()
