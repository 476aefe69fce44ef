"""The translation app end to end through ``seqapps``: train, evaluate, predict, export, serve.

One tiny transformer is trained per session on a Multi30k-style folder written from the built-in
English-German pairs and serves every test of the commands; the model-level checks (the cache,
masking) run on small untrained models of both architectures, where they are exact.
"""

import gzip
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import sacrebleu
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from apps import cli
from apps.common.predictor import load_predictor
from apps.common.text import END_ID, START_ID
from apps.translation import APP
from apps.translation.builtin_data import builtin_translation_data
from apps.translation.model import build_translator, default_hyperparameters, translator_for
from apps.translation.task import translation_function
from tests.serving.serving_checks import check_passed_the_op_audit, check_served_like_the_export
from tests.tuning.space_checks import check_search_space

TASK = APP.load_task()
TINY = {
    "model_dim": 32,
    "intermediate_dim": 64,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "num_heads": 2,
    "vocabulary_size": 400,
    "warmup_steps": 50,
    "learning_rate": 0.004,
    "max_target_tokens": 40,
}
TINY_FLAGS = [f for key, value in TINY.items() for f in ("--set", f"{key}={value}")]


def seqapps(*args) -> int:
    return cli.main([str(a) for a in args])


def write_lines(path: Path, lines) -> None:
    text = "".join(f"{line}\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)


@pytest.fixture(scope="module")
def pairs_folder(tmp_path_factory):
    """Multi30k's layout: gzipped train, plain val and a test set named as Multi30k names it."""
    data = builtin_translation_data(seed=0)
    folder = tmp_path_factory.mktemp("multi30k")
    for name, split, count in (
        ("train", "train", 1500),
        ("val", "validation", 60),
        ("test_2016_flickr", "test", 40),
    ):
        pairs = data.split(split)[:count]
        suffix = ".gz" if name == "train" else ""
        write_lines(folder / f"{name}.en{suffix}", [p.source for p in pairs])
        write_lines(folder / f"{name}.de{suffix}", [p.target for p in pairs])
    return folder


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, pairs_folder):
    run_dir = tmp_path_factory.mktemp("runs") / "translation"
    arguments = ("train", "translation", "--data", pairs_folder, "--out", run_dir)
    assert seqapps(*arguments, "--epochs", 4, "--batch-size", 16, *TINY_FLAGS) == 0
    return run_dir


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, trained_run):
    base = tmp_path_factory.mktemp("saved_models")
    arguments = ("export", "translation", "--model", trained_run, "--base", base)
    assert seqapps(*arguments, "--beam-width", 3) == 0
    return base / "translation" / "1"


@pytest.fixture(scope="module")
def run_predictor(trained_run):
    return load_predictor(TASK, trained_run)


@pytest.fixture(scope="module")
def export_predictor(export_dir):
    return load_predictor(TASK, export_dir)


# === Training and evaluation ===


