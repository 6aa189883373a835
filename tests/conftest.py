"""Shared fixtures, and a guard that proves the suite runs offline.

Every test runs on real components: the real embedding model, real Chroma, the real
seed articles. The guard fails any test that opens a network connection to anything
but the loopback interface (or resolves a remote host name).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import rag  # noqa: F401  (sets the offline environment before anything else loads)
from rag.settings import REPO_ROOT, Settings

SEEDS = REPO_ROOT / "seeds"
EXAMPLE_QUESTION = "What are Russia's stated conditions for talks?"

# --- offline guard ---------------------------------------------------------------------------

_attempts: list[str] = []
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host in {"localhost", "localhost.localdomain", ""}:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(sock: socket.socket, address: object) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # unix sockets are local by definition
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback(host):
        _attempts.append(f"connect to {address!r}")
        raise ConnectionRefusedError(f"test suite is offline: blocked connection to {address!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object):  # noqa: ANN202
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not _is_loopback(name):
        _attempts.append(f"resolve {name!r}")
        raise socket.gaierror(f"test suite is offline: blocked lookup of {name!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def offline_guard() -> Iterator[None]:
    """Fail the test if it (or a library it called) tried to reach the network."""
    _attempts.clear()
    yield
    if _attempts:
        pytest.fail("network access attempted: " + "; ".join(_attempts))


# --- settings and indexes --------------------------------------------------------------------


# Derived data shared by every test of a session (the int8 encoder is built once).
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="rag-test-cache-"))


def make_settings(index_dir: Path, **overrides: object) -> Settings:
    """Settings for a test: its own index dir, ignoring any developer .env file."""
    values = {
        "index_dir": index_dir,
        "cache_dir": SESSION_CACHE,
        "seeds_dir": SEEDS,
        "chroma_url": None,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """An index of the five seed articles, built once per test session."""
    from rag.ingest import ingest_paths

    settings = make_settings(tmp_path_factory.mktemp("seed-index"))
    ingest_paths([SEEDS], settings, progress=False)
    return settings


@pytest.fixture(scope="session")
def engine(seed_settings: Settings):  # noqa: ANN201
    from rag.engine import Engine

    return Engine(seed_settings, auto_ingest=False)


@pytest.fixture()
def corpus_dir(tmp_path: Path) -> Path:
    """A writable copy of two seed articles."""
    folder = tmp_path / "articles"
    folder.mkdir()
    for name in ("000_8d93e48187a857e9.txt", "003_042faa28e221901a.txt"):
        shutil.copy(SEEDS / name, folder / name)
    return folder


def read_quote(source: str, start: int, end: int) -> str:
    path = Path(source)
    path = path if path.is_absolute() else REPO_ROOT / path
    with open(path) as fh:  # exactly how the contract says users read it
        return fh.read()[start:end]


# --- a real Chroma server ----------------------------------------------------------------


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
