"""Sentiment data: labeled texts in standard formats, with errors that name file, line and value.

Formats (``load_labeled_text``):

- an aclImdb directory: ``train/{neg,pos}/*.txt`` and/or ``test/{neg,pos}/*.txt``, one review a
  file (``unsup/`` and other folders are ignored); labels ``negative`` and ``positive``;
- an SST-2 folder: ``stsa.binary.{train,dev,test}``, one ``label<space>text`` a line with label
  0 or 1 (``negative``/``positive``); any of the three files may be missing;
- a TSV or CSV file with a header row naming a text and a label column, or a folder holding
  ``train``/``dev`` (or ``validation``)/``test`` files of that kind.

Splits are the dataset's own where it has them (SST-2's dev is the validation split); where a
validation split is missing, a seeded fraction of the training split is held back, and the
description says so (``apps/common/datasets.py``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from apps.common.datasets import (
    WHOLE_FILE,
    Splits,
    read_utf8,
    split_files,
)
from apps.common.errors import SeqappsError
from apps.common.progress import track

BINARY_LABELS = ["negative", "positive"]
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document")
LABEL_COLUMNS = ("label", "sentiment", "polarity", "class", "category")
TABLE_SUFFIXES = {".tsv": "\t", ".csv": ","}


@dataclass
class LabeledTexts:
    """Parallel lists of texts and label names, with where each example came from."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)  # "file:line", for error messages

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str, label: str, origin: str) -> None:
        self.texts.append(text)
        self.labels.append(label)
        self.origins.append(origin)

    def subset(self, indices: list[int]) -> LabeledTexts:
        return LabeledTexts(
            [self.texts[i] for i in indices],
            [self.labels[i] for i in indices],
            [self.origins[i] for i in indices],
        )


@dataclass
class LabeledTextData(Splits):
    """``Splits`` of ``LabeledTexts`` and the dataset's label names, in id order."""

    label_names: list[str] = field(default_factory=list)


def load_aclimdb(root: Path) -> LabeledTextData:
    splits = {}
    for split in ("train", "test"):
        examples = LabeledTexts()
        for label_index, folder in enumerate(("neg", "pos")):
            directory = root / split / folder
            if not directory.is_dir():
                continue
            paths = sorted(directory.glob("*.txt"))
            for path in track(paths, f"reading {directory}", len(paths), "files"):
                text = read_utf8(path).strip()
                if not text:
                    raise SeqappsError(f"{path}: empty review")
                examples.add(text, BINARY_LABELS[label_index], str(path))
        if len(examples):
            splits[split] = examples
    if not splits:
        raise SeqappsError(f"{root}: no reviews found under train/ or test/ ({{neg,pos}}/*.txt)")
    return LabeledTextData(splits, f"aclImdb folder {root}", list(BINARY_LABELS))


def load_sst2(root: Path) -> LabeledTextData:
    splits = {}
    for split, suffix in (("train", "train"), ("validation", "dev"), ("test", "test")):
        path = root / f"stsa.binary.{suffix}"
        if not path.exists():
            continue
        examples = LabeledTexts()
        for number, line in enumerate(read_utf8(path).splitlines(), start=1):
            if not line.strip():
                continue
            label, _, text = line.partition(" ")
            if label not in ("0", "1"):
                raise SeqappsError(f"{path}, line {number}: label must be 0 or 1, got {label!r}")
            if not text.strip():
                raise SeqappsError(f"{path}, line {number}: missing text after the label")
            examples.add(text.strip(), BINARY_LABELS[int(label)], f"{path}:{number}")
        if not len(examples):
            raise SeqappsError(f"{path}: empty file")
        splits[split] = examples
    return LabeledTextData(splits, f"SST-2 folder {root}", list(BINARY_LABELS))


