"""Translation data: Multi30k-style folders, tab-separated files, lazy splits and their aliases,
errors users see, and the built-in English -> German grammar."""

import gzip
import re
from dataclasses import replace

import pytest

from apps.common.datasets import WHOLE_FILE
from apps.common.errors import SeqappsError
from apps.translation import builtin_data as grammar
from apps.translation.builtin_data import (
    ACCUSATIVE,
    DATIVE,
    NOMINATIVE,
    SPLIT_SIZES,
    builtin_translation_data,
    german_noun_phrase,
    joined,
    question,
    statement,
)
from apps.translation.data import SentencePair, load_translation_data

ENGLISH = ["A dog runs.", "Two men talk.", "A girl reads a book."]
GERMAN = ["Ein Hund rennt.", "Zwei Männer reden.", "Ein Mädchen liest ein Buch."]


def write(path, content):
    """Writes lines (a list), text or bytes; gzipped when the name ends in ``.gz``."""
    if isinstance(content, list):
        content = "".join(f"{line}\n" for line in content)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


def make_pairs(folder, names, suffix=".gz", languages=("en", "de"), sides=(ENGLISH, GERMAN)):
    for name in names:
        for language, lines in zip(languages, sides, strict=True):
            write(folder / f"{name}.{language}{suffix}", lines)
    write(folder / "README.md", "# Multi30k")
    write(folder / "LICENSE", "license")
    return folder


def load(path, source=None, target=None, seed=0, for_training=False):
    return load_translation_data(
        path, source=source, target=target, seed=seed, for_training=for_training
    )


MULTI30K = ("train", "val", "test_2016_flickr", "test_2017_flickr")
FIRST_PAIR = SentencePair("A dog runs.", "Ein Hund rennt.")


# === Multi30k-style folders ===


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_multi30k_folder_en_to_de_reads_train_and_validation_for_training(tmp_path, suffix):
    make_pairs(tmp_path, MULTI30K, suffix)
    data = load(tmp_path, for_training=True)
    assert (data.source_language, data.target_language) == ("en", "de")
    assert data.description == f"Multi30k-style folder {tmp_path}, en->de"
    assert (
        data.sizes() == "train 3, validation (val) 3; not read: test_2016_flickr, test_2017_flickr"
    )
    assert data.split("train")[0] == FIRST_PAIR
    assert data.split("validation") == data.split("val")
    assert data.split_name("validation") == "val"


def test_source_and_target_flags_choose_the_direction(tmp_path):
    make_pairs(tmp_path, ("train",))
    reverse = load(tmp_path, source="de", target="en")
    assert reverse.split("train")[0] == SentencePair("Ein Hund rennt.", "A dog runs.")
    assert reverse.description.endswith(", de->en")
    assert load(tmp_path, source="de").target_language == "en"  # the other is implied
    assert load(tmp_path, target="en").source_language == "de"
    with pytest.raises(
        SeqappsError, match=r"--target fr: .* has no fr files \(languages: de, en\)"
    ):
        load(tmp_path, source="en", target="fr")


def test_two_other_languages_need_the_flags(tmp_path):
    make_pairs(tmp_path, ("train",), languages=("fr", "cs"))
    with pytest.raises(
        SeqappsError,
        match=rf"{tmp_path}: languages cs, fr; choose the direction with --source and --target",
    ):
        load(tmp_path)
    data = load(tmp_path, source="fr", target="cs")
    assert data.split("train")[0] == FIRST_PAIR
    assert load(tmp_path, source="cs").target_language == "fr"


def test_english_and_german_beside_other_languages_default_to_en_de(tmp_path):
    make_pairs(tmp_path, ("train",))
    write(tmp_path / "train.fr.gz", ENGLISH)
    assert load(tmp_path).description.endswith(", en->de")
    with pytest.raises(SeqappsError, match=r"give both --source and --target"):
        load(tmp_path, source="fr")


