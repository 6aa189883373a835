"""Two runs of the same eval set, question by question: did a change help beyond noise?

An eval set of a hundred questions moves by a few hundredths when a constant, the machine's
rounding or the candidate count changes: a difference of 0.02 in key-fact recall is two
answers. ``rag eval --compare DIR`` pairs each question with its answer in an earlier run
(``DIR/report.json``) and reports each metric's change with a 95% interval from a paired
bootstrap over the questions, and which questions gained or lost a key fact or a refusal.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError

RESAMPLES = 2000
# (key, label, which questions it is measured on, whether more is better)
PAIRED_METRICS = (
    ("hit_at_1", "hit@1", "answerable", True),
    ("key_fact_recall", "key-fact recall", "answerable", True),
    ("first_quote_fact", "key fact in the first quote", "answerable", True),
    ("citation_precision", "citation precision", "answerable", True),
    ("refused", "answerable refused", "answerable", False),
    ("refused", "unanswerable refused", "unanswerable", True),
)


@dataclass(frozen=True)
class MetricChange:
    label: str
    questions: int  # questions measured in both runs
    before: float
    after: float
    low: float  # 95% interval of the change (after - before)
    high: float
    more_is_better: bool = True

    @property
    def change(self) -> float:
        return self.after - self.before

    @property
    def beyond_noise(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def verdict(self) -> str:
        if self.low == self.high == 0:
            return "unchanged"
        if not self.beyond_noise:
            return "noise"
        return "better" if (self.low > 0) == self.more_is_better else "worse"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.label,
            "questions": self.questions,
            "before": round(self.before, 4),
            "after": round(self.after, 4),
            "change": round(self.change, 4),
            "interval95": [round(self.low, 4), round(self.high, 4)],
            "verdict": self.verdict,
        }


@dataclass
class Comparison:
    earlier: str  # the earlier report's path
    matched: int  # questions in both runs
    metrics: list[MetricChange]
    gained: list[dict[str, str]] = field(default_factory=list)  # a key fact or a refusal more
    lost: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "earlier": self.earlier,
            "matched_questions": self.matched,
            "metrics": [m.to_dict() for m in self.metrics],
            "gained": self.gained,
            "lost": self.lost,
        }


def load_report(path: Path) -> dict[str, Any]:
    """An earlier ``report.json`` (or the folder holding one)."""
    path = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        records = report["questions"]["project"]
        if not isinstance(records, list):
            raise TypeError("questions.project is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RagError(f"cannot read the earlier eval report {path}: {exc}") from exc
    report["_path"] = str(path)
    return report


def compare(earlier: dict[str, Any], records: list[dict[str, Any]]) -> Comparison:
    """This run's per-question ``records`` (the project's) against an earlier report."""
    before_by_id = {r["id"]: r for r in earlier["questions"]["project"]}
    pairs = [(before_by_id[r["id"]], r) for r in records if r["id"] in before_by_id]
    rng = np.random.default_rng(0)
    metrics = []
    for key, label, among, more_is_better in PAIRED_METRICS:
        values = [
            (_value(b, key), _value(a, key))
            for b, a in pairs
            if a["answerable"] == (among == "answerable")
        ]
        values = [(b, a) for b, a in values if b is not None and a is not None]
        if values:
            change = _change(label, np.asarray(values, dtype=float), rng)
            metrics.append(dataclasses.replace(change, more_is_better=more_is_better))
    gained, lost = _moved(pairs)
    return Comparison(earlier.get("_path", ""), len(pairs), metrics, gained, lost)


def _value(record: dict[str, Any], key: str) -> float | None:
    if key == "refused":
        return float(record["refused"])
    value = record["scores"].get(key)
    return None if value is None else float(value)


def _change(label: str, values: np.ndarray, rng: np.random.Generator) -> MetricChange:
    """Means before and after, and a percentile interval of the mean paired difference."""
    diffs = values[:, 1] - values[:, 0]
    picks = rng.integers(0, len(diffs), size=(RESAMPLES, len(diffs)))
    means = diffs[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    before, after = values.mean(axis=0)
    return MetricChange(label, len(values), float(before), float(after), float(low), float(high))


def _moved(pairs: list[tuple[dict, dict]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Questions whose answer got better or worse: a key fact more or fewer (answerable),
    refused now or no longer (unanswerable)."""
    gained, lost = [], []
    for before, after in pairs:
        if after["answerable"]:
            old, new = _value(before, "key_fact_recall") or 0, _value(after, "key_fact_recall") or 0
            what = "key facts"
        else:
            old, new = float(before["refused"]), float(after["refused"])
            what = "refused"
        if new != old:
            row = {"id": after["id"], "question": after["question"], "what": what}
            (gained if new > old else lost).append(row)
    return gained, lost


def markdown(comparison: Comparison) -> str:
    lines = [
        f"## Compared with `{comparison.earlier}`",
        "",
        f"{comparison.matched} questions in both runs. *Interval*: 95% paired bootstrap of the "
        "change over the questions; a change whose interval holds 0 is within noise.",
        "",
        "| metric | n | before | now | change | interval |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {m.label} | {m.questions} | {m.before:.3f} | {m.after:.3f} | {m.change:+.3f} | "
        f"{m.low:+.3f} … {m.high:+.3f} ({m.verdict}) |"
        for m in comparison.metrics
    ]
    for title, rows in (("Better now", comparison.gained), ("Worse now", comparison.lost)):
        lines += ["", f"### {title}: {len(rows)}", ""]
        lines += [f"- {r['id']} ({r['what']}): {r['question']}" for r in rows]
    return "\n".join(lines) + "\n"
