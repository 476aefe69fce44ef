"""Sentiment: train, evaluate, predict with and export a text classifier.

    seqapps train sentiment [--data PATH] [--arch lstm|tcn|transformer] [--ensemble 10]
                            [--out runs/sentiment]
    seqapps evaluate sentiment --model runs/sentiment --data PATH [--split test] [--json]
    seqapps predict sentiment --model runs/sentiment "a moving, funny film"
    seqapps export sentiment --model runs/sentiment [--base saved_models] [--version N]

Data: the built-in synthetic reviews without ``--data``, else an aclImdb folder, an SST-2 folder
or TSV/CSV files (``apps/common/labeled_text.py``). Training fits an ensemble of models with
consecutive seeds and keeps their average (``training.fit_ensemble``). Metric: accuracy and
macro-F1; see ``bench/RESULTS.md`` for SST-2 figures per architecture.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps.common import export as export_tools
from apps.common import training
from apps.common.errors import SeqappsError
from apps.common.labeled_text import (
    WHOLE_FILE,
    LabeledTextData,
    LabeledTexts,
    load_labeled_text,
)
from apps.common.metrics import classification_report
from apps.common.pipeline import encoded_text_dataset
from apps.common.text import TextEncoder, build_vocabulary, write_vocabulary
from apps.sentiment import DEFAULT_ENSEMBLE
from apps.sentiment.builtin_data import builtin_sentiment_data
from apps.sentiment.model import (
    DEFAULT_HYPERPARAMETERS,
    build_classifier,
    compile_classifier,
)

APP = "sentiment"
VOCABULARY_FILE = "vocabulary.txt"
PREDICTION_BATCH = 256


# === Data ===


def load_data(data_path: Path | None, seed: int, **options) -> LabeledTextData:
    if data_path is None:
        return builtin_sentiment_data(seed)
    return load_labeled_text(Path(data_path), seed=seed, **options)


def label_ids(examples: LabeledTexts, label_names: list[str]) -> np.ndarray:
    """Label names to ids in ``label_names`` order; an unknown label names its origin."""
    index = {name: i for i, name in enumerate(label_names)}
    ids = []
    for label, origin in zip(examples.labels, examples.origins, strict=True):
        if label not in index:
            raise SeqappsError(f"{origin}: unknown label {label!r} (the model knows {label_names})")
        ids.append(index[label])
    return np.array(ids, dtype="int32")


# === Training ===


def train(
    data_path: Path | None = None,
    architecture: str = "lstm",
    epochs: int = 20,
    batch_size: int = 32,
    out: Path = Path("runs") / APP,
    seed: int = 0,
    *,
    ensemble: int = DEFAULT_ENSEMBLE,
    max_tokens: int = 400,
    vocabulary_size: int = 20_000,
    patience: int = 3,
    overwrite: bool = False,
    text_column: str | None = None,
    label_column: str | None = None,
    verbose: int | None = None,
) -> dict:
    """Trains and writes a run directory (``apps/common/training.py``); returns its metrics."""
    out = Path(out)
    if ensemble < 1:
        raise SeqappsError(f"--ensemble must be at least 1, got {ensemble}")
    data = load_data(data_path, seed, text_column=text_column, label_column=label_column)
    train_split, validation_split = data.split("train"), data.split("validation")
    hyperparameters = DEFAULT_HYPERPARAMETERS[architecture]
    config = {
        "app": APP,
        "architecture": architecture,
        "hyperparameters": hyperparameters,
        "max_tokens": max_tokens,
        "vocabulary_size": vocabulary_size,
        "label_names": data.label_names,
        "data": data.description,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "ensemble": ensemble,
    }
    resuming = training.prepare_run_directory(out, config, overwrite)
    print(f"data: {data.description}")
    print(
        f"splits: train {len(train_split)}, validation {len(validation_split)}"
        + (f", test {len(data.splits['test'])}" if "test" in data.splits else "")
    )
    vocabulary_path = out / VOCABULARY_FILE
    if not vocabulary_path.exists():
        vocabulary = build_vocabulary(train_split.texts, max_tokens, vocabulary_size)
        write_vocabulary(vocabulary, vocabulary_path)
    encoder = TextEncoder(vocabulary_path, max_tokens)
    print(
        f"{'resuming' if resuming else 'training'} {architecture}"
        + (f" (an ensemble of {ensemble})" if ensemble > 1 else "")
        + f" in {out} "
        f"(vocabulary {encoder.vocabulary_size} tokens, at most {max_tokens} tokens per text)"
    )

    train_ids = label_ids(train_split, data.label_names)
    validation_ids = label_ids(validation_split, data.label_names)
    validation_batches = encoded_text_dataset(
        validation_split.texts, validation_ids, encoder, batch_size
    )

    def build_member(member_seed: int) -> keras.Model:
        keras.utils.set_random_seed(member_seed)
        model = build_classifier(
            architecture, encoder.vocabulary_size, len(data.label_names), hyperparameters
        )
        return compile_classifier(model, hyperparameters["learning_rate"])

    def train_batches(member_seed: int) -> tf.data.Dataset:
        return encoded_text_dataset(
            train_split.texts, train_ids, encoder, batch_size, shuffle_seed=member_seed
        )

    model = training.fit_ensemble(
        build_member,
        train_batches,
        validation_batches,
        out,
        members=ensemble,
        seed=seed,
        epochs=epochs,
        patience=patience,
        verbose=verbose,
    )
    classifier = RunClassifier(out, model=model, encoder=encoder)
    metrics = report_for(classifier, validation_split, "validation")
    training.write_json_atomically(out / training.METRICS_FILE, metrics)
    print(
        f"validation accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}; "
        f"model in {out / training.MODEL_FILE}"
    )
    return metrics


# === Inference: a run directory or an export, with the same answers ===


class RunClassifier:
    """A training run directory: ``model.keras`` and its vocabulary, tokenized as in training."""

    def __init__(self, run_dir: Path, model=None, encoder=None):
        run_dir = Path(run_dir)
        self.config = training.read_json(run_dir / training.CONFIG_FILE)
        if self.config.get("app") != APP:
            raise SeqappsError(f"{run_dir}: a {self.config.get('app')!r} run, not {APP!r}")
        if model is None:
            model_path = run_dir / training.MODEL_FILE
            if not model_path.exists():
                raise SeqappsError(f"{run_dir}: no {training.MODEL_FILE} yet (is training done?)")
            model = keras.models.load_model(model_path)
        self.model = model
        self.encoder = encoder or TextEncoder(run_dir / VOCABULARY_FILE, self.config["max_tokens"])
        self.label_names = list(self.config["label_names"])

        self.serving = serving_function(self.model, self.encoder, self.label_names)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        return probabilities_in_batches(self.serving, texts, len(self.label_names))


class ExportedClassifier:
    """A SavedModel written by ``export``: calls its ``serving_default`` signature."""

    def __init__(self, export_dir: Path):
        config = export_tools.read_export_config(export_dir)
        if config.get("app") != APP:
            raise SeqappsError(f"{export_dir}: a {config.get('app')!r} export, not {APP!r}")
        self.label_names = list(config["label_names"])
        self.serving = tf.saved_model.load(str(export_dir)).signatures["serving_default"]

    def probabilities(self, texts: list[str]) -> np.ndarray:
        return probabilities_in_batches(self.serving, texts, len(self.label_names))


def serving_function(model: keras.Model, encoder: TextEncoder, label_names: list[str]):
    """``text: string[None] -> {label, probabilities}``: the export's signature, also used by
    ``RunClassifier``, so a run directory and its export answer alike."""
    label_table = tf.constant(label_names)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        probabilities = tf.cast(model(encoder.encode(text), training=False), tf.float32)
        label = tf.gather(label_table, tf.argmax(probabilities, axis=-1))
        return {"label": label, "probabilities": probabilities}

    return serve


def probabilities_in_batches(serving, texts: list[str], classes: int) -> np.ndarray:
    chunks = [
        serving(text=tf.constant(texts[start : start + PREDICTION_BATCH], tf.string))
        for start in range(0, len(texts), PREDICTION_BATCH)
    ]
    if not chunks:
        return np.zeros((0, classes), "float32")
    return np.concatenate([chunk["probabilities"].numpy() for chunk in chunks])


def load_classifier(path: Path):
    """A run directory, an export version, or an app's export folder (its newest version)."""
    path = Path(path)
    versions = export_tools.existing_versions(path)
    if not export_tools.is_export(path) and versions:
        path = path / str(versions[-1])
    if export_tools.is_export(path):
        return ExportedClassifier(path)
    if (path / training.CONFIG_FILE).exists():
        return RunClassifier(path)
    raise SeqappsError(
        f"{path}: neither a training run directory (config.json, model.keras) nor an export "
        "(saved_model.pb, or numbered versions of one)"
    )


