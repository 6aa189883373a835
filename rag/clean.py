"""Turn a file's text into clean article text without losing where each character came from.

The clean text is a sequence of *blocks* (lines of a ``.txt``/``.md`` file, block
elements of an ``.html`` file). Each block keeps, for every character, its offset in
the original file text, so any span of the clean text maps back to an exact span of
the file. Web-page debris (cookie banners, comment widgets, "Related Articles",
"Read more" teasers, weather/date banners, photo credits, sidebars of other
headlines) is dropped block by block.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import numpy as np

# A character that exists only in the clean text (a joiner between blocks).
NOT_IN_SOURCE = -1
# A character reference as html.parser reads one (the ";" may be missing).
CHAR_REFERENCE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][-.A-Za-z0-9]*);?")


@dataclass
class Block:
    text: str
    offsets: list[int]  # offsets[i] = position of text[i] in the source, or NOT_IN_SOURCE
    heading: bool = False  # an <h1>-<h6> or a markdown "#" line


@dataclass
class CleanText:
    source_text: str
    text: str
    offsets: np.ndarray = field(repr=False)
    title: str
    soft_wrapped: bool = False  # True for markdown: a single newline does not end a paragraph

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the source text that the clean span [start, end) came from."""
        inside = np.flatnonzero(self.offsets[start:end] != NOT_IN_SOURCE)
        if inside.size == 0:
            raise ValueError(f"clean span {start}:{end} has no source characters")
        last = start + int(inside[-1])
        off = int(self.offsets[last])
        # The last character may be one of several a character reference stands for.
        first = last
        while first > start and self.offsets[first - 1] == off:
            first -= 1
        run = self.source_run(first)
        whole = run is not None and first + run[0] == last + 1
        return int(self.offsets[start + int(inside[0])]), off + (run[1] if whole else 1)

    def source_run(self, i: int) -> tuple[int, int] | None:
        """(clean characters, source characters) of the copy that starts at clean position
        ``i``: one character the source holds as it is, or what an HTML character reference
        there ("&pound;", "&#8217;") stands for; None when the source does not hold it."""
        off = int(self.offsets[i])
        if off == NOT_IN_SOURCE:
            return None
        if self.source_text[off] == "&":
            reference = CHAR_REFERENCE.match(self.source_text, off)
            if reference:
                decoded = html.unescape(reference.group())
                after = i + len(decoded)
                if (
                    decoded != reference.group()
                    and self.text[i:after] == decoded
                    and bool(np.all(self.offsets[i:after] == off))
                    # a literal "&" of a text file is followed by the next source character
                    and (after >= len(self.text) or self.offsets[after] != off + 1)
                ):
                    return len(decoded), reference.end() - off
        return (1, 1) if self.source_text[off] == self.text[i] else None

    def verbatim_span(self, start: int, end: int) -> tuple[int, int] | None:
        """Source span whose text equals the clean text[start:end] exactly, else None."""
        s, e = self.source_span(start, end)
        return (s, e) if self.source_text[s:e] == self.text[start:end] else None


def reads_as(source: str, quote: str) -> bool:
    """Whether ``quote`` is ``source`` as a reader sees it: character for character, but
    for an HTML character reference, which may stand for what it decodes to."""
    # Positions (in source, in quote) still to match from; a reference that decodes to what
    # the quote holds there opens a second way on, tried when the first fails.
    todo, tried = [(0, 0)], {(0, 0)}
    while todo:
        i, j = todo.pop()
        while i < len(source) and j < len(quote):
            if source[i] == "&" and (reference := CHAR_REFERENCE.match(source, i)):
                decoded = html.unescape(reference.group())
                after = (reference.end(), j + len(decoded))
                opens = decoded != reference.group() and quote.startswith(decoded, j)
                if opens and after not in tried:
                    tried.add(after)
                    todo.append(after)
            if source[i] != quote[j]:
                break
            i, j = i + 1, j + 1
        if i == len(source) and j == len(quote):
            return True
    return False


# --- debris rules ---------------------------------------------------------------------------

