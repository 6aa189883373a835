"""Reading a question: its search terms, and the kind of answer it asks for.

The first stage of the one path (read → retrieve → score → compose). Nothing here knows
about the index: it looks at the question's own words. The answer types are the classic
ones of extractive QA, read from the question word ("how many" wants a number, "when" a
date, "who" a name the question does not already state, "why" a reason); whether a
sentence holds one is a feature of ``rag.features``, weighed by the fitted scorer.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from enum import StrEnum


class AnswerType(StrEnum):
    NONE = "none"
    NUMBER = "number"
    DATE = "date"
    NAME = "name"
    PLACE = "place"
    REASON = "reason"


# The question word, or a question word and the noun after it, and what they ask for.
_OPENERS: dict[tuple[str, ...], AnswerType] = {
    ("how", "many"): AnswerType.NUMBER,
    ("how", "much"): AnswerType.NUMBER,
    ("how", "long"): AnswerType.NUMBER,
    ("how", "old"): AnswerType.NUMBER,
    ("how", "far"): AnswerType.NUMBER,
    ("how", "big"): AnswerType.NUMBER,
    ("how", "large"): AnswerType.NUMBER,
    ("when",): AnswerType.DATE,
    ("who",): AnswerType.NAME,
    ("whom",): AnswerType.NAME,
    ("whose",): AnswerType.NAME,
    ("where",): AnswerType.PLACE,
    ("why",): AnswerType.REASON,
}
# "What year…", "which company…": the noun after the question word says the type.
_NOUNS: dict[str, AnswerType] = {
    **dict.fromkeys(
        ("number", "amount", "figure", "percentage", "price", "cost", "sum", "total", "rate"),
        AnswerType.NUMBER,
    ),
    **dict.fromkeys(("year", "date", "day", "month", "time"), AnswerType.DATE),
    **dict.fromkeys(
        ("company", "firm", "person", "man", "woman", "team", "club", "player", "group"),
        AnswerType.NAME,
    ),
    **dict.fromkeys(("country", "city", "town", "region", "place"), AnswerType.PLACE),
}
MONTHS = frozenset(m.lower() for m in (*calendar.month_name[1:], *calendar.month_abbr[1:]))
WEEKDAYS = frozenset(d.lower() for d in calendar.day_name)
_WHEN_WORDS = MONTHS | WEEKDAYS
# A quarter, a half or a financial year ("Q3", "H1", "FY2024"): when, not who, and a
# report says "the third quarter" or "the three months to September" instead.
_PERIOD = re.compile(r"(?:q[1-4]|h[12]|fy\d{2}(?:\d{2})?)", re.IGNORECASE)
POLAR_OPENERS = frozenset(
    [
        "is",
        "are",
        "was",
        "were",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "can",
        "could",
        "will",
        "would",
        "should",
    ]
)
_PUNCTUATION = ".,;:!?()[]{}\"'“”‘’"
# A search typed as a few keywords ("Storm Shadow", "Tomahawk leak") rather than asked:
# no question mark, at most this many words, and no question word or request first.
KEYWORD_SEARCH_WORDS = 6
_ASKING = POLAR_OPENERS | frozenset(
    ["what", "which", "who", "whom", "whose", "when", "where", "why", "how"]
    + ["tell", "explain", "describe", "list", "give", "show", "compare", "name"]
    + ["summarise", "summarize"]
)


def words(text: str) -> list[str]:
    """The text's words, without surrounding punctuation (possessive 's dropped)."""
    out = []
    for raw in text.split():
        word = raw.strip(_PUNCTUATION)
        for suffix in ("'s", "’s"):
            word = word.removesuffix(suffix)
        if word:
            out.append(word)
    return out


@dataclass(frozen=True)
class Question:
    text: str  # as asked, or as read: "What is Marta Kos's role?" is "Who is Marta Kos?"
    answer_type: AnswerType
    polar: bool  # a yes/no question
    names: frozenset[str]  # lowercase capitalised words of the question (not its first)
    words: frozenset[str]  # lowercase words of the question
    # Answered as a search for its words: a keyword search ("Tomahawk leak"), or a question
    # asking only who or what a name is ("Who is Marta Kos?").
    keywords: bool = False

    @classmethod
    def read(cls, text: str) -> Question:
        named = _whose_role(text)
        if named is not None:
            text = f"Who is {named}?"
        ws = words(text)
        lower = [w.lower() for w in ws]
        return cls(
            text=text,
            answer_type=_answer_type(lower),
            polar=bool(lower) and lower[0] in POLAR_OPENERS,
            names=frozenset(w.lower() for w in ws[1:] if _may_be_name(w)),
            words=frozenset(lower),
            keywords=_is_search(text, lower) or _asks_what_a_name_is(ws, lower),
        )


def _may_be_name(word: str) -> bool:
    """A capitalised word, not a month, a weekday or a period: those are when, not who, and
    an archive dates its articles without always naming the month in the text."""
    return word[:1].isupper() and word.lower() not in _WHEN_WORDS and not _PERIOD.fullmatch(word)


def _is_search(text: str, lower: list[str]) -> bool:
    return (
        bool(lower)
        and len(lower) <= KEYWORD_SEARCH_WORDS
        and not text.rstrip().endswith("?")
        and lower[0] not in _ASKING
    )


def _asks_what_a_name_is(ws: list[str], lower: list[str]) -> bool:
    """Whether the question's only words after "who/what is" are a name, as in "Who is
    Marta Kos?" or "What is the Oreshnik?". A sentence naming it is the archive's answer
    ("…Marta Kos, the EU Commissioner for Enlargement…"); "What is the range of the
    Oreshnik?" asks more than the name."""
    if len(ws) < 3 or lower[0] not in ("who", "what") or lower[1] not in _TO_BE:
        return False
    name = ws[3:] if lower[2] in ("the", "a", "an") else ws[2:]
    return _is_name(name, _NAMES_LINKS)


