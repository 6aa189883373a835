"""Articles full of <script>, event handlers, javascript: links and Markdown tricks stay text.

The hostile articles (tests/ui/hostile/) are indexed next to the seeds. Their payloads
set ``window.__pwned`` or open an alert; their image points at 127.0.0.2, which the
loopback check below would catch. Every check reads the DOM as well, so a policy that
merely blocks execution would not hide markup that got through.
"""

from __future__ import annotations

import pytest
from browser_helpers import ask, assert_only_loopback, open_chat, same_text

from ui.screenshots import WAIT_MS, HostPage, LocalServer, host_page_html

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TXT_QUESTIONS = [
    "What did the Zorblax ministry announce about pineapple tariffs?",
    "What did the Zorblax trade minister call the pineapple tariffs?",
    "What did Zorblax exporters warn about the pineapple tariffs?",
]
HTML_QUESTION = "What did Quuxlia confirm about the mango levy?"

# Markup the payloads would leave in the DOM if any of them were parsed as HTML.
INJECTED = (
    "script:not([src]):not([type])",  # a script element inside rendered content
    "img[src='x']",
    "img[src*='127.0.0.2']",
    "svg[onload]",
    "iframe",
    "[onerror], [onload], [onclick], [onmouseover]",
    "a[href^='javascript' i]",
    "b",
)


def injected_elements(page, root: str) -> dict[str, int]:  # noqa: ANN001
    found = {}
    for selector in INJECTED:
        count = page.locator(f"{root} {selector}").count()
        if count:
            found[selector] = count
    return found


def assert_inert(page, watched, *roots: str) -> None:  # noqa: ANN001
    assert page.evaluate("typeof window.__pwned") == "undefined"
    for root in roots:
        assert injected_elements(page, root) == {}, f"markup from an article ran in {root}"
    assert watched.dialogs == []


def test_hostile_text_is_shown_as_text_in_chat_and_sources(watched, hostile_server) -> None:
    page = open_chat(watched, hostile_server)
    for question in TXT_QUESTIONS:
        ask(page, question)
    ask(page, HTML_QUESTION)

    chat = same_text(page.locator("#chat").inner_text())
    assert "<script>window.__pwned='script';alert('script')</script>" in chat
    assert "<img src=x onerror=" in chat
    assert "[fair and simple](javascript:window.__pwned='mdlink')" in chat
    assert "$$x^2$$" in chat
    sources = same_text(page.locator("#sources").inner_text())
    assert "Quuxlia <b onmouseover=alert('h1')>mango levy</b> takes effect" in sources
    assert_inert(page, watched, "#chat", "#sources", "#article-list")

    page.get_by_role("tab", name="Articles").click()
    page.locator("#article-list tbody tr").first.wait_for(timeout=WAIT_MS)
    listed = same_text(page.locator("#article-list").inner_text())
    assert "Zorblax ministry <img src=x onerror=" in listed
    assert_inert(page, watched, "#article-list")
    assert_only_loopback(watched)
    assert watched.page_errors == []


@pytest.mark.parametrize("doc_id", ["hostile", "hostile_page"])
def test_hostile_article_view_is_inert(watched, hostile_server, doc_id: str) -> None:
    page = watched.new_page()
    page.goto(f"{hostile_server.url}/article/{doc_id}?start=0&end=40#quote")
    page.locator("article h1").wait_for(timeout=WAIT_MS)
    text = same_text(page.locator("article").inner_text())
    if doc_id == "hostile":
        assert "![tracker](http://127.0.0.2:9/pixel.png)" in text
        assert "${window.__pwned='template'}" in text
        assert "<iframe src=\"javascript:window.__pwned='iframe'\"></iframe>" in text
    else:
        assert "<script>window.__pwned='entity-script';alert('entity')</script>" in text
    assert page.locator("mark#quote").count() == 1
    assert_inert(page, watched, "article")
    assert_only_loopback(watched)


def test_hostile_text_is_inert_in_the_embedded_widget(
    watched, hostile_server: LocalServer, host_page: HostPage
) -> None:
    url = host_page.write("hostile.html", host_page_html(hostile_server.url))
    page = watched.new_page()
    page.goto(url)
    page.locator("gradio-app #question textarea").wait_for(timeout=WAIT_MS)
    for question in TXT_QUESTIONS:
        ask(page, question, chat="#widget-chat")
    chat = same_text(page.locator("#widget-chat").inner_text())
    assert "<script>window.__pwned='script';alert('script')</script>" in chat
    assert_inert(page, watched, "gradio-app")
    assert_only_loopback(watched)
