"""Tagging data: CoNLL-U and column files, splits, hold-outs, errors users see, built-in data."""

import re

import pytest

from apps.common.datasets import WHOLE_FILE
from apps.common.errors import SeqappsError
from apps.tagging.bio import entity_spans, iob1_to_iob2, is_bio
from apps.tagging.builtin_data import NAME_POOLS, SPLIT_SIZES, builtin_tagging_data
from apps.tagging.data import TaggedSentence, check_known_tags, load_tagging_data

UPOS_TAGS = {
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
    "PUNCT", "SCONJ", "SYM", "VERB", "X",
}  # fmt: skip


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def conllu_line(*fields):
    """A CoNLL-U word line: the given leading fields, ``_`` for the rest of the ten."""
    return "\t".join([*map(str, fields), *["_"] * (10 - len(fields))])


# Line 4 is the range line of "don't", lines 5-6 its syntactic words; line 9 is an empty node.
CONLLU_SENTENCE = "\n".join(
    [
        "# sent_id = 1",
        "# text = I don't go .",
        conllu_line(1, "I", "I", "PRON", "PRP"),
        conllu_line("2-3", "don't"),
        conllu_line(2, "do", "do", "AUX", "VBP"),
        conllu_line(3, "n't", "not", "PART", "RB"),
        conllu_line(4, "go", "go", "VERB", "VB"),
        conllu_line(5, ".", ".", "PUNCT", "."),
        conllu_line("5.1", "went", "go", "VERB", "VBD"),
    ]
)
CONLLU_SHORT = "\n".join(
    [
        "# sent_id = 2",
        conllu_line(1, "Hello", "hello", "INTJ", "UH"),
        conllu_line(2, "!", "!", "PUNCT", "."),
    ]
)


def make_conllu(path, sentences):
    return write(path, "\n\n".join(sentences) + "\n\n")


def make_ud_folder(root, splits=("train", "dev", "test"), train_copies=10):
    for split in splits:
        copies = train_copies if split == "train" else 1
        make_conllu(root / f"xx_demo-ud-{split}.conllu", [CONLLU_SENTENCE, CONLLU_SHORT] * copies)
    write(root / "LICENSE.txt", "license")
    write(root / "README.md", "readme")


# === CoNLL-U ===


def test_conllu_tags_syntactic_words_skipping_ranges_empty_nodes_and_comments(tmp_path):
    path = make_conllu(tmp_path / "one.conllu", [CONLLU_SENTENCE, CONLLU_SHORT])
    data = load_tagging_data(path, for_training=False)
    assert set(data.splits) == {WHOLE_FILE}
    first, second = data.split("test")
    assert first.tokens == ["I", "do", "n't", "go", "."]
    assert first.tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert first.lines == [3, 5, 6, 7, 8]
    assert first.path == str(path)
    assert second == TaggedSentence(["Hello", "!"], ["INTJ", "PUNCT"], str(path), [12, 13])
    assert (data.column, data.scheme) == ("upos", "tags")
    assert data.description == f"UD CoNLL-U file {path}, column upos"


def test_conllu_sentence_without_syntactic_words_is_no_sentence(tmp_path):
    only_range = conllu_line("1-2", "don't")
    path = make_conllu(tmp_path / "t.conllu", [CONLLU_SHORT, only_range, CONLLU_SHORT])
    data = load_tagging_data(path, for_training=False)
    assert [s.lines for s in data.split("test")] == [[2, 3], [8, 9]]


def test_conllu_xpos_column(tmp_path):
    path = make_conllu(tmp_path / "one.conllu", [CONLLU_SENTENCE])
    data = load_tagging_data(path, column="xpos", for_training=False)
    assert data.split("test")[0].tags == ["PRP", "VBP", "RB", "VB", "."]
    assert data.column == "xpos"
    assert data.tag_names("test") == [".", "PRP", "RB", "VB", "VBP"]


def test_conllu_folder_uses_its_own_splits(tmp_path):
    make_ud_folder(tmp_path)
    data = load_tagging_data(tmp_path)
    assert data.sizes() == "train 20, validation 2, test 2"
    assert data.description == f"UD CoNLL-U folder {tmp_path}, column upos"
    assert data.tag_names() == sorted({"PRON", "AUX", "PART", "VERB", "PUNCT", "INTJ"})


