"""The built-in captioning dataset: pictures of colored shapes with captions from a small grammar.

A smoke-test dataset, not a benchmark: it lets ``seqapps train captioning`` learn something
visible in a few epochs with no download. Each 64x64 picture has a plain or lightly shaded
background (black, gray or beige, a faint gradient and noise) and one or two shapes that never
overlap, each inside its own cell of a 3x3 grid:

- shapes: circle, square, triangle, cross; colors: red, green, blue, yellow, white, purple (flat,
  each picture's shade varies a little); sizes: small, large;
- positions, by grid cell: top left, top, top right, left, center, right, bottom left, bottom,
  bottom right.

Each picture has five different captions, all true of it, drawn from paraphrases: ``a small red
circle in the top left corner``, ``there is a red circle at the top left``, ``a red circle on a
gray background``; for two shapes ``a red circle and a large blue square``, ``a blue square below
a red circle``, ``a red circle to the left of a blue square`` (the relation follows the cells: the
direction with the larger step, either when they are diagonal). Captions are lowercase without a
final period, over ``VOCABULARY`` (34 words); ``left`` and ``right`` both occur, so a mirrored
picture's captions are its own with the two swapped (``MIRRORED_WORDS``).

``builtin_caption_data(seed)`` returns train, validation and test splits of ``CaptionedImage``
with PNG bytes, each split from its own random stream of the seed; no picture occurs twice.
``builtin_scenes`` gives the same splits' ``Scene``\\ s (what is drawn where), ``draw`` and
``describe`` render one scene, so tests can check captions against pixels.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

import apps.quiet_tensorflow  # noqa: F401  (first: TensorFlow loads without its C++ start-up noise)

import numpy as np
import tensorflow as tf

from apps.captioning.data import CaptionedImage
from apps.common.datasets import ExampleList, Splits

SPLITS = ("train", "validation", "test")
SHAPES = ("circle", "square", "triangle", "cross")
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "white": (240, 240, 240),
    "purple": (150, 60, 200),
}
# Every shape color differs from every background by at least 150 (sum over RGB channels).
BACKGROUNDS = {"black": (15, 15, 15), "gray": (110, 110, 110), "beige": (200, 185, 150)}
SIZES = {"small": 0.22, "large": 0.42}  # a shape's radius, as a fraction of a cell's side
GRID = 3
ROW_WORDS = ("top", None, "bottom")
COLUMN_WORDS = ("left", None, "right")
SHADE_JITTER = 12  # per channel, of a shape's color in one picture
GRADIENT = 10  # largest brightness change across the background
NOISE = 3.0  # standard deviation of the background's pixel noise
CAPTIONS_PER_IMAGE = 5
# A horizontal flip keeps every caption true once these words are swapped.
MIRRORED_WORDS = {"left": "right", "right": "left"}
MAX_ATTEMPTS = 100  # pictures drawn to find one not generated before


@dataclass(frozen=True)
class Shape:
    """One drawn shape: what it is, and where (its grid cell and its pixels)."""

    kind: str  # SHAPES
    color: str  # COLORS
    size: str  # SIZES
    cell: tuple[int, int]  # (row, column) on the 3x3 grid; (0, 0) is the top left
    center: tuple[float, float]  # (x, y) in pixels
    radius: float  # in pixels: the shape lies within this distance of its center, per axis


@dataclass(frozen=True)
class Scene:
    """What one picture shows."""

    background: str  # BACKGROUNDS
    shapes: tuple[Shape, ...]


# === Scenes and pictures ===


def random_scene(rng: np.random.Generator, image_size: int = 64) -> Scene:
    """One or two shapes in different cells; two shapes differ in kind or color, so that each
    caption names them unambiguously."""
    cell_side = image_size / GRID
    count = int(rng.integers(1, 3))
    cells = rng.choice(GRID * GRID, size=count, replace=False)
    shapes: list[Shape] = []
    for cell_index in cells:
        row, column = divmod(int(cell_index), GRID)
        while True:
            kind, color = str(rng.choice(SHAPES)), str(rng.choice(list(COLORS)))
            if all((kind, color) != (other.kind, other.color) for other in shapes):
                break
        size = str(rng.choice(list(SIZES)))
        radius = SIZES[size] * cell_side
        # The shape stays inside its cell (a pixel from its edges), so shapes never overlap.
        slack = max(0.0, cell_side / 2 - radius - 1)
        x = (column + 0.5) * cell_side + rng.uniform(-slack, slack)
        y = (row + 0.5) * cell_side + rng.uniform(-slack, slack)
        shapes.append(Shape(kind, color, size, (row, column), (x, y), radius))
    return Scene(str(rng.choice(list(BACKGROUNDS))), tuple(shapes))


def shape_mask(shape: Shape, image_size: int = 64) -> np.ndarray:
    """The pixels of ``shape``: a boolean ``[height, width]`` array."""
    centers = np.arange(image_size) + 0.5  # pixel centers
    dx = centers[None, :] - shape.center[0]
    dy = centers[:, None] - shape.center[1]
    r = shape.radius
    if shape.kind == "circle":
        return dx**2 + dy**2 <= r**2
    if shape.kind == "square":
        return np.maximum(abs(dx), abs(dy)) <= 0.8 * r
    if shape.kind == "triangle":  # pointing up: apex at the top, base 2r wide
        height = 1.8 * r
        return (dy >= -r) & (dy <= height - r) & (abs(dx) <= (dy + r) * r / height)
    if shape.kind == "cross":
        arm = 0.3 * r  # half the width of an arm
        return ((abs(dx) <= r) & (abs(dy) <= arm)) | ((abs(dx) <= arm) & (abs(dy) <= r))
    raise ValueError(f"shape kind must be one of {SHAPES}, got {shape.kind!r}")


def draw(scene: Scene, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """The picture of ``scene``: ``[image_size, image_size, 3]`` uint8 RGB."""
    # A faint brightness gradient in a random direction, and noise: a lightly textured background.
    angle = rng.uniform(0, 2 * np.pi)
    steps = (np.arange(image_size) + 0.5) / image_size - 0.5  # -0.5 .. 0.5 across the picture
    ramp = np.cos(angle) * steps[None, :] + np.sin(angle) * steps[:, None]
    brightness = rng.uniform(0, GRADIENT) * ramp
    image = (
        np.asarray(BACKGROUNDS[scene.background], np.float32)
        + brightness[..., None]
        + NOISE * rng.standard_normal((image_size, image_size, 3), dtype=np.float32)
    )
    for shape in scene.shapes:
        shade = np.asarray(COLORS[shape.color]) + rng.integers(-SHADE_JITTER, SHADE_JITTER + 1, 3)
        image[shape_mask(shape, image_size)] = shade
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# === Captions ===


def position(cell: tuple[int, int], corner_word: bool) -> str:
    """``in the top left corner`` (``at the top left`` without ``corner_word``), ``at the top``,
    ``on the left``, ``in the center``."""
    row, column = ROW_WORDS[cell[0]], COLUMN_WORDS[cell[1]]
    if row and column:
        return f"in the {row} {column} corner" if corner_word else f"at the {row} {column}"
    if row:
        return f"at the {row}"
    if column:
        return f"on the {column}"
    return "in the center"


def relation(shape: Shape, other: Shape, rng: np.random.Generator) -> str:
    """Where ``shape`` is from ``other``: ``to the left of``, ``to the right of``, ``above`` or
    ``below``, along the larger step between their cells (either one on a diagonal)."""
    rows, columns = shape.cell[0] - other.cell[0], shape.cell[1] - other.cell[1]
    horizontal = abs(columns) > abs(rows) or (abs(columns) == abs(rows) and rng.random() < 0.5)
    if horizontal:
        return "to the left of" if columns < 0 else "to the right of"
    return "above" if rows < 0 else "below"


def _one_shape_captions(scene: Scene) -> list[str]:
    (s,) = scene.shapes
    return [
        f"a {s.size} {s.color} {s.kind} {position(s.cell, True)}",
        f"there is a {s.color} {s.kind} {position(s.cell, False)}",
        f"a {s.color} {s.kind} on a {scene.background} background",
        f"{position(s.cell, True)} there is a {s.size} {s.color} {s.kind}",
        f"a {s.size} {s.kind} {position(s.cell, False)}",
        f"a {s.size} {s.color} {s.kind} on a {scene.background} background",
    ]


def _two_shape_captions(scene: Scene, rng: np.random.Generator) -> list[str]:
    def pair():  # which shape a caption names first varies
        first, second = scene.shapes
        return (first, second) if rng.random() < 0.5 else (second, first)

    a, b = pair()
    captions = [f"a {a.size} {a.color} {a.kind} and a {b.size} {b.color} {b.kind}"]
    a, b = pair()
    captions.append(f"a {a.color} {a.kind} {relation(a, b, rng)} a {b.color} {b.kind}")
    a, b = pair()
    captions.append(
        f"there is a {a.color} {a.kind} {position(a.cell, False)} "
        f"and a {b.color} {b.kind} {position(b.cell, False)}"
    )
    a, b = pair()
    captions.append(f"a {a.size} {a.kind} {relation(a, b, rng)} a {b.size} {b.kind}")
    a, b = pair()
    captions.append(
        f"a {a.color} {a.kind} and a {b.color} {b.kind} on a {scene.background} background"
    )
    a, b = pair()
    captions.append(
        f"a {a.color} {a.kind} {position(a.cell, True)} "
        f"and a {b.size} {b.color} {b.kind} {position(b.cell, True)}"
    )
    return captions


def describe(
    scene: Scene, rng: np.random.Generator, count: int = CAPTIONS_PER_IMAGE
) -> tuple[str, ...]:
    """``count`` different captions of ``scene``, chosen among the grammar's paraphrases."""
    if len(scene.shapes) == 1:
        candidates = _one_shape_captions(scene)
    else:
        candidates = _two_shape_captions(scene, rng)
    chosen = rng.choice(len(candidates), size=count, replace=False)
    return tuple(candidates[i] for i in chosen)


