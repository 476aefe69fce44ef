"""Translation data: sentence pairs from Multi30k-style folders or tab-separated files.

Formats (``load_translation_data``):

- no path: the built-in English -> German sentences (``builtin_data.py``), train, validation
  and test (``--source de --target en`` reverses them);
- a folder of line-aligned file pairs ``NAME.SRC`` / ``NAME.TGT``, each plain or gzipped
  (``NAME.SRC.gz``): line N of one file translates line N of the other. This is the Multi30k
  layout (``train.en.gz``, ``train.de.gz``, ``val.en.gz``, ``val.de.gz``,
  ``test_2016_flickr.en.gz``, ...). A file's language is its last suffix before ``.gz`` (``en``,
  ``de``, any letters and digits; ``README``, ``.md``, ``.txt`` and the like are not data).
  ``--source``/``--target`` choose the direction; without them a folder with English and German
  files is read en -> de, and one flag with two languages implies the other;
- a folder of ``train``, ``dev`` (or ``val``...) and ``test`` ``.tsv`` files of tab-separated pairs;
- one tab-separated file of ``source<TAB>target[<TAB>...]`` lines, plain or gzipped, any name
  (the Tatoeba / manythings.org ``deu.txt`` style: a third column, the attribution, is ignored).
  The first column is the source; ``--source``/``--target`` only name the languages.

Splits. Every ``NAME`` of a folder is a split (``--split test_2017_flickr``), and three aliases
find the usual ones: ``train``; ``validation``, the first of ``val``, ``dev``, ``valid``,
``validation``; ``test``, the split ``test``, else the one name starting with ``test``
(``test_2016_flickr``), else an error listing them. Reports name the split actually read. A
folder's splits are read when first used, so training reads train and validation only, and
evaluation only the split it scores. A single file is one split, ``WHOLE_FILE``, for evaluation;
for training it becomes the training split. A missing validation split is a seeded 10 % of the
training split (``apps/common/datasets.py``), and the description says so.

Lines. A trailing ``\\r`` and surrounding white space are stripped. A pair with an empty side is
skipped: a line on stderr gives the count and the first line numbers, and the description says
so. The two files of a pair must have as many lines; errors name the file, the line and the value
(undecodable UTF-8, a line without a tab, a corrupt gzip file).
"""

from __future__ import annotations

import gzip
import re
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from apps.common.datasets import (
    WHOLE_FILE,
    ExampleList,
    Splits,
    read_utf8,
    shown_value,
    split_files,
)
from apps.common.errors import SeqappsError

DEFAULT_DIRECTION = ("en", "de")
VALIDATION_FRACTION = 0.1
# Split names the aliases look for, the first found wins (``test`` has a rule of its own).
TRAIN_NAMES = ("train",)
VALIDATION_NAMES = ("val", "dev", "valid", "validation")
TEST_PREFIX = "test"
TABLE_SUFFIXES = (".tsv", ".tsv.gz")
# Last suffixes that are not a language: files that live beside data (README.md, LICENSE.txt).
NOT_LANGUAGES = {
    "md", "txt", "rst", "html", "pdf", "json", "yaml", "yml", "toml", "cfg", "ini", "xml", "sgm",
    "tsv", "csv", "py", "sh", "pl", "zip", "tar", "tgz", "bz2", "xz", "log", "lock", "sha256",
    "md5", "vocab", "model", "bpe", "pkl", "npy", "npz",
}  # fmt: skip
LANGUAGE_SUFFIX = re.compile(r"(?P<name>.+)\.(?P<language>[A-Za-z0-9]+)")
SKIPPED_LINES_SHOWN = 10


@dataclass(frozen=True)
class SentencePair:
    """A sentence and its translation."""

    source: str
    target: str


# A split not read yet: reads it, returns its pairs and a note for the description (or None).
SplitReader = Callable[[], tuple[ExampleList, str | None]]


