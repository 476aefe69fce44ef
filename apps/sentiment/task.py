"""Sentiment: a text classifier on the task interface (``apps/common/task.py``).

    seqapps train sentiment [--data PATH] [--arch lstm|tcn|transformer] [--ensemble auto|N]
                            [--set KEY=VALUE ...] [--out runs/sentiment]
    seqapps evaluate sentiment --model runs/sentiment --data PATH [--split test] [--json]
    seqapps predict sentiment --model runs/sentiment "a moving, funny film"
    seqapps export sentiment --model runs/sentiment [--base saved_models] [--version N]

Data: the built-in synthetic reviews without ``--data``, else an aclImdb folder, an SST-2 folder
or TSV/CSV files (``apps/sentiment/data.py``). Texts are lower-cased, punctuation is split off
and at most ``max_tokens`` tokens are kept (``apps/common/text.py``). Training fits an ensemble
of models with consecutive seeds sized to the data (10 on SST-2, 1 on IMDB) and keeps their
average. Metric: accuracy and macro-F1; 84.0 % SST-2 test accuracy with the defaults
(``bench/RESULTS.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps.common.classification import classification_report, format_report
from apps.common.datasets import read_utf8
from apps.common.errors import SeqappsError
from apps.common.pipeline import bucketed_batches
from apps.common.predictor import Predictor
from apps.common.task import SERVING_DEFAULT, Task
from apps.common.text import (
    PADDING_ID,
    TextEncoder,
    Tokenizer,
    build_vocabulary,
    write_vocabulary,
)
from apps.sentiment import APP, DEFAULT_ENSEMBLE, ENSEMBLE_WORD_BUDGET
from apps.sentiment.builtin_data import builtin_sentiment_data
from apps.sentiment.data import LabeledTextData, LabeledTexts, load_labeled_text
from apps.sentiment.model import build_classifier, default_hyperparameters

VOCABULARY_FILE = "vocabulary.txt"
LABELS_FILE = "labels.txt"
MIN_TOKEN_COUNT = 2  # a word seen once in training has no reliable embedding
WARMUP_TEXTS = [
    "a gripping, beautifully acted film.",
    "the plot was not clever, and the ending was boring.",
    "",
]


def tokenizer_for(hyperparameters: dict) -> Tokenizer:
    """Sentiment's choice: case and punctuation carry little sentiment, so lower-case and split
    punctuation off; aclImdb's ``<br />`` line breaks become spaces."""
    return Tokenizer(hyperparameters["max_tokens"], lowercase=True, split_punctuation=True)


def label_ids(examples: LabeledTexts, label_names: list[str]) -> np.ndarray:
    """Label names to ids; an unknown label names its origin (file and line)."""
    index = {name: i for i, name in enumerate(label_names)}
    ids = []
    for label, origin in zip(examples.labels, examples.origins, strict=True):
        if label not in index:
            raise SeqappsError(f"{origin}: unknown label {label!r} (the model knows {label_names})")
        ids.append(index[label])
    return np.array(ids, dtype="int32")


class SentimentPreprocessor(tf.Module):
    """The vocabulary (an asset of the export) and the label names, in id order."""

    def __init__(self, run_dir: Path, hyperparameters: dict):
        super().__init__(name="sentiment_preprocessor")
        self.encoder = TextEncoder(run_dir / VOCABULARY_FILE, tokenizer_for(hyperparameters))
        self.label_names = read_utf8(run_dir / LABELS_FILE).split("\n")[:-1]


