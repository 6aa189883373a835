"""The extractive answerer: verbatim sentences, grouped by article, each cited [n].

No language model: the answer is made only of sentences copied from the articles, so
every word of it can be checked at its citation's offsets. When no sentence is good
enough evidence, the answer is a refusal that cites nothing.

A sentence's score mixes its own embedding similarity, the similarity of the chunk
around it, its BM25 score, a lead bonus, and classic answer-type cues: a "how many"
question wants a sentence with a number, a "who" question a name it does not already
state, a yes/no question the sentence that confirms or denies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rag.models import Citation
from rag.retrieve import Corpus

# Weights of a sentence's score: its own embedding similarity, the similarity of the
# chunk around it (context the sentence alone lacks) and its BM25 score relative to the
# best sentence. Tuned on the eval set (eval/questions.jsonl).
CONTEXT_WEIGHT = 0.5
LEXICAL_WEIGHT = 0.10
# News articles put the gist first: the headline and the first sentences get a bonus
# that fades over LEAD_SENTENCES sentences.
LEAD_WEIGHT = 0.02
LEAD_SENTENCES = 4
# Bonus for a sentence holding what the question asks for (a number, a date, a new
# name, a denial). Small: it reorders sentences on the topic, it does not find one.
CUE_WEIGHT = 0.03
# Answer-type cues are checked on the best sentences only (cheap on large corpora).
SHORTLIST = 60
# Sentences within this score margin of the best one are quoted too.
QUOTE_MARGIN = 0.06
# A second article is quoted when its best sentence is this close to the best one...
ARTICLE_MARGIN = 0.015
# ...or this close when the question asks to compare or to look across articles.
AGGREGATE_MARGIN = 0.05
MAX_ARTICLES = 3
ANSWER_CHAR_BUDGET = 450
# Room for the sentence that completes a quoted one ("But Moscow needs...").
CONTINUATION_CHARS = 200

# Confidence: weight of the share of question terms found in the articles, and the
# penalty that turns a missing name or count into a refusal whatever the similarity.
COVERAGE_WEIGHT = 0.2
MISSING_PENALTY = 0.5

# Question → the kind of answer it expects.
_NUMBER_Q = re.compile(
    r"\bhow (many|much|long|far|wide|big|large|high|old)\b"
    r"|\b(range|figures?|amount|number|percent(age)?|cost|price|size)\b",
    re.IGNORECASE,
)
_DATE_Q = re.compile(
    r"^when\b|\b(what|which) (date|day|year|month|season|time)\b", re.IGNORECASE
)
_NAME_Q = re.compile(
    r"^(who|whom|whose|where)\b"
    r"|\b(which|what) (city|cities|country|countries|capitals?|town|region|person|official)\b",
    re.IGNORECASE,
)
_POLAR_Q = re.compile(
    r"^(is|are|was|were|do|does|did|has|have|had|can|could|will|would|should)\b", re.IGNORECASE
)
_AGGREGATE_Q = re.compile(
    r"\b(compare[sd]?|comparison|each|both|across|over time|coverage|versus|differ\w*)\b",
    re.IGNORECASE,
)
# Sentence → what it holds.
_NUMBER = re.compile(r"\d|\bpercent\b", re.IGNORECASE)
_DATE = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november"
    r"|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|monday|tuesday"
    r"|wednesday|thursday|friday|saturday|sunday|spring|summer|fall|autumn|winter"
    r"|(19|20)\d\d)\b",
    re.IGNORECASE,
)
# Words that confirm, deny or dispute a claim: the answer to a yes/no question.
_STANCE = re.compile(
    r"\b(not?|never|neither|nor|den(y|ies|ied)|reject(s|ed)?|fake|false|bogus|misleading"
    r"|hoax|dispute[sd]?|doubts?|however|but|yet|wary|unacceptable|impossible"
    r"|confirm(s|ed)?|agreed?)\b|n[’']t\b",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(r"(?<![.!?“\"‘]\s)(?<!^)\b[A-Z][a-z]{2,}")
# A sentence that opens like this continues the one before it ("But Moscow needs...").
_CONTINUATION = re.compile(
    r"^(but|however|yet|still|instead|he|she|they|it|this|that|these|those|his|her|their"
    r"|adding|according|the focus|[“\"])\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QuestionCues:
    """What kind of answer a question expects, read from its wording."""

    text: str
    number: bool
    date: bool
    name: bool
    polar: bool
    aggregate: bool

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
        )

    def matches(self, sentence: str) -> bool:
        """Whether the sentence holds the kind of thing the question asks for."""
        if self.number and _NUMBER.search(sentence):
            return True
        if self.date and _DATE.search(sentence):
            return True
        if self.polar and _STANCE.search(sentence):
            return True
        if self.name:
            asked = self.text.lower()
            return any(m.group().lower() not in asked for m in _CAPITALISED.finditer(sentence))
        return False


@dataclass(frozen=True)
class Evidence:
    rows: list[int]  # chosen sentence rows, in answer order
    best_score: float
    best_dense: float
    term_coverage: float  # share of the question's terms found in the corpus
    unknown_names: tuple[str, ...] = ()  # names in the question no article mentions
    count_unmet: bool = False  # "how many X" with no count of X in the evidence

    def confidence(self) -> float:
        """One number compared with ``refusal_threshold`` (0.9 by default).

        Similarity alone barely separates an off-topic question (~0.77-0.83 with the
        e5 model) from an on-topic one (~0.80-0.94); the share of the question's
        terms that the articles contain separates them better. A name the articles
        never mention, or a count they never give, is a refusal on its own.
        """
        value = self.best_dense + COVERAGE_WEIGHT * self.term_coverage
        if self.unknown_names or self.count_unmet:
            value -= MISSING_PENALTY
        return value


def score_sentences(
    corpus: Corpus,
    query_vector: np.ndarray,
    terms: list[str],
    allowed: np.ndarray,
    cues: QuestionCues | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(combined score, dense similarity) for every sentence row; -inf where not allowed."""
    vectors = corpus.sentences.embeddings
    if vectors is None or vectors.size == 0:
        empty = np.empty(0, dtype=np.float32)
        return empty, empty
    dense = vectors @ query_vector
    context = (corpus.chunks.embeddings @ query_vector)[corpus.sentence_chunk_row]
    lexical = corpus.sentence_lexical.scores(terms)
    top = float(lexical[allowed].max()) if allowed.any() else 0.0
    lexical = lexical / top if top > 0 else np.zeros_like(lexical)
    lead = np.clip(1.0 - corpus.sentence_position / LEAD_SENTENCES, 0.0, 1.0)
    score = dense + CONTEXT_WEIGHT * context + LEXICAL_WEIGHT * lexical + LEAD_WEIGHT * lead
    score = np.where(allowed, score, -np.inf)
    if cues is not None:
        score = _with_cues(corpus, score, cues)
    return score, dense


