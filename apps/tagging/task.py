"""Tagging: one tag per token, on the task interface (``apps/common/task.py``).

    seqapps train tagging [--data PATH] [--column upos|xpos|entities] [--arch lstm|tcn]
                          [--set decoder=crf|softmax] [--out runs/tagging]
    seqapps evaluate tagging --model runs/tagging --data PATH [--split test] [--json]
    seqapps predict tagging --model runs/tagging "Angela Merkel visited Paris ."
    seqapps export tagging --model runs/tagging [--base saved_models]

Data (``apps/tagging/data.py``): Universal Dependencies CoNLL-U (``--column upos|xpos``),
CoNLL-2003 and Universal NER column files (entity tags, IOB1 converted to IOB2), or built-in
generated sentences. Model (``apps/tagging/model.py``): word embeddings and a character CNN per
token, a bidirectional ``PeepholeLSTM`` or a ``TCN``, and a CRF or softmax decoder; entity tags
are always decoded as valid BIO sequences. Metrics: token accuracy (and on tokens unseen in
training); for entity tags, entity-level precision, recall and F1 with exact span match, as
conlleval computes them (``seqeval``). Figures: ``bench/RESULTS.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from seqeval.metrics import classification_report as entity_report

from apps.common.classification import classification_report
from apps.common.datasets import read_utf8
from apps.common.pipeline import bucketed_batches
from apps.common.predictor import Predictor
from apps.common.progress import Progress
from apps.common.task import SERVING_DEFAULT, Task
from apps.common.text import (
    PADDING_ID,
    TextEncoder,
    Tokenizer,
    build_vocabulary,
    write_vocabulary,
)
from apps.tagging import APP
from apps.tagging.bio import allowed_transitions, entity_spans, is_bio
from apps.tagging.data import TaggedSentence, TaggingData, check_known_tags, load_tagging_data
from apps.tagging.model import build_tagger, default_hyperparameters
from seqlayers.crf import crf_decode

WORDS_FILE = "words.txt"
CHARACTERS_FILE = "characters.txt"
TAGS_FILE = "tags.txt"
TAG_TOKENS = "tag_tokens"
EVALUATION_BATCH = 256
# Raw text is split like the Penn Treebank (and Universal Dependencies) split English: on white
# space, punctuation as tokens of its own, clitics (n't, 's, 're...) apart, abbreviations such as
# "U.S." kept whole. A regular expression (RE2) that tensorflow-text's regex_split runs in the
# graph, so TF Serving tokenizes exactly as training did.
# Numbers keep their decimal points and thousands separators, and hyphenated words stay whole.
KEPT_DELIMITERS = (
    r"(?i:n't)\b|'(?i:s|re|ll|ve|m|d)\b|(?:[A-Za-z]\.){2,}|[0-9]+(?:[.,:/][0-9]+)+|-{2,}|"
    r"[!\"#$%&'()*+,./:;<=>?@\[\\\]^_`{|}~]"
)
DELIMITERS = r"\s+|" + KEPT_DELIMITERS
WARMUP_TEXTS = ["Angela Merkel visited Paris on Monday.", "", "the U.S. didn't say"]


def normalize_words(tokens: tf.RaggedTensor) -> tf.RaggedTensor:
    """Word-embedding keys: lower-cased, digits as 0 (the characters keep case and digits)."""
    lowered = tf.ragged.map_flat_values(tf.strings.lower, tokens, encoding="utf-8")
    return tf.ragged.map_flat_values(tf.strings.regex_replace, lowered, "[0-9]", "0")


class TaggingPreprocessor(tf.Module):
    """Tokens to word and character ids, tag ids to names; the vocabularies are assets."""

    def __init__(self, run_dir: Path, hyperparameters: dict):
        super().__init__(name="tagging_preprocessor")
        run_dir = Path(run_dir)
        self.max_tokens = hyperparameters["max_tokens"]
        self.max_word_characters = hyperparameters["max_word_characters"]
        # Cuts and repairs raw text (bounded bytes, valid UTF-8), keeping case and punctuation.
        self.normalizer = Tokenizer(
            self.max_tokens, lowercase=False, split_punctuation=False, html_line_breaks=False
        )
        self.words = TextEncoder(run_dir / WORDS_FILE, self.normalizer)
        self.characters = TextEncoder(run_dir / CHARACTERS_FILE, self.normalizer)
        self.tag_names = read_utf8(run_dir / TAGS_FILE).split("\n")[:-1]
        self.tag_table = tf.constant(self.tag_names)
        self.bio = is_bio(self.tag_names)
        self.allowed = (
            allowed_transitions(self.tag_names)
            if self.bio
            else np.ones((len(self.tag_names) + 1,) * 2, bool)
        )

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """``tf.string[batch]`` -> ragged tokens, at most ``max_tokens`` per text."""
        cleaned = self.normalizer.normalize(texts)
        return tf_text.regex_split(cleaned, DELIMITERS, KEPT_DELIMITERS)[:, : self.max_tokens]

    def encode(self, tokens: tf.RaggedTensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Ragged tokens -> ``(word_ids int32[b, t], char_ids int32[b, t, c])``, padded with 0,
        at least one (padding) step wide so that an empty batch row still has a shape."""
        tokens = tokens[:, : self.max_tokens]
        word_ids = self.words.lookup(normalize_words(tokens)).to_tensor(PADDING_ID)
        characters = tf.strings.unicode_split(tokens, "UTF-8", errors="replace")
        char_ids = self.characters.lookup(characters[:, :, : self.max_word_characters])
        char_ids = char_ids.to_tensor(PADDING_ID)
        steps = tf.maximum(1, tf.shape(word_ids)[1])
        word_ids = tf.pad(word_ids, [[0, 0], [0, steps - tf.shape(word_ids)[1]]])
        char_ids = tf.pad(
            char_ids,
            [
                [0, 0],
                [0, steps - tf.shape(char_ids)[1]],
                [0, tf.maximum(0, 1 - tf.shape(char_ids)[2])],
            ],
        )
        return word_ids, char_ids


