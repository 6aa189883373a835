"""Named features of each candidate sentence, and of the question's evidence as a whole.

Third stage of the one path (read → retrieve → score → compose). A sentence is described
by a few numbers a reader would look at: how close its meaning is to the question's, how
many of the question's words it shares (weighted by how rare they are), whether it holds
the kind of thing asked for, where it stands in its article, and how well its article
matched. ``rag.scorer`` weighs them with parameters fitted by ``rag.fit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.components.embedding import QuestionVectors
from rag.documents import own_title
from rag.lexical import term_counts
from rag.question import Question, holds_answer_type
from rag.retrieve import Candidates, Corpus

if TYPE_CHECKING:
    from rag.components.reader import Reading

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
    # The sentence embedded after its article's title: "He will now play Gaudio" is about
    # the match the headline names (``Document.titled_sentences``).
    "titled_dense",  # cosine of that vector and the question's
    "titled_dense_gap",  # titled_dense minus the best of all candidates
    "titled_dense_in_article",  # titled_dense minus the best of its article
    # The same similarities with the question embedded through the fitted adapter
    # (``rag.components.corrections``), which moves it towards the sentence that holds
    # what such questions ask; the plain ones above keep what the model knows unadapted.
    "tuned_dense",
    "tuned_dense_gap",
    "tuned_dense_in_article",
    "tuned_context",
    "tuned_titled",
    "tuned_titled_gap",
    "tuned_titled_in_article",
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
    "tuned_best",  # the best similarity of any candidate sentence to the adapted question
    "tuned_of_best",  # that of the best-scored sentence
    # The reader (``rag.components.reader``), which reads the question with each of the
    # scorer's best sentences: what it says of the best sentence, and of the one it likes.
    "reader_best",
    "reader_max",
)
# The direction each evidence feature may push "answerable" (``rag.fit``): more of any of
# them never makes an answer less likely, but a name no article mentions.
EVIDENCE_SIGNS = {name: 1 for name in EVIDENCE_FEATURES} | {"unknown_names": -1}


@dataclass(frozen=True)
class SentenceTable:
    """Features of every candidate sentence (rows of ``candidates.corpus.sentences``)."""

    values: np.ndarray  # (sentences, len(SENTENCE_FEATURES))
    dense: np.ndarray
    tuned: np.ndarray  # similarity of each sentence to the adapted question
    term_coverage: float  # share of the question's terms known to the corpus
    unknown_names: bool
    article_coverage: dict[str, float]  # idf-weighted, per article
    terms: list[str]  # the question's search terms, each once


def sentence_features(
    candidates: Candidates, question: Question, vectors: QuestionVectors, terms: list[str]
) -> SentenceTable:
    corpus = candidates.corpus
    n = len(corpus.sentences.ids)
    if n == 0:
        empty = np.zeros(0)
        return SentenceTable(
            np.zeros((0, len(SENTENCE_FEATURES))), empty, empty, 0.0, False, {}, []
        )
    vector, tuned_vector = vectors.plain, vectors.tuned
    lexical = corpus.sentence_lexical
    unique_terms = list(dict.fromkeys(terms))
    idf = lexical.index.idf(unique_terms) if lexical.index is not None else {}
    unseen = lexical.index.unseen_idf() if lexical.index is not None else 0.0
    counts = term_counts(lexical.texts_terms, unique_terms)
    held = counts > 0  # (sentences, terms): whether each sentence holds each term
    # A word no article holds weighs most: the share of the question an article covers
    # must not grow by leaving out what the archive has never heard of ("the Pope").
    weights = np.asarray([idf.get(t, unseen) for t in unique_terms], dtype=np.float32)
    dense = corpus.sentences.embeddings @ vector
    titled = corpus.sentence_titled @ vector
    context = (corpus.chunks.embeddings @ vector)[corpus.sentence_chunk_row]
    tuned = corpus.sentences.embeddings @ tuned_vector
    tuned_titled = corpus.sentence_titled @ tuned_vector
    tuned_context = (corpus.chunks.embeddings @ tuned_vector)[corpus.sentence_chunk_row]
    bm25 = lexical.scores(counts, unique_terms)
    bm25 = bm25 / bm25.max() if bm25.max() > 0 else bm25
    coverage, idf_coverage = _share(held), _weighted_share(held, weights)
    docs = corpus.sentence_doc
    articles = _Articles.of(docs)
    article_cov = {
        doc: float(_weighted_share(_article_held(corpus, rows, held, unique_terms), weights)[0])
        for doc, rows in articles.rows.items()
    }
    rank = candidates.article_rank
    article = np.asarray([1.0 / (1 + rank.get(d, len(rank))) for d in docs], dtype=np.float32)
    position = corpus.sentence_position
    answer_type = np.zeros(n, dtype=np.float32)
    if question.answer_type != "none":
        answer_type[:] = [holds_answer_type(t, question) for t in corpus.sentences.texts]
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
            articles.minus_best(dense),
            articles.minus_best(bm25),
            articles.minus_best(idf_coverage),
            # Weighed by the article's rank: they tell sentences of one article apart, and
            # must not lift a sentence of an article that answers something else.
            *(f * article for f in _within_article(corpus, articles, vector, held)),
            titled,
            titled - titled.max(),
            articles.minus_best(titled),
            tuned,
            tuned - tuned.max(),
            articles.minus_best(tuned),
            tuned_context,
            tuned_titled,
            tuned_titled - tuned_titled.max(),
            articles.minus_best(tuned_titled),
        ]
    ).astype(np.float32)
    known = lexical.known_terms(unique_terms)
    names = [lexical.terms(name) for name in question.names]
    return SentenceTable(
        values=values,
        dense=dense,
        tuned=tuned,
        term_coverage=len(known) / len(unique_terms) if unique_terms else 0.0,
        unknown_names=any(t and not lexical.known_terms(t) for t in names),
        article_coverage=article_cov,
        terms=unique_terms,
    )


def evidence_features(
    table: SentenceTable,
    logits: np.ndarray,
    best: int,
    docs: np.ndarray,
    reading: Reading | None = None,
) -> np.ndarray:
    """The question-level features the refusal model weighs (see EVIDENCE_FEATURES).
    ``reading``: what the reader said of the best candidates (none: zeros)."""
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
            float(table.tuned.max()),
            float(table.tuned[best]),
            *_reader_evidence(reading, best),
        ],
        dtype=np.float32,
    )


def _reader_evidence(reading: Reading | None, best: int) -> tuple[float, float]:
    """The reader's logit of the best sentence (its lowest reading if it did not read it),
    and its highest."""
    if reading is None or not len(reading.scores):
        return 0.0, 0.0
    at = np.flatnonzero(reading.rows == best)
    of_best = reading.scores[at[0]] if at.size else reading.scores.min()
    return float(of_best), float(reading.scores.max())


def holds_every_term(corpus: Corpus, terms: list[str]) -> np.ndarray:
    """Per candidate sentence: it holds every one of the search terms, each as itself or
    as the start of a longer term ("threat" in "threatened", whose stem is "threaten").
    None does when there are no terms."""
    unique = list(dict.fromkeys(terms))
    if not unique:
        return np.zeros(len(corpus.sentences.ids), dtype=bool)
    return np.asarray(
        [
            all(_holds(term, present) for term in unique)
            for present in map(set, corpus.sentence_lexical.texts_terms)
        ],
        dtype=bool,
    )


# A search term shorter than this matches only itself: "art" starts "article" too.
PREFIX_LETTERS = 5


def _holds(term: str, held: set[str]) -> bool:
    return term in held or (len(term) >= PREFIX_LETTERS and any(t.startswith(term) for t in held))


def _article_held(
    corpus: Corpus, rows: np.ndarray, held: np.ndarray, terms: list[str]
) -> np.ndarray:
    """(1, terms): the question's terms its article holds, in a sentence or its title (a
    feed record's title is not one of its sentences; a file's headline is)."""
    title = own_title(corpus.sentences.metadatas[rows[0]])
    in_title = set(corpus.sentence_lexical.terms(title)) if title else set()
    in_title_row = np.asarray([[t in in_title for t in terms]], dtype=bool).reshape(1, len(terms))
    return held[rows].any(axis=0, keepdims=True) | in_title_row


def _share(held: np.ndarray) -> np.ndarray:
    """Share of the terms (columns) each row holds; 0 when there are none."""
    if held.shape[1] == 0:
        return np.zeros(len(held), dtype=np.float32)
    return held.mean(axis=1).astype(np.float32)


def _weighted_share(held: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weight of the terms each row holds, as a share of all the terms' weight."""
    if held.shape[1] == 0:
        return np.zeros(len(held), dtype=np.float32)
    return (held @ weights / (weights.sum() or 1.0)).astype(np.float32)


