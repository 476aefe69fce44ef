"""The framework of apps/common, proven on a minimal second task (``majority_task.py``).

The task is written with nothing but ``apps/common``; here it goes through ``seqapps train``
(killed with SIGKILL mid-training, then resumed by the same command), ``evaluate --json``,
``predict``, ``export`` (checked in a fresh process) and the shared flags' error handling.
"""

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from apps import cli
from apps.common import drivers, export, training
from apps.common.errors import SeqappsError
from tests.apps.majority_task import APP

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["train", "majority", "--epochs", "8", "--patience", "8", "--batch-size", "16"]
TRAIN += ["--set", "embedding_dim=6"]


def seqapps(*args) -> int:
    return cli.main([str(a) for a in args], apps=[APP])


def logged_epochs(run_dir: Path) -> list[str]:
    path = run_dir / training.LOG_FILE
    if not path.exists():
        return []
    return [line.split(",")[0] for line in path.read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """A run killed with SIGKILL after two epochs, then resumed by the same command."""
    run_dir = tmp_path_factory.mktemp("majority") / "run"
    command = [sys.executable, "-m", "tests.apps.majority_task", *TRAIN, "--out", str(run_dir)]
    environment = {**os.environ, "SEQAPPS_PROGRESS_SECONDS": "0.05"}
    killed = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 300
    while len(logged_epochs(run_dir)) < 2 and killed.poll() is None:
        assert time.monotonic() < deadline, "training never finished an epoch"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    first_output = killed.communicate(timeout=60)[0].decode()
    assert killed.returncode == -signal.SIGKILL, first_output  # killed, not finished
    assert (run_dir / "backup").exists() and not (run_dir / "metrics.json").exists()
    resumed = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return run_dir, first_output, resumed.stdout


def test_a_killed_run_resumes_where_it_was(resumed_run):
    run_dir, first_output, output = resumed_run
    assert "training bag in" in first_output
    assert "resuming bag in" in output
    assert "epoch 1/8:" not in output and "epoch 8/8:" in output
    assert logged_epochs(run_dir) == [str(epoch) for epoch in range(8)]  # each exactly once
    assert not (run_dir / "backup").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "validation" and metrics["examples"] == 200
    assert metrics["accuracy"] > 0.9, metrics  # chance is about 0.5


def test_progress_lines_show_rate_and_time_left_within_an_epoch(resumed_run):
    _, first_output, _ = resumed_run
    lines = first_output.splitlines()
    assert not [line for line in lines if "absl" in line or line.startswith(("I0", "W0"))]
    training_lines = [line for line in lines if "batches (" in line]
    assert training_lines and all(" batches/s, " in line for line in training_lines)
    assert all(line.startswith("epoch ") and " left; " in line for line in training_lines)
    assert any(line.startswith("epoch 1/8: ") and "/~50 batches" in line for line in lines)


def test_hyperparameters_from_set_reach_the_model_and_the_config(resumed_run):
    run_dir, _, _ = resumed_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["hyperparameters"] == {
        "architecture": "bag", "embedding_dim": 6, "learning_rate": 0.02, "mode": "ok"
    }  # fmt: skip
    model = keras.models.load_model(run_dir / "model.keras")
    assert model.layers[1].embeddings.shape[1] == 6


def test_evaluate_json_and_predict(resumed_run, capsys, monkeypatch):
    run_dir, _, _ = resumed_run
    assert seqapps("evaluate", "majority", "--model", run_dir, "--json") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "split     test"
    report = json.loads(lines[-1])
    assert report["split"] == "test" and report["examples"] == 500 and report["accuracy"] > 0.9
    assert seqapps("predict", "majority", "--model", run_dir, "a a b", "b b a b") == 0
    assert capsys.readouterr().out.splitlines() == ["a\ta a b", "b\tb b a b"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("b\na a\n"))
    assert seqapps("predict", "majority", "--model", run_dir, "--json") == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(a["input"], a["label"]) for a in answers] == [("b", "b"), ("a a", "a")]
    assert np.allclose([sum(a["p"]) for a in answers], 1.0, atol=1e-5)


