"""The same engine against a real Chroma server (HttpClient) instead of the embedded store."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.engine import Engine
from rag.errors import IndexUnavailableError
from rag.ingest import ingest_paths
from tests.conftest import EXAMPLE_QUESTION, make_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def chroma_server(tmp_path: Path) -> Iterator[str]:
    chroma = Path(sys.executable).parent / "chroma"
    if not chroma.exists():
        chroma = Path(shutil.which("chroma") or "chroma")
    port = free_port()
    log = (tmp_path / "chroma.log").open("w")
    process = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(tmp_path / "server-data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((tmp_path / "chroma.log").read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


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
