"""More rows than Chroma reads in one SQL statement: ingest and asking still work.

Chroma's embedded store fails a ``get()`` of ~40,000 rows at once ("too many SQL
variables"). This test writes more than 40,000 chunk rows (short chunks of 45,000
sentences). It is about bookkeeping at scale,
not retrieval quality, so it uses a fast fake embedding of the real dimension (a hash of
the words): the real model would take minutes for this many sentences.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import rag.components.embedding
from rag.engine import Engine
from rag.ingest import ingest_paths
from rag.lexical import open_lexical
from rag.store import IndexStore
from tests.conftest import make_settings

ARTICLES = 450
SENTENCES = 100  # per article: 45,000 sentence rows in all


class HashedWordsEmbedding:
    """A stand-in model: each word adds a fixed pseudo-random vector. Fast, not semantic."""

    name = "hashed-words"
    dim = 384

    def _vector(self, text: str) -> np.ndarray:
        out = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().split():
            seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest())
            out += np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return out / (np.linalg.norm(out) or 1.0)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.empty((0, self.dim))

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def write_articles(folder: Path) -> None:
    folder.mkdir()
    for a in range(ARTICLES):
        lines = [f"Council report number {a} on the harbour"]
        lines += [
            f"Councillor {a}-{s} said the harbour budget for ward {s} rose by {a + s} pounds."
            for s in range(SENTENCES - 1)
        ]
        (folder / f"report_{a:04d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_more_rows_than_one_sql_statement_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = HashedWordsEmbedding()
    monkeypatch.setattr(rag.components.embedding, "load_embedding", lambda settings: fake)
    write_articles(tmp_path / "articles")
    # Chunks of 32 tokens: about one chunk row per sentence, so more than 40,000 rows.
    settings = make_settings(tmp_path / "index", chunk_size=32, chunk_overlap=0)

    report = ingest_paths([tmp_path / "articles"], settings, progress=False)
    store = IndexStore(settings)
    assert report.files == ARTICLES
    records = store.document_records()  # a paged scan
    assert store.chunks.count() > 40_000
    assert len(records) == ARTICLES
    lexical = open_lexical(store, Engine.analyzer_for(settings))
    assert lexical is not None and lexical.size == store.chunks.count()

    engine = Engine(settings, auto_ingest=False, embedding=fake)
    answer = engine.ask("What did councillor 217-42 say about the harbour budget?")
    assert answer.passages[0].doc_id == "report_0217"  # BM25 finds the councillor's article
    assert len(engine.sources()) == ARTICLES

    again = ingest_paths([tmp_path / "articles"], settings, progress=False)
    assert again.added == 0 and again.kept == report.added  # nothing re-embedded
