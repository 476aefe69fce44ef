"""Sentiment data in standard formats: what is read, how splits are made, the errors users see."""

import pytest

from apps.common.datasets import WHOLE_FILE
from apps.common.errors import SeqappsError
from apps.sentiment.data import load_labeled_text


def write(path, content, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def make_aclimdb(root, splits=("train", "test"), per_label=5):
    for split in splits:
        for label in ("neg", "pos"):
            for index in range(per_label):
                write(root / split / label / f"{index}_7.txt", f"{label} review {index}<br />ok")
    write(root / "train" / "unsup" / "0_0.txt", "ignored")


def test_aclimdb_reads_both_splits_and_holds_back_validation(tmp_path):
    make_aclimdb(tmp_path, per_label=10)
    data = load_labeled_text(tmp_path, seed=3)
    assert data.label_names == ["negative", "positive"]
    assert len(data.splits["test"]) == 20
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 20
    assert len(data.splits["validation"]) == 2
    assert "held back from train with seed 3" in data.description
    assert set(data.splits["test"].labels) == {"negative", "positive"}
    assert not any("ignored" in text for text in data.splits["train"].texts)  # unsup/ skipped


def test_aclimdb_folder_with_only_a_test_split(tmp_path):
    make_aclimdb(tmp_path, splits=("test",))
    data = load_labeled_text(tmp_path, for_training=False)
    assert len(data.split("test")) == 10
    with pytest.raises(SeqappsError, match="has no train split .*splits found: test"):
        data.split("train")


def test_aclimdb_undecodable_review_names_the_file_and_line(tmp_path):
    make_aclimdb(tmp_path)
    bad = write(tmp_path / "train" / "pos" / "99_9.txt", b"fine\nbad \xff byte")
    with pytest.raises(SeqappsError, match=rf"{bad}, line 2: undecodable bytes b'\\xff'"):
        load_labeled_text(tmp_path)


def test_sst2_folder_uses_its_own_splits(tmp_path):
    write(tmp_path / "stsa.binary.train", "1 a fine film\n0 a dull film\n1 great\n")
    write(tmp_path / "stsa.binary.dev", "0 weak\n")
    write(tmp_path / "stsa.binary.test", "1 lovely\n0 awful\n")
    data = load_labeled_text(tmp_path)
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [3, 1, 2]
    assert data.splits["train"].labels == ["positive", "negative", "positive"]
    assert data.splits["train"].texts[0] == "a fine film"
    assert "held back" not in data.description


@pytest.mark.parametrize(
    ("line", "problem"),
    [("2 a film", "label must be 0 or 1, got '2'"), ("1", "missing text after the label")],
)
def test_sst2_bad_line_names_file_line_and_value(tmp_path, line, problem):
    path = write(tmp_path / "stsa.binary.train", f"1 good\n{line}\n")
    with pytest.raises(SeqappsError, match=f"{path}, line 2: {problem}"):
        load_labeled_text(tmp_path)


def test_tsv_with_header_and_string_labels(tmp_path):
    rows = "".join(f"review {i}\t{'pos' if i % 2 else 'neg'}\n" for i in range(20))
    path = write(tmp_path / "reviews.tsv", "text\tlabel\n" + rows)
    data = load_labeled_text(path, seed=1)
    assert data.label_names == ["neg", "pos"]
    assert len(data.splits["train"]) == 18 and len(data.splits["validation"]) == 2
    whole = load_labeled_text(path, for_training=False)
    assert set(whole.splits) == {WHOLE_FILE} and len(whole.split("test")) == 20


def test_csv_with_named_columns_and_quoted_commas(tmp_path):
    path = write(tmp_path / "r.csv", 'id,Stars,Body\n1,5,"good, really"\n2,1,"bad"\n')
    data = load_labeled_text(path, text_column="body", label_column="stars", for_training=False)
    examples = data.split("test")
    assert examples.texts == ["good, really", "bad"]
    assert data.label_names == ["1", "5"]


def test_table_folder_with_train_dev_test_files(tmp_path):
    for name in ("train", "dev", "test"):
        write(tmp_path / f"{name}.csv", "sentence,label\nnice,1\nugly,0\n")
    data = load_labeled_text(tmp_path)
    assert sorted(data.splits) == ["test", "train", "validation"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty file"),
        ("words\tstars\nhello\t1\n", r"line 1: no text column in header \['words', 'stars'\]"),
        ("text\tlabel\ngood\t\n", "line 2: missing label"),
        ("text\tlabel\ngood\t1\textra\n", "line 2: 3 fields, the header has 2"),
        ("text\tlabel\n", "no examples after the header"),
    ],
)
def test_table_errors_name_file_line_and_problem(tmp_path, content, problem):
    path = write(tmp_path / "data.tsv", content)
    with pytest.raises(SeqappsError, match=f"{path}.*{problem}"):
        load_labeled_text(path)


def test_unknown_formats_are_explained(tmp_path):
    with pytest.raises(SeqappsError, match="no such file or directory"):
        load_labeled_text(tmp_path / "missing")
    write(tmp_path / "notes.md", "hello")
    with pytest.raises(SeqappsError, match="not a dataset this app reads; expected an aclImdb"):
        load_labeled_text(tmp_path)
    with pytest.raises(SeqappsError, match="expected a .tsv or .csv file"):
        load_labeled_text(tmp_path / "notes.md")