def test_conllu_folder_without_dev_holds_back_a_seeded_tenth_of_train(tmp_path):
    make_ud_folder(tmp_path, splits=("train", "test"))
    data = load_tagging_data(tmp_path, seed=5)
    assert data.sizes() == "train 18, validation 2, test 2"
    assert data.description.endswith(
        "validation = 2 examples (10%) held back from train with seed 5"
    )
    again = load_tagging_data(tmp_path, seed=5)
    assert again.splits["validation"] == data.splits["validation"]


def test_conllu_single_file_for_training_becomes_train_and_validation(tmp_path):
    path = make_conllu(tmp_path / "x.conllu", [CONLLU_SENTENCE, CONLLU_SHORT] * 10)
    data = load_tagging_data(path, validation_fraction=0.25, seed=1)
    assert data.sizes() == "train 15, validation 5"
    assert "held back from train with seed 1" in data.description


def test_conllu_folder_reads_every_file_of_a_split_in_name_order(tmp_path):
    make_conllu(tmp_path / "xx-ud-train-b.conllu", [CONLLU_SHORT])
    make_conllu(tmp_path / "xx-ud-train-a.conllu", [CONLLU_SENTENCE])
    data = load_tagging_data(tmp_path, for_training=False)
    assert [s.tokens[0] for s in data.split("train")] == ["I", "Hello"]
    assert [s.path for s in data.split("train")] == [
        str(tmp_path / "xx-ud-train-a.conllu"),
        str(tmp_path / "xx-ud-train-b.conllu"),
    ]


def test_conllu_plus_global_columns(tmp_path):
    path = write(
        tmp_path / "plus.conllu",
        "# global.columns = ID FORM UPOS NE\n# sent_id = 1\n"
        "1\tRome\tPROPN\tB-LOC\n2\t!\tPUNCT\tO\n",
    )
    sentence = load_tagging_data(path, for_training=False).split("test")[0]
    assert (sentence.tokens, sentence.tags) == (["Rome", "!"], ["PROPN", "PUNCT"])
    with pytest.raises(SeqappsError, match=rf"{path}, line 1: no xpos column in ID FORM UPOS NE"):
        load_tagging_data(path, column="xpos")


def test_conllu_content_in_a_file_of_another_name_is_read_as_conllu(tmp_path):
    path = make_conllu(tmp_path / "sentences.txt", [CONLLU_SENTENCE])
    data = load_tagging_data(path, for_training=False)
    assert data.split("test")[0].tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert data.description.startswith("UD CoNLL-U file")


def test_conllu_xpos_missing_everywhere_suggests_upos(tmp_path):
    path = write(tmp_path / "t.conllu", conllu_line(1, "a", "a", "DET") + "\n")
    with pytest.raises(SeqappsError, match=rf"{path}: no xpos tags .*; use --column upos"):
        load_tagging_data(path, column="xpos")


def test_conllu_missing_tag_names_the_line(tmp_path):
    lines = [conllu_line(1, "a", "a", "DET"), conllu_line(2, "b", "b", "_")]
    path = write(tmp_path / "t.conllu", "# c\n" + "\n".join(lines) + "\n")
    with pytest.raises(SeqappsError, match=rf"{path}, line 3: missing upos tag \('_'\)"):
        load_tagging_data(path)


def test_conllu_wrong_column_count_names_the_line(tmp_path):
    lines = [conllu_line(1, "a", "a", "DET"), "2\tb\tb\tNOUN", conllu_line(3, "c")]
    path = write(tmp_path / "t.conllu", "\n".join(lines) + "\n")
    with pytest.raises(SeqappsError, match=rf"{path}, line 2: 4 tab-separated columns, but line 1"):
        load_tagging_data(path)
    short = write(tmp_path / "short.conllu", "1\tword\n")
    with pytest.raises(SeqappsError, match=rf"{short}, line 1: 2 tab-separated columns, expected"):
        load_tagging_data(short)


def test_conllu_invalid_word_id_names_the_line(tmp_path):
    lines = [conllu_line(1, "a", "a", "DET"), conllu_line("x2", "b", "b", "NOUN")]
    path = write(tmp_path / "t.conllu", "# c\n" + "\n".join(lines) + "\n")
    with pytest.raises(SeqappsError, match=rf"{path}, line 3: .*'x2' is not a valid ID"):
        load_tagging_data(path)
    underscore = write(tmp_path / "u.conllu", conllu_line("_", "b", "b", "NOUN") + "\n")
    with pytest.raises(SeqappsError, match=rf"{underscore}, line 1: no word ID in '_'"):
        load_tagging_data(underscore)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ("\n  \n", "empty file"),
        ("# only a comment\n", "no sentences"),
        (conllu_line("1-2", "don't") + "\n", "no sentences"),
    ],
)
def test_conllu_without_words(tmp_path, content, message):
    path = write(tmp_path / "t.conllu", content)
    with pytest.raises(SeqappsError, match=rf"{path}: {message}"):
        load_tagging_data(path)


