"""The built-in tagging dataset: English-like sentences from a small grammar, generated in memory.

A smoke-test dataset, not a benchmark: it lets ``seqapps train tagging`` run with no download.
Every token carries both a Universal Dependencies part-of-speech tag (UPOS) and an entity tag
(IOB2; PER, LOC, ORG, MISC), so one set of sentences serves both columns. Sentences tell of
people, places and organisations (names of one to three tokens, titles, ``Bank of Lima``), with
dates, numbers and punctuation. Memorising tokens is not enough:

- names come from pools split between training and evaluation (validation and test draw half of
  their names from the held-out part) and from a syllable generator, so many test names are new;
  capital letters and suffixes (``-son``, ``-ski``, ``-burg``, ``-ton``, ``Industries``) are the
  cues a character model can use;
- some words take their tag from the context: ``book``, ``plan``, ``visit``, ``report``, ``call``
  and ``watch`` (NOUN or VERB), ``that`` (DET, SCONJ or PRON), ``like`` (VERB or ADP), ``to``
  (PART or ADP), ``may``/``May`` (AUX, a month or a person's name), and names such as
  ``Jordan`` or ``Chelsea`` (a person, a place or a football club).
"""

from __future__ import annotations

import random

from apps.common.datasets import ExampleList
from apps.common.errors import SeqappsError
from apps.tagging.data import TaggedSentence, TaggingData

SPLIT_SIZES = {"train": 3000, "validation": 400, "test": 600}
BUILTIN_COLUMNS = ("entities", "upos")
HELD_OUT_FRACTION = 0.3  # of each name pool, never seen in training
HELD_OUT_RATE = 0.5  # how often validation and test draw a name from the held-out part
COINED_RATE = 0.2  # how often a name is made up from syllables instead

Word = tuple[str, str, str]  # token, UPOS, entity tag

# === Vocabulary ===

NAME_POOLS = {
    "first": (
        "Maria", "James", "Aisha", "Kenji", "Olga", "Pedro", "Fatima", "Liam", "Chen", "Sofia",
        "Tomas", "Nadia", "Omar", "Ingrid", "Rahul", "Elena", "Kwame", "Yuki", "Hannah", "Diego",
        "Leila", "Marco", "Priya", "Anders", "Zara", "Felix", "Amara", "Igor", "Lucia", "Samuel",
        "Mei", "Oscar", "Nina", "Tariq", "Greta", "Luis", "Ayumi", "Daniel", "Esther", "Viktor",
    ),
    "last": (
        "Keller", "Okafor", "Tanaka", "Novak", "Silva", "Haddad", "Larsen", "Moreau", "Kowalski",
        "Fischer", "Nakamura", "Costa", "Petrov", "Mensah", "Lindqvist", "Romero", "Schmidt",
        "Osei", "Varga", "Dubois", "Jensen", "Rossi", "Yilmaz", "Ahmed", "Park", "Nowak",
        "Oliveira", "Ivanova", "Murphy", "Bauer", "Sato", "Horvat", "Eriksson", "Mendes",
        "Kamau", "Lopez", "Weber", "Ortiz", "Hansen", "Abbas",
    ),
    "city": (
        "Lisbon", "Nairobi", "Osaka", "Toronto", "Krakow", "Lima", "Oslo", "Cairo", "Denver",
        "Porto", "Hamburg", "Dublin", "Seville", "Accra", "Quito", "Perth", "Madrid", "Bergen",
        "Lyon", "Kyoto", "Tunis", "Zagreb", "Riga", "Dakar", "Boston", "Glasgow", "Malmo",
        "Bologna", "Geneva", "Manila",
    ),
    "multi_city": (
        "New Delhi", "San Diego", "Buenos Aires", "Cape Town", "Hong Kong", "Los Angeles",
        "Tel Aviv", "Kuala Lumpur", "New Orleans", "Santa Cruz", "Abu Dhabi", "Rio Grande",
    ),
    "country": (
        "Kenya", "Peru", "Norway", "Japan", "Portugal", "Canada", "Egypt", "Poland", "Chile",
        "Ghana", "Vietnam", "Iceland", "Morocco", "Finland", "Uruguay", "Nepal", "Austria",
        "Senegal", "Ireland", "Mexico",
    ),
    "org": (
        "Reuters", "UNESCO", "Interpol", "Greenpeace", "Oxfam", "Siemens", "Toyota", "Nokia",
        "Unilever", "Amnesty", "Vodafone", "Heineken", "Philips", "Lufthansa", "Spotify", "IKEA",
    ),
}  # fmt: skip
# Names that are people, places (and a club) alike: shared by all splits; the context decides.
AMBIGUOUS_NAMES = ("Jordan", "Georgia", "Florence", "Victoria", "Austin", "Paris", "Chelsea")
NATIONALITIES = (
    "French", "Japanese", "Brazilian", "Kenyan", "Norwegian", "Polish", "Mexican", "Egyptian",
    "Canadian", "Italian", "German", "Korean", "Spanish", "Turkish",
)  # fmt: skip
EVENTS = ("World Cup", "Olympic Games", "Nobel Prize", "Champions League", "Eurovision")
TITLES = ("Mr.", "Ms.", "Dr.", "Professor", "President", "Judge")
ORG_HEADS = ("Industries", "Group", "Systems", "Labs", "Motors", "Airlines", "Foods", "Energy")
CLUB_HEADS = ("United", "Rovers", "City", "Athletic")
SYLLABLES = (
    "ka", "lo", "mer", "dan", "vi", "ro", "sel", "tor", "bra", "ni", "gal", "ur", "fen", "dor",
    "mi", "lan", "ze", "ost", "qui", "bel", "tam", "sar", "ev", "hol",
)  # fmt: skip
COINED_ENDINGS = {
    "first": ("a", "o", "ine", "el", "ia", "an"),
    "last": ("son", "sen", "ski", "ova", "ez", "ani", "berg", "mann"),
    "city": ("ton", "burg", "ville", "ford", "stad", "mouth", "field", "haven"),
    "country": ("land", "ia", "stan"),
    "org": ("ex", "ix", "ora", "tech"),
}

