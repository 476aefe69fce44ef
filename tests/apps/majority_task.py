"""A minimal second task, built only from ``apps/common``: which word a text holds more often.

Texts are 1-9 words of "a" and "b"; the label is the majority word (odd lengths, no ties).
``python -m tests.apps.majority_task train majority --out RUN`` runs it through ``seqapps``.
"""

import random
import sys
from pathlib import Path

import apps.quiet_tensorflow  # noqa: F401  (first: TensorFlow loads without its C++ start-up noise)

import keras
import numpy as np
import tensorflow as tf

from apps import cli
from apps.common.app import App
from apps.common.classification import classification_report, format_report
from apps.common.datasets import ExampleList, Splits
from apps.common.pipeline import bucketed_batches
from apps.common.task import SERVING_DEFAULT, Task
from apps.common.text import TextEncoder, Tokenizer, build_vocabulary, write_vocabulary

LABELS = ["a", "b"]


class MajorityTask(Task):
    def load_data(self, path, options, *, seed, for_training):
        rng = random.Random(seed)
        texts = [" ".join(rng.choices("ab", k=rng.choice([1, 3, 5, 7, 9]))) for _ in range(1500)]
        examples = ExampleList((t, int(t.count("b") > t.count("a"))) for t in texts)
        splits = {"train": examples.subset(range(1000)), "test": examples.subset(range(1000, 1500))}
        return Splits(splits, f"majority texts (seed {seed})").hold_out(0.2, seed)

    def learn_preprocessing(self, data, hyperparameters, run_dir):
        words = (text.split() for text, _ in data.split("train"))
        write_vocabulary(build_vocabulary(words, 10, min_count=1), run_dir / "vocabulary.txt")

    def load_preprocessor(self, run_dir, hyperparameters):
        return TextEncoder(Path(run_dir) / "vocabulary.txt", Tokenizer(16))

    def dataset(self, examples, encoder, hyperparameters, batch_size, *, shuffle_seed=None):
        texts, labels = zip(*examples, strict=True)
        pairs = tf.data.Dataset.from_tensor_slices((list(texts), list(labels)))
        if shuffle_seed is not None:
            pairs = pairs.shuffle(len(texts), seed=shuffle_seed)
        pairs = pairs.map(lambda text, label: (encoder.encode(text[None])[0], label))
        return bucketed_batches(
            pairs, length=lambda ids, _: tf.shape(ids)[0], max_length=16,
            batch_size=batch_size, padding_values=(0, 0),
        )  # fmt: skip

    def default_hyperparameters(self, architecture):
        # mode: "nan" makes the loss NaN in tuning's tests (their search space).
        defaults = {"architecture": architecture, "embedding_dim": 8, "learning_rate": 0.02}
        return {**defaults, "mode": "ok"}

    def build_model(self, hp, encoder):
        ids = keras.Input((None,), dtype="int32")
        x = keras.layers.Embedding(encoder.vocabulary_size, hp["embedding_dim"], mask_zero=True)
        x = keras.layers.GlobalAveragePooling1D()(x(ids))
        return keras.Model(ids, keras.layers.Dense(2, activation="softmax")(x))

    def serving_functions(self, model, encoder, options=None):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text):
            probabilities = model(encoder.encode(text))
            return {"label": tf.gather(LABELS, tf.argmax(probabilities, -1)), "p": probabilities}

        return {SERVING_DEFAULT: serve}

    def warmup_requests(self):
        return [(SERVING_DEFAULT, {"text": ["a b b", "", "a"]})]

    def evaluate(self, predictor, examples, options=None):
        rows = predictor.answer_all({"text": [text for text, _ in examples]})
        predicted = [LABELS.index(row["label"].decode()) for row in rows]
        return classification_report(np.array([y for _, y in examples]), predicted, LABELS)

    def format_report(self, report):
        return format_report(report)

    def format_prediction(self, line, outputs):
        return f"{outputs['label'].decode()}\t{line}"


def nan_loss(labels, probabilities):
    return keras.ops.mean(probabilities) * np.nan


def load_hypermodel():
    """The test app's search space (``seqapps tune majority``): ``embedding_dim`` 3, 6 or 8
    (3 does not build: a bad combination), ``mode`` "ok" or "nan" (a loss that is NaN)."""
    from tuning.hypermodel import AppHyperModel

    class MajorityHyperModel(AppHyperModel):
        batch_sizes = (16, 32)

        def architecture_space(self, space, architecture):
            space.choice("embedding_dim", [8, 6, 3])
            space.choice("mode", ["ok", "nan"])

        def build(self, hp):
            hyperparameters, _ = self.resolve(hp)
            if hyperparameters["embedding_dim"] == 3:
                raise ValueError("embedding_dim 3 is too small for this test")
            model = super().build(hp)
            if hyperparameters["mode"] == "nan":
                model.compile(optimizer="adam", loss=nan_loss)
            return model

    return MajorityHyperModel


MajorityTask.app = APP = App(
    "majority",
    "which word is in the majority",
    MajorityTask,
    ("bag",),
    load_hypermodel=load_hypermodel,
)

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:], apps=[APP]))