@dataclass(frozen=True)
class _Articles:
    """The sentence rows of each candidate article."""

    rows: dict[str, np.ndarray]

    @classmethod
    def of(cls, docs: np.ndarray) -> _Articles:
        return cls({str(doc): np.flatnonzero(docs == doc) for doc in dict.fromkeys(docs)})

    def minus_best(self, values: np.ndarray) -> np.ndarray:
        """Each value minus the best of its article."""
        out = np.empty_like(values)
        for rows in self.rows.values():
            out[rows] = values[rows] - values[rows].max()
        return out


def _within_article(
    corpus: Corpus, articles: _Articles, vector: np.ndarray, held: np.ndarray
) -> tuple[np.ndarray, ...]:
    """local_coverage, centred_dense, beyond_headline and beyond_lede of every sentence."""
    n = len(held)
    local, centred, beyond_headline, beyond_lede = (np.zeros(n, np.float32) for _ in range(4))
    position = corpus.sentence_position
    for rows in articles.rows.values():
        in_article = held[rows]
        sharing = in_article.sum(axis=0)  # sentences of the article holding each term
        weights = np.where(sharing > 0, np.log((len(rows) + 1) / (sharing + 0.5)), 0.0)
        local[rows] = _weighted_share(in_article[:, sharing > 0], weights[sharing > 0])

        vectors = corpus.sentences.embeddings[rows]
        centred_vectors = vectors - vectors.mean(axis=0)
        norms = np.maximum(np.linalg.norm(centred_vectors, axis=1), 1e-6)
        centred[rows] = (centred_vectors @ vector) / norms

        for top, out in ((0, beyond_headline), (1, beyond_lede)):
            # A snippet of one or two sentences has no body past its opening: all of it
            # counts as body.
            opening = position[rows] <= top
            if position[rows].max() <= top:
                opening[:] = False
            beyond = ~in_article[opening].any(axis=0)
            out[rows] = _share(in_article[:, beyond])
    return local, centred, beyond_headline, beyond_lede


def _neighbour_best(dense: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """The better dense similarity of the previous and next sentence of the same article."""
    before = np.concatenate([[-1.0], dense[:-1]])
    after = np.concatenate([dense[1:], [-1.0]])
    same_before = np.concatenate([[False], docs[1:] == docs[:-1]])
    same_after = np.concatenate([docs[:-1] == docs[1:], [False]])
    best = np.maximum(np.where(same_before, before, -1.0), np.where(same_after, after, -1.0))
    return np.where(best > -1.0, best, dense)