class TaggingTask(Task):
    app = APP

    # === Data ===

    def load_data(
        self, path: Path | None, options: dict, *, seed: int, for_training: bool
    ) -> TaggingData:
        return load_tagging_data(
            None if path is None else Path(path),
            column=options.get("column"),
            token_column=options.get("token_column"),
            tag_column=options.get("tag_column"),
            seed=seed,
            for_training=for_training,
        )

    # === Preprocessing ===

    def learn_preprocessing(self, data: TaggingData, hyperparameters: dict, run_dir: Path):
        train = data.split("train")
        if not (run_dir / TAGS_FILE).exists():
            # Validation's rare tags too (a UD dev file may have one train lacks): selection
            # scores every validation sentence.
            names = data.tag_names("train")
            names += sorted(set(data.tag_names("validation")) - set(names))
            write_vocabulary(names, run_dir / TAGS_FILE)
        if not (run_dir / WORDS_FILE).exists():
            words = []
            with Progress("word vocabulary", len(train), "sentences") as progress:
                for start in range(0, len(train), 1024):
                    batch = [s.tokens for s in train[start : start + 1024]]
                    normalized = normalize_words(tf.ragged.constant(batch, tf.string))
                    words += [[w.decode("utf-8") for w in row] for row in normalized.to_list()]
                    progress.advance(len(batch))
            vocabulary = build_vocabulary(words, hyperparameters["vocabulary_size"], 1)
            write_vocabulary(vocabulary, run_dir / WORDS_FILE)
        if not (run_dir / CHARACTERS_FILE).exists():
            limit = hyperparameters["max_word_characters"]
            characters = (list(token[:limit]) for s in train for token in s.tokens)
            write_vocabulary(build_vocabulary(characters, 2_000, 2), run_dir / CHARACTERS_FILE)

    def load_preprocessor(self, run_dir: Path, hyperparameters: dict) -> TaggingPreprocessor:
        return TaggingPreprocessor(run_dir, hyperparameters)

    # === tf.data pipeline ===

    def dataset(
        self,
        examples: Sequence[TaggedSentence],
        preprocessor: TaggingPreprocessor,
        hyperparameters: dict,
        batch_size: int,
        *,
        shuffle_seed: int | None = None,
    ) -> tf.data.Dataset:
        """Batches of ``((word_ids, char_ids), tag_ids)`` of sentences of similar length."""
        index = {name: i for i, name in enumerate(preprocessor.tag_names)}
        check_known_tags(examples, preprocessor.tag_names)
        tokens = tf.ragged.constant([s.tokens for s in examples], tf.string)
        tags = tf.ragged.constant([[index[t] for t in s.tags] for s in examples], tf.int32)
        limit = hyperparameters["max_tokens"]

        def encode(sentence_tokens, sentence_tags):
            word_ids, char_ids = preprocessor.encode(
                tf.RaggedTensor.from_tensor(sentence_tokens[None])
            )
            return (word_ids[0], char_ids[0]), sentence_tags[:limit]

        sentences = tf.data.Dataset.from_tensor_slices((tokens, tags))
        return bucketed_batches(
            sentences.map(encode, num_parallel_calls=tf.data.AUTOTUNE),
            length=lambda inputs, _: tf.shape(inputs[0])[0],
            max_length=limit,
            batch_size=batch_size,
            padding_values=((PADDING_ID, PADDING_ID), 0),
            shuffle_seed=shuffle_seed,
        )

    # === Model ===

    def default_hyperparameters(self, architecture: str) -> dict:
        return default_hyperparameters(architecture)

    def build_model(self, hyperparameters: dict, preprocessor: TaggingPreprocessor):
        return build_tagger(
            hyperparameters,
            preprocessor.words.vocabulary_size,
            preprocessor.characters.vocabulary_size,
            preprocessor.allowed,
        )

    def compile_model(self, model: keras.Model, hyperparameters: dict) -> keras.Model:
        optimizer = keras.optimizers.Adam(hyperparameters["learning_rate"], clipnorm=5.0)
        if hyperparameters["decoder"] == "crf":
            # CRFTagger.compute_loss: the CRF's negative log-likelihood. The batch metric reads
            # each token's best emission score, not the Viterbi path, and is named for it (it
            # runs well below the decoded accuracy, val_tag_accuracy, which the epoch ends with).
            emission_accuracy = keras.metrics.SparseCategoricalAccuracy(name="emission_accuracy")
            model.compile(optimizer=optimizer, metrics=[emission_accuracy])
        else:
            model.compile(
                optimizer=optimizer,
                loss="sparse_categorical_crossentropy",
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
            )
        return model

    def monitor_for(self, data: TaggingData) -> tuple[str, str]:
        return ("val_f1", "max") if data.scheme == "bio" else ("val_tag_accuracy", "max")

    def epoch_metrics(self, model, preprocessor, hyperparameters, examples) -> dict:
        """Decoded token accuracy, and entity F1 for entity tags, on the validation split."""
        # One graph per model for the whole run (its weights change, not its structure):
        # eager decoding would step the LSTM and the Viterbi loop op by op.
        if getattr(self, "_decoded_model", None) is not model:
            self._decoded_model = model
            self._decode = tf.function(
                decoding_function(model, preprocessor), reduce_retracing=True
            )
        decode = self._decode
        names = np.array(preprocessor.tag_names, dtype=object)
        predicted = tag_sentences(
            lambda tokens: names[decode(tf.constant(tokens)).numpy()], examples, what=None
        )
        report = score(examples, predicted, preprocessor.tag_names, None)
        metrics = {"tag_accuracy": report["accuracy"]}
        if "f1" in report:
            metrics["f1"] = report["f1"]
        return metrics

    def averages(self, hyperparameters: dict) -> str | None:
        if hyperparameters["decoder"] == "crf":
            return (
                "CRF taggers cannot be averaged (each member learns its own transition scores); "
                "use --set decoder=softmax for an ensemble"
            )
        return None

    # === Serving ===

    def serving_functions(
        self, model: keras.Model, preprocessor: TaggingPreprocessor, options=None
    ):
        """``serving_default(text: string[None])`` and ``tag_tokens(tokens: string[None, None])``
        (pre-tokenized, padded with empty strings) -> ``{tokens: string[None, None],
        tags: string[None, None], length: int32[None]}``, tokens and tags padded with "" (as
        wide as the request for ``tag_tokens``; tokens past ``max_tokens`` get "" tags)."""
        decode = decoding_function(model, preprocessor)

        def answer(tokens: tf.RaggedTensor, width=None) -> dict:
            """Tags for the first ``max_tokens`` tokens; outputs ``width`` wide (by default
            the longest row), padded (and tags past ``max_tokens``) with ""."""
            tokens = tokens[:, : preprocessor.max_tokens]
            dense = tokens.to_tensor("")
            # A request of no texts gets empty answers: the character CNN's convolution cannot
            # run on a batch of 0.
            tag_ids = tf.cond(
                tf.shape(dense)[0] > 0,
                lambda: decode(dense)[:, : tf.shape(dense)[1]],
                lambda: tf.zeros([0, tf.shape(dense)[1]], tf.int32),
            )
            tags = tf.where(tf.equal(dense, ""), "", tf.gather(preprocessor.tag_table, tag_ids))
            if width is not None:
                tags = tf.pad(tags, [[0, 0], [0, width - tf.shape(tags)[1]]], constant_values="")
            length = tf.cast(tokens.row_lengths(), tf.int32)
            return {"tokens": dense, "tags": tags, "length": length}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text):
            return answer(preprocessor.tokenize(text))

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")])
        def tag_tokens(tokens):
            # The answer is as wide as the request: tags line up with the tokens sent.
            outputs = answer(tf.RaggedTensor.from_tensor(tokens, padding=""), tf.shape(tokens)[1])
            return {**outputs, "tokens": tokens}

        return {SERVING_DEFAULT: serve, TAG_TOKENS: tag_tokens}

    def warmup_requests(self):
        return [
            (SERVING_DEFAULT, {"text": WARMUP_TEXTS}),
            (
                TAG_TOKENS,
                {"tokens": [["Angela", "Merkel", "visited", "Paris"], ["Hi", "", "", ""]]},
            ),
        ]

    def export_metadata(self, preprocessor: TaggingPreprocessor, options=None) -> dict:
        return {
            "tag_names": preprocessor.tag_names,
            "scheme": "bio" if preprocessor.bio else "tags",
            "max_tokens": preprocessor.max_tokens,
        }

    # === Report ===

    def evaluate(
        self, predictor: Predictor, examples: Sequence[TaggedSentence], options=None
    ) -> dict:
        tag_names = predictor.metadata["tag_names"]
        check_known_tags(examples, tag_names)

        def tag_batch(tokens):
            return predictor.outputs({"tokens": tokens}, TAG_TOKENS)["tags"]

        predicted = tag_sentences(tag_batch, examples, what="evaluating")
        return score(examples, predicted, tag_names, vocabulary_of(predictor))

    def format_report(self, report: dict) -> str:
        lines = [
            f"sentences {report['examples']}",
            f"tokens    {report['tokens']}",
            f"accuracy  {report['accuracy']:.4f}",
        ]
        if report.get("unseen_tokens") is not None:
            lines.append(
                f"unseen    {report['unseen_tokens']} tokens, accuracy "
                f"{report['unseen_accuracy']:.4f}"
            )
        if "f1" in report:
            lines += [
                f"entities  precision {report['precision']:.4f}, recall {report['recall']:.4f}, "
                f"F1 {report['f1']:.4f}",
                "",
                "type        precision  recall      F1  entities",
            ]
            for name, row in sorted(report["per_type"].items()):
                lines.append(
                    f"{name:<10}{row['precision']:>11.4f}{row['recall']:>8.4f}{row['f1']:>8.4f}"
                    f"{row['support']:>10}"
                )
        return "\n".join(lines)

    # === Prediction ===

    def prediction_record(self, outputs: dict[str, np.ndarray]) -> dict:
        """Tokens and tags without the batch's padding, and entity spans (token offsets, end
        exclusive) for entity tags."""
        tokens, tags = tagged_tokens(outputs)
        record = {"tokens": tokens, "tags": tags, "length": len(tokens)}
        if is_bio(tags):
            record["entities"] = [
                {"type": kind, "start": start, "end": end, "text": " ".join(tokens[start:end])}
                for kind, start, end in entity_spans(tags)
            ]
        return record

    def format_prediction(self, line: str, outputs: dict[str, np.ndarray]) -> str:
        tokens, tags = tagged_tokens(outputs)
        tagged = " ".join(f"{token}/{tag}" for token, tag in zip(tokens, tags, strict=True))
        if not is_bio(tags):
            return tagged
        entities = "; ".join(
            f"{kind}: {' '.join(tokens[start:end])}" for kind, start, end in entity_spans(tags)
        )
        return f"{tagged}\n  entities: {entities or 'none'}"


