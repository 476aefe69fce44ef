"""The captioning app end to end through ``seqapps``: train, evaluate, predict, export, serve.

One tiny LSTM captioner is trained per session on a Flickr8k-style folder written from the
built-in shapes (PNG and JPEG files) and serves every test of the commands; the model-level
checks (the decoders' cached steps, masking, the attention regularization) run on small
untrained models of both architectures, where they are exact.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from apps import cli
from apps.captioning import APP
from apps.captioning.builtin_data import builtin_caption_data
from apps.captioning.data import CaptionedImage
from apps.captioning.model import (
    AttentiveLSTMDecoder,
    Captioner,
    build_captioner,
    default_hyperparameters,
)
from apps.captioning.task import caption_scores, warmup_images
from apps.common.errors import SeqappsError
from apps.common.predictor import RunPredictor, load_predictor
from apps.common.text import START_ID
from tests.serving.serving_checks import check_passed_the_op_audit, check_served_like_the_export
from tests.tuning.space_checks import check_search_space

TASK = APP.load_task()
TINY = {
    "image_size": 32,
    "encoder_width": 8,
    "encoder_blocks": 2,
    "units": 32,
    "embedding_dim": 32,
    "attention_dim": 32,
    "warmup_steps": 20,
    "learning_rate": 0.005,
}
TINY_FLAGS = [f for key, value in TINY.items() for f in ("--set", f"{key}={value}")]


def seqapps(*args) -> int:
    return cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    """The Flickr8k layout: ``Flicker8k_Dataset/`` (PNG and JPEG files), the token file, split
    lists, and captions of images the folder does not hold (as the full token file has)."""
    data = builtin_caption_data(seed=0, train=400, validation=40, test=30)
    folder = tmp_path_factory.mktemp("flickr")
    images = folder / "Flicker8k_Dataset"
    images.mkdir()
    lines, lists = [], {}
    for split, listed in (("train", "train"), ("validation", "dev"), ("test", "test")):
        names = []
        for index, image in enumerate(data.split(split)):
            name = f"{split}-{index:04d}.jpg" if index % 3 == 0 else f"{split}-{index:04d}.png"
            pixels = tf.io.decode_png(image.encoded)
            encoded = tf.io.encode_jpeg(pixels, quality=95) if name.endswith(".jpg") else pixels
            (images / name).write_bytes(
                encoded.numpy() if name.endswith(".jpg") else tf.io.encode_png(pixels).numpy()
            )
            names.append(name)
            lines += [f"{name}#{n}\t{caption}" for n, caption in enumerate(image.captions)]
        lists[listed] = names
    lines += [f"not-downloaded-{n}.jpg#0\ta dog runs on the grass ." for n in range(7)]
    (folder / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for listed, names in lists.items():
        (folder / f"Flickr_8k.{listed}Images.txt").write_text("\n".join(names) + "\n")
    return folder


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, shapes_folder):
    run_dir = tmp_path_factory.mktemp("runs") / "captioning"
    arguments = ("train", "captioning", "--data", shapes_folder, "--out", run_dir)
    assert seqapps(*arguments, "--epochs", 3, "--batch-size", 16, *TINY_FLAGS) == 0
    return run_dir


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, trained_run):
    base = tmp_path_factory.mktemp("saved_models")
    arguments = ("export", "captioning", "--model", trained_run, "--base", base)
    assert seqapps(*arguments, "--beam-width", 2) == 0
    return base / "captioning" / "1"


@pytest.fixture(scope="module")
def run_predictor(trained_run):
    """The run directory with the export's beam width."""
    return RunPredictor(TASK, trained_run, options={"beam_width": 2})


@pytest.fixture(scope="module")
def export_predictor(export_dir):
    return load_predictor(TASK, export_dir)


# === Training and evaluation ===