# Headings of what follows an article on a page (comments, other stories): a line on its
# own is debris, and from one on, a page holds no more article text unless prose follows.
_TAIL_HEADINGS = r"""
    related\ articles? | leave\ a\ (reply|comment) | most\ popular(\ articles)? | \d+\ comments?
    | most\ read | most\ viewed | top\ stories | more\ stories | notify\ of | article\ rating
    | latest\ news | you\ might\ also\ like.* | recommended\ to\ you | (\d+\ )*\d+\ votes?
"""
_WIDGET_LINES = re.compile(
    rf"""^(
        {_TAIL_HEADINGS}
        | read\ more | related(\ articles?|\ posts?|\ stories)? | back\ to\ top(\ button)?
        | subscribe | guest | oldest | newest | (newest\ )?most\ voted | inline\ feedbacks
        | view\ all\ comments | must\ read | more | recommended(\ to\ you|\ for\ you)?
        | most\ popular(\ articles|\ stories)? | share(\ this)?(\ article)?
        | advertisement | sponsored | comments? | reply | cancel\ reply | print | email
        | tags?:.* | \(\) | [x×] | [-–—|•·]+ | \d+
        | would\ love\ your\ thoughts.* | your\ email\ address\ will\ not\ be\ published.*
        | sign\ up\ for\ our\ newsletter.* | follow\ us.* | skip\ to\ (main\ )?content
    )[.!:]?$""",
    re.IGNORECASE | re.VERBOSE,
)
_COOKIE = re.compile(
    r"\b(uses? cookies|we use cookies|accept (all )?cookies|cookie (policy|settings))\b", re.I
)
_WEATHER = re.compile(r"^-?\d{1,3}([.,]\d)?\s*°?\s*[CF]$")
_DATE_BANNER = re.compile(
    r"^(mon|tues|wednes|thurs|fri|satur|sun)day,?\s+\w+\s+\d{1,2},?\s+\d{4}$"
    r"|^(mon|tues|wednes|thurs|fri|satur|sun)day,?\s+\d{1,2}\s+\w+,?\s+\d{4}$"
    r"|^\d{1,2}\s+\w+\s+\d{4}$",
    re.IGNORECASE,
)
_SOURCE_LINE = re.compile(r"^source:?\s+\S+$", re.IGNORECASE)
# A byline ("By Claire Donovan, Science Reporter | 19 February 2025", "*By Staff Reporter*"):
# it names who wrote the story, and quoted it answers nothing.
_BYLINE = re.compile(r"^[Bb]y\s+[A-Z][\w.'’-]*(?:\s+\S+){0,18}$")
# A wire story's credits: "(Reporting by Mari Takeda; Editing by Simon Ashworth)".
_CREDITS = re.compile(r"^\((?:additional\s+)?(?:reporting|writing|editing)\s+by\b.*\)$", re.I)
# A link to another story inside this one: "Read more: Who could replace Eriksen?".
_TEASER = re.compile(
    r"^(?:read\s+more|also\s+read|read\s+also|see\s+also|related|more\s+on\s+this\s+story)"
    r"\s*[:|–—-]\s*\S",
    re.IGNORECASE,
)
TEASER_WORDS = 20  # a longer "Related: …" line is prose, not a headline
# Markers after which a page has only widgets and other headlines.
_TAIL_MARKER = re.compile(rf"^({_TAIL_HEADINGS})$", re.IGNORECASE | re.VERBOSE)
_SENTENCE_END = re.compile(r"[.!?…\"”’)\]]$")


def _words(line: str) -> int:
    return len(line.split())


def is_debris(line: str) -> bool:
    s = line.strip()
    if not s:
        return False
    if _WIDGET_LINES.match(s) or _WEATHER.match(s) or _DATE_BANNER.match(s):
        return True
    if _SOURCE_LINE.match(s) or _CREDITS.match(s):
        return True
    if _TEASER.match(s) and _words(s) <= TEASER_WORDS:
        return True
    unwrapped = s.strip("*_ ")  # a markdown byline is set in italics
    if _BYLINE.match(unwrapped) and not _SENTENCE_END.search(unwrapped):
        return True
    if _COOKIE.search(s) and _words(s) < 60:
        return True
    # Photo captions and credits: "Ukrainian leader ... ©  Jean Catuffe / Getty Images"
    return "©" in s and _words(s) < 40


def _is_prose(line: str) -> bool:
    s = line.strip()
    return _words(s) >= 25 and bool(_SENTENCE_END.search(s)) and not s.endswith("...")