def test_conllu_undecodable_bytes_name_the_line(tmp_path):
    path = write(tmp_path / "t.conllu", CONLLU_SHORT.encode() + b"\n3\tbad\xff\n")
    with pytest.raises(SeqappsError, match=rf"{path}, line 4: undecodable bytes b'\\xff'"):
        load_tagging_data(path)


def test_conllu_refuses_column_file_options(tmp_path):
    path = make_conllu(tmp_path / "t.conllu", [CONLLU_SHORT])
    with pytest.raises(SeqappsError, match="--column 'entities': a CoNLL-U file's tags are one"):
        load_tagging_data(path, column="entities")
    with pytest.raises(SeqappsError, match="--token-column and --tag-column are for column files"):
        load_tagging_data(path, tag_column=4)
    with pytest.raises(SeqappsError, match="--column 'lemma': expected one of upos, xpos"):
        load_tagging_data(path, column="lemma")


# === Column files ===

UNER = """\
# newdoc id = doc1
# sent_id = doc1-0001
# text = Maria flew to New York .
1\tMaria\tB-PER\t-\t-
2\tflew\tO\t-\t-
3\tto\tO\t-\t-
4\tNew\tB-LOC\t-\tann
5\tYork\tI-LOC\t-\tann
6\t.\tO\t-\t-

# sent_id = doc1-0002
1\t#\tO\t-\t-
2\tACME\tB-ORG\t-\t-
"""

# CoNLL-2003 as originally distributed: IOB1, where B- only separates adjacent entities.
CONLL2003_IOB1 = """\
-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
Anna NNP B-NP B-PER
met VBD I-VP O
# NN I-NP O
in IN I-PP O
Bonn NNP I-NP I-LOC
"""