class SentimentTask(Task):
    app = APP

    # === Data ===

    def load_data(
        self, path: Path | None, options: dict, *, seed: int, for_training: bool
    ) -> LabeledTextData:
        if path is None:
            return builtin_sentiment_data(seed)
        return load_labeled_text(
            Path(path),
            seed=seed,
            text_column=options.get("text_column"),
            label_column=options.get("label_column"),
            for_training=for_training,
        )

    def default_ensemble_size(self, train: LabeledTexts) -> int:
        words = sum(len(text.split()) for text in train.texts)
        return max(1, min(DEFAULT_ENSEMBLE, ENSEMBLE_WORD_BUDGET // max(words, 1)))

    # === Preprocessing ===

    def learn_preprocessing(self, data: LabeledTextData, hyperparameters: dict, run_dir: Path):
        if not (run_dir / LABELS_FILE).exists():
            write_vocabulary(data.label_names, run_dir / LABELS_FILE)
        if not (run_dir / VOCABULARY_FILE).exists():
            texts = data.split("train").texts
            tokens = tokenizer_for(hyperparameters).python_tokens(texts, what="vocabulary")
            vocabulary = build_vocabulary(
                tokens, hyperparameters["vocabulary_size"], MIN_TOKEN_COUNT
            )
            write_vocabulary(vocabulary, run_dir / VOCABULARY_FILE)

    def load_preprocessor(self, run_dir: Path, hyperparameters: dict) -> SentimentPreprocessor:
        return SentimentPreprocessor(Path(run_dir), hyperparameters)

    # === tf.data pipeline ===

    def dataset(
        self,
        examples: LabeledTexts,
        preprocessor: SentimentPreprocessor,
        hyperparameters: dict,
        batch_size: int,
        *,
        shuffle_seed: int | None = None,
    ) -> tf.data.Dataset:
        """Batches of ``(ids int32[batch, time], label int32[batch])``, bucketed by length."""
        labels = label_ids(examples, preprocessor.label_names)
        pairs = tf.data.Dataset.from_tensor_slices((examples.texts, labels))
        if shuffle_seed is not None:
            pairs = pairs.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
        encoder = preprocessor.encoder

        def encode(text, label):
            return encoder.encode(tf.reshape(text, [1]))[0], label

        encoded = pairs.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
        return bucketed_batches(
            encoded,
            length=lambda ids, label: tf.shape(ids)[0],
            max_length=hyperparameters["max_tokens"],
            batch_size=batch_size,
            padding_values=(PADDING_ID, 0),
        )

    # === Model ===

    def default_hyperparameters(self, architecture: str) -> dict:
        return default_hyperparameters(architecture)

    def build_model(self, hyperparameters: dict, preprocessor: SentimentPreprocessor):
        return build_classifier(
            hyperparameters, preprocessor.encoder.vocabulary_size, len(preprocessor.label_names)
        )

    # === Serving ===

    def serving_functions(
        self, model: keras.Model, preprocessor: SentimentPreprocessor, options=None
    ):
        """``serving_default(text: string[None]) -> {label: string[None],
        probabilities: float32[None, classes]}``; raw UTF-8 in, tokenized inside the graph."""
        label_table = tf.constant(preprocessor.label_names)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text):
            ids = preprocessor.encoder.encode(text)
            probabilities = tf.cast(model(ids, training=False), tf.float32)
            label = tf.gather(label_table, tf.argmax(probabilities, axis=-1))
            return {"label": label, "probabilities": probabilities}

        return {SERVING_DEFAULT: serve}

    def warmup_requests(self):
        return [(SERVING_DEFAULT, {"text": [text]}) for text in WARMUP_TEXTS]

    def export_metadata(self, preprocessor: SentimentPreprocessor, options=None) -> dict:
        return {"label_names": preprocessor.label_names}

    # === Report ===

    def evaluate(self, predictor: Predictor, examples: LabeledTexts, options=None) -> dict:
        label_names = predictor.metadata["label_names"]
        true_ids = label_ids(examples, label_names)
        predicted_ids = np.argmax(probabilities(predictor, examples.texts, "evaluating"), -1)
        return classification_report(true_ids, predicted_ids, label_names)

    def format_report(self, report: dict) -> str:
        return format_report(report)

    # === Prediction ===

    def format_prediction(self, line: str, outputs: dict[str, np.ndarray]) -> str:
        probability = float(np.max(outputs["probabilities"]))
        return f"{outputs['label'].decode('utf-8')}\t{probability:.4f}\t{line}"


def probabilities(predictor: Predictor, texts: Sequence[str], what="predicting") -> np.ndarray:
    """``float32[len(texts), classes]`` of a run directory or an export, in input order."""
    rows = predictor.answer_all({"text": list(texts)}, what=what)
    classes = len(predictor.metadata["label_names"])
    return np.stack([row["probabilities"] for row in rows]) if rows else np.zeros((0, classes))