def test_aliases_validation_and_test(tmp_path):
    make_pairs(tmp_path, ("train", "dev", "test_2016_flickr"), suffix="")
    data = load(tmp_path)
    assert data.split_name("validation") == "dev"
    assert data.split_name("test") == "test_2016_flickr"  # the one name starting with test
    assert data.split("test")[0] == FIRST_PAIR
    make_pairs(tmp_path, ("test",), suffix="")
    assert load(tmp_path).split_name("test") == "test"  # a split called test wins


def test_several_test_splits_ask_for_a_name(tmp_path):
    make_pairs(tmp_path, MULTI30K)
    data = load(tmp_path)
    with pytest.raises(
        SeqappsError,
        match=r"several test splits \(test_2016_flickr, test_2017_flickr\); "
        r"choose one with --split NAME",
    ):
        data.split("test")
    assert data.split("test_2017_flickr")[0] == FIRST_PAIR  # any name is a split
    assert data.split_name("test_2017_flickr") == "test_2017_flickr"


def test_unknown_split_lists_the_splits(tmp_path):
    make_pairs(tmp_path, MULTI30K)
    with pytest.raises(
        SeqappsError,
        match=r", en->de: no dev2010 split \(splits: test_2016_flickr, test_2017_flickr, train, "
        r"val\)",
    ):
        load(tmp_path).split("dev2010")


def test_folder_with_one_test_set_is_evaluated_but_not_trained_on(tmp_path):
    make_pairs(tmp_path, ("test_2017_flickr",))
    data = load(tmp_path)
    assert data.split_name("test") == "test_2017_flickr"
    assert data.split("test_2017_flickr") == data.split("test")
    assert data.sizes() == "test (test_2017_flickr) 3"
    with pytest.raises(SeqappsError, match=r"no train split \(splits: test_2017_flickr\)"):
        load(tmp_path, for_training=True)


def test_splits_are_read_lazily(tmp_path):
    make_pairs(tmp_path, ("train", "val", "test_2016_flickr"))
    corrupt = tmp_path / "test_2016_flickr.de.gz"
    corrupt.write_bytes(b"not gzip at all")
    data = load(tmp_path, for_training=True)  # does not read the test split
    assert data.sizes() == "train 3, validation (val) 3; not read: test_2016_flickr"
    for _ in range(2):  # a failed read leaves the split unread, to fail the same way again
        with pytest.raises(SeqappsError, match=rf"{corrupt}: not a valid gzip file"):
            data.split("test")
    truncated = tmp_path / "val.de.gz"
    truncated.write_bytes(gzip.compress(b"Ein Hund.\n" * 3)[:-8])
    with pytest.raises(SeqappsError, match=rf"{truncated}: not a valid gzip file"):
        load(tmp_path, for_training=True)


def test_one_sided_name_is_no_split_but_named_when_asked_for(tmp_path):
    make_pairs(tmp_path, ("train", "val"))
    write(tmp_path / "test_2018_flickr.en.gz", ENGLISH)  # a blind test set: no German
    data = load(tmp_path)
    assert data.names() == ["train", "val"]
    message = rf"{tmp_path / 'test_2018_flickr.de'}: no such file \(nor .gz\), so split "
    with pytest.raises(SeqappsError, match=message):
        data.split("test_2018_flickr")
    with pytest.raises(SeqappsError, match=message):
        data.split("test")


def test_folder_without_validation_holds_back_a_seeded_tenth(tmp_path):
    make_pairs(tmp_path, ("train",), sides=(ENGLISH * 7, GERMAN * 7))
    data = load(tmp_path, seed=4, for_training=True)
    assert data.sizes() == "train 19, validation 2"
    assert data.description.endswith(
        "validation = 2 examples (10%) held back from train with seed 4"
    )


# === Lines ===


def test_mismatched_line_counts_name_both_files_and_counts(tmp_path):
    source = write(tmp_path / "train.en", ENGLISH)
    target = write(tmp_path / "train.de", GERMAN[:2])
    with pytest.raises(SeqappsError, match=rf"{source} has 3 lines but {target} has 2"):
        load(tmp_path, for_training=True)


