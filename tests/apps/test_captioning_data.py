"""Captioning data: Flickr8k and CSV layouts, images skipped and why, errors users see, and the
built-in shapes whose captions must be true of their pixels."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

from apps.captioning import builtin_data as shapes
from apps.captioning.builtin_data import (
    BACKGROUNDS,
    COLORS,
    VOCABULARY,
    builtin_caption_data,
    builtin_scenes,
)
from apps.captioning.data import CaptionedImage, load_caption_data
from apps.common.datasets import WHOLE_FILE
from apps.common.errors import SeqappsError

GRID_WORDS = {"top", "bottom", "left", "right", "center"}


def write(path, content):
    """Writes text (UTF-8) or bytes, making the folders above."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def jpeg(shade=128):
    return tf.io.encode_jpeg(np.full((6, 8, 3), shade, np.uint8)).numpy()


def png(shade=128):
    return tf.io.encode_png(np.full((6, 8, 3), shade, np.uint8)).numpy()


def image_names(count):
    return [f"{index:04d}_img.jpg" for index in range(count)]


def make_flickr8k(root, names, with_files=None, images="images", per_image=2, lists=None):
    """A Flickr8k-layout folder: captions ``#1`` before ``#0`` (order must come from ``#N``),
    image files for ``with_files`` (default all), and split lists ``{file name: names}``."""
    lines = []
    for name in names:
        for number in reversed(range(per_image)):
            lines.append(f"{name}#{number}\tcaption {number} of {name} .")
    write(root / "Flickr8k.token.txt", "\n".join(lines) + "\n")
    for name in names if with_files is None else with_files:
        write(root / images / name, jpeg())
    for file_name, listed in (lists or {}).items():
        write(root / file_name, "".join(f"{name}\n" for name in listed))
    return root


def load(path, seed=0, for_training=True):
    return load_caption_data(path, seed=seed, for_training=for_training)


def names_of(examples):
    return [example.name for example in examples]


# === Flickr8k layout ===


def test_flickr8k_layout_with_split_lists(tmp_path):
    names = image_names(10)
    lists = {
        "Flickr_8k.trainImages.txt": [*names[4:], "", names[0]],  # a blank line is skipped
        "Flickr_8k.devImages.txt": names[1:3],
        "Flickr_8k.testImages.txt": [names[3]],
    }
    data = load(make_flickr8k(tmp_path, names, lists=lists))
    assert data.sizes() == "train 7, validation 2, test 1"
    assert names_of(data.split("train")) == sorted([names[0], *names[4:]])
    first = data.split("train")[0]
    assert first == CaptionedImage(
        names[0],
        (f"caption 0 of {names[0]} .", f"caption 1 of {names[0]} ."),  # by #N, not file order
        path=tmp_path / "images" / names[0],
    )
    assert first.read() == jpeg()
    assert data.description == (
        f"Flickr8k layout {tmp_path}: 10 images with 20 captions (images/, Flickr8k.token.txt, "
        "Flickr_8k.trainImages.txt, Flickr_8k.devImages.txt, Flickr_8k.testImages.txt)"
    )


def test_split_lists_without_dev_hold_validation_back_from_train(tmp_path, capsys):
    names = image_names(12)
    lists = {
        "Flickr_8k.trainImages.txt": [*names[:10], "listed_only.jpg"],
        "Flickr_8k.testImages.txt": names[10:11],
    }
    data = load(make_flickr8k(tmp_path, names, lists=lists), seed=1)
    assert data.sizes() == "train 9, validation 1, test 1"
    assert "validation = 1 examples (10%) held back from train with seed 1" in data.description
    assert "1 image of Flickr_8k.trainImages.txt without captions ignored" in data.description
    assert "1 captioned image in no split list ignored" in data.description
    err = capsys.readouterr().err
    assert "Flickr_8k.trainImages.txt: ignored 1 listed image without captions" in err
    assert f"ignored 1 captioned image in no split list (first: {names[11]})" in err


