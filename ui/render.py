"""Render answers and articles for the browser, treating every article and question as text.

Nothing here trusts its input: article text, titles, file names and questions are
escaped (HTML) or backslash-escaped (Markdown) before they reach a page, and every
HTML fragment is passed through nh3 with a small allowlist as a second line of defence.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePath
from urllib.parse import quote, urlencode

import nh3

from rag.clean import CleanText, clean
from rag.errors import RagError
from rag.models import Answer, Citation, SourceDocument

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


# --- chat messages --------------------------------------------------------------------------


def answer_markdown(answer: Answer, base_url: str = "") -> str:
    """The answer for the Chatbot: escaped quotes, [n] markers as links, a sources list."""
    if answer.refused:
        return f"**The articles don't say.**\n\n{escape_markdown(_refusal_detail(answer.answer))}"
    by_n = {c.n: c for c in answer.citations}
    body = "\n\n".join(
        _link_markers(paragraph, by_n, base_url) for paragraph in answer.answer.split("\n\n")
    )
    sources = "\n".join(
        f"{c.n}\\. [{escape_markdown(c.title)}]({base_url}{citation_path(c)}) · "
        f"`{_code_span(c.source)}`"
        for c in answer.citations
    )
    return f"{body}\n\n**Sources**\n\n{sources}" if sources else body


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


def _code_span(text: str) -> str:
    return text.replace("`", "'")


def answer_plain_text(answer: Answer) -> str:
    """What "copy" puts on the clipboard: the answer and its citations, as plain text."""
    if answer.refused or not answer.citations:
        return answer.answer
    lines = [answer.answer, "", "Sources:"]
    for c in answer.citations:
        lines.append(f"[{c.n}] {c.title} — {c.source}, characters {c.start}–{c.end}")
    return "\n".join(lines)


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
    cleaned = _clean(source_text, PurePath(source_name).suffix)
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
) -> str:
    """Each citation: number, title, file, and its sentence highlighted in its paragraph."""
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
    if answer.refused or not answer.citations:
        return sanitize(
            f'<section class="rag-sources rag-refused">{heading}{searched}<p><strong>The articles '
            "don't say.</strong> No indexed article has a passage that answers this.</p>"
            "</section>"
        )
    items = "".join(_citation_item(c, article_text, base_url) for c in answer.citations)
    return sanitize(
        f'<section class="rag-sources">{heading}{searched}<ol class="rag-citations">{items}</ol>'
        "</section>"
    )


def _citation_item(
    citation: Citation,
    article_text: Callable[[str], tuple[SourceDocument, str]],
    base_url: str,
) -> str:
    try:
        _, text = article_text(citation.doc_id)
    except RagError:  # the file changed or vanished since indexing: show the quote alone
        context = f"<p><mark>{html.escape(citation.quote)}</mark></p>"
    else:
        paragraphs = quoted_paragraphs(
            article_paragraphs(text, citation.source, citation.start, citation.end)
        )
        context = "".join(f"<p>{paragraph_html(p)}</p>" for p in paragraphs)
    href = html.escape(base_url + citation_path(citation))
    return (
        f'<li class="rag-citation" data-n="{citation.n}">'
        f'<div class="rag-cite-head"><span class="rag-n">[{citation.n}]</span> '
        f'<a class="rag-cite-link" href="{href}" target="_blank" data-n="{citation.n}">'
        f"{html.escape(citation.title)}</a></div>"
        f'<div class="rag-file"><span>{html.escape(citation.source)}</span> '
        f"<small>characters {citation.start}–{citation.end}</small></div>"
        f'<blockquote class="rag-context">{context}</blockquote></li>'
    )


ARTICLE_LIST_LIMIT = 500  # the browser lists at most this many articles


def article_list_html(
    documents: list[SourceDocument], total: int | None = None, base_url: str = ""
) -> str:
    """The article browser: the indexed articles (up to a limit) with links to their view."""
    if not documents:
        return sanitize('<p class="rag-empty">No article is indexed.</p>')
    rows = "".join(
        "<tr>"
        f'<td><a href="{html.escape(base_url + article_path(d.doc_id))}" target="_blank">'
        f"{html.escape(d.title)}</a></td>"
        f"<td>{html.escape(d.source)}</td><td>{d.chunks}</td><td>{d.chars:,}</td>"
        "</tr>"
        for d in documents
    )
    return sanitize(
        f'<table class="rag-articles"><thead><tr><th>Title</th><th>File</th><th>Chunks</th>'
        f"<th>Characters</th></tr></thead><tbody>{rows}</tbody></table>"
        f'<p class="rag-count">{_count(len(documents), total)}</p>'
    )


def _count(shown: int, total: int | None) -> str:
    if total is None or total <= shown:
        return f"{shown:,} articles indexed."
    return f"{total:,} articles indexed; the first {shown:,} are listed."


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
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(document.title)}</title><style>{ARTICLE_CSS}</style></head>"
        '<body><nav><a href="/">← Ask the articles</a></nav>'
        f"<article><h1>{html.escape(document.title)}</h1>"
        f'<p class="meta">{html.escape(document.source)}{located}</p>'
        f"{sanitize(body)}</article></body></html>"
    )