# Words that are nouns here and verbs there: the same token in NOUN and VERB slots.
NOUN_OR_VERB = ("book", "plan", "visit", "report", "call", "watch")
NOUNS = ("room", "table", "ticket", "contract", "budget", "flight", "deal", "museum", "bridge")
PLURAL_NOUNS = ("offices", "stations", "stores", "tickets", "flights", "rooms", "books", "plans")
ROLES = ("director", "head", "founder", "spokesperson", "chair", "manager", "lawyer")
ADJECTIVES = (
    "new", "long", "short", "clever", "expensive", "late", "early", "popular", "difficult",
    "good", "strange", "useful",
)  # fmt: skip
PAST_VERBS = ("signed", "approved", "wrote", "reviewed", "cancelled", "booked", "planned")
PARTICIPLES = ("published", "approved", "rejected", "cancelled", "reported", "reviewed")
BASE_VERBS = ("open", "build", "close", "sell", "buy", "book", "plan")
MEETING_VERBS = ("meet", "visit", "call", "interview", "thank")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "March", "May", "June", "July", "October", "December")
NUMBER_WORDS = ("two", "three", "five", "ten", "twelve", "forty")
PRONOUNS = ("I", "we", "they", "she", "he")


def _tagged(text: str) -> list[Word]:
    """``"the/DET book/NOUN"`` as words outside any entity."""
    return [
        (token, upos, "O") for token, _, upos in (item.rpartition("/") for item in text.split())
    ]


def _entity(name: str, kind: str, upos: str = "PROPN") -> list[Word]:
    """The tokens of ``name`` as one entity of ``kind``; ``of`` and ``de`` inside are ADP."""
    tokens = name.split()
    return [
        (token, "ADP" if token in ("of", "de") else upos, f"{'I' if index else 'B'}-{kind}")
        for index, token in enumerate(tokens)
    ]