def test_universal_ner_style_is_detected(tmp_path):
    path = write(tmp_path / "en-dev.iob2", UNER)
    data = load_tagging_data(path, for_training=False)
    first, second = data.split("test")
    assert first.tokens == ["Maria", "flew", "to", "New", "York", "."]
    assert first.tags == ["B-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    assert first.lines == [4, 5, 6, 7, 8, 9]
    assert (second.tokens, second.lines) == (["#", "ACME"], [12, 13])
    assert (data.column, data.scheme) == ("entities", "bio")
    assert data.description == (
        f"column file {path} (Universal NER-style, token column 2, tag column 3), entity tags"
    )
    assert data.tag_names("test") == ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC"]


def test_conll2003_iob1_is_converted_to_iob2(tmp_path):
    path = write(tmp_path / "eng.testb", CONLL2003_IOB1)
    data = load_tagging_data(path, for_training=False)
    first, second = data.split("test")  # -DOCSTART- is no sentence
    assert first.tokens == ["EU", "rejects", "German", "call", "."]
    assert first.tags == ["B-ORG", "O", "B-MISC", "O", "O"]
    assert second.tokens == ["Peter", "Blackburn", "Anna", "met", "#", "in", "Bonn"]
    assert second.tags == ["B-PER", "I-PER", "B-PER", "O", "O", "O", "B-LOC"]
    assert second.lines == list(range(9, 16))
    assert entity_spans(second.tags) == [("PER", 0, 2), ("PER", 2, 3), ("LOC", 6, 7)]
    assert data.description.endswith(
        "(CoNLL-2003-style, token column 1, tag column 4), entity tags, IOB1 converted to IOB2"
    )


def test_iob2_column_file_is_not_described_as_converted(tmp_path):
    path = write(tmp_path / "t.bio", "Anna B-PER\nKarenina I-PER\nreads O\n")
    data = load_tagging_data(path, for_training=False)
    assert data.split("test")[0].tags == ["B-PER", "I-PER", "O"]
    assert data.description.endswith("tag column 2), entity tags")
    crlf = write(tmp_path / "crlf.bio", "Anna B-PER\r\nKarenina I-PER\r\nreads O\r\n")
    assert load_tagging_data(crlf, for_training=False).split("test")[0].tags == [
        "B-PER",
        "I-PER",
        "O",
    ]


def test_conll2003_folder_with_testa_and_testb(tmp_path):
    for name in ("eng.train", "eng.testa", "eng.testb"):
        write(tmp_path / name, CONLL2003_IOB1)
    write(tmp_path / "README.md", "not data")
    data = load_tagging_data(tmp_path)
    assert data.sizes() == "train 2, validation 2, test 2"
    assert data.description.startswith(f"column folder {tmp_path} (CoNLL-2003-style")
    assert [s.path for s in data.splits["validation"]] == [str(tmp_path / "eng.testa")] * 2


def test_folder_of_text_files_with_stats_and_license_beside_them(tmp_path):
    write(tmp_path / "train.txt", "Oslo B-LOC\nis O\n\nBig O\n\nRome B-LOC\n")
    write(tmp_path / "valid.txt", "Paris B-LOC\n")
    write(tmp_path / "test.txt", "Lima B-LOC\n")
    write(tmp_path / "xx-test.stats", "{}")
    write(tmp_path / "LICENSE.txt", "license")
    data = load_tagging_data(tmp_path)
    assert data.sizes() == "train 3, validation 1, test 1"
    assert data.split("validation")[0].path == str(tmp_path / "valid.txt")


def test_column_folder_without_validation_holds_some_back(tmp_path):
    write(tmp_path / "en_ewt-ud-train.iob2", "\n".join([UNER] * 5))
    write(tmp_path / "en_ewt-ud-test.iob2", UNER)
    data = load_tagging_data(tmp_path, seed=2)
    assert data.sizes() == "train 9, validation 1, test 2"
    assert "held back from train with seed 2" in data.description


def test_tab_separated_token_and_tag(tmp_path):
    path = write(tmp_path / "t.tsv", "New York\tB-LOC\nis\tO\n")
    sentence = load_tagging_data(path, for_training=False).split("test")[0]
    assert sentence.tokens == ["New York", "is"]
    assert sentence.tags == ["B-LOC", "O"]


def test_column_overrides_and_non_entity_tags(tmp_path):
    path = write(tmp_path / "eng.train", CONLL2003_IOB1)
    data = load_tagging_data(path, tag_column=2, for_training=False)
    assert data.split("test")[0].tags == ["NNP", "VBZ", "JJ", "NN", "."]
    assert (data.column, data.scheme) == ("tags", "tags")
    assert data.description.endswith("(CoNLL-2003-style, token column 1, tag column 2), tags")
    chunks = load_tagging_data(path, tag_column=-2, for_training=False)
    assert chunks.scheme == "bio"  # chunk tags are spans too: IOB1 read and converted
    assert chunks.split("test")[0].tags == ["B-NP", "B-VP", "B-NP", "I-NP", "O"]
    per_token = load_tagging_data(path, column="tags", for_training=False)
    assert per_token.scheme == "tags"
    assert per_token.split("test")[1].tags[:3] == ["I-PER", "I-PER", "B-PER"]  # not converted
    uner = write(tmp_path / "u.iob2", UNER)
    swapped = load_tagging_data(uner, token_column=3, tag_column=2, for_training=False)
    assert swapped.split("test")[0].tokens[0] == "B-PER"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"tag_column": 0}, "--tag-column 0 does not name one of its 4 columns"),
        ({"tag_column": 5}, "--tag-column 5 does not name one of its 4 columns"),
        ({"token_column": -5}, "--token-column -5 does not name one of its 4 columns"),
        ({"token_column": 4}, "token and tag columns are the same"),
    ],
)
def test_bad_column_overrides_name_the_first_data_line(tmp_path, options, message):
    path = write(tmp_path / "eng.train", CONLL2003_IOB1)
    with pytest.raises(SeqappsError, match=rf"{path}, line 3: {message}"):
        load_tagging_data(path, **options)


def test_column_count_differing_from_the_first_data_line(tmp_path):
    path = write(tmp_path / "t.conll", "# text = a\nEU NNP B-ORG\n\nrejects O\n")
    with pytest.raises(
        SeqappsError,
        match=rf"{path}, line 4: 2 columns, but line 2 has 3 \(CoNLL-2003-style, token column 1",
    ):
        load_tagging_data(path)
    uner = write(tmp_path / "u.iob2", UNER.replace("2\tflew\tO\t-\t-", "2\tflew\tO"))
    with pytest.raises(SeqappsError, match=rf"{uner}, line 5: 3 columns, but line 4 has 5"):
        load_tagging_data(uner)


