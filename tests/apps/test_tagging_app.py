"""The tagging app end to end through ``seqapps``: train, evaluate, predict, export, serve.

One small CRF tagger is trained per session on a column file written from the built-in
sentences (entity tags) and serves every test; a POS file checks the tag-only path.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from seqeval.metrics import f1_score

from apps import cli
from apps.common import drivers
from apps.common.predictor import load_predictor
from apps.tagging import APP
from apps.tagging.builtin_data import builtin_tagging_data
from apps.tagging.task import TAG_TOKENS
from tests.serving.serving_checks import check_passed_the_op_audit, check_served_like_the_export
from tests.tuning.space_checks import check_search_space

TASK = APP.load_task()
SMALL = ["--set", "units=32", "--set", "word_dim=32", "--set", "char_filters=16"]


def seqapps(*args) -> int:
    return cli.main([str(a) for a in args])


def write_column_file(path: Path, sentences, style: str = "conll2003") -> Path:
    """Sentences as a CoNLL-2003 (token ... tag) or Universal NER (index token tag) file."""
    lines = ["-DOCSTART- -X- -X- O", ""] if style == "conll2003" else []
    for sentence in sentences:
        if style == "uner":
            lines.append("# sent_id = x")
        for index, (token, tag) in enumerate(zip(sentence.tokens, sentence.tags, strict=True)):
            if style == "conll2003":
                lines.append(f"{token} NN O {tag}")
            else:
                lines.append(f"{index + 1}\t{token}\t{tag}\t-\t-")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def entity_data(tmp_path_factory):
    data = builtin_tagging_data(seed=0, column="entities")
    folder = tmp_path_factory.mktemp("entities")
    write_column_file(folder / "train.txt", data.splits["train"][:600])
    write_column_file(folder / "dev.txt", data.splits["validation"][:150])
    write_column_file(folder / "test.txt", data.splits["test"][:200], style="uner")
    return folder


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, entity_data):
    run_dir = tmp_path_factory.mktemp("runs") / "tagging"
    arguments = ("train", "tagging", "--data", entity_data, "--epochs", 6, "--out", run_dir)
    assert seqapps(*arguments, *SMALL) == 0
    return run_dir


@pytest.fixture(scope="module")
def run_predictor(trained_run):
    """The run directory's predictor, as evaluate and predict load it; its serving functions
    take seconds to trace, so the tests that call it in this process share one."""
    return load_predictor(TASK, trained_run)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, trained_run):
    base = tmp_path_factory.mktemp("saved_models")
    assert seqapps("export", "tagging", "--model", trained_run, "--base", base) == 0
    return base / "tagging" / "1"


def test_training_writes_a_run_selected_by_entity_f1(trained_run):
    for name in ("config.json", "words.txt", "characters.txt", "tags.txt", "model.keras"):
        assert (trained_run / name).exists(), name
    best = json.loads((trained_run / "best.json").read_text())
    assert best["monitor"] == "val_f1"
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["split"] == "validation" and metrics["examples"] == 150
    assert metrics["f1"] > 0.6, metrics
    tags = (trained_run / "tags.txt").read_text().split()
    assert tags[0] == "O" and {"B-PER", "I-PER", "B-LOC"} <= set(tags)


def test_evaluate_json_agrees_with_seqeval(trained_run, run_predictor, entity_data, capsys):
    assert (
        seqapps("evaluate", "tagging", "--model", trained_run, "--data", entity_data, "--json") == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["split"] == "test" and report["examples"] == 200
    assert {"accuracy", "precision", "recall", "f1", "unseen_accuracy"} <= set(report)
    assert any(line.startswith("entities  precision") for line in lines)
    # Recomputed independently: predictions through the export's pre-tokenized signature.
    test = TASK.load_data(entity_data, {}, seed=0, for_training=False).split("test")
    predicted = []
    for sentence in test:
        outputs = run_predictor.outputs({"tokens": [sentence.tokens]}, TAG_TOKENS)
        predicted.append([t.decode() for t in outputs["tags"][0][: len(sentence.tokens)]])
    gold = [s.tags for s in test]
    assert report["f1"] == pytest.approx(f1_score(gold, predicted), abs=1e-9)


def test_decoded_entity_tags_are_always_valid_bio(run_predictor):
    texts = ["in in in of of Paris", "Merkel Merkel , , said", ". . .", "x " * 50]
    for row in run_predictor.answer({"text": texts}):
        tags = [t.decode() for t in row["tags"][: int(row["length"])]]
        for previous, tag in zip(["O", *tags], tags, strict=False):
            if tag.startswith("I-"):
                assert previous[2:] == tag[2:] and previous != "O", tags


def test_padding_never_changes_a_sentence_s_tags(run_predictor, entity_data):
    """Masking end to end: a short sentence tagged alone, and padded to the width of a long
    one in the same batch, gets the same tags (a backward LSTM or a CRF reading the padding
    would differ), and its padding gets no tags."""
    test = TASK.load_data(entity_data, {}, seed=0, for_training=False).split("test")
    short = min(test, key=lambda s: len(s.tokens)).tokens
    long = max(test, key=lambda s: len(s.tokens)).tokens
    assert len(long) >= len(short) + 5
    alone = run_predictor.outputs({"tokens": [short]}, TAG_TOKENS)["tags"][0]
    padded = short + [""] * (len(long) - len(short))
    batch = run_predictor.outputs({"tokens": [padded, long]}, TAG_TOKENS)
    np.testing.assert_array_equal(batch["tags"][0][: len(short)], alone)
    assert set(batch["tags"][0][len(short) :]) == {b""}
    assert batch["length"].tolist() == [len(short), len(long)]


def test_predict_prints_tokens_tags_and_entities(trained_run, capsys):
    assert (
        seqapps("predict", "tagging", "--model", trained_run, "Angela Merkel visited Paris.") == 0
    )
    output = capsys.readouterr().out
    first, second = output.splitlines()[:2]
    assert first.split()[-1] == "./O" and first.startswith("Angela/")
    assert second.startswith("  entities: ")
    # --json: one object per input, without the batch's padding, entities as token spans.
    texts = ["Angela Merkel visited Paris.", "a much longer sentence with many more words in it ."]
    assert seqapps("predict", "tagging", "--model", trained_run, "--json", *texts) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["input"] for r in records] == texts
    first = records[0]
    assert first["tokens"] == ["Angela", "Merkel", "visited", "Paris", "."]
    assert len(first["tags"]) == first["length"] == 5
    for entity in first["entities"]:
        assert entity["text"] == " ".join(first["tokens"][entity["start"] : entity["end"]])
        assert first["tags"][entity["start"]] == f"B-{entity['type']}"


def test_run_directory_and_export_answer_alike(run_predictor, export_dir):
    texts = ["Angela Merkel visited Paris on Monday.", "", "the U.S. didn't say", "é" * 40]
    from_run = run_predictor.answer({"text": texts})
    from_export = load_predictor(TASK, export_dir).answer({"text": texts})
    for a, b in zip(from_run, from_export, strict=True):
        assert int(a["length"]) == int(b["length"])
        np.testing.assert_array_equal(a["tags"], b["tags"])
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
    assert [t.decode() for t in from_run[2]["tokens"][: int(from_run[2]["length"])]] == [
        "the", "U.S.", "did", "n't", "say",
    ]  # fmt: skip
    assert int(from_run[1]["length"]) == 0
    # A request of no texts gets no answers (its convolution cannot run on a batch of 0).
    empty = load_predictor(TASK, export_dir).signatures["serving_default"](
        text=tf.constant([], tf.string)
    )
    assert empty["tags"].shape[0] == 0 and empty["length"].shape == (0,)


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (TF Serving links these ops)

    loaded = tf.saved_model.load(sys.argv[1])
    texts = [b"Angela Merkel visited Paris.", b"", b"\\xff\\xfe not utf-8 \\xc3"]
    texts.append(b"word " * 300_000)
    outputs = loaded.signatures["serving_default"](text=tf.constant(texts))
    pretokenized = loaded.signatures["tag_tokens"](
        tokens=tf.constant([["Angela", "Merkel", ""], ["", "", ""]]))
    project = sorted({m.split(".")[0] for m in sys.modules} & {"apps", "seqlayers", "tuning"})
    print(json.dumps({
        "lengths": outputs["length"].numpy().tolist(),
        "shape": list(outputs["tags"].shape),
        "pretokenized": [[t.decode() for t in row] for row in pretokenized["tags"].numpy()],
        "pretokenized_lengths": pretokenized["length"].numpy().tolist(),
        "project_modules": project,
    }))
    """
)


