"""Steps the browser tests share: open the chat, ask, follow a citation, check requests."""

from __future__ import annotations

import httpx

from ui.screenshots import WAIT_MS, LocalServer


def api_answer(server: LocalServer, question: str, history: list | None = None) -> dict:
    body = {"question": question, **({"history": history} if history else {})}
    response = httpx.post(f"{server.url}/api/ask", json=body, timeout=60, trust_env=False)
    response.raise_for_status()
    return response.json()


def same_text(a: str) -> str:
    return " ".join(a.replace("\u00a0", " ").split())


def open_chat(watched, server: LocalServer):  # noqa: ANN001, ANN201
    page = watched.new_page()
    page.goto(server.url)
    page.locator("#question textarea").wait_for(timeout=WAIT_MS)
    return page


def ask(page, question: str, chat: str = "#chat") -> None:  # noqa: ANN001
    """Type, press Enter, and wait for this turn's final answer (it ends in its sources)."""
    wait_for_answer(page, submit(page, question, chat), chat)


def submit(page, question: str, chat: str = "#chat") -> int:  # noqa: ANN001
    """Type and press Enter; the number of answers shown before (for ``wait_for_answer``)."""
    before = page.locator(f"{chat} [data-testid='bot']").count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    return before


def wait_for_answer(page, before: int, chat: str = "#chat") -> None:  # noqa: ANN001
    """Wait for the final answer after the ``before`` ones shown (it ends in its sources)."""
    page.wait_for_function(
        """([chat, before]) => {
            const bots = document.querySelectorAll(chat + " [data-testid='bot']");
            if (bots.length <= before) return false;
            const text = bots[bots.length - 1].innerText;
            return ["Sources", "The articles don't say", "Sorry:"].some(t => text.includes(t));
        }""",
        arg=[chat, before],
        timeout=WAIT_MS,
    )


def last_answer(page):  # noqa: ANN001, ANN201
    return page.locator("#chat [data-testid='bot']").last


def assert_only_loopback(watched) -> None:  # noqa: ANN001
    assert watched.requests, "no request was recorded"
    assert watched.outside_requests() == []


def open_citation(watched, page, link):  # noqa: ANN001, ANN201
    """Click a citation link as a user would; return the article page it opened."""
    with page.context.expect_page() as opened:
        link.click()
    article = opened.value
    article.on("dialog", watched._on_dialog)
    article.locator("mark#quote").wait_for(timeout=WAIT_MS)
    return article


def assert_quote_in_view(article, quote: str) -> None:  # noqa: ANN001
    mark = article.locator("mark#quote")
    assert same_text(mark.inner_text()) == same_text(quote)
    box = mark.bounding_box()
    height = article.evaluate("window.innerHeight")
    assert box is not None and 0 <= box["y"] < height, "the quote is not scrolled into view"