@dataclass
class TranslationData(Splits):
    """``Splits`` of ``ExampleList[SentencePair]`` in one direction, each read when first used.

    ``splits`` holds the splits read so far, under their own names (``val``,
    ``test_2016_flickr``); ``unread`` reads the others. ``incomplete`` explains the names of a
    folder that have one side only, for the error when one is asked for. ``split(name)`` and
    ``split_name(name)`` resolve the aliases ``train``, ``validation`` and ``test`` (module
    docstring); ``sizes()`` counts the splits read and lists the others.
    """

    source_language: str
    target_language: str
    unread: dict[str, SplitReader] = field(default_factory=dict, repr=False, compare=False)
    incomplete: dict[str, str] = field(default_factory=dict, repr=False)

    def names(self) -> list[str]:
        """Every split, read or not, in name order."""
        return sorted({*self.splits, *self.unread})

    def split(self, name: str) -> ExampleList:
        """The split ``name`` (a name or an alias), read now if it was not."""
        real = self.split_name(name)
        if real not in self.splits:
            examples, note = self.unread[real]()  # an error leaves it unread
            self.splits[real] = examples
            del self.unread[real]
            if note:
                self.description += f"; {note}"
        return self.splits[real]

    def split_name(self, name: str) -> str:
        """The split ``split(name)`` reads: ``val`` for ``validation``, ``test_2016_flickr``
        for ``test`` in Multi30k, ``WHOLE_FILE`` for a single file."""
        real = self._resolve(name)
        if real is not None:
            return real
        names = self.names()
        candidates = _candidates(name, names)
        if len(candidates) > 1:
            choose = "; choose one with --split NAME" if name == "test" else ""
            raise SeqappsError(
                f"{self.description}: several {name} splits ({', '.join(candidates)}){choose}"
            )
        incomplete = _candidates(name, self.incomplete)
        if incomplete:
            raise SeqappsError(self.incomplete[incomplete[0]])
        raise SeqappsError(
            f"{self.description}: no {name} split (splits: {', '.join(names) or 'none'})"
        )

    def has_split(self, name: str) -> bool:
        """Whether ``name`` (a name or an alias) is a split of these data, read or not."""
        return self._resolve(name) is not None

    def sizes(self) -> str:
        """``"train 29000, validation (val) 1014; not read: test_2016_flickr"``: counts of the
        splits read so far, names of the others (counting them would read them)."""
        if self.names() == [WHOLE_FILE]:
            return f"{WHOLE_FILE} {len(self.splits[WHOLE_FILE])}"
        shown, parts = set(), []
        for alias in ("train", "validation", "test"):
            real = self._resolve(alias)
            if real in self.splits and real not in shown:
                label = alias if real == alias else f"{alias} ({real})"
                parts.append(f"{label} {len(self.splits[real])}")
                shown.add(real)
        parts += [f"{name} {len(self.splits[name])}" for name in sorted(set(self.splits) - shown)]
        text = ", ".join(parts)
        if self.unread:
            text += f"; not read: {', '.join(sorted(self.unread))}"
        return text

    def _resolve(self, name: str) -> str | None:
        """The one split ``name`` stands for, or ``None`` (none, or several)."""
        names = self.names()
        if names == [WHOLE_FILE]:
            return WHOLE_FILE
        candidates = _candidates(name, names)
        return candidates[0] if len(candidates) == 1 else None


def _first_part(name: str) -> str:
    """``train`` for ``train.lc.norm.tok`` (Multi30k's tokenized files keep their steps)."""
    return name.split(".")[0]


def _candidates(name: str, names) -> list[str]:
    """The splits among ``names`` that ``name`` stands for: itself, or those of its alias."""
    if name in names:
        return [name]
    if name == "train":
        return sorted(n for n in names if _first_part(n) in TRAIN_NAMES)
    if name == "validation":
        for stem in VALIDATION_NAMES:
            found = sorted(n for n in names if _first_part(n) == stem)
            if found:
                return found
        return []
    if name == "test":
        exact = sorted(n for n in names if _first_part(n) == TEST_PREFIX)
        return exact or sorted(n for n in names if n.startswith(TEST_PREFIX))
    return []


# === Reading files ===


def read_text(path: Path) -> str:
    """The UTF-8 text of a plain or gzipped (``.gz``) file; errors name the file (and line)."""
    if path.suffix.lower() != ".gz":
        return read_utf8(path)
    try:
        with gzip.open(path, "rb") as file:
            data = file.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise SeqappsError(f"{path}: not a valid gzip file ({error})") from error
    except OSError as error:
        raise SeqappsError(f"{path}: cannot read ({error.strerror})") from error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:  # as read_utf8 says it, lines counted after gunzip
        line = data[: error.start].count(b"\n") + 1
        raise SeqappsError(
            f"{path}, line {line}: undecodable bytes {data[error.start : error.end]!r} "
            "(expected UTF-8)"
        ) from error