def test_export_is_checked_in_a_fresh_process_and_answers_like_the_run(
    resumed_run, tmp_path, monkeypatch
):
    run_dir, _, _ = resumed_run
    monkeypatch.chdir(tmp_path)  # a relative --base, as users type it
    assert seqapps("export", "majority", "--model", run_dir, "--base", "exports") == 0
    version = tmp_path / "exports" / "majority" / "1"
    config = json.loads((version / "assets.extra" / "seqapps.json").read_text())
    assert config["app"] == "majority" and config["architecture"] == "bag"
    assert config["signatures"] == [
        "serving_default(text: string[None]) -> {label: string[None], p: float32[None, 2]}"
    ]
    texts = ["a b b", "b", "", "a \xff b b", "a " * 500_000]
    requests = [("serving_default", {"text": texts})]
    (fresh,) = export.check_in_fresh_process(version, requests).answers
    predictor = drivers.load_predictor(APP.load_task(), run_dir)
    export.assert_same_answers([predictor.outputs({"text": texts})], [fresh], requests)
    assert [label.decode() for label in fresh["label"][:2]] == ["b", "b"]


def test_an_export_that_answers_differently_is_not_published(resumed_run, tmp_path, monkeypatch):
    run_dir, _, _ = resumed_run

    def skewed(export_dir, requests):
        answer = {"label": np.array([b"b"] * 3), "p": np.zeros((3, 2), "float32")}
        return export.FreshProcessCheck(serving_ops={}, answers=[answer])

    monkeypatch.setattr(export, "check_in_fresh_process", skewed)
    with pytest.raises(SeqappsError, match="answers the warm-up request .* differently"):
        drivers.export(APP.load_task(), run_dir, tmp_path)
    assert list((tmp_path / "majority").iterdir()) == []


def test_an_export_that_needs_project_code_is_refused(resumed_run, tmp_path, monkeypatch):
    run_dir, _, _ = resumed_run
    script = export.FRESH_PROCESS_SCRIPT.replace(
        "import tensorflow as tf", "import apps, tensorflow as tf"
    )
    monkeypatch.setattr(export, "FRESH_PROCESS_SCRIPT", script)
    with pytest.raises(SeqappsError, match=r"imported this project's modules \['apps'\]"):
        drivers.export(APP.load_task(), run_dir, tmp_path)
    assert list((tmp_path / "majority").iterdir()) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--set", "hidden=3"], "--set: unknown hyperparameter 'hidden' for architecture 'bag'"),
        (["--set", "embedding_dim=0.5"], "'embedding_dim' must be int like its default 8, got 0.5"),
        (["--set", "architecture=deep"], "unknown architecture 'deep' (choose from bag)"),
    ],
)
def test_bad_hyperparameters_are_refused_before_anything_is_written(
    tmp_path, capsys, flags, message
):
    assert seqapps(*TRAIN[:2], "--out", tmp_path / "run", *flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_hyperparameter_file_and_a_conflicting_arch(tmp_path, capsys):
    task = APP.load_task()
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"architecture": "bag", "learning_rate": 0.5}))
    resolved = drivers.resolve_hyperparameters(task, None, path, [("learning_rate", 0.1)])
    assert resolved == {
        "architecture": "bag", "embedding_dim": 8, "learning_rate": 0.1, "mode": "ok"
    }  # fmt: skip
    path.write_text(json.dumps({"architecture": "other"}))
    with pytest.raises(SeqappsError, match="conflicting architectures: --arch says 'bag'"):
        drivers.resolve_hyperparameters(task, "bag", path)
    path.write_text("{not json")
    with pytest.raises(SeqappsError, match=f"{path}, line 1: invalid JSON"):
        drivers.resolve_hyperparameters(task, None, path)


def test_ensembles_are_offered_only_where_outputs_average(capsys):
    task = APP.load_task()
    with pytest.raises(SeqappsError, match="majority does not average its models' outputs"):
        drivers.ensemble_members(task, 3, [])
    with pytest.raises(SystemExit):
        seqapps(*TRAIN, "--ensemble", "2")
    assert "unrecognized arguments: --ensemble 2" in capsys.readouterr().err