def tagged_tokens(outputs: dict[str, np.ndarray]) -> tuple[list[str], list[str]]:
    """One answer's tokens and tags, up to its length (the rest is the batch's padding)."""
    length = int(outputs["length"])
    tokens = [t.decode("utf-8", errors="replace") for t in outputs["tokens"][:length]]
    return tokens, [t.decode("utf-8") for t in outputs["tags"][:length]]


# === Decoding and scoring, shared by training-time validation and evaluation ===


def decoding_function(model, preprocessor: TaggingPreprocessor):
    """``tokens string[b, t]`` (padded with "") -> tag ids ``int32[b, t']`` (``t' >= t``).

    A CRF model is decoded with its own transition scores; a softmax model takes each token's
    best tag, or for entity tags the best valid sequence (Viterbi over the log-probabilities).
    """
    crf = next((layer for layer in model.layers if layer.name == "crf"), None)
    zeros = tf.zeros([len(preprocessor.tag_names)] * 2)
    edge = tf.zeros([len(preprocessor.tag_names)])

    def decode(tokens):
        word_ids, char_ids = preprocessor.encode(tf.RaggedTensor.from_tensor(tokens, padding=""))
        scores = model([word_ids, char_ids], training=False)
        mask = tf.not_equal(word_ids, PADDING_ID)
        if crf is not None:
            return crf.decode(scores, mask)[0]
        if preprocessor.bio:
            log_probabilities = tf.math.log(tf.maximum(scores, 1e-12))
            return crf_decode(log_probabilities, mask, zeros, edge, edge, preprocessor.allowed)[0]
        return tf.argmax(scores, axis=-1, output_type=tf.int32)

    return decode