def test_export_serves_raw_and_pretokenized_text_without_the_project(export_dir, tmp_path):
    config = json.loads((export_dir / "assets.extra" / "seqapps.json").read_text())
    assert config["scheme"] == "bio" and config["tag_names"][0] == "O"
    assert len(config["signatures"]) == 2
    completed = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_PROCESS, str(export_dir)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["project_modules"] == []
    lengths = result["lengths"]
    assert lengths[0] == 5 and lengths[1] == 0 and lengths[2] >= 3
    assert lengths[3] == config["max_tokens"]  # a megabyte of words, cut
    assert result["pretokenized_lengths"] == [2, 0]
    assert result["pretokenized"][1] == ["", "", ""]


def test_the_export_passed_the_op_audit_with_tensorflow_text_s_regex_split(export_dir):
    check_passed_the_op_audit(export_dir, ["RegexSplitWithOffsets"])


def test_seqapps_serve_answers_its_requests_as_the_export_does(export_dir):
    check_served_like_the_export(export_dir, TASK.warmup_requests())


def test_pos_tags_train_without_entity_decoding(tmp_path, capsys):
    data = builtin_tagging_data(seed=0, column="upos")
    folder = tmp_path / "pos"
    write_column_file(folder / "train.txt", data.splits["train"][:300])
    run_dir = tmp_path / "run"
    arguments = ("train", "tagging", "--data", folder, "--epochs", 2, "--out", run_dir)
    tcn = [
        "--arch",
        "tcn",
        "--set",
        "filters=32",
        "--set",
        "word_dim=32",
        "--set",
        "decoder=softmax",
    ]
    assert seqapps(*arguments, *tcn) == 0
    assert json.loads((run_dir / "best.json").read_text())["monitor"] == "val_tag_accuracy"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "f1" not in metrics and metrics["accuracy"] > 0.3
    assert "held back from train" in json.loads((run_dir / "config.json").read_text())["data"]


def test_crf_taggers_refuse_ensembles_and_bad_tags_name_file_and_line(
    trained_run, entity_data, tmp_path, capsys
):
    assert (
        seqapps("train", "tagging", "--data", entity_data, "--ensemble", 2, "--out", tmp_path / "r")
        == 2
    )
    assert "CRF taggers cannot be averaged" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("Paris NNP O B-LOC\nsaid VBD O B-EVENT\n\n")
    assert seqapps("evaluate", "tagging", "--model", trained_run, "--data", bad) == 2
    error = capsys.readouterr().err
    assert f"{bad}, line 2" in error and "B-EVENT" in error


def test_drivers_accept_hyperparameters_for_tuning():
    hyperparameters = drivers.resolve_hyperparameters(TASK, "tcn", None, [("decoder", "softmax")])
    assert hyperparameters["architecture"] == "tcn" and hyperparameters["decoder"] == "softmax"
    assert TASK.averages(hyperparameters) is None


def test_the_search_space_builds_every_architecture(trained_run):
    check_search_space(APP, trained_run)