def test_a_folder_that_is_not_a_run_is_never_deleted(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("years of work")
    assert seqapps(*TRAIN, "--out", tmp_path, "--overwrite") == 2
    assert "is not empty and holds no run" in capsys.readouterr().err
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_a_run_that_finished_training_is_not_trained_again(resumed_run, capsys):
    run_dir, _, _ = resumed_run
    (run_dir / "metrics.json").unlink()  # as if killed after training, before the metrics
    model_time = (run_dir / "model.keras").stat().st_mtime_ns
    assert seqapps(*TRAIN, "--out", run_dir, "--json") == 0
    output = capsys.readouterr().out
    assert "resuming bag" in output and "epoch " not in output
    assert (run_dir / "model.keras").stat().st_mtime_ns == model_time
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["examples"] == 200
    assert json.loads(output.strip().splitlines()[-1]) == metrics  # --json: the last line


class ScoredMajorityTask(type(APP.load_task())):
    """The minimal task selecting its best epoch by a metric it computes after each epoch, with
    ensembles offered but refused for its hyperparameters."""

    app = dataclasses.replace(APP, ensemble=1)

    def monitor_for(self, data):
        return "val_mistakes", "min"

    def epoch_metrics(self, model, preprocessor, hyperparameters, examples):
        texts = [text for text, _ in examples]
        probabilities = model.predict_on_batch(preprocessor.encode(np.array(texts, object)))
        wrong = np.argmax(probabilities, -1) != np.array([label for _, label in examples])
        return {"mistakes": int(wrong.sum())}

    def averages(self, hyperparameters):
        return "these models must not be averaged (a test)"


def test_a_task_can_select_epochs_by_a_metric_of_its_own(tmp_path):
    task = ScoredMajorityTask()
    settings = drivers.TrainingSettings(
        out=tmp_path / "run",
        hyperparameters=drivers.resolve_hyperparameters(task),
        epochs=2,
        batch_size=64,
    )
    drivers.train(task, settings)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["monitor"] == "val_mistakes" and best["value"] == int(best["value"])
    header = (tmp_path / "run" / "training_log.csv").read_text().splitlines()[0]
    assert "val_mistakes" in header.split(",")


def test_a_task_can_refuse_ensembles_for_some_hyperparameters(tmp_path):
    task = ScoredMajorityTask()
    settings = drivers.TrainingSettings(
        out=tmp_path / "run", hyperparameters=drivers.resolve_hyperparameters(task), ensemble=2
    )
    with pytest.raises(SeqappsError, match="--ensemble 2: these models must not be averaged"):
        drivers.train(task, settings)
    assert not (tmp_path / "run").exists()


def test_a_backup_killed_while_written_still_resumes(tmp_path):
    """``AtomicBackupAndRestore``: a kill while an epoch's weights are written (a partial
    temporary file) leaves the previous backup whole; a backup of Keras' own callback loads."""

    def model():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((3,))
        built = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        built.compile(optimizer="adam", loss="mse")
        built.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)  # optimizer state to keep
        return built

    backup_dir = tmp_path / "backup"
    trained = model()
    trained.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=4, verbose=0)  # 5 steps in all
    trained.layers[1].kernel.assign(np.full((3, 2), 0.5))
    writer = training.AtomicBackupAndRestore(str(backup_dir))
    writer.set_model(trained)
    writer._current_epoch = 3
    writer._save_model()
    (backup_dir / ".tmp-999-epoch-4.weights.h5").write_bytes(b"\x89HDF\r\n partial")

    def restored(directory):
        fresh = model()
        reader = training.AtomicBackupAndRestore(str(directory))
        reader.set_model(fresh)
        reader.on_train_begin()
        return fresh

    resumed = restored(backup_dir)
    assert resumed._initial_epoch == 3
    np.testing.assert_array_equal(resumed.layers[1].kernel.numpy(), np.full((3, 2), 0.5))
    assert int(resumed.optimizer.iterations.numpy()) == 5

    keras_dir = tmp_path / "keras-backup"  # the layout of keras.callbacks.BackupAndRestore
    keras_dir.mkdir()
    trained.save_weights(keras_dir / "latest.weights.h5")
    (keras_dir / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    older = restored(keras_dir)
    assert older._initial_epoch == 2
    np.testing.assert_array_equal(older.layers[1].kernel.numpy(), np.full((3, 2), 0.5))