def test_pairs_with_an_empty_side_are_skipped_and_reported(tmp_path, capsys):
    source = write(tmp_path / "train.en", "A dog.\r\n\r\n  Two men.  \nA cat.\n")
    target = write(tmp_path / "train.de", "Ein Hund.\nNichts.\nZwei Männer.\n \n")
    data = load(tmp_path)
    assert list(data.split("train")) == [
        SentencePair("A dog.", "Ein Hund."),
        SentencePair("Two men.", "Zwei Männer."),
    ]
    assert capsys.readouterr().err == (
        f"{source} / {target}: skipped 2 pairs with an empty side (lines 2, 4)\n"
    )
    assert data.description.endswith("; 2 pairs with an empty side skipped in train")


def test_a_file_pair_with_no_sentences(tmp_path):
    write(tmp_path / "train.en", "\n\n")
    write(tmp_path / "train.de", "Ein Hund.\n\n")
    with pytest.raises(SeqappsError, match=r"no sentence pairs \(every line has an empty side\)"):
        load(tmp_path).split("train")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_undecodable_bytes_name_file_and_line(tmp_path, suffix):
    make_pairs(tmp_path, ("train",), suffix)
    bad = write(tmp_path / f"train.de{suffix}", b"Ein Hund.\nZwei M\xe4nner.\nEin Buch.\n")
    with pytest.raises(SeqappsError, match=rf"{bad}, line 2: undecodable bytes b'\\xe4'"):
        load(tmp_path, for_training=True)


# === Tab-separated files ===

TATOEBA = "".join(
    f"Sentence {i}.\tSatz {i}.\tCC-BY 2.0 (France) Attribution: tatoeba.org #{i}\n"
    for i in range(20)
)


def test_tab_separated_file_with_attribution_and_seeded_hold_out(tmp_path):
    path = write(tmp_path / "deu.txt", TATOEBA)
    data = load(path, seed=3, for_training=True)
    assert data.sizes() == "train 18, validation 2"
    assert data.description == (
        f"tab-separated file {path}, source->target; validation = 2 examples (10%) held back "
        "from train with seed 3"
    )
    assert data.split("train")[0] == SentencePair("Sentence 0.", "Satz 0.")
    same = load(path, seed=3, for_training=True)
    other = load(path, seed=4, for_training=True)
    assert same.split("validation") == data.split("validation")
    assert other.split("validation") != data.split("validation")


def test_tab_separated_file_for_evaluation_is_one_split(tmp_path):
    path = write(tmp_path / "pairs.tsv.gz", TATOEBA)
    data = load(path, source="en", target="de")
    assert set(data.splits) == {WHOLE_FILE}
    assert data.split_name("test") == WHOLE_FILE
    assert len(data.split("test")) == 20
    assert data.sizes() == "whole file 20"
    assert (data.source_language, data.target_language) == ("en", "de")


def test_tab_separated_line_without_tab_names_line_and_text(tmp_path):
    path = write(tmp_path / "deu.txt", "Go.\tGeh.\n" + "x" * 80 + "\n")
    with pytest.raises(SeqappsError, match=rf"{path}, line 2: no tab in '{'x' * 60}'\.\.\."):
        load(path)


def test_tab_separated_folder(tmp_path):
    for name in ("train", "dev", "test"):
        write(tmp_path / f"{name}.tsv", TATOEBA)
    data = load(tmp_path, for_training=True)
    assert data.sizes() == "train 20, validation (dev) 20; not read: test"
    assert data.description == f"tab-separated folder {tmp_path}, source->target"


def test_paths_that_are_not_translation_data(tmp_path):
    with pytest.raises(SeqappsError, match="no such file or directory"):
        load(tmp_path / "missing")
    write(tmp_path / "README.md", "x")
    write(tmp_path / "notes.txt", "x")
    with pytest.raises(SeqappsError, match=r"no translation data; expected line-aligned file"):
        load(tmp_path)
    write(tmp_path / "train.en", ENGLISH)
    with pytest.raises(SeqappsError, match=r"only en files; a pair needs NAME.SRC and NAME.TGT"):
        load(tmp_path)


# === Built-in data: the grammar ===


def phrase(noun, determiner="the", adjective=None, plural=False):
    adjective = grammar.ADJECTIVE[adjective] if adjective else None
    return grammar.NounPhrase(grammar.NOUN[noun], determiner, adjective, plural)