def _is_title_like(line: str) -> bool:
    return 4 <= _words(line) <= 40


def select_blocks(blocks: list[Block]) -> tuple[list[Block], str]:
    """Drop debris blocks; return the kept blocks and the detected title."""
    lines = [b.text.strip() for b in blocks]
    drop = [is_debris(s) for s in lines]

    # "Read more" boxes are followed by the teaser headline of another article.
    for i, s in enumerate(lines):
        if s.lower().rstrip(".:") == "read more":
            j = i + 1
            while j < len(lines) and not lines[j]:
                j += 1
            if j < len(lines) and _words(lines[j]) <= 25 and not _SENTENCE_END.search(lines[j]):
                drop[j] = True

    # From a comment widget or "Related Articles" on, a page holds no more article text
    # unless real prose follows.
    for i, s in enumerate(lines):
        if _TAIL_MARKER.match(s) and not any(_is_prose(t) for t in lines[i + 1 :]):
            for j in range(i, len(lines)):
                drop[j] = True
            break

    # Title: the first heading, else the first title-like line. Short lines before it are
    # breadcrumbs and section labels ("InternationalNews", "Key to Peace").
    title_index = next(
        (i for i, b in enumerate(blocks) if b.heading and not drop[i] and lines[i]), None
    )
    if title_index is None:
        title_index = next(
            (i for i, s in enumerate(lines) if not drop[i] and _is_title_like(s)), None
        )
    if title_index is not None:
        for i in range(title_index):
            if lines[i] and _words(lines[i]) < 4:
                drop[i] = True
    title = lines[title_index].lstrip("#").strip() if title_index is not None else ""
    kept = [b for b, d in zip(blocks, drop, strict=True) if not d]
    return kept, title


# --- readers --------------------------------------------------------------------------------


def text_blocks(source: str) -> list[Block]:
    """One block per line; offsets are positions in ``source``."""
    blocks: list[Block] = []
    pos = 0
    for line in source.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        blocks.append(Block(body, list(range(pos, pos + len(body)))))
        pos += len(line)
    return blocks


def markdown_blocks(source: str) -> list[Block]:
    blocks = text_blocks(source)
    for b in blocks:
        if b.text.lstrip().startswith("#"):
            b.heading = True
            stripped = b.text.lstrip().lstrip("#").lstrip()
            cut = len(b.text) - len(stripped)
            b.text, b.offsets = stripped, b.offsets[cut:]
    return blocks


_SKIP_TAGS = {
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "aside",
    "footer",
    "form",
    "iframe",
    "svg",
    "button",
    "select",
    "textarea",
    "head",
    "object",
    "embed",
    "canvas",
    "dialog",
}
_BLOCK_TAGS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "table",
    "tr",
    "td",
    "th",
    "br",
    "hr",
    "figure",
    "figcaption",
    "dd",
    "dt",
    "title",
    "body",
}
_VOID_TAGS = {"br", "hr", "img", "meta", "link", "input", "source", "wbr", "area", "base", "col"}
_DEBRIS_CLASS = re.compile(
    r"cookie|consent|comment|related|sidebar|newsletter|share|social|advert|promo|popular"
    r"|subscribe|breadcrumb|banner|widget|teaser|recommend",
    re.IGNORECASE,
)


