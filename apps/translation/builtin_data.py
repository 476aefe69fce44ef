"""The built-in translation dataset: English -> German sentences from a small grammar, generated.

A smoke-test dataset, not a benchmark: it lets ``seqapps train translation`` learn something
visible in minutes with no download. About 120 lemmas (real English and German words, German
with its capitals, umlauts and ß) and the German grammar a word-for-word copy gets wrong:

- gender and case: the article and the adjective ending follow the noun's gender and the case the
  verb or preposition gives (``the big dog sees the small cat`` -> ``der große Hund sieht die
  kleine Katze``; ``sees the big dog`` -> ``sieht den großen Hund``; ``helps the woman`` ->
  ``hilft der Frau``; ``with a small cat`` -> ``mit einer kleinen Katze``), weak (after
  der/die/das), mixed (after ein, kein, mein) and strong (no article) adjective endings, weak
  nouns (``den Jungen``), dative plurals (``mit den Kindern``), contractions (``im Garten``,
  ``ins Haus``, ``zur Schule``, ``vom Lehrer``) and ``in`` + dative (where) against ``in`` +
  accusative (where to);
- plurals (``die Hunde``, ``die Mäuse``, ``die Kinder``) and verbs conjugated for person and
  number (``ich sehe``, ``er sieht``, ``wir sehen``), irregular ones (``isst``, ``mag``, ``weiß``);
- word order: the verb second after a fronted time adverb (``today the dog sees the cat`` ->
  ``heute sieht der Hund die Katze``) and after a fronted ``when`` clause, last in clauses after
  ``weil``, ``obwohl``, ``dass`` and ``wenn`` (``because the dog sees the cat`` -> ``weil der
  Hund die Katze sieht``), first in questions; modal verbs send the infinitive to the end
  (``kann die Katze sehen``); ``know`` is ``kennen`` or ``wissen`` by what follows;
- negation: ``nicht`` after a definite object, ``kein`` for an indefinite one (``does not see a
  dog`` -> ``sieht keinen Hund``).

``builtin_translation_data(seed)`` returns splits of ``SPLIT_SIZES`` pairs; no source or target
sentence occurs twice, so no validation or test pair is seen in training. The functions that
render one clause (``statement``, ``question``, ``joined``) are the reference for what the
grammar produces.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from apps.common.datasets import ExampleList
from apps.translation.data import SentencePair, TranslationData

SPLIT_SIZES = {"train": 6000, "validation": 500, "test": 500}
WORDS = (4, 20)  # fewest and most words of a sentence, on either side
MAX_ATTEMPTS_PER_PAIR = 50  # the generator gives up when the grammar cannot supply more pairs

# Cases and genders.
NOMINATIVE, ACCUSATIVE, DATIVE = CASES = ("nom", "acc", "dat")
MASCULINE, FEMININE, NEUTER, PLURAL = "m", "f", "n", "pl"
# What a noun names: verbs, prepositions and adjectives choose among these.
PERSON, ANIMAL, FOOD, TEXT, THING, PLACE = "person", "animal", "food", "text", "thing", "place"
LIVING = (PERSON, ANIMAL)
OBJECTS = (FOOD, TEXT, THING)
EVERYTHING = (*LIVING, *OBJECTS, PLACE)

# === Vocabulary ===


@dataclass(frozen=True)
class Noun:
    english: str
    english_plural: str
    german: str
    gender: str
    german_plural: str
    kind: str
    # Weak nouns (n-declension) take -(e)n in every case but the nominative singular.
    german_oblique: str | None = None


NOUNS = tuple(
    Noun(*row)
    for row in (
        ("man", "men", "Mann", MASCULINE, "Männer", PERSON),
        ("woman", "women", "Frau", FEMININE, "Frauen", PERSON),
        ("child", "children", "Kind", NEUTER, "Kinder", PERSON),
        ("girl", "girls", "Mädchen", NEUTER, "Mädchen", PERSON),
        ("boy", "boys", "Junge", MASCULINE, "Jungen", PERSON, "Jungen"),
        ("teacher", "teachers", "Lehrer", MASCULINE, "Lehrer", PERSON),
        ("doctor", "doctors", "Arzt", MASCULINE, "Ärzte", PERSON),
        ("friend", "friends", "Freund", MASCULINE, "Freunde", PERSON),
        ("student", "students", "Student", MASCULINE, "Studenten", PERSON, "Studenten"),
        ("grandmother", "grandmothers", "Großmutter", FEMININE, "Großmütter", PERSON),
        ("dog", "dogs", "Hund", MASCULINE, "Hunde", ANIMAL),
        ("cat", "cats", "Katze", FEMININE, "Katzen", ANIMAL),
        ("horse", "horses", "Pferd", NEUTER, "Pferde", ANIMAL),
        ("bird", "birds", "Vogel", MASCULINE, "Vögel", ANIMAL),
        ("mouse", "mice", "Maus", FEMININE, "Mäuse", ANIMAL),
        ("cow", "cows", "Kuh", FEMININE, "Kühe", ANIMAL),
        ("bear", "bears", "Bär", MASCULINE, "Bären", ANIMAL, "Bären"),
        ("apple", "apples", "Apfel", MASCULINE, "Äpfel", FOOD),
        ("cake", "cakes", "Kuchen", MASCULINE, "Kuchen", FOOD),
        ("egg", "eggs", "Ei", NEUTER, "Eier", FOOD),
        ("banana", "bananas", "Banane", FEMININE, "Bananen", FOOD),
        ("sausage", "sausages", "Wurst", FEMININE, "Würste", FOOD),
        ("book", "books", "Buch", NEUTER, "Bücher", TEXT),
        ("letter", "letters", "Brief", MASCULINE, "Briefe", TEXT),
        ("newspaper", "newspapers", "Zeitung", FEMININE, "Zeitungen", TEXT),
        ("story", "stories", "Geschichte", FEMININE, "Geschichten", TEXT),
        ("ball", "balls", "Ball", MASCULINE, "Bälle", THING),
        ("car", "cars", "Auto", NEUTER, "Autos", THING),
        ("bag", "bags", "Tasche", FEMININE, "Taschen", THING),
        ("key", "keys", "Schlüssel", MASCULINE, "Schlüssel", THING),
        ("flower", "flowers", "Blume", FEMININE, "Blumen", THING),
        ("chair", "chairs", "Stuhl", MASCULINE, "Stühle", THING),
        ("bicycle", "bicycles", "Fahrrad", NEUTER, "Fahrräder", THING),
        ("cup", "cups", "Tasse", FEMININE, "Tassen", THING),
        ("hat", "hats", "Hut", MASCULINE, "Hüte", THING),
        ("garden", "gardens", "Garten", MASCULINE, "Gärten", PLACE),
        ("park", "parks", "Park", MASCULINE, "Parks", PLACE),
        ("kitchen", "kitchens", "Küche", FEMININE, "Küchen", PLACE),
        ("house", "houses", "Haus", NEUTER, "Häuser", PLACE),
        ("school", "schools", "Schule", FEMININE, "Schulen", PLACE),
        ("forest", "forests", "Wald", MASCULINE, "Wälder", PLACE),
        ("city", "cities", "Stadt", FEMININE, "Städte", PLACE),
        ("room", "rooms", "Zimmer", NEUTER, "Zimmer", PLACE),
    )
)


@dataclass(frozen=True)
class Adjective:
    english: str
    german: str  # the stem; endings by rule (``müde`` drops its e before one)
    kinds: tuple[str, ...]  # the nouns it describes


ADJECTIVES = tuple(
    Adjective(*row)
    for row in (
        ("big", "groß", EVERYTHING),
        ("small", "klein", EVERYTHING),
        ("old", "alt", EVERYTHING),
        ("beautiful", "schön", EVERYTHING),
        ("young", "jung", LIVING),
        ("happy", "glücklich", LIVING),
        ("tired", "müde", LIVING),
        ("hungry", "hungrig", LIVING),
        ("new", "neu", (*OBJECTS, PLACE)),
        ("red", "rot", (THING,)),
        ("green", "grün", (THING, FOOD)),
        ("black", "schwarz", (ANIMAL, THING)),
        ("white", "weiß", (ANIMAL, THING)),
        ("brown", "braun", (ANIMAL, THING)),
        ("fresh", "frisch", (FOOD,)),
        ("sweet", "süß", (FOOD, ANIMAL)),
        ("long", "lang", (TEXT,)),
        ("interesting", "interessant", (TEXT,)),
        ("quiet", "ruhig", (PERSON, PLACE)),
    )
)


@dataclass(frozen=True)
class Pronoun:
    english: str
    english_object: str
    german: tuple[str, str, str]  # nominative, accusative, dative
    person: str  # "1sg", "3sg", "1pl" or "3pl": the verb form it takes


PRONOUNS = (
    Pronoun("I", "me", ("ich", "mich", "mir"), "1sg"),
    Pronoun("he", "him", ("er", "ihn", "ihm"), "3sg"),
    Pronoun("she", "her", ("sie", "sie", "ihr"), "3sg"),
    Pronoun("we", "us", ("wir", "uns", "uns"), "1pl"),
    Pronoun("they", "them", ("sie", "sie", "ihnen"), "3pl"),
)

# How a verb combines with its objects.
INTRANSITIVE, TRANSITIVE, DATIVE_OBJECT, DITRANSITIVE, COPULA, CLAUSE = (
    "intransitive", "transitive", "dative object", "ditransitive", "copula", "clause",
)  # fmt: skip


@dataclass(frozen=True)
class Verb:
    english: str  # the base form
    english_third: str  # he/she form
    german: tuple[str, str, str]  # ich, er/sie/es, wir/sie forms; the last is the infinitive
    frame: str
    subjects: tuple[str, ...]  # kinds of noun its subject may be
    objects: tuple[str, ...] = ()  # kinds of its (direct) object
    adverbials: tuple[str, ...] = ()  # keys of PREPOSITIONS it may take a phrase of
    indirect: tuple[str, ...] = ()  # kinds of a ditransitive verb's dative object


PEOPLE = (PERSON,)
VERBS = tuple(
    Verb(english, third, tuple(german.split()), *frame)
    for english, third, german, *frame in (
        ("sleep", "sleeps", "schlafe schläft schlafen", INTRANSITIVE, LIVING, (), ("in",)),
        ("play", "plays", "spiele spielt spielen", INTRANSITIVE, LIVING, (), ("in", "with")),
        ("sit", "sits", "sitze sitzt sitzen", INTRANSITIVE, LIVING, (), ("in",)),
        ("sing", "sings", "singe singt singen", INTRANSITIVE, LIVING, (), ("in", "for")),
        ("laugh", "laughs", "lache lacht lachen", INTRANSITIVE, PEOPLE, (), ("in",)),
        ("work", "works", "arbeite arbeitet arbeiten", INTRANSITIVE, PEOPLE, (), ("in",)),
        ("wait", "waits", "warte wartet warten", INTRANSITIVE, LIVING, (), ("in", "wait for")),
        ("go", "goes", "gehe geht gehen", INTRANSITIVE, LIVING, (), ("into", "to")),
        ("run", "runs", "laufe läuft laufen", INTRANSITIVE, LIVING, (), ("into", "to")),
        ("see", "sees", "sehe sieht sehen", TRANSITIVE, LIVING, EVERYTHING, ("in",)),
        ("hear", "hears", "höre hört hören", TRANSITIVE, LIVING, LIVING),
        ("like", "likes", "mag mag mögen", TRANSITIVE, LIVING, (*LIVING, FOOD, THING)),
        ("love", "loves", "liebe liebt lieben", TRANSITIVE, PEOPLE, LIVING),
        ("find", "finds", "finde findet finden", TRANSITIVE, LIVING, (*OBJECTS, ANIMAL), ("in",)),
        ("buy", "buys", "kaufe kauft kaufen", TRANSITIVE, PEOPLE, OBJECTS, ("for",)),
        ("read", "reads", "lese liest lesen", TRANSITIVE, PEOPLE, (TEXT,), ("in",)),
        ("eat", "eats", "esse isst essen", TRANSITIVE, LIVING, (FOOD,), ("in",)),
        ("carry", "carries", "trage trägt tragen", TRANSITIVE, LIVING, OBJECTS, ("into",)),
        ("have", "has", "habe hat haben", TRANSITIVE, LIVING, (ANIMAL, *OBJECTS)),
        ("know", "knows", "kenne kennt kennen", TRANSITIVE, PEOPLE, (*LIVING, PLACE)),
        ("get", "gets", "bekomme bekommt bekommen", TRANSITIVE, PEOPLE, OBJECTS, ("from",)),
        ("visit", "visits", "besuche besucht besuchen", TRANSITIVE, PEOPLE, (PERSON, PLACE)),
        ("help", "helps", "helfe hilft helfen", DATIVE_OBJECT, LIVING, LIVING),
        ("follow", "follows", "folge folgt folgen", DATIVE_OBJECT, LIVING, LIVING),
        ("thank", "thanks", "danke dankt danken", DATIVE_OBJECT, PEOPLE, PEOPLE),
        ("give", "gives", "gebe gibt geben", DITRANSITIVE, PEOPLE, OBJECTS, (), LIVING),
        ("show", "shows", "zeige zeigt zeigen", DITRANSITIVE, PEOPLE, OBJECTS, (), PEOPLE),
        ("bring", "brings", "bringe bringt bringen", DITRANSITIVE, PEOPLE, OBJECTS, (), LIVING),
        ("be", "is", "bin ist sind", COPULA, LIVING),
        ("say", "says", "sage sagt sagen", CLAUSE, PEOPLE),
        ("think", "thinks", "denke denkt denken", CLAUSE, PEOPLE),
        ("know", "knows", "weiß weiß wissen", CLAUSE, PEOPLE),
    )
)


@dataclass(frozen=True)
class Modal:
    english: str  # "can", or "want" (which takes "to" and "do" as any verb)
    german: tuple[str, str, str]


MODALS = (Modal("can", ("kann", "kann", "können")), Modal("want", ("will", "will", "wollen")))


@dataclass(frozen=True)
class Preposition:
    english: str
    german: str
    case: str
    kinds: tuple[str, ...]  # the nouns it takes


PREPOSITIONS = {
    "in": Preposition("in", "in", DATIVE, (PLACE,)),  # where
    "into": Preposition("into", "in", ACCUSATIVE, (PLACE,)),  # where to
    "with": Preposition("with", "mit", DATIVE, (*LIVING, THING)),
    "to": Preposition("to", "zu", DATIVE, LIVING),
    "from": Preposition("from", "von", DATIVE, (PERSON,)),
    "for": Preposition("for", "für", ACCUSATIVE, LIVING),
    "wait for": Preposition("for", "auf", ACCUSATIVE, LIVING),  # warten auf
}
# Preposition + definite article written as one word.
CONTRACTIONS = {
    ("in", "dem"): "im",
    ("in", "das"): "ins",
    ("zu", "dem"): "zum",
    ("zu", "der"): "zur",
    ("von", "dem"): "vom",
}


@dataclass(frozen=True)
class TimeAdverb:
    english: str
    german: str


TIME_ADVERBS = tuple(
    TimeAdverb(*row)
    for row in (
        ("today", "heute"),
        ("tomorrow", "morgen"),
        ("now", "jetzt"),
        ("sometimes", "manchmal"),
        ("in the morning", "am Morgen"),
        ("in the evening", "am Abend"),
        ("every day", "jeden Tag"),
    )
)
# Conjunctions: subordinating ones put the German verb last.
SUBORDINATING = {"because": "weil", "although": "obwohl", "that": "dass", "when": "wenn"}
COORDINATING = {"and": "und", "but": "aber"}

# Lookup by English word, for tests and readers: VERB["know"] is kennen (know someone),
# CLAUSE_VERB["know"] wissen (know that ...).
NOUN = {noun.english: noun for noun in NOUNS}
ADJECTIVE = {adjective.english: adjective for adjective in ADJECTIVES}
VERB = {verb.english: verb for verb in VERBS if verb.frame != CLAUSE}
CLAUSE_VERB = {verb.english: verb for verb in VERBS if verb.frame == CLAUSE}
PRONOUN = {pronoun.english: pronoun for pronoun in PRONOUNS}
MODAL = {modal.english: modal for modal in MODALS}
TIME = {adverb.english: adverb for adverb in TIME_ADVERBS}

# === German inflection ===

DEFINITE_ARTICLES = {
    NOMINATIVE: {MASCULINE: "der", FEMININE: "die", NEUTER: "das", PLURAL: "die"},
    ACCUSATIVE: {MASCULINE: "den", FEMININE: "die", NEUTER: "das", PLURAL: "die"},
    DATIVE: {MASCULINE: "dem", FEMININE: "der", NEUTER: "dem", PLURAL: "den"},
}
# ein, kein, mein: the stem and these endings (ein has no plural).
EIN_WORD_ENDINGS = {
    NOMINATIVE: {MASCULINE: "", FEMININE: "e", NEUTER: "", PLURAL: "e"},
    ACCUSATIVE: {MASCULINE: "en", FEMININE: "e", NEUTER: "", PLURAL: "e"},
    DATIVE: {MASCULINE: "em", FEMININE: "er", NEUTER: "em", PLURAL: "en"},
}
EIN_WORDS = {"a": "ein", "no": "kein", "my": "mein"}
# Adjective endings after a definite article (weak), after an ein-word (mixed: the adjective
# shows the gender where the article cannot), and with no article (strong; plurals only here).
WEAK_ENDINGS = {
    NOMINATIVE: {MASCULINE: "e", FEMININE: "e", NEUTER: "e", PLURAL: "en"},
    ACCUSATIVE: {MASCULINE: "en", FEMININE: "e", NEUTER: "e", PLURAL: "en"},
    DATIVE: {MASCULINE: "en", FEMININE: "en", NEUTER: "en", PLURAL: "en"},
}
MIXED_ENDINGS = {
    NOMINATIVE: {MASCULINE: "er", FEMININE: "e", NEUTER: "es", PLURAL: "en"},
    ACCUSATIVE: {MASCULINE: "en", FEMININE: "e", NEUTER: "es", PLURAL: "en"},
    DATIVE: {MASCULINE: "en", FEMININE: "en", NEUTER: "en", PLURAL: "en"},
}
STRONG_PLURAL_ENDINGS = {NOMINATIVE: "e", ACCUSATIVE: "e", DATIVE: "en"}


@dataclass(frozen=True)
class NounPhrase:
    """``determiner`` is ``"the"``, ``"a"``, ``"my"``, ``"no"`` or ``None`` (a plural alone)."""

    noun: Noun
    determiner: str | None = "the"
    adjective: Adjective | None = None
    plural: bool = False

    @property
    def person(self) -> str:
        return "3pl" if self.plural else "3sg"


Phrase = NounPhrase | Pronoun


def german_noun(noun: Noun, case: str, plural: bool) -> str:
    if plural:
        form = noun.german_plural
        # Dative plurals end in -n, unless they end in -n or -s already (den Kindern, den Autos).
        return form + "n" if case == DATIVE and not form.endswith(("n", "s")) else form
    if case != NOMINATIVE and noun.german_oblique:
        return noun.german_oblique
    return noun.german


def german_adjective(adjective: Adjective, ending: str) -> str:
    stem = adjective.german
    return (stem[:-1] if stem.endswith("e") and ending else stem) + ending


def german_noun_phrase(phrase: Phrase, case: str, preposition: str | None = None) -> str:
    """``den großen Hund``; with ``preposition``, contracted where German does (``im Garten``)."""
    if isinstance(phrase, Pronoun):
        words = [phrase.german[CASES.index(case)]]
    else:
        gender = PLURAL if phrase.plural else phrase.noun.gender
        if phrase.determiner == "the":
            article = DEFINITE_ARTICLES[case][gender]
            endings = WEAK_ENDINGS
        elif phrase.determiner in EIN_WORDS:
            if phrase.determiner == "a" and phrase.plural:
                raise ValueError(f"'a' with a plural noun: {phrase}")
            article = EIN_WORDS[phrase.determiner] + EIN_WORD_ENDINGS[case][gender]
            endings = MIXED_ENDINGS
        elif phrase.determiner is None and phrase.plural:
            article, endings = None, {c: {PLURAL: e} for c, e in STRONG_PLURAL_ENDINGS.items()}
        else:
            raise ValueError(f"determiner must be 'the', 'a', 'my', 'no' or None, got {phrase}")
        adjective = phrase.adjective and german_adjective(phrase.adjective, endings[case][gender])
        noun = german_noun(phrase.noun, case, phrase.plural)
        words = [word for word in (article, adjective, noun) if word]
    if preposition is None:
        return " ".join(words)
    if (preposition, words[0]) in CONTRACTIONS:
        return " ".join([CONTRACTIONS[preposition, words[0]], *words[1:]])
    return " ".join([preposition, *words])


def english_noun_phrase(phrase: Phrase, case: str = NOMINATIVE) -> str:
    if isinstance(phrase, Pronoun):
        return phrase.english if case == NOMINATIVE else phrase.english_object
    words = [phrase.adjective.english] if phrase.adjective else []
    words.append(phrase.noun.english_plural if phrase.plural else phrase.noun.english)
    if phrase.determiner == "a":
        return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)
    return " ".join([phrase.determiner, *words] if phrase.determiner else words)


# === Clauses ===


@dataclass(frozen=True)
class Clause:
    """One clause: a subject, a verb and what the verb's frame needs.

    ``dative`` is the object of a ``DATIVE_OBJECT`` verb or a ditransitive verb's indirect
    object, ``accusative`` the direct object; ``predicate`` the adjective of ``be``;
    ``adverbial`` a preposition key of ``PREPOSITIONS`` and its noun phrase.
    """

    subject: Phrase
    verb: Verb
    accusative: Phrase | None = None
    dative: Phrase | None = None
    predicate: Adjective | None = None
    adverbial: tuple[str, NounPhrase] | None = None
    modal: Modal | None = None
    negated: bool = False


FORM_INDEX = {"1sg": 0, "3sg": 1, "1pl": 2, "3pl": 2}


def _negates_with_kein(clause: Clause) -> bool:
    """German negates an indefinite object with ``kein`` (``keinen Hund``), else with ``nicht``."""
    phrase = clause.accusative
    return clause.negated and isinstance(phrase, NounPhrase) and phrase.determiner in ("a", None)


def _german_parts(clause: Clause) -> tuple[str, str, list[str]]:
    """``(subject, finite verb, rest)``: ``rest`` is the middle field and the infinitive, in
    German order (objects, ``nicht``, adverbial, predicate, infinitive)."""
    index = FORM_INDEX[clause.subject.person]
    finite = (clause.modal or clause.verb).german[index]
    rest = []
    if clause.dative is not None:
        rest.append(german_noun_phrase(clause.dative, DATIVE))
    if clause.accusative is not None:
        accusative = clause.accusative
        if _negates_with_kein(clause):
            accusative = replace(accusative, determiner="no")
        rest.append(german_noun_phrase(accusative, ACCUSATIVE))
    if clause.negated and not _negates_with_kein(clause):
        rest.append("nicht")
    if clause.adverbial is not None:
        preposition = PREPOSITIONS[clause.adverbial[0]]
        rest.append(german_noun_phrase(clause.adverbial[1], preposition.case, preposition.german))
    if clause.predicate is not None:
        rest.append(clause.predicate.german)  # predicative adjectives take no ending
    if clause.modal is not None:
        rest.append(clause.verb.german[2])
    return german_noun_phrase(clause.subject, NOMINATIVE), finite, rest


def german_clause(clause: Clause, order: str, front: str | None = None) -> str:
    """The clause in German ``order``: ``"main"`` (verb second, after ``front`` when given, else
    after the subject), ``"final"`` (subordinate: verb last) or ``"question"`` (verb first)."""
    subject, finite, rest = _german_parts(clause)
    if order == "main":
        words = [front, finite, subject, *rest] if front else [subject, finite, *rest]
    elif order == "final":
        words = [subject, *rest, finite]
    elif order == "question":
        words = [finite, subject, *rest]
    else:
        raise ValueError(f"order must be 'main', 'final' or 'question', got {order!r}")
    return " ".join(words)


def _english_verbs(clause: Clause, question: bool) -> tuple[str, list[str]]:
    """``(finite verb, the verbs after the subject in a question or after the finite verb)``."""
    person = clause.subject.person
    verb = clause.verb
    if verb.frame == COPULA:
        finite = {"1sg": "am", "3sg": "is"}.get(person, "are")
        return finite, ["not"] if clause.negated else []
    base = [verb.english]
    if clause.modal is not None and clause.modal.english == "can":
        return ("cannot" if clause.negated else "can"), base
    if clause.modal is not None:
        base = ["want", "to", *base]
    if clause.negated or question:
        do = "does" if person == "3sg" else "do"
        return do, ["not", *base] if clause.negated else base
    third = "wants" if clause.modal else verb.english_third
    return (third if person == "3sg" else base[0]), base[1:]


def english_clause(clause: Clause, question: bool = False) -> str:
    finite, verbs = _english_verbs(clause, question)
    subject = english_noun_phrase(clause.subject)
    words = [finite, subject, *verbs] if question else [subject, finite, *verbs]
    if clause.predicate is not None:
        words.append(clause.predicate.english)
    if clause.dative is not None:
        words.append(english_noun_phrase(clause.dative, DATIVE))
    if clause.accusative is not None:
        words.append(english_noun_phrase(clause.accusative, ACCUSATIVE))
    if clause.adverbial is not None:
        key, phrase = clause.adverbial
        words += [PREPOSITIONS[key].english, english_noun_phrase(phrase, DATIVE)]
    return " ".join(words)


def _sentence(text: str, end: str = ".") -> str:
    return text[0].upper() + text[1:] + end


def statement(clause: Clause, front: TimeAdverb | None = None) -> tuple[str, str]:
    """``("Today the dog sees the cat.", "Heute sieht der Hund die Katze.")``."""
    english = english_clause(clause)
    if front is None:
        return _sentence(english), _sentence(german_clause(clause, "main"))
    german = german_clause(clause, "main", front.german)
    return _sentence(f"{front.english} {english}"), _sentence(german)


def question(clause: Clause) -> tuple[str, str]:
    """``("Does the dog see the cat?", "Sieht der Hund die Katze?")``."""
    return (
        _sentence(english_clause(clause, question=True), "?"),
        _sentence(german_clause(clause, "question"), "?"),
    )


def joined(main: Clause, conjunction: str, other: Clause) -> tuple[str, str]:
    """Two clauses: ``main because other`` (German verb last after ``weil``), ``when other,
    main`` (German ``wenn`` clause first, then verb before subject), ``main and other``; for
    ``that``, ``main`` is a clause verb's subject (``the man says that ...``)."""
    if conjunction in COORDINATING:
        comma = "," if conjunction == "but" else ""  # German: a comma before aber, not und
        english = f"{english_clause(main)}{comma} {conjunction} {english_clause(other)}"
        german = (
            f"{german_clause(main, 'main')}{comma} {COORDINATING[conjunction]} "
            f"{german_clause(other, 'main')}"
        )
        return _sentence(english), _sentence(german)
    subordinate = f"{SUBORDINATING[conjunction]} {german_clause(other, 'final')}"
    if conjunction == "when":
        english = f"when {english_clause(other)}, {english_clause(main)}"
        return _sentence(english), _sentence(german_clause(main, "main", subordinate + ","))
    english = f"{english_clause(main)} {conjunction} {english_clause(other)}"
    return _sentence(english), _sentence(f"{german_clause(main, 'main')}, {subordinate}")