# "What is Marta Kos's role?", "What job does Ken Bates hold?", "What does Ken Bates do?":
# asked about a named person with nothing more, these ask who the person is, and are read
# as "Who is Marta Kos?". No sentence holds the word "role"; one naming her says it
# ("…Marta Kos, the EU Commissioner for Enlargement…").
_ROLE = r"(?:role|job|title|position|post)"
_WHOSE_ROLE = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        rf"what(?:['’]s|\s+is|\s+was)\s+(?P<name>.+?)['’]s?\s+{_ROLE}",
        rf"what\s+{_ROLE}\s+(?:does|did)\s+(?P<name>.+?)\s+(?:have|hold|play)",
        # not "What did Putin do?", which asks what he did
        r"what\s+does\s+(?P<name>.+?)\s+do(?:\s+for\s+a\s+living)?",
    )
]


def _whose_role(text: str) -> str | None:
    """The name in a question asking only what a named person's role is, else None."""
    asked = text.strip().rstrip("?").strip()
    for pattern in _WHOSE_ROLE:
        found = pattern.fullmatch(asked)
        if found is not None and _is_name(name := found.group("name").split(), NAME_LINKS):
            return " ".join(name)
    return None


def _is_name(ws: list[str], links: frozenset[str]) -> bool:
    """Whether ``ws`` are capitalised words, with ``links`` between them."""
    return (
        0 < len(ws) <= KEYWORD_SEARCH_WORDS
        and ws[0][:1].isupper()
        and ws[-1][:1].isupper()
        and all(w[:1].isupper() or w in links for w in ws)
    )


_TO_BE = frozenset(["is", "are", "was", "were"])
# Lower-case words a name may hold between its capitalised ones: "the Bank of England",
# "Ursula von der Leyen". A question asking what names are may join them: "Kalas and Costa".
NAME_LINKS = frozenset(["of", "the", "for", "de", "du", "da", "di", "von", "van", "der"])
_NAMES_LINKS = NAME_LINKS | {"and"}


