"""The same engine against a real Chroma server (HttpClient) instead of the embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.engine import Engine
from rag.errors import IndexUnavailableError
from rag.ingest import ingest_paths
from tests.conftest import EXAMPLE_QUESTION, free_port, make_settings


def test_ingest_and_ask_through_a_chroma_server(
    tmp_path: Path, corpus_dir: Path, chroma_server: str
) -> None:
    settings = make_settings(tmp_path / "unused", chroma_url=chroma_server)
    report = ingest_paths([corpus_dir], settings, progress=False)
    assert report.files == 2 and report.added > 0
    assert not (tmp_path / "unused" / "chroma.sqlite3").exists()

    answer = Engine(settings, auto_ingest=False).ask(EXAMPLE_QUESTION)
    assert answer.citations and answer.citations[0].doc_id == "003_042faa28e221901a"
    again = ingest_paths([corpus_dir], settings, progress=False)
    assert again.added == 0 and again.kept == report.added


def test_unreachable_chroma_server_is_a_clear_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "unused", chroma_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(IndexUnavailableError, match="cannot reach the Chroma server"):
        Engine(settings, auto_ingest=False)
