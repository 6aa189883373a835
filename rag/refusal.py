"""When to say "the articles don't say": the confidence of the chosen evidence.

Similarity alone barely separates an off-topic question from an on-topic one with a small
embedding model, so the confidence also counts the question's words the articles contain,
and drops below any threshold when the question names something no article mentions or
asks for a detail (a count, a measure, other names) the evidence does not give.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.questions import DATE, NUMBER
from rag.retrieve import Corpus

# Confidence: weight of the share of question terms found in the articles, and the
# penalty that turns a missing name or count into a refusal whatever the similarity.
COVERAGE_WEIGHT = 0.2
MISSING_PENALTY = 0.5


@dataclass(frozen=True)
class Evidence:
    rows: list[int]  # chosen sentence rows, in answer order
    best_dense: float
    term_coverage: float  # share of the question's terms found in the corpus
    unknown_names: tuple[str, ...] = ()  # names in the question no article mentions
    answer_unmet: bool = False  # a count, measure or name asked for, not in the evidence

    def confidence(self) -> float:
        """One number compared with ``refusal_threshold`` (0.9 by default).

        Similarity alone barely separates an off-topic question (~0.77-0.83 with the
        e5 model) from an on-topic one (~0.80-0.94); the share of the question's
        terms that the articles contain separates them better. A name the articles
        never mention, or a count, measure or other name they never give near the
        asked-about noun, is a refusal on its own.
        """
        value = self.best_dense + COVERAGE_WEIGHT * self.term_coverage
        if self.unknown_names or self.answer_unmet:
            value -= MISSING_PENALTY
        return value


def refusal_text() -> str:
    return (
        "The articles don't say. None of the indexed articles contains a passage that "
        "answers this question."
    )


# A capitalised word after the first one is a name ("China", "Erdogan"); the opening
# word of a question is capitalised whatever it is.
_NAME_IN_QUESTION = re.compile(r"(?<!^)\b[A-Z][\w-]+")
# "How many civilians died": the counted things, up to the verb or preposition.
_COUNTED = re.compile(
    r"\bhow many ((?:[\w-]+ ){0,3}?[\w-]+?)\s+"
    r"(?=(?:did|do|does|has|have|had|is|are|was|were|will|in|of|on|at|to|took|died)\b)",
    re.IGNORECASE,
)
# A count ("10,000"), not a model name ("S-300") nor an amount ("$200").
_COUNT = re.compile(r"^\d[\d,.]*$")
# "What is the range of...": a measured quantity, answered by a number near the noun
# (only nouns that news copy states with their number: "a range of 2,400 km").
_MEASURED = re.compile(
    r"\bwhat (?:is|was|are|were) the (range|length|height|weight|speed|population)\b",
    re.IGNORECASE,
)
# "Which villages besides Sudzha...": other named things than the question's own.
_WHICH_OTHER = re.compile(
    r"\bwhich ((?:[\w-]+ ){0,3}?[\w-]+?)\s+(?:besides|other than|apart from|aside from|except)\b",
    re.IGNORECASE,
)
# "Who won the elections...": the doer of a deed, named near the deed's object noun.
_WHO_DID = re.compile(
    r"^who (?!(?:is|was|are|were|do|does|did|has|have|had)\b)[\w-]+ the "
    r"((?:[\w-]+ ){0,3}?[\w-]+?)(?=\s+(?:mentioned|in|on|at|for|to|from|with|by|that)\b|\W*$)",
    re.IGNORECASE,
)
# A capitalised word that names a time, not a thing ("August", "Tuesday").
_TIME_NAME = re.compile(rf"^{DATE.pattern}", re.IGNORECASE)
# The answer is looked for in this many of the best sentences.
COUNT_EVIDENCE = 5
# The number and a counted word may be this many words apart ("10,000 North Korean troops").
COUNT_WINDOW = 3
# A measure or a name may be this many words from the asked-about noun
# ("a range of up to 2,400 km", "the border city of Sudzha").
FOCUS_WINDOW = 4
# The doer of a deed is named in the same clause as its object ("Joe Biden opted to
# cancel his trip").
DOER_WINDOW = 8
# A name and its people share their first letters ("Korea", "Korean"; "Ukraine").
DEMONYM_PREFIX = 5


def unknown_names(corpus: Corpus, question: str) -> list[str]:
    """Names in the question that no indexed sentence contains: the articles can't say."""
    lexical = corpus.sentence_lexical
    names = [m.group() for m in _NAME_IN_QUESTION.finditer(question)]
    return [n for n in names if (t := lexical.terms(n)) and not lexical.known_terms(t)]


