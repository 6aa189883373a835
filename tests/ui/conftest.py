"""Servers, a host page on another origin, and Debian's chromium for the UI tests.

Each server is a real ``rag serve`` subprocess on a free loopback port with its own
temporary index (built from the seeds on start), so these fixtures are session-wide.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rag.settings import get_settings
from ui.screenshots import HostPage, LocalServer, free_port, launch_chromium, start_server

HOSTILE_DIR = Path(__file__).parent / "hostile"
# Dated reports from two publishers and one undated letter (tests/data/news).
NEWS_FILE = Path(__file__).parents[1] / "data" / "news" / "harbour.jsonl"
LOOPBACK_HOSTS = {"127.0.0.1"}


@pytest.fixture(scope="session")
def host_page() -> Iterator[HostPage]:
    """A static site on its own port: the allowed embedding origin."""
    directory = Path(tempfile.mkdtemp(prefix="rag-host-"))
    page = HostPage(free_port(), directory).start()
    yield page
    page.stop()
    shutil.rmtree(directory, ignore_errors=True)


def seeds_with(prefix: str, *extra: Path) -> Path:
    """A temporary copy of the seeds plus some more files."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    for path in [*get_settings().seeds_dir.iterdir(), *extra]:
        if path.is_file():
            shutil.copy(path, directory / path.name)
    return directory


@pytest.fixture(scope="session")
def server(host_page: HostPage) -> Iterator[LocalServer]:
    """``rag serve`` on the seeds and the dated news reports, embeddable from the host
    page's origin only."""
    seeds = seeds_with("rag-news-seeds-", NEWS_FILE)
    running = start_server(allowed_origins=[host_page.origin], seeds_dir=seeds)
    yield running
    running.stop()
    shutil.rmtree(seeds, ignore_errors=True)


@pytest.fixture(scope="session")
def hostile_seeds() -> Iterator[Path]:
    """A copy of the seeds plus articles full of script, handlers and Markdown tricks."""
    directory = seeds_with("rag-hostile-seeds-", *HOSTILE_DIR.iterdir())
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def hostile_server(host_page: HostPage, hostile_seeds: Path) -> Iterator[LocalServer]:
    running = start_server(allowed_origins=[host_page.origin], seeds_dir=hostile_seeds)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def browser():  # noqa: ANN201 - playwright type
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """A browser context that records every request and anything a page script leaks."""

    context: object
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def new_page(self):  # noqa: ANN201 - playwright type
        page = self.context.new_page()  # type: ignore[attr-defined]
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        return page

    def _on_dialog(self, dialog) -> None:  # noqa: ANN001
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def outside_requests(self) -> list[str]:
        return [u for u in self.requests if _host(u) not in LOOPBACK_HOSTS and _is_network(u)]


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _is_network(url: str) -> bool:
    return urlsplit(url).scheme not in {"data", "blob", "about", "chrome-extension"}


def _watched_context(browser, **options) -> Iterator[Watched]:  # noqa: ANN001
    context = browser.new_context(**options)
    watched = Watched(context)
    context.on("request", lambda request: watched.requests.append(request.url))
    yield watched
    context.close()


@pytest.fixture
def watched(browser) -> Iterator[Watched]:  # noqa: ANN001
    """A desktop-sized context; tests assert on its requests and dialogs."""
    yield from _watched_context(
        browser,
        viewport={"width": 1280, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )


@pytest.fixture
def phone(browser) -> Iterator[Watched]:  # noqa: ANN001
    yield from _watched_context(
        browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001, ANN201 - pytest's hook
    """When a browser test fails, show the end of each of its servers' logs: a timed-out
    answer is otherwise reported without what the server was doing."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, LocalServer):
            report.sections.append((f"rag serve log ({name})", value.log_tail()))