def clause(subject, verb, **parts):
    """``subject``: a pronoun ("I"), a noun ("dog", as "the dog") or a ``NounPhrase``."""
    if isinstance(subject, str):
        subject = grammar.PRONOUN[subject] if subject in grammar.PRONOUN else phrase(subject)
    return grammar.Clause(subject, grammar.VERB[verb], **parts)


DOG_SEES_CAT = clause("dog", "see", accusative=phrase("cat"))


@pytest.mark.parametrize(
    "noun_phrase, case, german",
    [
        (phrase("dog", adjective="big"), NOMINATIVE, "der große Hund"),
        (phrase("dog", adjective="big"), ACCUSATIVE, "den großen Hund"),
        (phrase("dog", "a", "big"), NOMINATIVE, "ein großer Hund"),  # mixed: ein shows no gender
        (phrase("child", "a", "small"), ACCUSATIVE, "ein kleines Kind"),
        (phrase("cat", "my", "tired"), DATIVE, "meiner müden Katze"),
        (phrase("dog", None, "small", plural=True), NOMINATIVE, "kleine Hunde"),  # strong
        (phrase("child", plural=True), DATIVE, "den Kindern"),  # dative plural -n
        (phrase("car", plural=True), DATIVE, "den Autos"),
        (phrase("boy"), ACCUSATIVE, "den Jungen"),  # weak noun
        (phrase("dog", "no"), ACCUSATIVE, "keinen Hund"),
    ],
)
def test_german_articles_and_adjectives_agree(noun_phrase, case, german):
    assert german_noun_phrase(noun_phrase, case) == german


def test_german_prepositions_govern_case_and_contract():
    assert german_noun_phrase(phrase("cat", adjective="small"), DATIVE, "mit") == (
        "mit der kleinen Katze"
    )
    assert german_noun_phrase(phrase("garden"), DATIVE, "in") == "im Garten"  # where
    assert german_noun_phrase(phrase("garden"), ACCUSATIVE, "in") == "in den Garten"  # where to
    assert german_noun_phrase(phrase("house"), ACCUSATIVE, "in") == "ins Haus"
    assert german_noun_phrase(phrase("school"), DATIVE, "zu") == "zur Schule"


def test_sentences_agree_and_conjugate():
    big_dog = phrase("dog", adjective="big")
    assert statement(clause(big_dog, "see", accusative=phrase("cat", adjective="small"))) == (
        "The big dog sees the small cat.",
        "Der große Hund sieht die kleine Katze.",
    )
    assert statement(clause("man", "see", accusative=phrase("dog", adjective="big"))) == (
        "The man sees the big dog.",
        "Der Mann sieht den großen Hund.",
    )
    assert statement(clause("man", "help", dative=phrase("woman"))) == (
        "The man helps the woman.",
        "Der Mann hilft der Frau.",
    )
    children, ball = phrase("child", plural=True), phrase("ball", "a", "red")
    gives = clause("woman", "give", dative=children, accusative=ball)
    assert statement(gives) == (
        "The woman gives the children a red ball.",
        "Die Frau gibt den Kindern einen roten Ball.",
    )
    for pronoun, english, german in [
        ("I", "I see", "Ich sehe"),
        ("he", "He sees", "Er sieht"),
        ("we", "We see", "Wir sehen"),
    ]:
        sees = clause(pronoun, "see", accusative=phrase("dog"))
        assert statement(sees) == (f"{english} the dog.", f"{german} den Hund.")


