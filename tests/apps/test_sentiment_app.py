"""The sentiment app end to end through ``seqapps``: train, resume, evaluate, predict, export."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps import cli
from apps.common import drivers, export, training
from apps.common.predictor import load_predictor
from apps.sentiment import APP
from apps.sentiment.builtin_data import builtin_sentiment_data
from apps.sentiment.task import probabilities
from tests.serving.serving_checks import check_passed_the_op_audit, check_served_like_the_export
from tests.tuning.space_checks import check_search_space

TASK = APP.load_task()

SAVED_MODEL_CLI = Path(sys.executable).with_name("saved_model_cli")


def write_tsv_folder(folder: Path, sizes=(("train", 800), ("dev", 200), ("test", 200))) -> Path:
    """A small TSV copy of the built-in reviews: quick to train on, same task."""
    data = builtin_sentiment_data(seed=0)
    source = {"train": "train", "dev": "validation", "test": "test"}
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in sizes:
        examples = data.splits[source[name]]
        rows = [f"{t}\t{label}" for t, label in zip(examples.texts, examples.labels, strict=True)]
        (folder / f"{name}.tsv").write_text("text\tlabel\n" + "\n".join(rows[:size]) + "\n")
    return folder


def seqapps(*args) -> int:
    return cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tsv_folder(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    run_dir = tmp_path_factory.mktemp("runs") / "sentiment"
    # tcn learns this small set within 4 epochs (the default lstm needs more data or epochs).
    arguments = ("--data", data_dir, "--arch", "tcn", "--epochs", 4, "--ensemble", 1)
    arguments += ("--out", run_dir)
    assert seqapps("train", "sentiment", *arguments) == 0
    return run_dir


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, trained_run):
    base = tmp_path_factory.mktemp("saved_models")
    assert seqapps("export", "sentiment", "--model", trained_run, "--base", base) == 0
    return base / "sentiment" / "1"


def test_training_writes_a_complete_run_directory(trained_run):
    for name in (
        "config.json",
        "vocabulary.txt",
        "model.keras",
        "training_log.csv",
        "metrics.json",
    ):
        assert (trained_run / name).exists(), name
    assert any((trained_run / "tensorboard").rglob("events.out.tfevents.*"))
    assert not (trained_run / "backup").exists()  # removed once training finished
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["split"] == "validation" and metrics["examples"] == 200
    assert metrics["accuracy"] > 0.75, metrics  # chance is 0.5


def test_evaluate_prints_metrics_and_json_last(trained_run, data_dir, capsys):
    assert (
        seqapps("evaluate", "sentiment", "--model", trained_run, "--data", data_dir, "--json") == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["split"] == "test" and report["examples"] == 200
    assert report["accuracy"] > 0.75
    assert any(line.startswith("macro-F1") for line in lines)
    assert any(line.startswith("true \\ predicted") for line in lines)


def test_run_directory_and_export_give_the_same_answers(trained_run, export_dir, data_dir):
    texts = [*builtin_sentiment_data(seed=5).splits["test"].texts[:50], "", "�", "!!!"]
    from_run = probabilities(load_predictor(TASK, trained_run), texts)
    from_export = probabilities(load_predictor(TASK, export_dir), texts)
    np.testing.assert_allclose(from_run, from_export, atol=1e-5)
    run_report = drivers.evaluate(TASK, trained_run, data_dir)
    export_report = drivers.evaluate(TASK, export_dir, data_dir)
    assert run_report["confusion_matrix"] == export_report["confusion_matrix"]


def test_predict_reads_arguments_or_stdin(trained_run, export_dir, capsys, monkeypatch):
    assert seqapps("predict", "sentiment", "--model", export_dir, "the plot was superb.") == 0
    label, probability, text = capsys.readouterr().out.strip().split("\t")
    assert label in ("negative", "positive") and 0.5 <= float(probability) <= 1.0
    assert text == "the plot was superb."
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("one\ntwo\n"))
    assert seqapps("predict", "sentiment", "--model", trained_run) == 0
    assert [line.split("\t")[2] for line in capsys.readouterr().out.splitlines()] == ["one", "two"]


def test_the_float16_variant_keeps_the_signatures_and_answers_within_float16_precision(
    trained_run, export_dir, tmp_path
):
    base = tmp_path / "saved_models"
    # --no-check: the answers of this very export are compared below, in this process.
    arguments = ("--model", trained_run, "--base", base, "--float16", "--no-check")
    assert seqapps("export", "sentiment", *arguments) == 0
    half = base / "sentiment" / "1"
    config = json.loads((half / "assets.extra" / "seqapps.json").read_text())
    full = json.loads((export_dir / "assets.extra" / "seqapps.json").read_text())
    assert config["precision"] == "mixed_float16" and "precision" not in full
    assert config["signatures"] == full["signatures"]  # float32 outputs, same names
    assert "DT_HALF" in str(export.read_saved_model(half))  # it does compute in float16
    texts = builtin_sentiment_data(seed=6).splits["test"].texts[:40]
    np.testing.assert_allclose(
        probabilities(load_predictor(TASK, half), texts),
        probabilities(load_predictor(TASK, export_dir), texts),
        atol=5e-3,  # float16 carries 3 significant digits
    )


def test_export_layout_warmup_and_config(export_dir):
    from tensorflow_serving.apis import prediction_log_pb2

    assert (export_dir / "saved_model.pb").exists()
    assert (export_dir / "assets" / "vocabulary.txt").exists()
    config = json.loads((export_dir / "assets.extra" / "seqapps.json").read_text())
    assert config["app"] == "sentiment" and config["label_names"] == ["negative", "positive"]
    records = list(
        tf.data.TFRecordDataset(str(export_dir / "assets.extra" / "tf_serving_warmup_requests"))
    )
    assert len(records) == 3
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        assert tf.make_ndarray(request.inputs["text"]).dtype == object
    assert not [p for p in export_dir.parent.iterdir() if p.name.startswith(".tmp")]


def test_the_export_passed_the_op_audit_with_core_ops_only(export_dir):
    check_passed_the_op_audit(export_dir, [])


def test_seqapps_serve_answers_its_requests_as_the_export_does(export_dir):
    check_served_like_the_export(export_dir, TASK.warmup_requests())


def test_exports_get_the_next_version_and_never_overwrite(trained_run, export_dir, capsys):
    base = export_dir.parents[1]
    # --no-check: export_dir passed the fresh-process check for this very run; this test is
    # about version numbers.
    assert seqapps("export", "sentiment", "--model", trained_run, "--base", base, "--no-check") == 0
    assert (base / "sentiment" / "2" / "saved_model.pb").exists()
    assert (
        seqapps("export", "sentiment", "--model", trained_run, "--base", base, "--version", 1) == 2
    )
    assert "already exists; versions are never overwritten" in capsys.readouterr().err


def test_a_failed_export_leaves_no_version_behind(trained_run, tmp_path, monkeypatch):
    def broken_warmup(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(drivers.export_tools, "write_warmup_requests", broken_warmup)
    with pytest.raises(RuntimeError, match="disk full"):
        drivers.export(TASK, trained_run, tmp_path)
    assert list((tmp_path / "sentiment").iterdir()) == []


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (TF Serving has these ops built in)

    serving = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    texts = [b"the acting was superb.", b"", b"\\xff\\xfe not utf-8 \\xc3",
             b"word " * 200_000, b"the plot was not boring at all"]
    outputs = serving(text=tf.constant(texts))
    project = sorted({m.split(".")[0] for m in sys.modules} & {"apps", "seqlayers", "tuning"})
    print(json.dumps({
        "labels": [label.decode() for label in outputs["label"].numpy()],
        "probabilities": outputs["probabilities"].numpy().tolist(),
        "project_modules": project,
    }))
    """
)


