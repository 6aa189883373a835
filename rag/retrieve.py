"""Hybrid retrieval: candidates from Chroma's HNSW index and the BM25 index, never the corpus.

A question gathers its candidates in two rankings of chunks: Chroma's dense (HNSW) search
and BM25 (``rag.lexical``). Reciprocal rank fusion orders the articles those chunks come
from; the best few articles are read from Chroma by id (their chunks, with the sentences
and sentence vectors each carries), and only those sentences are scored
(``rag.features``). The work per question grows with the question, not with the corpus.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from rag.documents import quotable
from rag.lexical import LexicalIndex
from rag.store import DocumentRecord, IndexStore, Rows, unpack_vectors

if TYPE_CHECKING:
    from rag.dates import DateRange

T = TypeVar("T", int, str)
# A date range first looks this many times deeper into the unfiltered nearest chunks.
DATE_OVERFETCH = 8
# Chunk metadata that carries its sentences.
_PACKED = ("sentences", "sentence_vectors", "titled_vectors")
RRF_K = 60  # the constant from Cormack et al. (2009); damps the weight of top ranks


class CandidateLexical:
    """BM25 terms and scores for the candidate sentences, with the corpus's term weights."""

    def __init__(self, index: LexicalIndex | None, texts_terms: list[list[str]]) -> None:
        self.index = index
        self.texts_terms = texts_terms

    def terms(self, text: str) -> list[str]:
        return self.index.terms(text) if self.index is not None else []

    def known_terms(self, terms: list[str]) -> list[str]:
        return self.index.known_terms(terms) if self.index is not None else []

    def scores(self, counts: np.ndarray, terms: list[str]) -> np.ndarray:
        """BM25 of the sentences, from their counts of ``terms`` (``term_counts``)."""
        if self.index is None:
            return np.zeros(len(self.texts_terms), dtype=np.float32)
        return self.index.scores_of(counts, [len(t) for t in self.texts_terms], terms)


@dataclass
class Corpus:
    """The candidate articles of one question: their chunks and sentences, in text order."""

    chunks: Rows
    sentences: Rows
    sentence_lexical: CandidateLexical
    chunk_position: dict[str, int]  # chunk id -> row
    sentence_doc: np.ndarray  # doc id per sentence row
    sentence_group: np.ndarray  # per sentence row: the id its article's copies share
    sentence_chunk_row: np.ndarray  # row in chunks of the chunk holding each sentence
    sentence_position: np.ndarray  # index of each sentence within its article
    # Each sentence's vector embedded after its article's title (``Document.titled_sentences``).
    sentence_titled: np.ndarray
    # True where the next sentence row continues the same paragraph of the same article.
    sentence_joins_next: np.ndarray

    @classmethod
    def of(cls, read: list[ReadChunk], lexical: LexicalIndex | None) -> Corpus:
        """From chunks in article and position order, with the sentences they carry."""
        chunks = Rows(
            ids=[c.row_id for c in read],
            texts=[c.text for c in read],
            metadatas=[c.metadata for c in read],
            embeddings=np.stack([c.embedding for c in read]).astype(np.float32)
            if read
            else np.empty((0, 0), dtype=np.float32),
        )
        sentences = Rows(
            ids=[i for c in read for i in c.sentences.ids],
            texts=[t for c in read for t in c.sentences.texts],
            metadatas=[m for c in read for m in c.sentences.metadatas],
            embeddings=np.concatenate([c.sentences.embeddings for c in read])
            if read
            else np.empty((0, 0), dtype=np.float32),
        )
        chunk_row = {
            (m["doc_id"], int(m["position"])): row for row, m in enumerate(chunks.metadatas)
        }
        return cls(
            chunks=chunks,
            sentences=sentences,
            sentence_lexical=CandidateLexical(lexical, [t for c in read for t in c.terms]),
            chunk_position={cid: i for i, cid in enumerate(chunks.ids)},
            sentence_doc=np.asarray([m["doc_id"] for m in sentences.metadatas], dtype=str),
            sentence_group=np.asarray(
                [m.get("group") or m["doc_id"] for m in sentences.metadatas], dtype=str
            ),
            sentence_position=np.asarray(
                [int(m["position"]) for m in sentences.metadatas], dtype=int
            ),
            sentence_chunk_row=np.asarray(
                [chunk_row[(m["doc_id"], int(m["chunk"]))] for m in sentences.metadatas],
                dtype=int,
            ),
            sentence_joins_next=_joins_next(sentences.metadatas),
            sentence_titled=np.concatenate([c.titled for c in read])
            if read
            else np.empty((0, 0), dtype=np.float32),
        )


