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

import numpy as np

from rag.models import Citation
from rag.questions import QuestionCues
from rag.refusal import COUNT_EVIDENCE, Evidence, answer_unmet, unknown_names
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
# "...across the articles", "...in the coverage": the best sentence of each article is
# quoted when within this margin, up to SURVEY_ARTICLES articles; where the question
# asks for an amount, only a sentence that gives one.
SURVEY_MARGIN = 0.1
SURVEY_ARTICLES = 4
ANSWER_CHAR_BUDGET = 450
# Room for the sentence that completes a quoted one ("But Moscow needs...").
CONTINUATION_CHARS = 200

# Pseudo-relevance feedback: a news headline states the article's gist, so the best
# sentence's headline terms join the BM25 query for the sentences of that article. It
# lifts the lede that spells out what a vaguer top sentence only mentions.
FEEDBACK_WEIGHT = 0.1
# The sentence after a quoted one is quoted too when it scores this close to the best
# one, or when it opens by pointing back ("One of these...", "This means...").
FOLLOW_MARGIN = 0.08
FOLLOW_LEADS = 2  # quotes whose next sentence is considered

# A question about someone's conditions, demands or stance asks for an article's gist:
# its lede (the first full sentence under the headline) is quoted when it scores within
# this margin of the best sentence.
LEDE_MARGIN = 0.15

# After a claim, news copy states who disputes it, often a few sentences on ("Peskov
# responded..."): for a yes/no or "as X reported" question, denials this many sentences
# after a quoted claim are quoted too, at most REBUTTALS of them per claim.
REBUTTAL_WINDOW = 3
REBUTTALS = 2
# A denial elsewhere in a quoted article is quoted when it scores this close to the best.
REBUTTAL_MARGIN = 0.1


# Words that deny or dispute a claim outright.
_DENIAL = re.compile(
    r"\b(den(y|ies|ied)|reject(s|ed)?|refut(e|es|ed)|fake|false|bogus|misleading|hoax"
    r"|untrue|nonsense|dispute[sd]?|misinformation|disinformation)\b",
    re.IGNORECASE,
)
# A sentence that opens like this continues the one before it ("But Moscow needs...").
_CONTINUATION = re.compile(
    r"^(but|however|yet|still|instead|he|she|they|it|this|that|these|those|his|her|their"
    r"|adding|according|the focus|[“\"])\b",
    re.IGNORECASE,
)

# An opener that qualifies the sentence before it, wherever the paragraph breaks.
_CONTRAST = re.compile(r"^(however|but|yet)\b", re.IGNORECASE)

# A headline has no closing full stop; the lede is looked for among the first sentences.
_FULL_STOP = re.compile(r"[.!?][”\"’']?$")
LEDE_SEARCH = 4
# A sentence that opens like this spells out the one before it, wherever it stands.
_ELABORATION = re.compile(
    r"^(one of (these|them|those|which)|this means|that means|these include|among them)\b",
    re.IGNORECASE,
)


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
    score = with_headline_feedback(corpus, score, terms)
    if cues is not None:
        score = _with_cues(corpus, score, cues)
    return score, dense


def with_headline_feedback(corpus: Corpus, score: np.ndarray, terms: list[str]) -> np.ndarray:
    """Lift the sentences of the best one's article that match its headline better.

    The best sentence's headline terms join the BM25 query, within its article. A
    sentence that matches the expanded query better than the best sentence does gains
    up to FEEDBACK_WEIGHT, never past the best score: other articles keep their
    standing, and no sentence loses any.
    """
    if FEEDBACK_WEIGHT == 0 or not np.isfinite(score).any():
        return score
    top = int(np.argmax(score))
    lexical = corpus.sentence_lexical
    headline = lexical.terms(corpus.sentences.metadatas[top]["title"])
    same = (corpus.sentence_doc == corpus.sentence_doc[top]) & np.isfinite(score)
    same &= corpus.sentence_position != 0  # the headline would only echo itself
    feedback = np.where(same, lexical.scores(list(dict.fromkeys(terms + headline))), 0.0)
    top_feedback = float(feedback.max())
    if top_feedback <= 0:
        return score
    gain = np.clip(feedback - feedback[top], 0.0, None) / top_feedback
    return np.minimum(score + FEEDBACK_WEIGHT * gain, np.maximum(score, score[top]))


