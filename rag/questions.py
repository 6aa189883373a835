"""Reading a question: the kind of answer it expects, and the sides it asks about.

Classic extractive-QA cues, from the wording alone: a "how many" question wants a
number, "when" a date, "who" a name it does not already state, a yes/no question the
sentence that confirms or denies; "Kyiv's and Moscow's conditions" asks the same of two
sides and is split into two sub-questions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Question → the kind of answer it expects.
_NUMBER_Q = re.compile(
    r"\bhow (many|much|long|far|wide|big|large|high|old)\b"
    r"|\b(range|figures?|amount|number|percent(age)?|cost|price|size)\b",
    re.IGNORECASE,
)
_DATE_Q = re.compile(r"^when\b|\b(what|which) (date|day|year|month|season|time)\b", re.IGNORECASE)
_NAME_Q = re.compile(
    r"^(who|whom|whose|where)\b"
    r"|\b(which|what) (city|cities|country|countries|capitals?|town|region|person|official)\b",
    re.IGNORECASE,
)
_POLAR_Q = re.compile(
    r"^(is|are|was|were|do|does|did|has|have|had|can|could|will|would|should)\b", re.IGNORECASE
)
# "..., as the Financial Times reported?": a claim whose standing is asked about.
_REPORTED_Q = re.compile(
    r"\b(as|like) (\w+ ){0,4}(reported|claimed|suggested|alleged|said)\b", re.IGNORECASE
)
# A question about money wants an amount, not any number.
_MONEY_Q = re.compile(r"\b(dollars?|money|funding|budget|spending|euros?|pounds)\b", re.IGNORECASE)
_SURVEY_Q = re.compile(r"\b(across|coverage|(the|all|other) articles)\b", re.IGNORECASE)
_GIST_Q = re.compile(
    r"\b(conditions?|demands?|terms|position|stance|views?|goals?|aims?|requirements?)\b",
    re.IGNORECASE,
)
_AGGREGATE_Q = re.compile(
    r"\b(compare[sd]?|comparison|each|both|across|over time|coverage|versus|differ\w*)\b",
    re.IGNORECASE,
)
# Coordinations that read distributively ("Kyiv's and Moscow's conditions", "from the
# UK and from the US", "Ukraine and Russia each"): each side is a sub-question.
_NAME = r"[A-Z][\w-]*"
_DISTRIBUTIVE = (
    re.compile(rf"\b(?P<left>{_NAME}['’]s) and (?P<right>{_NAME}['’]s)"),
    re.compile(
        r"\b(?P<left>(?P<prep>from|to|by|for|with|in) (the )?[\w-]+)"
        r" and (?P<right>(?P=prep) (the )?[\w-]+)"
    ),
    re.compile(rf"\b(?P<left>{_NAME}) and (?P<right>{_NAME}) each\b"),
)
# Sentence → what it holds.
NUMBER = re.compile(r"\d|\bpercent\b", re.IGNORECASE)
DATE = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november"
    r"|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|monday|tuesday"
    r"|wednesday|thursday|friday|saturday|sunday|spring|summer|fall|autumn|winter"
    r"|(19|20)\d\d)\b",
    re.IGNORECASE,
)
_DOLLARS = re.compile(r"\$\s?\d|\bdollars?\b", re.IGNORECASE)
_MONEY = re.compile(r"[$€£]\s?\d|\b(million|billion|trillion)\b", re.IGNORECASE)
# Words that confirm, deny or dispute a claim: the answer to a yes/no question.
_STANCE = re.compile(
    r"\b(not?|never|neither|nor|den(y|ies|ied)|reject(s|ed)?|fake|false|bogus|misleading"
    r"|hoax|dispute[sd]?|doubts?|however|but|yet|wary|unacceptable|impossible"
    r"|confirm(s|ed)?|agreed?)\b|n[’']t\b",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(r"(?<![.!?“\"‘]\s)(?<!^)\b[A-Z][a-z]{2,}")


@dataclass(frozen=True)
class QuestionCues:
    """What kind of answer a question expects, read from its wording."""

    text: str
    number: bool
    date: bool
    name: bool
    polar: bool
    aggregate: bool
    gist: bool
    disputed: bool = False  # the question asks whether a claim holds
    money: bool = False
    survey: bool = False  # asks what several articles say

    @classmethod
    def read(cls, question: str) -> QuestionCues:
        q = question.strip()
        return cls(
            text=q,
            number=bool(_NUMBER_Q.search(q)),
            date=bool(_DATE_Q.search(q)),
            name=bool(_NAME_Q.search(q)),
            polar=bool(_POLAR_Q.search(q)),
            aggregate=bool(_AGGREGATE_Q.search(q)),
            gist=bool(_GIST_Q.search(q)),
            disputed=bool(_POLAR_Q.search(q) or _REPORTED_Q.search(q)),
            money=bool(_MONEY_Q.search(q)),
            survey=bool(_SURVEY_Q.search(q)),
        )

    def amount(self) -> re.Pattern[str]:
        """What an amount in the asked-about currency looks like."""
        return _DOLLARS if re.search(r"\bdollars?\b", self.text, re.IGNORECASE) else _MONEY

    def matches(self, sentence: str) -> bool:
        """Whether the sentence holds the kind of thing the question asks for."""
        if self.money:
            return bool(self.amount().search(sentence))  # an amount, not any number
        if self.number and NUMBER.search(sentence):
            return True
        if self.date and DATE.search(sentence):
            return True
        if self.polar and _STANCE.search(sentence):
            return True
        if self.name:
            asked = self.text.lower()
            return any(m.group().lower() not in asked for m in _CAPITALISED.finditer(sentence))
        return False


# "How many X did A mention compared with B?": the same asked of A and of B.
_COMPARED = re.compile(
    r"[\s,]+(?:compared (?:with|to)|as opposed to|versus|vs\.?)\s+(?P<right>[^?]+)",
    re.IGNORECASE,
)
# The asking words of a question, up to its auxiliary ("How many soldiers did").
_ASKING = re.compile(r"^.*?\b(?:did|do|does|is|are|was|were|has|have|had)\b", re.IGNORECASE)


def split_question(question: str) -> list[str]:
    """The sub-questions of a question that asks the same of two sides, else none."""
    match = _COMPARED.search(question)
    if match is not None and (asking := _ASKING.match(question[: match.start()])):
        return [f"{question[: match.start()]}?", f"{asking.group()} {match.group('right')}?"]
    for pattern in _DISTRIBUTIVE:
        match = pattern.search(question)
        if match is None:
            continue
        head, tail = question[: match.start()], question[match.end() :]
        return [f"{head}{match.group(side)}{tail}" for side in ("left", "right")]
    return []