def _answer_type(lower: list[str]) -> AnswerType:
    for opener, kind in _OPENERS.items():
        if tuple(lower[: len(opener)]) == opener:
            return kind
    for i, word in enumerate(lower[:-1]):
        if word in ("what", "which") and lower[i + 1] in _NOUNS:
            return _NOUNS[lower[i + 1]]
    return AnswerType.NONE


def holds_answer_type(sentence: str, question: Question) -> bool:
    """Whether the sentence holds something of the asked type the question lacks."""
    kind = question.answer_type
    if kind is AnswerType.NONE:
        return False
    if kind in (AnswerType.NAME, AnswerType.PLACE):
        # A capitalised word (not the sentence's first, not a month or a weekday) that the
        # question lacks. Only the tokens that may be one are read word by word.
        known = question.words | MONTHS | WEEKDAYS
        first = _FIRST_WORD.search(sentence)
        skip = first.start() if first else -1
        return any(
            w[:1].isupper() and w.lower() not in known
            for m in _MAY_BE_CAPITALISED.finditer(sentence)
            if m.start() != skip
            for w in words(m.group())
        )
    if kind is AnswerType.NUMBER and not _DIGIT.search(sentence):
        return False
    ws = words(sentence)
    if kind is AnswerType.REASON:
        return bool(_REASON_WORDS & {w.lower() for w in ws})
    new = [w for w in ws if w.lower() not in question.words]
    if kind is AnswerType.NUMBER:
        return any(any(c.isdigit() for c in w) for w in new)
    return any(  # a date: a month, a weekday or a year
        w.lower() in MONTHS or w.lower() in WEEKDAYS or (w.isdigit() and len(w) == 4) for w in new
    )


_REASON_WORDS = frozenset({"because", "after", "due", "since", "so", "as"})
# Cheap tests that let most sentences skip being read word by word.
_PUNCT_CLASS = re.escape(_PUNCTUATION)
_DIGIT = re.compile(r"\d")
# A token whose first letter (after opening punctuation) is not an ASCII lower-case one.
_MAY_BE_CAPITALISED = re.compile(rf"(?<!\S)[{_PUNCT_CLASS}]*(?=[^\W\d_])(?![a-z])\S*")
_FIRST_WORD = re.compile(rf"(?<!\S)\S*[^\s{_PUNCT_CLASS}]")


# "Kyiv's and Moscow's conditions": the same asked of two sides; "Who won, and by how
# much?": two questions in one. Each side is scored on its own so that the answer quotes
# both (on the fitting half, two-part questions with both key facts quoted: 1 → 5 of 8).
def sides(question: str) -> list[str]:
    """The two sub-questions of "A's and B's …", or of two questions joined as one ("Who
    won, and by how much?"), else none."""
    return _possessive_sides(question) or _joined_questions(question)


# ", and" then a question word, perhaps after a preposition: "…, and in how many …?"
_JOINED = re.compile(
    r",\s+and\s+(?P<second>(?:(?:in|for|from|to|by|at|with|of|on|since|until)\s+)?"
    r"(?:what|which|who|whom|whose|when|where|why|how)\b)",
    re.IGNORECASE,
)


def _joined_questions(question: str) -> list[str]:
    match = _JOINED.search(question)
    if match is None:
        return []
    first, second = question[: match.start()].strip(), question[match.start("second") :].strip()
    return [f"{first}?", second] if first else []


def _possessive_sides(question: str) -> list[str]:
    ws = question.split()
    for i in range(1, len(ws) - 1):
        left, word, right = ws[i - 1], ws[i], ws[i + 1]
        possessive = left.endswith(("'s", "’s")) and right.endswith(("'s", "’s"))
        if word == "and" and possessive and left[:1].isupper() and right[:1].isupper():
            head, tail = " ".join(ws[: i - 1]), " ".join(ws[i + 2 :])
            return [f"{head} {left} {tail}".strip(), f"{head} {right} {tail}".strip()]
    return []