def report_for(classifier, examples: LabeledTexts, split: str) -> dict:
    true_ids = label_ids(examples, classifier.label_names)
    predicted_ids = np.argmax(classifier.probabilities(examples.texts), axis=-1)
    report = classification_report(true_ids, predicted_ids, classifier.label_names)
    return {"split": split, **report}


def evaluate(
    model_path: Path,
    data_path: Path | None,
    split: str = "test",
    seed: int = 0,
    **table_columns,
) -> dict:
    """Metrics of a run directory or export on one split (a single table file: all of it)."""
    classifier = load_classifier(model_path)
    data = load_data(data_path, seed, for_training=False, **table_columns)
    examples = data.split(split)
    return report_for(classifier, examples, WHOLE_FILE if WHOLE_FILE in data.splits else split)


def predict(model_path: Path, texts: Iterable[str]) -> list[tuple[str, float]]:
    classifier = load_classifier(model_path)
    probabilities = classifier.probabilities(list(texts))
    best = np.argmax(probabilities, axis=-1)
    return [
        (classifier.label_names[i], float(row[i]))
        for i, row in zip(best, probabilities, strict=True)
    ]


# === Export for TF Serving ===

WARMUP_TEXTS = [
    "a gripping, beautifully acted film.",
    "the plot was not clever, and the ending was boring.",
    "",
]


