"""``ask()``: the one path from a question to a cited answer.

The CLI, the chat UI, the HTTP API and the eval runner all call ``Engine.ask``. An
engine loads the embedding model and opens the stores once; it is safe to share
between threads.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import date

import numpy as np

from rag.components.embedding import EmbeddingModel, embed_question, load_embedding
from rag.components.reader import Reader
from rag.compose import best_per_side, choose, compose, keyword_first, refusal_text
from rag.dates import DateRange, asks_for_latest, asks_how_it_changed
from rag.documents import PIPELINE_VERSION
from rag.errors import BadQuestionError, EmptyIndexError, IndexUnavailableError, RagError
from rag.features import SentenceTable, sentence_features
from rag.lexical import Analyzer, LexicalIndex, load_synonyms, open_lexical, sync_lexical
from rag.models import Answer, Passage, SourceDocument
from rag.question import Question, sides
from rag.retrieve import Candidates, ChunkCache, Corpus, gather_candidates, rank_passages
from rag.scorer import FittedModel, judge, load_model, sigmoid
from rag.settings import Settings, get_settings
from rag.store import CorpusVersion, IndexStore, all_of

log = logging.getLogger(__name__)
# Near-duplicate groups an engine keeps (a few MB); emptied when it grows past this.
COPIES_CACHE_GROUPS = 100_000


class Engine:
    """Opens the stores and loads the model; every question then reads only what it needs.

    Start-up does not depend on the size of the corpus: the BM25 index is memory-mapped
    and Chroma is queried per question. A running engine checks the corpus version every
    ``reload_seconds`` and brings its BM25 index up to date in the background, so replicas
    sharing one Chroma server answer from newly ingested articles without a restart.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        auto_ingest: bool = True,
        embedding: EmbeddingModel | None = None,
        model: FittedModel | None = None,
        wait_for_index: bool = True,
    ) -> None:
        """``model``: the fitted scorer (default: ``settings.scorer_file``).

        ``wait_for_index``: bring a stale or missing BM25 index up to date before
        returning (a one-shot ``rag ask``); otherwise (a server) start with what is on disk
        and update it in the background, answering from dense retrieval alone meanwhile.
        """
        self.settings = settings or get_settings()
        self.store = IndexStore(self.settings)
        version = self._version()
        if version is None and auto_ingest and self._is_empty():
            self._ingest_seeds()
            version = self._version()
        if version is None:
            if not self._is_empty():
                raise IndexUnavailableError(
                    "the index was built by an older version of this tool: "
                    "run `rag ingest` to update it"
                )
            raise EmptyIndexError(
                "the index is empty: run `rag ingest PATH` to index some articles"
            )
        self._check_version(version)
        self.analyzer = self.analyzer_for(self.settings)
        self.version = version
        self.lexical = open_lexical(self.store, self.analyzer)  # up to date, stale or None
        self.chunk_cache = ChunkCache(self.settings.chunk_cache)
        # Group id -> the articles of a near-duplicate group; emptied when the index changes.
        self._copies_cache: dict[str, list[str]] = {}
        self.embedding = embedding or load_embedding(self.settings)
        self.model = model or load_model(self.settings.scorer_file)
        self.reader = self._load_reader()
        self._reloading = threading.Lock()
        self.refresh(wait=wait_for_index)

    def _load_reader(self) -> Reader | None:
        """The reader, when the fitted model weighs it; a server loads its graph in the
        background meanwhile."""
        if self.model.reader is None:
            return None
        reader = Reader(self.settings, self.embedding)
        # Not a daemon, as the encoder's load (``OnnxE5Embedding``): exit waits for it.
        threading.Thread(target=self._warm_up, args=(reader,), name="reader-load").start()
        return reader

    @staticmethod
    def _warm_up(reader: Reader) -> None:
        # A failure here shows again, as a clear error, on the first question that needs it.
        try:
            reader.warm_up()
        except Exception as error:  # noqa: BLE001 - a background thread has no caller to raise to
            log.warning("the reader could not be loaded in the background: %s", error)

    @staticmethod
    def analyzer_for(settings: Settings) -> Analyzer:
        return Analyzer(load_synonyms(settings))

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: object) -> Engine:
        return cls(settings, **kwargs)  # type: ignore[arg-type]

    def _version(self) -> CorpusVersion | None:
        try:
            return self.store.corpus_version()
        except Exception as exc:  # a corrupted collection surfaces here
            raise IndexUnavailableError(
                f"cannot read the index ({exc}); run `rag ingest` to rebuild it"
            ) from exc

    def _is_empty(self) -> bool:
        try:
            return self.store.documents.count() == 0
        except Exception as exc:
            raise IndexUnavailableError(
                f"cannot read the index ({exc}); run `rag ingest` to rebuild it"
            ) from exc

    def _ingest_seeds(self) -> None:
        from rag.ingest import ingest_paths

        seeds = self.settings.seeds_dir
        if not seeds.is_dir():
            return
        where = self.settings.chroma_url or self.settings.index_dir
        log.warning(
            "the index at %s is empty: indexing the sample articles in %s first "
            "(to ask your own archive, `rag ingest PATH` into it, or point RAG_INDEX_DIR "
            "at the index you built)",
            where,
            seeds,
        )
        ingest_paths([seeds], self.settings, progress=False)

    def _check_version(self, version: CorpusVersion) -> None:
        if version.backend != self.settings.embedding_backend:
            raise IndexUnavailableError(
                f"the index was built with the {version.backend} embedding backend, "
                f"not {self.settings.embedding_backend}: run `rag ingest` to rebuild it"
            )
        if not version.fingerprint.startswith(f"v{PIPELINE_VERSION}|"):
            raise IndexUnavailableError(
                "the index was built by an older version of this tool: "
                "run `rag ingest` to update it"
            )

    def _sync(self, version: CorpusVersion) -> LexicalIndex | None:
        try:
            return sync_lexical(self.store, self.analyzer, version=version)
        except OSError as exc:
            raise IndexUnavailableError(f"cannot write the lexical index: {exc}") from exc

    def refresh(self, wait: bool = False) -> None:
        """Check the corpus version; bring the BM25 index up to date if it moved.

        Called before each question at most every ``reload_seconds``. The update runs in
        a background thread unless ``wait``: questions meanwhile use the previous index.
        """
        self._checked_at = time.monotonic()
        version = self._version()
        lexical = self.lexical
        if version is None or (
            version.generation == self.version.generation
            and lexical is not None
            and lexical.generation == version.generation
        ):
            return
        if not self._reloading.acquire(blocking=wait):
            return  # an update is already running

        def update() -> None:
            try:
                self._check_version(version)
                self.lexical = self._sync(version)
                self.version = version
                self.chunk_cache.clear()
                self._copies_cache = {}
                log.info("index generation %d loaded", version.generation)
            except RagError as exc:
                log.warning("index changed but cannot be loaded: %s", exc)
            finally:
                self._reloading.release()

        if wait:
            update()
        else:
            threading.Thread(target=update, name="rag-reload", daemon=True).start()

    def _maybe_refresh(self) -> None:
        every = self.settings.reload_seconds
        if every and time.monotonic() - self._checked_at >= every:
            try:
                self.refresh()
            except RagError as exc:
                log.warning("cannot check the index for changes: %s", exc)

    # --- asking ---------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        doc_ids: list[str] | None = None,
        history: list[dict] | None = None,
        since: str | date | None = None,
        until: str | date | None = None,
    ) -> Answer:
        """``since``/``until``: ISO dates (inclusive); with either, only articles published
        in the range are searched (articles without a date are left out)."""
        started = time.perf_counter()
        question = self._validate(question)
        doc_ids = self._validate_doc_ids(doc_ids)
        dates = DateRange.of(since, until)
        top_k = top_k or self.settings.top_k
        if not 1 <= top_k <= 50:
            raise BadQuestionError("top_k must be between 1 and 50")
        self._maybe_refresh()
        query = question
        if history:
            from rag.conversation import standalone_question

            query = standalone_question(question, history)

        # read the question → retrieve candidates → score sentences → compose or refuse
        reading = Question.read(query)
        latest, changed = asks_for_latest(query), asks_how_it_changed(query)
        evidence = self._evidence(reading, top_k, doc_ids, dates, newest_first=latest)
        retrieved = time.perf_counter()
        if evidence is None or evidence.below(self.refusal_threshold):
            text, citations = refusal_text(), []
        else:
            rows = choose(
                evidence.corpus,
                evidence.probs,
                self.model.compose,
                self.settings.max_quotes,
                sides=evidence.sides,
                latest=latest,
                changed=changed,
            )
            docs = list(dict.fromkeys(str(evidence.corpus.sentence_doc[r]) for r in rows))
            text, citations = compose(
                evidence.corpus, rows, by_date=changed, copies=self._copies(evidence.corpus, docs)
            )
        done = time.perf_counter()
        return Answer(
            question=question,
            answer=text,
            refused=not citations,
            citations=citations,
            passages=[] if evidence is None else evidence.passages,
            timings_ms={
                "retrieve": (retrieved - started) * 1000,
                "answer": (done - retrieved) * 1000,
                "total": (done - started) * 1000,
            },
            standalone_question=query if query != question else None,
            confidence=None if evidence is None else round(evidence.answerable, 4),
            weak_evidence=evidence is not None
            and bool(citations)
            and evidence.below(self.settings.weak_evidence_below),
        )

    def _copies(self, corpus: Corpus, docs: list[str]) -> dict[str, list[str]]:
        """Doc id -> the other articles of its near-duplicate group (read from Chroma once
        per group until the index changes)."""
        group_of = {
            str(d): str(g) for d, g in zip(corpus.sentence_doc, corpus.sentence_group, strict=True)
        }
        known = self._copies_cache
        missing = sorted({group_of[d] for d in docs} - known.keys())
        if missing:
            if len(known) > COPIES_CACHE_GROUPS:
                known = self._copies_cache = {}
            known.update(self.store.copies_of(missing))
        return {d: sorted(set(known.get(group_of[d], [])) - {d}) for d in docs}

    def candidates(
        self,
        reading: Question,
        top_k: int | None = None,
        doc_ids: list[str] | None = None,
        dates: DateRange | None = None,
        newest_first: bool = False,
    ) -> tuple[Candidates, SentenceTable] | None:
        """Retrieve candidates for a question and describe each sentence (the fit reads this)."""
        vectors = embed_question(self.embedding, reading.text)
        terms = self.analyzer.terms(reading.text)
        candidates = gather_candidates(
            self.store,
            self.lexical,
            vectors.plain,
            terms,
            pool=max(3 * (top_k or self.settings.top_k), self.settings.candidate_pool),
            articles=self.settings.candidate_articles,
            doc_ids=doc_ids,
            dates=dates,
            newest_first=newest_first,
            cache=self.chunk_cache if self.settings.chunk_cache else None,
        )
        if not candidates.corpus.sentences.ids:
            return None
        return candidates, sentence_features(candidates, reading, vectors, terms)

    def _evidence(
        self,
        reading: Question,
        top_k: int,
        doc_ids: list[str] | None,
        dates: DateRange | None = None,
        newest_first: bool = False,
    ) -> Evidence | None:
        """Candidates for the question, each sentence's probability of answering it."""
        found = self.candidates(reading, top_k, doc_ids, dates, newest_first)
        if found is None:
            return None
        candidates, table = found
        if not table.terms:
            # Only question and stop words ("Why was it?"): nothing to look for, and the
            # nearest sentences by meaning alone would answer at random.
            return None
        corpus = candidates.corpus
        logits, answerable = self._judge(reading.text, table, corpus)
        side_tables = self.side_tables(candidates, reading)
        side_answerable = [self._judge(side, t, corpus)[1] for side, t in side_tables]
        probs = sigmoid(logits)
        terms = table.terms if reading.keywords else []
        keyword_row = keyword_first(corpus, terms, logits, probs)
        return Evidence(
            corpus=corpus,
            probs=probs,
            # A question of two parts is answered when the archive answers either part.
            answerable=max([answerable, *side_answerable]),
            passages=[
                _passage(corpus, p.row, p.score) for p in rank_passages(candidates, logits, top_k)
            ],
            sides=best_per_side(self.model.sentence, [t.values for _, t in side_tables]),
            keyword_row=keyword_row,
        )

    def _judge(
        self, question: str, table: SentenceTable, corpus: Corpus
    ) -> tuple[np.ndarray, float]:
        """Each candidate sentence's logit of answering ``question`` (the scorer's, and the
        reader's of the scorer's best), and the probability that the best answers it."""
        model, logits = self.model, self.model.sentence.logits(table.values)
        read = None
        if self.reader is not None:
            candidates = model.reader.candidates
            read = self.reader.read_best(question, corpus.sentences, logits, candidates)
        docs = corpus.sentence_doc
        return judge(logits, table, docs, model.refusal, model.reader, read)

    def side_tables(
        self, candidates: Candidates, reading: Question
    ) -> list[tuple[str, SentenceTable]]:
        """For "A's and B's …" and two-part questions, each side asked on its own and the
        candidates' features for it (``rag.compose.best_per_side``); [] for others."""
        tables = []
        for side in sides(reading.text):
            vectors = embed_question(self.embedding, side)
            terms = self.analyzer.terms(side)
            tables.append(
                (side, sentence_features(candidates, Question.read(side), vectors, terms))
            )
        return tables

    @property
    def refusal_threshold(self) -> float:
        if self.settings.refusal_threshold is not None:
            return self.settings.refusal_threshold
        return self.model.refusal_threshold

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
        unknown = sorted(set(doc_ids) - set(self.store.records_for(list(set(doc_ids)))))
        if unknown:
            raise BadQuestionError(
                f"unknown article id(s): {', '.join(unknown)}; `rag sources` lists them"
            )
        return list(dict.fromkeys(doc_ids))

    # --- articles -------------------------------------------------------------------------

    def sources(
        self,
        limit: int | None = None,
        *,
        since: str | date | None = None,
        until: str | date | None = None,
        publisher: str | None = None,
    ) -> list[SourceDocument]:
        """The indexed articles (a paged scan of the article records), or the first ``limit``.

        ``since``/``until`` (ISO dates, inclusive) and ``publisher`` (exact) filter in
        Chroma; with a date range, articles without a date are left out.
        """
        dates = DateRange.of(since, until)
        by_publisher = {"publisher": {"$eq": publisher}} if publisher else None
        where = all_of([dates.where() if dates else None, by_publisher])
        records = self.store.document_records(limit, where=where)
        return [r.as_source() for _, r in sorted(records.items())]

    def document_text(self, doc_id: str) -> tuple[SourceDocument, str]:
        """An indexed article and the text its citation offsets index into, from the index
        (a replica has no files; a file changed since indexing does not matter)."""
        found = self.store.document_text(doc_id)
        if found is None:
            raise BadQuestionError(f"unknown article id: {doc_id}")
        record, text = found
        return record.as_source(), text