def _with_cues(corpus: Corpus, score: np.ndarray, cues: QuestionCues) -> np.ndarray:
    """Add CUE_WEIGHT to the shortlisted sentences that hold the expected answer type."""
    if not (cues.number or cues.date or cues.name or cues.polar):
        return score
    score = score.copy()
    for row in np.argsort(-score, kind="stable")[:SHORTLIST]:
        if np.isfinite(score[row]) and cues.matches(corpus.sentences.texts[row]):
            score[row] += CUE_WEIGHT
    return score


def select_evidence(
    corpus: Corpus,
    score: np.ndarray,
    dense: np.ndarray,
    coverage: float,
    max_quotes: int,
    cues: QuestionCues | None = None,
) -> Evidence:
    order = [int(i) for i in np.argsort(-score, kind="stable") if np.isfinite(score[i])]
    if not order:
        return Evidence([], float("-inf"), float("-inf"), coverage)
    best = order[0]
    picked = [best]
    length = len(corpus.sentences.texts[best])
    for row in order[1:]:
        if len(picked) >= max_quotes or score[row] < score[best] - QUOTE_MARGIN:
            break
        if _duplicate(corpus, row, picked) or length + len(corpus.sentences.texts[row]) > (
            ANSWER_CHAR_BUDGET
        ):
            continue
        picked.append(row)
        length += len(corpus.sentences.texts[row])
    aggregate = cues is not None and cues.aggregate
    picked = _with_other_articles(corpus, order, score, picked, max_quotes, aggregate)
    polar = cues is not None and cues.polar
    picked = _with_continuations(corpus, picked, polar)
    question = cues.text if cues is not None else ""
    return Evidence(
        picked,
        float(score[best]),
        float(dense[best]),
        coverage,
        tuple(unknown_names(corpus, question)),
        count_unmet(corpus, question, order[:COUNT_EVIDENCE]),
    )


def _duplicate(corpus: Corpus, row: int, picked: list[int]) -> bool:
    text = corpus.sentences.texts[row]
    return any(corpus.sentences.texts[p] == text for p in picked)


def _next_in_paragraph(corpus: Corpus, row: int) -> int | None:
    return row + 1 if corpus.sentence_joins_next[row] else None  # rows are in text order


