"""Index files into Chroma: idempotent, crash-safe, pipelined, with a progress bar.

A document is re-embedded only when its text or the pipeline (cleaning, chunking,
embedding backend) changed. Articles are cleaned and chunked in a worker thread while
the model embeds the previous batch; each token is embedded once (a chunk's vector is
the mean of its sentences'). A batch's rows are written first and its article records
last, so an interrupted run leaves nothing half-visible; the next run completes it.
When something changed, the corpus version is bumped and the BM25 index brought up to
date (``rag.lexical``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import pickle
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.dates import day_number
from rag.documents import (
    PIPELINE_VERSION,
    Document,
    UnreadableFileError,
    document_from_record,
    record_hash,
)
from rag.duplicates import DuplicateIndex
from rag.errors import IndexUnavailableError, RagError
from rag.retrieve import row_key
from rag.settings import REPO_ROOT, Settings
from rag.sources import SkippedRecord, SourceRecord, read_sources, relative_name, scan_sources
from rag.store import DocumentRecord, IndexStore, Rows, pack_vectors, writing_index

if TYPE_CHECKING:
    from rag.components.embedding import EmbeddingModel

log = logging.getLogger(__name__)

# Sentences embedded (and rows written to Chroma) per batch: one write per batch.
BATCH_SENTENCES = 512
# Articles cleaned and chunked ahead of the one being embedded.
READ_AHEAD = 64


@dataclass
class IngestReport:
    files: int = 0  # articles read (a file, or a record of an export)
    added: int = 0  # chunks embedded and stored
    kept: int = 0  # chunks of unchanged documents
    removed: int = 0  # chunks deleted (changed or pruned documents)
    # (path, reason); a bad export record's reason starts with "line N:"
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    embedded_texts: int = 0  # sentences sent to the model
    embed_seconds: float = 0.0
    doc_ids: set[str] = field(default_factory=set, repr=False)  # every article read
    # files of other types in the folders read, by suffix (".pdf": 2): not read
    not_read: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        text = (
            f"{self.files} articles, {self.added} chunks added, {self.kept} kept, "
            f"{self.removed} removed in {self.seconds:.2f} s"
        )
        if self.skipped:
            text += f" ({len(self.skipped)} skipped)"
        return text


def fingerprint(settings: Settings) -> str:
    return (
        f"v{PIPELINE_VERSION}|{settings.embedding_backend}|"
        f"{settings.chunk_size}|{settings.chunk_overlap}"
    )


def collect_files(paths: list[Path]) -> list[Path]:
    """Files to index under ``paths`` (articles and exports). A missing path is an error."""
    return scan_sources(_existing(paths))[0]


def _existing(paths: list[Path]) -> list[Path]:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise RagError(f"no such file or directory: {', '.join(missing)}")
    return paths


@contextlib.contextmanager
def ingest_lock(settings: Settings) -> Iterator[None]:
    """One writer at a time per local index, and no other process reading it meanwhile."""
    if settings.chroma_url:
        yield
        return
    try:
        settings.index_dir.mkdir(parents=True, exist_ok=True)
        handle = (settings.index_dir / ".ingest.lock").open("w")
    except OSError as exc:
        raise IndexUnavailableError(
            f"cannot write to the index at {settings.index_dir}: {exc}"
        ) from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise IndexUnavailableError(
                f"the index at {settings.index_dir} is locked: another ingest is running"
            ) from exc
        with writing_index(settings.index_dir):
            yield


def ingest_paths(
    paths: list[Path],
    settings: Settings,
    *,
    prune: bool = False,
    progress: bool = True,
) -> IngestReport:
    started = time.perf_counter()
    # A missing path fails before anything is written; files of other types are counted.
    report = IngestReport(not_read=scan_sources(_existing(paths))[1])
    with ingest_lock(settings):
        store = IndexStore(settings)
        _Ingestor(store, settings, report, progress).run(paths, prune)
    report.seconds = time.perf_counter() - started
    return report


def remove_articles(doc_ids: list[str], settings: Settings) -> int:
    """Delete articles from the index (and so from every reader's BM25 index and the
    near-duplicate index)."""
    if not doc_ids:
        return 0
    with ingest_lock(settings):
        store = IndexStore(settings)
        for doc_id in doc_ids:
            store.delete_document(doc_id)
        _forget_duplicates(store, doc_ids)
        publish(store, settings, removed=True)
    return len(doc_ids)


def _forget_duplicates(store: IndexStore, doc_ids: list[str]) -> None:
    """Drop removed articles from the saved near-duplicate index, if there is one: else the
    next ingest finds it stale and rebuilds it from every article's text."""
    path = duplicates_path(store)
    index = _saved_duplicates(path)
    if index is None:
        return
    for doc_id in doc_ids:
        index.remove(doc_id)
    index.save(path)