def test_training_writes_a_run_selected_by_validation_bleu(trained_run):
    for name in ("config.json", "vocabulary.txt", "model.keras", "training_log.csv"):
        assert (trained_run / name).exists(), name
    assert json.loads((trained_run / "best.json").read_text())["monitor"] == "val_bleu4"
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["split"] == "validation" and metrics["examples"] == 40
    assert metrics["references"] == 200 and metrics["search"] == "beam"
    assert {f"{p}bleu{n}" for p in ("", "greedy_") for n in range(1, 5)} <= set(metrics)
    # Three epochs of a tiny model: it writes captions of the grammar (an empty or random
    # caption scores near 0).
    assert metrics["bleu1"] > 30, metrics
    assert 0 < metrics["distinct"] <= 1
    config = json.loads((trained_run / "config.json").read_text())
    assert "7 captioned images not found" in config["data"], config["data"]
    rows = (trained_run / "captions-validation.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["image", "beam", "greedy", "references"]
    assert len(rows) == 41 and rows[1].startswith("validation-0000.jpg\t")


def test_evaluate_scores_the_export_with_every_reference(export_dir, shapes_folder, capsys):
    """``--split test`` reads the split list; BLEU-1..4 and the distinct share equal sacreBLEU's
    on the export's own captions against all five references of each image."""
    captions = export_dir.parent / "captions.tsv"
    arguments = ("evaluate", "captioning", "--model", export_dir, "--data", shapes_folder)
    assert seqapps(*arguments, "--json", "--captions", captions, "--search", "beam") == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["split"] == "test" and report["examples"] == 30
    assert report["beam_width"] == 2  # export --beam-width
    rows = [row.split("\t") for row in captions.read_text().splitlines()[1:]]
    beam = [row[1] for row in rows]
    references = [row[2].split(" | ") for row in rows]
    expected = caption_scores(beam, references)
    for name in ("bleu1", "bleu2", "bleu3", "bleu4", "distinct"):
        assert report[name] == pytest.approx(expected[name], abs=1e-9), name
    assert report["distinct"] == len(set(beam)) / 30


def test_caption_scores_use_all_references_and_show_a_collapsed_model():
    references = [["a red circle", "a circle that is red"], ["a blue square"]]
    perfect = caption_scores(["a circle that is red", "a blue square"], references)
    assert perfect["bleu1"] == pytest.approx(100) and perfect["distinct"] == 1.0
    collapsed = caption_scores(["a red circle", "a red circle"], references)
    assert collapsed["distinct"] == 0.5 and collapsed["bleu1"] < 100
    assert perfect["bleu_signature"].startswith("nrefs:var|case:lc")
    report = {"examples": 40, "references": 200, "search": "greedy", **collapsed}
    assert "collapsed" not in TASK.format_report(report)  # 50 % distinct
    report["distinct"] = 1 / 40
    assert "distinct  2.5% of the captions  (collapsed: " in TASK.format_report(report)


# === The export: image bytes in, captions out, in a process without this project ===


def test_export_decodes_jpeg_and_png_bytes_as_the_run_does(
    export_dir, shapes_folder, run_predictor, export_predictor
):
    extra = export_dir / "assets.extra"
    config = json.loads((extra / "seqapps.json").read_text())
    assert config["signatures"][0] == (
        "serving_default(image_bytes: string[None]) -> {caption: string[None]}"
    )
    records = list(tf.data.TFRecordDataset(str(extra / "tf_serving_warmup_requests")))
    signatures = [
        prediction_log_pb2.PredictionLog.FromString(r.numpy()).predict_log.request.model_spec
        for r in records
    ]
    assert [s.signature_name for s in signatures] == ["serving_default", "greedy", "attention"]
    files = sorted((shapes_folder / "Flicker8k_Dataset").glob("test-000*"))[:6]
    assert {f.suffix for f in files} == {".jpg", ".png"}
    inputs = {"image_bytes": [f.read_bytes() for f in files] + warmup_images()}
    for signature in ("serving_default", "greedy"):
        run = run_predictor.outputs(inputs, signature)["caption"]
        served = export_predictor.outputs(inputs, signature)["caption"]
        assert list(run) == list(served) and all(run[:6]), signature


def test_the_export_passed_the_op_audit_with_core_ops_only(export_dir):
    check_passed_the_op_audit(export_dir, [])


def test_seqapps_serve_answers_its_requests_as_the_export_does(export_dir):
    check_served_like_the_export(export_dir, TASK.warmup_requests())


def test_corrupt_bytes_are_an_error_that_names_them(export_predictor):
    good = warmup_images()[0]
    for bad, expected in (
        (b"GIF89 not really", "not a JPEG, PNG, GIF or BMP image: element"),
        (b"", "not a JPEG, PNG, GIF or BMP image: element"),
        (good[: len(good) // 2], "PNG"),  # a truncated PNG
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
            export_predictor.outputs({"image_bytes": [good, bad]})
    # The model still answers afterwards, and a request of no images gets no captions.
    assert export_predictor.outputs({"image_bytes": [good]})["caption"].shape == (1,)
    for signature in ("serving_default", "greedy", "attention"):
        empty = export_predictor.signatures[signature](image_bytes=tf.constant([], tf.string))
        assert empty["caption"].shape == (0,), signature


def test_images_are_cropped_to_their_centre_square(run_predictor):
    """A wide picture whose centre square is one colour and whose sides are another decodes to
    the centre colour only, at image_size, from PNG and from JPEG alike."""
    picture = np.zeros((48, 144, 3), np.uint8)
    picture[:, :48] = (0, 0, 255)
    picture[:, 96:] = (0, 0, 255)
    picture[:, 48:96] = (200, 30, 30)  # edges on JPEG's 16-pixel blocks: little colour bleeds
    preprocessor = run_predictor.preprocessor
    for encoded, border, tolerance in (
        (tf.io.encode_png(picture), 0, 1),
        (tf.io.encode_jpeg(picture, quality=100), 1, 8),
    ):
        decoded = preprocessor.decode_images(tf.reshape(encoded, [1])).numpy()
        assert decoded.shape == (1, 32, 32, 3) and decoded.dtype == np.uint8
        inside = decoded[0, :, border : 32 - border].astype(int)
        assert np.abs(inside - (200, 30, 30)).max() <= tolerance


def test_predict_prints_captions_and_draws_the_attention(export_dir, shapes_folder, capsys):
    files = sorted((shapes_folder / "Flicker8k_Dataset").glob("test-000[0-2]*"))
    plot = export_dir.parent / "attention.png"
    arguments = ("predict", "captioning", "--model", export_dir.parent)
    assert seqapps(*arguments, *files, "--attention-plot", plot) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(f) for f in files]
    assert all(line.split("\t")[1] for line in lines)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seqapps(*arguments, files[0], "--json", "--search", "greedy") == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["input"] == str(files[0]) and record["caption"]
    assert seqapps(*arguments, shapes_folder / "missing.jpg") == 2
    assert "missing.jpg: cannot read the image" in capsys.readouterr().err


def test_attention_signature_gives_one_map_per_word(export_predictor):
    answer = export_predictor.answer({"image_bytes": warmup_images()[:2]}, "attention")
    for outputs in answer:
        words = [w.decode() for w in outputs["words"] if w]
        assert words[-1] == "[END]" and " ".join(words[:-1]) == outputs["caption"].decode()
        maps = outputs["attention"][: len(words)]
        assert maps.shape[1:] == (4, 4)  # 32 pixels: the stem halves, two blocks halve twice
        np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-4)


# === The pipeline: every caption of an image, augmentation ===


def test_batches_hold_every_caption_of_their_images(run_predictor):
    preprocessor = run_predictor.preprocessor
    hyperparameters = run_predictor.config["hyperparameters"]
    examples = builtin_caption_data(seed=1, train=20, validation=2, test=2).split("train")
    batches = list(TASK.dataset(examples, preprocessor, hyperparameters, 8))
    inputs, targets = batches[0]
    assert inputs["images"].shape == (8, 32, 32, 3) and inputs["images"].dtype == tf.uint8
    ids = inputs["caption_ids"].numpy()
    assert ids.shape[:2] == (8, 5) and (ids[:, :, 0] == START_ID).all()
    # Teacher forcing: the next word, one step on.
    np.testing.assert_array_equal(ids[:, :, 1:], targets.numpy()[:, :, :-1])
    decoded = preprocessor.text.decode(tf.constant(ids[0])).numpy()
    assert [c.decode() for c in decoded] == list(examples[0].captions)


def test_augmentation_flips_images_and_swaps_left_and_right(run_predictor):
    preprocessor = run_predictor.preprocessor
    hyperparameters = run_predictor.config["hyperparameters"]
    examples = [
        image
        for image in builtin_caption_data(seed=2, train=80, validation=2, test=2).split("train")
        if any(" left" in c for c in image.captions)
    ][:16]
    plain = TASK.dataset(examples, preprocessor, hyperparameters, 16)
    augmented = TASK.dataset(examples, preprocessor, hyperparameters, 16, shuffle_seed=4)
    (plain_inputs, _), (augmented_inputs, _) = next(iter(plain)), next(iter(augmented))
    by_caption = {
        tuple(ids.ravel()): i for i, ids in enumerate(plain_inputs["caption_ids"].numpy())
    }
    left, right = preprocessor.left_right
    flips = 0
    for ids in augmented_inputs["caption_ids"].numpy():
        mirrored = np.where(ids == left, right, np.where(ids == right, left, ids))
        # Each augmented image's captions are its own, or its own with left and right swapped.
        assert tuple(ids.ravel()) in by_caption or tuple(mirrored.ravel()) in by_caption
        flips += tuple(ids.ravel()) not in by_caption
    assert 0 < flips < 16


# === The decoders: cached steps, masking, attention regularization (untrained, exact) ===


def small_model(architecture: str, **overrides):
    hyperparameters = {
        **default_hyperparameters(architecture),
        **TINY,
        "dropout": 0.0,
        "model_dim": 16,
        "intermediate_dim": 32,
        "num_heads": 2,
        "decoder_layers": 2,
        **overrides,
    }
    keras.utils.set_random_seed(5)
    return build_captioner(hyperparameters, 40)


IMAGES = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
CAPTIONS = np.array(
    [[[START_ID, 5, 6, 7, 8], [START_ID, 9, 10, 0, 0]], [[START_ID, 11, 12, 13, 0], [0] * 5]],
    np.int32,
)


@pytest.mark.parametrize("architecture", ["lstm", "transformer"])
def test_cached_steps_equal_teacher_forcing(architecture):
    model = small_model(architecture)
    logits = model({"images": IMAGES, "caption_ids": CAPTIONS}).numpy()
    captioner = Captioner(model)
    features = captioner.features(IMAGES)
    state, context = captioner.start(features, 5)
    for index in range(5):
        tokens = CAPTIONS[:, 0, index]
        step, state = captioner.step(tf.constant(tokens), index, state, context)
        real = tokens != 0  # a padded step's logits are nobody's
        np.testing.assert_allclose(step.numpy()[real], logits[real, 0, index], atol=1e-5)


@pytest.mark.parametrize("architecture", ["lstm", "transformer"])
def test_padding_changes_no_valid_output(architecture):
    """Padded words after a caption, and padding rows of an image with fewer captions, leave
    the logits of every real word as they are."""
    model = small_model(architecture)
    logits = model({"images": IMAGES, "caption_ids": CAPTIONS}).numpy()
    alone = model({"images": IMAGES[:1], "caption_ids": CAPTIONS[:1, 1:, :3]}).numpy()
    np.testing.assert_allclose(alone[0, 0], logits[0, 1, :3], atol=1e-5)
    other = CAPTIONS.copy()
    other[1, 1] = [START_ID, 30, 31, 32, 33]  # the padding row of image 2 becomes a caption
    changed = model({"images": IMAGES, "caption_ids": other}).numpy()
    np.testing.assert_allclose(changed[:, 0], logits[:, 0], atol=1e-5)


def test_doubly_stochastic_regularization_matches_its_formula():
    """``lambda * mean_i (tau - sum_t alpha_ti)^2``, over real words and captions with words;
    ``tau`` is 1 when the grid has as many positions as the caption has words (16 here), the
    even spread ``T / L`` when it has fewer (2 positions)."""
    for size, positions in ((32, 16), (8, 1)):
        model = small_model("lstm", attention_regularization=0.7, image_size=size)
        model({"images": IMAGES[:, :size, :size], "caption_ids": CAPTIONS})
        penalty = float(model.losses[0])
        captioner = Captioner(model)
        features = captioner.features(IMAGES[:, :size, :size]).numpy()
        assert features.shape[1] == positions
        expected = []
        for image, caption in ((0, 0), (0, 1), (1, 0)):  # image 2's second row is padding
            ids = CAPTIONS[image, caption][None]
            alpha = captioner.attention_maps(features[image : image + 1], ids).numpy()[0]
            valid = ids[0] != 0
            target = max(1.0, valid.sum() / positions)
            expected.append(np.mean((target - alpha[valid].sum(axis=0)) ** 2))
        assert penalty == pytest.approx(0.7 * np.mean(expected), rel=1e-5), size
    off = small_model("lstm", attention_regularization=0.0)
    off({"images": IMAGES, "caption_ids": CAPTIONS})
    assert not off.losses


def test_decoder_round_trips_its_config():
    layer = AttentiveLSTMDecoder(40, embedding_dim=8, units=8, attention_dim=4, dropout=0.1)
    assert AttentiveLSTMDecoder.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="units must be a positive integer, got 0"):
        AttentiveLSTMDecoder(40, units=0)


def test_a_run_directory_answers_no_other_app(trained_run, capsys):
    assert seqapps("predict", "translation", "--model", trained_run, "x") == 2
    assert "a 'captioning' run, not 'translation'" in capsys.readouterr().err


def test_unknown_encoder_is_a_clear_error(tmp_path, capsys):
    arguments = ("train", "captioning", "--out", tmp_path / "run", "--encoder", "NoSuchNet")
    assert seqapps(*arguments, "--epochs", 1) == 2
    assert "encoder 'NoSuchNet' is neither 'cnn' nor a keras.applications model" in (
        capsys.readouterr().err
    )


# === A keras.applications backbone from weights on disk ===


@pytest.fixture(scope="module")
def backbone_weights(tmp_path_factory):
    """A MobileNetV3Small at 32 pixels with random weights, saved as a user would save theirs."""
    keras.utils.set_random_seed(7)
    backbone = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    path = tmp_path_factory.mktemp("weights") / "mine.weights.h5"
    backbone.save_weights(path)
    return path, backbone


def test_a_frozen_backbone_is_copied_into_the_run_and_gives_cached_features(
    tmp_path, backbone_weights
):
    """The user's weights become the run's (the file may go afterwards); the pipeline feeds
    the model the backbone's features, computed once."""
    weights, backbone = backbone_weights
    hyperparameters = {
        **default_hyperparameters("lstm"),
        **TINY,
        "encoder": "MobileNetV3Small",
        "encoder_weights": str(weights),
    }
    data = builtin_caption_data(seed=3, train=24, validation=4, test=4)
    TASK.learn_preprocessing(data, hyperparameters, tmp_path)
    preprocessor = TASK.load_preprocessor(tmp_path, hyperparameters)
    for mine, used in zip(backbone.weights, preprocessor.backbone.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), used.numpy())
    examples = data.split("train")
    inputs, _ = next(iter(TASK.dataset(examples, preprocessor, hyperparameters, 24)))
    assert set(inputs) == {"image_features", "caption_ids"}
    images = preprocessor.decode_images(tf.constant([e.read() for e in examples]))
    np.testing.assert_allclose(inputs["image_features"], backbone(images)[:, None, 0, 0], atol=1e-5)
    model = build_captioner(hyperparameters, preprocessor.vocabulary_size)
    assert [t.name for t in model.inputs] == ["caption_ids", "image_features"]