def _lines(path: Path) -> list[str]:
    """The lines of ``path``, without line ends. Only ``\\n`` ends a line: ``str.splitlines``
    would also split at form feeds and U+2028 inside a sentence, and misalign the pair."""
    lines = read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _skipped_note(where: str, name: str, skipped: list[int]) -> str | None:
    """Says on stderr which pairs with an empty side were skipped; the description's note."""
    if not skipped:
        return None
    pairs = "pair" if len(skipped) == 1 else "pairs"
    shown = ", ".join(map(str, skipped[:SKIPPED_LINES_SHOWN]))
    more = ", ..." if len(skipped) > SKIPPED_LINES_SHOWN else ""
    line_word = "line" if len(skipped) == 1 else "lines"
    print(
        f"{where}: skipped {len(skipped)} {pairs} with an empty side ({line_word} {shown}{more})",
        file=sys.stderr,
    )
    return f"{len(skipped)} {pairs} with an empty side skipped in {name}"


def read_line_pairs(
    source_path: Path, target_path: Path, name: str = ""
) -> tuple[ExampleList, str | None]:
    """The pairs of two line-aligned files, and a note on the pairs skipped (module docstring)."""
    sources, targets = _lines(source_path), _lines(target_path)
    if len(sources) != len(targets):
        raise SeqappsError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; "
            "line-aligned files need one line per sentence in both"
        )
    pairs, skipped = ExampleList(), []
    for number, (source, target) in enumerate(zip(sources, targets, strict=True), start=1):
        source, target = source.strip(), target.strip()
        if source and target:
            pairs.append(SentencePair(source, target))
        else:
            skipped.append(number)
    if not pairs:
        what = "empty files" if not sources else "every line has an empty side"
        raise SeqappsError(f"{source_path} / {target_path}: no sentence pairs ({what})")
    return pairs, _skipped_note(f"{source_path} / {target_path}", name or source_path.name, skipped)


def read_tab_separated(path: Path, name: str = "") -> tuple[ExampleList, str | None]:
    """The pairs of a ``source<TAB>target[<TAB>...]`` file (blank lines are ignored), and a note
    on the pairs skipped."""
    pairs, skipped, lines = ExampleList(), [], 0
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        lines += 1
        fields = line.split("\t")
        if len(fields) < 2:
            raise SeqappsError(
                f"{path}, line {number}: no tab in {shown_value(line)}; expected "
                "source<TAB>target (a folder of line-aligned NAME.SRC / NAME.TGT files is given "
                "as the folder)"
            )
        source, target = fields[0].strip(), fields[1].strip()
        if source and target:
            pairs.append(SentencePair(source, target))
        else:
            skipped.append(number)
    if not pairs:
        what = "every line has an empty side" if lines else "no lines"
        raise SeqappsError(f"{path}: no sentence pairs ({what})")
    return pairs, _skipped_note(str(path), name or path.name, skipped)


# === Folders ===


def _language_files(folder: Path) -> dict[str, dict[str, Path]]:
    """``{NAME: {language: file}}`` of the ``NAME.LANG[.gz]`` files of ``folder``; a plain file
    wins over a gzipped one of the same name."""
    found: dict[str, dict[str, Path]] = {}
    for file in sorted(folder.iterdir(), key=lambda f: (f.name.endswith(".gz"), f.name)):
        if not file.is_file() or file.name.startswith("."):
            continue
        match = LANGUAGE_SUFFIX.fullmatch(file.name.removesuffix(".gz"))
        if match is None:
            continue
        language = match["language"]
        if language.lower() in NOT_LANGUAGES or language.isdigit():
            continue
        found.setdefault(match["name"], {}).setdefault(language, file)
    return found


def _direction(
    where: str, languages: set[str], source: str | None, target: str | None
) -> tuple[str, str]:
    """``(source, target)`` from the flags and the languages of the data (module docstring)."""
    found = ", ".join(sorted(languages))
    if source is None and target is None:
        if set(DEFAULT_DIRECTION) <= languages:
            return DEFAULT_DIRECTION
        raise SeqappsError(
            f"{where}: languages {found}; choose the direction with --source and --target"
        )
    if source is None or target is None:
        given = source or target
        others = sorted(languages - {given})
        if given in languages and len(others) == 1:
            implied = others[0]
        elif given in DEFAULT_DIRECTION and set(DEFAULT_DIRECTION) <= languages:
            implied = next(language for language in DEFAULT_DIRECTION if language != given)
        else:
            raise SeqappsError(
                f"{where}: languages {found}; give both --source and --target "
                f"(--{'source' if source else 'target'} {given} alone does not say the other)"
            )
        source, target = (given, implied) if source else (implied, given)
    if source == target:
        raise SeqappsError(f"--source and --target are both {source}")
    for flag, language in (("--source", source), ("--target", target)):
        if language not in languages:
            raise SeqappsError(
                f"{flag} {language}: {where} has no {language} files (languages: {found})"
            )
    return source, target


