"""Captioning: image -> text, on the task interface (``apps/common/task.py``).

    seqapps train captioning [--data FOLDER|captions.txt] [--arch lstm|transformer]
                             [--encoder MobileNetV2 --encoder-weights W.h5 [--fine-tune-encoder]]
    seqapps evaluate captioning --model runs/captioning --data FOLDER [--split test]
    seqapps predict captioning --model saved_models/captioning IMAGE.jpg ... [--search greedy]
                               [--attention-plot attention.png]
    seqapps export captioning --model runs/captioning [--beam-width 3]

Data (``apps/captioning/data.py``): Flickr8k-style folders, ``captions.txt`` CSV files, or
built-in generated pictures of coloured shapes with captions from a small grammar. Images are
decoded (JPEG, PNG, GIF, BMP), their centre square cropped and resized to ``image_size``, inside
the graph: the export takes encoded image bytes, as TF Serving's REST API sends them
(``{"b64": ...}`` for the input ``image_bytes``). Words: lower-cased, punctuation split off, a
vocabulary of the frequent words of the training captions. Model (``apps/captioning/model.py``):
a CNN encoder (or a ``keras.applications`` backbone from weights on disk) and the LSTM decoder
with visual attention of Show, Attend and Tell (Xu et al. 2015), or a transformer decoder. Each
batch holds every caption of its images. Decoding (``apps/common/decoding.py``): greedy and beam
search inside the SavedModel. Metrics: corpus BLEU-1 to BLEU-4 of the generated captions against
all reference captions of each image (sacreBLEU, lower-cased), and the share of distinct
captions (a model that collapsed writes one caption for every image). Figures:
``bench/RESULTS.md``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import MappingProxyType

import keras
import numpy as np
import sacrebleu
import tensorflow as tf

from apps.captioning import APP
from apps.captioning.data import CaptionedImage, load_caption_data
from apps.captioning.model import (
    CAPTIONS_INPUT,
    FEATURES_INPUT,
    IMAGES_INPUT,
    Captioner,
    build_backbone,
    build_captioner,
    caches_features,
    compile_captioner,
    default_hyperparameters,
    trains_encoder,
)
from apps.common import generation
from apps.common.datasets import Splits
from apps.common.errors import SeqappsError
from apps.common.generation import GREEDY
from apps.common.pipeline import PREFETCHED_BATCHES, without_autotuning
from apps.common.predictor import Predictor
from apps.common.progress import Progress
from apps.common.task import SERVING_DEFAULT, Task
from apps.common.text import (
    END_ID,
    GENERATION_TOKENS,
    PADDING_ID,
    START_ID,
    UNKNOWN_ID,
    TextEncoder,
    Tokenizer,
    build_vocabulary,
    read_vocabulary,
    write_vocabulary,
)

VOCABULARY_FILE = "vocabulary.txt"
ENCODER_WEIGHTS_FILE = "encoder.weights.h5"  # a frozen backbone's weights, copied into the run
ATTENTION = "attention"
# Never generated: padding, the start token, and the unknown word.
FORBIDDEN_IDS = (PADDING_ID, UNKNOWN_ID, START_ID)
IMAGE_BATCH = 64  # images decoded, encoded or captioned together
# The first bytes of the formats tf.io.decode_image reads.
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
FORMATS = "JPEG, PNG, GIF or BMP"
# The report warns when fewer than 5 % of the captions of 20 images or more are different.
COLLAPSE_SHARE = 0.05
COLLAPSE_IMAGES = 20


class CaptioningPreprocessor(tf.Module):
    """Encoded images to the model's encoder inputs, captions to word ids and back.

    ``decode_images`` is the one image path of training and serving: decode, crop the centre
    square, resize (bilinear, antialiased) to ``image_size`` and round to ``uint8``. A frozen
    backbone (``caches_features``) is part of it: ``encoder_inputs`` gives its features.
    """

    def __init__(self, run_dir: Path, hyperparameters: dict):
        super().__init__(name="captioning_preprocessor")
        run_dir = Path(run_dir)
        # Read-only and untracked: the decoding settings the serving functions use.
        self.hyperparameters = MappingProxyType(dict(hyperparameters))
        self.image_size = hyperparameters["image_size"]
        self.max_caption_tokens = hyperparameters["max_caption_tokens"]
        self.text = TextEncoder(
            run_dir / VOCABULARY_FILE,
            caption_tokenizer(hyperparameters),
            add_start=True,
            add_end=True,
            name="caption_words",
        )
        self.vocabulary_size = self.text.vocabulary_size
        self.backbone = None
        if caches_features(hyperparameters):
            self.backbone = build_backbone(hyperparameters, None)
            self.backbone.load_weights(run_dir / ENCODER_WEIGHTS_FILE)
        vocabulary = read_vocabulary(run_dir / VOCABULARY_FILE)
        # Horizontal flips swap these words (-1: not in the vocabulary, nothing to swap).
        self.left_right = tuple(
            vocabulary.index(word) if word in vocabulary else -1 for word in ("left", "right")
        )

    @property
    def encoder_input_name(self) -> str:
        return FEATURES_INPUT if self.backbone is not None else IMAGES_INPUT

    def decode_images(self, image_bytes: tf.Tensor) -> tf.Tensor:
        """``string[b]`` of encoded images -> ``uint8[b, S, S, 3]``; bytes of no known format
        are an error that names the first such element."""
        image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
        known = tf.zeros(tf.shape(image_bytes), tf.bool)
        for signature in IMAGE_SIGNATURES:
            start = tf.strings.substr(image_bytes, 0, len(signature), unit="BYTE")
            known |= tf.equal(start, signature)
        # A known sentinel at the end: an empty batch has a first "unknown" element too.
        sentinel = tf.concat([known, [False]], axis=0)
        first_unknown = tf.argmin(tf.cast(sentinel, tf.int32), output_type=tf.int32)
        shown = tf.concat([image_bytes, [""]], axis=0)[first_unknown]
        check = tf.debugging.Assert(
            tf.reduce_all(known),
            [
                f"image_bytes: not a {FORMATS} image: element",
                first_unknown,
                "begins with",
                tf.strings.substr(shown, 0, 8, unit="BYTE"),
            ],
        )
        size = self.image_size

        def decode(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            height, width = tf.shape(image)[0], tf.shape(image)[1]
            side = tf.minimum(height, width)
            square = tf.image.crop_to_bounding_box(
                image, (height - side) // 2, (width - side) // 2, side, side
            )
            resized = tf.image.resize(square, [size, size], method="bilinear", antialias=True)
            return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

        with tf.control_dependencies([check]):
            return tf.map_fn(
                decode,
                tf.identity(image_bytes),
                fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8),
            )

    def encoder_inputs(self, images: tf.Tensor) -> tf.Tensor:
        """Decoded images -> the model's encoder input: the images, or a frozen backbone's
        features ``float32[b, L, C]``."""
        if self.backbone is None:
            return images
        return tf.cast(self.backbone(images, training=False), tf.float32)

    def captions(self, tokens: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """Generated ids ``[b, t]`` with their lengths -> ``string[b]``."""
        valid = tf.sequence_mask(lengths, tf.shape(tokens)[1])
        return self.text.decode(tf.where(valid, tokens, PADDING_ID))

    def words(self, tokens: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """Ids ``[b, t]`` -> their words, ``""`` from ``lengths`` on."""
        words = self.text.tokens_by_id.lookup(tf.cast(tokens, tf.int64))
        return tf.where(tf.sequence_mask(lengths, tf.shape(tokens)[1]), words, "")


def caption_tokenizer(hyperparameters: dict) -> Tokenizer:
    return Tokenizer(
        hyperparameters["max_caption_tokens"],
        lowercase=True,
        split_punctuation=True,
        html_line_breaks=False,
    )


class CaptioningTask(Task):
    app = APP
    monitor = "val_bleu4"
    monitor_mode = "max"

    def __init__(self):
        # Decoded images (or cached features) of the splits this process has encoded.
        self._encoded: dict[int, tuple[object, np.ndarray]] = {}

    # === Data ===

    def load_data(self, path: Path | None, options: dict, *, seed: int, for_training: bool):
        return load_caption_data(
            None if path is None else Path(path), seed=seed, for_training=for_training
        )

    # === Preprocessing ===

    def learn_preprocessing(self, data: Splits, hyperparameters: dict, run_dir: Path) -> None:
        vocabulary_path = run_dir / VOCABULARY_FILE
        if not vocabulary_path.exists():
            train = data.split("train")
            per_image = hyperparameters["max_captions_per_image"]
            captions = [c for image in train for c in image.captions[:per_image]]
            tokens = caption_tokenizer(hyperparameters).python_tokens(
                captions, what="reading training captions"
            )
            vocabulary = build_vocabulary(
                tokens,
                hyperparameters["vocabulary_size"],
                hyperparameters["min_word_count"],
                reserved=GENERATION_TOKENS,
            )
            print(f"vocabulary: {len(vocabulary):,} words", flush=True)
            write_vocabulary(vocabulary, vocabulary_path)
        weights_path = run_dir / ENCODER_WEIGHTS_FILE
        if caches_features(hyperparameters) and not weights_path.exists():
            source = hyperparameters["encoder_weights"]
            if not source:
                print(
                    f"warning: encoder {hyperparameters['encoder']} has no --encoder-weights: its "
                    "features are those of random, frozen weights",
                    file=sys.stderr,
                )
            backbone = build_backbone(hyperparameters, source or None)
            # save_weights insists on the .weights.h5 suffix: the temporary name keeps it.
            temporary = run_dir / f"tmp-{ENCODER_WEIGHTS_FILE}"
            backbone.save_weights(temporary)
            os.replace(temporary, weights_path)

    def load_preprocessor(self, run_dir: Path, hyperparameters: dict) -> CaptioningPreprocessor:
        return CaptioningPreprocessor(run_dir, hyperparameters)

    # === tf.data pipeline ===

    def encoder_inputs(
        self, examples: Sequence[CaptionedImage], preprocessor: CaptioningPreprocessor
    ) -> np.ndarray:
        """Every image of ``examples`` decoded (and through a frozen backbone), computed once
        per split and process."""
        key = id(examples)
        if key in self._encoded and self._encoded[key][0] is examples:
            return self._encoded[key][1]
        batches = []
        what = "encoding images" if preprocessor.backbone is not None else "decoding images"
        # One graph for every batch: eagerly, map_fn decodes image by image in Python.
        encode = tf.function(
            lambda data: preprocessor.encoder_inputs(preprocessor.decode_images(data)),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
        with Progress(what, len(examples), "images") as progress:
            for start in range(0, len(examples), IMAGE_BATCH):
                batch = examples[start : start + IMAGE_BATCH]
                data = [image.read() for image in batch]
                try:
                    batches.append(encode(tf.constant(data, tf.string)).numpy())
                except tf.errors.InvalidArgumentError as error:
                    raise SeqappsError(undecodable(batch, preprocessor, error)) from None
                progress.advance(len(batch))
        encoded = np.concatenate(batches)
        # Training reads two splits over and over (train and validation): keep the last two.
        self._encoded = {**dict(list(self._encoded.items())[-1:]), key: (examples, encoded)}
        return encoded

    def dataset(
        self,
        examples: Sequence[CaptionedImage],
        preprocessor: CaptioningPreprocessor,
        hyperparameters: dict,
        batch_size: int,
        *,
        shuffle_seed: int | None = None,
    ) -> tf.data.Dataset:
        """Batches of ``({encoder input, caption_ids: [b, K, T]}, next words [b, K, T])``:
        every image once, with its first K captions (rows of padding where it has fewer);
        training batches (``shuffle_seed``) shuffled and, with ``augment``, flipped and
        shifted."""
        inputs = self.encoder_inputs(examples, preprocessor)
        captions = caption_grid(examples, preprocessor, hyperparameters["max_captions_per_image"])
        batches = tf.data.Dataset.from_tensor_slices((inputs, captions))
        if shuffle_seed is not None:
            batches = batches.shuffle(
                len(examples), seed=shuffle_seed, reshuffle_each_iteration=True
            )
            if hyperparameters["augment"] and trains_encoder(hyperparameters):
                seeds = tf.data.Dataset.random(seed=shuffle_seed).batch(4, drop_remainder=True)
                augment = augmenter(preprocessor)
                batches = tf.data.Dataset.zip((batches, seeds)).map(
                    lambda pair, seed: augment(*pair, seed), num_parallel_calls=2
                )
        name = preprocessor.encoder_input_name

        def model_batch(encoder_input, ids):
            # The batch's longest caption, [START] and [END] included: little padding.
            longest = tf.reduce_max(tf.reduce_sum(tf.cast(ids != PADDING_ID, tf.int32), -1))
            ids = ids[:, :, :longest]
            return {name: encoder_input, CAPTIONS_INPUT: ids[:, :, :-1]}, ids[:, :, 1:]

        batches = batches.batch(batch_size).map(model_batch).prefetch(PREFETCHED_BATCHES)
        return without_autotuning(batches)

    # === Model ===

    def default_hyperparameters(self, architecture: str) -> dict:
        return default_hyperparameters(architecture)

    def build_model(self, hyperparameters: dict, preprocessor: CaptioningPreprocessor):
        return build_captioner(hyperparameters, preprocessor.vocabulary_size)

    def compile_model(self, model: keras.Model, hyperparameters: dict) -> keras.Model:
        return compile_captioner(model, hyperparameters)

    def epoch_metrics(self, model, preprocessor, hyperparameters, examples) -> dict:
        """BLEU-4 and the distinct share of greedy captions of the validation images (beam
        search costs more and ranks epochs alike)."""
        # One graph per model for the whole run (its weights change, not its structure).
        if getattr(self, "_validated_model", None) is not model:
            self._validated_model = model
            self._greedy = tf.function(
                caption_function(model, preprocessor, hyperparameters, GREEDY)
            )
        inputs = self.encoder_inputs(examples, preprocessor)
        captions = []
        for start in range(0, len(inputs), IMAGE_BATCH):
            output = self._greedy(tf.constant(inputs[start : start + IMAGE_BATCH]))
            captions += [c.decode("utf-8") for c in output["caption"].numpy()]
        scores = caption_scores(captions, [image.captions for image in examples])
        return {"bleu4": scores["bleu4"], "distinct": scores["distinct"]}

    # === Serving ===

    def serving_functions(
        self, model: keras.Model, preprocessor: CaptioningPreprocessor, options=None
    ) -> dict:
        """``serving_default(image_bytes: string[None]) -> {caption: string[None]}`` (beam
        search), ``greedy`` (the same signature, greedy search) and ``attention(image_bytes)``
        -> ``{caption, words: string[None, T], attention: float32[None, T, rows, columns]}``
        (for each generated word and the end token, the decoder's attention over the image
        grid as it chose that word)."""
        hyperparameters = generation.decoding_hyperparameters(preprocessor.hyperparameters, options)
        image_bytes = tf.TensorSpec([None], tf.string, name="image_bytes")
        beam = caption_function(model, preprocessor, hyperparameters, generation.BEAM)
        greedy = caption_function(model, preprocessor, hyperparameters, GREEDY)
        captioner = Captioner(model)

        def encoded(image_bytes):
            return preprocessor.encoder_inputs(preprocessor.decode_images(image_bytes))

        def unless_empty(image_bytes, answer, empty: dict) -> dict:
            """``answer(image_bytes)``, or ``empty`` for a request of no images (convolutions
            and batch normalization cannot run on a batch of 0)."""
            return tf.cond(tf.size(image_bytes) > 0, lambda: answer(image_bytes), lambda: empty)

        no_captions = {"caption": tf.zeros([0], tf.string)}

        @tf.function(input_signature=[image_bytes])
        def serve(image_bytes):
            return unless_empty(
                image_bytes,
                lambda data: {"caption": beam(encoded(data))["caption"]},
                no_captions,
            )

        @tf.function(input_signature=[image_bytes])
        def serve_greedy(image_bytes):
            return unless_empty(
                image_bytes,
                lambda data: {"caption": greedy(encoded(data))["caption"]},
                no_captions,
            )

        def attention_maps(image_bytes):
            inputs = encoded(image_bytes)
            result = beam(inputs)
            tokens, lengths = result["tokens"], result["lengths"]
            # The decoder reads [START] w1 ... wn and chooses w1 ... wn [END]: n + 1 rows.
            batch = tf.shape(tokens)[0]
            read = tf.concat([tf.fill([batch, 1], START_ID), tokens], axis=1)
            read = read * tf.cast(tf.sequence_mask(lengths + 1, tf.shape(read)[1]), tf.int32)
            maps = captioner.attention_maps(captioner.features(inputs), read)  # [b, T, L]
            grid = [captioner.rows, captioner.columns]
            maps = tf.reshape(maps, [batch, tf.shape(read)[1], *grid])
            chosen = tf.pad(tokens, [[0, 0], [0, 1]])
            chosen = tf.where(tf.sequence_mask(lengths, tf.shape(chosen)[1]), chosen, END_ID)
            return {
                "caption": result["caption"],
                "words": preprocessor.words(chosen, lengths + 1),
                "attention": maps,
            }

        @tf.function(input_signature=[image_bytes])
        def attention(image_bytes):
            empty = {
                **no_captions,
                "words": tf.zeros([0, 1], tf.string),
                "attention": tf.zeros([0, 1, captioner.rows, captioner.columns]),
            }
            return unless_empty(image_bytes, attention_maps, empty)

        return {SERVING_DEFAULT: serve, GREEDY: serve_greedy, ATTENTION: attention}

    def warmup_requests(self):
        images = warmup_images()
        return [
            (SERVING_DEFAULT, {"image_bytes": images}),
            (GREEDY, {"image_bytes": images}),
            (ATTENTION, {"image_bytes": images[:2]}),
        ]

    def export_metadata(self, preprocessor: CaptioningPreprocessor, options=None) -> dict:
        return {
            "image_size": preprocessor.image_size,
            "vocabulary_size": preprocessor.vocabulary_size,
            "max_caption_tokens": preprocessor.max_caption_tokens,
            "image_formats": FORMATS,
            **({"beam_width": options["beam_width"]} if (options or {}).get("beam_width") else {}),
        }

    # === Report ===

    def evaluate(self, predictor: Predictor, examples: Sequence[CaptionedImage], options=None):
        options = options or {}
        references = [image.captions for image in examples]

        def generate(signature: str, search: str) -> list[str]:
            return caption_images(predictor, examples, signature, f"captioning ({search} search)")

        scores, outputs = generation.score_searches(
            predictor, options, generate, lambda captions: caption_scores(captions, references)
        )
        report = {
            "examples": len(examples),
            "references": sum(map(len, references)),
            **scores,
        }
        path = generation.outputs_path(predictor, options, "captions", "captions")
        if path is not None:
            write_captions(path, examples, outputs)
            report["captions_file"] = str(path)
        return report

    def format_report(self, report: dict) -> str:
        search = report["search"] + (
            f" (width {report['beam_width']})" if report.get("beam_width") else ""
        )
        bleu = "  ".join(f"{report[f'bleu{n}']:.2f}" for n in range(1, 5))
        lines = [
            f"images    {report['examples']} ({report['references']} reference captions)",
            f"BLEU-1..4 {bleu}  {search}",
            f"distinct  {report['distinct']:.1%} of the captions" + collapse_note(report),
        ]
        if "greedy_bleu4" in report:
            greedy = "  ".join(f"{report[f'greedy_bleu{n}']:.2f}" for n in range(1, 5))
            lines += [
                f"BLEU-1..4 {greedy}  greedy",
                f"distinct  {report['greedy_distinct']:.1%} greedy",
            ]
        lines.append(f"sacreBLEU {report['bleu_signature']}")
        if report.get("captions_file"):
            lines.append(f"outputs   {report['captions_file']}")
        return "\n".join(lines)

    # === Prediction ===

    def prediction_inputs(self, lines: Sequence[str], options: dict) -> dict[str, list]:
        return {"image_bytes": [read_image_file(line) for line in lines]}

    def predict_lines(
        self, predictor: Predictor, lines: Iterable[str], options: dict
    ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        signature = generation.SEARCH_SIGNATURES[options.get("search") or generation.BEAM]
        plot = options.get("attention_plot")
        for batch in predictor.batched(lines, IMAGE_BATCH):
            if plot:
                draw_attention(predictor, batch[0], Path(plot))
                plot = None
            inputs = self.prediction_inputs(batch, options)
            yield from zip(batch, predictor.answer(inputs, signature), strict=True)

    def format_prediction(self, line: str, outputs: dict[str, np.ndarray]) -> str:
        return f"{line}\t{outputs['caption'].decode('utf-8', errors='replace')}"


# === Data to arrays ===


def undecodable(batch: Sequence[CaptionedImage], preprocessor, error: Exception) -> str:
    """Names the images of ``batch`` that do not decode (decoding each one alone)."""
    bad = []
    for image in batch:
        try:
            preprocessor.decode_images(tf.constant([image.read()], tf.string))
        except tf.errors.InvalidArgumentError as own_error:
            bad.append(f"{image.path or image.name}: {own_error.message.splitlines()[0][:120]}")
    shown = "; ".join(bad[:5]) or error.message.splitlines()[0]
    return f"cannot decode {len(bad) or 'an'} image(s): {shown}"


def caption_grid(
    examples: Sequence[CaptionedImage], preprocessor: CaptioningPreprocessor, per_image: int
) -> np.ndarray:
    """``int32[images, K, T]``: ``[START] words [END]`` of each image's first K captions
    (rows of padding where an image has fewer)."""
    captions = [image.captions[:per_image] for image in examples]
    flat = [caption for image in captions for caption in image]
    encoded = []
    with Progress("reading captions", len(flat), "captions") as progress:
        for start in range(0, len(flat), 4096):
            ids = preprocessor.text.encode(tf.constant(flat[start : start + 4096], tf.string))
            encoded.append(tf.RaggedTensor.from_tensor(ids, padding=PADDING_ID))
            progress.advance(int(ids.shape[0]))
    rows = tf.concat(encoded, axis=0).to_tensor(PADDING_ID).numpy() if encoded else None
    most = max((len(c) for c in captions), default=1)
    grid = np.zeros((len(examples), max(1, most), 1 if rows is None else rows.shape[1]), np.int32)
    row = 0
    for index, image in enumerate(captions):
        grid[index, : len(image)] = rows[row : row + len(image)]
        row += len(image)
    return grid


def augmenter(preprocessor: CaptioningPreprocessor):
    """``(image uint8[S, S, 3], ids [K, T], seed int64[4]) -> (image, ids)``: a horizontal flip
    half of the time, which swaps the words "left" and "right" in the captions, then a shift of
    up to an eighth of the side (reflected borders)."""
    left, right = preprocessor.left_right
    size = preprocessor.image_size
    margin = max(1, size // 8)

    def augment(image, ids, seed):
        seeds = tf.reshape(seed, [2, 2])
        flip = tf.random.stateless_uniform([], seed=seeds[0]) < 0.5
        image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
        swapped = tf.where(ids == left, right, tf.where(ids == right, left, ids))
        ids = tf.where(flip, swapped, ids)
        padded = tf.pad(image, [[margin, margin], [margin, margin], [0, 0]], mode="REFLECT")
        image = tf.image.stateless_random_crop(padded, [size, size, 3], seed=seeds[1])
        return image, ids

    return augment


# === Decoding, shared by validation, serving and evaluation ===


def caption_function(model, preprocessor: CaptioningPreprocessor, hyperparameters, search):
    """``encoder inputs [b, ...]`` -> ``{caption: string[b], tokens, lengths}`` with greedy or
    beam search, at most ``max_caption_tokens`` words."""
    captioner = Captioner(model)
    max_length = hyperparameters["max_caption_tokens"] + 1  # the words and the end token

    def caption(inputs):
        state, context = captioner.start(captioner.features(inputs), max_length)
        common = {
            "max_length": max_length,
            "start_id": START_ID,
            "end_id": END_ID,
            "forbidden_ids": FORBIDDEN_IDS,
        }
        result = generation.search(
            search, captioner.step, state, context, hyperparameters, **common
        )
        tokens, lengths = result["tokens"], result["lengths"]
        return {
            "caption": preprocessor.captions(tokens, lengths),
            "tokens": tokens,
            "lengths": lengths,
        }

    return caption


def caption_images(
    predictor: Predictor, examples: Sequence[CaptionedImage], signature: str, what: str
) -> list[str]:
    """The captions ``signature`` writes for ``examples``' image bytes, in batches."""
    captions: list[str] = []
    with Progress(what, len(examples), "images") as progress:
        for start in range(0, len(examples), IMAGE_BATCH):
            batch = examples[start : start + IMAGE_BATCH]
            outputs = predictor.outputs(
                {"image_bytes": [image.read() for image in batch]}, signature
            )
            captions += [c.decode("utf-8", errors="replace") for c in outputs["caption"]]
            progress.advance(len(batch))
    return captions