def _with_cues(corpus: Corpus, score: np.ndarray, cues: QuestionCues) -> np.ndarray:
    """Add CUE_WEIGHT to the shortlisted sentences that hold the expected answer type."""
    if not (cues.number or cues.date or cues.name or cues.polar or cues.money):
        return score
    score = score.copy()
    for row in np.argsort(-score, kind="stable")[:SHORTLIST]:
        text = corpus.sentences.texts[row]
        if np.isfinite(score[row]) and cues.matches(text):
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
        return Evidence([], float("-inf"), coverage)
    best = order[0]
    picked = [best]
    length = len(corpus.sentences.texts[best])
    aggregate = cues is not None and cues.aggregate
    # A yes/no question may be answered differently by different articles.
    polar = cues is not None and cues.polar
    article_margin = AGGREGATE_MARGIN if aggregate or polar else ARTICLE_MARGIN
    for row in order[1:]:
        if len(picked) >= max_quotes or score[row] < score[best] - QUOTE_MARGIN:
            break
        other_article = corpus.sentence_doc[row] != corpus.sentence_doc[best]
        if other_article and score[row] < score[best] - article_margin:
            continue  # another article's sentence needs a closer score to be quoted
        if _duplicate(corpus, row, picked) or length + len(corpus.sentences.texts[row]) > (
            ANSWER_CHAR_BUDGET
        ):
            continue
        picked.append(row)
        length += len(corpus.sentences.texts[row])
    if cues is not None and cues.survey:
        judged = _with_other_articles(corpus, order, score, picked, max_quotes, aggregate)
        picked = _with_survey(corpus, order, score, picked, cues)
    else:
        picked = _with_other_articles(corpus, order, score, picked, max_quotes, aggregate)
        judged = picked
    # (``judged``: the quotes that must hold an asked-for measure or name)
    if cues is not None and cues.gist:
        picked = _with_ledes(corpus, score, picked)
    picked = _with_followers(corpus, picked, score, polar)
    if cues is not None and cues.disputed:
        picked = _with_rebuttals(corpus, picked, score)
    question = cues.text if cues is not None else ""
    return Evidence(
        picked,
        float(dense[best]),
        coverage,
        tuple(unknown_names(corpus, question)),
        answer_unmet(corpus, question, order[:COUNT_EVIDENCE], judged),
    )


def _lede(corpus: Corpus, row: int) -> int:
    """The first full sentence of ``row``'s article: headlines end without a full stop."""
    first = row - int(corpus.sentence_position[row])  # rows are in text order
    for lede in range(first + 1, min(first + LEDE_SEARCH, len(corpus.sentence_doc))):
        if corpus.sentence_doc[lede] != corpus.sentence_doc[row]:
            break
        if _FULL_STOP.search(corpus.sentences.texts[lede]):
            return lede
    return first


def _with_ledes(corpus: Corpus, score: np.ndarray, picked: list[int]) -> list[int]:
    """Quote the lede of each quoted article, where it is on the question's topic."""
    out = list(picked)
    best = float(score[picked[0]])
    for doc_row in dict.fromkeys(_article_rows(corpus, picked)):
        lede = _lede(corpus, doc_row)
        if lede not in out and score[lede] >= best - LEDE_MARGIN:
            out.append(lede)
    return out


def _article_rows(corpus: Corpus, rows: list[int]) -> list[int]:
    """One row per article, in first-quoted order."""
    seen: dict[str, int] = {}
    for r in rows:
        seen.setdefault(str(corpus.sentence_doc[r]), r)
    return list(seen.values())


def _duplicate(corpus: Corpus, row: int, picked: list[int]) -> bool:
    text = corpus.sentences.texts[row]
    return any(corpus.sentences.texts[p] == text for p in picked)


def _next_in_paragraph(corpus: Corpus, row: int) -> int | None:
    return row + 1 if corpus.sentence_joins_next[row] else None  # rows are in text order


