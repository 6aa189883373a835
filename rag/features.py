"""Named features of each candidate sentence, and of the question's evidence as a whole.

Third stage of the one path (read → retrieve → score → compose). A sentence is described
by a few numbers a reader would look at: how close its meaning is to the question's, how
many of the question's words it shares (weighted by how rare they are), whether it holds
the kind of thing asked for, where it stands in its article, and how well its article
matched. ``rag.scorer`` weighs them with parameters fitted by ``rag.fit``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rag.question import Question, holds_answer_type
from rag.retrieve import Candidates, Corpus

SENTENCE_FEATURES = (
    "dense",  # cosine of sentence and question embeddings
    "dense_gap",  # dense minus the best dense of all candidates
    "context",  # cosine of the chunk around the sentence and the question
    "neighbours",  # best dense of the sentences just before and after it
    "bm25",  # BM25 of the sentence (corpus term weights), relative to the best one
    "coverage",  # share of the question's terms the sentence holds
    "idf_coverage",  # the same, each term weighted by its rarity in the corpus
    "article",  # 1 / (1 + rank of the sentence's article among the candidates)
    "article_coverage",  # share of the question's terms its article holds
    "headline",  # the sentence is its article's first line
    "lead",  # 1 / (1 + its position in the article)
    "answer_type",  # holds the asked type of answer (0 when none is asked)
    "asks_type",  # the question asks for a type (lets the model weigh answer_type)
    "length",  # log of its number of words
    # The same signals relative to the best sentence of its own article: which sentence
    # of an article answers is decided within the article.
    "dense_in_article",  # dense minus the best dense in its article
    "bm25_in_article",  # bm25 minus the best bm25 in its article
    "coverage_in_article",  # idf_coverage minus the best in its article
    # What sets the sentence apart from the rest of its article, times ``article``. The
    # headline and lede restate what a question is about; the sentence that answers holds
    # the question's other words, and the ones few sentences of the article share.
    "local_coverage",  # question terms it holds, each weighted by how few sentences of
    # its article hold it (a tf-idf within the article)
    "centred_dense",  # cosine of the question and the sentence minus its article's mean
    "beyond_headline",  # share it holds of the question terms its headline lacks
    "beyond_lede",  # share it holds of the question terms its headline and lede lack
)

EVIDENCE_FEATURES = (
    "best",  # the best sentence's probability, as a logit
    "margin",  # best logit minus the second best's
    "dense",  # the best dense similarity of any candidate sentence
    "known_terms",  # share of the question's terms that occur anywhere in the corpus
    "unknown_names",  # the question names something no article mentions (0/1)
    "best_coverage",  # idf-weighted share of question terms in the best sentence's article
    "best_has_type",  # the best sentence holds the asked type of answer (1 if none asked)
    "top_has_type",  # one of the three best sentences does (1 if none asked)
    "top_coverage",  # the most of the question's terms, idf-weighted, one of them holds
)


@dataclass(frozen=True)
class SentenceTable:
    """Features of every candidate sentence (rows of ``candidates.corpus.sentences``)."""

    values: np.ndarray  # (sentences, len(SENTENCE_FEATURES))
    dense: np.ndarray
    term_coverage: float  # share of the question's terms known to the corpus
    unknown_names: bool
    article_coverage: dict[str, float]  # idf-weighted, per article


def sentence_features(
    candidates: Candidates, question: Question, vector: np.ndarray, terms: list[str]
) -> SentenceTable:
    corpus = candidates.corpus
    n = len(corpus.sentences.ids)
    if n == 0:
        return SentenceTable(np.zeros((0, len(SENTENCE_FEATURES))), np.zeros(0), 0.0, False, {})
    lexical = corpus.sentence_lexical
    unique_terms = list(dict.fromkeys(terms))
    idf = lexical.index.idf(unique_terms) if lexical.index is not None else {}
    dense = corpus.sentences.embeddings @ vector
    context = (corpus.chunks.embeddings @ vector)[corpus.sentence_chunk_row]
    bm25 = lexical.scores(unique_terms)
    bm25 = bm25 / bm25.max() if bm25.max() > 0 else bm25
    sentence_terms = [set(t) for t in lexical.texts_terms]
    coverage, idf_coverage = _coverage(sentence_terms, unique_terms, idf)
    docs = corpus.sentence_doc
    article_terms = _per_article(docs, sentence_terms)
    article_cov = {
        doc: _coverage([held], unique_terms, idf)[1][0] for doc, held in article_terms.items()
    }
    rank = candidates.article_rank
    article = np.asarray([1.0 / (1 + rank.get(d, len(rank))) for d in docs], dtype=np.float32)
    position = corpus.sentence_position
    answer_type = np.asarray(
        [holds_answer_type(t, question) for t in corpus.sentences.texts], dtype=np.float32
    )
    values = np.column_stack(
        [
            dense,
            dense - dense.max(),
            context,
            _neighbour_best(dense, docs),
            bm25,
            coverage,
            idf_coverage,
            article,
            [article_cov[d] for d in docs],
            position == 0,
            1.0 / (1 + position),
            answer_type,
            np.full(n, float(question.answer_type != "none")),
            np.log1p([len(t.split()) for t in corpus.sentences.texts]),
            _minus_article_best(dense, docs),
            _minus_article_best(bm25, docs),
            _minus_article_best(idf_coverage, docs),
            # Weighed by the article's rank: they tell sentences of one article apart, and
            # must not lift a sentence of an article that answers something else.
            *(f * article for f in _within_article(corpus, vector, sentence_terms, unique_terms)),
        ]
    ).astype(np.float32)
    known = lexical.known_terms(unique_terms)
    names = [lexical.terms(name) for name in question.names]
    return SentenceTable(
        values=values,
        dense=dense,
        term_coverage=len(known) / len(unique_terms) if unique_terms else 0.0,
        unknown_names=any(t and not lexical.known_terms(t) for t in names),
        article_coverage=article_cov,
    )


def evidence_features(
    table: SentenceTable, logits: np.ndarray, best: int, docs: np.ndarray
) -> np.ndarray:
    """The question-level features the refusal model weighs (see EVIDENCE_FEATURES)."""
    ordered = np.sort(logits)[::-1]
    second = ordered[1] if len(ordered) > 1 else ordered[0] - 5.0
    column = SENTENCE_FEATURES.index
    asks = table.values[best, column("asks_type")] > 0
    has_type = table.values[:, column("answer_type")]
    top3 = np.argsort(-logits)[:3]
    return np.asarray(
        [
            logits[best],
            logits[best] - second,
            float(table.dense.max()),
            table.term_coverage,
            float(table.unknown_names),
            table.article_coverage.get(str(docs[best]), 0.0),
            float(has_type[best]) if asks else 1.0,
            float(has_type[top3].max()) if asks else 1.0,
            float(table.values[top3, column("idf_coverage")].max()),
        ],
        dtype=np.float32,
    )


def _coverage(
    sentence_terms: list[set[str]], terms: list[str], idf: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    if not terms:
        zeros = np.zeros(len(sentence_terms), dtype=np.float32)
        return zeros, zeros
    total_idf = sum(idf.values()) or 1.0
    plain = np.asarray([sum(t in held for t in terms) / len(terms) for held in sentence_terms])
    weighted = np.asarray(
        [sum(w for t, w in idf.items() if t in held) / total_idf for held in sentence_terms]
    )
    return plain.astype(np.float32), weighted.astype(np.float32)


def _per_article(docs: np.ndarray, sentence_terms: list[set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for doc, held in zip(docs, sentence_terms, strict=True):
        out.setdefault(str(doc), set()).update(held)
    return out


def _minus_article_best(values: np.ndarray, docs: np.ndarray) -> np.ndarray:
    best: dict[str, float] = {}
    for doc, value in zip(docs, values, strict=True):
        best[doc] = max(best.get(doc, -np.inf), float(value))
    return values - np.asarray([best[d] for d in docs], dtype=np.float32)


def _within_article(
    corpus: Corpus, vector: np.ndarray, sentence_terms: list[set[str]], terms: list[str]
) -> tuple[np.ndarray, ...]:
    """local_coverage, centred_dense, beyond_headline and beyond_lede of every sentence."""
    n = len(sentence_terms)
    local, centred, beyond_headline, beyond_lede = (np.zeros(n, np.float32) for _ in range(4))
    docs, position = corpus.sentence_doc, corpus.sentence_position
    for doc in dict.fromkeys(docs):
        rows = np.flatnonzero(docs == doc)
        held = [sentence_terms[r] for r in rows]
        share = {t: sum(t in h for h in held) for t in terms}
        weight = {t: math.log((len(rows) + 1) / (k + 0.5)) for t, k in share.items() if k}
        local[rows] = _coverage(held, list(weight), weight)[1]

        vectors = corpus.sentences.embeddings[rows]
        centred_vectors = vectors - vectors.mean(axis=0)
        norms = np.maximum(np.linalg.norm(centred_vectors, axis=1), 1e-6)
        centred[rows] = (centred_vectors @ vector) / norms

        for top, out in ((0, beyond_headline), (1, beyond_lede)):
            # A snippet of one or two sentences has no body past its opening: all of it
            # counts as body.
            opening = (
                set().union(*(h for h, p in zip(held, position[rows], strict=True) if p <= top))
                if position[rows].max() > top
                else set()
            )
            out[rows] = _coverage(held, [t for t in terms if t not in opening], {})[0]
    return local, centred, beyond_headline, beyond_lede


def _neighbour_best(dense: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """The better dense similarity of the previous and next sentence of the same article."""
    before = np.concatenate([[-1.0], dense[:-1]])
    after = np.concatenate([dense[1:], [-1.0]])
    same_before = np.concatenate([[False], docs[1:] == docs[:-1]])
    same_after = np.concatenate([docs[:-1] == docs[1:], [False]])
    best = np.maximum(np.where(same_before, before, -1.0), np.where(same_after, after, -1.0))
    return np.where(best > -1.0, best, dense)