def test_export_serves_raw_text_in_a_process_without_the_project(export_dir, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_PROCESS, str(export_dir)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["project_modules"] == []
    assert all(label in ("negative", "positive") for label in result["labels"])
    probabilities = np.array(result["probabilities"])
    assert probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(probabilities))


def test_saved_model_cli_lists_the_signature(export_dir):
    completed = subprocess.run(
        [str(SAVED_MODEL_CLI), "show", "--dir", str(export_dir), "--tag_set", "serve",
         "--signature_def", "serving_default"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    shown = completed.stdout
    assert "inputs['text']" in shown and "dtype: DT_STRING" in shown
    assert "outputs['label']" in shown and "outputs['probabilities']" in shown


def test_an_ensemble_averages_its_members_and_resumes_member_by_member(
    tmp_path, monkeypatch, capsys
):
    """Ctrl-C in the second member, then the same command again: the first member is kept, the
    second resumes at its next epoch, and the saved ensemble answers the mean of the members.

    The members use the default architecture (lstm), which no other test here trains. The
    one-model run directory resumes the same way: tests/apps/test_framework.py kills one with
    SIGKILL and checks that every epoch runs exactly once."""
    small = write_tsv_folder(tmp_path / "small", (("train", 200), ("dev", 50)))
    run_dir = tmp_path / "run"
    arguments = ("train", "sentiment", "--data", small, "--epochs", 2)
    arguments += ("--ensemble", 2, "--seed", 7, "--out", run_dir)
    original = training.EpochSummary.on_epoch_end
    finished_epochs = []

    def crash_in_second_member(self, epoch, logs=None):
        original(self, epoch, logs)
        finished_epochs.append(epoch)
        if len(finished_epochs) == 3:  # member 1: epochs 0, 1; member 2: epoch 0
            raise KeyboardInterrupt

    monkeypatch.setattr(training.EpochSummary, "on_epoch_end", crash_in_second_member)
    assert seqapps(*arguments) == 130  # Ctrl-C
    first, second = run_dir / "members" / "1", run_dir / "members" / "2"
    assert json.loads((first / "member.json").read_text())["seed"] == 7
    assert not (second / "member.json").exists() and (second / "backup").exists()
    assert not (run_dir / "model.keras").exists()
    first_model_time = (first / "model.keras").stat().st_mtime_ns
    monkeypatch.setattr(training.EpochSummary, "on_epoch_end", original)
    capsys.readouterr()

    assert seqapps(*arguments) == 0
    output = capsys.readouterr().out
    assert "resuming lstm (an ensemble of 2)" in output
    assert "member 1/2: finished earlier" in output
    assert "epoch 2/2" in output and "epoch 1/2" not in output  # member 2 resumed, not restarted
    assert (first / "model.keras").stat().st_mtime_ns == first_model_time
    assert json.loads((second / "member.json").read_text())["seed"] == 8
    log = (second / "training_log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["0", "1"]  # every epoch exactly once
    assert not (second / "backup").exists()
    # The saved ensemble answers the mean of its members' probabilities.
    hyperparameters = training.read_json(run_dir / "config.json")["hyperparameters"]
    encoder = TASK.load_preprocessor(run_dir, hyperparameters).encoder
    ids = encoder.encode(tf.constant(["a gripping film", "dull and boring", ""]))
    members = [keras.models.load_model(d / "model.keras") for d in (first, second)]
    expected = np.mean([m.predict_on_batch(ids) for m in members], axis=0)
    ensemble = keras.models.load_model(run_dir / "model.keras")
    np.testing.assert_allclose(ensemble.predict_on_batch(ids), expected, atol=1e-6)
    assert not np.allclose(members[0].predict_on_batch(ids), members[1].predict_on_batch(ids))
    assert json.loads((run_dir / "metrics.json").read_text())["examples"] == 50
    # ... and exports as one SavedModel that gives the run directory's answers.
    # --no-check: the fresh-process check has tests of its own; this one is about averaging.
    base = tmp_path / "base"
    assert seqapps("export", "sentiment", "--model", run_dir, "--base", base, "--no-check") == 0
    texts = ["a gripping film", "dull and boring", ""]
    exported = probabilities(load_predictor(TASK, tmp_path / "base" / "sentiment"), texts)
    np.testing.assert_allclose(exported, probabilities(load_predictor(TASK, run_dir), texts), 1e-5)


def test_an_empty_ensemble_is_refused_before_anything_is_written(tmp_path, data_dir, capsys):
    run_dir = tmp_path / "run"
    assert seqapps("train", "sentiment", "--data", data_dir, "--ensemble", 0, "--out", run_dir) == 2
    assert "--ensemble must be at least 1, got 0" in capsys.readouterr().err
    assert not run_dir.exists()


def test_a_finished_run_is_not_overwritten_by_accident(trained_run, data_dir, capsys):
    assert seqapps("train", "sentiment", "--data", data_dir, "--out", trained_run) == 2
    assert (
        "holds a finished run; choose another --out or pass --overwrite" in capsys.readouterr().err
    )


def test_resuming_with_other_settings_is_refused(tmp_path, data_dir, capsys):
    run_dir = tmp_path / "run"
    training.prepare_run_directory(run_dir, {"app": "sentiment", "architecture": "tcn"}, False)
    assert seqapps("train", "sentiment", "--data", data_dir, "--out", run_dir) == 2
    assert "architecture: 'tcn' -> 'lstm'" in capsys.readouterr().err


def test_bad_input_gets_one_clear_line(tmp_path, trained_run, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tlabel\nfine film\tpositive\nodd film\tmeh\n")
    assert seqapps("evaluate", "sentiment", "--model", trained_run, "--data", bad) == 2
    assert f"seqapps: error: {bad}:3: unknown label 'meh'" in capsys.readouterr().err
    assert seqapps("predict", "sentiment", "--model", tmp_path, "x") == 2
    assert "neither a training run directory" in capsys.readouterr().err


def test_the_default_ensemble_follows_the_size_of_the_training_data():
    from apps.sentiment.data import LabeledTexts

    def words(count, per_text):
        texts = ["word " * per_text] * (count // per_text)
        return LabeledTexts(texts, ["positive"] * len(texts), ["x"] * len(texts))

    assert TASK.default_ensemble_size(words(131_000, 19)) == 10  # SST-2: 10 members
    assert TASK.default_ensemble_size(words(500_000, 50)) == 3
    assert TASK.default_ensemble_size(words(5_200_000, 230)) == 1  # IMDB: one model
    assert drivers.ensemble_members(TASK, None, words(5_200_000, 230)) == 1
    assert drivers.ensemble_members(TASK, 4, words(5_200_000, 230)) == 4


def test_the_search_space_builds_every_architecture(trained_run):
    check_search_space(APP, trained_run)
