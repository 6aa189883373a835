"""``rag serve``: the chat, the widget and the HTTP API on one port."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind. Default: RAG_HOST.")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port. Default: RAG_PORT (7860).")
    ] = None,
) -> None:
    """Serve the chat at http://HOST:PORT/ (indexes seeds/ first if the index is empty)."""
    import uvicorn
    from rich.console import Console
    from rich.markup import escape

    import rag  # noqa: F401  (offline defaults before gradio and uvicorn load)
    from rag.engine import get_engine
    from rag.errors import RagError
    from rag.settings import get_settings
    from ui.api import create_app

    err = Console(stderr=True, highlight=False)
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    try:
        # The web app is built before the engine starts its background threads (index
        # refresh, model load): Python 3.11's ast.parse is not thread-safe (CPython
        # gh-106905), and Gradio parses its components' source while numpy parses each
        # .npy header the refresh opens. Together they failed a start now and then.
        app = create_app(settings, engine=lambda: get_engine(settings))
        engine = get_engine(settings)  # load the model and index before taking requests
    except RagError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code) from None
    shown = f"[{host}]" if ":" in host else host
    err.print(f"{engine.version.documents} articles indexed. Chat: http://{shown}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
