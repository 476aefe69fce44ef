"""``seqapps tune`` in one process, on the test app (``tests/apps/majority_task.py``).

One search runs once for the module: the test app's space has a value that does not build
(``embedding_dim`` 3) and one whose loss is NaN (``mode`` nan), so failures are recorded next
to completed trials. Tests that change a search work on a copy of its directory.
"""

import contextlib
import csv
import io
import json
import shutil

import pytest

from apps import cli
from apps.common import drivers, training
from tests.apps.majority_task import APP
from tuning import search

TUNE = ["tune", "majority", "--tuner", "random", "--epochs", "1", "--patience", "1"]
TRIALS = 4  # with seed 0: the defaults, a size that does not build, a model, a NaN loss


def tune(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([*TUNE, *(str(a) for a in args)], apps=[APP])
        except SystemExit as exit:  # argparse's errors
            code = exit.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tune") / "search"
    code, output, errors = tune("--max-trials", TRIALS, "--directory", directory, "--json")
    assert code == 0, errors
    return directory, output


def copied(finished_search, tmp_path):
    directory, _ = finished_search
    copy = tmp_path / "search"
    shutil.copytree(directory, copy)
    return copy


def rows(directory):
    with (directory / search.RESULTS_FILE).open(encoding="utf-8") as file:
        return list(csv.DictReader(file, delimiter="\t"))


def test_every_trial_is_recorded_and_ranked_best_first(finished_search):
    directory, output = finished_search
    results = rows(directory)
    assert sorted(int(row["trial"]) for row in results) == list(range(TRIALS))
    completed = [row for row in results if row["status"] == "COMPLETED"]
    assert len(completed) >= 2
    scores = [(-float(row["val_accuracy"]), float(row["val_loss"])) for row in completed]
    assert scores == sorted(scores)  # by the objective, ties by the validation loss
    assert results[: len(completed)] == completed  # failed trials last
    best = json.loads(output.strip().splitlines()[-1])["best"]
    assert best["trial"] == completed[0]["trial"]
    assert best["score"] == pytest.approx(float(completed[0]["val_accuracy"]), abs=1e-6)
    # The table for people, best first, with each trial's values.
    table = output[output.index("rank  trial") :]
    assert table.splitlines()[1].split()[1] == completed[0]["trial"]
    assert f"embedding_dim={completed[0]['embedding_dim']}" in table.splitlines()[1]


def test_the_first_trial_is_the_apps_default_configuration(finished_search):
    directory, output = finished_search
    first = next(row for row in rows(directory) if row["trial"] == "0")
    assert (first["embedding_dim"], first["mode"], first["batch_size"]) == ("8", "ok", "32")
    assert "trial 0 (1 of 4): architecture=bag batch_size=32 embedding_dim=8 mode=ok" in output


def test_failed_trials_keep_their_reason_and_the_search_goes_on(finished_search):
    directory, output = finished_search
    failed = [row for row in rows(directory) if row["status"] == "FAILED"]
    reasons = {(row["embedding_dim"], row["mode"]): row["reason"] for row in failed}
    assert any(size == "3" for size, _ in reasons), "the seed should try a model that fails"
    assert any(mode == "nan" and size != "3" for size, mode in reasons)
    for (size, mode), reason in reasons.items():
        if size == "3":
            assert reason == "ValueError: embedding_dim 3 is too small for this test"
        else:
            assert mode == "nan"
            assert reason.startswith("the training loss became nan at epoch 1, batch 1")
    assert "failed: ValueError: embedding_dim 3 is too small" in output


def test_the_best_hyperparameters_train_an_ordinary_run(finished_search, tmp_path):
    directory = copied(finished_search, tmp_path)
    best = json.loads((directory / search.BEST_TRIAL_FILE).read_text())
    task = APP.load_task()
    file = directory / search.BEST_HYPERPARAMETERS_FILE
    assert drivers.resolve_hyperparameters(task, None, file) == best["hyperparameters"]
    run = tmp_path / "run"
    code, output, errors = tune(
        "--max-trials", TRIALS, "--directory", directory, "--train-best", "--out", run
    )
    assert code == 0, errors
    assert "\ntrial " not in output  # the finished search trains no trial again
    config = json.loads((run / training.CONFIG_FILE).read_text())
    assert config["hyperparameters"] == best["hyperparameters"]
    assert config["batch_size"] == best["batch_size"]
    assert cli.main(["evaluate", "majority", "--model", str(run)], apps=[APP]) == 0


def test_more_trials_continue_the_search_without_repeating_one(finished_search, tmp_path):
    directory = copied(finished_search, tmp_path)
    logs_before = {
        path.parent.name: path.read_text() for path in directory.glob("trials/*/training_log.csv")
    }
    code, output, errors = tune("--max-trials", TRIALS + 1, "--directory", directory)
    assert code == 0, errors
    assert f"continuing a random search of {TRIALS + 1} trials" in output
    started = [line.split()[1] for line in output.splitlines() if line.startswith("trial ")]
    assert started == [str(TRIALS), f"{TRIALS}:"]  # one new trial, begun and ended
    assert len(rows(directory)) == TRIALS + 1
    for name, log in logs_before.items():
        assert (directory / "trials" / name / training.LOG_FILE).read_text() == log


@pytest.mark.parametrize(
    "changed, expected",
    [
        (["--objective", "val_loss"], "objective: 'val_accuracy' -> 'val_loss'"),
        (["--set", "learning_rate=0.05"], "fixed: {} -> {'learning_rate': 0.05}"),
        (["--seed", "1"], "data: "),
        (["--tuner", "bayesian"], "tuner: 'random' -> 'bayesian'"),
        (["--epochs", "3"], "epochs: 1 -> 3"),
    ],
)
def test_another_search_in_the_same_directory_is_an_error(
    finished_search, tmp_path, changed, expected
):
    directory = copied(finished_search, tmp_path)
    code, _, errors = tune("--max-trials", TRIALS, "--directory", directory, *changed)
    assert code == 2
    assert "holds a search with other settings" in errors and expected in errors, errors
    assert "--overwrite" in errors


def test_overwrite_starts_the_search_again(finished_search, tmp_path):
    directory = copied(finished_search, tmp_path)
    code, output, errors = tune(
        "--max-trials", "1", "--directory", directory, "--objective", "val_loss", "--overwrite"
    )
    assert code == 0, errors
    assert "starting a random search of 1 trials" in output
    assert [row["trial"] for row in rows(directory)] == ["0"]


def test_a_changed_search_space_is_named(finished_search, tmp_path):
    directory = copied(finished_search, tmp_path)
    definition = json.loads((directory / search.SEARCH_FILE).read_text())
    definition["space"]["bag/embedding_dim"] = definition["space"]["bag/embedding_dim"].replace(
        "[8, 6, 3]", "[8, 6]"
    )
    (directory / search.SEARCH_FILE).write_text(json.dumps(definition))
    code, _, errors = tune("--max-trials", TRIALS, "--directory", directory)
    assert code == 2
    assert "search space bag/embedding_dim: Choice" in errors, errors


def test_bad_flags_are_errors_that_name_them(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    cases = [
        (["--directory", tmp_path], "holds no search (no search.json)"),
        (["--set", "units=3"], "--set units: majority has no hyperparameter 'units'"),
        (["--set", "embedding_dim=6"], "--set embedding_dim: bag's embedding_dim is tuned"),
        (["--objective", "val_f1"], "--objective val_f1: not a metric of this app's epochs"),
        (["--objective", "val_f1:up"], "the direction must be min or max"),
        (["--worker", "127.0.0.1:1"], "--worker needs --worker-id N"),
        (["--chief", "nowhere"], "--chief: expected HOST:PORT"),
        (["--out", tmp_path / "run"], "--out goes with --train-best"),
        (["--ensemble", "2"], "unrecognized arguments: --ensemble"),  # its outputs do not average
    ]
    for args, expected in cases:
        directory = [] if args[0] == "--directory" else ["--directory", tmp_path / "fresh"]
        code, _, errors = tune("--max-trials", "1", "--epochs", "1", *directory, *args)
        assert code == 2 and expected in errors, (args, errors)


def test_a_failure_reason_is_one_line_and_names_running_out_of_memory():
    import tensorflow as tf

    text = "OOM when allocating tensor [4096,4096]\n..."
    oom = tf.errors.ResourceExhaustedError(None, None, text)
    assert search.failure_reason(oom) == (
        "out of memory (ResourceExhaustedError: OOM when allocating tensor [4096,4096])"
    )
    assert search.failure_reason(MemoryError()) == "out of memory (MemoryError: )"
    assert search.failure_reason(ValueError("bad\nsecond line")) == "ValueError: bad"
    message = "Traceback ...\nkeras_tuner.src.errors.FailedTrialError: the loss became nan\n"
    assert search.last_line(message) == "the loss became nan"


def test_ensemble_is_for_the_final_model_only(tmp_path, capsys):
    arguments = ["tune", "sentiment", "--directory", str(tmp_path), "--ensemble", "3"]
    assert cli.main(arguments) == 2
    assert "--ensemble goes with --train-best" in capsys.readouterr().err
