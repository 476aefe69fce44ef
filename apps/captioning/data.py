"""Captioning data: images with their reference captions, from Flickr8k-style folders or CSV files.

Formats (``load_caption_data``):

- no path: the built-in images of colored shapes (``builtin_data.py``), train, validation and
  test;
- a folder in the Flickr8k layout: a caption file of ``image.jpg#N<TAB>caption`` lines
  (``Flickr8k.token.txt``; else the one ``*.token.txt`` or ``*.token`` file of the folder, such as
  Flickr30k's ``results_20130124.token``; the lemmatized ``Flickr8k.lemma.token.txt`` only when it
  is the only one) beside an image folder (below). Captions are ordered by ``N``. The split lists
  ``Flickr_8k.trainImages.txt``, ``Flickr_8k.devImages.txt`` and ``Flickr_8k.testImages.txt``
  (one image name a line), where present, make the train, validation and test splits;
- a folder in the CSV layout (Kaggle's Flickr8k): ``captions.txt`` or ``captions.csv``, comma
  separated with a header naming the columns ``image`` and ``caption`` (other columns are
  ignored; a caption may hold quoted commas, and unquoted ones when it is the last column),
  beside an image folder; split lists beside it are used as in the Flickr8k layout;
- a caption file itself, of either kind (``*.token.txt`` and ``*.token`` are token files, ``.csv``
  and ``captions.txt`` CSV; any other name is told apart by a tab in its first line): its folder
  is searched for the images and the split lists.

The image folder is the first of ``images/``, ``Images/``, ``Flicker8k_Dataset/`` (sic: the
official zip's spelling) and ``Flickr8k_Dataset/`` beside the caption file, else that folder
itself if it holds image files (``.jpg``, ``.jpeg``, ``.png``, ``.gif``, ``.bmp``). It is listed
once, so a caption file of 8,092 images against a folder of a few hundred costs no more than the
folder. An image is usable when its file is a regular file whose first bytes are a JPEG, PNG, GIF
or BMP signature; nothing is decoded here.

Splits. One example per image, ``CaptionedImage``, with all its captions, so a seeded hold-out
never puts captions of one image on both sides. Without split lists, for training every image is
in ``train`` and a seeded 10 % of the images (``apps/common/datasets.py``) is held back as
``validation``; for evaluation the images form one split, ``WHOLE_FILE``. With split lists, a
missing validation list is held back from train the same way. Examples are sorted by name within
a split; captions keep the order of the file (``#N`` for token files).

Skipped, with a line on stderr (the count and the first names) and a note in the description:
captioned images missing from the image folder, unreadable ones (not a regular file, empty, not a
known image signature), images of the folder without captions, names in a split list without
captions, captioned images in no split list. Errors name the file, the line and the value: a token
line without a tab or without ``#N`` after the image name, an empty caption, a CSV file without
the ``image`` and ``caption`` header, undecodable UTF-8, an image in two split lists. A trailing
``\\r`` and surrounding white space are stripped; blank lines are skipped.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from apps.common.datasets import WHOLE_FILE, ExampleList, Splits, read_utf8, shown_value
from apps.common.errors import SeqappsError

VALIDATION_FRACTION = 0.1
TOKEN_FILE = "Flickr8k.token.txt"
LEMMA_TOKEN_FILE = "Flickr8k.lemma.token.txt"
TOKEN_FILE_PATTERNS = ("*.token.txt", "*.token")
CSV_FILES = ("captions.txt", "captions.csv")
CSV_COLUMNS = ("image", "caption")
IMAGE_FOLDERS = ("images", "Images", "Flicker8k_Dataset", "Flickr8k_Dataset")
SPLIT_LISTS = {
    "train": "Flickr_8k.trainImages.txt",
    "validation": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# The first bytes of each image format read (the longest is PNG's 8).
SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
)
SIGNATURE_BYTES = 8
NOT_AN_IMAGE = "not a JPEG, PNG, GIF or BMP file"
NAMES_SHOWN = 5  # first names a skip note lists
PROGRESS_FROM = 2000  # images whose signatures are checked with a progress line in logs


@dataclass(frozen=True)
class CaptionedImage:
    """One image and all its reference captions.

    Args:
        name: the image's name as the caption file gives it (``1000268201_693b08cb0e.jpg``), or
            a generated one (``shapes-train-00001.png``).
        captions: the captions, stripped, in file order.
        path: the image file; ``None`` when ``encoded`` holds the image.
        encoded: the encoded image (PNG bytes for the built-in data); ``None`` for a file.
    """

    name: str
    captions: tuple[str, ...]
    path: Path | None = None
    encoded: bytes | None = field(default=None, repr=False)

    def __post_init__(self):
        if (self.path is None) == (self.encoded is None):
            raise ValueError(
                f"CaptionedImage {self.name!r} needs exactly one of path and encoded, got "
                f"path={self.path!r} and {'no' if self.encoded is None else 'some'} bytes"
            )

    def read(self) -> bytes:
        """The encoded image: the file's bytes, or ``encoded``."""
        if self.encoded is not None:
            return self.encoded
        try:
            return self.path.read_bytes()
        except OSError as error:
            raise SeqappsError(f"{self.path}: cannot read image ({error.strerror})") from error


