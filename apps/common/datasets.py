"""Splits of a dataset, seeded hold-outs and UTF-8 reading with errors that name file and line.

Every app's ``load_data`` returns ``Splits``: named splits of examples (any container with
``len`` and ``subset(indices)``) and a description of where they came from, which the run's
``config.json`` records. A single file given to ``evaluate`` is one split, ``WHOLE_FILE``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from apps.common.errors import SeqappsError

SPLITS = ("train", "validation", "test")
WHOLE_FILE = "whole file"  # the one split of a single file read for evaluation
# File stems that name each split in dataset folders (train.tsv, dev.conllu, ...).
SPLIT_FILE_STEMS = {
    "train": ("train",),
    "validation": ("dev", "validation", "valid", "val"),
    "test": ("test",),
}


class Examples(Protocol):
    """What a split holds: a length, and a subset by indices (for seeded hold-outs)."""

    def __len__(self) -> int: ...

    def subset(self, indices: Sequence[int]) -> Any: ...


class ExampleList(list):
    """A split as a plain list of examples (any objects), with ``subset`` for hold-outs."""

    def subset(self, indices: Sequence[int]) -> ExampleList:
        return ExampleList(self[i] for i in indices)


@dataclass
class Splits:
    """Named splits of one dataset and a description of its source (and of any hold-out)."""

    splits: dict[str, Examples]
    description: str

    def split(self, name: str) -> Any:
        """The split ``name``; a single file (``WHOLE_FILE``) stands for any split."""
        if set(self.splits) == {WHOLE_FILE}:
            return self.splits[WHOLE_FILE]
        if name not in self.splits or not len(self.splits[name]):
            available = ", ".join(s for s in self.splits if len(self.splits[s])) or "none"
            raise SeqappsError(
                f"{self.description}: has no {name} split (splits found: {available})"
            )
        return self.splits[name]

    def split_name(self, name: str) -> str:
        """How ``split(name)`` is reported: ``WHOLE_FILE`` for a single file."""
        return WHOLE_FILE if set(self.splits) == {WHOLE_FILE} else name

    def sizes(self) -> str:
        """``"train 3600, validation 400, test 1000"``."""
        ordered = [s for s in SPLITS if s in self.splits] + [
            s for s in self.splits if s not in SPLITS
        ]
        return ", ".join(f"{name} {len(self.splits[name])}" for name in ordered)

    def for_training(self, fraction: float, seed: int) -> Splits:
        """A single file becomes the training split; a missing validation split is held out."""
        if WHOLE_FILE in self.splits:
            self.splits["train"] = self.splits.pop(WHOLE_FILE)
        return self.hold_out(fraction, seed)

    def hold_out(self, fraction: float, seed: int, source: str = "train") -> Splits:
        """Moves a seeded ``fraction`` of ``source`` into a validation split, if there is none."""
        train = self.splits.get(source)
        if train is None or len(train) < 2 or len(self.splits.get("validation", ())):
            return self
        indices = list(range(len(train)))
        random.Random(seed).shuffle(indices)
        held = max(1, round(fraction * len(train)))
        self.splits["validation"] = train.subset(sorted(indices[:held]))
        self.splits[source] = train.subset(sorted(indices[held:]))
        self.description += (
            f"; validation = {held} examples ({fraction:.0%}) held back from {source} "
            f"with seed {seed}"
        )
        return self


SHOWN_VALUE_CHARACTERS = 60  # of a bad value quoted in an error


def shown_value(value: str) -> str:
    """``value`` quoted for an error message, its first 60 characters and "..." if longer."""
    if len(value) <= SHOWN_VALUE_CHARACTERS:
        return repr(value)
    return repr(value[:SHOWN_VALUE_CHARACTERS]) + "..."


def read_utf8(path: Path) -> str:
    """The text of ``path``; undecodable bytes are an error naming the line and the bytes."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SeqappsError(f"{path}: cannot read ({error.strerror})") from error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SeqappsError(
            f"{path}, line {line}: undecodable bytes {data[error.start : error.end]!r} "
            "(expected UTF-8)"
        ) from error


def split_files(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """``{split: file}`` for the split files of ``folder`` (``train.tsv``, ``dev.tsv``...),
    the first stem and suffix found for each split."""
    found = {}
    for split, stems in SPLIT_FILE_STEMS.items():
        for stem in stems:
            files = [folder / f"{stem}{suffix}" for suffix in suffixes]
            existing = [f for f in files if f.exists()]
            if existing:
                found[split] = existing[0]
                break
    return found
