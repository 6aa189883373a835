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
    submit,
    wait_for_answer,
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
    # The [n] in the text (the sources list under it repeats it).
    marker = answer.get_by_role("link", name=f"[{citation['n']}]", exact=True).first
    assert SEED_003 in marker.get_attribute("href")

    # Sources panel: the article (title, file) once, the quoted sentence highlighted inside
    # its paragraph under it.
    entry = page.locator(f"#sources .rag-article[data-doc-id='{SEED_003}']")
    assert same_text(citation["title"]) in same_text(entry.inner_text())
    assert citation["source"] in entry.inner_text()
    assert entry.locator(".rag-meta").count() == 0  # the seeds have no date or publisher
    item = entry.locator(f".rag-citation[data-n='{citation['n']}']")
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


FOLLOWING = "Where did Zelensky meet US Defense Secretary Lloyd Austin?"


def type_while_answering(page) -> int:  # noqa: ANN001
    """Ask the example question, then type ``FOLLOWING`` while its answer is on its way
    (the box is emptied as a question is asked); the answers shown before it."""
    before = submit(page, EXAMPLE_QUESTION)
    page.wait_for_function(
        "() => document.querySelector('#question textarea').value === ''", timeout=WAIT_MS
    )
    page.locator("#question textarea").fill(FOLLOWING)
    return before


def test_a_question_typed_while_an_answer_comes_stays_in_the_box(watched, server) -> None:
    page = open_chat(watched, server)
    box = page.locator("#question textarea")
    wait_for_answer(page, type_while_answering(page))
    assert box.input_value() == FOLLOWING

    before = page.locator("#chat [data-testid='bot']").count()
    box.press("Enter")
    wait_for_answer(page, before)
    assert "Ramstein" in last_answer(page).inner_text()
    assert box.input_value() == ""


def test_enter_pressed_while_an_answer_comes_asks_once_it_is_done(watched, server) -> None:
    page = open_chat(watched, server)
    box = page.locator("#question textarea")
    before = type_while_answering(page)
    box.press("Enter")  # while the first answer is still coming (Gradio would drop it)
    wait_for_answer(page, before + 1)
    users = page.locator("#chat [data-testid='user']")
    assert users.count() == 2 and same_text(FOLLOWING) in same_text(users.last.inner_text())
    assert "Ramstein" in last_answer(page).inner_text()
    assert box.input_value() == ""
    assert watched.page_errors == []


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
    assert rows.first.get_attribute("data-doc-id") == "harbour-2024-11"  # newest first
    with page.context.expect_page() as opened:
        rows.first.get_by_role("link").click()
    article = opened.value
    article.locator("h1").wait_for(timeout=WAIT_MS)
    assert "Lorries allowed back" in article.locator("h1").inner_text()
    assert "Port Elling Herald · 6 Nov 2024" in article.locator(".byline").inner_text()
    assert article.get_by_role("link", name="original ↗").get_attribute("href") == (
        "https://herald.example.org/news/lorries-harbour-bridge"
    )
    assert_only_loopback(watched)


def listed_ids(page) -> list[str]:  # noqa: ANN001
    rows = page.locator("#article-list tbody tr")
    return [rows.nth(i).get_attribute("data-doc-id") for i in range(rows.count())]


def wait_for_listing(page, count: str) -> None:  # noqa: ANN001
    page.locator("#article-list .rag-count", has_text=count).wait_for(timeout=WAIT_MS)


def choose(page, dropdown: str, option: str) -> None:  # noqa: ANN001
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_article_browser_sorts_and_filters(watched, server) -> None:
    page = open_chat(watched, server)
    page.get_by_role("tab", name="Articles").click()
    wait_for_listing(page, "9 articles indexed.")
    ids = listed_ids(page)
    dated = ["harbour-2024-11", "harbour-2024-09", "harbour-2024-06"]
    assert ids[:3] == dated  # undated articles last, shown with a dash
    last = page.locator("#article-list tbody tr").last
    assert last.locator(".rag-published").inner_text() == "—"

    choose(page, "#article-sort", "Oldest first")
    page.wait_for_function(
        "() => document.querySelector('#article-list tbody tr')?.dataset.docId === "
        "'harbour-2024-06'",
        timeout=WAIT_MS,
    )
    assert listed_ids(page)[:3] == dated[::-1]

    choose(page, "#article-publisher", "Coastal Gazette")
    wait_for_listing(page, "3 of 9 articles match.")
    assert listed_ids(page) == ["harbour-2024-06", "harbour-2024-09", "harbour-undated"]

    page.locator("#article-since input").fill("2024-07-01")
    page.locator("#article-since input").press("Enter")
    wait_for_listing(page, "1 of 9 articles match.")
    assert listed_ids(page) == ["harbour-2024-09"]
    assert_only_loopback(watched)