def test_without_split_lists_a_seeded_tenth_of_the_images_is_held_out(tmp_path):
    names = image_names(30)
    make_flickr8k(tmp_path, names, per_image=3)
    data = load(tmp_path, seed=0)
    train, validation = data.split("train"), data.split("validation")
    assert (len(train), len(validation)) == (27, 3)
    assert not set(names_of(train)) & set(names_of(validation))  # no image on both sides
    assert all(len(example.captions) == 3 for example in [*train, *validation])
    assert names_of(train) == sorted(names_of(train))
    again = load(tmp_path, seed=0)
    assert again.split("train") == train and again.split("validation") == validation
    other = load(tmp_path, seed=1)
    assert names_of(other.split("validation")) != names_of(validation)
    assert "held back from train with seed 0" in data.description


def test_for_evaluation_the_images_are_one_split(tmp_path):
    make_flickr8k(tmp_path, image_names(5))
    data = load(tmp_path, for_training=False)
    assert list(data.splits) == [WHOLE_FILE]
    assert len(data.split("test")) == 5


@pytest.mark.parametrize("folder", ["Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "."])
def test_image_folder_names(tmp_path, folder):
    make_flickr8k(tmp_path, image_names(4), images=folder)
    data = load(tmp_path, for_training=False)
    assert len(data.split("test")) == 4
    assert data.split("test")[0].path == tmp_path / folder / image_names(1)[0]
    label = "./" if folder == "." else f"{folder}/"
    assert f"({label}, Flickr8k.token.txt)" in data.description


def test_data_may_name_the_token_file(tmp_path):
    make_flickr8k(tmp_path, image_names(3))
    data = load(tmp_path / "Flickr8k.token.txt", for_training=False)
    assert len(data.split("test")) == 3
    assert data.description.startswith(f"Flickr8k layout {tmp_path / 'Flickr8k.token.txt'}: ")


def test_lemma_token_file_is_read_only_when_alone(tmp_path):
    make_flickr8k(tmp_path, image_names(2))
    write(tmp_path / "Flickr8k.lemma.token.txt", f"{image_names(1)[0]}#0\tlemma caption\n")
    data = load(tmp_path, for_training=False)
    assert data.split("test")[0].captions[0].startswith("caption 0")
    (tmp_path / "Flickr8k.token.txt").unlink()
    data = load(tmp_path, for_training=False)
    assert data.split("test")[0].captions == ("lemma caption",)


# === CSV layout ===

CSV = (
    "image,caption\r\n"
    'b.jpg,"A dog, brown and white, runs ."\r\n'
    "a.jpg,A child in a pink dress .\r\n"
    "\r\n"
    "a.jpg,  A girl, unquoted commas, climbs .  \r\n"
    'b.jpg,"He said ""hi"" ."\r\n'
)


@pytest.mark.parametrize("file_name", ["captions.txt", "captions.csv"])
def test_csv_layout_with_quoted_commas(tmp_path, file_name):
    write(tmp_path / file_name, CSV)
    write(tmp_path / "Images" / "a.jpg", jpeg())
    write(tmp_path / "Images" / "b.jpg", png())
    data = load(tmp_path, for_training=False)
    a, b = data.split("test")
    assert a.captions == ("A child in a pink dress .", "A girl, unquoted commas, climbs .")
    assert b.captions == ("A dog, brown and white, runs .", 'He said "hi" .')
    assert b.read() == png()
    assert data.description == (
        f"CSV layout {tmp_path}: 2 images with 4 captions (Images/, {file_name})"
    )


def test_csv_columns_in_another_order_and_data_naming_the_file(tmp_path):
    write(tmp_path / "captions.csv", "id,Caption,Image\n1,a red car .,car.jpg\n")
    write(tmp_path / "images" / "car.jpg", jpeg())
    data = load(tmp_path / "captions.csv", for_training=False)
    assert data.split("test")[0].captions == ("a red car .",)
    assert data.description.startswith(f"CSV layout {tmp_path / 'captions.csv'}: 1 image with")


# === Images skipped ===


def test_missing_images_are_skipped_with_count_and_first_names(tmp_path, capsys):
    names = image_names(50)
    make_flickr8k(tmp_path, names, with_files=[names[3], names[10], names[40]])
    data = load(tmp_path, for_training=False)
    assert names_of(data.split("test")) == [names[3], names[10], names[40]]
    err = capsys.readouterr().err
    first = ", ".join(name for name in names[:6] if name != names[3])
    assert (
        f"{tmp_path / 'Flickr8k.token.txt'}: skipped 47 captioned images not found in "
        f"{tmp_path / 'images'} (first: {first}, ...)"
    ) in err
    assert data.description == (
        f"Flickr8k layout {tmp_path}: 3 images with 6 captions (images/, Flickr8k.token.txt); "
        "skipped 47 captioned images not found in images/"
    )


def test_a_large_caption_file_is_checked_against_one_listing_of_the_folder(tmp_path, monkeypatch):
    names = image_names(8092)  # the full Flickr8k token file against a small folder
    make_flickr8k(tmp_path, names, with_files=names[:3], per_image=5)
    stats = []
    real_stat = os.stat
    monkeypatch.setattr(
        os, "stat", lambda path, *a, **k: stats.append(path) or real_stat(path, *a, **k)
    )
    data = load(tmp_path, for_training=False)
    assert len(data.split("test")) == 3
    assert len(stats) < 20  # not one per captioned image


def test_unreadable_images_are_skipped_and_reading_only_checks_signatures(tmp_path, capsys):
    files = {
        "a.jpg": jpeg(),
        "b.png": png(),
        "c.gif": b"GIF89a" + bytes(20),  # not decodable, but the signature is all that is read
        "d.bmp": b"BM" + bytes(20),
        "e.jpg": b"",
        "f.jpg": b"<html>not found</html>",
    }
    for name, content in files.items():
        write(tmp_path / "images" / name, content)
    (tmp_path / "images" / "g.jpg").mkdir()
    write(
        tmp_path / "captions.txt",
        "image,caption\n" + "".join(f"{name},caption of {name}\n" for name in [*files, "g.jpg"]),
    )
    data = load(tmp_path, for_training=False)
    assert names_of(data.split("test")) == ["a.jpg", "b.png", "c.gif", "d.bmp"]
    err = capsys.readouterr().err
    assert (
        f"{tmp_path / 'images'}: skipped 3 unreadable images (first: e.jpg (empty), "
        "f.jpg (not a JPEG, PNG, GIF or BMP file), g.jpg (not a regular file))"
    ) in err
    assert data.description.endswith("; skipped 3 unreadable images in images/")


def test_images_without_captions_are_counted(tmp_path, capsys):
    names = image_names(4)
    make_flickr8k(tmp_path, names[:2], with_files=names)
    write(tmp_path / "images" / "notes.txt", "not an image")
    data = load(tmp_path, for_training=False)
    assert len(data.split("test")) == 2
    assert f"ignored 2 images without captions in Flickr8k.token.txt (first: {names[2]}, " in (
        capsys.readouterr().err
    )
    assert data.description.endswith("; 2 images without captions ignored")


def test_reading_a_vanished_image_names_the_file(tmp_path):
    make_flickr8k(tmp_path, image_names(1))
    (example,) = load(tmp_path, for_training=False).split("test")
    example.path.unlink()
    with pytest.raises(SeqappsError, match=re.escape(f"{example.path}: cannot read image")):
        example.read()


# === Errors ===

FIRST = image_names(1)[0]


@pytest.mark.parametrize(
    ("file_name", "content", "message"),
    [
        (
            "Flickr8k.token.txt",
            f"{FIRST}#0\tfine\n\n{FIRST}#1 no tab here\n",
            f"line 3: no tab in '{FIRST}#1 no tab here'",
        ),
        (
            "Flickr8k.token.txt",
            f"{FIRST}\tcaption without a number\n",
            f"line 1: no #N after the image name in '{FIRST}'",
        ),
        ("Flickr8k.token.txt", f"{FIRST}#x\tcaption\n", "line 1: no #N after the image name"),
        (
            "Flickr8k.token.txt",
            f"{FIRST}#0\tok\n{FIRST}#1\t  \r\n",
            f"line 2: empty caption for '{FIRST}#1'",
        ),
        (
            "Flickr8k.token.txt",
            f"{FIRST}#0\t{'long ' * 30}\n{'x' * 100}\n",
            f"line 2: no tab in '{'x' * 60}'...",
        ),
        ("captions.txt", f"{FIRST},a caption\n", "line 1: expected a header naming the columns"),
        ("captions.csv", f"image,caption\n\n{FIRST},\n", f"line 3: empty caption for '{FIRST}'"),
        (
            "captions.txt",
            f"image,caption\n{FIRST},caf\xe9\n".encode("latin-1"),
            r"line 2: undecodable bytes b'\xe9' (expected UTF-8)",
        ),
    ],
)
def test_bad_caption_files_name_file_line_and_value(tmp_path, file_name, content, message):
    write(tmp_path / file_name, content)
    write(tmp_path / "images" / FIRST, jpeg())
    with pytest.raises(SeqappsError, match=re.escape(f"{tmp_path / file_name}, {message}")):
        load(tmp_path)


def test_an_image_in_two_split_lists_is_an_error(tmp_path):
    names = image_names(3)
    lists = {"Flickr_8k.trainImages.txt": names[:2], "Flickr_8k.testImages.txt": names[1:]}
    make_flickr8k(tmp_path, names, lists=lists)
    with pytest.raises(
        SeqappsError,
        match=re.escape(
            f"{tmp_path / 'Flickr_8k.testImages.txt'}, line 1: '{names[1]}' is listed twice "
            "(also Flickr_8k.trainImages.txt, line 2)"
        ),
    ):
        load(tmp_path)


def test_missing_pieces_are_errors(tmp_path):
    with pytest.raises(SeqappsError, match="no such file or directory"):
        load(tmp_path / "nowhere")
    with pytest.raises(SeqappsError, match=re.escape(f"{tmp_path}: no caption file; expected")):
        load(tmp_path)
    write(tmp_path / "Flickr8k.token.txt", f"{FIRST}#0\tcaption\n")
    with pytest.raises(SeqappsError, match=re.escape(f"{tmp_path}: no image folder beside")):
        load(tmp_path)
    write(tmp_path / "images" / "other.jpg", jpeg())
    with pytest.raises(SeqappsError, match=f"none of its 1 image is a readable image .*{FIRST}"):
        load(tmp_path)


# === Built-in shapes ===


@pytest.fixture(scope="module")
def builtin():
    return builtin_caption_data(0)


def test_builtin_sizes_captions_and_png_images(builtin):
    assert builtin.sizes() == "train 1600, validation 200, test 200"
    assert builtin.description.startswith(
        "built-in shapes: 2,000 generated 64x64 images, 5 captions each"
    )
    example = builtin.split("train")[0]
    assert example.name == "shapes-train-00001.png" and example.path is None
    assert tf.io.decode_png(example.read()).shape == (64, 64, 3)
    pictures = set()
    for split in ("train", "validation", "test"):
        for example in builtin.split(split):
            assert len(set(example.captions)) == 5
            pictures.add(example.encoded)
    assert len(pictures) == 2000  # no picture twice, within or across splits


def test_builtin_vocabulary_is_small_and_mirrorable(builtin):
    words = {
        word
        for examples in builtin.splits.values()
        for example in examples
        for caption in example.captions
        for word in caption.split()
    }
    assert words == VOCABULARY
    assert len(words) < 60
    assert {"left", "right", "above", "below", "center"} <= words


def test_builtin_data_is_deterministic_and_seeded():
    small = {"train": 20, "validation": 5, "test": 5}
    first, again = builtin_caption_data(3, **small), builtin_caption_data(3, **small)
    assert first.splits == again.splits
    other = builtin_caption_data(4, **small)
    assert [e.encoded for e in other.split("train")] != [e.encoded for e in first.split("train")]
    # Validation and test come from different streams of the seed.
    assert first.split("validation")[0].captions != first.split("test")[0].captions


def _foreground(pixels):
    """Pixels far from the background (the median color): the shapes."""
    background = np.median(pixels.reshape(-1, 3), axis=0)
    return np.abs(pixels.astype(int) - background).sum(axis=-1) > 80


def _nearest_color(rgb):
    return min(COLORS, key=lambda name: np.abs(np.asarray(COLORS[name]) - rgb).sum())


def test_one_shape_captions_name_the_color_and_cell_of_the_pixels(builtin):
    checked = 0
    for example in builtin.split("test"):
        pixels = tf.io.decode_png(example.read()).numpy()
        words = {word for caption in example.captions for word in caption.split()}
        colors = words & set(COLORS)
        if len(colors) != 1 or "and" in words:  # two shapes: checked against their scenes
            continue
        shape = _foreground(pixels)
        assert _nearest_color(pixels[shape].mean(axis=0)) == colors.pop(), example.captions
        ys, xs = np.nonzero(shape)
        row, column = int(ys.mean() // (64 / 3)), int(xs.mean() // (64 / 3))
        expected = {("top", None, "bottom")[row], ("left", None, "right")[column]} - {None}
        for caption in example.captions:
            places = set(caption.split()) & GRID_WORDS
            assert not places or places == (expected or {"center"}), (caption, row, column)
        assert (words & set(BACKGROUNDS)) <= {
            min(BACKGROUNDS, key=lambda n: np.abs(np.asarray(BACKGROUNDS[n]) - pixels[0, 0]).sum())
        }
        checked += 1
    assert checked > 50


def _shapes_named(phrase, scene):
    """The shapes of ``scene`` that ``red circle`` or ``small circle`` may mean."""
    words = set(phrase.split())
    return [s for s in scene.shapes if words in ({s.kind, s.color}, {s.kind, s.size})]


RELATION = re.compile(r"a ([a-z ]+?) (to the left of|to the right of|above|below) a ([a-z ]+)")


def test_scenes_match_pixels_and_two_shape_relations_follow_the_cells():
    sizes = {"train": 30, "validation": 60, "test": 5}
    data = builtin_caption_data(7, **sizes)
    scenes = builtin_scenes(7, "validation", **sizes)
    relations = 0
    for example, scene in zip(data.split("validation"), scenes, strict=True):
        pixels = tf.io.decode_png(example.read()).numpy()
        foreground = _foreground(pixels)
        colors_named = {w for caption in example.captions for w in caption.split()} & set(COLORS)
        assert colors_named == {shape.color for shape in scene.shapes}
        for shape in scene.shapes:
            row, column = shape.cell
            cell = np.zeros_like(foreground)
            side = 64 / 3
            cell[
                round(row * side) : round((row + 1) * side),
                round(column * side) : round((column + 1) * side),
            ] = True
            assert _nearest_color(pixels[foreground & cell].mean(axis=0)) == shape.color
        for caption in example.captions:
            match = RELATION.fullmatch(caption)
            if not match:
                continue
            first, second = _shapes_named(match[1], scene), _shapes_named(match[3], scene)
            if len(first) != 1 or len(second) != 1:
                continue  # two large circles: the caption does not say which is which
            (a,), (b,) = first, second
            step = {
                "to the left of": a.cell[1] < b.cell[1],
                "to the right of": a.cell[1] > b.cell[1],
                "above": a.cell[0] < b.cell[0],
                "below": a.cell[0] > b.cell[0],
            }
            assert step[match[2]], (caption, a.cell, b.cell)
            relations += 1
    assert relations > 20
    assert shapes.MIRRORED_WORDS == {"left": "right", "right": "left"}


def test_no_path_reads_the_builtin_data(monkeypatch):
    monkeypatch.setattr(shapes, "builtin_caption_data", lambda seed: f"built-in, seed {seed}")
    assert load(None, seed=5) == "built-in, seed 5"
