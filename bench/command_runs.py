"""Benchmarks that run the command a user types: ``seqapps train`` in a subprocess, its
validation curve read from the epoch lines, then ``seqapps evaluate --json``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path


def train_for(
    app: str, data: Path, out: Path, arguments: list[str], minutes: float, metric: str
) -> list[tuple[int, float, float]]:
    """Runs ``seqapps train APP --data DATA --out OUT --overwrite ARGUMENTS`` for at most
    ``minutes``; returns ``[(epoch, minutes since start, validation METRIC)]``."""
    epoch_line = re.compile(rf"^epoch (\d+)/\d+: .*val_{metric} ([0-9.]+)")
    command = [sys.executable, "-m", "apps.cli", "train", app, "--data", str(data)]
    command += ["--out", str(out), "--overwrite", *arguments]
    print("$", " ".join(command[2:]), file=sys.stderr, flush=True)
    start = time.perf_counter()
    curve = []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    deadline = start + 60 * minutes
    assert process.stdout is not None
    for line in process.stdout:
        sys.stderr.write(line)
        match = epoch_line.match(line)
        if match:
            elapsed = (time.perf_counter() - start) / 60
            curve.append((int(match.group(1)), elapsed, float(match.group(2))))
        if time.perf_counter() > deadline and process.poll() is None:
            # SIGTERM ends the process at once (a SIGINT was not seen for minutes inside a
            # training step); the best epoch's model is already saved, atomically.
            print(f"stopping after {minutes} minutes", file=sys.stderr, flush=True)
            process.terminate()
            break
    process.wait()
    return curve


def evaluate_run(app: str, run_dir: Path, data: Path, split: str, *extra: str) -> dict:
    """``seqapps evaluate APP --model RUN --data DATA --split SPLIT --json``'s report."""
    command = [sys.executable, "-m", "apps.cli", "evaluate", app, "--model", str(run_dir)]
    command += ["--data", str(data), "--split", split, "--json", *extra]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])
