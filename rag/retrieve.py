"""Hybrid retrieval: dense (Chroma) + lexical (BM25, bm25s), fused by reciprocal rank.

Passages are chunks ranked by reciprocal rank fusion of three rankings: Chroma's dense
search, BM25, and the best sentence score inside each chunk (sentences are scored in
``rag.answer``). ``Corpus`` holds the committed rows, loaded once per engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rag.store import IndexStore, Rows

RRF_K = 60  # the constant from Cormack et al. (2009); damps the weight of top ranks
# Question words carry no topic; BM25 should not match "what" or "did".
QUESTION_WORDS = (
    "what",
    "who",
    "whom",
    "whose",
    "how",
    "which",
    "when",
    "where",
    "why",
    "did",
    "does",
    "do",
    "done",
    "say",
    "said",
    "says",
    "tell",
    "told",
    "according",
    "much",
    "many",
)
# Spelling variants that news copy mixes freely: a demonym and its country ("Russian",
# "Russia"), and transliterations ("Kyiv", "Kiev"). Stemming keeps them apart, so BM25
# would miss "Russia's conditions" in "withdraw from Russian territory". Keys are
# lowercase words, mapped before stemming to one spelling.
VARIANTS = {
    **dict.fromkeys(("russian", "russians"), "russia"),
    **dict.fromkeys(("ukrainian", "ukrainians"), "ukraine"),
    **dict.fromkeys(("american", "americans"), "america"),
    **dict.fromkeys(("european", "europeans"), "europe"),
    **dict.fromkeys(("korean", "koreans"), "korea"),
    **dict.fromkeys(("british", "briton", "britons"), "britain"),
    **dict.fromkeys(("german", "germans"), "germany"),
    **dict.fromkeys(("turkish", "turks"), "turkey"),
    **dict.fromkeys(("israeli", "israelis"), "israel"),
    **dict.fromkeys(("iranian", "iranians"), "iran"),
    **dict.fromkeys(("belarusian", "belarusians"), "belarus"),
    **dict.fromkeys(("hungarian", "hungarians"), "hungary"),
    "french": "france",
    "chinese": "china",
    "kyiv": "kiev",
    **dict.fromkeys(("zelenskiy", "zelenskyy"), "zelensky"),
    "luhansk": "lugansk",
    "zaporizhzhia": "zaporozhye",
    "donbas": "donbass",
    "kharkov": "kharkiv",
    "odessa": "odesa",
}


class LexicalIndex:
    """BM25 over a list of texts, with English stemming and stop words."""

    def __init__(self, texts: list[str]) -> None:
        import bm25s
        import Stemmer

        # bm25s sets its own logger to DEBUG on import; its index-building chatter would
        # end up in `rag ask --json` output and server logs.
        logging.getLogger("bm25s").setLevel(logging.WARNING)

        self._bm25s = bm25s
        stemmer = Stemmer.Stemmer("english")
        self._stemmer = lambda words: stemmer.stemWords([VARIANTS.get(w, w) for w in words])
        self._stopwords = list(bm25s.stopwords.STOPWORDS_EN) + list(QUESTION_WORDS)
        self._size = len(texts)
        self._retriever = bm25s.BM25()
        if texts:
            tokens = bm25s.tokenize(
                texts, stopwords=self._stopwords, stemmer=self._stemmer, show_progress=False
            )
            self._retriever.index(tokens, show_progress=False)

    def terms(self, query: str) -> list[str]:
        tokens = self._bm25s.tokenize(
            [query],
            stopwords=self._stopwords,
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )
        return [t for t in tokens[0] if t]

    def known_terms(self, terms: list[str]) -> list[str]:
        vocab = getattr(self._retriever, "vocab_dict", None) or {}
        return [t for t in terms if t in vocab]

    def scores(self, terms: list[str]) -> np.ndarray:
        known = self.known_terms(terms)
        if not known or self._size == 0:
            return np.zeros(self._size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(known), dtype=np.float32)


@dataclass
class Corpus:
    """The committed rows of the index, loaded once per engine and then read-only."""

    chunks: Rows
    sentences: Rows
    chunk_lexical: LexicalIndex
    sentence_lexical: LexicalIndex
    chunk_position: dict[str, int]  # chunk id -> row
    sentence_doc: np.ndarray  # doc id per sentence row
    sentence_chunk_key: list[tuple[str, int]]  # (doc_id, chunk position) per sentence
    chunk_key: list[tuple[str, int]]  # (doc_id, chunk position) per chunk row
    sentence_chunk_row: np.ndarray  # row in chunks of the chunk holding each sentence
    sentence_position: np.ndarray  # index of each sentence within its article
    # True where the next sentence row continues the same paragraph of the same article.
    sentence_joins_next: np.ndarray

    @classmethod
    def load(cls, store: IndexStore, committed: dict[str, str]) -> Corpus:
        """``committed`` maps doc_id to the content hash of its committed version."""
        chunks = _committed(store.all_rows(store.chunks, with_embeddings=True), committed)
        sentences = _committed(store.all_rows(store.sentences, with_embeddings=True), committed)
        chunk_key = [(m["doc_id"], int(m["position"])) for m in chunks.metadatas]
        chunk_row = {key: row for row, key in enumerate(chunk_key)}
        sentence_chunk_key = [(m["doc_id"], int(m["chunk"])) for m in sentences.metadatas]
        return cls(
            chunks=chunks,
            sentences=sentences,
            chunk_lexical=LexicalIndex(chunks.texts),
            sentence_lexical=LexicalIndex(sentences.texts),
            chunk_position={cid: i for i, cid in enumerate(chunks.ids)},
            sentence_doc=np.asarray([m["doc_id"] for m in sentences.metadatas]),
            sentence_chunk_key=sentence_chunk_key,
            chunk_key=chunk_key,
            sentence_position=np.asarray([int(m["position"]) for m in sentences.metadatas]),
            sentence_chunk_row=np.asarray([chunk_row[k] for k in sentence_chunk_key], dtype=int),
            sentence_joins_next=_joins_next(sentences.metadatas),
        )


def _joins_next(metadatas: list[dict]) -> np.ndarray:
    """Whether the next sentence row continues the same paragraph of the same article."""
    same = [
        (meta["doc_id"], meta["paragraph"]) == (nxt["doc_id"], nxt["paragraph"])
        for meta, nxt in zip(metadatas, metadatas[1:], strict=False)
    ]
    return np.asarray([*same, False], dtype=bool)


def _committed(rows: Rows, committed: dict[str, str]) -> Rows:
    keep = [
        i
        for i, meta in enumerate(rows.metadatas)
        if committed.get(meta["doc_id"]) == meta["content_hash"]
    ]
    # Stable order (doc, position) so that ties break the same way on every run.
    keep.sort(key=lambda i: (rows.metadatas[i]["doc_id"], rows.metadatas[i]["position"]))
    embeddings = None
    if rows.embeddings is not None:
        embeddings = rows.embeddings[keep] if keep else np.empty((0, 0), dtype=np.float32)
    return Rows(
        ids=[rows.ids[i] for i in keep],
        texts=[rows.texts[i] for i in keep],
        metadatas=[rows.metadatas[i] for i in keep],
        embeddings=embeddings,
    )


@dataclass(frozen=True)
class RankedPassage:
    row: int  # row in Corpus.chunks
    score: float  # fused score


def fuse(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of several best-first rankings of row numbers."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking):
            scores[row] = scores.get(row, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def retrieve_passages(
    store: IndexStore,
    corpus: Corpus,
    query_vector: np.ndarray,
    terms: list[str],
    top_k: int,
    doc_ids: list[str] | None,
    sentence_scores: np.ndarray,
) -> list[RankedPassage]:
    """Fuse three rankings of chunks: dense (Chroma), BM25, and best sentence inside."""
    pool = max(3 * top_k, 10)
    dense_hits = store.query_chunks(query_vector, pool, doc_ids)
    dense = [corpus.chunk_position[cid] for cid, _ in dense_hits if cid in corpus.chunk_position]

    allowed = (
        np.isin([m["doc_id"] for m in corpus.chunks.metadatas], doc_ids)
        if doc_ids
        else np.ones(len(corpus.chunks.ids), dtype=bool)
    )
    lexical_scores = np.where(allowed, corpus.chunk_lexical.scores(terms), 0.0)
    order = np.argsort(-lexical_scores, kind="stable")[:pool]
    lexical = [int(i) for i in order if lexical_scores[i] > 0]

    best_sentence = np.full(len(corpus.chunks.ids), -np.inf)
    np.maximum.at(best_sentence, corpus.sentence_chunk_row, sentence_scores)
    order = np.argsort(-best_sentence, kind="stable")[:pool]
    by_sentence = [int(i) for i in order if np.isfinite(best_sentence[i])]

    fused = fuse([dense, lexical, by_sentence])
    # The passage that holds the best sentence leads: it is the one the answer quotes,
    # and the sentence score is the sharpest of the three signals.
    if by_sentence:
        lead = next(i for i, (row, _) in enumerate(fused) if row == by_sentence[0])
        fused.insert(0, fused.pop(lead))
    return [RankedPassage(row, score) for row, score in fused[:top_k]]