def _with_continuations(corpus: Corpus, picked: list[int], polar: bool) -> list[int]:
    """Add the next sentence of a quoted paragraph when it continues the thought.

    After a claim, news copy states who disputes it: for a yes/no question the next
    sentence of the paragraph is quoted whatever its first word.
    """
    out = list(picked)
    length = sum(len(corpus.sentences.texts[r]) for r in out)
    for row in picked[:2]:
        nxt = _next_in_paragraph(corpus, row)
        if nxt is None or nxt in out:
            continue
        text = corpus.sentences.texts[nxt]
        wanted = polar or _CONTINUATION.match(text)
        if wanted and length + len(text) <= ANSWER_CHAR_BUDGET + CONTINUATION_CHARS:
            out.append(nxt)
            length += len(text)
    return out


def _with_other_articles(
    corpus: Corpus,
    order: list[int],
    score: np.ndarray,
    picked: list[int],
    max_quotes: int,
    aggregate: bool,
) -> list[int]:
    """Questions answered by two articles deserve a quote from each."""
    margin = AGGREGATE_MARGIN if aggregate else ARTICLE_MARGIN
    limit = MAX_ARTICLES if aggregate else 2
    docs = list(dict.fromkeys(str(corpus.sentence_doc[r]) for r in picked))
    best = order[0]
    for row in order[1:]:
        if len(docs) >= limit or score[row] < score[best] - margin:
            break
        doc = str(corpus.sentence_doc[row])
        if doc in docs:
            continue
        if len(picked) >= max_quotes:
            picked = _drop_last_of_repeated_article(corpus, picked)
        picked = [*picked, row]
        docs.append(doc)
    return picked


def _drop_last_of_repeated_article(corpus: Corpus, picked: list[int]) -> list[int]:
    """Make room by dropping the last quote of an article quoted more than once."""
    for i in range(len(picked) - 1, 0, -1):
        doc = corpus.sentence_doc[picked[i]]
        if sum(corpus.sentence_doc[r] == doc for r in picked) > 1:
            return picked[:i] + picked[i + 1 :]
    return picked


def compose(corpus: Corpus, rows: list[int]) -> tuple[str, list[Citation]]:
    """Group the chosen sentences by article (best article first), in text order."""
    doc_order: list[str] = []
    for r in rows:
        doc = str(corpus.sentence_doc[r])
        if doc not in doc_order:
            doc_order.append(doc)
    citations: list[Citation] = []
    lines: list[str] = []
    for doc in doc_order:
        in_doc = sorted(
            (r for r in rows if corpus.sentence_doc[r] == doc),
            key=lambda r: corpus.sentences.metadatas[r]["start"],
        )
        parts = []
        for r in in_doc:
            meta = corpus.sentences.metadatas[r]
            citation = Citation(
                n=len(citations) + 1,
                doc_id=meta["doc_id"],
                title=meta["title"],
                source=meta["source"],
                quote=corpus.sentences.texts[r],
                start=int(meta["start"]),
                end=int(meta["end"]),
            )
            citations.append(citation)
            parts.append(f"{_quoted(citation.quote)} [{citation.n}]")
        lines.append(" ".join(parts))
    return "\n\n".join(lines), citations


def _quoted(text: str) -> str:
    return text if text[0] in "“\"'‘" else f"“{text}”"


def refusal_text(question: str) -> str:
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
# A count is looked for in this many of the best sentences.
COUNT_EVIDENCE = 5
# The number and a counted word may be this many words apart ("10,000 North Korean troops").
COUNT_WINDOW = 3


def unknown_names(corpus: Corpus, question: str) -> list[str]:
    """Names in the question that no indexed sentence contains: the articles can't say."""
    lexical = corpus.sentence_lexical
    names = [m.group() for m in _NAME_IN_QUESTION.finditer(question)]
    return [n for n in names if (t := lexical.terms(n)) and not lexical.known_terms(t)]


def count_unmet(corpus: Corpus, question: str, rows: list[int]) -> bool:
    """A "how many X" question whose evidence has no number next to an X."""
    match = _COUNTED.search(question)
    if not match:
        return False
    counted = set(corpus.sentence_lexical.terms(match.group(1).split()[-1]))  # head noun
    for row in rows:
        words = corpus.sentences.texts[row].split()
        for i, word in enumerate(words):
            if not _COUNT.match(word):
                continue
            near = " ".join(words[i + 1 : i + 1 + COUNT_WINDOW])
            if counted & set(corpus.sentence_lexical.terms(near)):
                return False
    return True
