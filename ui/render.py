"""Render answers and articles for the browser, treating every article and question as text.

Nothing here trusts its input: article text, titles, file names and questions are
escaped (HTML) or backslash-escaped (Markdown) before they reach a page, and every
HTML fragment is passed through nh3 with a small allowlist as a second line of defence.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote, urlencode, urlsplit

import nh3

from rag.clean import CleanText, clean
from rag.dates import DateRange, display_date
from rag.errors import RagError
from rag.models import Answer, Citation, SourceDocument
from rag.sources import cleaning_suffix

QUOTE_ANCHOR = "quote"
_MARKER = re.compile(r"\[(\d+)\]")
# Every ASCII punctuation character can be backslash-escaped in CommonMark; escaping them
# all leaves no emphasis, link, image, autolink, table, heading or list syntax behind.
_MARKDOWN_SPECIAL = re.compile(r"""([\\`*_{}\[\]()#+\-.!|~$:'"=/^@%?;,])""")

_ALLOWED_TAGS = {
    "a",
    "article",
    "blockquote",
    "div",
    "em",
    "h2",
    "h3",
    "li",
    "mark",
    "ol",
    "p",
    "section",
    "small",
    "span",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
_ALLOWED_ATTRIBUTES = {
    "*": {"class", "id", "title"},
    "a": {"href", "target", "data-n"},
    "li": {"data-n", "data-doc-id"},
    "tr": {"data-doc-id"},
}


def sanitize(fragment: str) -> str:
    """Keep only the tags and attributes this module itself emits; http(s) links only."""
    return nh3.clean(
        fragment,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def escape_markdown(text: str) -> str:
    """Text that a Markdown renderer shows as the same characters, inert."""
    escaped = html.escape(text, quote=False)
    # html.escape produced "&lt;" etc.; their "&" and ";" must survive as entities.
    parts = re.split(r"(&(?:amp|lt|gt);)", escaped)
    return "".join(
        part if i % 2 else _MARKDOWN_SPECIAL.sub(r"\\\1", part) for i, part in enumerate(parts)
    )


def article_path(doc_id: str, start: int | None = None, end: int | None = None) -> str:
    """Path of the article view, scrolled to the quote when a span is given."""
    path = f"/article/{quote(doc_id, safe='')}"
    if start is None or end is None:
        return path
    return f"{path}?{urlencode({'start': start, 'end': end})}#{QUOTE_ANCHOR}"


def citation_path(citation: Citation) -> str:
    return article_path(citation.doc_id, citation.start, citation.end)


# --- citations grouped by article -----------------------------------------------------------


@dataclass(frozen=True)
class CitedArticle:
    """One article of an answer's sources, with the citations quoting it (in [n] order)."""

    citations: list[Citation] = field(default_factory=list)

    @property
    def first(self) -> Citation:
        return self.citations[0]


def cited_articles(citations: list[Citation]) -> list[CitedArticle]:
    """The cited articles in the order of their first citation; each citation keeps its n."""
    articles: dict[str, CitedArticle] = {}
    for citation in sorted(citations, key=lambda c: c.n):
        articles.setdefault(citation.doc_id, CitedArticle()).citations.append(citation)
    return list(articles.values())


def byline(publisher: str | None, published: str | None) -> str:
    """ "Publisher · 6 Nov 2024", either part alone, or "" when both are unknown."""
    return " · ".join(part for part in (publisher, safe_display_date(published)) if part)


def safe_display_date(published: str | None) -> str:
    """The article's date for people; "" when unknown or not a date at all."""
    try:
        return display_date(published)
    except (TypeError, ValueError):
        return ""


def safe_url(url: str | None) -> str | None:
    """An article's original address when it is an http(s) URL with a host; else None."""
    if not url or any(ch.isspace() or ord(ch) < 32 for ch in url.strip()):
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return None
    # Percent-encode what could end a Markdown link or an attribute early.
    return quote(url, safe="/:?#[]@!$&*+,;=%~-._")


# --- chat messages --------------------------------------------------------------------------


def answer_markdown(answer: Answer, base_url: str = "", note: str = "") -> str:
    """The answer for the Chatbot: escaped quotes, [n] markers as links, the cited articles.

    ``note`` (plain text, e.g. the date range searched) is shown in italics above it.
    """
    lead = f"_{escape_markdown(note)}_\n\n" if note else ""
    if answer.refused:
        detail = escape_markdown(_refusal_detail(answer.answer))
        return f"{lead}**The articles don't say.**\n\n{detail}"
    if answer.weak_evidence:
        lead += f"_{escape_markdown(answer.weak_evidence_note())}_\n\n"
    by_n = {c.n: c for c in answer.citations}
    body = "\n\n".join(
        _link_markers(paragraph, by_n, base_url) for paragraph in answer.answer.split("\n\n")
    )
    if not answer.citations:
        return lead + body
    return f"{lead}{body}\n\n{SOURCES_HEADING}\n\n{sources_markdown(answer.citations, base_url)}"


SOURCES_HEADING = "**Sources**"
QUOTE_PREVIEW_CHARS = 90


def sources_markdown(citations: list[Citation], base_url: str = "") -> str:
    """One list item per article: title, byline, original link; its quotes under it."""
    return "\n".join(_article_markdown(a, base_url) for a in cited_articles(citations))


def _article_markdown(article: CitedArticle, base_url: str) -> str:
    first = article.first
    head = f"[{escape_markdown(first.title)}]({base_url}{article_path(first.doc_id)})"
    details = [escape_markdown(b) for b in [byline(first.publisher, first.published)] if b]
    url = safe_url(first.url)
    if url:
        details.append(f"[original ↗]({url})")
    lines = [" · ".join([f"**{head}**", *details])]
    lines += [
        f"[\\[{c.n}\\]]({base_url}{citation_path(c)}) {escape_markdown(_preview(c.quote))}"
        for c in article.citations
    ]
    if first.also_in:
        copies = ", ".join(
            f"[{escape_markdown(d)}]({base_url}{article_path(d)})" for d in first.also_in
        )
        lines.append(f"also in: {copies}")
    return "- " + "  \n  ".join(lines)


def _preview(quote: str) -> str:
    """A quote shortened to a line, at a word boundary."""
    quote = " ".join(quote.split()).strip('“”"')  # a quote may carry its own marks
    if len(quote) <= QUOTE_PREVIEW_CHARS:
        return f"“{quote}”"
    cut = quote[:QUOTE_PREVIEW_CHARS].rsplit(" ", 1)[0]
    return f"“{cut}…”"


def _refusal_detail(text: str) -> str:
    return text.removeprefix("The articles don't say.").strip() or text


def _link_markers(text: str, by_n: dict[int, Citation], base_url: str) -> str:
    pieces: list[str] = []
    last = 0
    for match in _MARKER.finditer(text):
        citation = by_n.get(int(match.group(1)))
        if citation is None:
            continue
        pieces.append(escape_markdown(text[last : match.start()]))
        pieces.append(f"[\\[{citation.n}\\]]({base_url}{citation_path(citation)})")
        last = match.end()
    pieces.append(escape_markdown(text[last:]))
    return "".join(pieces)


def answer_plain_text(answer: Answer, note: str = "") -> str:
    """What "copy" puts on the clipboard: the answer and its cited articles, as plain text."""
    lead = [note, ""] if note else []
    if answer.weak_evidence:
        lead += [answer.weak_evidence_note(), ""]
    if answer.refused or not answer.citations:
        return "\n".join([*lead, answer.answer])
    lines = [*lead, answer.answer, "", "Sources:"]
    for article in cited_articles(answer.citations):
        first = article.first
        head = [first.title, byline(first.publisher, first.published), safe_url(first.url) or ""]
        lines.append(" — ".join(part for part in head if part))
        lines += [
            f"  [{c.n}] {_preview(c.quote)} — {c.source}, characters {c.start}–{c.end}"
            for c in article.citations
        ]
        if first.also_in:
            lines.append(f"  also in: {', '.join(first.also_in)}")
    return "\n".join(lines)


def range_note(dates: DateRange | None) -> str:
    """What a limited search says above its answer; "" when every article was searched."""
    if dates is None:
        return ""
    if dates.since and dates.until:
        return f"Only articles published {dates.since} – {dates.until} were searched."
    if dates.since:
        return f"Only articles published since {dates.since} were searched."
    return f"Only articles published until {dates.until} were searched."


def user_markdown(question: str) -> str:
    return escape_markdown(question)


# --- article text with a highlighted span ---------------------------------------------------


@dataclass(frozen=True)
class Run:
    text: str
    marked: bool


@lru_cache(maxsize=64)
def _clean(source_text: str, suffix: str) -> CleanText:
    return clean(source_text, suffix)


def article_paragraphs(
    source_text: str, source_name: str, start: int = -1, end: int = -1
) -> list[list[Run]]:
    """The article's readable paragraphs; characters of source_text[start:end] marked.

    HTML and Markdown files are shown as their clean text, not their markup; every clean
    character knows its offset in the file, so the marked span is exactly the citation's.
    """
    cleaned = _clean(source_text, cleaning_suffix(source_name, source_text))
    paragraphs: list[list[Run]] = []
    position = 0
    for line in cleaned.text.split("\n"):
        line_end = position + len(line)
        if line.strip():
            offsets = cleaned.offsets[position:line_end]
            marks = [bool(start <= int(o) < end) for o in offsets]
            paragraphs.append(list(_runs(line, marks)))
        position = line_end + 1
    if start >= 0 and not any(r.marked for p in paragraphs for r in p):
        paragraphs.insert(0, [Run(source_text[start:end], True)])
    return paragraphs


def _runs(text: str, marks: list[bool]) -> Iterator[Run]:
    begin = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or marks[i] != marks[begin]:
            yield Run(text[begin:i], marks[begin])
            begin = i


def paragraph_html(runs: list[Run], anchor: str | None = None) -> str:
    """One paragraph as escaped HTML; the first marked run carries the anchor id."""
    out = []
    for run in runs:
        text = html.escape(run.text)
        if run.marked:
            id_attr = f' id="{anchor}"' if anchor else ""
            out.append(f"<mark{id_attr}>{text}</mark>")
            anchor = None
        else:
            out.append(text)
    return "".join(out)


def _anchored(paragraphs: list[list[Run]]) -> Iterator[tuple[list[Run], str | None]]:
    """Pairs each paragraph with the anchor id, given only to the first with a mark."""
    anchor: str | None = QUOTE_ANCHOR
    for paragraph in paragraphs:
        yield paragraph, anchor
        if anchor and any(r.marked for r in paragraph):
            anchor = None


def quoted_paragraphs(paragraphs: list[list[Run]]) -> list[list[Run]]:
    return [p for p in paragraphs if any(r.marked for r in p)]


# --- sources panel and article list (fragments inside the Gradio app) -----------------------


def sources_panel_html(
    answer: Answer | None,
    article_text: Callable[[str], tuple[SourceDocument, str]] | None = None,
    base_url: str = "",
    note: str = "",
) -> str:
    """Each cited article (title, publisher and date, original link, file), and under it each
    of its quotes: [n] and the sentence highlighted in its paragraph."""
    heading = "<h3>Sources</h3>"
    if answer is None or article_text is None:
        return sanitize(
            f'<section class="rag-sources rag-empty">{heading}<p>Ask a question: each quoted '
            "sentence appears here inside its paragraph, with its article and file.</p></section>"
        )
    searched = ""
    if answer.standalone_question:
        searched = (
            '<p class="rag-searched">Searched for: '
            f"<em>{html.escape(answer.standalone_question)}</em></p>"
        )
    if note:
        searched += f'<p class="rag-searched rag-range">{html.escape(note)}</p>'
    if answer.refused or not answer.citations:
        return sanitize(
            f'<section class="rag-sources rag-refused">{heading}{searched}<p><strong>The articles '
            "don't say.</strong> No indexed article has a passage that answers this.</p>"
            "</section>"
        )
    items = "".join(
        _article_item(a, article_text, base_url) for a in cited_articles(answer.citations)
    )
    return sanitize(
        f'<section class="rag-sources">{heading}{searched}<ol class="rag-cited">{items}</ol>'
        "</section>"
    )


def _article_item(
    article: CitedArticle,
    article_text: Callable[[str], tuple[SourceDocument, str]],
    base_url: str,
) -> str:
    first = article.first
    try:
        _, text = article_text(first.doc_id)
    except RagError:  # the file changed or vanished since indexing: show the quotes alone
        text = None
    href = html.escape(base_url + article_path(first.doc_id))
    quotes = "".join(_citation_item(c, text, base_url) for c in article.citations)
    return (
        f'<li class="rag-article" data-doc-id="{html.escape(first.doc_id)}">'
        f'<div class="rag-cite-head"><a class="rag-article-link" href="{href}" '
        f'target="_blank">{html.escape(first.title)}</a></div>'
        f"{meta_html(first.publisher, first.published, first.url)}"
        f'<div class="rag-file">{html.escape(first.source)}</div>'
        f'<ol class="rag-citations">{quotes}</ol>'
        f"{_also_in_html(first.also_in, base_url)}</li>"
    )


def meta_html(
    publisher: str | None, published: str | None, url: str | None, css_class: str = "rag-meta"
) -> str:
    """ "Publisher · 6 Nov 2024 · original ↗", leaving out what is unknown (maybe all)."""
    parts = [
        f'<span class="rag-byline">{html.escape(b)}</span>'
        for b in [byline(publisher, published)]
        if b
    ]
    link = safe_url(url)
    if link:
        parts.append(
            f'<a class="rag-original" href="{html.escape(link)}" target="_blank" '
            'rel="noopener noreferrer">original ↗</a>'
        )
    return f'<div class="{css_class}">{" · ".join(parts)}</div>' if parts else ""


def _also_in_html(copies: list[str], base_url: str) -> str:
    if not copies:
        return ""
    links = ", ".join(
        f'<a href="{html.escape(base_url + article_path(d))}" target="_blank">{html.escape(d)}</a>'
        for d in copies
    )
    return f'<p class="rag-also-in">also in: {links}</p>'


def _citation_item(citation: Citation, text: str | None, base_url: str) -> str:
    """[n] and the quote highlighted inside its paragraph (the quote alone without text)."""
    if text is None:
        context = f"<p><mark>{html.escape(citation.quote)}</mark></p>"
    else:
        paragraphs = quoted_paragraphs(
            article_paragraphs(text, citation.source, citation.start, citation.end)
        )
        context = "".join(f"<p>{paragraph_html(p)}</p>" for p in paragraphs)
    href = html.escape(base_url + citation_path(citation))
    return (
        f'<li class="rag-citation" data-n="{citation.n}">'
        f'<a class="rag-cite-link" href="{href}" target="_blank" data-n="{citation.n}" '
        f'title="characters {citation.start}–{citation.end}">[{citation.n}]</a>'
        f'<blockquote class="rag-context">{context}</blockquote></li>'
    )


MISSING = "—"  # an unknown date or publisher in the article list


def article_list_html(documents: list[SourceDocument], summary: str, base_url: str = "") -> str:
    """The article browser's table (title, publisher, date, file, size) and what it shows."""
    count = f'<p class="rag-count">{html.escape(summary)}</p>'
    if not documents:
        return sanitize(f'<div class="rag-empty">{count}</div>')
    rows = "".join(_article_row(d, base_url) for d in documents)
    return sanitize(
        f"{count}"
        '<table class="rag-articles"><thead><tr><th>Title</th><th>Publisher</th>'
        "<th>Published</th><th>File</th><th>Chunks</th><th>Characters</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _article_row(d: SourceDocument, base_url: str) -> str:
    href = html.escape(base_url + article_path(d.doc_id))
    published = safe_display_date(d.published) or MISSING
    return (
        f'<tr data-doc-id="{html.escape(d.doc_id)}">'
        f'<td><a href="{href}" target="_blank">{html.escape(d.title)}</a></td>'
        f'<td class="rag-publisher">{html.escape(d.publisher or MISSING)}</td>'
        f'<td class="rag-published">{html.escape(published)}</td>'
        f"<td>{html.escape(d.source)}</td><td>{d.chunks}</td><td>{d.chars:,}</td>"
        "</tr>"
    )


# --- the article view: a whole page, no script at all ---------------------------------------

ARTICLE_CSS = """
:root { color-scheme: light dark; --mark: #fde68a; --muted: #6b7280; }
body { font: 17px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0 auto; max-width: 46rem; padding: 1rem 1.25rem 40vh; }
h1 { font-size: 1.5rem; line-height: 1.3; margin: 0.5rem 0; }
.meta { color: var(--muted); font-size: 0.9rem; overflow-wrap: anywhere; }
mark { background: var(--mark); color: #111; padding: 0.1em 0; scroll-margin-top: 30vh; }
nav a { font-size: 0.9rem; }
p { overflow-wrap: anywhere; }
"""


def article_page_html(
    document: SourceDocument, source_text: str, start: int | None, end: int | None
) -> str:
    paragraphs = article_paragraphs(
        source_text, document.source, -1 if start is None else start, -1 if end is None else end
    )
    body = "".join(f"<p>{paragraph_html(p, anchor)}</p>" for p, anchor in _anchored(paragraphs))
    located = ""
    if start is not None and end is not None:
        located = f" · quote at characters {start}–{end}"
    meta = meta_html(document.publisher, document.published, document.url, "meta byline")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(document.title)}</title><style>{ARTICLE_CSS}</style></head>"
        '<body><nav><a href="/">← Ask the articles</a></nav>'
        f"<article><h1>{html.escape(document.title)}</h1>"
        f"{sanitize(meta.replace('rag-meta', 'meta byline'))}"
        f'<p class="meta">{html.escape(document.source)}{located}</p>'
        f"{sanitize(body)}</article></body></html>"
    )
