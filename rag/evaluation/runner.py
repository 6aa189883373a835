"""Run the eval set through ``Engine.ask`` (the chat's code path) and the llama-index baseline.

    result = run_eval(EvalConfig(questions=Path("eval/questions.jsonl"), corpus=Path("seeds")))

With a corpus, its files are ingested first into an index of their own (``index_dir``,
collection ``<collection>-eval``), holding exactly those files; without one, the index the
chat uses is evaluated as it is.
"""

from __future__ import annotations

import json
import platform
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rag.errors import RagError
from rag.evaluation.metrics import score_answer, summarize
from rag.settings import REPO_ROOT, Settings, get_settings

DEFAULT_SET = REPO_ROOT / "eval" / "questions.jsonl"
DEFAULT_OUT = REPO_ROOT / "eval" / "out"
DEFAULT_THRESHOLDS = REPO_ROOT / "eval" / "thresholds.toml"
SYSTEMS = ("project", "baseline")

Kind = Literal[
    "fact",
    "number",
    "who",
    "when",
    "why",
    "multi",
    "paraphrase",
    "keyword",
    "conflict",
    "unanswerable",
]
KINDS: tuple[str, ...] = get_args(Kind)
AskFn = Callable[[str], dict[str, Any]]
Progress = Callable[[str, int], Callable[[], None]]  # (label, total) -> advance()
# {"min": {metric: floor}, "max": {metric: ceiling}, "target": {metric: goal}}
Thresholds = dict[str, dict[str, float]]
# Metrics where less is better: a target for one of these is a ceiling.
LOWER_IS_BETTER = frozenset(
    {"median_answer_chars", "refused_answerable", "latency_p50_ms", "latency_p95_ms", "failed"}
)


# --- the eval set ---------------------------------------------------------------------------


class Question(BaseModel):
    """One line of an eval set: a question, and what answers it.

    The project's sets give every field. A set of one's own may be plain question/answer
    pairs, ``{"question": …, "answer": …}`` (``"answer": null`` for a question the articles
    do not answer); what a line does not give is not scored: without ``gold_sources`` (the
    article ids ``rag sources`` lists) no article is checked, without ``must_contain`` (or
    ``key_facts``: strings, or lists of alternatives) no key fact. Its id is then its line
    number, its kind "fact" (or "unanswerable").
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default="", pattern=r"^\S*$")  # "" until ``load_questions`` numbers it
    kind: Kind | None = None
    question: str = Field(min_length=5)
    reference_answer: str | None = Field(
        default=None, validation_alias=AliasChoices("reference_answer", "answer")
    )
    gold_sources: list[str] = Field(default_factory=list)
    must_contain: list[list[str]] = Field(
        default_factory=list, validation_alias=AliasChoices("must_contain", "key_facts")
    )
    answerable: bool | None = None
    # An unanswerable question about someone or something the corpus does cover.
    near_miss: bool = False

    @field_validator("must_contain", mode="before")
    @classmethod
    def _facts_as_groups(cls, value: object) -> object:
        """A key fact given as one string is a group of one alternative."""
        if isinstance(value, list):
            return [[item] if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        if self.answerable is None:
            self.answerable = (
                self.kind != "unanswerable" if self.kind else self.reference_answer is not None
            )
        self.kind = self.kind or ("fact" if self.answerable else "unanswerable")
        if self.answerable != (self.kind != "unanswerable"):
            raise ValueError("answerable must be false exactly for kind 'unanswerable'")
        if self.answerable and not (self.reference_answer or "").strip():
            raise ValueError("an answerable question needs its answer (reference_answer)")
        self.reference_answer = self.reference_answer or ""
        if not self.answerable and (self.gold_sources or self.must_contain):
            raise ValueError("an unanswerable question has no gold_sources or must_contain")
        if any(not group or not all(alt.strip() for alt in group) for group in self.must_contain):
            raise ValueError("every must_contain entry is a non-empty list of non-empty strings")
        return self


class EvalSetError(RagError, ValueError):
    """The eval set cannot be read or is malformed; the message names the line."""

    exit_code = 2


def load_questions(path: Path) -> list[Question]:
    """Parse and validate the eval set; errors name the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"cannot read the eval set {path}: {exc}") from exc
    questions = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                question = Question.model_validate_json(line)
            except ValidationError as exc:
                raise EvalSetError(f"{path}:{number}: {_plain(exc)}") from exc
            question.id = question.id or f"line-{number}"
            questions.append(question)
    if not questions:
        raise EvalSetError(f"the eval set {path} has no questions")
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise EvalSetError(
            f"the eval set {path} repeats ids: {sorted({i for i in ids if ids.count(i) > 1})}"
        )
    return questions