@dataclass(frozen=True)
class ReadChunk:
    """One chunk as read from Chroma, with the sentences it carries and their BM25 terms."""

    row_id: str
    text: str
    metadata: dict  # without the packed sentences, which ``sentences`` holds
    embedding: np.ndarray
    sentences: Rows
    terms: list[list[str]]  # of each sentence
    titled: np.ndarray  # each sentence's vector after the title


class ChunkCache:
    """The chunks read for recent questions, by row id: follow-ups and related questions
    come back to the same articles. A row id names one version of an article
    (``<doc>:<hash16>:c3``), so an entry never goes stale; the engine empties the cache
    when the index moves on, so an article removed since is not served from it."""

    def __init__(self, max_chunks: int) -> None:
        self.max_chunks = max_chunks
        self._chunks: OrderedDict[str, ReadChunk] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, row_ids: list[str]) -> dict[str, ReadChunk]:
        with self._lock:
            found = {i: self._chunks[i] for i in row_ids if i in self._chunks}
            for i in found:
                self._chunks.move_to_end(i)
        return found

    def put(self, read: list[ReadChunk]) -> None:
        with self._lock:
            for chunk in read:
                self._chunks[chunk.row_id] = chunk
                self._chunks.move_to_end(chunk.row_id)
            while len(self._chunks) > self.max_chunks:
                self._chunks.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()

    def __len__(self) -> int:
        return len(self._chunks)


@dataclass(frozen=True)
class Candidates:
    corpus: Corpus
    dense: list[int]  # chunk rows of corpus, best first, from Chroma's chunk search
    lexical: list[int]  # chunk rows of corpus, best first, from BM25
    article_rank: dict[str, int]  # doc id -> rank of the article in the fused ranking


def gather_candidates(
    store: IndexStore,
    lexical: LexicalIndex | None,
    query_vector: np.ndarray,
    terms: list[str],
    *,
    pool: int,
    articles: int,
    doc_ids: list[str] | None = None,
    dates: DateRange | None = None,
    newest_first: bool = False,
    cache: ChunkCache | None = None,
) -> Candidates:
    """The best ``articles`` articles for the question, read from Chroma by id (or from
    ``cache``, the chunks read for recent questions).

    ``dates``: only articles published in the range (a Chroma ``where`` on the chunks'
    ``published_day`` for the dense search; the BM25 index keeps each chunk's day too).
    ``newest_first``: the candidate articles are ranked by date, newest first (undated
    last), keeping the fused order among articles of the same day.
    """
    records: dict[str, DocumentRecord] = {}
    dense_hits = _dense_hits(store, lexical, query_vector, pool, doc_ids, dates, records)
    lexical_hits = []
    if lexical is not None:
        days = (dates.first_day, dates.last_day) if dates else None
        lexical_hits = lexical.top_chunks(terms, pool, doc_ids, days)
    rankings = [
        [_doc_of(cid) for cid, _ in dense_hits],
        [_doc_of(cid) for cid, _ in lexical_hits],
    ]
    best_docs = [doc for doc, _ in fuse(rankings)][:articles]
    days = lexical.days_of(best_docs) if lexical is not None else {}
    chunk_ids = lexical.chunks_of(best_docs) if lexical is not None else {}
    unknown = [d for d in best_docs if d not in chunk_ids]
    records |= store.records_for([d for d in unknown if d not in records])
    for doc in unknown:
        if doc in records:
            days[doc] = records[doc].published_day or 0
            chunk_ids[doc] = _chunk_ids(records[doc])
    docs = [d for d in best_docs if d in chunk_ids]
    if dates:
        docs = [d for d in docs if dates.holds_day(days[d])]
    if newest_first:
        docs.sort(key=lambda d: -days[d])
    read = _read_chunks(store, lexical, sorted(docs), chunk_ids, cache)
    present = {c.metadata["doc_id"] for c in read}
    docs = [d for d in docs if d in present]  # an article deleted since the BM25 index
    corpus = Corpus.of(read, lexical)
    rows = corpus.chunk_position
    return Candidates(
        corpus=corpus,
        dense=[rows[cid] for cid, _ in dense_hits if cid in rows],
        lexical=[rows[cid] for cid, _ in lexical_hits if cid in rows],
        article_rank={doc: rank for rank, doc in enumerate(docs)},
    )