class _HtmlBlocks(HTMLParser):
    """Collects visible text with source offsets, one block per block-level element."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)
        self.source = source
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.blocks: list[Block] = []
        self.title = ""
        self._text: list[str] = []
        self._offsets: list[int] = []
        self._heading = False
        self._skip_depth = 0
        self._skip_stack: list[str] = []
        self._in_title = False

    def _pos(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def _flush(self) -> None:
        text = "".join(self._text)
        if text.strip():
            self.blocks.append(Block(text, self._offsets, heading=self._heading))
        self._text, self._offsets, self._heading = [], [], False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_TAGS:
            if tag in _BLOCK_TAGS and not self._skip_depth:
                self._flush()
            return
        marks = " ".join(v or "" for k, v in attrs if k in ("class", "id", "role"))
        if self._skip_depth or tag in _SKIP_TAGS or _DEBRIS_CLASS.search(marks):
            self._skip_depth += 1
            self._skip_stack.append(tag)
            return
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._heading = True
        if tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if self._skip_depth:
            if tag in self._skip_stack:
                while self._skip_stack:
                    self._skip_depth -= 1
                    if self._skip_stack.pop() == tag:
                        break
            return
        if tag == "title":
            self._in_title = False
            self._text, self._offsets = [], []
            return
        if tag in _BLOCK_TAGS:
            self._flush()

    def _add(self, text: str, start: int, verbatim: bool) -> None:
        if self._skip_depth:
            return
        if self._in_title:
            self.title += text
            return
        self._text.append(text)
        if verbatim:
            self._offsets.extend(range(start, start + len(text)))
        else:
            self._offsets.extend([start] * len(text))

    def handle_data(self, data: str) -> None:
        self._add(data, self._pos(), verbatim=True)

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        # html.parser raises AssertionError on a malformed "<![…": a browser shows it as
        # text up to its ">", and so does this reader (nothing of it is quoted).
        position = self.getpos()
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            self.lineno, self.offset = position  # it moved on before it raised
            end = self.rawdata.find(">", i)
            return -1 if end < 0 else end + 1

    def handle_entityref(self, name: str) -> None:
        self._reference(f"&{name}")

    def handle_charref(self, name: str) -> None:
        self._reference(f"&#{name}")

    def _reference(self, written: str) -> None:
        """What the reference stands for, read as written: "&pound5" is "£5", not "£5;"."""
        start = self._pos()
        end = start + len(written)
        if self.source.startswith(";", end):
            end += 1
        self._add(html.unescape(self.source[start:end]), start, verbatim=False)

    def close(self) -> None:
        super().close()
        self._flush()


def html_blocks(source: str) -> tuple[list[Block], str]:
    parser = _HtmlBlocks(source)
    parser.feed(source)
    parser.close()
    # Whitespace inside a block collapses in a browser; keep it but split on newlines so
    # every line is a unit of its own.
    blocks: list[Block] = []
    for b in parser.blocks:
        for block in _split_lines(b):
            if block.text.strip():
                blocks.append(block)
    return blocks, " ".join(parser.title.split())


def _split_lines(block: Block) -> list[Block]:
    out, start = [], 0
    for m in re.finditer("\n", block.text + "\n"):
        piece = block.text[start : m.start()]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece.rstrip())
        out.append(
            Block(piece[lead:trail], block.offsets[start + lead : start + trail], block.heading)
        )
        start = m.end()
    return out


def clean(source: str, suffix: str) -> CleanText:
    """Clean the text of a ``.txt``, ``.md`` or ``.html`` file."""
    suffix = suffix.lower()
    html_title = ""
    if suffix in {".html", ".htm"}:
        blocks, html_title = html_blocks(source)
    elif suffix in {".md", ".markdown"}:
        blocks = markdown_blocks(source)
    else:
        blocks = text_blocks(source)
    kept, title = select_blocks(blocks)
    text, offsets = _join(kept, source)
    return CleanText(
        source_text=source,
        text=text,
        offsets=offsets,
        title=title or html_title,
        soft_wrapped=suffix in {".md", ".markdown"},
    )


def _join(blocks: list[Block], source: str) -> tuple[str, np.ndarray]:
    """Join blocks with newlines; a newline maps to the source only if it is really there."""
    # Drop blank lines at the start and end, and runs of more than one blank line.
    parts: list[str] = []
    offsets: list[int] = []
    previous_blank = True
    for b in blocks:
        blank = not b.text.strip()
        if blank and previous_blank:
            continue
        if parts:
            last = offsets[-1] if offsets else NOT_IN_SOURCE
            nl = last + 1 if last != NOT_IN_SOURCE and source[last + 1 : last + 2] == "\n" else -1
            if b.offsets and nl != -1 and b.offsets[0] != nl + 1:
                nl = NOT_IN_SOURCE if not blank else nl
            parts.append("\n")
            offsets.append(nl)
        parts.append(b.text)
        offsets.extend(b.offsets)
        previous_blank = blank
    text = "".join(parts)
    # Trailing blank lines and joiners.
    while text.endswith("\n"):
        text, offsets = text[:-1], offsets[:-1]
    return text, np.asarray(offsets, dtype=np.int64)
