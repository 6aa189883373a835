"""News as the web hands it over: a news API's JSON answer, an RSS feed, HTML text fields, and
pages whose punctuation is written as character references ("It&#8217;s"). Real model,
real index: the answers quote whole sentences, cite exact spans, and show no markup."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from rag.engine import Engine
from rag.evaluation.metrics import quote_is_verbatim
from rag.ingest import ingest_paths
from tests.conftest import SEEDS, make_settings
from ui.render import article_paragraphs

NEWS_API = Path(__file__).parent / "data" / "sources" / "exports" / "news_api.json"
RSS = Path(__file__).parent / "data" / "sources" / "feeds" / "wire.rss"
# As WordPress writes a page: curly quotes and the pound sign as character references.
PAGE = """<!doctype html><html><head><title>Caf&eacute; owners protest</title></head><body>
<article><h1>Caf&eacute; owners protest over &pound;12m rates bill</h1>
<p>Caf&eacute; owners marched on the town hall on Friday.</p>
<p>&#8220;It&#8217;s the end for small places like mine,&#8221; said Ana Ruiz, who runs
the Harbour Caf&eacute;. The council said the &pound;12m bill was set by law.</p>
</article></body></html>
"""


# A feed that escapes its plain text: no tags, only character references.
ESCAPED = {
    "id": "escaped-1",
    "title": "Telecoms group to cut Dallas jobs",
    "description": "AT&amp;T said it&#39;s cutting 1,200 jobs at its Dallas call centres.",
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("feeds")
    folder = root / "web"
    folder.mkdir()
    shutil.copy(NEWS_API, folder / NEWS_API.name)
    shutil.copy(RSS, folder / RSS.name)
    (folder / "cafe.html").write_text(PAGE, encoding="utf-8")
    (folder / "escaped.jsonl").write_text(json.dumps(ESCAPED) + "\n", encoding="utf-8")
    settings = make_settings(root / "index")
    ingest_paths([folder, SEEDS], settings, progress=False)
    return Engine(settings, auto_ingest=False)


def test_a_news_api_answer_is_indexed_and_quoted_without_markup(engine: Engine) -> None:
    answer = engine.ask("How much did the harbour repairs cost?")
    assert not answer.refused
    quote = next(c for c in answer.citations if "Repairs cost" in c.quote)
    # One whole sentence, the pound sign read from "&pound;", no tags.
    assert quote.quote == "Repairs cost £2.1m, the port authority said."
    assert quote.publisher == "Example Wire" and quote.published == "2024-11-04"
    _, text = engine.document_text(quote.doc_id)
    assert text[quote.start : quote.end] == "Repairs cost &pound;2.1m, the port authority said."
    assert quote_is_verbatim(asdict(quote), lambda _: text)
    assert "<" not in answer.answer and "[+1830 chars]" not in answer.answer


def test_character_references_do_not_split_a_quote(engine: Engine) -> None:
    answer = engine.ask("What did Ana Ruiz say about the rates bill?")
    assert not answer.refused
    quote = next(c for c in answer.citations if "Ruiz" in c.quote or "It’s" in c.quote)
    assert quote.quote.startswith("“It’s the end for small places like mine,”")
    _, text = engine.document_text(quote.doc_id)
    assert text[quote.start : quote.end].startswith("&#8220;It&#8217;s the end")
    assert quote_is_verbatim(asdict(quote), lambda _: text)
    # The article view marks the same characters, shown as a reader sees them.
    marked = "".join(
        run.text
        for paragraph in article_paragraphs(text, quote.source, quote.start, quote.end)
        for run in paragraph
        if run.marked
    )
    assert marked == quote.quote


def test_the_article_view_of_an_html_record_shows_no_markup(engine: Engine) -> None:
    record = next(d for d in engine.sources() if d.title.startswith("Harbour reopens"))
    assert "news_api.json#" in record.source
    _, text = engine.document_text(record.doc_id)
    shown = " ".join(run.text for p in article_paragraphs(text, record.source) for run in p)
    assert "The harbour reopened on Monday" in shown
    assert "<p>" not in shown and "track()" not in shown


def test_a_feeds_escaped_text_is_quoted_as_it_reads(engine: Engine) -> None:
    answer = engine.ask("How many jobs is the telecoms group cutting in Dallas?")
    assert not answer.refused and answer.citations[0].doc_id == "escaped-1"
    quote = answer.citations[0]
    assert quote.quote == "AT&T said it's cutting 1,200 jobs at its Dallas call centres."
    assert ESCAPED["description"][quote.start : quote.end] == ESCAPED["description"]


def test_an_rss_items_content_is_answered_from(engine: Engine) -> None:
    answer = engine.ask("When do tickets for the winter ferry sailings go on sale?")
    assert not answer.refused
    quote = answer.citations[0]
    assert quote.publisher == "Example Wire" and quote.published == "2024-11-06"
    assert any(
        c.quote == "Tickets go on sale on Monday, the company said." for c in answer.citations
    )
    _, text = engine.document_text(quote.doc_id)
    assert text[quote.start : quote.end] == quote.quote
