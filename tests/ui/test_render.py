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


def citation(n: int = 1, quote: str = QUOTE, title: str = "Title <b>x</b>") -> Citation:
    start = TEXT.index(quote)
    return Citation(n, "doc-1", title, "seeds/doc-1.txt", quote, start, start + len(quote))


def document() -> SourceDocument:
    title = "Title <img src=x onerror=alert(1)>"
    return SourceDocument("doc-1", title, "seeds/doc-1.txt", 1, 3, 99)


def article_text(doc_id: str) -> tuple[SourceDocument, str]:
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


def test_plain_text_copy_has_answer_and_citations() -> None:
    answer = Answer("q?", f"“{QUOTE}” [1]", False, [citation()])
    text = render.answer_plain_text(answer)
    assert text.startswith(f"“{QUOTE}” [1]")
    assert "[1] Title <b>x</b> — seeds/doc-1.txt, characters" in text


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
