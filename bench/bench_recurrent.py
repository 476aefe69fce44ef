"""Training-step time of PeepholeLSTM and ConvLSTM2D against their Keras counterparts (issue 4).

    .venv/bin/python bench/bench_recurrent.py           # full run: minutes, alone on the machine
    .venv/bin/python bench/bench_recurrent.py --quick   # smoke run: tiny sizes, seconds

Each model is ``Input -> layer`` trained with Adam on an MSE loss against random targets, with
``model.compile``'s defaults (on a CPU-only machine Keras picks ``jit_compile=False``). Every
model is built ``--instances`` times (two identical Keras models built in one process differ by
a few percent, so one instance per layer can decide a close race by accident) and warmed up
first (tracing and the first steps are not timed); then each repeat times ``--steps``
consecutive ``train_on_batch`` calls of every model in turn, the order rotating between repeats
so that none always runs first. The tables give the median time per step over the repeats of
all instances of a layer, the ratio to the Keras layer of the same table, and the range of the
instances' own medians. The target of the
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
    "repeats": 9,
    "steps": 5,
    "warmup_steps": 3,
    "instances": 3,
}
QUICK = {
    "lstm": {"batch": 4, "length": 10, "features": 8, "units": 16},
    "conv": {"batch": 2, "length": 3, "rows": 8, "cols": 8, "channels": 4, "filters": 4},
    "repeats": 2,
    "steps": 2,
    "warmup_steps": 1,
    "instances": 2,
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


def time_models(builders, batch_size, repeats, steps, warmup_steps, instances):
    """Median seconds per training step of each model, measured side by side.

    ``builders`` maps a name to a function returning a fresh compiled model. Each is built
    ``instances`` times: two identical models built in one process differ by a few percent
    (memory placement), so the timings of all instances of a name are pooled. Returns the
    pooled medians, and the median of each instance (to show that spread).
    """
    models = {
        (name, index): build() for index in range(instances) for name, build in builders.items()
    }
    batches = {key: batch_for(model, batch_size, seed=0) for key, model in models.items()}
    for key, model in models.items():
        for _ in range(warmup_steps):
            model.train_on_batch(*batches[key])
    timings = {key: [] for key in models}
    keys = list(models)
    for repeat in range(repeats):
        shift = repeat % len(keys)
        for key in keys[shift:] + keys[:shift]:
            model = models[key]
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(*batches[key])
            timings[key].append((time.perf_counter() - start) / steps)
    pooled = {
        name: statistics.median(
            value for (other, _), values in timings.items() if other == name for value in values
        )
        for name in builders
    }
    per_instance = {key: statistics.median(values) for key, values in timings.items()}
    return pooled, per_instance


def instance_spread(per_instance, name):
    """``a–b ms`` over the instances of ``name``."""
    values = [seconds for (other, _), seconds in per_instance.items() if other == name]
    return f"{1000 * min(values):.1f}–{1000 * max(values):.1f} ms"


def percent(time, reference_time):
    return f"{100 * (time / reference_time - 1):+.1f} %"


def markdown_table(title, medians, per_instance, reference):
    lines = [
        f"**{title}**",
        "",
        "| layer | ms / training step (median) | vs. Keras | instances' medians |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in medians.items():
        lines.append(
            f"| {name} | {1000 * seconds:.1f} | {seconds / medians[reference]:.3f}x "
            f"| {instance_spread(per_instance, name)} |"
        )
    return "\n".join(lines)


def bench_lstm(sizes, settings):
    shape = (sizes["length"], sizes["features"])
    units = sizes["units"]
    models = {
        f"keras.layers.LSTM({units})": lambda: training_model(keras.layers.LSTM(units), shape),
        f"PeepholeLSTM({units})": lambda: training_model(PeepholeLSTM(units), shape),
    }
    medians, per_instance = time_models(models, sizes["batch"], **settings)
    keras_time, peephole_time = medians.values()
    title = (
        f"LSTM, batch {sizes['batch']}, length {sizes['length']}, "
        f"{sizes['features']} features, {units} units"
    )
    verdict = (
        f"Peepholes cost {percent(peephole_time, keras_time)} against keras.layers.LSTM "
        "(target: at most +15 %)."
    )
    table = markdown_table(title, medians, per_instance, reference=next(iter(models)))
    return table + "\n\n" + verdict


def bench_conv_lstm(sizes, settings):
    shape = (sizes["length"], sizes["rows"], sizes["cols"], sizes["channels"])
    filters = sizes["filters"]
    arguments = f"{filters}, 3, padding='same'"
    models = {
        f"keras.layers.ConvLSTM2D({arguments})": lambda: training_model(
            keras.layers.ConvLSTM2D(filters, 3, padding="same"), shape
        ),
        f"ConvLSTM2D({arguments})": lambda: training_model(
            ConvLSTM2D(filters, 3, padding="same"), shape
        ),
        f"ConvLSTM2D({arguments}, use_peepholes=True)": lambda: training_model(
            ConvLSTM2D(filters, 3, padding="same", use_peepholes=True), shape
        ),
    }
    medians, per_instance = time_models(models, sizes["batch"], **settings)
    keras_time, plain_time, peephole_time = medians.values()
    title = (
        f"ConvLSTM2D, batch {sizes['batch']}, time {sizes['length']}, "
        f"{sizes['rows']}x{sizes['cols']}x{sizes['channels']} inputs, {filters} filters"
    )
    verdict = (
        f"Without peepholes: {percent(plain_time, keras_time)} against keras.layers.ConvLSTM2D "
        f"(target: no slower). Peepholes cost {percent(peephole_time, plain_time)} on top."
    )
    table = markdown_table(title, medians, per_instance, reference=next(iter(models)))
    return table + "\n\n" + verdict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", choices=("lstm", "conv"), help="run one of the two tables")
    parser.add_argument("--repeats", type=int, help="timed repeats per model")
    parser.add_argument("--steps", type=int, help="training steps per timed repeat")
    parser.add_argument("--instances", type=int, help="fresh models built per layer")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    settings = {
        "repeats": args.repeats or plan["repeats"],
        "steps": args.steps or plan["steps"],
        "warmup_steps": plan["warmup_steps"],
        "instances": args.instances or plan["instances"],
    }
    keras.utils.set_random_seed(0)
    quick_note = " (--quick: smoke-test sizes, not a measurement)" if args.quick else ""
    print(
        f"Keras {keras.__version__} ({keras.backend.backend()}), {cpu_name()}, "
        f"{os.cpu_count()} cores. {settings['instances']} fresh models per layer, timed in "
        f"turn; median of their {settings['repeats']} repeats each of {settings['steps']} "
        f"training steps, after {settings['warmup_steps']} warm-up steps; batch and sizes in "
        f"each title{quick_note}."
    )
    print()
    if args.only in (None, "lstm"):
        print(bench_lstm(plan["lstm"], settings))
        print()
    if args.only in (None, "conv"):
        print(bench_conv_lstm(plan["conv"], settings))


if __name__ == "__main__":
    main()