def _plain(error: ValidationError) -> str:
    """Pydantic's errors as "field: message" lines, without its links and echoed input."""
    lines = []
    for e in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


# --- thresholds -----------------------------------------------------------------------------


def thresholds_for(question_set: Path, only: Path | None = None) -> Thresholds | None:
    """The gate of a question set: ``thresholds.toml`` beside it, if it names the set.

    ``eval/thresholds.toml`` gates ``eval/questions.jsonl``; ``eval/bbc/thresholds.toml``
    gates ``eval/bbc/heldout.jsonl``. A file's ``applies_to`` names its set (default
    ``questions.jsonl``). A file with ``articles`` (a list beside it) set its floors on a
    run over those articles only (``--only``): over others, or the whole archive, it
    keeps its targets and gates nothing, since other distractors move every metric.
    """
    path = question_set.resolve().parent / "thresholds.toml"
    if not path.exists():
        return None
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if data.get("applies_to", "questions.jsonl") != question_set.name:
        return None
    scope = data.get("articles")
    if scope and (only is None or only.resolve() != (path.parent / scope).resolve()):
        data = {"target": data.get("target", {})}
    return _sections(data)


def load_thresholds(path: Path = DEFAULT_THRESHOLDS) -> Thresholds:
    """The gate's floors (``min``) and ceilings (``max``), and the goals (``target``)."""
    return _sections(tomllib.loads(path.read_text(encoding="utf-8")))


def _sections(data: dict[str, Any]) -> Thresholds:
    return {section: dict(data.get(section, {})) for section in ("min", "max", "target")}


def check_thresholds(overall: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """One message per metric outside its bound; empty when all pass."""
    problems = []
    for bound in ("min", "max"):
        for metric, limit in thresholds.get(bound, {}).items():
            value = overall.get(metric)
            below = bound == "min" and (value is None or value < limit)
            above = bound == "max" and (value is None or value > limit)
            if below or above:
                word = "below its floor" if below else "above its ceiling"
                problems.append(f"{metric} = {_fmt(value)} is {word} {limit}")
    return problems


def _fmt(value: float | None) -> str:
    return "missing" if value is None else f"{value:.4g}"


# --- running --------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    questions: Path = DEFAULT_SET
    corpus: Path | None = None  # None: the chat's own index, as it is
    only: list[str] | None = None  # index only these article ids (file stems) of corpus
    index_dir: Path | None = None  # where a corpus is indexed; default <out>/index
    out: Path = DEFAULT_OUT
    baseline: bool = True
    settings: Settings | None = None


@dataclass
class EvalResult:
    meta: dict[str, Any]
    records: dict[str, list[dict[str, Any]]]  # system -> per-question records
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta, "summary": self.summary, "questions": self.records}


def eval_settings(config: EvalConfig) -> Settings:
    """The chat's settings, or a copy pointing at a separate index for ``config.corpus``."""
    settings = config.settings or get_settings()
    if config.corpus is None:
        return settings
    index_dir = config.index_dir or config.out / "index"
    return settings.model_copy(
        update={"index_dir": index_dir.resolve(), "collection": f"{settings.collection}-eval"[:40]}
    )


def index_corpus(corpus: Path, settings: Settings, only: list[str] | None = None) -> None:
    """Make the eval index hold exactly the articles under ``corpus`` (or ``only`` those)."""
    from rag.ingest import collect_files, ingest_paths, remove_articles
    from rag.store import IndexStore

    files = collect_files([corpus])
    if only is not None:
        wanted_ids = set(only)
        files = [f for f in files if f.stem in wanted_ids]
        if missing := wanted_ids - {f.stem for f in files}:
            raise RagError(f"not in {corpus}: {', '.join(sorted(missing)[:5])}")
    report = ingest_paths(files, settings, progress=False)
    # The ids of the articles read: a file's stem, or an export record's own id.
    stale = set(IndexStore(settings).document_records()) - report.doc_ids
    remove_articles(sorted(stale), settings)