def tag_sentences(tag_batch, examples: Sequence[TaggedSentence], what: str | None):
    """Each sentence's predicted tags, from ``tag_batch(tokens [b, t] padded with "")``."""
    predicted = []
    progress = Progress(what, len(examples), "sentences") if what else None
    for start in range(0, len(examples), EVALUATION_BATCH):
        batch = examples[start : start + EVALUATION_BATCH]
        width = max(1, max(len(s.tokens) for s in batch))
        padded = [s.tokens + [""] * (width - len(s.tokens)) for s in batch]
        tags = np.asarray(tag_batch(padded))
        for sentence, row in zip(batch, tags, strict=True):
            predicted.append(
                [
                    t.decode("utf-8") if isinstance(t, bytes) else str(t)
                    for t in row[: len(sentence.tokens)]
                ]
            )
        if progress:
            progress.advance(len(batch))
    if progress:
        progress.close()
    return predicted


def vocabulary_of(predictor: Predictor) -> set[str] | None:
    """The training words of a run directory or export (its ``words.txt``), for the accuracy
    on unseen words; None if it cannot be found."""
    for path in (predictor.source / WORDS_FILE, predictor.source / "assets" / WORDS_FILE):
        if path.exists():
            return set(read_utf8(path).split("\n")[:-1])
    return None


