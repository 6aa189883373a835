"""Index files into Chroma: idempotent, crash-safe, with a progress bar.

A document is re-embedded only when its text or the pipeline (cleaning, chunking,
embedding backend) changed. Its rows are written first and its document record last,
so an interrupted run leaves nothing half-visible; the next run completes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.documents import (
    PIPELINE_VERSION,
    SUPPORTED_SUFFIXES,
    Document,
    UnreadableFileError,
    load_document,
    read_source,
)
from rag.errors import IndexUnavailableError, RagError
from rag.settings import REPO_ROOT, Settings
from rag.store import DocumentRecord, IndexStore, Rows

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    files: int = 0
    added: int = 0  # chunks embedded and stored
    kept: int = 0  # chunks of unchanged documents
    removed: int = 0  # chunks deleted (changed or pruned documents)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0
    embedded_texts: int = 0  # chunks + sentences sent to the model
    embed_seconds: float = 0.0

    def summary(self) -> str:
        text = (
            f"{self.files} files, {self.added} chunks added, {self.kept} kept, "
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
    """Files to index under ``paths``. A path that does not exist is an error."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise RagError(f"no such file or directory: {', '.join(missing)}")
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                f
                for f in sorted(path.rglob("*"))
                if f.is_file()
                and f.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
        else:
            files.append(path)
    return list(dict.fromkeys(f.resolve() for f in files))


@contextlib.contextmanager
def ingest_lock(settings: Settings) -> Iterator[None]:
    """One writer at a time per local index."""
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
        yield


def ingest_paths(
    paths: list[Path],
    settings: Settings,
    *,
    prune: bool = False,
    progress: bool = True,
) -> IngestReport:
    started = time.perf_counter()
    files = collect_files(paths)
    report = IngestReport()
    with ingest_lock(settings):
        store = IndexStore(settings)
        _Ingestor(store, settings, report, progress).run(files, prune)
    report.seconds = time.perf_counter() - started
    return report


class _Ingestor:
    def __init__(
        self, store: IndexStore, settings: Settings, report: IngestReport, progress: bool
    ) -> None:
        self.store = store
        self.settings = settings
        self.report = report
        self.progress = progress
        self.fingerprint = fingerprint(settings)
        self._embedding = None

    @property
    def embedding(self):  # noqa: ANN201 - loaded only when something must be embedded
        if self._embedding is None:
            from rag.components.embedding import load_embedding

            self._embedding = load_embedding(self.settings)
        return self._embedding

    def run(self, files: list[Path], prune: bool) -> None:
        records = self.store.document_records()
        if any(r.backend != self.settings.embedding_backend for r in records.values()):
            log.warning("embedding backend changed: rebuilding the whole index")
            self._drop_everything(records)
            records = {}
        todo: list[Document] = []
        seen: dict[str, Path] = {}
        for path in files:
            doc = self._check(path, records, seen)
            if doc is not None:
                todo.append(doc)
        self._embed_and_store(todo)
        if prune:
            self._prune(records, seen)

    def _skip(self, path: Path, reason: str) -> None:
        log.warning("skipped %s: %s", path, reason)
        self.report.skipped.append((str(path), reason))

    def _check(
        self, path: Path, records: dict[str, DocumentRecord], seen: dict[str, Path]
    ) -> Document | None:
        """Return the document if it needs (re-)embedding; count it as kept otherwise."""
        doc_id = path.stem
        if doc_id in seen:
            self._skip(path, f"same name as {seen[doc_id]}; document ids must be unique")
            return None
        try:
            text = read_source(path)
        except UnreadableFileError as exc:
            self._skip(path, str(exc))
            return None
        seen[doc_id] = path
        self.report.files += 1
        content_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
        record = records.get(doc_id)
        unchanged = record is not None and (record.content_hash, record.fingerprint) == (
            content_hash,
            self.fingerprint,
        )
        if record is not None and unchanged:
            rows = self.store.count_rows(doc_id, content_hash)
            if rows == (record.chunks, record.sentences):
                self.report.removed += self.store.delete_stale_rows(doc_id, content_hash)
                self.report.kept += record.chunks
                return None
        try:
            return load_document(
                path, self.settings.chunk_size, self.settings.chunk_overlap, source=text
            )
        except UnreadableFileError as exc:
            self.report.files -= 1
            del seen[doc_id]
            self._skip(path, str(exc))
            return None

    def _embed_and_store(self, docs: list[Document]) -> None:
        if not docs:
            return
        from tqdm import tqdm

        total = sum(len(d.chunks) + len(d.sentences) for d in docs)
        bar = tqdm(
            total=total, unit="text", desc="embedding", disable=not self.progress, leave=False
        )
        with bar:
            for doc in docs:
                self._store_document(doc, bar)

    def _store_document(self, doc: Document, bar) -> None:  # noqa: ANN001 - tqdm
        started = time.perf_counter()
        chunk_vectors = self.embedding.embed_documents([c.text for c in doc.chunks])
        bar.update(len(doc.chunks))
        sentence_vectors = self.embedding.embed_documents([s.text for s, _ in doc.sentences])
        bar.update(len(doc.sentences))
        self.report.embed_seconds += time.perf_counter() - started
        self.report.embedded_texts += len(doc.chunks) + len(doc.sentences)

        base = {
            "doc_id": doc.doc_id,
            "title": doc.title,
            "source": doc.source,
            "content_hash": doc.content_hash,
        }
        key = f"{doc.doc_id}:{doc.content_hash[:16]}"
        self.store.add_rows(
            self.store.chunks,
            Rows(
                ids=[f"{key}:c{i}" for i in range(len(doc.chunks))],
                texts=[c.text for c in doc.chunks],
                metadatas=[
                    {**base, "start": c.start, "end": c.end, "position": i}
                    for i, c in enumerate(doc.chunks)
                ],
                embeddings=chunk_vectors,
            ),
        )
        self.store.add_rows(
            self.store.sentences,
            Rows(
                ids=[f"{key}:s{i}" for i in range(len(doc.sentences))],
                texts=[s.text for s, _ in doc.sentences],
                metadatas=[
                    {
                        **base,
                        "start": s.start,
                        "end": s.end,
                        "position": i,
                        "chunk": chunk,
                        "paragraph": paragraph,
                    }
                    for i, ((s, chunk), paragraph) in enumerate(
                        zip(doc.sentences, doc.paragraphs, strict=True)
                    )
                ],
                embeddings=sentence_vectors,
            ),
        )
        self.store.commit_document(
            DocumentRecord(
                doc_id=doc.doc_id,
                title=doc.title,
                source=doc.source,
                content_hash=doc.content_hash,
                fingerprint=self.fingerprint,
                chunks=len(doc.chunks),
                sentences=len(doc.sentences),
                chars=len(doc.clean.text),
            )
        )
        self.report.removed += self.store.delete_stale_rows(doc.doc_id, doc.content_hash)
        self.report.added += len(doc.chunks)

    def _prune(self, records: dict[str, DocumentRecord], seen: dict[str, Path]) -> None:
        for doc_id, record in records.items():
            if doc_id in seen:
                continue
            path = Path(record.source)
            path = path if path.is_absolute() else REPO_ROOT / path
            if not path.exists():
                self.store.delete_document(doc_id)
                self.report.removed += record.chunks

    def _drop_everything(self, records: dict[str, DocumentRecord]) -> None:
        for doc_id, record in records.items():
            self.store.delete_document(doc_id)
            self.report.removed += record.chunks
