"""``rag serve`` start-up order (fakes stand in for the app, the engine and uvicorn: the
test is about the order of the calls, which a real start shows only as a rare crash)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from ui.cli import register


def test_the_web_app_is_built_before_the_engine_starts_its_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Gradio parses its components' source with ``ast.parse`` while it builds the app, and
    the engine's index refresh reads ``.npy`` headers with ``ast.literal_eval`` in a
    background thread; on Python 3.11 the two at once can fail with "AST constructor
    recursion depth mismatch" (CPython gh-106905)."""
    calls: list[str] = []
    engine = SimpleNamespace(version=SimpleNamespace(documents=5))
    monkeypatch.setattr("ui.api.create_app", lambda settings, engine: calls.append("app"))
    monkeypatch.setattr(
        "rag.engine.get_engine", lambda settings=None: calls.append("engine") or engine
    )
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: calls.append("serve"))
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)

    run = CliRunner().invoke(app, ["serve"])

    assert run.exit_code == 0, run.output
    assert calls == ["app", "engine", "serve"]
