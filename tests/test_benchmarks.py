"""The benchmark scripts still run: their --quick smoke runs, end to end (slow: about 2 minutes).

Only what needs nothing outside the project: bench_tcn's throughput run needs keras-tcn
(``make bench-tcn`` installs it), so it is not here; bench_sentiment runs on a small folder in
SST-2's format written from the built-in reviews.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run_bench(script, *args):
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *map(str, args)],
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


def test_bench_sentiment_quick_runs_on_an_sst2_folder(tmp_path):
    from apps.sentiment.builtin_data import builtin_sentiment_data

    data = builtin_sentiment_data(seed=0)
    for split, suffix, size in (("train", "train", 300), ("validation", "dev", 100),
                                ("test", "test", 100)):  # fmt: skip
        examples = data.splits[split]
        pairs = zip(examples.texts[:size], examples.labels, strict=False)
        lines = [f"{int(label == 'positive')} {text}" for text, label in pairs]
        (tmp_path / f"stsa.binary.{suffix}").write_text("\n".join(lines) + "\n")
    output = run_bench("bench_sentiment.py", "--data", tmp_path, "--arch", "tcn", "--quick")
    assert "### Sentiment, SST-2 sentence level" in output
    assert "| tcn | 2 |" in output


def test_bench_captioning_quick_runs_on_a_flickr8k_folder(tmp_path):
    from apps.captioning.builtin_data import builtin_caption_data

    images = tmp_path / "images"
    images.mkdir()
    lines = []
    for image in builtin_caption_data(seed=0, train=60, validation=0, test=0).split("train"):
        (images / image.name).write_bytes(image.encoded)
        lines += [f"{image.name}#{n}\t{caption}" for n, caption in enumerate(image.captions)]
    (tmp_path / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    output = run_bench(
        "bench_captioning.py",
        "flickr8k",
        "--data",
        tmp_path,
        "--runs",
        tmp_path / "runs",
        "--quick",
    )
    assert "### Captioning: Flickr8k subset, held-back images" in output
    assert "| lstm, beam 3 |" in output and "| lstm, greedy |" in output
    assert "| most frequent caption (" in output
    assert "| nearest image (encoder features), its consensus caption |" in output
