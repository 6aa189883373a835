"""The web server: JSON API, article view, embed script, and the two Gradio apps.

Routes:
    POST /api/ask           the ``rag ask --json`` object for {"question", "history"?, "top_k"?}
    GET  /api/health        for load balancers
    GET  /api/sources       the indexed articles
    GET  /api/articles/{id} an article's text (what citation offsets index into) and metadata
    GET  /api/openapi.json  the schema of the routes above
    GET  /article/{doc_id}  an article as text, ?start=&end= highlighted (#quote scrolls to it)
    GET  /embed.js          stable URL of Gradio's <gradio-app> web component
    /widget/                the compact chat, for iframes and <gradio-app>
    /                       the full chat
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import rag  # noqa: F401  (offline defaults before gradio is imported)

# isort: split
import gradio as gr
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.engine import Engine, get_engine
from rag.errors import BadQuestionError, ConfigError, RagError
from rag.settings import Settings, get_settings
from ui import render
from ui.app import APP_CSS, TITLE, build_chat, build_widget

MAX_BODY_BYTES = 64 * 1024
WIDGET_PATH = "/widget"
_ORIGIN = re.compile(r"^https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
_GRADIO_ENTRY = re.compile(r'src="\./assets/(index-[\w-]+\.js)"')


# --- request and response schemas -------------------------------------------------------


class ChatMessage(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="The question, up to RAG_MAX_QUESTION_CHARS characters.")
    history: list[ChatMessage] | None = Field(
        default=None, description="Earlier turns, OpenAI 'messages' format, for follow-ups."
    )
    top_k: int | None = Field(default=None, ge=1, le=50, description="Passages to retrieve.")
    doc_ids: list[str] | None = Field(default=None, description="Only these article ids.")
    since: str | None = Field(
        default=None, description="ISO date: only articles published on or after it."
    )
    until: str | None = Field(
        default=None, description="ISO date: only articles published on or before it."
    )


class CitationOut(BaseModel):
    n: int
    doc_id: str
    title: str
    source: str
    quote: str = Field(
        description="Exactly the article text's [start:end] (GET /api/articles/{doc_id}); "
        "for a file, open(source).read()[start:end]."
    )
    start: int
    end: int
    published: str | None = Field(description="ISO date YYYY-MM-DD, null when unknown.")
    url: str | None
    publisher: str | None
    also_in: list[str] = Field(description="Ids of near-duplicate copies of the article.")


class PassageOut(BaseModel):
    doc_id: str
    title: str
    text: str
    score: float
    start: int
    end: int
    published: str | None
    url: str | None
    publisher: str | None


class AskResponse(BaseModel):
    question: str
    answer: str
    refused: bool
    citations: list[CitationOut]
    passages: list[PassageOut]
    timings_ms: dict[str, float]
    confidence: float | None = Field(
        description="Probability that the evidence answers the question (fitted); a "
        "refusal falls below the fitted threshold. Null when nothing was retrieved."
    )
    weak_evidence: bool = Field(
        description="Answered, but the evidence is less likely than RAG_WEAK_EVIDENCE_BELOW "
        "(0.5) to answer: the quotes may not answer the question."
    )
    standalone_question: str | None = Field(
        default=None,
        description='A follow-up as searched, rewritten against the history ("And what '
        'does Kyiv demand?" after a question on Russia\'s conditions for talks: "What does '
        'Kyiv demand (stated conditions for talks)?"); null when searched as asked.',
    )


class ErrorOut(BaseModel):
    detail: str | list


class SourceOut(BaseModel):
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


class ArticleOut(SourceOut):
    text: str = Field(description="The text every citation's start/end index into.")


# --- middleware ---------------------------------------------------------------------------


class BodyLimitMiddleware:
    """413 for /api/ bodies over the limit, chunked or not: the body is read up front."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(self.limit)(scope, receive, send)
            return
        body = await self._read_body(receive)
        if body is None:
            await _too_large(self.limit)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None once it passes the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body larger than {limit:,} bytes"}, status_code=413)