def caption_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Corpus BLEU-1 to BLEU-4 against every reference of each image (sacreBLEU, lower-cased,
    13a tokenization), and the share of distinct captions among ``hypotheses``."""
    most = max((len(r) for r in references), default=1)
    # sacreBLEU's streams: the k-th reference of every image (None where an image has fewer).
    streams = [[r[k] if k < len(r) else None for r in references] for k in range(most)]
    scores = {}
    for order in range(1, 5):
        bleu = sacrebleu.metrics.BLEU(max_ngram_order=order, lowercase=True)
        scores[f"bleu{order}"] = bleu.corpus_score(list(hypotheses), streams).score
    scores["bleu_signature"] = str(bleu.get_signature())
    scores["distinct"] = len(set(hypotheses)) / max(1, len(hypotheses))
    return scores


def write_captions(path: Path, examples: Sequence[CaptionedImage], outputs: dict) -> None:
    """One line per image: its name, each search's caption, then its references."""

    def cell(text: str) -> str:
        return " ".join(text.split())  # no tab or newline inside a cell

    searches = list(outputs)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        file.write("\t".join(["image", *searches, "references"]) + "\n")
        for index, image in enumerate(examples):
            row = [cell(image.name), *(cell(outputs[s][index]) for s in searches)]
            row.append(" | ".join(cell(c) for c in image.captions))
            file.write("\t".join(row) + "\n")
    os.replace(temporary, path)