BRIDGE = "What happened to the Harbour bridge in Port Elling?"
# Answered with two quotes of the June article: what the grouping of sources shows.
BRIDGE_CLOSED = "Why was the Harbour bridge in Port Elling closed and what did the council say?"


def set_date(page, box: str, value: str) -> None:  # noqa: ANN001
    page.locator(f"{box} input").fill(value)
    page.locator(f"{box} input").press("Enter")


def test_sources_grouped_by_article_and_the_date_range(watched, server) -> None:
    expected = api_answer(server, BRIDGE_CLOSED)
    by_doc: dict[str, list[int]] = {}
    for c in expected["citations"]:
        by_doc.setdefault(c["doc_id"], []).append(c["n"])
    assert any(len(ns) > 1 for ns in by_doc.values()), "the test needs two quotes of one article"

    page = open_chat(watched, server)
    ask(page, BRIDGE_CLOSED)
    page.locator("#sources .rag-article").first.wait_for(timeout=WAIT_MS)
    entries = page.locator("#sources .rag-article")
    assert entries.count() == len(by_doc)
    for doc_id, ns in by_doc.items():
        entry = page.locator(f"#sources .rag-article[data-doc-id='{doc_id}']")
        quoted = entry.locator(".rag-citation")
        assert [int(quoted.nth(i).get_attribute("data-n")) for i in range(quoted.count())] == ns
    june = page.locator("#sources .rag-article[data-doc-id='harbour-2024-06']")
    assert same_text(june.locator(".rag-meta").inner_text()) == (
        "Coastal Gazette · 12 Jun 2024 · original ↗"
    )
    original = june.get_by_role("link", name="original ↗")
    assert original.get_attribute("href").startswith("https://gazette.example.com/")
    assert original.get_attribute("target") == "_blank"
    assert "noopener" in original.get_attribute("rel")
    # The answer's own source list: one item per article, its quotes' [n] under it.
    items = last_answer(page).locator("li")
    assert items.count() == len(by_doc)
    assert "Coastal Gazette · 12 Jun 2024" in items.first.inner_text()

    set_date(page, "#since", "2024-11-01")
    ask(page, BRIDGE)
    answer = last_answer(page).inner_text()
    assert "Only articles published since 2024-11-01 were searched." in answer
    assert "Port Elling Herald · 6 Nov 2024" in answer and "Coastal Gazette" not in answer
    ask(page, "And were lorries allowed back?")  # a follow-up keeps the range and the context
    assert "Only articles published since 2024-11-01" in last_answer(page).inner_text()
    assert "Harbour bridge" in page.locator("#sources .rag-searched").first.inner_text()

    set_date(page, "#until", "2024-02-30")
    ask(page, BRIDGE)
    assert "Sorry: until must be an ISO date like 2024-11-06, not '2024-02-30'" in (
        same_text(last_answer(page).inner_text())
    )
    assert watched.page_errors == []
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
    marker = chat.get_by_role("link", name=f"[{citation['n']}]", exact=True).first
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


def test_widget_shows_the_start_of_each_answer(watched, server, host_page: HostPage) -> None:
    """The Chatbot would keep the end of a long answer, its source list, in view."""
    url = host_page.write("answer-first.html", host_page_html(server.url))
    page = watched.new_page()
    page.goto(url)
    page.locator("#news-widget gradio-app #question textarea").wait_for(timeout=WAIT_MS)
    for question in (EXAMPLE_QUESTION, BRIDGE, EXAMPLE_QUESTION):
        ask(page, question, chat="#widget-chat")
        page.wait_for_function(
            """() => {
                const bots = document.querySelectorAll("#widget-chat [data-testid='bot']");
                const bot = bots[bots.length - 1];
                let box = bot.parentElement;
                while (box && !(box.scrollHeight > box.clientHeight
                       && getComputedStyle(box).overflowY === "auto")) box = box.parentElement;
                const first = bot.getBoundingClientRect().top;
                const view = box.getBoundingClientRect();
                return box.scrollHeight > box.clientHeight + 200  // a long conversation
                    && first >= view.top && first + 20 <= view.bottom;
            }""",
            timeout=5_000,
        )
    assert_only_loopback(watched)