def _words() -> frozenset[str]:
    words = {*SHAPES, *COLORS, *BACKGROUNDS, *SIZES, "corner", "center"}
    words |= {word for word in (*ROW_WORDS, *COLUMN_WORDS) if word}
    words |= set("a the in at on of to there is and above below background".split())
    return frozenset(words)


VOCABULARY = _words()


# === Splits ===


def _stream(seed: int, split: str) -> np.random.Generator:
    """Each split's own random stream of ``seed`` (SeedSequence needs non-negative entropy)."""
    return np.random.default_rng([SPLITS.index(split), seed % 2**64])


def _generate(
    seed: int, sizes: dict[str, int], image_size: int
) -> dict[str, list[tuple[Scene, np.ndarray, tuple[str, ...]]]]:
    """Scenes, pictures and captions of each split; a picture seen before is drawn again."""
    seen: set[bytes] = set()
    generated = {}
    for split, size in sizes.items():
        rng = _stream(seed, split)
        examples = generated[split] = []
        for _ in range(size):
            for _ in range(MAX_ATTEMPTS):
                scene = random_scene(rng, image_size)
                pixels = draw(scene, image_size, rng)
                digest = hashlib.blake2b(pixels.tobytes(), digest_size=16).digest()
                if digest not in seen:
                    break
            else:
                raise RuntimeError(f"no new picture in {MAX_ATTEMPTS} attempts ({image_size}px)")
            seen.add(digest)
            examples.append((scene, pixels, describe(scene, rng)))
    return generated