def _pick_column(header: list[str], wanted: str | None, candidates, kind: str, path) -> int:
    lowered = [name.strip().lower() for name in header]
    if wanted is not None:
        if wanted.lower() not in lowered:
            raise SeqappsError(f"{path}, line 1: no {kind} column named {wanted!r} in {header}")
        return lowered.index(wanted.lower())
    for candidate in candidates:
        if candidate in lowered:
            return lowered.index(candidate)
    raise SeqappsError(
        f"{path}, line 1: no {kind} column in header {header}; name one of {list(candidates)} "
        f"or pass --{kind}-column"
    )


def read_table(path: Path, text_column: str | None, label_column: str | None) -> LabeledTexts:
    delimiter = TABLE_SUFFIXES.get(path.suffix.lower())
    if delimiter is None:
        raise SeqappsError(f"{path}: expected a .tsv or .csv file")
    content = read_utf8(path)
    if not content.strip():
        raise SeqappsError(f"{path}: empty file")
    rows = csv.reader(content.splitlines(), delimiter=delimiter)
    header = next(rows)
    text_index = _pick_column(header, text_column, TEXT_COLUMNS, "text", path)
    label_index = _pick_column(header, label_column, LABEL_COLUMNS, "label", path)
    examples = LabeledTexts()
    for number, row in enumerate(rows, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise SeqappsError(
                f"{path}, line {number}: {len(row)} fields, the header has {len(header)}"
            )
        label = row[label_index].strip()
        if not label:
            raise SeqappsError(f"{path}, line {number}: missing label")
        examples.add(row[text_index], label, f"{path}:{number}")
    if not len(examples):
        raise SeqappsError(f"{path}: no examples after the header")
    return examples


def _sorted_label_names(labels) -> list[str]:
    names = set(labels)
    if all(name.lstrip("-").isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def load_table_data(
    path: Path, text_column: str | None, label_column: str | None
) -> LabeledTextData:
    if path.is_file():
        splits = {WHOLE_FILE: read_table(path, text_column, label_column)}
        description = f"table {path}"
    else:
        splits = {
            split: read_table(file, text_column, label_column)
            for split, file in split_files(path, tuple(TABLE_SUFFIXES)).items()
        }
        description = f"table folder {path}"
    if not splits:
        raise SeqappsError(f"{path}: no train/dev/test .tsv or .csv files")
    source = splits.get("train") or next(iter(splits.values()))
    return LabeledTextData(splits, description, _sorted_label_names(source.labels))


def detect_format(path: Path) -> str:
    if path.is_file():
        return "table"
    if not path.is_dir():
        raise SeqappsError(f"{path}: no such file or directory")
    if any(
        (path / split / label).is_dir() for split in ("train", "test") for label in ("neg", "pos")
    ):
        return "aclimdb"
    if any((path / f"stsa.binary.{s}").exists() for s in ("train", "dev", "test")):
        return "sst2"
    if split_files(path, tuple(TABLE_SUFFIXES)):
        return "table"
    raise SeqappsError(
        f"{path}: not a dataset this app reads; expected an aclImdb folder "
        "(train/{neg,pos}/*.txt), an SST-2 folder (stsa.binary.{train,dev,test}), a .tsv/.csv "
        "file with a header, or a folder of train/dev/test .tsv/.csv files"
    )


def load_labeled_text(
    path: Path,
    *,
    seed: int = 0,
    validation_fraction: float = 0.1,
    text_column: str | None = None,
    label_column: str | None = None,
    for_training: bool = True,
) -> LabeledTextData:
    """Reads any of the formats in the module docstring; see there for the splits.

    A single table file is one split, ``"whole file"``; ``for_training`` makes it the training
    split instead (a validation split is then held back from it).
    """
    path = Path(path)
    data_format = detect_format(path)
    if data_format == "aclimdb":
        data = load_aclimdb(path)
    elif data_format == "sst2":
        data = load_sst2(path)
    else:
        data = load_table_data(path, text_column, label_column)
    return data.for_training(validation_fraction, seed) if for_training else data