# === Random sentences ===

# Verbs that take no modal: "can like" is not "mögen können", "want to know" not "kennen wollen".
STATIVE = (VERB["like"], VERB["love"], VERB["have"], VERB["know"])
# Drawn with these frequencies (a plural without an article: None).
SINGULAR_DETERMINERS = ("the", "the", "the", "a", "a", "my")
PLURAL_DETERMINERS = ("the", "the", "my", None)


class _Generator:
    """Draws clauses and sentences with ``rng``; every draw fits the verbs' frames."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def noun_phrase(self, kinds, avoid: Noun | None = None) -> NounPhrase:
        rng = self.rng
        noun = rng.choice([n for n in NOUNS if n.kind in kinds and n is not avoid])
        plural = self.chance(0.25)
        determiners = PLURAL_DETERMINERS if plural else SINGULAR_DETERMINERS
        adjectives = [a for a in ADJECTIVES if noun.kind in a.kinds]
        adjective = rng.choice(adjectives) if self.chance(0.35) else None
        return NounPhrase(noun, rng.choice(determiners), adjective, plural)

    def phrase(self, kinds, subject: Phrase | None = None, pronoun_rate: float = 0.15) -> Phrase:
        """A noun phrase, or (for a person) now and then a pronoun; not ``subject`` again
        (``I see me`` wants ``myself``)."""
        if PERSON in kinds and self.chance(pronoun_rate):
            return self.rng.choice([pronoun for pronoun in PRONOUNS if pronoun is not subject])
        return self.noun_phrase(kinds, avoid=getattr(subject, "noun", None))

    def clause(self, verbs=None, negatable: bool = True) -> Clause:
        rng = self.rng
        verb = rng.choice(verbs or [v for v in VERBS if v.frame != CLAUSE])
        subject = self.phrase(verb.subjects, pronoun_rate=0.25)
        noun = getattr(subject, "noun", None)
        parts: dict = {}
        if verb.frame == COPULA:
            kind = noun.kind if noun else PERSON
            parts["predicate"] = rng.choice([a for a in ADJECTIVES if kind in a.kinds])
        elif verb.frame == TRANSITIVE:
            parts["accusative"] = self.phrase(verb.objects, subject)
        elif verb.frame == DATIVE_OBJECT:
            parts["dative"] = self.phrase(verb.objects, subject)
        elif verb.frame == DITRANSITIVE:
            parts["dative"] = self.phrase(verb.indirect, subject)
            parts["accusative"] = self.noun_phrase(verb.objects)
        adverbial_rate = 0.7 if verb.frame == INTRANSITIVE else 0.25
        if verb.adverbials and self.chance(adverbial_rate):
            key = rng.choice(verb.adverbials)
            parts["adverbial"] = (key, self.noun_phrase(PREPOSITIONS[key].kinds, avoid=noun))
        if verb.frame not in (COPULA, CLAUSE) and verb not in STATIVE and self.chance(0.12):
            parts["modal"] = rng.choice(MODALS)
        dative = parts.get("dative")
        definite_dative = dative is None or getattr(dative, "determiner", "the") in ("the", "my")
        if (
            negatable
            and verb.frame != DITRANSITIVE
            and definite_dative  # "hilft keiner Frau" is German, but rarely what is meant
            and not (verb.frame != INTRANSITIVE and "adverbial" in parts)
        ):
            parts["negated"] = self.chance(0.2)
        return Clause(subject, verb, **parts)

    def pair(self) -> tuple[str, str]:
        """One sentence pair, by a template chosen at random."""
        rng = self.rng
        template = rng.random()
        if template < 0.35:
            return statement(self.clause())
        if template < 0.5:
            return statement(self.clause(), front=rng.choice(TIME_ADVERBS))
        if template < 0.6:
            return question(self.clause(negatable=False))
        if template < 0.7:
            return joined(self.clause(), rng.choice(("because", "although")), self.clause())
        if template < 0.78:
            return joined(self.clause(), "when", self.clause(negatable=False))
        if template < 0.88:
            return joined(self.clause(), rng.choice(tuple(COORDINATING)), self.clause())
        speaker = self.clause(list(CLAUSE_VERB.values()))
        return joined(speaker, "that", self.clause())


def _fits(english: str, german: str) -> bool:
    fewest, most = WORDS
    return all(fewest <= len(text.split()) <= most for text in (english, german))


def generate_pairs(count: int, seed: int) -> list[SentencePair]:
    """``count`` pairs for ``seed``, none repeating a source or a target sentence."""
    generator = _Generator(random.Random(f"seqapps-translation-{seed}"))
    pairs, seen = [], set()
    for _ in range(count * MAX_ATTEMPTS_PER_PAIR):
        if len(pairs) == count:
            return pairs
        english, german = generator.pair()
        if _fits(english, german) and english not in seen and german not in seen:
            seen.update((english, german))
            pairs.append(SentencePair(english, german))
    raise RuntimeError(f"the grammar gave only {len(pairs)} distinct pairs of {count} asked for")


def builtin_translation_data(seed: int = 0) -> TranslationData:
    """Train 6,000 / validation 500 / test 500 generated English -> German pairs for ``seed``.

    The test pairs are drawn first, then validation, then train, so the evaluation splits stay
    the same when ``SPLIT_SIZES["train"]`` changes.
    """
    pairs = generate_pairs(sum(SPLIT_SIZES.values()), seed)
    splits, start = {}, 0
    for split in ("test", "validation", "train"):
        splits[split] = ExampleList(pairs[start : start + SPLIT_SIZES[split]])
        start += SPLIT_SIZES[split]
    description = (
        f"built-in generated English-German sentences (seed {seed}; a smoke-test dataset, not "
        "a benchmark), en->de"
    )
    return TranslationData({split: splits[split] for split in SPLIT_SIZES}, description, "en", "de")
