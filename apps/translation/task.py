"""Translation: text -> text, on the task interface (``apps/common/task.py``).

    seqapps train translation [--data FOLDER|PAIRS.tsv] [--source en --target de]
                              [--arch transformer|lstm] [--out runs/translation]
    seqapps evaluate translation --model runs/translation --data FOLDER [--split test_2016_flickr]
    seqapps predict translation --model saved_models/translation "A man is riding a bicycle ."
                                [--search greedy] [--attention-plot attention.png]
    seqapps export translation --model runs/translation [--beam-width 4]

Data (``apps/translation/data.py``): folders of line-aligned pairs (Multi30k layout), tab-separated
pair files, or built-in generated English-German. Subwords: SentencePiece (Kudo & Richardson 2018,
https://arxiv.org/abs/1808.06226), a unigram model learned from the training split, shared by both
languages by default; tokenization and detokenization run inside the graph through
tensorflow-text's SentencePiece ops, so the export takes and returns raw text. Model
(``apps/translation/model.py``): a transformer (default) or an LSTM encoder-decoder with attention.
Decoding (``apps/common/decoding.py``): greedy and beam search with the decoder's cache, inside
the SavedModel. Metrics: corpus BLEU and chrF of the detokenized output against the raw
references, computed by sacreBLEU (Post 2018, https://aclanthology.org/W18-6319/), whose
signature the report prints. Figures: ``bench/RESULTS.md``.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import MappingProxyType

import keras
import numpy as np
import sacrebleu
import tensorflow as tf
import tensorflow_text as tf_text

from apps.common import generation
from apps.common.generation import GREEDY
from apps.common.pipeline import bucketed_batches
from apps.common.predictor import Predictor
from apps.common.progress import Progress
from apps.common.task import SERVING_DEFAULT, Task
from apps.common.text import END_ID, PADDING_ID, START_ID, UNKNOWN_ID, Tokenizer
from apps.translation import APP
from apps.translation.data import SentencePair, TranslationData, load_translation_data
from apps.translation.model import (
    build_translator,
    compile_translator,
    default_hyperparameters,
    translator_for,
)

SHARED_SUBWORDS_FILE = "subwords.model"
SOURCE_SUBWORDS_FILE = "source_subwords.model"
TARGET_SUBWORDS_FILE = "target_subwords.model"
ATTENTION = "attention"
# Never generated: padding, the start token, and the unknown piece (it would print as " ⁇ ").
FORBIDDEN_IDS = (PADDING_ID, UNKNOWN_ID, START_ID)
EVALUATION_BATCH = 64  # sentences decoded together (sorted by length: little padding)
# Bytes read of each input: enough for max_source_tokens subwords of long words, and a
# megabyte request costs no more than a sentence.
BYTES_PER_SUBWORD = 16
# TF Serving replays these when it loads the export, and `seqapps export` checks them in a fresh
# process: an empty string, invalid UTF-8 and a long text (cut to max_source_tokens) among them.
WARMUP_TEXTS = [
    b"A man is riding a bicycle.",
    b"",
    b"\xff\xfe not UTF-8 \xc3",
    b"Two dogs play in the snow near a house. " * 500,
]  # bytes: TensorFlow takes a list of strings all encoded or all not


def subword_files(hyperparameters: dict) -> tuple[str, str]:
    """The SentencePiece model files of the source and of the target (the same when shared)."""
    if hyperparameters["shared_vocabulary"]:
        return SHARED_SUBWORDS_FILE, SHARED_SUBWORDS_FILE
    return SOURCE_SUBWORDS_FILE, TARGET_SUBWORDS_FILE


def learn_subwords(texts: Iterable[str], vocabulary_size: int, path: Path, what: str) -> None:
    """Trains a SentencePiece unigram model on ``texts`` and writes it atomically to ``path``.

    Ids 0-3 are padding, unknown, start and end, as in ``apps/common/text.py``. The vocabulary
    size is a soft limit: a small corpus gets the pieces it has.
    """
    import sentencepiece

    texts = [text for text in texts if text]
    print(f"learning {vocabulary_size} subwords ({what}) from {len(texts)} sentences", flush=True)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocabulary_size,
        hard_vocab_limit=False,
        model_type="unigram",
        pad_id=PADDING_ID,
        unk_id=UNKNOWN_ID,
        bos_id=START_ID,
        eos_id=END_ID,
        character_coverage=1.0,
        normalization_rule_name="nmt_nfkc",
        # Long sentences are kept (the default drops those over 4192 bytes).
        max_sentence_length=1 << 16,
        input_sentence_size=2_000_000,
        shuffle_input_sentence=True,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(model.getvalue())
    os.replace(temporary, path)


class SubwordModel(tf.Module):
    """One SentencePiece model inside the graph: text <-> subword ids, and ids -> pieces.

    tensorflow-text's ``FastSentencepieceTokenizer`` holds the model as a constant of the graph
    (the export carries it there), so it needs no resource: its ``SentencepieceTokenizer`` keeps
    a kernel-owned resource that every ``tf.random.set_seed`` destroys. It tokenizes exactly as
    the ``sentencepiece`` library, but has no byte fallback: characters never seen in training
    are the unknown piece, which the searches never generate.
    """

    def __init__(self, path: Path, name: str):
        import sentencepiece

        super().__init__(name=name)
        model = Path(path).read_bytes()
        self.tokenizer = tf_text.FastSentencepieceTokenizer(model)
        processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        self.vocabulary_size = processor.get_piece_size()
        self.pieces = tf.constant([processor.id_to_piece(i) for i in range(self.vocabulary_size)])

    def id_to_string(self, ids: tf.Tensor) -> tf.Tensor:
        return tf.gather(self.pieces, ids)


def ragged_like(column: tf.Tensor, ragged: tf.RaggedTensor) -> tf.RaggedTensor:
    """A dense ``[b, 1]`` column as a ragged tensor that concatenates with ``ragged``."""
    return tf.RaggedTensor.from_tensor(column, row_splits_dtype=ragged.row_splits.dtype)


class TranslationPreprocessor(tf.Module):
    """Raw text to source ids, generated ids back to text; the subword models are assets."""

    def __init__(self, run_dir: Path, hyperparameters: dict):
        super().__init__(name="translation_preprocessor")
        run_dir = Path(run_dir)
        source_file, target_file = subword_files(hyperparameters)
        self.source = SubwordModel(run_dir / source_file, "source_subwords")
        self.target = (
            self.source
            if source_file == target_file
            else SubwordModel(run_dir / target_file, "target_subwords")
        )
        # Read-only and untracked: the decoding settings the serving functions use.
        self.hyperparameters = MappingProxyType(dict(hyperparameters))
        self.max_source_tokens = hyperparameters["max_source_tokens"]
        self.max_target_tokens = hyperparameters["max_target_tokens"]
        # Cuts and repairs raw text (bounded bytes, valid UTF-8); SentencePiece normalizes.
        self.normalizer = Tokenizer(
            self.max_source_tokens,
            lowercase=False,
            split_punctuation=False,
            html_line_breaks=False,
            bytes_per_token=BYTES_PER_SUBWORD,
        )

    def source_ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """``string[b]`` -> ragged ids: the first ``max_source_tokens`` subwords, then the end
        token (so that an empty text is one step long, not an empty sequence)."""
        pieces = self.source.tokenizer.tokenize(self.normalizer.normalize(texts))
        pieces = pieces[:, : self.max_source_tokens]
        end = tf.fill([tf.shape(texts)[0], 1], END_ID)
        return tf.concat([pieces, ragged_like(end, pieces)], axis=1)

    def target_ids(self, texts: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
        """References -> ``(decoder inputs [START] y..., next tokens y... [END])``."""
        pieces = self.target.tokenizer.tokenize(texts)[:, : self.max_target_tokens]
        batch = tf.shape(texts)[0]
        start = ragged_like(tf.fill([batch, 1], START_ID), pieces)
        end = ragged_like(tf.fill([batch, 1], END_ID), pieces)
        return tf.concat([start, pieces], axis=1), tf.concat([pieces, end], axis=1)

    def detokenize(self, tokens: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """Generated ids ``[b, t]`` with their lengths -> ``string[b]``."""
        return self.target.tokenizer.detokenize(tf.RaggedTensor.from_tensor(tokens, lengths))

    def source_pieces(self, source_ids: tf.Tensor) -> tf.Tensor:
        """Padded source ids -> their pieces, ``""`` on padding."""
        pieces = self.source.id_to_string(source_ids)
        return tf.where(tf.equal(source_ids, PADDING_ID), "", pieces)

    def target_pieces(self, tokens: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        pieces = self.target.id_to_string(tokens)
        valid = tf.sequence_mask(lengths, tf.shape(tokens)[1])
        return tf.where(valid, pieces, "")


class TranslationTask(Task):
    app = APP
    monitor = "val_bleu"
    monitor_mode = "max"

    # === Data ===

    def load_data(
        self, path: Path | None, options: dict, *, seed: int, for_training: bool
    ) -> TranslationData:
        return load_translation_data(
            None if path is None else Path(path),
            source=options.get("source"),
            target=options.get("target"),
            seed=seed,
            for_training=for_training,
        )

    # === Preprocessing ===

    def learn_preprocessing(self, data: TranslationData, hyperparameters: dict, run_dir: Path):
        train = data.split("train")
        size = hyperparameters["vocabulary_size"]
        source_file, target_file = subword_files(hyperparameters)
        languages = f"{data.source_language}, {data.target_language}"
        if source_file == target_file:
            if not (run_dir / source_file).exists():
                texts = [p.source for p in train] + [p.target for p in train]
                learn_subwords(texts, size, run_dir / source_file, f"shared by {languages}")
            return
        if not (run_dir / source_file).exists():
            learn_subwords([p.source for p in train], size, run_dir / source_file, "source")
        if not (run_dir / target_file).exists():
            learn_subwords([p.target for p in train], size, run_dir / target_file, "target")

    def load_preprocessor(self, run_dir: Path, hyperparameters: dict) -> TranslationPreprocessor:
        return TranslationPreprocessor(run_dir, hyperparameters)

    # === tf.data pipeline ===

    def dataset(
        self,
        examples: Sequence[SentencePair],
        preprocessor: TranslationPreprocessor,
        hyperparameters: dict,
        batch_size: int,
        *,
        shuffle_seed: int | None = None,
    ) -> tf.data.Dataset:
        """Batches of ``((source_ids, target_inputs), target_outputs)`` of similar length
        (tokenized once, here, by the graph's own tokenizers)."""
        sources, inputs, outputs = [], [], []
        with Progress("tokenizing", len(examples), "pairs") as progress:
            for start in range(0, len(examples), 4096):
                batch = examples[start : start + 4096]
                sources.append(preprocessor.source_ids(tf.constant([p.source for p in batch])))
                target_inputs, target_outputs = preprocessor.target_ids(
                    tf.constant([p.target for p in batch])
                )
                inputs.append(target_inputs)
                outputs.append(target_outputs)
                progress.advance(len(batch))
        # Padded rows and their lengths (tf.data pads batches of dense tensors only).
        columns = [tf.concat(parts, axis=0) for parts in (sources, inputs, outputs)]
        encoded = tf.data.Dataset.from_tensor_slices(
            tuple((c.to_tensor(PADDING_ID), tf.cast(c.row_lengths(), tf.int32)) for c in columns)
        ).map(lambda *rows: tuple(ids[:length] for ids, length in rows))
        longest = max(hyperparameters["max_source_tokens"], hyperparameters["max_target_tokens"])
        batches = bucketed_batches(
            encoded,
            length=lambda source, target, _: tf.maximum(tf.shape(source)[0], tf.shape(target)[0]),
            max_length=longest + 1,
            batch_size=batch_size,
            padding_values=(PADDING_ID, PADDING_ID, PADDING_ID),
            shuffle_seed=shuffle_seed,
        )
        return batches.map(lambda source, inputs, outputs: ((source, inputs), outputs))

    # === Model ===

    def default_hyperparameters(self, architecture: str) -> dict:
        return default_hyperparameters(architecture)

    def build_model(self, hyperparameters: dict, preprocessor: TranslationPreprocessor):
        return build_translator(
            hyperparameters,
            preprocessor.source.vocabulary_size,
            preprocessor.target.vocabulary_size,
        )

    def compile_model(self, model: keras.Model, hyperparameters: dict) -> keras.Model:
        return compile_translator(model, hyperparameters)

    def epoch_metrics(self, model, preprocessor, hyperparameters, examples) -> dict:
        """Corpus BLEU of greedy translations of the validation split (beam search costs more
        and ranks epochs alike)."""
        # One graph per model for the whole run (its weights change, not its structure).
        if getattr(self, "_validated_model", None) is not model:
            self._validated_model = model
            self._greedy = tf.function(
                translation_function(model, preprocessor, hyperparameters, GREEDY)
            )
        translate = self._greedy
        hypotheses = translate_texts(
            lambda texts: translate(tf.constant(texts))["translation"].numpy(),
            [p.source for p in examples],
            what="validation BLEU",
        )
        bleu = sacrebleu.metrics.BLEU().corpus_score(hypotheses, [[p.target for p in examples]])
        return {"bleu": bleu.score}

    # === Serving ===

    def serving_functions(
        self, model: keras.Model, preprocessor: TranslationPreprocessor, options=None
    ) -> dict:
        """``serving_default(text: string[None]) -> {translation: string[None]}`` (beam
        search), ``greedy`` (the same signature, greedy search) and ``attention(text)`` ->
        ``{translation, source_pieces: string[None, S], translation_pieces: string[None, T],
        attention: float32[None, T, S]}`` (the cross-attention of the beam search's output,
        rows the generated pieces and the end token, columns the source pieces)."""
        hyperparameters = generation.decoding_hyperparameters(preprocessor.hyperparameters, options)
        text = tf.TensorSpec([None], tf.string, name="text")
        beam = translation_function(model, preprocessor, hyperparameters, generation.BEAM)
        greedy = translation_function(model, preprocessor, hyperparameters, GREEDY)
        translator = translator_for(model, hyperparameters)

        @tf.function(input_signature=[text])
        def serve(text):
            return {"translation": beam(text)["translation"]}

        @tf.function(input_signature=[text])
        def serve_greedy(text):
            return {"translation": greedy(text)["translation"]}

        @tf.function(input_signature=[text])
        def attention(text):
            result = beam(text)
            tokens, lengths = result["tokens"], result["lengths"]
            source_ids = result["source_ids"]
            # The decoder reads [START] y1 ... yn and predicts y1 ... yn [END]: n + 1 rows.
            batch = tf.shape(tokens)[0]
            inputs = tf.concat([tf.fill([batch, 1], START_ID), tokens], axis=1)
            inputs = inputs * tf.cast(tf.sequence_mask(lengths + 1, tf.shape(inputs)[1]), tf.int32)
            weights = translator.cross_attention(source_ids, inputs)
            # y1 ... yn, then [END] in every column from n on (beam search pads with 0).
            with_end = tf.pad(tokens, [[0, 0], [0, 1]])
            with_end = tf.where(tf.sequence_mask(lengths, tf.shape(with_end)[1]), with_end, END_ID)
            return {
                "translation": result["translation"],
                "source_pieces": preprocessor.source_pieces(source_ids),
                "translation_pieces": preprocessor.target_pieces(with_end, lengths + 1),
                "attention": weights,
            }

        return {SERVING_DEFAULT: serve, GREEDY: serve_greedy, ATTENTION: attention}

    def warmup_requests(self):
        return [
            (SERVING_DEFAULT, {"text": WARMUP_TEXTS}),
            (GREEDY, {"text": WARMUP_TEXTS}),
            (ATTENTION, {"text": WARMUP_TEXTS[:2]}),
        ]

    def export_metadata(self, preprocessor: TranslationPreprocessor, options=None) -> dict:
        return {
            "max_source_tokens": preprocessor.max_source_tokens,
            "max_target_tokens": preprocessor.max_target_tokens,
            "source_vocabulary_size": preprocessor.source.vocabulary_size,
            "target_vocabulary_size": preprocessor.target.vocabulary_size,
            **({"beam_width": options["beam_width"]} if (options or {}).get("beam_width") else {}),
        }

    # === Report ===

    def evaluate(self, predictor: Predictor, examples: Sequence[SentencePair], options=None):
        options = options or {}
        sources = [p.source for p in examples]
        references = [p.target for p in examples]

        def generate(signature: str, search: str) -> list[str]:
            return translate_texts(
                lambda texts: predictor.outputs({"text": texts}, signature)["translation"],
                sources,
                what=f"translating ({search} search)",
            )

        scores, outputs = generation.score_searches(
            predictor, options, generate, lambda hypotheses: corpus_scores(hypotheses, references)
        )
        report = {"examples": len(examples), **scores}
        path = generation.outputs_path(predictor, options, "translations", "translations")
        if path is not None:
            write_translations(path, sources, references, outputs)
            report["translations_file"] = str(path)
        return report

    def format_report(self, report: dict) -> str:
        search = report["search"] + (
            f" (width {report['beam_width']})" if report.get("beam_width") else ""
        )
        lines = [
            f"sentences {report['examples']}",
            f"BLEU      {report['bleu']:.2f}  {search}",
            f"chrF      {report['chrf']:.2f}",
        ]
        if "greedy_bleu" in report:
            lines += [
                f"BLEU      {report['greedy_bleu']:.2f}  greedy",
                f"chrF      {report['greedy_chrf']:.2f}  greedy",
            ]
        lines += [
            f"sacreBLEU {report['bleu_signature']}",
            f"          {report['chrf_signature']}",
        ]
        if report.get("translations_file"):
            lines.append(f"outputs   {report['translations_file']}")
        return "\n".join(lines)

    # === Prediction ===

    def predict_lines(
        self, predictor: Predictor, lines: Iterable[str], options: dict
    ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        signature = generation.SEARCH_SIGNATURES[options.get("search") or generation.BEAM]
        plot = options.get("attention_plot")
        for batch in predictor.batched(lines):
            if plot:
                draw_attention(predictor, batch[0], Path(plot))
                plot = None
            yield from zip(batch, predictor.answer({"text": batch}, signature), strict=True)

    def format_prediction(self, line: str, outputs: dict[str, np.ndarray]) -> str:
        return outputs["translation"].decode("utf-8", errors="replace")


# === Decoding, shared by validation, serving and evaluation ===


def translation_function(model, preprocessor: TranslationPreprocessor, hyperparameters, search):
    """``texts string[b]`` -> ``{translation: string[b], tokens, lengths, source_ids}`` with
    greedy or beam search, the output of each text limited to ``max_length_ratio`` times its
    source subwords plus ``max_length_offset`` (and ``max_target_tokens``)."""
    translator = translator_for(model, hyperparameters)

    def translate(texts):
        ragged = preprocessor.source_ids(texts)
        source_ids = ragged.to_tensor(PADDING_ID)
        source_lengths = tf.cast(ragged.row_lengths(), tf.float32) - 1.0  # without the end
        max_lengths = tf.cast(
            tf.math.ceil(
                hyperparameters["max_length_ratio"] * source_lengths
                + hyperparameters["max_length_offset"]
            ),
            tf.int32,
        )
        max_lengths = tf.clip_by_value(max_lengths, 1, preprocessor.max_target_tokens)
        max_length = tf.maximum(tf.reduce_max(max_lengths), 1)
        state, context = translator.encode(source_ids, max_length)
        common = {
            "max_length": max_length,
            "max_lengths": max_lengths,
            "start_id": START_ID,
            "end_id": END_ID,
            "forbidden_ids": FORBIDDEN_IDS,
        }
        result = generation.search(
            search, translator.step, state, context, hyperparameters, **common
        )
        tokens, lengths = result["tokens"], result["lengths"]
        return {
            "translation": preprocessor.detokenize(tokens, lengths),
            "tokens": tokens,
            "lengths": lengths,
            "source_ids": source_ids,
        }

    return translate


def translate_texts(translate_batch, texts: Sequence[str], what: str | None) -> list[str]:
    """``translate_batch(list of texts) -> bytes[b]`` over all ``texts``, in batches of similar
    length (sorted: little padding), returned in the input order; progress lines say ``what``
    (None: no progress)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    translations: list[str] = [""] * len(texts)
    quiet = io.StringIO() if what is None else None
    with Progress(what or "", len(texts), "sentences", stream=quiet) as progress:
        for start in range(0, len(order), EVALUATION_BATCH):
            indices = order[start : start + EVALUATION_BATCH]
            outputs = translate_batch([texts[i] for i in indices])
            for index, output in zip(indices, np.asarray(outputs), strict=True):
                translations[index] = output.decode("utf-8", errors="replace")
            progress.advance(len(indices))
    return translations


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """sacreBLEU's corpus BLEU and chrF (default settings, detokenized text) and signatures."""
    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    return {
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def write_translations(path: Path, sources, references, outputs: dict[str, list[str]]) -> None:
    """One line per sentence: line, source, reference, then each search's translation."""

    def cell(text: str) -> str:
        return " ".join(text.split())  # no tab or newline inside a cell

    searches = list(outputs)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        file.write("\t".join(["line", "source", "reference", *searches]) + "\n")
        for index, (source, reference) in enumerate(zip(sources, references, strict=True)):
            row = [str(index + 1), cell(source), cell(reference)]
            row += [cell(outputs[search][index]) for search in searches]
            file.write("\t".join(row) + "\n")
    os.replace(temporary, path)


def draw_attention(predictor: Predictor, text: str, path: Path) -> None:
    """The cross-attention map of ``text``'s translation (``attention`` signature) as an image."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    outputs = predictor.answer({"text": [text]}, ATTENTION)[0]
    source = [p.decode("utf-8", errors="replace") for p in outputs["source_pieces"] if p]
    target = [p.decode("utf-8", errors="replace") for p in outputs["translation_pieces"] if p]
    weights = outputs["attention"][: len(target), : len(source)]
    figure, axes = pyplot.subplots(
        figsize=(max(4.0, 0.45 * len(source) + 2), max(3.0, 0.4 * len(target) + 1.5))
    )
    axes.imshow(weights, cmap="viridis", vmin=0.0, aspect="auto")
    axes.set_xticks(range(len(source)), source, rotation=90)
    axes.set_yticks(range(len(target)), target)
    axes.set_xlabel("source subwords")
    axes.set_ylabel("translation subwords")
    axes.set_title(outputs["translation"].decode("utf-8", errors="replace")[:80], fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    print(f"attention map: {path}", file=sys.stderr)
