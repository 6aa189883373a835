"""The chat, the article view and the embedded widget, driven in Debian's chromium."""

from __future__ import annotations

import re

import httpx
import pytest
from browser_helpers import (
    api_answer,
    ask,
    assert_only_loopback,
    assert_quote_in_view,
    last_answer,
    open_chat,
    open_citation,
    same_text,
)

from ui.screenshots import EXAMPLE_QUESTION, WAIT_MS, HostPage, host_page_html

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SEED_003 = "003_042faa28e221901a"


def test_example_question_shows_a_cited_quote_from_article_003(watched, server) -> None:
    expected = api_answer(server, EXAMPLE_QUESTION)
    citation = next(c for c in expected["citations"] if c["doc_id"] == SEED_003)

    page = open_chat(watched, server)
    page.get_by_role("button", name=EXAMPLE_QUESTION).click()
    page.locator("#sources .rag-citation").first.wait_for(timeout=WAIT_MS)

    answer = last_answer(page)
    assert same_text(citation["quote"]) in same_text(answer.inner_text())
    marker = answer.get_by_role("link", name=f"[{citation['n']}]", exact=True)
    assert SEED_003 in marker.get_attribute("href")

    # Sources panel: title, file, the quoted sentence highlighted inside its paragraph.
    item = page.locator(f"#sources .rag-citation[data-n='{citation['n']}']")
    assert same_text(citation["title"]) in same_text(item.inner_text())
    assert citation["source"] in item.inner_text()
    assert same_text(item.locator("mark").inner_text()) == same_text(citation["quote"])

    article = open_citation(watched, page, marker)
    assert SEED_003 in article.url
    assert_quote_in_view(article, citation["quote"])
    assert same_text(citation["title"]) in same_text(article.locator("h1").inner_text())
    assert_only_loopback(watched)
    assert watched.dialogs == [] and watched.page_errors == []


def test_copy_puts_the_answer_and_its_citations_on_the_clipboard(watched, server) -> None:
    expected = api_answer(server, EXAMPLE_QUESTION)
    page = open_chat(watched, server)
    ask(page, EXAMPLE_QUESTION)
    page.locator("#answer-text").get_by_role("button", name=re.compile("copy", re.I)).click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert same_text(expected["citations"][0]["quote"]) in same_text(copied)
    assert "Sources:" in copied
    for c in expected["citations"]:
        assert f"[{c['n']}] " in copied and c["source"] in copied
    assert_only_loopback(watched)


def test_follow_up_is_understood_in_context(watched, server) -> None:
    page = open_chat(watched, server)
    ask(page, EXAMPLE_QUESTION)
    ask(page, "And what does Kyiv demand?")

    searched = page.locator("#sources .rag-searched").inner_text()
    assert "Kyiv" in searched and "conditions for talks" in searched
    history = [
        {"role": "user", "content": EXAMPLE_QUESTION},
        {"role": "assistant", "content": api_answer(server, EXAMPLE_QUESTION)["answer"]},
    ]
    expected = api_answer(server, "And what does Kyiv demand?", history)
    shown = same_text(last_answer(page).inner_text())
    for c in expected["citations"]:
        assert same_text(c["quote"]) in shown
    assert page.locator("#chat [data-testid='user']").count() == 2
    assert_only_loopback(watched)


def test_clearing_the_chat_forgets_the_conversation(watched, server) -> None:
    page = open_chat(watched, server)
    ask(page, EXAMPLE_QUESTION)
    page.locator("#chat").get_by_role("button", name="Clear").click()
    page.locator("#sources .rag-empty").wait_for(timeout=WAIT_MS)
    ask(page, "And what does Kyiv demand?")
    assert page.locator("#sources .rag-searched").count() == 0
    assert page.locator("#chat [data-testid='user']").count() == 1


def test_unanswerable_question_says_the_articles_dont_say(watched, server) -> None:
    page = open_chat(watched, server)
    ask(page, "Who won the 1986 World Cup final in football?")
    assert "The articles don't say" in last_answer(page).inner_text()
    assert "The articles don't say" in page.locator("#sources").inner_text()
    assert page.locator("#sources .rag-citation").count() == 0


def test_article_browser_lists_every_indexed_article(watched, server) -> None:
    sources = httpx.get(f"{server.url}/api/sources", trust_env=False).json()
    page = open_chat(watched, server)
    page.get_by_role("tab", name="Articles").click()
    rows = page.locator("#article-list table.rag-articles tbody tr")
    rows.first.wait_for(timeout=WAIT_MS)
    assert rows.count() == len(sources)
    listed = same_text(page.locator("#article-list").inner_text())
    for s in sources:
        assert same_text(s["title"]) in listed
    with page.context.expect_page() as opened:
        rows.first.get_by_role("link").click()
    article = opened.value
    article.locator("h1").wait_for(timeout=WAIT_MS)
    assert same_text(sources[0]["title"]) in same_text(article.locator("h1").inner_text())
    assert_only_loopback(watched)


def test_phone_width_has_no_sideways_scrolling(phone, server) -> None:
    page = open_chat(phone, server)
    ask(page, EXAMPLE_QUESTION)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    assert page.locator("#sources .rag-citation mark").first.is_visible()
    assert_only_loopback(phone)


def test_widget_embedded_in_another_origin_keeps_citations(
    watched, server, host_page: HostPage
) -> None:
    expected = api_answer(server, EXAMPLE_QUESTION)
    citation = next(c for c in expected["citations"] if c["doc_id"] == SEED_003)
    url = host_page.write("intranet.html", host_page_html(server.url))
    assert host_page.origin != server.url

    page = watched.new_page()
    page.goto(url)
    chat = page.locator("#news-widget gradio-app #widget-chat")
    page.locator("#news-widget gradio-app #question textarea").fill(EXAMPLE_QUESTION)
    page.locator("#news-widget gradio-app #question textarea").press("Enter")
    marker = chat.get_by_role("link", name=f"[{citation['n']}]", exact=True)
    marker.wait_for(timeout=WAIT_MS)

    assert same_text(citation["quote"]) in same_text(chat.inner_text())
    assert marker.get_attribute("href").startswith(f"{server.url}/article/{SEED_003}")
    assert same_text(citation["title"]) in same_text(chat.inner_text())  # the sources list
    article = open_citation(watched, page, marker)
    assert_quote_in_view(article, citation["quote"])
    assert_only_loopback(watched)
    assert watched.dialogs == []


def test_widget_in_an_iframe(watched, server, host_page: HostPage) -> None:
    url = host_page.write(
        "iframe.html",
        f'<!doctype html><title>Intranet</title><iframe id="news" src="{server.url}/widget/" '
        'style="width:100%;height:640px;border:0" title="Ask the news"></iframe>',
    )
    page = watched.new_page()
    page.goto(url)
    frame = page.frame_locator("#news")
    frame.get_by_role("button", name=EXAMPLE_QUESTION).click()  # the chat's own examples
    link = frame.locator(f"#widget-chat a[href*='/article/{SEED_003}']").first
    link.wait_for(timeout=WAIT_MS)
    assert_only_loopback(watched)
