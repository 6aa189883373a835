"""``rag eval``: the eval set through the chat's code path and a stock llama-index baseline."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rag.errors import RagError
from rag.settings import REPO_ROOT

if TYPE_CHECKING:
    from rag.evaluation.runner import EvalConfig, EvalResult, Thresholds

err = Console(stderr=True, highlight=False)
# Tables are wider than 80 columns: keep them whole when the output goes to a file or CI log.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int], Callable[[], None]]]:
    """A rich progress display; yields ``start(label, total) -> advance()``."""
    bars = Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )

    def start(label: str, total: int) -> Callable[[], None]:
        task = bars.add_task(label, total=total)
        return lambda: bars.advance(task)

    with bars:
        yield start


def eval_command(
    question_set: Annotated[
        Path, typer.Option("--set", help="Eval set: JSON lines of questions with gold data.")
    ] = REPO_ROOT / "eval" / "questions.jsonl",
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            help="Folder of articles to ingest first into a separate eval index "
            "(OUT/index, collection <collection>-eval). Default: the index the chat uses.",
        ),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where report.json, report.md and the plots go.")
    ] = REPO_ROOT / "eval" / "out",
    baseline: Annotated[bool, typer.Option(help="Also run the stock llama-index baseline.")] = True,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when a metric misses eval/thresholds.toml.")
    ] = False,
) -> None:
    """Score answers, citations, refusals and latency on an eval set, vs a llama-index baseline."""
    from rag.evaluation.runner import DEFAULT_SET, EvalConfig

    if corpus is not None and not corpus.is_dir():
        err.print(f"[bold red]error:[/] --corpus {escape(str(corpus))} is not a folder")
        raise typer.Exit(2)
    result = _run(EvalConfig(question_set, corpus, out=out_dir, baseline=baseline))
    # The thresholds are measured on the project's own set; other sets are not gated.
    thresholds = _thresholds() if question_set.resolve() == DEFAULT_SET.resolve() else None
    _print_results(result, thresholds)
    for path in _write(result, out_dir, thresholds):
        out.print(f"wrote {escape(str(path))}")
    if thresholds and _gate(result, thresholds) and check:
        raise typer.Exit(1)


def _run(config: EvalConfig) -> EvalResult:
    from rag.evaluation.runner import run_eval

    try:
        with progress_bars() as start:
            return run_eval(config, start)
    except (RagError, OSError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(getattr(exc, "exit_code", 2)) from None


def _thresholds() -> Thresholds | None:
    from rag.evaluation.runner import DEFAULT_THRESHOLDS, load_thresholds

    return load_thresholds(DEFAULT_THRESHOLDS) if DEFAULT_THRESHOLDS.exists() else None


def _print_results(result: EvalResult, thresholds: Thresholds | None) -> None:
    from rag.evaluation.report import kind_table, overall_table

    missing = result.meta["missing_gold_articles"]
    if missing:
        more = "…" if len(missing) > 5 else ""
        err.print(
            f"[yellow]warning:[/] {len(missing)} gold article(s) are not in the index "
            f"({escape(', '.join(missing[:5]))}{more}): pass --corpus with the set's articles"
        )
    out.print(overall_table(result, thresholds))
    out.print(kind_table(result))
    failed = result.summary["project"]["overall"]["failed"]
    out.print(f"{failed} of {result.meta['questions']} questions failed a check (see report.md)")


def _write(result: EvalResult, out_dir: Path, thresholds: Thresholds | None) -> list[Path]:
    from rag.evaluation.report import write_reports

    try:
        return write_reports(result, out_dir, thresholds)
    except OSError as exc:
        err.print(f"[bold red]error:[/] cannot write the reports: {escape(str(exc))}")
        raise typer.Exit(1) from None


def _gate(result: EvalResult, thresholds: Thresholds) -> list[str]:
    """Print and return the metrics outside eval/thresholds.toml."""
    from rag.evaluation.runner import check_thresholds

    problems = check_thresholds(result.summary["project"]["overall"], thresholds)
    for problem in problems:
        err.print(f"[bold red]gate:[/] {escape(problem)}")
    return problems


def register(app: typer.Typer) -> None:
    """Entry point of the ``rag.commands`` group: adds ``rag eval``."""
    app.command("eval")(eval_command)