def _read_language_folder(
    folder: Path, files: dict[str, dict[str, Path]], source: str | None, target: str | None
) -> TranslationData:
    languages = {language for by_language in files.values() for language in by_language}
    if len(languages) < 2:
        raise SeqappsError(
            f"{folder}: only {', '.join(sorted(languages))} files; a pair needs NAME.SRC and "
            "NAME.TGT (train.en.gz and train.de.gz)"
        )
    source, target = _direction(f"{folder}", languages, source, target)
    description = f"Multi30k-style folder {folder}, {source}->{target}"
    unread, incomplete = {}, {}
    for name, by_language in files.items():
        if source in by_language and target in by_language:
            unread[name] = partial(read_line_pairs, by_language[source], by_language[target], name)
        elif source in by_language or target in by_language:
            present, missing = (source, target) if source in by_language else (target, source)
            incomplete[name] = (
                f"{folder / f'{name}.{missing}'}: no such file (nor .gz), so split {name} has "
                f"only its {present} side, {by_language[present]}"
            )
    if not unread:
        raise SeqappsError(
            f"{folder}: no complete pair of {source} and {target} files (NAME.{source} with "
            f"NAME.{target}); one side only: {', '.join(sorted(incomplete))}"
        )
    return TranslationData({}, description, source, target, unread, incomplete)


def _read_table_folder(folder: Path, source: str | None, target: str | None) -> TranslationData:
    unread = {}
    for file in split_files(folder, TABLE_SUFFIXES).values():
        name = file.name.removesuffix(".gz").removesuffix(".tsv")
        unread[name] = partial(read_tab_separated, file, name)
    source, target = source or "source", target or "target"
    description = f"tab-separated folder {folder}, {source}->{target}"
    return TranslationData({}, description, source, target, unread)


def _builtin_data(seed: int, source: str | None, target: str | None) -> TranslationData:
    from apps.translation.builtin_data import builtin_translation_data  # it builds on this module

    source, target = _direction("the built-in data", set(DEFAULT_DIRECTION), source, target)
    data = builtin_translation_data(seed)
    if (source, target) != (data.source_language, data.target_language):
        for name, pairs in data.splits.items():
            data.splits[name] = ExampleList(SentencePair(p.target, p.source) for p in pairs)
        data.source_language, data.target_language = source, target
        data.description = data.description.replace(", en->de", f", {source}->{target}")
    return data


def load_translation_data(
    path: Path | None,
    *,
    source: str | None,
    target: str | None,
    seed: int,
    for_training: bool,
    validation_fraction: float = VALIDATION_FRACTION,
) -> TranslationData:
    """Reads any of the formats in the module docstring; see there for the splits.

    Args:
        path: a folder or a tab-separated file; ``None`` for the built-in data.
        source, target: language codes (``--source``/``--target``); ``None`` to infer them.
        seed: seeds the validation hold-out (and the built-in data).
        for_training: reads the train and validation splits now (holding a validation split
            back from train when there is none), and a single file becomes the training
            split; otherwise a single file is ``WHOLE_FILE`` and nothing is read until asked.
        validation_fraction: the fraction of training pairs held back.
    """
    if path is None:
        return _builtin_data(seed, source, target)
    path = Path(path)
    if path.is_file():
        split = "train" if for_training else WHOLE_FILE
        pairs, note = read_tab_separated(path, split)
        description = f"tab-separated file {path}, {source or 'source'}->{target or 'target'}"
        description += f"; {note}" if note else ""
        data = TranslationData({split: pairs}, description, source or "source", target or "target")
    elif path.is_dir():
        files = _language_files(path)
        if files:
            data = _read_language_folder(path, files, source, target)
        elif split_files(path, TABLE_SUFFIXES):
            data = _read_table_folder(path, source, target)
        else:
            raise SeqappsError(
                f"{path}: no translation data; expected line-aligned file pairs NAME.SRC / "
                "NAME.TGT, plain or gzipped (Multi30k: train.en.gz, train.de.gz, val.en.gz, ...), "
                "or train/dev/test .tsv files of tab-separated pairs"
            )
    else:
        raise SeqappsError(f"{path}: no such file or directory")
    if for_training:
        data.split("train")
        if data.has_split("validation") or _candidates("validation", data.incomplete):
            data.split("validation")
        else:
            data.hold_out(validation_fraction, seed)
    return data