class SecurityHeadersMiddleware:
    """CSP (with frame-ancestors from the allowlist) and friends on every response."""

    def __init__(self, app: ASGIApp, frame_ancestors: str) -> None:
        self.app = app
        self.app_policy = (
            "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "font-src 'self' data:; connect-src 'self'; media-src 'self' data: blob:; "
            "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
            f"frame-ancestors {frame_ancestors}"
        )
        # Article pages are text and a stylesheet: nothing in them may run or load.
        self.article_policy = (
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
            f"form-action 'none'; frame-ancestors {frame_ancestors}"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.article_policy if scope["path"].startswith("/article/") else self.app_policy

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"content-security-policy", b"x-frame-options")
                ]
                headers += [
                    (b"content-security-policy", policy.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def checked_origins(origins: list[str]) -> list[str]:
    """The embedding allowlist, each entry a scheme://host[:port] origin (or "*")."""
    bad = [o for o in origins if o != "*" and not _ORIGIN.match(o)]
    if bad:
        raise ConfigError(
            "RAG_ALLOWED_ORIGINS must be comma-separated origins like "
            f"https://intranet.example.com, not: {', '.join(bad)}"
        )
    return origins


def frame_ancestors(origins: list[str]) -> str:
    return "*" if "*" in origins else " ".join(["'self'", *origins])


# --- the stable embed script --------------------------------------------------------------


@lru_cache(maxsize=1)
def gradio_entry_script() -> str:
    """File name of Gradio's hashed web-component bundle, e.g. ``index-DphvyggB.js``."""
    index = Path(gr.__file__).parent / "templates" / "frontend" / "index.html"
    match = _GRADIO_ENTRY.search(index.read_text(encoding="utf-8"))
    if match is None:
        raise RuntimeError(f"no web-component script found in {index}")
    return match.group(1)


def embed_script() -> str:
    return (
        f"// {TITLE}: the <gradio-app> web component, served by this app (Gradio "
        f"{gr.__version__}).\n"
        '// Load with <script type="module" src=".../embed.js"></script>.\n'
        f'import "./assets/{gradio_entry_script()}";\n'
    )


# --- the app ------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None, engine: Callable[[], Engine] | None = None
) -> FastAPI:
    """The whole server. ``engine`` defaults to the process-wide ``get_engine``."""
    settings = settings or get_settings()
    engine = engine or (lambda: get_engine(settings))
    origins = checked_origins(settings.allowed_origins)

    app = FastAPI(
        title=f"{TITLE} API",
        summary="Questions in; verbatim, cited quotes from the indexed news articles out.",
        version="1",
        docs_url=None,  # Swagger UI would load its assets from a CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, frame_ancestors=frame_ancestors(origins))
    # Installed even when the list is empty: Gradio then grants no origin either.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials="*" not in origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["*"],
        max_age=600,
    )
    _add_error_handlers(app)
    _add_api_routes(app, engine)
    _add_page_routes(app, engine)

    widget = build_widget(engine, settings.concurrency)
    chat = build_chat(engine, settings.concurrency)
    common = {"footer_links": [], "run_history": False, "ssr_mode": False, "mcp_server": False}
    gr.mount_gradio_app(app, widget, path=WIDGET_PATH, css_paths=[APP_CSS], **common)
    gr.mount_gradio_app(app, chat, path="/", css_paths=[APP_CSS], **common)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"detail": "the body is not valid JSON"}, status_code=400)
        declared = request.headers.get("content-type", "").lower()
        if "json" not in declared and any(tuple(e.get("loc", ())) == ("body",) for e in errors):
            # FastAPI reads a body not declared as JSON as a string: "not a valid dictionary"
            detail = "send the body as JSON, with the header Content-Type: application/json"
            return JSONResponse({"detail": detail}, status_code=400)
        return JSONResponse({"detail": _plain_errors(errors)}, status_code=422)

    @app.exception_handler(BadQuestionError)
    async def bad_question(request: Request, exc: BadQuestionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)


def _plain_errors(errors: list[dict]) -> list[dict]:
    """Validation errors without the echoed input (which may be large or hostile)."""
    return [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in errors]


