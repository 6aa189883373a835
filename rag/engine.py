"""``ask()``: the one path from a question to a cited answer.

The CLI, the chat UI, the HTTP API and the eval runner all call ``Engine.ask``. An
engine loads the embedding model and the committed index once; after that it is
read-only and safe to share between threads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
import unicodedata
from pathlib import Path

import numpy as np

from rag import answer as answerer
from rag.components.embedding import EmbeddingModel, load_embedding
from rag.documents import PIPELINE_VERSION
from rag.errors import BadQuestionError, EmptyIndexError, IndexUnavailableError, RagError
from rag.models import Answer, Passage, SourceDocument
from rag.questions import QuestionCues, split_question
from rag.refusal import refusal_text
from rag.retrieve import Corpus, retrieve_passages
from rag.settings import REPO_ROOT, Settings, get_settings
from rag.store import DocumentRecord, IndexStore

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        auto_ingest: bool = True,
        embedding: EmbeddingModel | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = IndexStore(self.settings)
        self.records = self._records()
        if not self.records and auto_ingest:
            self._ingest_seeds()
            self.records = self._records()
        if not self.records:
            raise EmptyIndexError(
                "the index is empty: run `rag ingest PATH` to index some articles"
            )
        self._check_backend()
        self.embedding = embedding or load_embedding(self.settings)
        committed = {doc_id: r.content_hash for doc_id, r in self.records.items()}
        self.corpus = Corpus.load(self.store, committed)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: object) -> Engine:
        return cls(settings, **kwargs)  # type: ignore[arg-type]

    def _records(self) -> dict[str, DocumentRecord]:
        try:
            return self.store.document_records()
        except Exception as exc:  # a corrupted collection surfaces here
            raise IndexUnavailableError(
                f"cannot read the index ({exc}); run `rag ingest` to rebuild it"
            ) from exc

    def _ingest_seeds(self) -> None:
        from rag.ingest import ingest_paths

        seeds = self.settings.seeds_dir
        if not seeds.is_dir():
            return
        log.warning("the index is empty: indexing %s first", seeds)
        ingest_paths([seeds], self.settings, progress=False)

    def _check_backend(self) -> None:
        backends = {r.backend for r in self.records.values()}
        if backends != {self.settings.embedding_backend}:
            raise IndexUnavailableError(
                f"the index was built with the {', '.join(sorted(backends))} embedding backend, "
                f"not {self.settings.embedding_backend}: run `rag ingest` to rebuild it"
            )
        if any(
            not r.fingerprint.startswith(f"v{PIPELINE_VERSION}|") for r in self.records.values()
        ):
            raise IndexUnavailableError(
                "the index was built by an older version of this tool: "
                "run `rag ingest` to update it"
            )

    # --- asking ---------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        doc_ids: list[str] | None = None,
        history: list[dict] | None = None,
    ) -> Answer:
        started = time.perf_counter()
        question = self._validate(question)
        doc_ids = self._validate_doc_ids(doc_ids)
        top_k = top_k or self.settings.top_k
        if not 1 <= top_k <= 50:
            raise BadQuestionError("top_k must be between 1 and 50")
        query = question
        if history:
            from rag.conversation import standalone_question

            query = standalone_question(question, history)

        vector = self.embedding.embed_query(query)
        terms = self.corpus.chunk_lexical.terms(query)
        allowed = (
            np.isin(self.corpus.sentence_doc, doc_ids)
            if doc_ids
            else np.ones(len(self.corpus.sentence_doc), dtype=bool)
        )
        cues = QuestionCues.read(query)
        score, dense = answerer.score_sentences(self.corpus, vector, terms, allowed, cues)
        ranked = retrieve_passages(self.store, self.corpus, vector, terms, top_k, doc_ids, score)
        # Scoring the sides of a "Kyiv's and Moscow's" question embeds each: retrieval work.
        sub_scores = self._subquestion_scores(query, allowed, cues)
        retrieved = time.perf_counter()

        known = self.corpus.sentence_lexical.known_terms(terms)
        coverage = len(known) / len(terms) if terms else 0.0
        evidence = answerer.select_evidence(
            self.corpus, score, dense, coverage, self.settings.max_quotes, cues
        )
        if sub_scores and evidence.rows:
            rows = answerer.with_subquestion_evidence(self.corpus, evidence.rows, sub_scores)
            evidence = dataclasses.replace(evidence, rows=rows)
        refused = not evidence.rows or evidence.confidence() < self.settings.refusal_threshold
        if refused:
            text, citations = refusal_text(), []
        else:
            text, citations = answerer.compose(self.corpus, evidence.rows)
        done = time.perf_counter()
        return Answer(
            question=question,
            answer=text,
            refused=refused,
            citations=citations,
            passages=[self._passage(p.row, p.score) for p in ranked],
            timings_ms={
                "retrieve": (retrieved - started) * 1000,
                "answer": (done - retrieved) * 1000,
                "total": (done - started) * 1000,
            },
            standalone_question=query if query != question else None,
        )

    def _subquestion_scores(
        self, query: str, allowed: np.ndarray, cues: QuestionCues
    ) -> list[np.ndarray]:
        """Sentence scores for each side of a "Kyiv's and Moscow's" question, if any."""
        sub_scores = []
        for sub in split_question(query):
            vector = self.embedding.embed_query(sub)
            sub_terms = self.corpus.chunk_lexical.terms(sub)
            score, _ = answerer.score_sentences(self.corpus, vector, sub_terms, allowed, cues)
            sub_scores.append(score)
        return sub_scores

    def _validate(self, question: object) -> str:
        if not isinstance(question, str):
            raise BadQuestionError("the question must be text")
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise BadQuestionError(
                f"the question is {len(question):,} characters long; the limit is {limit:,}"
            )
        # Control characters (NUL, escape sequences) carry no meaning in a question.
        cleaned = "".join(
            " " if unicodedata.category(ch).startswith("C") else ch for ch in question
        )
        cleaned = " ".join(cleaned.split())
        if not cleaned:
            raise BadQuestionError("the question is empty")
        return cleaned

    def _validate_doc_ids(self, doc_ids: list[str] | None) -> list[str] | None:
        if not doc_ids:
            return None
        unknown = sorted(set(doc_ids) - set(self.records))
        if unknown:
            raise BadQuestionError(
                f"unknown article id(s): {', '.join(unknown)}; `rag sources` lists them"
            )
        return list(dict.fromkeys(doc_ids))

    def _passage(self, row: int, score: float) -> Passage:
        meta = self.corpus.chunks.metadatas[row]
        return Passage(
            doc_id=meta["doc_id"],
            title=meta["title"],
            text=self.corpus.chunks.texts[row],
            score=round(float(score), 6),
            start=int(meta["start"]),
            end=int(meta["end"]),
        )

    # --- articles -------------------------------------------------------------------------

    def sources(self) -> list[SourceDocument]:
        return [r.as_source() for _, r in sorted(self.records.items())]

    def document_text(self, doc_id: str) -> tuple[SourceDocument, str]:
        """An indexed article and its file's text (the text citation offsets index into)."""
        record = self.records.get(doc_id)
        if record is None:
            raise BadQuestionError(f"unknown article id: {doc_id}")
        path = Path(record.source)
        path = path if path.is_absolute() else REPO_ROOT / path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RagError(f"cannot read {record.source}: {exc}; run `rag ingest`") from exc
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != record.content_hash:
            # Citation offsets point into the indexed version of the file.
            raise RagError(f"{record.source} changed since it was indexed: run `rag ingest`")
        return record.as_source(), text


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine, built on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = Engine(settings)
        return _engine


def ask(question: str, **kwargs: object) -> Answer:
    return get_engine().ask(question, **kwargs)  # type: ignore[arg-type]