def builtin_scenes(
    seed: int = 0,
    split: str = "train",
    *,
    train: int = 1600,
    validation: int = 200,
    test: int = 200,
    image_size: int = 64,
) -> list[Scene]:
    """The scenes of ``split`` of ``builtin_caption_data`` with the same arguments, in order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    sizes = dict(zip(SPLITS, (train, validation, test), strict=True))
    # Earlier splits are generated too: a picture already drawn there is skipped in this one.
    needed = {name: sizes[name] for name in SPLITS[: SPLITS.index(split) + 1]}
    return [scene for scene, _, _ in _generate(seed, needed, image_size)[split]]


def builtin_caption_data(
    seed: int = 0,
    *,
    train: int = 1600,
    validation: int = 200,
    test: int = 200,
    image_size: int = 64,
) -> Splits:
    """Train, validation and test splits of generated pictures with five captions each.

    Args:
        seed: the data's seed; each split draws from its own stream of it.
        train, validation, test: pictures in each split.
        image_size: the pictures' side in pixels (at least 16).

    Returns:
        ``Splits`` of ``ExampleList[CaptionedImage]`` holding PNG bytes, named
        ``shapes-{split}-{number:05d}.png`` from 1.
    """
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size!r}")
    for name, count in (("train", train), ("validation", validation), ("test", test)):
        if count < 0:
            raise ValueError(f"{name} must be a count of pictures, got {count!r}")
    sizes = {"train": train, "validation": validation, "test": test}
    splits = {}
    for split, examples in _generate(seed, sizes, image_size).items():
        splits[split] = ExampleList(
            CaptionedImage(
                f"shapes-{split}-{number:05d}.png",
                captions,
                encoded=tf.io.encode_png(pixels).numpy(),
            )
            for number, (_, pixels, captions) in enumerate(examples, start=1)
        )
    total = train + validation + test
    return Splits(
        splits,
        f"built-in shapes: {total:,} generated {image_size}x{image_size} images, "
        f"{CAPTIONS_PER_IMAGE} captions each (seed {seed}; a smoke-test dataset, not a benchmark)",
    )


def write_pictures(folder: Path, count: int, seed: int) -> list[Path]:
    """Writes ``count`` new pictures (the test split of ``seed``) as PNG files into ``folder``,
    each with its captions in a ``.txt`` file beside it, for trying a model on files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for image in builtin_caption_data(seed, train=0, validation=0, test=count).split("test"):
        path = folder / image.name
        path.write_bytes(image.encoded)
        path.with_suffix(".txt").write_text("\n".join(image.captions) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(arguments: list[str] | None = None) -> None:
    """``python -m apps.captioning.builtin_data --out DIR [--count N] [--seed S]``."""
    parser = argparse.ArgumentParser(description=write_pictures.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--count", type=int, default=4, help="pictures (default 4)")
    parser.add_argument(
        "--seed", type=int, default=2026, help="seed (default 2026, unlike training's 0)"
    )
    args = parser.parse_args(arguments)
    for path in write_pictures(args.out, args.count, args.seed):
        captions = path.with_suffix(".txt").read_text(encoding="utf-8").splitlines()
        print(f"{path}\t{captions[0]}")


if __name__ == "__main__":
    main()