def answer_unmet(corpus: Corpus, question: str, top: list[int], quoted: list[int]) -> bool:
    """A question asking for a count, a measure or named things the evidence lacks.

    The articles often mention the topic but not the asked detail ("the range of the
    Oreshnik missile", "who won the elections"): the detail must stand near the
    asked-about noun, and must not be something the question already states. A count
    is looked for in the ``top`` sentences; a measure or a name, which the answer must
    show, in the ``quoted`` ones.
    """
    if match := _COUNTED.search(question):
        return not _found(corpus, question, top, _head(match), _is_count_of, COUNT_WINDOW)
    if match := _MEASURED.search(question):
        return not _found(corpus, question, quoted, match.group(1), _is_number, FOCUS_WINDOW)
    match = _WHO_DID.search(question) or _WHICH_OTHER.search(question)
    if match is None:
        return False
    # Names are judged only where the quotes speak of the asked-about noun: they may
    # name "four European capitals" elsewhere than where they count them.
    window = DOER_WINDOW if match.re is _WHO_DID else FOCUS_WINDOW
    noun = _head(match)
    return _mentions(corpus, quoted, noun) and not _found(
        corpus, question, quoted, noun, _is_new_name, window
    )


def _head(match: re.Match[str]) -> str:
    return match.group(1).split()[-1].lower()


def _mentions(corpus: Corpus, rows: list[int], noun: str) -> bool:
    focus = set(corpus.sentence_lexical.terms(noun))
    return any(focus & set(corpus.sentence_lexical.terms(corpus.sentences.texts[r])) for r in rows)


def _found(
    corpus: Corpus,
    question: str,
    rows: list[int],
    noun: str,
    is_answer: Callable[[list[str], int, int, str], bool],
    window: int,
) -> bool:
    """Whether a word near ``noun`` in one of ``rows`` answers the question."""
    lexical = corpus.sentence_lexical
    focus = set(lexical.terms(noun))
    asked = question.lower()
    for row in rows:
        words = corpus.sentences.texts[row].split()
        for i, word in enumerate(words):
            # Stemming is the slow part: only words that start like the noun are stemmed.
            if noun[:3] not in word.lower()[:4] or not focus & set(lexical.terms(word)):
                continue
            lo, hi = max(0, i - window), min(len(words), i + window + 1)
            if any(is_answer(words, j, i, asked) for j in range(lo, hi) if j != i):
                return True
    return False


def _is_number(words: list[str], j: int, focus: int, asked: str) -> bool:
    word = words[j].strip(",.;:()")
    return bool(NUMBER.search(word)) and word.lower() not in asked


def _is_count_of(words: list[str], j: int, focus: int, asked: str) -> bool:
    """A count before the counted noun, not qualified by a name the question lacks.

    "100,000 North Korean soldiers" does not count the Ukrainian soldiers asked about.
    """
    if j > focus or not _COUNT.match(words[j]):
        return False
    between = words[j + 1 : focus]
    return not any(w[:1].isupper() and not _in_question(w, asked) for w in between)


def _is_new_name(words: list[str], j: int, focus: int, asked: str) -> bool:
    """A capitalised word (not a month or weekday) that the question does not state."""
    word = words[j].strip(",.;:()“”\"'‘’")
    if j == 0 or not word[:1].isupper() or _TIME_NAME.match(word):
        return False
    return not _in_question(re.sub(r"['’]s$", "", word), asked)


def _in_question(word: str, asked: str) -> bool:
    """Whether the question states the word, or its country or people ("Korean")."""
    word = word.strip(",.;:()“”\"'‘’").lower()
    stem = word[:DEMONYM_PREFIX]
    words = re.findall(r"[\w-]+", asked)
    return any(w == word or (len(word) > DEMONYM_PREFIX and w.startswith(stem)) for w in words)