def test_word_order_verb_second_final_and_first():
    assert statement(DOG_SEES_CAT, front=grammar.TIME["today"]) == (
        "Today the dog sees the cat.",
        "Heute sieht der Hund die Katze.",
    )
    sleeps = clause("man", "sleep")
    assert joined(sleeps, "because", DOG_SEES_CAT) == (
        "The man sleeps because the dog sees the cat.",
        "Der Mann schläft, weil der Hund die Katze sieht.",
    )
    assert joined(sleeps, "when", DOG_SEES_CAT) == (
        "When the dog sees the cat, the man sleeps.",
        "Wenn der Hund die Katze sieht, schläft der Mann.",
    )
    knows = grammar.Clause(phrase("woman"), grammar.CLAUSE_VERB["know"])
    assert joined(knows, "that", DOG_SEES_CAT) == (
        "The woman knows that the dog sees the cat.",
        "Die Frau weiß, dass der Hund die Katze sieht.",
    )
    assert question(DOG_SEES_CAT) == ("Does the dog see the cat?", "Sieht der Hund die Katze?")
    can_see = replace(DOG_SEES_CAT, modal=grammar.MODAL["can"])
    assert statement(can_see)[1] == "Der Hund kann die Katze sehen."
    assert (
        joined(sleeps, "because", can_see)[1]
        == "Der Mann schläft, weil der Hund die Katze sehen kann."
    )


def test_negation_nicht_or_kein():
    assert statement(replace(DOG_SEES_CAT, negated=True)) == (
        "The dog does not see the cat.",
        "Der Hund sieht die Katze nicht.",
    )
    assert statement(clause("man", "see", accusative=phrase("dog", "a"), negated=True)) == (
        "The man does not see a dog.",
        "Der Mann sieht keinen Hund.",
    )
    wants = replace(DOG_SEES_CAT, modal=grammar.MODAL["want"], negated=True)
    assert joined(clause("man", "sleep"), "because", wants) == (
        "The man sleeps because the dog does not want to see the cat.",
        "Der Mann schläft, weil der Hund die Katze nicht sehen will.",
    )
    tired = grammar.Clause(
        phrase("dog", plural=True), grammar.VERB["be"], predicate=grammar.ADJECTIVE["tired"]
    )
    assert statement(replace(tired, negated=True)) == (
        "The dogs are not tired.",
        "Die Hunde sind nicht müde.",
    )


# === Built-in data: the splits ===


@pytest.fixture(scope="module")
def builtin():
    return builtin_translation_data(seed=0)


def test_builtin_splits_sizes_and_no_overlap(builtin):
    assert builtin.sizes() == ", ".join(f"{name} {size}" for name, size in SPLIT_SIZES.items())
    assert (builtin.source_language, builtin.target_language) == ("en", "de")
    for side in ("source", "target"):
        seen = [getattr(pair, side) for name in SPLIT_SIZES for pair in builtin.split(name)]
        assert len(set(seen)) == len(seen)  # within and across splits


def test_builtin_sentences_look_like_text(builtin):
    pairs = [pair for name in SPLIT_SIZES for pair in builtin.split(name)]
    fewest, most = grammar.WORDS
    for pair in pairs:
        for text in (pair.source, pair.target):
            assert text[0].isupper() and text[-1] in ".?", text
            assert fewest <= len(text.split()) <= most, text
    german = " ".join(pair.target for pair in pairs)
    assert {"ä", "ö", "ü", "ß"} <= set(german)
    lowercase_nouns = {
        form.lower() for noun in grammar.NOUNS for form in (noun.german, noun.german_plural)
    } - {"junge", "jungen"}  # also the adjective jung (young)
    assert not lowercase_nouns & set(re.findall(r"\w+", german))  # nouns are capitalized


def test_builtin_data_is_deterministic_and_test_pairs_come_first(builtin):
    first = grammar.generate_pairs(200, seed=0)
    assert first == builtin.split("test")[:200]
    assert grammar.generate_pairs(200, seed=1) != first


def test_builtin_data_reversed_by_the_flags(builtin, monkeypatch):
    monkeypatch.setattr(grammar, "SPLIT_SIZES", {"train": 20, "validation": 5, "test": 5})
    data = load(None, source="de", for_training=True)
    assert (data.source_language, data.target_language) == ("de", "en")
    assert data.description.endswith("(seed 0; a smoke-test dataset, not a benchmark), de->en")
    assert data.sizes() == "train 20, validation 5, test 5"
    assert data.split("test")[0] == SentencePair(
        builtin.split("test")[0].target, builtin.split("test")[0].source
    )
    with pytest.raises(SeqappsError, match=r"--target fr: the built-in data has no fr files"):
        load(None, source="en", target="fr")