def test_missing_token_or_tag_names_the_line(tmp_path):
    no_token = write(tmp_path / "a.iob2", UNER.replace("2\tflew\tO", "2\t\tO"))
    with pytest.raises(SeqappsError, match=rf"{no_token}, line 5: missing token"):
        load_tagging_data(no_token)
    no_tag = write(tmp_path / "b.iob2", UNER.replace("2\tflew\tO", "2\tflew\t "))
    with pytest.raises(SeqappsError, match=rf"{no_tag}, line 5: missing tag"):
        load_tagging_data(no_tag)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ("-DOCSTART- -X- O O\n\n# comment\n", "no sentences"),
        ("one\ncolumn\n", "line 1: one column, 'one'; expected a token and a tag"),
    ],
)
def test_column_files_without_sentences(tmp_path, content, message):
    path = write(tmp_path / "t.txt", content)
    with pytest.raises(SeqappsError, match=rf"{path}(, )?.*{message}"):
        load_tagging_data(path)


def test_column_file_undecodable_bytes_name_the_line(tmp_path):
    path = write(tmp_path / "t.iob2", b"Rome B-LOC\n\nMil\xe1n B-LOC\n")
    with pytest.raises(SeqappsError, match=rf"{path}, line 3: undecodable bytes b'\\xe1'"):
        load_tagging_data(path)


def test_column_meaning_checked_for_column_files(tmp_path):
    path = write(tmp_path / "eng.train", CONLL2003_IOB1)
    with pytest.raises(SeqappsError, match=rf"{path}, line 3: tag 'NNP' is not an entity tag"):
        load_tagging_data(path, tag_column=2, column="entities")
    with pytest.raises(SeqappsError, match=r"--column upos: .* is not CoNLL-U"):
        load_tagging_data(path, column="upos")


def test_folders_and_paths_that_are_not_data(tmp_path):
    write(tmp_path / "notes" / "README.md", "x")
    write(tmp_path / "notes" / "LICENSE.txt", "x")
    with pytest.raises(SeqappsError, match=r"notes: no tagging data files; expected \*-ud-"):
        load_tagging_data(tmp_path / "notes")
    with pytest.raises(SeqappsError, match="missing: no such file or directory"):
        load_tagging_data(tmp_path / "missing")


def test_the_last_split_word_of_a_name_counts(tmp_path):
    # Treebank names may hold a split word: the split comes last in UD and CoNLL-2003 names.
    make_conllu(tmp_path / "xx_test-ud-train-a.conllu", [CONLLU_SHORT])
    make_conllu(tmp_path / "xx_test-ud-dev.conllu", [CONLLU_SHORT])
    data = load_tagging_data(tmp_path, for_training=False)
    assert data.sizes() == "train 1, validation 1"


def test_a_folder_of_conllu_files_ignores_other_files(tmp_path):
    make_ud_folder(tmp_path, splits=("train",), train_copies=1)
    write(tmp_path / "train.txt", "not O\nread O\n")
    data = load_tagging_data(tmp_path, for_training=False)
    assert data.description.startswith("UD CoNLL-U folder")
    assert data.sizes() == "train 2"


# === Tags the model knows ===


def test_tag_names_put_outside_first_for_entities(tmp_path):
    path = write(tmp_path / "t.bio", "Oslo B-LOC\nAnna B-PER\n")
    data = load_tagging_data(path, for_training=False)
    assert data.tag_names("test") == ["O", "B-LOC", "B-PER"]  # "O" even when no token has it


