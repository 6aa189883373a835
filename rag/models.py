"""The result types every surface (CLI, UI, HTTP API, eval) shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Citation:  # its JSON (``asdict``) is part of the ``rag ask --json`` contract
    n: int
    doc_id: str
    title: str
    source: str  # file path (relative to the repo root inside it); "<file>#<doc_id>" of exports
    quote: str  # == `rag show doc_id`[start:end] (== open(source).read()[start:end] for files)
    start: int
    end: int
    published: str | None = None  # ISO date YYYY-MM-DD, None when unknown
    url: str | None = None
    publisher: str | None = None
    also_in: list[str] = field(default_factory=list)  # near-duplicate copies of the article


@dataclass(frozen=True)
class Passage:
    doc_id: str
    title: str
    text: str
    score: float
    start: int
    end: int
    published: str | None = None
    url: str | None = None
    publisher: str | None = None


@dataclass
class Answer:
    question: str
    answer: str
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The question actually searched for, after resolving a follow-up against history.
    standalone_question: str | None = None
    # Probability that the evidence answers the question. Below the threshold the answer is
    # refused, unless the question is read as a search and a sentence holds all its words.
    confidence: float | None = None
    # Answered on evidence less likely than ``Settings.weak_evidence_below`` to answer (a
    # keyword search whose words a quote holds is never weak): the quotes may not answer.
    weak_evidence: bool = False

    def weak_evidence_note(self) -> str:
        """What an answer on weak evidence says above its quotes."""
        how_likely = f" (confidence {self.confidence:.0%})" if self.confidence is not None else ""
        return f"Weak evidence: these quotes may not answer the question{how_likely}."

    def to_dict(self) -> dict:
        """The ``rag ask --json`` object, key for key."""
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "citations": [asdict(c) for c in self.citations],
            "passages": [asdict(p) for p in self.passages],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "confidence": self.confidence,
            "weak_evidence": self.weak_evidence,
            "standalone_question": self.standalone_question,
        }


@dataclass(frozen=True)
class SourceDocument:
    """An indexed article, as listed by ``rag sources``."""

    doc_id: str
    title: str
    source: str
    chunks: int
    sentences: int
    chars: int
    published: str | None = None
    url: str | None = None
    publisher: str | None = None
    duplicate_of: str | None = None


def quoted(text: str) -> str:
    """The quote between quotation marks, unless it opens with one of its own (a sentence
    that is itself a quotation: "“The basic conditions…,” Peskov told reporters")."""
    return text if text[0] in "“\"'‘" else f"“{text}”"