def articles_from(records: dict[str, DocumentRecord], paths: list[Path]) -> list[str]:
    """Ids of the indexed articles read from these files or folders (a file may be an
    export: each of its records is an article)."""
    names = [relative_name(p, REPO_ROOT).rstrip("/") for p in paths]

    def read_from(record: DocumentRecord) -> bool:
        file = source_file(record.source, record.doc_id)
        return any(file == name or file.startswith(f"{name}/") for name in names)

    return sorted(d for d, r in records.items() if read_from(r))


def source_file(source: str, doc_id: str) -> str:
    """The file an article was read from: its source, or an export record's
    ``<file>#<doc_id>`` without the record's id."""
    return source.removesuffix(f"#{doc_id}")


def publish(store: IndexStore, settings: Settings, removed: bool, progress: bool = False) -> None:
    """Write the search index whole, bump the corpus version (readers reload), then bring
    the BM25 index up to date."""
    from rag.lexical import Analyzer, load_synonyms, sync_lexical

    store.save_search_index()
    version = store.write_version(fingerprint(settings), removed=removed)
    sync_lexical(store, Analyzer(load_synonyms(settings)), version=version, progress=progress)


class _Ingestor:
    def __init__(
        self, store: IndexStore, settings: Settings, report: IngestReport, progress: bool
    ) -> None:
        self.store = store
        self.settings = settings
        self.report = report
        self.progress = progress
        self.fingerprint = fingerprint(settings)
        if store.corpus_version() is None:
            # A new index has a version from the start: an interrupted first ingest
            # leaves its committed articles readable, like any later one.
            store.write_version(self.fingerprint)
        self.generation = store.next_generation()
        self._embedding: EmbeddingModel | None = None
        self.duplicates: DuplicateIndex | None = None
        self.removed_articles = False

    @property
    def embedding(self) -> EmbeddingModel:  # loaded only when something must be embedded
        if self._embedding is None:
            from rag.components.embedding import load_embedding

            self._embedding = load_embedding(self.settings)
        return self._embedding

    def run(self, paths: list[Path], prune: bool) -> None:
        records = self.store.document_records()
        if any(r.backend != self.settings.embedding_backend for r in records.values()):
            log.warning("embedding backend changed: rebuilding the whole index")
            self._drop_everything(records)
            records = {}
        todo, exports = self._changed_files(paths, records)
        self.duplicates = load_duplicates(self.store, records) if todo or prune else None
        changed = self._embed_and_store(todo, records)
        if prune:
            changed |= self._prune(records, self.report.doc_ids, exports)
        if changed and self.duplicates is not None:
            self.duplicates.save(duplicates_path(self.store))
        if changed:
            publish(self.store, self.settings, self.removed_articles, self.progress)
        elif records:  # an index written before its search index was saved whole
            self.store.save_search_index()

    def _skip(self, path: Path | str, reason: str) -> None:
        log.info("skipped %s: %s", path, reason)  # the report lists it; `rag ingest` shows it
        self.report.skipped.append((str(path), reason))

    def _changed_files(
        self, paths: list[Path], records: dict[str, DocumentRecord]
    ) -> tuple[list[SourceRecord], set[str]]:
        """The articles to (re-)embed and the exports read; the ids of every article read
        go to the report. Unchanged articles are counted as kept; bad files and records as
        skipped."""
        todo: list[SourceRecord] = []
        exports: set[str] = set()
        for item in read_sources(paths, REPO_ROOT):
            if isinstance(item, SkippedRecord):
                self._skip(item.source, item.reason)
                continue
            self.report.doc_ids.add(item.doc_id)
            if (file := source_file(item.source, item.doc_id)) != item.source:
                exports.add(file)
            self.report.files += 1
            record = records.get(item.doc_id)
            if record is not None and (record.content_hash, record.fingerprint) == (
                record_hash(item),
                self.fingerprint,
            ):
                self.report.kept += record.chunks
            else:
                todo.append(item)
        return todo, exports

    def _documents(self, todo: list[SourceRecord]) -> Iterator[Document | None]:
        """Clean and chunk in a worker thread while the model embeds (it releases the GIL)."""

        def load(item: SourceRecord) -> Document | None:
            try:
                return document_from_record(
                    item, self.settings.chunk_size, self.settings.chunk_overlap
                )
            except UnreadableFileError as exc:
                self.report.files -= 1
                self._skip(item.source, str(exc))
                return None

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-read") as pool:
            pending: deque[Future[Document | None]] = deque()
            for item in todo:
                pending.append(pool.submit(load, item))
                if len(pending) >= READ_AHEAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _embed_and_store(
        self, todo: list[SourceRecord], records: dict[str, DocumentRecord]
    ) -> bool:
        if not todo:
            return False
        from tqdm import tqdm

        bar = tqdm(
            total=len(todo),
            unit="article",
            desc="indexing",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        batch: list[Document] = []
        with bar:
            for doc in self._documents(todo):
                if doc is not None:
                    batch.append(doc)
                if sum(len(d.sentences) for d in batch) >= BATCH_SENTENCES:
                    self._store_batch(batch, records)
                    bar.update(len(batch))
                    batch = []
            self._store_batch(batch, records)
            bar.update(len(batch))
        return self.report.added > 0 or self.report.removed > 0

    def _store_batch(self, docs: list[Document], records: dict[str, DocumentRecord]) -> None:
        """Embed a batch of articles, write their rows in one go, then commit them."""
        if not docs:
            return
        started = time.perf_counter()
        sentences = [s.text for d in docs for s, _ in d.sentences]
        titles = [d.title_to_embed for d in docs if d.title_to_embed]
        titled = [t for d in docs for t in d.titled_sentences()]
        in_context = [n for n, t in enumerate(titled) if t is not None]
        texts = sentences + titles + [titled[n] for n in in_context]
        vectors = self.embedding.embed_documents(texts)
        sentence_vectors = vectors[: len(sentences)]
        title_vectors = iter(vectors[len(sentences) : len(sentences) + len(titles)])
        titled_vectors = sentence_vectors.copy()  # the title adds nothing to a headline
        titled_vectors[in_context] = vectors[len(sentences) + len(titles) :]
        self.report.embed_seconds += time.perf_counter() - started
        self.report.embedded_texts += len(texts)

        for doc in docs:  # before the rows: chunks carry the duplicate group
            doc.duplicate_of = self._duplicate_of(doc, records)
        chunks, at = [], 0
        for doc in docs:
            title_vector = next(title_vectors) if doc.title_to_embed else None
            inside = slice(at, at + len(doc.sentences))
            chunks.append(
                chunk_rows(doc, sentence_vectors[inside], titled_vectors[inside], title_vector)
            )
            at += len(doc.sentences)
        self.store.add_rows(self.store.chunks, _concat(chunks))
        self.store.commit_documents([self._record(doc) for doc in docs], [d.text for d in docs])
        for doc in docs:
            if doc.doc_id in records:  # rows of the version this one replaces
                self.report.removed += self.store.delete_stale_rows(doc.doc_id, doc.content_hash)
            self.report.added += len(doc.chunks)

    def _record(self, doc: Document) -> DocumentRecord:
        return DocumentRecord(
            doc_id=doc.doc_id,
            title=doc.title,
            source=doc.source,
            content_hash=doc.content_hash,
            fingerprint=self.fingerprint,
            chunks=len(doc.chunks),
            sentences=len(doc.sentences),
            chars=len(doc.clean.text),
            generation=self.generation,
            published=doc.published,
            url=doc.url,
            publisher=doc.publisher,
            duplicate_of=doc.duplicate_of,
            suffix=doc.suffix,
            body_start=doc.body_start,
        )

    def _duplicate_of(self, doc: Document, records: dict[str, DocumentRecord]) -> str | None:
        """The earliest-indexed near duplicate of ``doc`` (the root of its group), if any;
        ``doc`` is added to the duplicate index."""
        index = self.duplicates
        assert index is not None
        matches = [d for d in index.query(doc.clean.text) if d != doc.doc_id]
        index.add(doc.doc_id, doc.clean.text)
        if not matches:
            return None
        known = self.store.records_for(matches)
        roots = [(known[d].duplicate_of or d) if d in known else d for d in matches]
        roots = sorted({r for r in roots if r != doc.doc_id})
        if not roots:
            return None
        generation = {d: r.generation for d, r in self.store.records_for(roots).items()}
        # Copies in this batch are not committed yet: they come after committed ones.
        return min(roots, key=lambda r: (generation.get(r, self.generation + 1), r))

    def _prune(self, records: dict[str, DocumentRecord], seen: set[str], exports: set[str]) -> bool:
        """Remove articles whose file is gone, and records no longer in an export read."""
        pruned = False
        for doc_id, record in records.items():
            if doc_id in seen:
                continue
            name = source_file(record.source, doc_id)
            path = Path(name)
            path = path if path.is_absolute() else REPO_ROOT / path
            if not path.exists() or name in exports:
                self.store.delete_document(doc_id)
                if self.duplicates is not None:
                    self.duplicates.remove(doc_id)
                self.report.removed += record.chunks
                self.removed_articles = pruned = True
        return pruned

    def _drop_everything(self, records: dict[str, DocumentRecord]) -> None:
        for doc_id, record in records.items():
            self.store.delete_document(doc_id)
            self.report.removed += record.chunks
        self.removed_articles = True


def duplicates_path(store: IndexStore) -> Path:
    """The near-duplicate index lives beside the BM25 index (derived, rebuildable)."""
    from rag.lexical import lexical_dir

    return lexical_dir(store) / "duplicates.pkl"


def load_duplicates(store: IndexStore, records: dict[str, DocumentRecord]) -> DuplicateIndex:
    """The saved index when it covers exactly the committed articles; else rebuilt from the
    texts stored in Chroma (a replica, a crash between commit and save, an old index)."""
    index = _saved_duplicates(duplicates_path(store))
    if index is not None and set(index.doc_ids()) == set(records):
        return index
    return rebuild_duplicates(store)


def _saved_duplicates(path: Path) -> DuplicateIndex | None:
    """The saved near-duplicate index, or None when there is none or it cannot be read."""
    try:
        return DuplicateIndex.load(path)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        if path.exists():
            log.warning("duplicate index at %s unreadable (%s): rebuilding it", path, exc)
        return None


def rebuild_duplicates(store: IndexStore) -> DuplicateIndex:
    """A duplicate index of every committed article, from the texts stored in Chroma."""
    from rag.sources import SourceRecord, clean_record

    index = DuplicateIndex()
    for rows in store.scan(store.documents, include=["documents", "metadatas"]):
        for doc_id, text, meta in zip(rows.ids, rows.texts, rows.metadatas, strict=True):
            record = SourceRecord(
                doc_id=doc_id,
                text=text,
                source=meta["source"],
                suffix=meta.get("suffix", ".txt"),
                title=None,
                published=None,
                url=None,
                publisher=None,
                path=Path(meta["source"]),
                body_start=int(meta.get("body_start", 0)),
            )
            index.add(doc_id, clean_record(record).text)
    return index


def _base_metadata(doc: Document) -> dict[str, str | int]:
    """What every chunk row carries. Chroma metadata cannot hold None: unknown values
    are left out; ``published_day`` (YYYYMMDD) is what date filters compare."""
    meta: dict[str, str | int] = {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "source": doc.source,
        "content_hash": doc.content_hash,
    }
    for key in ("published", "url", "publisher", "duplicate_of"):
        if value := getattr(doc, key):
            meta[key] = value
    if (day := day_number(doc.published)) is not None:
        meta["published_day"] = day
    return meta


def chunk_vectors(
    doc: Document, sentence_vectors: np.ndarray, title_vector: np.ndarray | None = None
) -> np.ndarray:
    """A chunk's vector: the normalised mean of the vectors of the sentences it holds.

    Each token is embedded once (as part of its sentence) instead of twice; a chunk
    without a whole sentence (a very long one split across chunks) takes the vector of
    the sentence it starts in. The first chunk counts ``title_vector`` (a title the text
    lacks, ``Document.title_to_embed``) as one more of its sentences.
    """
    dim = sentence_vectors.shape[1] if sentence_vectors.size else 0
    out = np.zeros((len(doc.chunks), dim), dtype=np.float32)
    for i, chunk in enumerate(doc.chunks):
        inside = [n for n, (s, _) in enumerate(doc.sentences) if chunk.start <= s.start < chunk.end]
        if not inside:
            inside = [max((n for n, (_, c) in enumerate(doc.sentences) if c <= i), default=0)]
        vectors = sentence_vectors[inside]
        if i == 0 and title_vector is not None:
            vectors = np.vstack([vectors, title_vector])
        mean = vectors.mean(axis=0)
        out[i] = mean / (np.linalg.norm(mean) or 1.0)
    return out


def chunk_rows(
    doc: Document,
    sentence_vectors: np.ndarray,
    titled_vectors: np.ndarray,
    title_vector: np.ndarray | None = None,
) -> Rows:
    """A document's chunk rows; each carries the sentences that start in it, with their
    vectors and their vectors after the title (``Document.titled_sentences``)."""
    key = row_key(doc.doc_id, doc.content_hash)
    base = _base_metadata(doc)
    metadatas = []
    for i, c in enumerate(doc.chunks):
        inside = [n for n, (_, chunk) in enumerate(doc.sentences) if chunk == i]
        packed, scales = pack_vectors(sentence_vectors[inside])
        titled, titled_scales = pack_vectors(titled_vectors[inside])
        sentences = [
            [doc.sentences[n][0].text, doc.sentences[n][0].start, doc.sentences[n][0].end]
            + [doc.paragraphs[n], scale, titled_scale]
            for n, scale, titled_scale in zip(inside, scales, titled_scales, strict=True)
        ]
        metadatas.append(
            {
                **base,
                "start": c.start,
                "end": c.end,
                "position": i,
                "first_sentence": inside[0] if inside else -1,
                "sentences": json.dumps(sentences, ensure_ascii=False),
                "sentence_vectors": packed,
                "titled_vectors": titled,
            }
        )
    return Rows(
        ids=[f"{key}:c{i}" for i in range(len(doc.chunks))],
        texts=[c.text for c in doc.chunks],
        metadatas=metadatas,
        embeddings=chunk_vectors(doc, sentence_vectors, title_vector),
    )


def _concat(parts: list[Rows]) -> Rows:
    return Rows(
        ids=[i for p in parts for i in p.ids],
        texts=[t for p in parts for t in p.texts],
        metadatas=[m for p in parts for m in p.metadatas],
        embeddings=np.concatenate([p.embeddings for p in parts if p.embeddings is not None]),
    )