def test_check_known_tags_names_file_line_and_the_known_tags(tmp_path):
    path = write(tmp_path / "t.iob2", UNER)
    sentences = load_tagging_data(path, for_training=False).split("test")
    check_known_tags(sentences, ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC"])
    with pytest.raises(
        SeqappsError,
        match=re.escape(
            f"{path}, line 13: tag 'B-ORG' unknown to the model (it knows O, B-LOC, B-PER, I-LOC)"
        ),
    ):
        check_known_tags(sentences, ["O", "B-LOC", "B-PER", "I-LOC"])
    many = [f"T{i:02d}" for i in range(45)]
    with pytest.raises(SeqappsError, match=r"it knows T00, .*, T19, \.\.\. \(25 more\)\)$"):
        check_known_tags(sentences, many)


# === Built-in data ===


def test_builtin_is_the_default_and_deterministic():
    data = load_tagging_data(None, seed=3)
    assert data.splits == builtin_tagging_data(3).splits
    assert data.splits != builtin_tagging_data(4).splits
    assert data.sizes() == "train 3000, validation 400, test 600"
    assert {k: len(v) for k, v in data.splits.items()} == SPLIT_SIZES
    assert (data.column, data.scheme) == ("entities", "bio")
    assert "smoke-test dataset, not a benchmark" in data.description
    first = data.splits["train"][0]
    assert first.path == "builtin:train" and first.lines == [0] * len(first.tokens)


def test_builtin_upos_tags_the_same_sentences():
    entities, upos = builtin_tagging_data(0), builtin_tagging_data(0, "upos")
    assert (upos.column, upos.scheme) == ("upos", "tags")
    for split in SPLIT_SIZES:
        assert [s.tokens for s in entities.splits[split]] == [s.tokens for s in upos.splits[split]]
    assert set(upos.tag_names()) <= UPOS_TAGS
    assert {"NOUN", "VERB", "PROPN", "ADP", "DET", "NUM", "PUNCT", "AUX"} <= set(upos.tag_names())


def test_builtin_entity_tags_are_iob2_with_four_types():
    data = builtin_tagging_data(0)
    for split in SPLIT_SIZES:
        for sentence in data.splits[split]:
            assert len(sentence.tokens) == len(sentence.tags)
            assert is_bio(sentence.tags) and iob1_to_iob2(sentence.tags) == sentence.tags
            for _, start, end in entity_spans(sentence.tags):
                name = [token for token in sentence.tokens[start:end] if token != "of"]
                assert all(token[0].isupper() for token in name), sentence.tokens
    assert data.tag_names() == ["O"] + [
        f"{p}-{k}" for p in "BI" for k in ("LOC", "MISC", "ORG", "PER")
    ]
    spans = [span for s in data.splits["train"] for span in entity_spans(s.tags)]
    assert sum(end - start > 1 for _, start, end in spans) > 0.2 * len(spans)  # multi-token names


def test_builtin_test_names_are_often_unseen_in_training():
    data = builtin_tagging_data(0)
    train_tokens = {token for s in data.splits["train"] for token in s.tokens}
    entity_tokens = [
        token
        for s in data.splits["test"]
        for token, tag in zip(s.tokens, s.tags, strict=True)
        if tag != "O"
    ]
    unseen = [token for token in entity_tokens if token not in train_tokens]
    assert 0.2 < len(unseen) / len(entity_tokens) < 0.7
    pool_names = {name for pool in NAME_POOLS.values() for name in pool}
    assert len(set(unseen) & pool_names) >= 20  # held-out pool names, not only coined ones


def test_builtin_words_whose_tag_depends_on_context():
    upos, entities = builtin_tagging_data(0, "upos"), builtin_tagging_data(0)
    seen = {}
    for tagged, ner in zip(upos.splits["train"], entities.splits["train"], strict=True):
        for token, pos, entity in zip(tagged.tokens, tagged.tags, ner.tags, strict=True):
            seen.setdefault(token.lower(), set()).add((pos, entity[2:] or "O"))
    pos_tags = {word: {pos for pos, _ in pairs} for word, pairs in seen.items()}
    entity_types = {word: {kind for _, kind in pairs} for word, pairs in seen.items()}
    for word in ("book", "plan", "visit", "report", "call", "watch"):
        assert {"NOUN", "VERB"} <= pos_tags[word], word
    assert pos_tags["that"] == {"DET", "SCONJ", "PRON"}
    assert pos_tags["like"] == {"VERB", "ADP"}
    assert pos_tags["to"] == {"PART", "ADP"}
    assert {"AUX", "PROPN"} <= pos_tags["may"] and {"O", "PER"} <= entity_types["may"]
    assert {"PER", "LOC"} <= entity_types["jordan"]
    assert {"PER", "LOC", "ORG"} <= entity_types["chelsea"]


def test_builtin_refuses_other_columns_and_column_options():
    with pytest.raises(SeqappsError, match="--column 'xpos': the built-in data has entities and"):
        load_tagging_data(None, column="xpos")
    with pytest.raises(SeqappsError, match="--token-column and --tag-column are for column files"):
        load_tagging_data(None, token_column=1)