class _Grammar:
    """Draws sentences for one split: ``names`` are the pools it may use, ``held_out`` the
    pools only evaluation splits use (empty for training)."""

    def __init__(self, rng: random.Random, names: dict, held_out: dict):
        self.rng = rng
        self.names = names
        self.held_out = held_out

    def choice(self, options):
        return self.rng.choice(options)

    def name(self, pool: str) -> str:
        if pool in COINED_ENDINGS and self.rng.random() < COINED_RATE:
            syllables = [self.choice(SYLLABLES) for _ in range(self.rng.randint(1, 2))]
            return ("".join(syllables) + self.choice(COINED_ENDINGS[pool])).capitalize()
        if self.held_out and self.rng.random() < HELD_OUT_RATE:
            return self.choice(self.held_out[pool])
        return self.choice(self.names[pool])

    # --- Entities ---

    def person(self) -> list[Word]:
        shape = self.rng.random()
        if shape < 0.35:
            return _entity(f"{self.name('first')} {self.name('last')}", "PER")
        if shape < 0.5:
            return _entity(self.name("first"), "PER")
        if shape < 0.7:  # the title is not part of the name (CoNLL-2003 convention)
            return [(self.choice(TITLES), "PROPN", "O"), *_entity(self.name("last"), "PER")]
        if shape < 0.8:
            return _entity(self.name("last"), "PER")
        if shape < 0.95:
            return _entity(f"{self.choice(AMBIGUOUS_NAMES)} {self.name('last')}", "PER")
        return _entity(f"May {self.name('last')}", "PER")  # May: also a month and a verb

    def place(self) -> list[Word]:
        shape = self.rng.random()
        if shape < 0.4:
            return _entity(self.name("city"), "LOC")
        if shape < 0.55:
            return _entity(self.name("multi_city"), "LOC")
        if shape < 0.85:
            return _entity(self.name("country"), "LOC")
        return _entity(self.choice(AMBIGUOUS_NAMES), "LOC")

    def organisation(self) -> list[Word]:
        shape = self.rng.random()
        if shape < 0.3:
            return _entity(self.name("org"), "ORG")
        if shape < 0.55:  # a surname or a city inside an organisation's name
            return _entity(f"{self.name('last')} {self.choice(ORG_HEADS)}", "ORG")
        if shape < 0.7:
            return _entity(f"Bank of {self.name('city')}", "ORG")
        if shape < 0.85:
            return _entity(f"University of {self.name('city')}", "ORG")
        return _entity(f"{self.name('city')} City Council", "ORG")

    def club(self) -> list[Word]:
        if self.rng.random() < 0.2:
            return _entity("Chelsea", "ORG")
        return _entity(f"{self.name('city')} {self.choice(CLUB_HEADS)}", "ORG")

    def misc(self) -> list[Word]:
        if self.rng.random() < 0.7:
            return _entity(self.choice(NATIONALITIES), "MISC", upos="ADJ")
        return _entity(self.choice(EVENTS), "MISC")

    # --- Other phrases ---

    def number(self) -> list[Word]:
        shape = self.rng.random()
        if shape < 0.5:
            return [(str(self.rng.randint(2, 999)), "NUM", "O")]
        if shape < 0.7:
            return [(f"{self.rng.randint(1, 99)},{self.rng.randint(0, 999):03d}", "NUM", "O")]
        return [(self.choice(NUMBER_WORDS), "NUM", "O")]

    def date(self) -> list[Word]:
        shape = self.rng.random()
        if shape < 0.25:
            return _tagged(f"on/ADP {self.choice(WEEKDAYS)}/PROPN")
        if shape < 0.45:
            return _tagged(f"in/ADP {self.choice(MONTHS)}/PROPN")
        if shape < 0.6:
            return _tagged(f"in/ADP {self.rng.randint(1990, 2030)}/NUM")
        if shape < 0.8:
            day, month, year = (
                self.rng.randint(1, 28),
                self.choice(MONTHS),
                self.rng.randint(1990, 2030),
            )
            return _tagged(f"on/ADP {day}/NUM {month}/PROPN {year}/NUM")
        return _tagged(self.choice(("last/ADJ week/NOUN", "next/ADJ year/NOUN", "yesterday/NOUN")))

    def maybe(self, phrase, probability: float = 0.5) -> list[Word]:
        return phrase() if self.rng.random() < probability else []

    def noun_phrase(self) -> list[Word]:
        determiner = self.choice(("the/DET", "a/DET", "that/DET", "this/DET"))
        noun = self.choice(NOUNS + NOUN_OR_VERB)
        return _tagged(f"{determiner} {noun}/NOUN")

    def clause(self) -> list[Word]:
        """A clause that can follow ``said that``."""
        shape = self.rng.random()
        if shape < 0.35:
            return [
                *self.organisation(),
                *_tagged(f"will/AUX {self.choice(BASE_VERBS)}/VERB"),
                *self.number(),
                *_tagged(f"{self.choice(PLURAL_NOUNS)}/NOUN in/ADP"),
                *self.place(),
            ]
        if shape < 0.7:
            noun, adjective = self.choice(NOUN_OR_VERB), self.choice(ADJECTIVES)
            return _tagged(f"the/DET {noun}/NOUN was/AUX {adjective}/ADJ")
        pronoun = self.choice(PRONOUNS)
        return [*_tagged(f"{pronoun}/PRON would/AUX visit/VERB"), *self.place(), *self.date()]

    # --- Sentences ---

    def sentence(self) -> list[Word]:
        words = self.choice(TEMPLATES)(self)
        token, upos, tag = words[0]
        return [(token[0].upper() + token[1:], upos, tag), *words[1:]]