def test_training_writes_a_run_selected_by_validation_bleu(trained_run):
    for name in ("config.json", "subwords.model", "model.keras", "training_log.csv"):
        assert (trained_run / name).exists(), name
    assert json.loads((trained_run / "best.json").read_text())["monitor"] == "val_bleu"
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["split"] == "validation" and metrics["examples"] == 60
    assert metrics["search"] == "beam" and metrics["beam_width"] == 4
    assert {"bleu", "chrf", "greedy_bleu", "greedy_chrf"} <= set(metrics)
    assert metrics["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    # Four epochs of a tiny model: far from good, but it writes German words (a model that
    # learned nothing, or from misaligned pairs, scores about 3).
    assert metrics["chrf"] > 8, metrics
    # One line per sentence, next to the metrics.
    rows = (trained_run / "translations-validation.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["line", "source", "reference", "beam", "greedy"]
    assert len(rows) == 61 and all(len(row.split("\t")) == 5 for row in rows)


def test_evaluate_scores_the_named_test_set_as_sacrebleu_does(
    export_dir, pairs_folder, capsys, export_predictor
):
    """``--split test`` finds Multi30k's ``test_2016_flickr``; BLEU and chrF equal sacreBLEU's on
    the export's own outputs against the raw references; --translations writes them."""
    outputs = export_dir.parent / "outputs.tsv"
    arguments = ("evaluate", "translation", "--model", export_dir, "--data", pairs_folder)
    assert seqapps(*arguments, "--json", "--translations", outputs) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["split"] == "test_2016_flickr" and report["examples"] == 40
    assert report["beam_width"] == 3  # export --beam-width
    assert any(line.startswith("sacreBLEU nrefs:1") for line in lines)
    rows = [row.split("\t") for row in outputs.read_text().splitlines()[1:]]
    references = [row[2] for row in rows]
    expected = builtin_translation_data(seed=0).split("test")[:40]
    assert references == [p.target for p in expected]
    beam = [row[3] for row in rows]
    assert report["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(beam, [references]).score, abs=1e-9
    )
    assert report["chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(beam, [references]).score, abs=1e-9
    )
    served = export_predictor.outputs({"text": [row[1] for row in rows]})
    assert [t.decode() for t in served["translation"]] == beam


# === The pipeline: alignment and subwords ===


def test_batches_align_each_source_with_its_shifted_target(run_predictor):
    run = run_predictor
    preprocessor, hyperparameters = run.preprocessor, run.config["hyperparameters"]
    pairs = builtin_translation_data(seed=0).split("validation")[:50]
    known = {p.source: p.target for p in pairs}
    batches = TASK.dataset(pairs, preprocessor, hyperparameters, 16, shuffle_seed=3)
    seen = 0
    for (source, target_inputs), target_outputs in batches:
        for row in range(source.shape[0]):
            source_ids = [i for i in source[row].numpy() if i]
            inputs = [i for i in target_inputs[row].numpy() if i]
            outputs = [i for i in target_outputs[row].numpy() if i]
            assert source_ids[-1] == END_ID and inputs[0] == START_ID and outputs[-1] == END_ID
            assert inputs[1:] == outputs[:-1]  # teacher forcing: the next token, one step on
            text = preprocessor.detokenize(tf.constant([source_ids[:-1]]), [len(source_ids) - 1])
            target = preprocessor.detokenize(tf.constant([outputs[:-1]]), [len(outputs) - 1])
            assert known[text.numpy()[0].decode()] == target.numpy()[0].decode()
            seen += 1
    assert seen == 50


def test_subwords_detokenize_to_the_raw_text(run_predictor):
    """Text made of characters seen in training comes back exactly (case, umlauts, ß,
    punctuation attached or not); a character never seen becomes the unknown piece."""
    preprocessor = run_predictor.preprocessor
    texts = [
        "Der große Hund läuft über die Straße, weil er müde ist.",
        "Siehst du die Äpfel? Nein , ich sehe sie nicht.",
        "",
    ]
    inputs, _ = preprocessor.target_ids(tf.constant([*texts, "Ein Hund (drei)"]))
    pieces = inputs[:, 1:]  # without the start token
    round_trip = preprocessor.detokenize(pieces.to_tensor(), pieces.row_lengths())
    decoded = [t.decode() for t in round_trip.numpy()]
    assert decoded[:3] == texts
    # No parentheses in the training data: each is the unknown piece, the words survive.
    assert decoded[3].count("\u2047") == 2
    assert decoded[3].replace("\u2047", "").split() == ["Ein", "Hund", "drei"]


# === The model: cache and masking, exact on untrained models ===


def small_model(architecture: str):
    hyperparameters = {**default_hyperparameters(architecture), **TINY, "dropout": 0.0}
    hyperparameters.update(units=32, embedding_dim=32, decoder_layers=2)
    keras.utils.set_random_seed(5)
    return build_translator(hyperparameters, 50, 50), hyperparameters


SOURCES = np.array([[5, 6, 7, END_ID, 0, 0], [8, 9, 10, 11, 12, END_ID]], np.int32)
TARGET_INPUTS = np.array([[START_ID, 13, 14, 15, 0], [START_ID, 16, 17, 18, 19]], np.int32)


@pytest.mark.parametrize("architecture", ["transformer", "lstm"])
def test_cached_steps_give_the_logits_of_the_full_pass(architecture):
    model, hyperparameters = small_model(architecture)
    full = keras.ops.convert_to_numpy(model((SOURCES, TARGET_INPUTS)))
    translator = translator_for(model, hyperparameters)
    for encode, step in (
        (translator.encode, translator.step),
        (translator.uncached_encode, translator.uncached_step),
    ):
        state, context = encode(tf.constant(SOURCES), 6)
        for index in range(TARGET_INPUTS.shape[1]):
            logits, state = step(tf.constant(TARGET_INPUTS[:, index]), index, state, context)
            np.testing.assert_allclose(logits[1], full[1, index], atol=2e-5)
            if index < 4:  # row 0's target is padded after 4 steps
                np.testing.assert_allclose(logits[0], full[0, index], atol=2e-5)


@pytest.mark.parametrize("architecture", ["transformer", "lstm"])
def test_padding_never_changes_a_translation(architecture):
    """A short sentence alone, and padded beside a longer one: the same logits (source padding
    masked in the encoder and in cross-attention, target padding in self-attention), and the
    same greedy and beam translations through the serving functions."""
    model, hyperparameters = small_model(architecture)
    alone = model((SOURCES[:1, :4], TARGET_INPUTS[:1, :4]))
    padded = model((SOURCES, TARGET_INPUTS))
    np.testing.assert_allclose(padded[0, :4], alone[0], atol=2e-5)
    translator = translator_for(model, hyperparameters)
    state, context = translator.encode(tf.constant(SOURCES[:1, :4]), 6)
    logits, _ = translator.step(tf.constant([START_ID]), 0, state, context)
    np.testing.assert_allclose(logits[0], alone[0, 0], atol=2e-5)


def test_beam_of_width_one_translates_as_greedy_search(run_predictor):
    run = run_predictor
    hyperparameters = {**run.config["hyperparameters"], "beam_width": 1, "length_penalty": 0.0}
    texts = tf.constant([p.source for p in builtin_translation_data(seed=0).split("test")[:8]])
    beam = translation_function(run.model, run.preprocessor, hyperparameters, "beam")(texts)
    greedy = translation_function(run.model, run.preprocessor, hyperparameters, "greedy")(texts)
    np.testing.assert_array_equal(beam["translation"], greedy["translation"])
    # A sentence translated alone or beside longer ones: the same (masking, batch independence).
    for signature in ("serving_default", "greedy"):
        together = run.outputs({"text": texts.numpy()}, signature)["translation"]
        alone = [run.outputs({"text": [t]}, signature)["translation"][0] for t in texts.numpy()]
        assert list(together) == alone


# === Prediction and the export ===


def test_predict_prints_translations_and_draws_the_attention(
    export_dir, tmp_path, capsys, export_predictor
):
    texts = ["The big dog sees the small cat.", "Today I help the teacher."]
    plot = tmp_path / "attention.png"
    arguments = ("predict", "translation", "--model", export_dir, "--attention-plot", plot)
    assert seqapps(*arguments, *texts) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    served = export_predictor.outputs({"text": texts})["translation"]
    assert printed == [t.decode() for t in served]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    attention = export_predictor.outputs({"text": texts[:1]}, "attention")
    rows = int((attention["translation_pieces"][0] != b"").sum())
    columns = int((attention["source_pieces"][0] != b"").sum())
    weights = attention["attention"][0]
    # Each generated piece (and the end) attends over the source pieces (and the end token).
    np.testing.assert_allclose(weights[:rows, :columns].sum(-1), 1.0, atol=1e-4)
    assert np.all(weights[:rows, columns:] == 0)
    assert seqapps("predict", "translation", "--model", export_dir, "--json", texts[0]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record == {"input": texts[0], "translation": printed[0]}


def test_export_answers_any_string_as_the_run_does(
    export_dir, trained_run, run_predictor, export_predictor
):
    """``seqapps export`` published only after a fresh process that imports nothing but
    TensorFlow and tensorflow-text gave the run's answers to the warm-up requests (the framework
    tests prove the check refuses an export that answers differently): here, that those requests
    hold an empty string, invalid UTF-8 and a long text for each signature; a megabyte text
    gets an answer."""
    config = json.loads((export_dir / "assets.extra" / "seqapps.json").read_text())
    assert config["beam_width"] == 3 and config["max_source_tokens"] == 128
    assert [s.split("(")[0] for s in config["signatures"]] == [
        "serving_default",
        "greedy",
        "attention",
    ]
    requests = {}
    for record in tf.data.TFRecordDataset(
        str(export_dir / "assets.extra" / "tf_serving_warmup_requests")
    ):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        requests[request.model_spec.signature_name] = tf.make_ndarray(request.inputs["text"])
    assert set(requests) == {"serving_default", "greedy", "attention"}
    texts = list(requests["serving_default"])
    assert b"" in texts and max(len(t) for t in texts) > 10_000
    assert any(not is_utf8(t) for t in texts)
    # The export, loaded here, answers them as the run directory does (beam width aside), and
    # a megabyte text too: cut to max_source_tokens, it translates as its first 20 KB do.
    megabyte = texts[int(np.argmax([len(t) for t in texts]))] * 50
    assert len(megabyte) >= 1_000_000
    texts += [megabyte]
    run_answers = run_predictor.outputs({"text": texts}, "greedy")
    export_answers = export_predictor.outputs({"text": texts}, "greedy")
    np.testing.assert_array_equal(run_answers["translation"], export_answers["translation"])
    assert export_answers["translation"][-1] == export_answers["translation"][-2]
    assert all(isinstance(t.decode("utf-8"), str) for t in export_answers["translation"])


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_the_export_passed_the_op_audit_with_tensorflow_text_s_sentencepiece(export_dir):
    # The decoder's key/value cache is written without keras.ops.slice_update, whose
    # XlaDynamicUpdateSlice runs only where XLA compiles it (TF Serving does not by default).
    check_passed_the_op_audit(
        export_dir,
        [
            "TFText>FastSentencepieceDetokenize",
            "TFText>FastSentencepieceTokenize",
        ],
    )


def test_seqapps_serve_answers_its_requests_as_the_export_does(export_dir):
    check_served_like_the_export(export_dir, TASK.warmup_requests())


def test_mismatched_files_are_an_error_naming_both(tmp_path, capsys):
    write_lines(tmp_path / "train.en", ["a", "b", "c"])
    write_lines(tmp_path / "train.de", ["x", "y"])
    arguments = ("train", "translation", "--data", tmp_path, "--out", tmp_path / "run")
    assert seqapps(*arguments) == 2
    message = capsys.readouterr().err
    assert "train.en" in message and "train.de" in message and "3" in message and "2" in message


@pytest.mark.slow
@pytest.mark.parametrize(("architecture", "epochs"), [("transformer", 8), ("lstm", 16)])
def test_the_default_command_learns_the_built_in_pairs(architecture, epochs, tmp_path):
    """``seqapps train translation`` as a new user types it (fewer epochs): BLEU well above
    chance on the built-in validation pairs, for both architectures. The LSTM starts slower
    on these 94-batch epochs: after 8 it was at 4.9 validation BLEU (rising from epoch 6),
    the transformer at 93."""
    run_dir = tmp_path / architecture
    arguments = ["train", "translation", "--out", run_dir, "--epochs", epochs]
    arguments += ["--arch", architecture]
    assert seqapps(*arguments) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["bleu"] > 30, metrics


def test_the_search_space_builds_every_architecture(trained_run):
    check_search_space(APP, trained_run)
