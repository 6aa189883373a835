"""Rendering without a server: escaping, highlighting, and the app's queue settings."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from rag.models import Answer, Citation, SourceDocument
from ui import render

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "![x](http://127.0.0.2/x.png)",
    "<a href='javascript:alert(1)'>x</a>",
    "**bold** _it_ `code` # heading",
    "$$x^2$$ ${alert(1)} {{constructor}}",
    "1. list\n- item\n> quote",
    "&lt;script&gt; &amp; &#60;b&#62;",
    "www.example.com https://example.com <https://example.com>",
]
TEXT = (
    "Title of the <b>piece</b>\n\n"
    "First paragraph says <script>alert(1)</script> things. The quoted sentence is here.\n\n"
    "Last paragraph."
)
QUOTE = "The quoted sentence is here."


def citation(n: int = 1, quote: str = QUOTE, title: str = "Title <b>x</b>", **meta) -> Citation:
    start = TEXT.index(quote)
    return Citation(n, "doc-1", title, "seeds/doc-1.txt", quote, start, start + len(quote), **meta)


HERALD = {"published": "2024-11-06", "publisher": "Herald", "url": "https://news.example/a"}


def two_quotes() -> list[Citation]:
    """Two quotes of one article."""
    return [citation(1, **HERALD), citation(2, "First paragraph says", **HERALD)]


def document() -> SourceDocument:
    title = "Title <img src=x onerror=alert(1)>"
    return SourceDocument("doc-1", title, "seeds/doc-1.txt", 1, 3, 99)


def article_text(doc_id: str) -> tuple[SourceDocument, str]:
    if doc_id == "doc-2":
        return SourceDocument(
            "doc-2", "Other piece", "seeds/doc-2.txt", 1, 1, 15
        ), "Last paragraph."
    assert doc_id == "doc-1"
    return document(), TEXT


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_markdown_renders_as_the_same_text_and_no_tags(text: str) -> None:
    rendered = MarkdownIt("gfm-like", {"linkify": False}).render(render.escape_markdown(text))
    tags = set(re.findall(r"<(\w+)", rendered))
    assert tags <= {"p", "br"}, rendered
    visible = re.sub(r"<[^>]+>", "", rendered)
    visible = visible.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    visible = visible.replace("&amp;", "&")
    assert " ".join(visible.split()) == " ".join(text.split())


def test_answer_markdown_links_only_known_markers() -> None:
    quote = "Says [for talks] and [2] here."
    answer = Answer("q?", f"“{quote}” [1]", False, [citation(1, QUOTE)])
    markdown = render.answer_markdown(answer, "http://127.0.0.1:1")
    links = re.findall(r"\]\((http[^)]+)\)", markdown)
    assert links[0].startswith("http://127.0.0.1:1/article/doc-1?start=")
    assert "\\[for talks\\]" in markdown and "\\[2\\]" in markdown
    assert "**Sources**" in markdown and "Title &lt;b&gt;x&lt;\\/b&gt;" in markdown


def test_refusal_markdown() -> None:
    answer = Answer("q?", "The articles don't say. Nothing matches.", True)
    assert render.answer_markdown(answer).startswith("**The articles don't say.**")


def test_an_answer_on_weak_evidence_says_so_above_its_quotes() -> None:
    weak = Answer("q?", f"“{QUOTE}” [1]", False, [citation()], confidence=0.31, weak_evidence=True)
    note = "Weak evidence: these quotes may not answer the question (confidence 31%)."
    assert render.answer_markdown(weak).startswith(f"_{render.escape_markdown(note)}_\n\n“")
    assert render.answer_plain_text(weak).startswith(f"{note}\n\n“")
    sure = Answer("q?", f"“{QUOTE}” [1]", False, [citation()], confidence=0.9)
    assert "Weak evidence" not in render.answer_markdown(sure) + render.answer_plain_text(sure)


def test_plain_text_copy_has_answer_and_citations() -> None:
    answer = Answer("q?", f"“{QUOTE}” [1] “First paragraph says” [2]", False, two_quotes())
    text = render.answer_plain_text(answer, "Only articles published since 2024-11-01.")
    assert text.startswith("Only articles published since 2024-11-01.\n\n“")
    sources = text.split("Sources:\n")[1].splitlines()
    assert sources[0] == "Title <b>x</b> — Herald · 6 Nov 2024 — https://news.example/a"
    assert sources[1].startswith(f"  [1] “{QUOTE}” — seeds/doc-1.txt, characters")
    assert sources[2].startswith("  [2] “First paragraph says”")


def test_article_paragraphs_mark_exactly_the_span() -> None:
    c = citation()
    paragraphs = render.article_paragraphs(TEXT, "doc.txt", c.start, c.end)
    marked = ["".join(r.text for r in p if r.marked) for p in paragraphs]
    assert [m for m in marked if m] == [QUOTE]


def test_html_article_is_shown_as_clean_text_with_exact_highlight() -> None:
    source = (
        "<html><head><title>T</title><script>alert(1)</script></head><body>"
        "<h1>Head &amp; line</h1><p>Before. The &lt;b&gt;quoted&lt;/b&gt; part. After.</p>"
        "</body></html>"
    )
    start = source.index("The &lt;b&gt;")
    end = source.index(" After.")
    paragraphs = render.article_paragraphs(source, "page.html", start, end)
    text = ["".join(r.text for r in p) for p in paragraphs]
    assert text == ["Head & line", "Before. The <b>quoted</b> part. After."]
    marked = "".join(r.text for p in paragraphs for r in p if r.marked)
    assert marked == "The <b>quoted</b> part."


def test_sources_panel_escapes_everything() -> None:
    answer = Answer("q?", f"“{QUOTE}” [1]", False, [citation()], standalone_question="<i>q</i>")
    panel = render.sources_panel_html(answer, article_text, "http://127.0.0.1:1")
    assert "<b>" not in panel and "<script" not in panel and "<i>" not in panel
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in panel
    assert f"<mark>{QUOTE}</mark>" in panel
    assert 'href="http://127.0.0.1:1/article/doc-1?start=' in panel


def test_article_page_escapes_and_anchors_the_first_mark() -> None:
    c = citation()
    page = render.article_page_html(document(), TEXT, c.start, c.end)
    assert page.count('id="quote"') == 1 and "<script" not in page and "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_sanitize_drops_what_render_never_emits() -> None:
    dirty = '<a href="javascript:alert(1)" onclick="x">a</a><img src=x onerror=y><script>z</script>'
    clean = render.sanitize(dirty)
    assert "javascript" not in clean and "onclick" not in clean and "<img" not in clean
    assert "<script" not in clean


def test_article_path_quotes_the_id() -> None:
    assert render.article_path("a b/../c", 1, 2) == "/article/a%20b%2F..%2Fc?start=1&end=2#quote"


def test_queue_runs_eight_questions_at_once() -> None:
    from ui.app import build_chat, build_widget

    def no_engine():  # the apps must not touch the engine while being built
        raise AssertionError("engine used at build time")

    for blocks in (build_chat(no_engine, 8), build_widget(no_engine, 8)):
        asking = [fn for fn in blocks.fns.values() if fn.concurrency_id == "ask"]
        assert asking and all(fn.concurrency_limit == 8 for fn in asking)
        assert blocks._queue.default_concurrency_limit == 8


def test_api_endpoint_has_a_stable_name() -> None:
    from ui.app import build_chat

    blocks = build_chat(lambda: None, 8)  # type: ignore[arg-type, return-value]
    names = {fn.api_name for fn in blocks.fns.values() if fn.api_visibility == "public"}
    assert names == {"ask"}


def test_allowed_origins_are_checked() -> None:
    from rag.errors import ConfigError
    from ui.api import checked_origins, frame_ancestors

    assert checked_origins(["https://intra.example:8443"]) == ["https://intra.example:8443"]
    assert frame_ancestors(["http://a.example"]) == "'self' http://a.example"
    with pytest.raises(ConfigError):
        checked_origins(["intra.example; script-src *"])


def test_sources_panel_survives_an_article_changed_since_indexing() -> None:
    from rag.errors import RagError

    def changed(doc_id: str) -> tuple[SourceDocument, str]:
        raise RagError("seeds/x.txt changed since it was indexed: run `rag ingest`")

    answer = Answer("q?", f"“{QUOTE}” [1]", False, [citation()], [], {})
    panel = render.sources_panel_html(answer, changed)
    assert "<mark>" in panel and "[1]" in panel


# --- citations grouped by article -----------------------------------------------------------


def other_article(n: int, **meta) -> Citation:
    return Citation(n, "doc-2", "Other piece", "seeds/doc-2.txt", "Last paragraph.", 0, 15, **meta)


def grouped_answer() -> Answer:
    cites = [citation(1, **HERALD), other_article(2), citation(3, "First paragraph says", **HERALD)]
    return Answer("q?", f"“{QUOTE}” [1] “Last.” [2] “First paragraph says” [3]", False, cites)


def rendered_markdown(markdown: str) -> str:
    return MarkdownIt("gfm-like", {"linkify": False}).render(markdown)


def test_sources_markdown_lists_each_article_once_with_its_quotes() -> None:
    markdown = render.answer_markdown(grouped_answer(), "http://h:1")
    sources = markdown.split("**Sources**")[1]
    entries = [line for line in sources.splitlines() if line.startswith("- ")]
    assert len(entries) == 2  # doc-1 (quotes 1 and 3), then doc-2
    first, second = sources.split("\n- ")[1:]
    assert "Herald · 6 Nov 2024" in first and "[original ↗](https://news.example/a)" in first
    assert "[\\[1\\]](http://h:1/article/doc-1?start=" in first
    assert "[\\[3\\]](http://h:1/article/doc-1?start=" in first
    assert "[\\[2\\]](http://h:1/article/doc-2?start=0&end=15#quote)" in second
    html = rendered_markdown(markdown)
    assert html.count("<ul>") == 1 and html.count("<li>") == 2
    assert "None" not in html and "original" not in second


def test_sources_panel_groups_quotes_under_their_article() -> None:
    panel = render.sources_panel_html(grouped_answer(), article_text)
    articles = re.findall(r'<li class="rag-article".*?</ol>', panel, re.S)
    assert len(articles) == 2
    assert re.findall(r'data-n="(\d)"', articles[0])[::2] == ["1", "3"]
    assert "Herald · 6 Nov 2024" in articles[0] and 'href="https://news.example/a"' in articles[0]
    assert 'rel="noopener noreferrer"' in articles[0] and 'target="_blank"' in articles[0]
    assert "rag-meta" not in articles[1] and "None" not in panel


@pytest.mark.parametrize(
    ("publisher", "published", "expected"),
    [
        ("Herald", "2024-11-06", "Herald · 6 Nov 2024"),
        ("Herald", None, "Herald"),
        (None, "2024-11-06", "6 Nov 2024"),
        (None, None, ""),
        ("", "not a date", ""),
    ],
)
def test_byline_leaves_out_what_is_unknown(publisher, published, expected: str) -> None:
    assert render.byline(publisher, published) == expected
    meta = render.meta_html(publisher, published, None)
    assert (expected in meta) if expected else meta == ""


def test_missing_date_and_publisher_show_nothing_odd() -> None:
    answer = Answer("q?", f"“{QUOTE}” [1]", False, [citation()])
    for text in (
        render.answer_markdown(answer),
        render.sources_panel_html(answer, article_text),
        render.answer_plain_text(answer),
        render.article_page_html(document(), TEXT, None, None),
    ):
        assert "None" not in text and "· ·" not in text and "· \n" not in text
        assert not re.search(r"·\s*(<|$)", text, re.M), text


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:x",
        "//evil.example/x",
        "https:///no-host",
        "http://a.example/\nb",
    ],
)
def test_unsafe_original_urls_are_dropped(url: str) -> None:
    assert render.safe_url(url) is None
    answer = Answer("q?", f"“{QUOTE}” [1]", False, [citation(url=url)])
    assert "original" not in render.answer_markdown(answer)
    assert "original" not in render.sources_panel_html(answer, article_text)


def test_hostile_metadata_stays_text_everywhere() -> None:
    meta = {
        "publisher": "<script>alert(1)</script> [x](javascript:alert(2))",
        "url": 'https://news.example/a")onclick=alert(3)(x"<b>',
    }
    answer = Answer(
        "q?", f"“{QUOTE}” [1]", False, [citation(title="<img src=x onerror=y>", **meta)]
    )
    html = rendered_markdown(render.answer_markdown(answer))
    assert set(re.findall(r"<(\w+)", html)) <= {"p", "a", "ul", "li", "strong", "br", "em"}
    assert "javascript" not in re.findall(r'href="([^"]*)"', html).__str__()
    encoded = "https://news.example/a%22%29onclick=alert%283%29%28x%22%3Cb%3E"
    assert render.safe_url(meta["url"]) == encoded and f'href="{encoded}"' in html
    panel = render.sources_panel_html(answer, article_text)
    assert "<script" not in panel and "<img" not in panel and '"<b>' not in panel
    assert f'href="{encoded}"' in panel
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in panel
    page = render.article_page_html(
        SourceDocument("doc-1", "t", "seeds/doc-1.txt", 1, 1, 1, **{**meta, "published": None}),
        TEXT,
        None,
        None,
    )
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert f'href="{encoded}"' in page


def test_also_in_links_the_copies() -> None:
    answer = Answer("q?", f"“{QUOTE}” [1]", False, [citation(also_in=["copy-<1>"])])
    assert "also in: [copy\\-&lt;1&gt;](/article/copy-%3C1%3E)" in render.answer_markdown(answer)
    panel = render.sources_panel_html(answer, article_text)
    assert 'also in: <a href="/article/copy-%3C1%3E" target="_blank"' in panel
    assert "copy-&lt;1&gt;" in panel
    assert "also in: copy-<1>" in render.answer_plain_text(answer)


def test_range_note() -> None:
    from rag.dates import DateRange

    assert render.range_note(None) == ""
    both = DateRange.of("2024-11-01", "2024-11-30")
    assert (
        render.range_note(both) == "Only articles published 2024-11-01 – 2024-11-30 were searched."
    )
    assert "since 2024-11-01" in render.range_note(DateRange.of("2024-11-01", None))
    markdown = render.answer_markdown(Answer("q?", "x", True), note=render.range_note(both))
    assert markdown.startswith("_Only articles published 2024\\-11\\-01")


def test_article_page_shows_publisher_date_and_original_link() -> None:
    doc = SourceDocument("doc-1", "T", "seeds/doc-1.txt", 1, 1, 1, **HERALD)
    page = render.article_page_html(doc, TEXT, None, None)
    assert "Herald · 6 Nov 2024" in page
    assert '<a class="rag-original" href="https://news.example/a" target="_blank"' in page
    assert 'rel="noopener noreferrer"' in page


# --- the article browser ----------------------------------------------------------------------


def listed(doc_id: str, published: str | None, publisher: str | None) -> SourceDocument:
    return SourceDocument(
        doc_id, f"Title {doc_id}", f"{doc_id}.txt", 1, 1, 10, published, None, publisher
    )


def test_article_sorts_put_missing_dates_and_publishers_last() -> None:
    from ui import catalog

    docs = [
        listed("b", None, "Zeta"),
        listed("a", "2024-06-12", None),
        listed("c", "2024-11-06", "alpha"),
    ]
    ids = {sort: [d.doc_id for d in catalog.sort_articles(docs, sort)] for sort in catalog.SORTS}
    assert ids == {
        catalog.NEWEST: ["c", "a", "b"],
        catalog.OLDEST: ["a", "c", "b"],
        catalog.TITLE: ["a", "b", "c"],
        catalog.PUBLISHER: ["c", "b", "a"],
    }


def test_article_list_shows_dash_for_missing_values() -> None:
    page = render.article_list_html([listed("a", None, None)], "1 articles indexed.")
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page)
    assert cells[1:3] == ["—", "—"] and "None" not in page
    assert "<th>Publisher</th><th>Published</th>" in page