def _next_in_article(corpus: Corpus, row: int) -> int | None:
    nxt = row + 1
    if nxt < len(corpus.sentence_doc) and corpus.sentence_doc[nxt] == corpus.sentence_doc[row]:
        return nxt
    return None


def _follows_up(
    corpus: Corpus, row: int, nxt: int, score: np.ndarray, best: float, polar: bool
) -> bool:
    """Whether sentence ``nxt`` elaborates on the quoted sentence ``row`` before it."""
    text = corpus.sentences.texts[nxt]
    if _ELABORATION.match(text) or score[nxt] >= best - FOLLOW_MARGIN:
        return True
    if _CONTRAST.match(text):
        return True  # "However, ..." answers the sentence before it, even past a break
    in_paragraph = _next_in_paragraph(corpus, row) == nxt
    return in_paragraph and bool(polar or _CONTINUATION.match(text))


def _with_followers(corpus: Corpus, picked: list[int], score: np.ndarray, polar: bool) -> list[int]:
    """Add the next sentence of a quoted one when it continues or elaborates on it.

    After a claim, news copy states who disputes it: for a yes/no question the next
    sentence of the paragraph is quoted whatever its first word.
    """
    out = list(picked)
    length = sum(len(corpus.sentences.texts[r]) for r in out)
    best = float(score[picked[0]])
    for row in picked[:FOLLOW_LEADS]:
        nxt = _next_in_article(corpus, row)
        if nxt is None or nxt in out or not _follows_up(corpus, row, nxt, score, best, polar):
            continue
        size = len(corpus.sentences.texts[nxt])
        if length + size <= ANSWER_CHAR_BUDGET + CONTINUATION_CHARS:
            out.insert(out.index(row) + 1, nxt)
            length += size
    return out


def _with_survey(
    corpus: Corpus, order: list[int], score: np.ndarray, picked: list[int], cues: QuestionCues
) -> list[int]:
    """Quote the best sentence of each further article on the topic."""
    docs = list(dict.fromkeys(str(corpus.sentence_doc[r]) for r in picked))
    floor = score[order[0]] - SURVEY_MARGIN
    out = list(picked)
    for row in order:
        if len(docs) >= SURVEY_ARTICLES or score[row] < floor:
            break
        doc = str(corpus.sentence_doc[row])
        if doc in docs:
            continue
        if cues.money and not cues.amount().search(corpus.sentences.texts[row]):
            continue
        out.append(row)
        docs.append(doc)
    return out


def _with_rebuttals(corpus: Corpus, picked: list[int], score: np.ndarray) -> list[int]:
    """Quote the denials that answer a quoted claim: the article's own verdict on it."""
    out = list(picked)
    best = float(score[picked[0]])
    for row in picked[:FOLLOW_LEADS]:
        found, nxt = 0, row
        for _ in range(REBUTTAL_WINDOW):
            nxt = _next_in_article(corpus, nxt)
            if nxt is None or found >= REBUTTALS:
                break
            if _DENIAL.search(corpus.sentences.texts[nxt]):
                found += 1
                if nxt not in out:
                    out.append(nxt)
    docs = {corpus.sentence_doc[r] for r in picked}
    for row in np.argsort(-score, kind="stable")[:SHORTLIST]:
        if score[row] < best - REBUTTAL_MARGIN:
            break
        row = int(row)
        text = corpus.sentences.texts[row]
        if row not in out and corpus.sentence_doc[row] in docs and _DENIAL.search(text):
            out.append(row)
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


def with_subquestion_evidence(
    corpus: Corpus, rows: list[int], sub_scores: list[np.ndarray]
) -> list[int]:
    """Make sure the best sentence for each side of a decomposed question is quoted.

    Each side gets a sentence of its own: one that answers both sides is the first's.
    """
    out = list(rows)
    taken: set[int] = set()
    for sub in sub_scores:
        best = next((int(r) for r in np.argsort(-sub, kind="stable") if r not in taken), None)
        if best is None or not np.isfinite(sub[best]):
            continue
        taken.add(best)
        if best not in out:
            out.append(best)
    return out
