"""The fitted models: how likely a sentence answers the question, and the question is answerable.

Two logistic regressions over the named features of ``rag.features``, fitted by
``rag.fit`` (``make fit``) on the BBC fitting half and the seeds set, and stored as one
small versioned file (``rag/data/scorer.json``). At run time they are a dot product.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import ConfigError
from rag.features import EVIDENCE_FEATURES, SENTENCE_FEATURES, SentenceTable, evidence_features

if TYPE_CHECKING:
    from rag.components.reader import Reading

DEFAULT_MODEL = Path(__file__).parent / "data" / "scorer.json"
FORMAT = 1


@dataclass(frozen=True)
class Logistic:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def logits(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.scale) @ self.weights + self.bias

    @classmethod
    def from_dict(cls, data: dict, expected: tuple[str, ...]) -> Logistic:
        if tuple(data["features"]) != expected:
            raise ConfigError(
                f"the fitted model's features {data['features']} are not {list(expected)}: "
                "run `make fit`"
            )
        return cls(
            features=expected,
            mean=np.asarray(data["mean"], dtype=np.float32),
            scale=np.asarray(data["scale"], dtype=np.float32),
            weights=np.asarray(data["weights"], dtype=np.float32),
            bias=float(data["bias"]),
        )

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "bias": round(self.bias, 6),
        }


@dataclass(frozen=True)
class ComposeRules:
    """Fitted thresholds of composition: a further quote's probability, as a share of the
    best sentence's, above which it is quoted too."""

    same_article: float  # another sentence of the best article
    other_article: float  # the best sentence of another article
    same_article_quotes: int = 1  # at most this many further sentences of the best article
    max_chars: int = 450  # further quotes only while the quoted text stays this short


@dataclass(frozen=True)
class ReaderRules:
    """How much the reader counts (``rag.components.reader``): it reads the scorer's
    ``candidates`` best sentences; a sentence's logit becomes ``scorer`` × the scorer's +
    ``reader`` × the reader's + ``bias``, a sentence it did not read counting as its lowest
    reading (so none overtakes one it read and liked)."""

    candidates: int
    scorer: float
    reader: float
    bias: float

    def combine(self, logits: np.ndarray, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
        read = every_reading(len(logits), rows, scores)
        return self.scorer * logits + self.reader * read + self.bias


def every_reading(n: int, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The reader's logit for each of ``n`` sentences, given ``scores`` of ``rows``; a
    sentence it did not read counts as its lowest reading."""
    read = np.full(n, scores.min() if len(scores) else 0.0, dtype=np.float64)
    read[rows] = scores
    return read


@dataclass(frozen=True)
class FittedModel:
    sentence: Logistic
    refusal: Logistic
    refusal_threshold: float  # P(answerable) below this: "the articles don't say"
    compose: ComposeRules
    meta: dict
    reader: ReaderRules | None = None  # None: the reader is not used

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL) -> FittedModel:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the fitted model {path}: {exc}") from exc
        if data.get("format") != FORMAT:
            raise ConfigError(f"{path} has format {data.get('format')}, expected {FORMAT}")
        return cls(
            sentence=Logistic.from_dict(data["sentence"], SENTENCE_FEATURES),
            refusal=Logistic.from_dict(data["refusal"], EVIDENCE_FEATURES),
            refusal_threshold=float(data["refusal_threshold"]),
            compose=ComposeRules(**data["compose"]),
            meta=data.get("meta", {}),
            reader=ReaderRules(**data["reader"]) if data.get("reader") else None,
        )

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "sentence": self.sentence.to_dict(),
            "refusal": self.refusal.to_dict(),
            "refusal_threshold": round(self.refusal_threshold, 6),
            "compose": vars(self.compose),
            "reader": vars(self.reader) if self.reader else None,
            "meta": self.meta,
        }


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def judge(
    logits: np.ndarray,
    table: SentenceTable,
    docs: np.ndarray,
    refusal: Logistic,
    reader: ReaderRules | None = None,
    reading: Reading | None = None,
) -> tuple[np.ndarray, float]:
    """The scorer's ``logits`` of a question's candidates combined with what the reader
    said of its best (``reading``, if any), and the refusal model's probability that the
    best answers the question. The engine and ``rag.fit`` judge alike through it."""
    if reader is not None and reading is not None:
        logits = reader.combine(logits, reading.rows, reading.scores)
    best = int(np.argmax(logits))
    evidence = evidence_features(table, logits, best, docs, reading)
    return logits, float(sigmoid(refusal.logits(evidence[None, :]))[0])


@lru_cache(maxsize=4)
def load_model(path: Path = DEFAULT_MODEL) -> FittedModel:
    return FittedModel.load(path)