def _did_something(g: _Grammar) -> list[Word]:
    return [
        *g.person(),
        *_tagged(f"{g.choice(PAST_VERBS)}/VERB"),
        *g.noun_phrase(),
        *g.maybe(lambda: [*_tagged("in/ADP"), *g.place()]),
        *g.maybe(g.date),
        *_tagged("./PUNCT"),
    ]


def _spokesperson(g: _Grammar) -> list[Word]:
    return [
        *g.person(),
        *_tagged(f",/PUNCT the/DET {g.choice(ROLES)}/NOUN of/ADP"),
        *g.organisation(),
        *_tagged(",/PUNCT said/VERB that/SCONJ"),
        *g.clause(),
        *_tagged("./PUNCT"),
    ]


def _organisation_plans(g: _Grammar) -> list[Word]:
    intent = g.choice(("will/AUX", "may/AUX", "plans/VERB to/PART", "hopes/VERB to/PART"))
    return [
        *g.organisation(),
        *_tagged(f"{intent} {g.choice(BASE_VERBS)}/VERB"),
        *g.number(),
        *_tagged(f"{g.choice(PLURAL_NOUNS)}/NOUN in/ADP"),
        *g.place(),
        *g.maybe(g.date),
        *_tagged("./PUNCT"),
    ]


def _crowd(g: _Grammar) -> list[Word]:
    watched = g.misc() + _tagged("team/NOUN") if g.rng.random() < 0.5 else g.misc()
    return [
        *_tagged("in/ADP"),
        *g.place(),
        *_tagged(",/PUNCT"),
        *g.number(),
        *_tagged(f"people/NOUN {g.choice(('watched', 'supported', 'cheered'))}/VERB the/DET"),
        *watched,
        *g.maybe(g.date),
        *_tagged("./PUNCT"),
    ]


def _journey(g: _Grammar) -> list[Word]:
    return [
        *g.person(),
        *_tagged("flew/VERB to/ADP"),
        *g.place(),
        *g.maybe(g.date),
        *_tagged(f"to/PART {g.choice(MEETING_VERBS)}/VERB"),
        *g.person(),
        *_tagged("./PUNCT"),
    ]


def _about(g: _Grammar) -> list[Word]:
    topic = g.place() if g.rng.random() < 0.6 else g.organisation()
    preposition = g.choice(("about", "on", "from"))
    noun, adjective = g.choice(NOUN_OR_VERB), g.choice(ADJECTIVES)
    return [
        *_tagged(f"the/DET {noun}/NOUN {preposition}/ADP"),
        *topic,
        *_tagged(f"was/AUX {adjective}/ADJ ./PUNCT"),
    ]


def _meeting(g: _Grammar) -> list[Word]:
    return [
        *g.person(),
        *_tagged("and/CCONJ"),
        *g.person(),
        *_tagged("met/VERB in/ADP"),
        *g.place(),
        *g.maybe(g.date),
        *_tagged("./PUNCT"),
    ]


def _match(g: _Grammar) -> list[Word]:
    return [
        *_tagged("did/AUX you/PRON see/VERB the/DET match/NOUN between/ADP"),
        *g.club(),
        *_tagged("and/CCONJ"),
        *g.club(),
        *_tagged("?/PUNCT"),
    ]


def _would_like(g: _Grammar) -> list[Word]:
    verb = g.choice(("book", "plan", "visit", "watch"))
    return [
        *_tagged(f"{g.choice(PRONOUNS)}/PRON would/AUX like/VERB to/PART {verb}/VERB"),
        *g.noun_phrase(),
        *_tagged("in/ADP"),
        *g.place(),
        *_tagged("./PUNCT"),
    ]


def _looks_like(g: _Grammar) -> list[Word]:
    adjective, noun = g.choice(ADJECTIVES), g.choice(NOUN_OR_VERB)
    return [
        *_tagged(f"it/PRON looks/VERB like/ADP a/DET {adjective}/ADJ {noun}/NOUN for/ADP"),
        *g.organisation(),
        *_tagged("./PUNCT"),
    ]