def score(examples, predicted, tag_names, vocabulary) -> dict:
    """Token accuracy (and on unseen words), and for entity tags seqeval's entity scores."""
    gold = [s.tags for s in examples]
    flat_gold = [t for tags in gold for t in tags]
    flat_predicted = [t for tags in predicted for t in tags]
    index = {name: i for i, name in enumerate(tag_names)}
    report = classification_report(
        np.array([index[t] for t in flat_gold]),
        np.array([index.get(t, 0) for t in flat_predicted]),
        list(tag_names),
    )
    result = {
        "examples": len(examples),
        "tokens": len(flat_gold),
        "accuracy": report["accuracy"],
        "unseen_tokens": None,
        "unseen_accuracy": None,
    }
    if vocabulary is not None:
        normalized = [
            w.decode("utf-8")
            for w in normalize_words(
                tf.ragged.constant([[t for s in examples for t in s.tokens]], tf.string)
            ).flat_values.numpy()
        ]
        unseen = [word not in vocabulary for word in normalized]
        correct = [g == p for g, p in zip(flat_gold, flat_predicted, strict=True)]
        count = sum(unseen)
        result["unseen_tokens"] = count
        result["unseen_accuracy"] = (
            sum(c for c, u in zip(correct, unseen, strict=True) if u) / count if count else None
        )
    if is_bio(tag_names):
        entities = entity_report(gold, predicted, output_dict=True, zero_division=0)
        overall = entities["micro avg"]
        result.update(
            precision=float(overall["precision"]),
            recall=float(overall["recall"]),
            f1=float(overall["f1-score"]),
            per_type={
                name: {
                    "precision": float(row["precision"]),
                    "recall": float(row["recall"]),
                    "f1": float(row["f1-score"]),
                    "support": int(row["support"]),
                }
                for name, row in entities.items()
                if not name.endswith(" avg")
            },
        )
    return result
