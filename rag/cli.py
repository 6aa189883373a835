"""The ``rag`` command: ingest, ask, sources, plus commands from plugins (serve, eval)."""

from __future__ import annotations

import json
import logging
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from rag.errors import RagError
from rag.models import Answer, quoted
from rag.settings import Settings, get_settings

app = typer.Typer(
    help="Ask questions of a news corpus; answers quote and cite their articles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def fail(exc: RagError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(str(exc))}")
    return typer.Exit(exc.exit_code)


def one_shot(settings: Settings) -> Settings:
    """Settings for a process that answers and exits: the tokenizer that is ready first,
    and questions on the embedding model's quickest-loading runtime, unless
    ``RAG_TOKENIZER_PRELOAD`` / ``RAG_QUERY_RUNTIME`` choose, or the questions go through
    an adapter (which only the int8 encoder runs)."""
    chosen, update = settings.model_fields_set, {}
    if "tokenizer_preload" not in chosen:
        update["tokenizer_preload"] = False
    if "query_runtime" not in chosen and settings.query_adapter is None:
        update["query_runtime"] = "c"
    return settings.model_copy(update=update)


@app.command()
def ingest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or folders of .txt, .md, .html articles, .jsonl/.ndjson/.csv/.json "
            "exports (one article per record) or .rss/.atom/.xml feeds (one per item). "
            "Default: seeds/."
        ),
    ] = None,
    prune: Annotated[
        bool, typer.Option(help="Remove indexed articles whose files are gone.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Index articles into Chroma. Unchanged files are not re-embedded."""
    from rag.ingest import ingest_paths
    from rag.sources import readable_types

    settings = get_settings()
    try:
        report = ingest_paths(
            paths or [settings.seeds_dir],
            settings,
            prune=prune,
            progress=not quiet and sys.stderr.isatty(),
        )
    except RagError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        err.print("interrupted: no article is half-indexed; run `rag ingest` again to finish")
        raise typer.Exit(130) from None
    for path, reason in report.skipped:
        record = re.match(r"line (\d+): (.*)", reason, re.DOTALL)
        what = f"a record of {path} (line {record[1]})" if record else path
        err.print(f"[yellow]skipped[/] {escape(what)}: {escape(record[2] if record else reason)}")
    if report.not_read:
        kinds = ", ".join(f"{n} {suffix}" for suffix, n in sorted(report.not_read.items()))
        err.print(
            f"[yellow]not read[/]: files of other types ({kinds}); rag reads {readable_types()}"
        )
    out.print(report.summary())
    if report.files == 0:
        raise typer.Exit(1)


@app.command()
def remove(
    doc_ids: Annotated[
        list[str] | None, typer.Argument(help="Article ids, as `rag sources` lists them.")
    ] = None,
    source: Annotated[
        list[Path] | None,
        typer.Option(
            "--source",
            help="Every article read from this file or folder, e.g. seeds/ (repeatable).",
        ),
    ] = None,
) -> None:
    """Remove articles from the index: by id, or all those read from a file or folder."""
    from rag.errors import BadQuestionError
    from rag.ingest import articles_from, remove_articles
    from rag.store import IndexStore

    settings = get_settings()
    try:
        if not doc_ids and not source:
            raise BadQuestionError("name the articles to remove: ids, or --source PATH")
        records = IndexStore(settings).document_records()
        if unknown := sorted(set(doc_ids or []) - set(records)):
            raise BadQuestionError(
                f"not in the index: {', '.join(unknown[:5])}; `rag sources` lists the articles"
            )
        wanted = sorted(set(doc_ids or []) | set(articles_from(records, source or [])))
        if source and not wanted:
            paths = ", ".join(str(p) for p in source)
            raise BadQuestionError(f"no indexed article was read from {paths}")
        removed = remove_articles(wanted, settings)
    except RagError as exc:
        raise fail(exc) from None
    chunks = sum(records[d].chunks for d in wanted)
    out.print(f"{removed} articles removed ({chunks} chunks)")


@app.command()
def ask(
    questions: Annotated[list[str], typer.Argument(help="One or more questions.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per question, one per line.")
    ] = False,
    top_k: Annotated[
        int | None, typer.Option("--top-k", min=1, max=50, help="Passages to retrieve.")
    ] = None,
    doc: Annotated[
        list[str] | None, typer.Option("--doc", help="Only these article ids (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only articles published on or after this ISO date.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only articles published on or before this ISO date.")
    ] = None,
) -> None:
    """Answer questions with verbatim, cited quotes from the articles."""
    from rag.dates import DateRange
    from rag.engine import Engine

    try:
        dates = DateRange.of(since, until)  # a bad date fails before the model loads
        engine = Engine(one_shot(get_settings()))
    except RagError as exc:
        raise fail(exc) from None
    if dates is not None:
        err.print(
            f"[dim]only articles published {dates.describe()}; "
            f"articles without a date are left out[/]"
        )
    failed: RagError | None = None
    for question in questions:
        try:
            answer = engine.ask(question, top_k=top_k, doc_ids=doc, since=since, until=until)
        except RagError as exc:
            failed = exc
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            continue
        if json_output:
            sys.stdout.write(json.dumps(answer.to_dict(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            print_answer(answer)
    if failed is not None:
        raise typer.Exit(failed.exit_code)


def print_answer(answer: Answer) -> None:
    """The answer, then its numbered sources: article, file, span and the quote."""
    out.print(f"[bold]Q:[/] {escape(answer.question)}")
    if answer.standalone_question:
        out.print(f"[dim](searched for: {escape(answer.standalone_question)})[/]")
    if answer.weak_evidence:
        out.print(escape(answer.weak_evidence_note()), style="yellow")
    out.print(escape(answer.answer))
    if answer.citations:
        out.print()
        out.print("[bold]Sources[/]")
    for c in answer.citations:
        out.print(f"  [bold]\\[{c.n}][/] {escape(c.title)}")
        if byline := citation_byline(c):
            out.print(f"      {escape(byline)}")
        if c.url:
            out.print(f"      {escape(c.url)}", style="dim")
        out.print(f"      {escape(c.source)}, characters {c.start}–{c.end}", style="dim")
        out.print(f"      {escape(quoted(c.quote))}", style="italic")
        if c.also_in:
            out.print(f"      also in: {escape(', '.join(c.also_in))}", style="dim")
    out.print()


def citation_byline(c) -> str:  # noqa: ANN001 - rag.models.Citation
    """ "Publisher · 6 Nov 2024", either part alone, or "" when neither is known."""
    from rag.dates import display_date

    return " · ".join(x for x in (c.publisher, display_date(c.published)) if x)


@app.command()
def show(doc_id: Annotated[str, typer.Argument(help="An article id (`rag sources`).")]) -> None:
    """Print an article's text exactly: citation offsets index into this output."""
    from rag.errors import BadQuestionError
    from rag.store import IndexStore

    try:
        found = IndexStore(get_settings()).document_text(doc_id)
    except RagError as exc:
        raise fail(exc) from None
    if found is None:
        raise fail(BadQuestionError(f"unknown article id: {doc_id}; `rag sources` lists them"))
    sys.stdout.flush()
    sys.stdout.buffer.write(found[1].encode("utf-8"))  # no newline translation, no re-encoding
    sys.stdout.buffer.flush()


@app.command()
def sources() -> None:
    """List the indexed articles with their chunk counts."""
    from rag.store import IndexStore

    try:
        records = IndexStore(get_settings()).document_records()
    except RagError as exc:
        raise fail(exc) from None
    if not records:
        err.print("the index is empty: run `rag ingest` to index the articles in seeds/")
        raise typer.Exit(1)
    for doc_id, r in sorted(records.items()):
        out.print(
            f"[bold]{doc_id}[/]  {r.chunks} chunks  {r.sentences} sentences  {escape(r.source)}"
        )
        out.print(f"    {escape(r.title)}")
        if byline := citation_byline(r):
            out.print(f"    {escape(byline)}" + (f"  {escape(r.url)}" if r.url else ""))
    out.print(f"{len(records)} articles, {sum(r.chunks for r in records.values())} chunks")
    groups: dict[str, list[str]] = {}
    for doc_id, r in sorted(records.items()):
        groups.setdefault(r.group, []).append(doc_id)
    groups = {g: ids for g, ids in groups.items() if len(ids) > 1}
    if groups:
        out.print()
        out.print(f"[bold]Near duplicates[/] ({len(groups)} groups; answers quote one copy)")
        for group, ids in sorted(groups.items()):
            copies = ", ".join(d for d in ids if d != group)
            out.print(f"  {escape(group)}  copies: {escape(copies)}")


@app.command()
def config() -> None:
    """Show the settings in force (from RAG_* variables and .env)."""
    settings: Settings = get_settings()
    for name, value in settings.model_dump().items():
        if isinstance(value, list):
            value = ",".join(map(str, value))
        out.print(f"RAG_{name.upper()}={escape('' if value is None else str(value))}")


def _load_plugins() -> None:
    """Commands from the ``rag.commands`` entry-point group (built-ins use it too)."""
    for ep in entry_points(group="rag.commands"):
        try:
            ep.load()(app)
        except ImportError as exc:
            logging.getLogger(__name__).debug("plugin %s unavailable: %s", ep.name, exc)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    _load_plugins()
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the user, the rest on file
        report = crash_report(exc)
        err.print(
            f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc))}\n"
            f"This is a bug in rag. The details are in {escape(str(report))}; "
            "please attach that file when you report it."
        )
        raise SystemExit(1) from None


def crash_report(exc: BaseException) -> Path:
    """Write the traceback of an unexpected error to a file in the temp folder."""
    import tempfile
    import traceback

    handle, name = tempfile.mkstemp(prefix="rag-crash-", suffix=".txt")
    with open(handle, "w", encoding="utf-8") as fh:
        fh.write(f"rag {' '.join(sys.argv[1:])}\n\n")
        fh.write("".join(traceback.format_exception(exc)))
    return Path(name)


if __name__ == "__main__":
    main()