def _read_chunks(
    store: IndexStore,
    lexical: LexicalIndex | None,
    docs: list[str],
    chunk_ids: dict[str, list[str]],
    cache: ChunkCache | None,
) -> list[ReadChunk]:
    """The articles' chunks in (article, position) order, from the cache when it holds all
    of an article's, else read from Chroma (and cached). Without a BM25 index there are no
    terms to keep, and nothing is cached."""
    cache = cache if lexical is not None else None
    wanted = [cid for doc in docs for cid in chunk_ids[doc]]
    cached = cache.get(wanted) if cache is not None else {}
    to_read = [doc for doc in docs if any(cid not in cached for cid in chunk_ids[doc])]
    fresh = _parse(_chunk_rows(store, to_read, chunk_ids), lexical) if to_read else []
    if cache is not None:
        cache.put(fresh)
    by_doc: dict[str, list[ReadChunk]] = {}
    for chunk in fresh:
        by_doc.setdefault(chunk.metadata["doc_id"], []).append(chunk)
    for doc in docs:
        if doc not in to_read:
            by_doc[doc] = [cached[cid] for cid in chunk_ids[doc]]
    return [chunk for doc in docs for chunk in by_doc.get(doc, [])]


def _chunk_rows(store: IndexStore, docs: list[str], chunk_ids: dict[str, list[str]]) -> Rows:
    """The chunks of the articles, in (article, position) order. Chunk ids come from the
    BM25 index, which can lag an article that was re-ingested since it was built: such an
    article's chunks are found through its record instead."""
    wanted = [cid for doc in docs for cid in chunk_ids[doc]]
    chunks = store.get_rows(store.chunks, wanted, with_embeddings=True)
    found = {_doc_of(cid) for cid in chunks.ids}
    missing = [doc for doc in docs if doc not in found]
    if not missing:
        return chunks
    records = store.records_for(missing)
    chunk_ids = chunk_ids | {doc: _chunk_ids(record) for doc, record in records.items()}
    wanted = [cid for doc in docs if doc in chunk_ids for cid in chunk_ids[doc]]
    return store.get_rows(store.chunks, wanted, with_embeddings=True)


def _chunk_ids(record: DocumentRecord) -> list[str]:
    key = row_key(record.doc_id, record.content_hash)
    return [f"{key}:c{i}" for i in range(record.chunks)]


def _dense_hits(
    store: IndexStore,
    lexical: LexicalIndex | None,
    vector: np.ndarray,
    pool: int,
    doc_ids: list[str] | None,
    dates: DateRange | None,
    records: dict[str, DocumentRecord],
) -> list[tuple[str, float]]:
    """The ``pool`` nearest chunks (in the date range). Chroma filters by metadata with a
    scan that costs more than the search, so a range is first tried on the nearest
    chunks of all: if ``pool`` of them are in range, they are exactly the ones a filtered
    search returns. Days come from the BM25 index, else from the articles' records
    (``records``: filled with those read)."""
    if dates is None:
        return store.nearest(store.chunks, vector, pool, doc_ids)
    nearest = store.nearest(store.chunks, vector, pool * DATE_OVERFETCH, doc_ids)
    docs = list(dict.fromkeys(_doc_of(c) for c, _ in nearest))
    days = lexical.days_of(docs) if lexical is not None else {}
    unknown = [d for d in docs if d not in days]
    if unknown:
        records |= store.records_for(unknown)
        days |= {d: records[d].published_day or 0 for d in unknown if d in records}
    in_range = [(c, s) for c, s in nearest if dates.holds_day(days.get(_doc_of(c), 0))]
    if len(in_range) >= pool:
        return in_range[:pool]
    return store.nearest(store.chunks, vector, pool, doc_ids, dates.where())


def row_key(doc_id: str, content_hash: str) -> str:
    """The prefix of the ids of an article version's rows: ``<doc>:<hash16>:c3``."""
    return f"{doc_id}:{content_hash[:16]}"


def _doc_of(row_id: str) -> str:
    return row_id.rsplit(":", 2)[0]