def read_article_list(path: Path) -> list[str]:
    """Article ids, one per line; ``#`` starts a comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"cannot read the article list {path}: {exc}") from exc
    return [w for line in lines for w in line.split("#", 1)[0].split()]


def ask_all(
    ask: AskFn, questions: list[Question], k: int, advance: Callable[[], None]
) -> list[dict[str, Any]]:
    """Ask every question; one scored record each."""
    records = []
    for q in questions:
        started = time.perf_counter()
        answer = ask(q.question)
        wall_ms = (time.perf_counter() - started) * 1000
        records.append(make_record(q, answer, k, wall_ms))
        advance()
    return records


def make_record(q: Question, answer: dict[str, Any], k: int, wall_ms: float) -> dict[str, Any]:
    gold = q.model_dump()
    return {
        "id": q.id,
        "kind": q.kind,
        "question": q.question,
        "answerable": q.answerable,
        "answer": answer["answer"],
        "refused": bool(answer["refused"]),
        "confidence": answer.get("confidence"),
        "weak_evidence": bool(answer.get("weak_evidence")),
        "citations": [
            {key: c[key] for key in ("n", "doc_id", "source", "start", "end", "quote")}
            for c in answer["citations"]
        ],
        "latency_ms": float(answer["timings_ms"].get("total", wall_ms)),
        "wall_ms": wall_ms,
        "scores": score_answer(gold, answer, k),
    }


def summarize_by_kind(records: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = [k for k in KINDS if any(r["kind"] == k for r in records)]
    return {
        "overall": summarize(records),
        "by_kind": {k: summarize([r for r in records if r["kind"] == k]) for k in kinds},
    }


def _no_progress(label: str, total: int) -> Callable[[], None]:
    return lambda: None


def run_eval(config: EvalConfig, progress: Progress = _no_progress) -> EvalResult:
    """Index (if asked), ask every question of both systems, score and summarize."""
    from rag.engine import Engine

    questions = load_questions(config.questions)
    settings = eval_settings(config)
    if config.corpus is not None:
        done = progress(f"indexing {config.corpus}", 1)
        index_corpus(config.corpus, settings, config.only)
        done()
    engine = Engine(settings, auto_ingest=config.corpus is None)
    k = settings.top_k
    meta = _meta(config, settings, questions, engine)
    started = time.perf_counter()
    records = {
        "project": ask_all(
            lambda q: engine.ask(q).to_dict(),
            questions,
            k,
            progress("project", len(questions)),
        )
    }
    meta["wall_seconds"] = {"project": time.perf_counter() - started}
    if config.baseline:
        records["baseline"], meta["wall_seconds"]["baseline"] = _run_baseline(
            engine, settings, questions, progress
        )
    result = EvalResult(meta=meta, records=records)
    result.summary = {system: summarize_by_kind(rs) for system, rs in records.items()}
    return result


def _run_baseline(
    engine: Any, settings: Settings, questions: list[Question], progress: Progress
) -> tuple[list[dict[str, Any]], float]:
    from rag.evaluation.baseline import Baseline

    # The texts the engine indexed (an export's records have no file of their own).
    articles = [engine.document_text(s.doc_id) for s in engine.sources()]
    started = time.perf_counter()
    done = progress("baseline: indexing", 1)
    with Baseline(articles, engine.embedding, settings) as baseline:
        done()
        records = ask_all(
            baseline.ask, questions, settings.top_k, progress("baseline", len(questions))
        )
    return records, time.perf_counter() - started


def _meta(
    config: EvalConfig, settings: Settings, questions: list[Question], engine: Any
) -> dict[str, Any]:
    from rag.evaluation.baseline import DESCRIPTION

    articles = [s.doc_id for s in engine.sources()]
    gold = {d for q in questions for d in q.gold_sources}
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "question_set": str(config.questions),
        "questions": len(questions),
        "corpus": str(config.corpus) if config.corpus else "the chat's index",
        "articles": articles,
        "missing_gold_articles": sorted(gold - set(articles)),
        "k": settings.top_k,
        "settings": json.loads(
            settings.model_dump_json(
                include={
                    "collection",
                    "embedding_backend",
                    "chunk_size",
                    "chunk_overlap",
                    "top_k",
                    "max_quotes",
                    "refusal_threshold",
                }
            )
        ),
        "systems": {"project": "rag.engine.Engine.ask", "baseline": DESCRIPTION},
        "python": platform.python_version(),
    }


def iter_failures(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (r for r in records if r["scores"]["failures"])
