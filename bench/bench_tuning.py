"""``seqapps tune``: memory over a long search, a real search, and each app's small search.

    .venv/bin/python bench/bench_tuning.py memory [--trials 20]     # resident memory per trial
    .venv/bin/python bench/bench_tuning.py sst2 --data ../shared/data/sst2 [--trials 20]
    .venv/bin/python bench/bench_tuning.py builtin                  # every app, built-in data

Each runs the command a user types (``seqapps tune ...``) in a subprocess and reads its lines;
``memory`` samples the process's resident set size (``VmRSS``) as each trial ends. ``sst2``
then trains the best trial's configuration and the app's default configuration as single
models with three seeds each (``seqapps train --ensemble 1``) and scores them on SST-2's test
split: the search selects on the dev split, the test split says whether that carried over.
Results are printed as Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from command_runs import evaluate_run
from machine_info import describe_machine

SEQAPPS = [sys.executable, "-m", "apps.cli"]


def resident_megabytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def run_search(arguments: list[str], on_trial_end=None) -> tuple[list[str], float]:
    """Runs ``seqapps tune ARGUMENTS``; calls ``on_trial_end(pid, line)`` at each trial's end
    line; returns the output lines and the minutes it took."""
    command = [*SEQAPPS, "tune", *arguments]
    print("$ seqapps tune", " ".join(arguments), file=sys.stderr, flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        sys.stderr.write(line)
        lines.append(line.rstrip("\n"))
        words = line.split()
        if on_trial_end and len(words) > 1 and words[0] == "trial" and words[1].endswith(":"):
            on_trial_end(process.pid, line)
    if process.wait() != 0:
        raise SystemExit(f"seqapps tune failed ({process.returncode})")
    return lines, (time.perf_counter() - started) / 60


def results_table(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith("rank  trial"))
    return lines[start:]


def memory(args) -> None:
    samples: list[float] = []

    def sample(pid, line):
        samples.append(resident_megabytes(pid))

    with tempfile.TemporaryDirectory() as scratch:
        arguments = ["sentiment", "--max-trials", str(args.trials), "--epochs", str(args.epochs)]
        arguments += ["--tuner", "random", "--directory", f"{scratch}/search"]
        _, minutes = run_search(arguments, sample)
    print(f"\n### Resident memory over a {args.trials}-trial search ({describe_machine()})\n")
    print(f"Command: `seqapps tune {' '.join(arguments[:-2])}` (built-in data, all three")
    print(f"architectures at random), {minutes:.1f} minutes; `VmRSS` of the process as each")
    print("trial ends.\n")
    print_samples(samples)
    repeated_configuration(args)


def repeated_configuration(args) -> None:
    """The app's default LSTM in every trial (a counter makes the trials distinct), in this
    process: resident memory without the changes of model size between trials."""
    import apps.quiet_tensorflow  # noqa: F401

    from apps.sentiment import APP
    from tuning import search
    from tuning.sentiment import SentimentHyperModel

    class SameModel(SentimentHyperModel):
        def architecture_space(self, space, architecture):
            space.hp.Int("repeat", 0, 10_000)

    samples = []
    trial_end = search.SearchTuner.on_trial_end

    def sampled(tuner, trial):
        trial_end(tuner, trial)
        samples.append(resident_megabytes(os.getpid()))

    search.SearchTuner.on_trial_end = sampled
    with tempfile.TemporaryDirectory() as scratch:
        settings = search.SearchSettings(
            directory=Path(scratch) / "search",
            tuner="random",
            max_trials=args.trials,
            epochs=args.epochs,
            architectures=("lstm",),
        )
        search.search(APP.load_task(), settings, SameModel)
    print(f"\nThe same configuration (the default LSTM) in each of {args.trials} trials, in one")
    print(f"process, {args.epochs} epochs each; `VmRSS` as each trial ends:\n")
    print_samples(samples)


def print_samples(samples: list[float]) -> None:
    print("| trial | " + " | ".join(str(i + 1) for i in range(len(samples))) + " |")
    print("|---|" + "---|" * len(samples))
    print("| MB | " + " | ".join(f"{mb:.0f}" for mb in samples) + " |")
    half = len(samples) // 2
    first, second = samples[:half], samples[half:]
    print(
        f"\nMean of trials 1-{half}: {statistics.mean(first):.0f} MB; of trials "
        f"{half + 1}-{len(samples)}: {statistics.mean(second):.0f} MB; largest "
        f"{max(samples):.0f} MB (trial {samples.index(max(samples)) + 1})."
    )


def train_and_test(data: Path, out: Path, extra: list[str], seed: int) -> float:
    command = [*SEQAPPS, "train", "sentiment", "--data", str(data), "--out", str(out)]
    command += ["--ensemble", "1", "--seed", str(seed), "--overwrite", *extra]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return evaluate_run("sentiment", out, data, "test")["accuracy"]


def sst2(args) -> None:
    directory = args.directory
    arguments = ["sentiment", "--data", str(args.data), "--max-trials", str(args.trials)]
    arguments += ["--directory", str(directory)]
    lines, minutes = run_search(arguments)
    best = json.loads((directory / "best_trial.json").read_text())
    scores = {"best trial": [], "default": []}
    with tempfile.TemporaryDirectory() as scratch:
        best_extra = ["--hyperparameters", str(directory / "best_hyperparameters.json")]
        best_extra += ["--batch-size", str(best["batch_size"])]
        for seed in range(3):
            scores["best trial"].append(
                train_and_test(args.data, Path(scratch) / f"best{seed}", best_extra, seed)
            )
            scores["default"].append(
                train_and_test(args.data, Path(scratch) / f"default{seed}", [], seed)
            )
    print(f"\n### A search on SST-2 ({describe_machine()})\n")
    print(f"Command: `seqapps tune {' '.join(arguments)}` (the default Bayesian search),")
    print(f"{minutes:.1f} minutes. Trials, best first (dev accuracy; epochs: best/trained):\n")
    print("```")
    print("\n".join(results_table(lines)))
    print("```\n")
    print("Test accuracy of single models (`seqapps train sentiment --ensemble 1 --seed S`,")
    print("seeds 0-2), the best trial's configuration against the app's default:\n")
    print("| configuration | seed 0 | seed 1 | seed 2 | mean |")
    print("|---|---|---|---|---|")
    for name, values in scores.items():
        cells = " | ".join(f"{100 * v:.1f}" for v in values)
        print(f"| {name} | {cells} | {100 * statistics.mean(values):.1f} |")


def builtin(args) -> None:
    budgets = {
        "sentiment": ["--max-trials", "4"],
        "tagging": ["--max-trials", "4", "--epochs", "5"],
        "translation": ["--max-trials", "3", "--epochs", "4"],
        "captioning": ["--max-trials", "3", "--epochs", "4"],
    }
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for app in args.apps:
            arguments = [app, *budgets[app], "--directory", f"{scratch}/{app}"]
            lines, minutes = run_search(arguments)
            table = results_table(lines)
            completed = [line for line in table[1:] if "failed" not in line.split()[2]]
            rows.append((app, " ".join(arguments[:-2]), minutes, table[0].split()[2],
                         completed[0].split()[2], completed[-1].split()[2]))  # fmt: skip
    print(f"\n### Small searches on the built-in data ({describe_machine()})\n")
    print("| command | minutes | objective | best trial | worst trial |")
    print("|---|---|---|---|---|")
    for _app, command, minutes, objective, best, worst in rows:
        print(f"| `seqapps tune {command}` | {minutes:.1f} | {objective} | {best} | {worst} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    memory_parser = commands.add_parser("memory")
    memory_parser.add_argument("--trials", type=int, default=20)
    memory_parser.add_argument("--epochs", type=int, default=2)
    sst2_parser = commands.add_parser("sst2")
    sst2_parser.add_argument("--data", type=Path, required=True)
    sst2_parser.add_argument("--trials", type=int, default=20)
    sst2_parser.add_argument("--directory", type=Path, default=Path("runs/bench-tune-sst2"))
    builtin_parser = commands.add_parser("builtin")
    builtin_parser.add_argument(
        "--apps", nargs="+", default=["sentiment", "tagging", "translation", "captioning"]
    )
    args = parser.parse_args()
    {"memory": memory, "sst2": sst2, "builtin": builtin}[args.command](args)


if __name__ == "__main__":
    main()
