"""`kill -9` in the middle of ingesting archive articles: a consistent index, then completed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.engine import Engine
from rag.ingest import ingest_paths
from rag.store import IndexStore
from tests.conftest import make_settings

BBC = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "bbc"
ARTICLES = 60


def committed_articles(index: Path) -> int:
    """Article records in the index, read the way an outside observer can: from SQLite."""
    try:
        with sqlite3.connect(f"file:{index / 'chroma.sqlite3'}?mode=ro", uri=True) as db:
            query = "select count(*) from embedding_metadata where key = 'chars'"
            return db.execute(query).fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.skipif(not BBC.is_dir(), reason=f"the BBC archive is not at {BBC}")
def test_kill_9_mid_ingest_leaves_a_consistent_index(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    for path in sorted(BBC.glob("bbc_tech_*.txt"))[:ARTICLES]:
        (folder / path.name).symlink_to(path)
    settings = make_settings(tmp_path / "index")
    env = {
        **os.environ,
        "RAG_INDEX_DIR": str(settings.index_dir),
        "RAG_CACHE_DIR": str(settings.cache_dir),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "ingest", "-q", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while committed_articles(settings.index_dir) == 0 and process.poll() is None:
        assert time.monotonic() < deadline, "ingest committed nothing in 300 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "ingest finished before it could be killed"

    # Consistent: every committed article is whole, and it can be asked.
    store = IndexStore(settings)
    records = store.document_records()
    assert 0 < len(records) < ARTICLES
    for doc_id, record in list(records.items())[:10]:
        rows = store.chunks.get(where={"doc_id": doc_id}, include=["metadatas"])["metadatas"]
        assert sum(m["content_hash"] == record.content_hash for m in rows) == record.chunks
    engine = Engine(settings, auto_ingest=False)
    assert {p.doc_id for p in engine.ask("What did the report say?").passages} <= set(records)

    # The next run completes the work: the same index as one uninterrupted run.
    report = ingest_paths([folder], settings, progress=False)
    assert report.kept > 0 and report.added > 0
    clean = make_settings(tmp_path / "clean")
    ingest_paths([folder], clean, progress=False)
    assert len(store.document_records()) == len(IndexStore(clean).document_records())
    assert store.chunks.count() >= IndexStore(clean).chunks.count()  # + invisible leftovers
    completed = Engine(settings, auto_ingest=False)
    assert completed.lexical.size == IndexStore(clean).chunks.count()
