"""Eval results as a rich table, ``report.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from rag.evaluation.compare import Comparison
from rag.evaluation.compare import markdown as comparison_markdown
from rag.evaluation.runner import (
    LOWER_IS_BETTER,
    SYSTEMS,
    EvalResult,
    Thresholds,
    iter_failures,
)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    short: str  # column header of the per-kind table
    unit: str = ""  # "" for a share in [0, 1], "ms", "s" or "chars"
    section: str = ""

    def format(self, value: float | None, digits: int = 3) -> str:
        if value is None:
            return "–"
        if self.unit == "ms":
            return f"{value:,.0f} ms" if digits == 3 else f"{value:,.0f}"
        if self.unit == "s":
            return f"{value:,.1f} s"
        if self.unit == "chars":
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"


METRICS = (
    Metric("hit_at_1", "hit@1", "hit@1", section="retrieval"),
    Metric("hit_at_k", "hit@k", "hit@k", section="retrieval"),
    Metric("mrr", "MRR", "MRR", section="retrieval"),
    Metric("key_fact_recall", "key-fact recall", "facts", section="answers"),
    Metric("all_key_facts", "all key facts", "all facts", section="answers"),
    Metric("first_quote_fact", "key fact in the first quote", "1st quote", section="answers"),
    Metric("token_f1", "token F1", "F1", section="answers"),
    Metric("median_answer_chars", "median answer length", "chars", "chars", section="answers"),
    Metric("citation_precision", "citation precision", "cite P", section="citations"),
    Metric("citation_recall", "citation recall", "cite R", section="citations"),
    Metric("quote_fidelity", "quote fidelity", "quotes", section="citations"),
    Metric("refused_unanswerable", "unanswerable refused", "refused", section="refusals"),
    Metric("refused_answerable", "answerable refused", "refused", section="refusals"),
    Metric("latency_p50_ms", "latency p50", "p50 ms", "ms", section="latency"),
    Metric("latency_p95_ms", "latency p95", "p95 ms", "ms", section="latency"),
    Metric("wall_p50_ms", "wall time p50", "wall p50", "ms", section="latency"),
    Metric("wall_p95_ms", "wall time p95", "wall p95", "ms", section="latency"),
    Metric("wall_total_s", "wall time, all questions", "wall s", "s", section="latency"),
)
DEFINITIONS = """\
Retrieval is scored at article level on the passages, over answerable questions: *hit@1* (a
gold article ranked first), *hit@k* (one among the top k passages), *MRR* (llama-index HitRate
and MRR). *Key-fact recall*: share of each question's key-fact groups (`key_facts`, or
`must_contain`) matched by one of their alternatives (case-insensitive); *all key facts*:
share of questions matching every group; *key fact in the first quote*: share of questions
whose first quote (the one a reader meets first) matches a group; all three 0 for a refused
answerable question. *Token F1* against the reference answer (`answer`, or
`reference_answer`).
*Citation precision*: share of a question's citations that name a gold article (questions
that cite nothing are left out); *recall*: share of gold articles cited. *Quote fidelity*:
share of all citations whose quote is the file's text at [start, end) (an HTML character
reference read as what it stands for). *Latency* is
`timings_ms.total`; *wall time* is measured around each call. The baseline never refuses and
answers with its top chunk, cited with that chunk's span.
"""
# Columns of the per-kind table; "refused" is the share refused among that kind's questions.
KIND_METRICS = (
    *(m for m in METRICS if m.key in {"hit_at_1", "mrr", "key_fact_recall", "token_f1"}),
    *(m for m in METRICS if m.key in {"citation_precision", "citation_recall", "quote_fidelity"}),
    Metric("refused", "refused", "refused"),
    *(m for m in METRICS if m.key == "latency_p50_ms"),
)


def _systems(result: EvalResult) -> list[str]:
    return [s for s in SYSTEMS if s in result.summary]


def _kind_rows(result: EvalResult) -> list[list[str]]:
    """Per-kind table rows: one per (kind, system), the kind and count on its first row."""
    rows = []
    for kind, row in result.summary["project"]["by_kind"].items():
        for i, system in enumerate(_systems(result)):
            values = result.summary[system]["by_kind"][kind]
            first = [kind, str(row["questions"])] if i == 0 else ["", ""]
            rows.append([*first, system, *(m.format(values.get(m.key), 2) for m in KIND_METRICS)])
    return rows


# --- rich tables ----------------------------------------------------------------------------


def overall_table(result: EvalResult, thresholds: Thresholds | None = None) -> Table:
    systems = _systems(result)
    table = Table(title=f"Eval: {result.meta['questions']} questions, k = {result.meta['k']}")
    table.add_column("metric")
    for system in systems:
        table.add_column(system, justify="right")
    table.add_column("gate", justify="right", style="dim")
    table.add_column("target", justify="right", style="dim")
    section = ""
    for metric in METRICS:
        if metric.section != section:
            section = metric.section
            table.add_section()
        cells = [metric.format(result.summary[s]["overall"].get(metric.key)) for s in systems]
        table.add_row(
            metric.label, *cells, _gate(metric.key, thresholds), _target(metric.key, thresholds)
        )
    return table


def _target(key: str, thresholds: Thresholds | None) -> str:
    goal = (thresholds or {}).get("target", {}).get(key)
    if goal is None:
        return ""
    return f"{'≤' if key in LOWER_IS_BETTER else '≥'} {goal}"


def _gate(key: str, thresholds: Thresholds | None) -> str:
    if not thresholds:
        return ""
    if key in thresholds.get("min", {}):
        return f"≥ {thresholds['min'][key]}"
    if key in thresholds.get("max", {}):
        return f"≤ {thresholds['max'][key]}"
    return ""


def kind_table(result: EvalResult) -> Table:
    table = Table(title="By question kind")
    for header in ("kind", "n", "system", *(m.short for m in KIND_METRICS)):
        table.add_column(header, justify="left" if header in ("kind", "system") else "right")
    for row in _kind_rows(result):
        if row[0]:
            table.add_section()
        table.add_row(*row)
    return table


# --- files ----------------------------------------------------------------------------------


def write_reports(
    result: EvalResult,
    out: Path,
    thresholds: Thresholds | None = None,
    comparison: Comparison | None = None,
) -> list[Path]:
    """Write report.json, report.md and the plots into ``out``; return their paths.
    ``comparison``: this run against an earlier one (``rag eval --compare``)."""
    out.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    if comparison is not None:
        data["comparison"] = comparison.to_dict()
    json_path = out / "report.json"
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    plots = write_plots(result, out)
    md_path = out / "report.md"
    text = markdown(result, thresholds, [p.name for p in plots])
    if comparison is not None:
        text += "\n" + comparison_markdown(comparison)
    md_path.write_text(text, encoding="utf-8")
    return [json_path, md_path, *plots]


def comparison_table(comparison: Comparison) -> Table:
    table = Table(title=f"Compared with {comparison.earlier} ({comparison.matched} questions)")
    for column in ("metric", "n", "before", "now", "change", "95% interval"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for m in comparison.metrics:
        interval = f"{m.low:+.3f} … {m.high:+.3f}"
        table.add_row(
            m.label,
            str(m.questions),
            f"{m.before:.3f}",
            f"{m.after:.3f}",
            f"{m.change:+.3f}",
            interval if m.beyond_noise else f"[dim]{interval} ({m.verdict})[/]",
        )
    table.caption = (
        f"better now: {len(comparison.gained)}, worse now: {len(comparison.lost)} "
        "(the questions are listed in report.md)"
    )
    return table


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(
    result: EvalResult, thresholds: Thresholds | None = None, plots: list[str] | None = None
) -> str:
    systems = _systems(result)
    meta = result.meta
    parts = [
        "# Eval report",
        "",
        f"{meta['questions']} questions from `{meta['question_set']}` over {len(meta['articles'])} "
        f"articles ({meta['corpus']}); k = {meta['k']}; run {meta['created']}.",
        "",
        *(f"- **{s}**: {meta['systems'][s]}" for s in systems),
        "",
        "## Overall",
        "",
        _md_table(
            ["metric", *systems, "gate", "target"],
            [
                [
                    m.label,
                    *(m.format(result.summary[s]["overall"].get(m.key)) for s in systems),
                    _gate(m.key, thresholds),
                    _target(m.key, thresholds),
                ]
                for m in METRICS
            ],
        ),
        "",
        DEFINITIONS,
        "## By question kind",
        "",
        _md_table(["kind", "n", "system", *(m.short for m in KIND_METRICS)], _kind_rows(result)),
        "",
        "*facts*: key-fact recall; *cite P/R*: citation precision/recall; *quotes*: quote "
        "fidelity; *refused*: share of that kind's questions refused; *p50 ms*: median latency.",
        "",
        *(f"![{name}]({name})\n" for name in plots or []),
        _failures_md(result),
    ]
    return "\n".join(parts) + "\n"


def _failures_md(result: EvalResult) -> str:
    failed = list(iter_failures(result.records["project"]))
    lines = [f"## Failed questions (project): {len(failed)}", ""]
    for r in failed:
        answer = " ".join(r["answer"].split())
        cited = ", ".join(dict.fromkeys(r["scores"]["cited"])) or "nothing"
        lines += [
            f"### {r['id']} ({r['kind']}): {r['question']}",
            "",
            *(f"- {reason}" for reason in r["scores"]["failures"]),
            f"- retrieved: {', '.join(r['scores']['retrieved']) or 'nothing'}; cited: {cited}",
            f"- answer{' (refused)' if r['refused'] else ''}: {answer[:600]}",
            "",
        ]
    return "\n".join(lines)


# --- plots ----------------------------------------------------------------------------------

# (metric, panel title); "refused" is the share of each kind's questions refused.
PLOT_PANELS = (
    ("hit_at_1", "hit@1"),
    ("key_fact_recall", "key-fact recall"),
    ("citation_precision", "citation precision"),
    ("refused", "share refused (want 1 for unanswerable, 0 otherwise)"),
)
COLORS = {"project": "#1f77b4", "baseline": "#ff7f0e"}


def write_plots(result: EvalResult, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    plots = [
        _plot_by_kind(result, out / "metrics_by_kind.png"),
        _plot_latency(result, out / "latency.png"),
    ]
    if refusal_curve(result.records["project"]):
        plots.append(_plot_refusal_curve(result, out / "refusal_curve.png"))
    return plots


def refusal_curve(records: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    """(threshold, share of unanswerable refused, share of answerable refused) per threshold.

    From each question's ``confidence``: the probability the engine gave that its evidence
    answers. Empty when the set lacks either kind of question.
    """
    scored = [r for r in records if r.get("confidence") is not None]
    yes = sorted(r["confidence"] for r in scored if r["answerable"])
    no = sorted(r["confidence"] for r in scored if not r["answerable"])
    if not yes or not no:
        return []
    thresholds = sorted({0.0, 1.0001, *yes, *no})
    return [
        (t, sum(c < t for c in no) / len(no), sum(c < t for c in yes) / len(yes))
        for t in thresholds
    ]


def _plot_refusal_curve(result: EvalResult, path: Path) -> Path:
    import matplotlib.pyplot as plt

    curve = refusal_curve(result.records["project"])
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.plot([c[2] for c in curve], [c[1] for c in curve], drawstyle="steps-post")
    overall = result.summary["project"]["overall"]
    ax.scatter(
        [overall["refused_answerable"]],
        [overall["refused_unanswerable"]],
        color="#d62728",
        zorder=3,
        label="the fitted threshold",
    )
    ax.axvline(0.05, color="grey", linestyle=":", label="5% false refusals")
    ax.set_xlabel("answerable questions refused (false refusals)")
    ax.set_ylabel("unanswerable questions refused")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Refusal: every threshold on P(answerable)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _by_kind(result: EvalResult, system: str, key: str) -> dict[str, float | None]:
    """A metric overall and for each kind, for one system."""
    summary = result.summary[system]
    rows = {"overall": summary["overall"], **summary["by_kind"]}
    return {kind: row.get(key) for kind, row in rows.items()}


def _plot_by_kind(result: EvalResult, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PLOT_PANELS), figsize=(4.6 * len(PLOT_PANELS), 4.4))
    for ax, (key, title) in zip(axes, PLOT_PANELS, strict=True):
        _bars(ax, result, key)
        ax.set_title(title, fontsize=10)
    axes[0].legend(loc="lower left")
    fig.suptitle("Project vs stock llama-index, overall and by question kind")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax: Any, result: EvalResult, key: str) -> None:
    """Grouped bars of one metric: a group per kind where it applies, a bar per system."""
    import numpy as np

    systems = _systems(result)
    values = {s: _by_kind(result, s, key) for s in systems}
    kinds = [k for k in values["project"] if any(values[s][k] is not None for s in systems)]
    x = np.arange(len(kinds))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        heights = [values[system][k] or 0.0 for k in kinds]
        bars = ax.bar(x + i * width, heights, width, label=system, color=COLORS[system])
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    ax.set_xticks(x + width * (len(systems) - 1) / 2, kinds, rotation=40, ha="right")
    ax.set_ylim(0, 1.1)
    ax.grid(axis="y", alpha=0.3)


def _plot_latency(result: EvalResult, path: Path) -> Path:
    import matplotlib.pyplot as plt

    systems = _systems(result)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    data = [[r["latency_ms"] for r in result.records[s]] for s in systems]
    box = ax.boxplot(data, orientation="horizontal", patch_artist=True, showfliers=True)
    for patch, system in zip(box["boxes"], systems, strict=True):
        patch.set_facecolor(COLORS[system])
        patch.set_alpha(0.6)
    labels = []
    for system in systems:
        overall = result.summary[system]["overall"]
        p50, p95 = overall["latency_p50_ms"], overall["latency_p95_ms"]
        labels.append(f"{system}\np50 {p50:.0f} ms\np95 {p95:.0f} ms")
    ax.set_yticks(range(1, len(systems) + 1), labels, fontsize=8)
    ax.set_xlabel("time per question (ms, timings_ms.total)")
    ax.set_title("Latency per question")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