def _add_api_routes(app: FastAPI, engine: Callable[[], Engine]) -> None:
    errors = {
        400: {"model": ErrorOut, "description": "Empty or oversized question, or bad JSON."},
        413: {"model": ErrorOut, "description": "Body larger than 64 KiB."},
        422: {"model": ErrorOut, "description": "Body does not match the schema."},
    }

    @app.post("/api/ask", response_model=AskResponse, responses=errors, tags=["api"])
    def ask(body: AskRequest) -> Response:
        """Answer a question with verbatim, cited quotes: the `rag ask --json` object."""
        history = [m.model_dump() for m in body.history] if body.history else None
        answer = engine().ask(
            body.question,
            top_k=body.top_k,
            doc_ids=body.doc_ids,
            history=history,
            since=body.since,
            until=body.until,
        )
        return _json(answer.to_dict())

    @app.get("/api/health", tags=["api"])
    def health() -> dict:
        """200 with the article count once the model and index are loaded."""
        running = engine()
        return {
            "status": "ok",
            "articles": running.version.documents,
            "generation": running.version.generation,
        }

    @app.get("/api/sources", response_model=list[SourceOut], tags=["api"])
    def sources() -> Response:
        """The indexed articles."""
        return _json([vars(s) for s in engine().sources()])

    @app.get(
        "/api/articles/{doc_id}",
        response_model=ArticleOut,
        responses={404: {"model": ErrorOut, "description": "No such article."}},
        tags=["api"],
    )
    def article_text(doc_id: str) -> Response:
        """An article's text (what its citations' offsets index into) and metadata."""
        try:
            document, text = engine().document_text(doc_id)
        except BadQuestionError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return _json({**vars(document), "text": text})

    # Last: a method or path no route above takes. Without it, the chat app mounted at "/"
    # would answer "Not Found" to `GET /api/ask`.
    @app.api_route("/api/{path:path}", methods=list(ANY_METHOD), include_in_schema=False)
    def no_such_route(request: Request, path: str) -> JSONResponse:
        allowed = sorted(
            method
            for route in app.routes
            if isinstance(route, Route) and route.path.startswith("/api/")
            if route.matches(request.scope)[0] is Match.PARTIAL
            for method in route.methods or ()
        )
        if allowed:
            listed = ", ".join(allowed)
            return JSONResponse(
                {"detail": f"{request.method} is not allowed on {request.url.path}; use {listed}"},
                status_code=405,
                headers={"Allow": listed},
            )
        return JSONResponse(
            {"detail": f"no API route {request.url.path}; GET /api/openapi.json lists them"},
            status_code=404,
        )


ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def _json(content: object) -> Response:
    # Same serialisation as `rag ask --json`: non-ASCII kept as is.
    body = json.dumps(content, ensure_ascii=False)
    return Response(body, media_type="application/json")


def _add_page_routes(app: FastAPI, engine: Callable[[], Engine]) -> None:
    @app.get("/article/{doc_id}", response_class=HTMLResponse, include_in_schema=False)
    def article(
        doc_id: str,
        start: Annotated[int | None, Query(ge=0)] = None,
        end: Annotated[int | None, Query(ge=0)] = None,
    ) -> HTMLResponse:
        try:
            document, text = engine().document_text(doc_id)
        except BadQuestionError:
            return HTMLResponse("<!doctype html><title>Not found</title>No such article.", 404)
        except RagError as exc:  # the file changed since it was indexed
            return HTMLResponse(
                f"<!doctype html><title>Unavailable</title>{html.escape(str(exc))}", 409
            )
        if start is not None and end is not None and not start < end <= len(text):
            start = end = None
        return HTMLResponse(render.article_page_html(document, text, start, end))

    @app.get(WIDGET_PATH, include_in_schema=False)
    def widget_root(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{WIDGET_PATH}/?{request.url.query}".rstrip("?"), 307)

    @app.get("/embed.js", include_in_schema=False)
    def embed() -> PlainTextResponse:
        return PlainTextResponse(
            embed_script(),
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache"},
        )