def _published(g: _Grammar) -> list[Word]:
    return [
        *g.person(),
        *_tagged(f"'s/PART {g.choice(NOUN_OR_VERB)}/NOUN on/ADP"),
        *g.place(),
        *_tagged(f"was/AUX {g.choice(PARTICIPLES)}/VERB by/ADP"),
        *g.organisation(),
        *_tagged("./PUNCT"),
    ]


def _that(g: _Grammar) -> list[Word]:
    if g.rng.random() < 0.5:
        noun, adjective = g.choice(NOUN_OR_VERB), g.choice(ADJECTIVES)
        return [
            *_tagged(f"that/DET {noun}/NOUN was/AUX {adjective}/ADJ ,/PUNCT"),
            *g.person(),
            *_tagged("said/VERB ./PUNCT"),
        ]
    return [*g.person(), *_tagged("did/AUX not/PART know/VERB that/PRON ./PUNCT")]


def _may(g: _Grammar) -> list[Word]:
    verb = g.choice(NOUN_OR_VERB)
    return [
        *g.person(),
        *_tagged(f"may/AUX {verb}/VERB"),
        *g.noun_phrase(),
        *_tagged("in/ADP May/PROPN ./PUNCT"),
    ]


def _like_place(g: _Grammar) -> list[Word]:
    return [
        *_tagged(f"{g.choice(PRONOUNS)}/PRON like/VERB"),
        *g.place(),
        *_tagged("very/ADV much/ADV ./PUNCT"),
    ]


def _will_call(g: _Grammar) -> list[Word]:
    other = g.person() if g.rng.random() < 0.6 else g.organisation()
    return [
        *g.person(),
        *_tagged(f"will/AUX {g.choice(MEETING_VERBS)}/VERB"),
        *other,
        *_tagged(f"{g.choice(('tomorrow/NOUN', 'next/ADJ week/NOUN', 'today/NOUN'))} ./PUNCT"),
    ]


TEMPLATES = (
    _did_something, _spokesperson, _organisation_plans, _crowd, _journey, _about, _meeting,
    _match, _would_like, _looks_like, _published, _that, _may, _like_place, _will_call,
)  # fmt: skip


def _split_name_pools(seed: int) -> tuple[dict, dict]:
    """Each name pool cut in two, seeded: the part training sees, and the held-out part."""
    rng = random.Random(f"seqapps-tagging-{seed}-names")
    seen, held_out = {}, {}
    for pool, names in NAME_POOLS.items():
        names = list(names)
        rng.shuffle(names)
        cut = round(HELD_OUT_FRACTION * len(names))
        held_out[pool], seen[pool] = tuple(names[:cut]), tuple(names[cut:])
    return seen, held_out


def builtin_tagging_data(seed: int = 0, column: str | None = None) -> TaggingData:
    """Train 3,000 / validation 400 / test 600 synthetic sentences for ``seed``.

    Args:
        seed: the sentences, and which names training never sees, depend on it only.
        column: ``None`` or ``"entities"`` for entity tags (IOB2), ``"upos"`` for the
            part-of-speech tags of the same sentences.
    """
    if column not in (None, *BUILTIN_COLUMNS):
        raise SeqappsError(
            f"--column {column!r}: the built-in data has {' and '.join(BUILTIN_COLUMNS)} tags"
        )
    column = column or "entities"
    tag_index = 1 if column == "upos" else 2
    seen, held_out = _split_name_pools(seed)
    splits = {}
    for split, size in SPLIT_SIZES.items():
        rng = random.Random(f"seqapps-tagging-{seed}-{split}")
        grammar = _Grammar(rng, seen, {} if split == "train" else held_out)
        sentences = ExampleList()
        for _ in range(size):
            words = grammar.sentence()
            tokens = [word[0] for word in words]
            tags = [word[tag_index] for word in words]
            sentences.append(TaggedSentence(tokens, tags, f"builtin:{split}", [0] * len(words)))
        splits[split] = sentences
    tags = "entity tags (IOB2: PER, LOC, ORG, MISC)" if column == "entities" else "UPOS tags"
    description = (
        f"built-in synthetic sentences (seed {seed}; a smoke-test dataset, not a benchmark), {tags}"
    )
    return TaggingData(splits, description, column, "bio" if column == "entities" else "tags")
