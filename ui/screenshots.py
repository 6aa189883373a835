"""``make screenshots``: PNGs of the chat, the article view and the embedded widget in docs/.

Also home of what the browser tests and the benchmark share: start ``rag serve`` on a
free loopback port with an index of its own, serve an intranet-like host page with the
two-line embed snippet from another port, and launch Debian's chromium with Playwright.

    python -m ui.screenshots [--out docs] [--url http://127.0.0.1:7860]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

LOOPBACK = "127.0.0.1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXAMPLE_QUESTION = "What are Russia's stated conditions for talks?"
# Loading the embedding model, and indexing the seeds into an empty index, take a while
# on two cores.
SERVER_START_SECONDS = 600
WAIT_MS = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


# --- the app server -------------------------------------------------------------------------


@dataclass
class LocalServer:
    """A ``rag serve`` subprocess on the loopback interface."""

    port: int
    process: subprocess.Popen
    log_path: Path
    workdir: Path
    owns_workdir: bool = True

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_server(
    *,
    allowed_origins: list[str] | None = None,
    seeds_dir: Path | None = None,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> LocalServer:
    """Start ``rag serve`` with a fresh index in a temporary folder; wait until it answers."""
    workdir = Path(tempfile.mkdtemp(prefix="rag-serve-"))
    port = port or free_port()
    env = {
        **os.environ,
        "RAG_INDEX_DIR": str(workdir / "index"),
        "RAG_ALLOWED_ORIGINS": ",".join(allowed_origins or []),
        "RAG_HOST": LOOPBACK,
        "RAG_PORT": str(port),
        **({"RAG_SEEDS_DIR": str(seeds_dir)} if seeds_dir else {}),
        **(extra_env or {}),
    }
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "serve", "--host", LOOPBACK, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = LocalServer(port, process, log_path, workdir)
    try:
        wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def wait_until_ready(server: LocalServer, timeout: float = SERVER_START_SECONDS) -> float:
    """Seconds until ``/api/health`` answered 200; RuntimeError if the server died."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"rag serve exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        if http_status(f"{server.url}/api/health") == 200:
            return time.monotonic() - started
        time.sleep(0.25)
    raise RuntimeError(f"rag serve not ready after {timeout:.0f} s:\n{server.log_tail()}")


@functools.cache
def _no_proxy_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str) -> int | None:
    try:
        with _no_proxy_opener().open(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@contextmanager
def running_server(**kwargs: object) -> Iterator[LocalServer]:
    server = start_server(**kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


# --- a page of another site that embeds the widget ------------------------------------------


def embed_snippet(app_url: str) -> str:
    """The two lines an intranet page needs (see README, "Embed the chat")."""
    return (
        f'<script type="module" src="{app_url}/embed.js"></script>\n'
        f'<gradio-app src="{app_url}/widget/"></gradio-app>\n'
    )


def host_page_html(app_url: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Intranet: news desk</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f3f4f6}"
        "header{background:#1e3a8a;color:#fff;padding:0.8rem 1.2rem}"
        "main{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,26rem);gap:1rem;"
        "padding:1rem;max-width:72rem;margin:auto}"
        "@media (max-width:760px){main{grid-template-columns:1fr}}"
        "aside{background:#fff;border-radius:8px;padding:0.5rem}</style></head><body>"
        "<header><strong>Intranet</strong> · News desk</header><main><section>"
        "<h2>Morning briefing</h2><p>Ask the news assistant on the right: every answer "
        "quotes our indexed articles and links to the quote.</p></section>"
        f'<aside id="news-widget">\n{embed_snippet(app_url)}</aside>'
        "</main></body></html>"
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@dataclass
class HostPage:
    """A static site on its own loopback port (a different origin from the app)."""

    port: int
    directory: Path
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def origin(self) -> str:
        return self.url

    def write(self, name: str, html: str) -> str:
        (self.directory / name).write_text(html, encoding="utf-8")
        return f"{self.url}/{name}"

    def start(self) -> HostPage:
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        self._server = ThreadingHTTPServer((LOOPBACK, self.port), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# --- the browser ----------------------------------------------------------------------------


def chromium_path() -> str:
    """Debian's chromium (``apt-get install chromium``); Playwright's own builds are not used."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        raise RuntimeError("chromium not found: apt-get update && apt-get install -y chromium")
    return path


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def ask_in_page(page: Page, question: str, chat_selector: str) -> None:
    """Type a question into the chat and wait until its answer links to an article."""
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    page.locator(f"{chat_selector} a[href*='/article/']").first.wait_for(timeout=WAIT_MS)
    page.locator("#question button").first.wait_for(timeout=WAIT_MS)


def settle(page: Page) -> None:
    """Let the last streamed update and the layout finish before a screenshot."""
    page.wait_for_timeout(600)


# --- screenshots ----------------------------------------------------------------------------


def take_screenshots(app_url: str, host: HostPage, out_dir: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            shots += _chat_and_article(browser, app_url, out_dir)
            shots.append(_phone(browser, app_url, out_dir))
            shots.append(_widget(browser, app_url, host, out_dir))
        finally:
            browser.close()
    return shots


def _chat_and_article(browser: Browser, app_url: str, out_dir: Path) -> list[Path]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(app_url)
    page.get_by_role("button", name=EXAMPLE_QUESTION).click()
    page.locator("#sources .rag-citation mark").first.wait_for(timeout=WAIT_MS)
    settle(page)
    chat_png = out_dir / "chat.png"
    page.screenshot(path=str(chat_png), full_page=True)
    with context.expect_page() as opened:
        page.locator("#sources a.rag-cite-link").first.click()
    article = opened.value
    article.locator("mark#quote").wait_for(timeout=WAIT_MS)
    article.set_viewport_size({"width": 1000, "height": 760})
    article.locator("mark#quote").scroll_into_view_if_needed()
    article_png = out_dir / "article.png"
    article.screenshot(path=str(article_png))
    context.close()
    return [chat_png, article_png]


def _phone(browser: Browser, app_url: str, out_dir: Path) -> Path:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    page = context.new_page()
    page.goto(app_url)
    ask_in_page(page, EXAMPLE_QUESTION, "#chat")
    settle(page)
    path = out_dir / "phone.png"
    page.screenshot(path=str(path))
    context.close()
    return path


def _widget(browser: Browser, app_url: str, host: HostPage, out_dir: Path) -> Path:
    page_url = host.write("index.html", host_page_html(app_url))
    context = browser.new_context(viewport={"width": 1200, "height": 820})
    page = context.new_page()
    page.goto(page_url)
    ask_in_page(page, EXAMPLE_QUESTION, "#widget-chat")
    settle(page)
    path = out_dir / "widget.png"
    page.screenshot(path=str(path))
    context.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"), help="Folder for the PNGs.")
    parser.add_argument(
        "--url", help="A running server whose RAG_ALLOWED_ORIGINS includes --host-port."
    )
    parser.add_argument("--host-port", type=int, default=None, help="Port of the host page.")
    args = parser.parse_args(argv)
    host = HostPage(args.host_port or free_port(), Path(tempfile.mkdtemp(prefix="rag-host-")))
    host.start()
    try:
        if args.url:
            shots = take_screenshots(args.url.rstrip("/"), host, args.out)
        else:
            with running_server(allowed_origins=[host.origin]) as server:
                shots = take_screenshots(server.url, host, args.out)
    finally:
        host.stop()
        shutil.rmtree(host.directory, ignore_errors=True)
    for shot in shots:
        print(shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