@pytest.mark.slow
def test_training_with_a_frozen_backbone_from_weights_on_disk(
    tmp_path, shapes_folder, backbone_weights
):
    """The whole command: --encoder and --encoder-weights recorded as hyperparameters, the run
    self-contained, answering from image bytes through the backbone."""
    weights, _ = backbone_weights
    run = tmp_path / "run"
    arguments = ("train", "captioning", "--data", shapes_folder, "--out", run, "--epochs", 1)
    flags = ("--encoder", "MobileNetV3Small", "--encoder-weights", weights)
    assert seqapps(*arguments, *flags, *TINY_FLAGS) == 0
    hyperparameters = json.loads((run / "config.json").read_text())["hyperparameters"]
    assert hyperparameters["encoder"] == "MobileNetV3Small"
    assert hyperparameters["encoder_weights"] == str(weights.resolve())
    assert hyperparameters["fine_tune_encoder"] is False
    weights.rename(weights.with_suffix(".moved"))
    predictor = load_predictor(TASK, run)
    assert predictor.outputs({"image_bytes": warmup_images()})["caption"].shape == (6,)
    base = tmp_path / "saved_models"
    assert seqapps("export", "captioning", "--model", run, "--base", base) == 0


def test_a_fine_tuned_backbone_is_part_of_the_model():
    hyperparameters = {
        **default_hyperparameters("lstm"),
        **TINY,
        "encoder": "MobileNetV3Small",
        "fine_tune_encoder": True,
    }
    model = build_captioner(hyperparameters, 40)
    backbone = model.get_layer("backbone")
    assert backbone.trainable and len(backbone.trainable_weights) > 50
    features = Captioner(model).features(IMAGES)
    assert features.shape[:2] == (2, 1)  # MobileNetV3Small: 32 pixels -> a 1x1 grid
    logits = model({"images": IMAGES, "caption_ids": CAPTIONS})
    assert logits.shape == (2, 2, 5, 40)


def test_an_image_that_does_not_decode_is_named(run_predictor):
    """A file with a PNG signature but cut short passes the loader's check, and decoding it
    for training stops with its name."""
    good = builtin_caption_data(seed=4, train=3, validation=1, test=1).split("train")
    broken = CaptionedImage(
        name="broken.png", captions=("a red circle",), encoded=good[0].encoded[:60]
    )
    with pytest.raises(SeqappsError, match=r"cannot decode 1 image\(s\): broken.png: "):
        TASK.dataset(
            [*good, broken], run_predictor.preprocessor, run_predictor.config["hyperparameters"], 4
        )


def test_the_search_space_builds_every_architecture(trained_run):
    check_search_space(APP, trained_run)