def collapse_note(report: dict) -> str:
    """A warning after the distinct share when nearly every image gets the same caption."""
    images = report["examples"]
    if images >= COLLAPSE_IMAGES and report["distinct"] < COLLAPSE_SHARE:
        return "  (collapsed: nearly one caption for every image; train longer or check the data)"
    return ""


# === Images from files, for predict and warm-up ===


def read_image_file(line: str) -> bytes:
    path = Path(line.strip())
    try:
        return path.read_bytes()
    except OSError as error:
        raise SeqappsError(f"{path}: cannot read the image ({error.strerror})") from None


def warmup_images() -> list[bytes]:
    """Images TF Serving replays when it loads the export: a PNG, a JPEG, a grey PNG, a PNG
    with an alpha channel, a tall and a one-pixel image (every path of the decoder)."""

    def picture(height, width, channels):
        rows, columns = np.mgrid[0:height, 0:width]
        base = np.stack([rows * 255 // max(1, height), columns * 255 // max(1, width)], -1)
        image = np.concatenate([base, np.full((height, width, 1), 128)], -1)[..., :channels]
        if channels == 4:
            image = np.concatenate([image[..., :3], np.full((height, width, 1), 200)], -1)
        return tf.constant(image.astype(np.uint8))

    return [
        tf.io.encode_png(picture(48, 64, 3)).numpy(),
        tf.io.encode_jpeg(picture(80, 60, 3)).numpy(),
        tf.io.encode_png(picture(40, 40, 1)).numpy(),
        tf.io.encode_png(picture(30, 50, 4)).numpy(),
        tf.io.encode_png(picture(200, 20, 3)).numpy(),
        tf.io.encode_png(picture(1, 1, 3)).numpy(),
    ]


def draw_attention(predictor: Predictor, image_file: str, path: Path) -> None:
    """The image with the decoder's attention for each word of its caption, one panel a word
    (``attention`` signature), into ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    data = read_image_file(image_file)
    outputs = predictor.answer({"image_bytes": [data]}, ATTENTION)[0]
    words = [w.decode("utf-8", errors="replace") for w in outputs["words"] if w]
    maps = outputs["attention"][: len(words)]
    image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    side = min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    image = image[top : top + side, left : left + side]  # the square the model saw
    columns = min(5, len(words) + 1)
    rows = -(-(len(words) + 1) // columns)
    figure, axes = pyplot.subplots(
        rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title("image", fontsize=9)
    for axis, word, weights in zip(axes.flat[1:], words, maps, strict=False):
        axis.imshow(image)
        axis.imshow(
            weights, cmap="magma", alpha=0.6, extent=(0, side, side, 0), interpolation="bilinear"
        )
        axis.set_title(word, fontsize=9)
    figure.suptitle(outputs["caption"].decode("utf-8", errors="replace")[:90], fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    print(f"attention maps: {path}", file=sys.stderr)