# Captions by image name, images in the order the file first names them.
Captions = dict[str, list[str]]


def _lines(path: Path) -> list[str]:
    """The lines of ``path`` without line ends; only ``\\n`` ends a line (``str.splitlines``
    would also split a caption at a form feed or U+2028)."""
    return [line.removesuffix("\r") for line in read_utf8(path).split("\n")]


# === Caption files ===


def read_token_file(path: Path) -> Captions:
    """The captions of a Flickr8k token file (``image.jpg#N<TAB>caption`` lines), by ``#N``."""
    numbered: dict[str, list[tuple[int, str]]] = {}
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        caption_id, tab, caption = line.partition("\t")
        if not tab:
            raise SeqappsError(
                f"{path}, line {number}: no tab in {shown_value(line)}; "
                "expected image.jpg#N<TAB>caption"
            )
        name, hash_sign, index = caption_id.strip().rpartition("#")
        if not hash_sign or not name or not index.isdigit():
            raise SeqappsError(
                f"{path}, line {number}: no #N after the image name in {shown_value(caption_id)}; "
                "expected image.jpg#N<TAB>caption"
            )
        caption = caption.strip()
        if not caption:
            raise SeqappsError(
                f"{path}, line {number}: empty caption for {shown_value(caption_id)}"
            )
        numbered.setdefault(name, []).append((int(index), caption))
    # sorted() is stable: a repeated #N keeps the file order.
    return {
        name: [caption for _, caption in sorted(pairs, key=lambda pair: pair[0])]
        for name, pairs in numbered.items()
    }


def read_caption_csv(path: Path) -> Captions:
    """The captions of a CSV file with ``image`` and ``caption`` columns, in file order."""
    reader = csv.reader(io.StringIO(read_utf8(path), newline=""))
    header = None
    captions: Captions = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            if not set(CSV_COLUMNS) <= set(header):
                raise SeqappsError(
                    f"{path}, line {reader.line_num}: expected a header naming the columns "
                    f"image and caption ('image,caption'), got {shown_value(','.join(row))}"
                )
            image_column, caption_column = (header.index(column) for column in CSV_COLUMNS)
            continue
        if len(row) <= max(image_column, caption_column):
            raise SeqappsError(
                f"{path}, line {reader.line_num}: {len(row)} column(s) in "
                f"{shown_value(','.join(row))}; expected {len(header)} ({','.join(header)})"
            )
        if caption_column == len(header) - 1:
            # Unquoted commas in a last-column caption split it: put them back.
            caption = ",".join(row[caption_column:])
        else:
            caption = row[caption_column]
        name, caption = row[image_column].strip(), caption.strip()
        if not name:
            raise SeqappsError(
                f"{path}, line {reader.line_num}: no image name in {shown_value(','.join(row))}"
            )
        if not caption:
            raise SeqappsError(
                f"{path}, line {reader.line_num}: empty caption for {shown_value(name)}"
            )
        captions.setdefault(name, []).append(caption)
    if header is None:
        raise SeqappsError(f"{path}: empty file; expected a header line 'image,caption'")
    return captions


