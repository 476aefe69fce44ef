"""The benchmark scripts still run: their --quick smoke runs, end to end (slow: about 2 minutes).

Only what needs nothing outside the project: bench_tcn's throughput run needs keras-tcn
(``make bench-tcn`` installs it) and bench_sentiment needs SST-2, so neither is here.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run_bench(script, *args):
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_bench_recurrent_quick_runs_both_tables_in_fresh_processes():
    output = run_bench(
        "bench_recurrent.py", "--quick", "--processes", "2", "--conv-time", "4", "--conv-masking"
    )
    assert "**LSTM, batch 4, length 10" in output
    assert "**ConvLSTM2D, batch 2, time 4," in output
    assert "behind keras.layers.Masking" in output
    assert output.count("| reference |") == 2
    assert "Peepholes cost" in output
    assert "slower in" in output and "of 2 processes" in output


def test_bench_attention_quick_runs():
    output = run_bench("bench_attention.py", "--quick")
    assert "### MultiHeadAttention" in output
    assert "| padded keys (value_mask) | training step (XLA) |" in output
    assert "### Greedy decoding" in output


def test_bench_tcn_adding_quick_runs():
    output = run_bench("bench_tcn.py", "adding", "--quick")
    assert "### Adding problem" in output
    for model in ("tcn", "lstm", "predict 1"):
        assert f"| 50 | {model} |" in output