def _passage(corpus: Corpus, row: int, score: float) -> Passage:
    meta = corpus.chunks.metadatas[row]
    return Passage(
        doc_id=meta["doc_id"],
        title=meta["title"],
        text=corpus.chunks.texts[row],
        score=round(float(score), 6),
        start=int(meta["start"]),
        end=int(meta["end"]),
        published=meta.get("published"),
        url=meta.get("url"),
        publisher=meta.get("publisher"),
    )


@dataclass(frozen=True)
class Evidence:
    corpus: Corpus
    probs: np.ndarray  # per candidate sentence: probability that it answers
    answerable: float  # probability that the evidence answers the question
    passages: list[Passage]
    sides: list[int]  # best sentence of each side of an "A's and B's" or two-part question
    keyword_row: int | None = None  # a keyword search: the best sentence holding every keyword

    def below(self, level: float) -> bool:
        """Less likely than ``level`` to answer: refused under the refusal threshold, marked
        as weak evidence under ``weak_evidence_below``. A keyword search whose words a
        sentence holds never is: the archive mentions what was searched for."""
        return self.answerable < level and self.keyword_row is None


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine of a server, built on first use.

    It starts with the BM25 index on disk and brings it up to date in the background:
    a replica with an empty cache serves at once, from dense retrieval until then.
    """
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = Engine(settings, wait_for_index=False)
        return _engine


def ask(question: str, **kwargs: object) -> Answer:
    return get_engine().ask(question, **kwargs)  # type: ignore[arg-type]
