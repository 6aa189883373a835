"""The extractive answerer: verbatim sentences, grouped by article, each cited [n].

No language model: the answer is made only of sentences copied from the articles, so
every word of it can be checked at its citation's offsets. When no sentence is good
enough evidence, the answer is a refusal that cites nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rag.models import Citation
from rag.retrieve import Corpus

# Weights of a sentence's score: its own embedding similarity, the similarity of the
# chunk around it (context the sentence alone lacks) and its BM25 score relative to the
# best sentence. Tuned on the eval set
# (eval/questions.jsonl) with `rag eval`.
CONTEXT_WEIGHT = 0.5
LEXICAL_WEIGHT = 0.10
# Sentences within this score margin of the best one are quoted too.
QUOTE_MARGIN = 0.06
# A second article is quoted when its best sentence is this close to the best one.
ARTICLE_MARGIN = 0.03
ANSWER_CHAR_BUDGET = 450
# News articles put the gist first: the headline and the first sentences get a bonus
# that fades over LEAD_SENTENCES sentences.
LEAD_WEIGHT = 0.02
LEAD_SENTENCES = 4
# A sentence that opens like this continues the one before it ("But Moscow needs...").
_CONTINUATION = re.compile(
    r"^(but|however|yet|still|instead|he|she|they|it|this|that|these|those|his|her|their"
    r"|adding|according|the focus|[“\"])\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Evidence:
    rows: list[int]  # chosen sentence rows, in answer order
    best_score: float
    best_dense: float
    term_coverage: float  # share of the question's terms found in the corpus

    def confidence(self) -> float:
        """One number compared with ``refusal_threshold``."""
        return self.best_dense + 0.1 * self.term_coverage


def score_sentences(
    corpus: Corpus,
    query_vector: np.ndarray,
    terms: list[str],
    allowed: np.ndarray,
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
    return np.where(allowed, score, -np.inf), dense


def select_evidence(
    corpus: Corpus,
    score: np.ndarray,
    dense: np.ndarray,
    coverage: float,
    max_quotes: int,
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
    picked = _with_second_article(corpus, order, score, picked, max_quotes)
    picked = _with_continuations(corpus, picked, length)
    return Evidence(picked, float(score[best]), float(dense[best]), coverage)


def _duplicate(corpus: Corpus, row: int, picked: list[int]) -> bool:
    text = corpus.sentences.texts[row]
    return any(corpus.sentences.texts[p] == text for p in picked)


def _next_in_paragraph(corpus: Corpus, row: int) -> int | None:
    nxt = row + 1  # rows are ordered by (doc, position)
    if nxt >= len(corpus.sentences.texts) or corpus.sentence_doc[nxt] != corpus.sentence_doc[row]:
        return None
    gap = corpus.sentences.metadatas[nxt]["start"] - corpus.sentences.metadatas[row]["end"]
    return nxt if gap <= 2 else None


def _with_continuations(corpus: Corpus, picked: list[int], length: int) -> list[int]:
    """Add the next sentence of a quoted paragraph when it continues the thought."""
    out = list(picked)
    for row in picked[:2]:
        nxt = _next_in_paragraph(corpus, row)
        if nxt is None or nxt in out:
            continue
        text = corpus.sentences.texts[nxt]
        if _CONTINUATION.match(text) and length + len(text) <= ANSWER_CHAR_BUDGET + 150:
            out.append(nxt)
            length += len(text)
    return out


def _with_second_article(
    corpus: Corpus, order: list[int], score: np.ndarray, picked: list[int], max_quotes: int
) -> list[int]:
    """Questions answered by two articles deserve a quote from each."""
    docs = {corpus.sentence_doc[r] for r in picked}
    best = order[0]
    for row in order[1:]:
        if score[row] < score[best] - ARTICLE_MARGIN:
            break
        if corpus.sentence_doc[row] not in docs:
            if len(picked) >= max_quotes:
                picked = picked[:-1]
            return [*picked, row]
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
