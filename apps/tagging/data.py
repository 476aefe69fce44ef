"""Tagging data: sentences of tokens with one tag each, from CoNLL-U or column files.

Formats (``load_tagging_data``):

- no path: the built-in synthetic sentences (``builtin_data.py``), entity or UPOS tags;
- CoNLL-U (Universal Dependencies): one ``.conllu`` file, or a folder of
  ``*-ud-{train,dev,test}.conllu`` files (several files of one split are read in name order).
  The tags are the ``upos`` (default) or ``xpos`` column. As UD specifies, the tokens are the
  syntactic words: a multi-word token's range line (``1-2  don't``) is only the surface form
  and is skipped, as are empty nodes (``8.1``) and comments. Parsed with ``conllu``;
- column files for entities, any other name (``.iob2``, ``.conll``, ``.txt``, ``eng.train``...):
  the Universal NER style ``index<TAB>token<TAB>tag[<TAB>...]`` with ``#`` comment lines, or the
  CoNLL-2003 style (token first, tag last, separated by whitespace, ``-DOCSTART-`` lines
  skipped), told apart by the first data line; ``--token-column``/``--tag-column`` (1-based,
  negative counts from the end) override. A file whose lines have the ten CoNLL-U columns is read
  as CoNLL-U. A folder uses its train, dev/valid/testa and test/testb files, by name.
  Entity tags in IOB1 (the original CoNLL-2003 files) are converted to IOB2; spans are unchanged.

A blank line ends a sentence. A single file is one split, ``WHOLE_FILE``, for evaluation; for
training it becomes the training split. A missing validation split is a seeded fraction of the
training split (``apps/common/datasets.py``), and the description says so. Every error names the
file and the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import conllu
from conllu.exceptions import ParseException

from apps.common.datasets import SPLIT_FILE_STEMS, WHOLE_FILE, ExampleList, Splits, read_utf8
from apps.common.errors import SeqappsError
from apps.tagging.bio import OUTSIDE, iob1_to_iob2, is_bio

CONLLU_COLUMNS = ("upos", "xpos")
COLUMN_FILE_COLUMNS = ("entities", "tags")  # what the tags of a column file are said to be
# conllu parses only what tagging reads; a "# global.columns = ..." comment may rename them.
CONLLU_FIELDS = ("id", "form", "lemma", "upos", "xpos")
CONLLU_COLUMN_COUNT = 10
# Names that mark a split's files in a folder: the shared ones plus CoNLL-2003's testa/testb.
SPLIT_KEYWORDS = {
    "train": SPLIT_FILE_STEMS["train"],
    "validation": (*SPLIT_FILE_STEMS["validation"], "testa"),
    "test": (*SPLIT_FILE_STEMS["test"], "testb"),
}
# Files beside the data in dataset folders (en_ewt-ud-dev.stats, README.md...), never data.
NOT_DATA_SUFFIXES = {".stats", ".md", ".json", ".yaml", ".yml", ".py", ".sh", ".gz", ".zip"}
DOCSTART = "-DOCSTART-"
KNOWN_TAGS_SHOWN = 20  # how many known tags an unknown-tag error lists


@dataclass
class TaggedSentence:
    """One sentence: its tokens, one tag per token, and where each token was read."""

    tokens: list[str]
    tags: list[str]
    path: str  # the file it came from ("builtin:train" for the built-in data)
    lines: list[int]  # 1-based line number of each token in that file (0 for built-in data)


@dataclass
class TaggingData(Splits):
    """``Splits`` of ``ExampleList[TaggedSentence]``, with what the tags are.

    ``column`` names the tags (``"upos"``, ``"xpos"``, ``"entities"``, or ``"tags"`` for a
    column file's tags that are not entity tags); ``scheme`` is ``"bio"`` for entity spans in
    IOB2 (after conversion) or ``"tags"`` for one label per token.
    """

    column: str = "upos"
    scheme: str = "tags"

    def tag_names(self, split: str = "train") -> list[str]:
        """The tags of ``split``, sorted; ``"O"`` first (and always there) for entity tags."""
        names = {tag for sentence in self.split(split) for tag in sentence.tags}
        if self.scheme == "bio":
            return [OUTSIDE, *sorted(names - {OUTSIDE})]
        return sorted(names)


def check_known_tags(sentences: Iterable[TaggedSentence], tag_names: list[str]) -> None:
    """Raises ``SeqappsError`` naming file and line of the first tag not in ``tag_names``."""
    known = set(tag_names)
    for sentence in sentences:
        for tag, line in zip(sentence.tags, sentence.lines, strict=True):
            if tag not in known:
                shown = ", ".join(tag_names[:KNOWN_TAGS_SHOWN])
                more = len(tag_names) - KNOWN_TAGS_SHOWN
                shown += f", ... ({more} more)" if more > 0 else ""
                raise SeqappsError(
                    f"{sentence.path}, line {line}: tag {tag!r} unknown to the model "
                    f"(it knows {shown})"
                )


def _blocks(text: str) -> Iterator[list[tuple[int, str]]]:
    """The blank-line-separated blocks of ``text`` as ``(line number, line)`` lists."""
    block = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            block.append((number, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


# === CoNLL-U ===


def _conllu_words(path: Path, block: list[tuple[int, str]], fields) -> list[tuple[dict, int]]:
    """The syntactic words of one sentence block (no ranges, no empty nodes) and their lines."""
    text = "\n".join(line for _, line in block)
    try:
        tokens = conllu.parse_token_and_metadata(text, fields=fields)
    except ParseException:  # conllu does not say which line; find it
        for number, line in block:
            try:
                conllu.parse_token_and_metadata(line, fields=fields)
            except ParseException as error:
                raise SeqappsError(f"{path}, line {number}: {error}") from error
        raise
    words = []
    for token, (number, line) in zip(tokens, block, strict=True):
        if token["id"] is None:
            raise SeqappsError(f"{path}, line {number}: no word ID in {line.split()[0]!r}")
        if isinstance(token["id"], int):  # (1, "-", 2) is a range, (8, ".", 1) an empty node
            words.append((token, number))
    return words


def read_conllu(path: Path, column: str = "upos") -> ExampleList:
    """The sentences of a CoNLL-U file, tagged with its ``column`` (``upos`` or ``xpos``)."""
    text = read_utf8(path)
    if not text.strip():
        raise SeqappsError(f"{path}: empty file")
    fields = CONLLU_FIELDS
    first_word_line = None  # (line number, column count) of the first word line
    untagged = []  # line numbers of words whose tag is "_"
    sentences = ExampleList()
    for block in _blocks(text):
        word_lines = []
        for number, line in block:
            if _is_comment(line):
                key, _, value = line.lstrip("# ").partition("=")
                if key.strip() == "global.columns":  # CoNLL-U Plus names its columns
                    fields = tuple(name.lower() for name in value.split())
                    for needed in ("id", "form", column):
                        if needed not in fields:
                            raise SeqappsError(
                                f"{path}, line {number}: no {needed} column in {value.strip()}"
                            )
                continue
            columns = line.count("\t") + 1
            if first_word_line is None:
                first_word_line = (number, columns)
                if columns <= max(fields.index(needed) for needed in ("id", "form", column)):
                    raise SeqappsError(
                        f"{path}, line {number}: {columns} tab-separated columns, expected "
                        f"{CONLLU_COLUMN_COUNT} (ID, FORM, LEMMA, UPOS, XPOS, ...)"
                    )
            elif columns != first_word_line[1]:
                raise SeqappsError(
                    f"{path}, line {number}: {columns} tab-separated columns, but line "
                    f"{first_word_line[0]} has {first_word_line[1]}"
                )
            word_lines.append((number, line))
        if not word_lines:
            continue
        words = _conllu_words(path, word_lines, fields)
        if not words:  # only multi-word ranges or empty nodes
            continue
        tags = [word[column] or "_" for word, _ in words]  # conllu reads xpos "_" as None
        lines = [number for _, number in words]
        untagged.extend(number for tag, number in zip(tags, lines, strict=True) if tag == "_")
        sentences.append(TaggedSentence([w["form"] for w, _ in words], tags, str(path), lines))
    word_count = sum(len(sentence.tags) for sentence in sentences)
    if not word_count:
        raise SeqappsError(f"{path}: no sentences (no word lines)")
    if len(untagged) == word_count:
        hint = "; use --column upos" if column == "xpos" else ""
        raise SeqappsError(f"{path}: no {column} tags (the column is '_' on every word){hint}")
    if untagged:
        raise SeqappsError(f"{path}, line {untagged[0]}: missing {column} tag ('_')")
    return sentences


# === Column files ===


@dataclass
class ColumnLayout:
    """Where token and tag are on a column file's lines, detected from its first data line."""

    style: str  # "Universal NER-style" or "CoNLL-2003-style"
    separator: str | None  # "\t", or None for any whitespace
    columns: int  # fields on every data line
    token_index: int  # 0-based
    tag_index: int
    first_line: int  # the line the layout was read from

    def fields(self, line: str) -> list[str]:
        return line.rstrip().split("\t") if self.separator else line.split()

    def describe(self) -> str:
        token, tag = (index % self.columns + 1 for index in (self.token_index, self.tag_index))
        return f"{self.style}, token column {token}, tag column {tag}"


def _is_data_line(line: str) -> bool:
    stripped = line.lstrip()
    return bool(stripped) and not stripped.startswith(("#", DOCSTART))


def _column_index(number: int | None, default: int, option: str, path, line, columns) -> int:
    """The 0-based index of 1-based (or negative, from the end) column ``number``."""
    if number is None:
        return default
    if number == 0 or not -columns <= number <= columns:
        raise SeqappsError(
            f"{path}, line {line}: {option} {number} does not name one of its {columns} columns "
            "(1 is the first, -1 the last)"
        )
    return number - 1 if number > 0 else number


def detect_layout(
    path: Path, text: str, token_column: int | None = None, tag_column: int | None = None
) -> ColumnLayout | None:
    """The layout of a column file; ``None`` when its lines are CoNLL-U's ten columns."""
    first = next(
        ((n, line) for n, line in enumerate(text.splitlines(), start=1) if _is_data_line(line)),
        None,
    )
    if first is None:
        raise SeqappsError(f"{path}: no sentences (only blank, comment or {DOCSTART} lines)")
    number, line = first
    tab_fields = line.rstrip().split("\t")
    if len(tab_fields) >= 3 and tab_fields[0].strip().isdigit():
        if len(tab_fields) == CONLLU_COLUMN_COUNT and token_column is tag_column is None:
            return None
        style, separator, token_index, tag_index = "Universal NER-style", "\t", 1, 2
    else:
        separator = "\t" if len(tab_fields) > 1 else None
        style, token_index, tag_index = "CoNLL-2003-style", 0, -1
    columns = len(tab_fields) if separator else len(line.split())
    if columns < 2:
        raise SeqappsError(
            f"{path}, line {number}: one column, {line.strip()!r}; expected a token and a tag"
        )
    token_index = _column_index(token_column, token_index, "--token-column", path, number, columns)
    tag_index = _column_index(tag_column, tag_index, "--tag-column", path, number, columns)
    if token_index % columns == tag_index % columns:
        raise SeqappsError(f"{path}, line {number}: token and tag columns are the same")
    return ColumnLayout(style, separator, columns, token_index, tag_index, number)


def _is_column_comment(line: str, layout: ColumnLayout, sentence_started: bool) -> bool:
    """``#`` lines are comments in the Universal NER style (a data line starts with its index).
    In the CoNLL-2003 style ``#`` may be a token: there a ``#`` line is a comment only before
    the sentence's first token, and not when it reads as a token line (``# NN O``)."""
    if not _is_comment(line):
        return False
    if layout.style == "Universal NER-style":
        return True
    fields = layout.fields(line)
    looks_like_token = fields[0] == "#" and len(fields) == layout.columns and "=" not in fields
    return not sentence_started and not looks_like_token


def read_column_file(
    path: Path, layout: ColumnLayout | None = None, text: str | None = None
) -> ExampleList:
    """The sentences of a column file in ``layout`` (detected when not given)."""
    text = read_utf8(path) if text is None else text
    if not text.strip():
        raise SeqappsError(f"{path}: empty file")
    layout = layout or detect_layout(path, text)
    sentences = ExampleList()
    for block in _blocks(text):
        tokens, tags, lines = [], [], []
        for number, line in block:
            if _is_column_comment(line, layout, bool(tokens)):
                continue
            if line.lstrip().startswith(DOCSTART):
                continue
            fields = layout.fields(line)
            if len(fields) != layout.columns:
                raise SeqappsError(
                    f"{path}, line {number}: {len(fields)} columns, but line {layout.first_line} "
                    f"has {layout.columns} ({layout.describe()})"
                )
            token, tag = fields[layout.token_index].strip(), fields[layout.tag_index].strip()
            if not token:
                raise SeqappsError(f"{path}, line {number}: missing token")
            if not tag:
                raise SeqappsError(f"{path}, line {number}: missing tag")
            tokens.append(token)
            tags.append(tag)
            lines.append(number)
        if tokens:
            sentences.append(TaggedSentence(tokens, tags, str(path), lines))
    if not sentences:
        raise SeqappsError(f"{path}: no sentences (only blank, comment or {DOCSTART} lines)")
    return sentences


def _read_tagged_file(
    path: Path, column: str | None, token_column: int | None, tag_column: int | None
) -> tuple[ExampleList, str]:
    """Sentences and a description of a ``.conllu`` or column file."""
    text = None
    layout = None
    if path.suffix.lower() != ".conllu":
        text = read_utf8(path)
        if not text.strip():
            raise SeqappsError(f"{path}: empty file")
        layout = detect_layout(path, text, token_column, tag_column)
    if layout is None:
        if token_column is not None or tag_column is not None:
            raise SeqappsError(f"{path}: --token-column and --tag-column are for column files")
        column = _conllu_column(column)
        return read_conllu(path, column), "UD CoNLL-U"
    return read_column_file(path, layout, text), layout.describe()


def _conllu_column(column: str | None) -> str:
    if column is None:
        return "upos"
    if column not in CONLLU_COLUMNS:
        raise SeqappsError(
            f"--column {column!r}: a CoNLL-U file's tags are one of {', '.join(CONLLU_COLUMNS)}"
        )
    return column


# === Folders and the whole dataset ===


def _split_of(file: Path) -> str | None:
    """The split a file's name names; the last keyword counts, as dataset names put the split
    last (``xx_test-ud-dev.conllu`` is a dev file of a treebank called ``test``)."""
    for part in reversed(re.split(r"[^a-z0-9]+", file.name.lower())):
        for split, keywords in SPLIT_KEYWORDS.items():
            if part in keywords:
                return split
    return None


def split_files_by_name(folder: Path) -> dict[str, list[Path]]:
    """``{split: files}`` of a dataset folder: its ``.conllu`` files if it has any, else its other
    files whose names hold ``train``, ``dev``/``valid``/``testa`` or ``test``/``testb`` (a part
    of the name between ``-``, ``_``, ``.``...)."""
    files = sorted(
        file
        for file in folder.iterdir()
        if file.is_file()
        and not file.name.startswith(".")
        and file.suffix.lower() not in NOT_DATA_SUFFIXES
    )
    conllu_files = [file for file in files if file.suffix.lower() == ".conllu"]
    found: dict[str, list[Path]] = {}
    for file in conllu_files or files:
        split = _split_of(file)
        if split is not None:
            found.setdefault(split, []).append(file)
    if not found:
        raise SeqappsError(
            f"{folder}: no tagging data files; expected *-ud-{{train,dev,test}}.conllu or column "
            "files named for their split (train, dev or valid, test; CoNLL-2003's eng.train, "
            "eng.testa, eng.testb)"
        )
    return {split: found[split] for split in SPLIT_KEYWORDS if split in found}


def _apply_scheme(splits: dict[str, ExampleList], column: str | None) -> tuple[str, str, str]:
    """Converts entity tags to IOB2 in place; ``(column, scheme, description)``."""
    sentences = [sentence for examples in splits.values() for sentence in examples]
    if column == "tags" or not is_bio(tag for s in sentences for tag in s.tags):
        if column == "entities":
            for sentence in sentences:
                for tag, line in zip(sentence.tags, sentence.lines, strict=True):
                    if not is_bio([tag]):
                        raise SeqappsError(
                            f"{sentence.path}, line {line}: tag {tag!r} is not an entity tag "
                            "(O, B-X or I-X)"
                        )
        return "tags", "tags", "tags"
    converted = False
    for sentence in sentences:
        iob2 = iob1_to_iob2(sentence.tags)
        if iob2 != sentence.tags:
            sentence.tags, converted = iob2, True
    return "entities", "bio", "entity tags, IOB1 converted to IOB2" if converted else "entity tags"


def load_tagging_data(
    path: Path | None,
    *,
    column: str | None = None,
    token_column: int | None = None,
    tag_column: int | None = None,
    seed: int = 0,
    for_training: bool = True,
    validation_fraction: float = 0.1,
) -> TaggingData:
    """Reads any of the formats in the module docstring; see there for the splits.

    Args:
        path: a ``.conllu`` or column file, or a folder of them; ``None`` for the built-in data.
        column: CoNLL-U: ``"upos"`` (default) or ``"xpos"``. Column files: ``None`` (entity
            tags when they are all ``O``/``B-X``/``I-X``), ``"entities"`` (they must be) or
            ``"tags"`` (one label per token even if they look like entity tags). Built-in
            data: ``None`` or ``"entities"``, or ``"upos"``.
        token_column, tag_column: column files only: 1-based column numbers (negative from
            the end) that override the detected ones.
        seed: seeds the validation hold-out (and the built-in data).
        for_training: a single file becomes the training split (else it is ``WHOLE_FILE``),
            and a missing validation split is held back from training.
        validation_fraction: the fraction of training sentences held back.
    """
    if path is None:
        if token_column is not None or tag_column is not None:
            raise SeqappsError("--token-column and --tag-column are for column files")
        from apps.tagging.builtin_data import builtin_tagging_data  # it builds on this module

        return builtin_tagging_data(seed, column)
    path = Path(path)
    if column is not None and column not in CONLLU_COLUMNS + COLUMN_FILE_COLUMNS:
        raise SeqappsError(
            f"--column {column!r}: expected one of {', '.join(CONLLU_COLUMNS)} (CoNLL-U) or "
            f"{', '.join(COLUMN_FILE_COLUMNS)} (column files)"
        )
    if path.is_file():
        files = {WHOLE_FILE: [path]}
        where = f"file {path}"
    elif path.is_dir():
        files = split_files_by_name(path)
        where = f"folder {path}"
    else:
        raise SeqappsError(f"{path}: no such file or directory")
    splits, formats = {}, set()
    for split, paths in files.items():
        splits[split] = ExampleList()
        for file in paths:
            sentences, data_format = _read_tagged_file(file, column, token_column, tag_column)
            splits[split].extend(sentences)
            formats.add(data_format)
    data_format = " and ".join(sorted(formats))
    if data_format == "UD CoNLL-U":
        column = _conllu_column(column)
        data = TaggingData(splits, f"UD CoNLL-U {where}, column {column}", column, "tags")
    elif "UD CoNLL-U" in formats:
        raise SeqappsError(f"{path}: mixes CoNLL-U and column files ({data_format})")
    else:
        if column in CONLLU_COLUMNS:
            raise SeqappsError(
                f"--column {column}: {path} is not CoNLL-U; a column file's tags are "
                f"{' or '.join(COLUMN_FILE_COLUMNS)} (choose the column with --tag-column)"
            )
        column, scheme, tags = _apply_scheme(splits, column)
        data = TaggingData(splits, f"column {where} ({data_format}), {tags}", column, scheme)
    return data.for_training(validation_fraction, seed) if for_training else data
