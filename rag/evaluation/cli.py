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
    from rag.evaluation.compare import Comparison
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
    question_sets: Annotated[
        list[Path] | None,
        typer.Option(
            "--set",
            help="Eval set: JSON lines of questions with gold data. Repeat for several sets "
            "over the same corpus; each is reported separately. Default: eval/questions.jsonl.",
        ),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            help="Folder of articles to ingest first into a separate eval index "
            "(OUT/index, collection <collection>-eval). Default: the index the chat uses.",
        ),
    ] = None,
    only: Annotated[
        Path | None,
        typer.Option("--only", help="A file of article ids: index only these of --corpus."),
    ] = None,
    index_dir: Annotated[
        Path | None, typer.Option("--index", help="Where --corpus is indexed (default OUT/index).")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where report.json, report.md and the plots go.")
    ] = REPO_ROOT / "eval" / "out",
    baseline: Annotated[bool, typer.Option(help="Also run the stock llama-index baseline.")] = True,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 1 when a metric misses its set's thresholds.toml."),
    ] = False,
    compare_with: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            help="An earlier --out folder: each metric's change, question by question, with "
            "a 95% interval, and the questions that got better or worse.",
        ),
    ] = None,
) -> None:
    """Score answers, citations, refusals and latency on eval sets, vs a llama-index baseline."""
    from rag.evaluation.runner import DEFAULT_SET, EvalConfig, read_article_list, thresholds_for

    if corpus is not None and not corpus.is_dir():
        err.print(f"[bold red]error:[/] --corpus {escape(str(corpus))} is not a folder")
        raise typer.Exit(2)
    if only is not None and corpus is None:
        err.print("[bold red]error:[/] --only needs --corpus")
        raise typer.Exit(2)
    sets = question_sets or [DEFAULT_SET]
    articles = _articles(only, read_article_list)
    failed = False
    earlier = _earlier_reports(compare_with, sets)
    for i, question_set in enumerate(sets):
        set_out = set_folder(out_dir, question_set, sets)
        config = EvalConfig(
            question_set,
            corpus if i == 0 else None,  # the first set indexes the corpus; the rest reuse it
            only=articles,
            index_dir=(index_dir or out_dir / "index") if corpus is not None else None,
            out=set_out,
            baseline=baseline,
            settings=None,
        )
        if i > 0 and corpus is not None:
            config = _reuse_index(config, corpus)
        result = _run(config)
        thresholds = thresholds_for(question_set, only)
        out.print(f"[bold]{escape(str(question_set))}[/]")
        _print_results(result, thresholds)
        comparison = _compare(earlier[i], result)
        for path in _write(result, set_out, thresholds, comparison):
            out.print(f"wrote {escape(str(path))}")
        failed |= bool(thresholds and _gate(result, thresholds))
    if failed and check:
        raise typer.Exit(1)


def _articles(only: Path | None, read: Callable[[Path], list[str]]) -> list[str] | None:
    if only is None:
        return None
    try:
        return read(only)
    except RagError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None


def set_folder(root: Path, question_set: Path, sets: list[Path]) -> Path:
    """Where a set's reports go under --out (and are found under --compare): the folder
    itself for one set, a folder per set for several."""
    return root if len(sets) == 1 else root / question_set.stem


def _earlier_reports(folder: Path | None, sets: list[Path]) -> list[dict | None]:
    """The earlier report of each set (laid out as --out lays them), read before the run:
    --compare may name the folder this run overwrites."""
    if folder is None:
        return [None] * len(sets)
    from rag.evaluation.compare import load_report

    if not folder.exists():
        err.print(f"[bold red]error:[/] --compare {escape(str(folder))} does not exist")
        raise typer.Exit(2)
    reports: list[dict | None] = []
    for question_set in sets:
        earlier = set_folder(folder, question_set, sets)
        if len(sets) > 1 and not (earlier / "report.json").exists():
            err.print(f"[yellow]warning:[/] no earlier report of {question_set.stem} in {folder}")
            reports.append(None)
            continue
        try:
            reports.append(load_report(earlier))
        except RagError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
    return reports


def _compare(earlier: dict | None, result: EvalResult) -> Comparison | None:
    if earlier is None:
        return None
    from rag.evaluation.compare import compare
    from rag.evaluation.report import comparison_table

    comparison = compare(earlier, result.records["project"])
    out.print(comparison_table(comparison))
    return comparison


def _reuse_index(config: EvalConfig, corpus: Path) -> EvalConfig:
    """Later sets ask the index the first set built, without indexing again."""
    from rag.evaluation.runner import EvalConfig, eval_settings

    indexed = eval_settings(
        EvalConfig(config.questions, corpus, index_dir=config.index_dir, out=config.out)
    )
    config.settings = indexed
    return config


def _run(config: EvalConfig) -> EvalResult:
    from rag.evaluation.runner import run_eval

    try:
        with progress_bars() as start:
            return run_eval(config, start)
    except (RagError, OSError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(getattr(exc, "exit_code", 2)) from None


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


def _write(
    result: EvalResult,
    out_dir: Path,
    thresholds: Thresholds | None,
    comparison: Comparison | None = None,
) -> list[Path]:
    from rag.evaluation.report import write_reports

    try:
        return write_reports(result, out_dir, thresholds, comparison)
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