def _quotable(text: str, start: int, end: int) -> tuple[str, int, int]:
    """A stored sentence and its span in the source, without a feed's dateline or "Read
    more" (trimmed when read, so indexes built before it need no re-ingest)."""
    a, b = quotable(text)
    if (a, b) == (0, len(text)) or end - start != len(text):
        return text, start, end
    return text[a:b], start + a, start + b


def _parse(chunks: Rows, lexical: LexicalIndex | None) -> list[ReadChunk]:
    """Each chunk row with the sentences packed in its metadata, their vectors and terms."""
    sentences = [_sentences_of(chunks, row) for row in range(len(chunks.ids))]
    # One call for all the chunks' sentences: most of their words are looked up, not stemmed.
    texts = [text for rows, _ in sentences for text in rows.texts]
    terms = lexical.analyzer.terms_of(texts) if lexical is not None else [[] for _ in texts]
    out, start = [], 0
    for row, (chunk_id, meta) in enumerate(zip(chunks.ids, chunks.metadatas, strict=True)):
        end = start + len(sentences[row][0].texts)
        out.append(
            ReadChunk(
                row_id=chunk_id,
                text=chunks.texts[row],
                metadata={k: v for k, v in meta.items() if k not in _PACKED},
                embedding=chunks.embeddings[row],
                sentences=sentences[row][0],
                terms=terms[start:end],
                titled=sentences[row][1],
            )
        )
        start = end
    return out


def _sentences_of(chunks: Rows, row: int) -> tuple[Rows, np.ndarray]:
    """The sentences packed in a chunk row's metadata, with their vectors, and their
    vectors after the title."""
    chunk_id, meta = chunks.ids[row], chunks.metadatas[row]
    dim = chunks.embeddings.shape[1] if chunks.embeddings is not None else 0
    packed = json.loads(meta["sentences"])
    vectors = titled = np.empty((0, dim), dtype=np.float32)
    if packed:
        vectors = unpack_vectors(meta["sentence_vectors"], [entry[4] for entry in packed], dim)
        titled = (  # a row written before titled vectors (pipeline 4) reads as untitled
            unpack_vectors(meta["titled_vectors"], [entry[5] for entry in packed], dim)
            if "titled_vectors" in meta
            else vectors
        )
    ids, texts, metas = [], [], []
    for k, (stored, start, end, paragraph, *_) in enumerate(packed):
        text, start, end = _quotable(stored, start, end)
        position = int(meta["first_sentence"]) + k
        ids.append(f"{chunk_id}:s{position}")
        texts.append(text)
        metas.append(
            {
                "doc_id": meta["doc_id"],
                "title": meta["title"],
                "source": meta["source"],
                "published": meta.get("published"),
                "url": meta.get("url"),
                "publisher": meta.get("publisher"),
                "group": meta.get("duplicate_of") or meta["doc_id"],
                "start": start,
                "end": end,
                "position": position,
                "chunk": int(meta["position"]),
                "paragraph": paragraph,
            }
        )
    return Rows(ids, texts, metas, vectors), titled


def _joins_next(metadatas: list[dict]) -> np.ndarray:
    """Whether the next sentence row continues the same paragraph of the same article."""
    same = [
        (meta["doc_id"], meta["paragraph"]) == (nxt["doc_id"], nxt["paragraph"])
        for meta, nxt in zip(metadatas, metadatas[1:], strict=False)
    ]
    return np.asarray([*same, False], dtype=bool)


@dataclass(frozen=True)
class RankedPassage:
    row: int  # row in Corpus.chunks
    score: float  # fused score


def fuse(rankings: list[list[T]], k: int = RRF_K) -> list[tuple[T, float]]:
    """Reciprocal rank fusion of several best-first rankings (of rows, or of articles)."""
    scores: dict[T, float] = {}
    for ranking in rankings:
        seen = set()
        for rank, row in enumerate(ranking):
            if row not in seen:  # an item counts once per ranking, at its best rank
                seen.add(row)
                scores[row] = scores.get(row, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def rank_passages(
    candidates: Candidates, sentence_scores: np.ndarray, top_k: int
) -> list[RankedPassage]:
    """Fuse three rankings of the candidate chunks: dense, BM25, and best sentence inside."""
    corpus = candidates.corpus
    pool = max(3 * top_k, 10)
    dense, lexical = candidates.dense[:pool], candidates.lexical[:pool]
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
