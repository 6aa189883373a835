"""Replicas: two `rag serve` processes share one Chroma server and see new articles.

Nothing but the Chroma server is shared: each replica has its own cache folder for the
BM25 index it derives from what Chroma holds. An article ingested by a third process is
answerable from both within 60 s, without a restart.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from rag.ingest import ingest_paths
from tests.conftest import SEEDS, make_settings
from tests.test_lexical import NEW_ARTICLE
from ui.screenshots import start_server

QUESTION = "How much will the Tromsø ferry terminal cost?"


def answers_from_new_article(url: str) -> bool:
    reply = httpx.post(f"{url}/api/ask", json={"question": QUESTION}, timeout=30).json()
    return any(c["doc_id"] == "tromso" for c in reply.get("citations", []))


@pytest.mark.slow
def test_an_article_ingested_anywhere_reaches_every_replica(
    tmp_path: Path, chroma_server: str
) -> None:
    settings = make_settings(tmp_path / "unused", chroma_url=chroma_server)
    ingest_paths([SEEDS], settings, progress=False)
    replicas = [
        start_server(
            extra_env={
                "RAG_CHROMA_URL": chroma_server,
                "RAG_CACHE_DIR": tempfile.mkdtemp(prefix=f"replica-{n}-"),
                "RAG_RELOAD_SECONDS": "1",
            }
        )
        for n in range(2)
    ]
    try:
        assert not any(answers_from_new_article(r.url) for r in replicas)
        article = tmp_path / "new" / "tromso.txt"
        article.parent.mkdir()
        article.write_text(NEW_ARTICLE, encoding="utf-8")
        env = {
            **os.environ,
            "RAG_CHROMA_URL": chroma_server,
            "RAG_CACHE_DIR": str(tmp_path / "ingester-cache"),
        }
        subprocess.run(
            [sys.executable, "-m", "rag.cli", "ingest", "-q", str(article)],
            env=env,
            check=True,
            capture_output=True,
        )
        ingested = time.monotonic()
        waiting = list(replicas)
        while waiting and time.monotonic() - ingested < 60:
            waiting = [r for r in waiting if not answers_from_new_article(r.url)]
            time.sleep(0.5)
        assert not waiting, f"{len(waiting)} replica(s) did not answer from the new article"
    finally:
        for replica in replicas:
            replica.stop()