def _is_token_file(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith((".token.txt", ".token")):
        return True
    if name.endswith(".csv") or name in CSV_FILES:
        return False
    first = next((line for line in _lines(path) if line.strip()), "")
    return "\t" in first


def _find_caption_file(folder: Path) -> Path:
    """The caption file of a dataset folder (module docstring)."""
    if (folder / TOKEN_FILE).is_file():
        return folder / TOKEN_FILE
    token_files = sorted(
        {file for pattern in TOKEN_FILE_PATTERNS for file in folder.glob(pattern) if file.is_file()}
    )
    raw = [file for file in token_files if ".lemma." not in file.name]
    candidates = raw or token_files
    if len(candidates) > 1:
        raise SeqappsError(
            f"{folder}: several caption files ({', '.join(file.name for file in candidates)}); "
            "give the one to read as --data"
        )
    if candidates:
        return candidates[0]
    for name in CSV_FILES:
        if (folder / name).is_file():
            return folder / name
    raise SeqappsError(
        f"{folder}: no caption file; expected {TOKEN_FILE} (the Flickr8k layout, lines "
        "image.jpg#N<TAB>caption) or captions.txt / captions.csv (CSV with the header "
        "image,caption), beside an image folder (images/ or Flicker8k_Dataset/)"
    )


# === Image folders ===


def _find_image_folder(folder: Path, caption_file: Path) -> Path:
    for name in IMAGE_FOLDERS:
        if (folder / name).is_dir():
            return folder / name
    with os.scandir(folder) as listing:
        if any(_looks_like_image(entry.name) for entry in listing):
            return folder
    raise SeqappsError(
        f"{folder}: no image folder beside {caption_file.name}; expected one of "
        f"{', '.join(name + '/' for name in IMAGE_FOLDERS)}, or the image files in {folder} itself"
    )


def _looks_like_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def _unreadable(entry: os.DirEntry) -> str | None:
    """Why the image file ``entry`` cannot be used, or ``None`` when it can (its first bytes)."""
    try:
        if not entry.is_file():
            return "not a regular file"
        with open(entry.path, "rb") as file:
            start = file.read(SIGNATURE_BYTES)
    except OSError as error:
        return error.strerror or "cannot read"
    if not start:
        return "empty"
    if not start.startswith(SIGNATURES):
        return NOT_AN_IMAGE
    return None


def _first(names: Iterable[str], count: int) -> str:
    names = list(names)
    more = ", ..." if count > len(names) else ""
    return ", ".join(names) + more


class _Notes:
    """Skipped and ignored items: one line on stderr each, and notes for the description."""

    def __init__(self):
        self.notes: list[str] = []

    def add(self, where: str, what: str, names: list[str], note: str) -> None:
        """``where: what (first: names...)`` on stderr, ``note`` in the description."""
        if not names:
            return
        shown = _first(names[:NAMES_SHOWN], len(names))
        print(f"{where}: {what} (first: {shown})", file=sys.stderr)
        self.notes.append(note)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _folder_label(image_folder: Path, folder: Path) -> str:
    return "./" if image_folder == folder else f"{image_folder.name}/"


def _usable_images(
    captions: Captions, image_folder: Path, caption_file: Path, label: str, notes: _Notes
) -> dict[str, Path]:
    """``{name: file}`` of the captioned images usable in ``image_folder``, in caption order."""
    with os.scandir(image_folder) as listing:
        entries = {entry.name: entry for entry in listing}
    missing = [name for name in captions if name not in entries]
    notes.add(
        str(caption_file),
        f"skipped {_plural(len(missing), 'captioned image')} not found in {image_folder}",
        missing,
        f"skipped {_plural(len(missing), 'captioned image')} not found in {label}",
    )
    present = [name for name in captions if name in entries]
    if len(present) >= PROGRESS_FROM:  # a line now and then in logs, for a large folder
        from apps.common.progress import track  # loads Keras: only when there is much to check

        present = track(present, f"checking {image_folder}", len(present), "images")
    usable, unreadable = {}, []
    for name in present:
        reason = _unreadable(entries[name])
        if reason is None:
            usable[name] = image_folder / name
        else:
            unreadable.append(f"{name} ({reason})")
    notes.add(
        str(image_folder),
        f"skipped {_plural(len(unreadable), 'unreadable image')}",
        unreadable,
        f"skipped {_plural(len(unreadable), 'unreadable image')} in {label}",
    )
    uncaptioned = sorted(
        name
        for name, entry in entries.items()
        if name not in captions and _looks_like_image(name) and entry.is_file()
    )
    notes.add(
        str(image_folder),
        f"ignored {_plural(len(uncaptioned), 'image')} without captions in {caption_file.name}",
        uncaptioned,
        f"{_plural(len(uncaptioned), 'image')} without captions ignored",
    )
    return usable


# === Splits ===


def _read_split_lists(folder: Path) -> dict[str, list[str]]:
    """``{split: names}`` from the split lists of ``folder``; an image may be in one only."""
    lists: dict[str, list[str]] = {}
    seen: dict[str, tuple[Path, int]] = {}
    for split, file_name in SPLIT_LISTS.items():
        path = folder / file_name
        if not path.is_file():
            continue
        names = lists[split] = []
        for number, line in enumerate(_lines(path), start=1):
            name = line.strip()
            if not name:
                continue
            if name in seen:
                other, other_number = seen[name]
                where = "line" if other == path else f"{other.name}, line"
                raise SeqappsError(
                    f"{path}, line {number}: {shown_value(name)} is listed twice (also {where} "
                    f"{other_number}); an image belongs to one split"
                )
            seen[name] = (path, number)
            names.append(name)
    return lists


def _examples(names: Iterable[str], captions: Captions, usable: dict[str, Path]) -> ExampleList:
    return ExampleList(
        CaptionedImage(name, tuple(captions[name]), path=usable[name]) for name in sorted(names)
    )


def load_caption_data(
    path: Path | None,
    *,
    seed: int,
    for_training: bool,
    validation_fraction: float = VALIDATION_FRACTION,
) -> Splits:
    """Reads any of the formats in the module docstring; see there for the splits.

    Args:
        path: a dataset folder or a caption file; ``None`` for the built-in data.
        seed: seeds the validation hold-out (and the built-in data).
        for_training: without split lists, every image goes to ``train`` and a validation
            split is held back from it (otherwise they form one split, ``WHOLE_FILE``); with
            split lists, validation is held back from train only when there is no dev list.
        validation_fraction: the fraction of training images held back.

    Returns:
        ``Splits`` of ``ExampleList[CaptionedImage]``, one example per image.
    """
    if path is None:
        from apps.captioning.builtin_data import builtin_caption_data  # it builds on this module

        return builtin_caption_data(seed)
    path = Path(path)
    if path.is_dir():
        folder, caption_file = path, _find_caption_file(path)
    elif path.is_file():
        folder, caption_file = path.parent, path
    else:
        raise SeqappsError(f"{path}: no such file or directory")
    token_file = _is_token_file(caption_file)
    captions = read_token_file(caption_file) if token_file else read_caption_csv(caption_file)
    if not captions:
        raise SeqappsError(f"{caption_file}: no captions (only blank lines)")
    image_folder = _find_image_folder(folder, caption_file)
    label = _folder_label(image_folder, folder)

    notes = _Notes()
    usable = _usable_images(captions, image_folder, caption_file, label, notes)
    if not usable:
        raise SeqappsError(
            f"{caption_file}: none of its {_plural(len(captions), 'image')} is a readable image "
            f"in {image_folder} (first: {_first(list(captions)[:NAMES_SHOWN], len(captions))})"
        )
    split_lists = _read_split_lists(folder)
    if split_lists:
        splits, listed = {}, set()
        for split, names in split_lists.items():
            listed.update(names)
            uncaptioned = [name for name in names if name not in captions]
            notes.add(
                str(folder / SPLIT_LISTS[split]),
                f"ignored {_plural(len(uncaptioned), 'listed image')} without captions in "
                f"{caption_file.name}",
                uncaptioned,
                f"{_plural(len(uncaptioned), 'image')} of {SPLIT_LISTS[split]} without captions "
                "ignored",
            )
            splits[split] = _examples((n for n in names if n in usable), captions, usable)
        unlisted = [name for name in usable if name not in listed]
        notes.add(
            str(folder),
            f"ignored {_plural(len(unlisted), 'captioned image')} in no split list",
            unlisted,
            f"{_plural(len(unlisted), 'captioned image')} in no split list ignored",
        )
        used = [name for name in usable if name in listed]
        if not used:
            raise SeqappsError(
                f"{folder}: none of the {_plural(len(usable), 'usable image')} is named in the "
                f"split lists ({', '.join(SPLIT_LISTS[split] for split in split_lists)})"
            )
    else:
        used = list(usable)
        splits = {("train" if for_training else WHOLE_FILE): _examples(used, captions, usable)}

    layout = "Flickr8k layout" if token_file else "CSV layout"
    caption_count = sum(len(captions[name]) for name in used)
    sources = [label, caption_file.name] + [SPLIT_LISTS[split] for split in split_lists]
    description = (
        f"{layout} {path}: {_plural(len(used), 'image')} with "
        f"{_plural(caption_count, 'caption')} ({', '.join(sources)})"
    )
    if notes.notes:
        description += "; " + "; ".join(notes.notes)
    data = Splits(splits, description)
    if for_training:
        data.hold_out(validation_fraction, seed)
    return data