def export(model_dir: Path, base: Path = Path("saved_models"), version: int | None = None) -> Path:
    """Publishes ``base/sentiment/<version>/``: ``serving_default(text) -> label, probabilities``.

    The run directory is the argument; the export is written atomically (``publish_atomically``).
    """
    model_dir = Path(model_dir)
    if export_tools.is_export(model_dir):
        raise SeqappsError(f"{model_dir} is already an export; pass the training run directory")
    classifier = RunClassifier(model_dir)

    def write(export_dir: Path) -> None:
        archive = keras.export.ExportArchive()
        archive.track(classifier.model)
        archive.track(classifier.encoder)
        archive.add_endpoint("serving_default", classifier.serving)
        archive.write_out(str(export_dir), verbose=False)
        export_tools.write_export_config(
            export_dir,
            {
                "app": APP,
                "label_names": classifier.label_names,
                "architecture": classifier.config["architecture"],
                "ensemble": classifier.config.get("ensemble", 1),
                "trained_on": classifier.config["data"],
                "signature": "serving_default(text: string[None]) -> "
                "{label: string[None], probabilities: float32[None, classes]}",
            },
        )
        export_tools.write_warmup_requests(
            export_dir, APP, [{"text": [text]} for text in WARMUP_TEXTS]
        )

    return export_tools.publish_atomically(write, base, APP, version)


def read_texts(texts: list[str]) -> list[str]:
    """The TEXT arguments, or stdin's lines when there are none."""
    if texts:
        return texts
    return [line.rstrip("\n") for line in sys.stdin]
