"""File → clean text → chunks and sentences, each with its exact span in the file.

Chunking is llama-index's token-aware ``SentenceSplitter`` (tiktoken ``cl100k_base``);
sentences come from NLTK's Punkt model bundled with llama-index. Both are imported
lazily: only ingestion needs them, and they cost seconds to import.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from rag.clean import CleanText
from rag.settings import REPO_ROOT

if TYPE_CHECKING:
    from rag.sources import SourceRecord

# Bump when cleaning, chunking or sentence splitting changes, so re-ingest rebuilds.
# 4: sources (exports, encodings), metadata, duplicates; 5: sentences embedded after the title
PIPELINE_VERSION = "5"
# Bumped when how one kind of source is read changes: its articles are read again on the
# next ingest, the others kept. html 2: a character reference ("&#8217;") no longer splits
# a sentence into quotes. html 3, md 2: bylines, "Read more: …" links, a wire story's
# credits and a page's "Most read" headlines are not article text (``rag.clean``); a
# plain-text archive, which rarely holds them, is not embedded again for it (a changed
# file is read with the new rules).
READER_VERSIONS = {".html": "3", ".md": "2"}
MAX_FILE_BYTES = 20 * 1024 * 1024


class UnreadableFileError(ValueError):
    """A file that cannot be indexed; the message says why."""


@dataclass(frozen=True)
class Span:
    text: str  # clean text
    start: int  # offsets into the source file's text
    end: int


@dataclass
class Document:
    doc_id: str
    title: str
    source: str  # path as shown to users: relative to the repo root when inside it
    path: Path
    content_hash: str
    clean: CleanText = field(repr=False)
    chunks: list[Span] = field(default_factory=list, repr=False)
    sentences: list[tuple[Span, int]] = field(default_factory=list, repr=False)  # (span, chunk)
    paragraphs: list[int] = field(default_factory=list, repr=False)  # per sentence
    text: str = field(default="", repr=False)  # the text citation offsets index into
    published: str | None = None  # ISO date YYYY-MM-DD
    url: str | None = None
    publisher: str | None = None
    suffix: str = ".txt"  # how the text is cleaned
    body_start: int = 0  # where cleaning starts (after front matter)
    duplicate_of: str | None = None  # set at ingest: the earliest-indexed near duplicate
    # A title the text does not hold (an export's title field, front matter): embedded
    # with the first chunk, so that a search by meaning finds what only the title says.
    title_to_embed: str = ""

    def titled_sentences(self) -> list[str | None]:
        """Each sentence as it is embedded a second time, after the article's title (see
        ``after_title``); None where the title adds nothing."""
        title = own_title({"title": self.title, "doc_id": self.doc_id})
        return [after_title(title, span.text) for span, _ in self.sentences]


# A headline is a dozen words; a longer "title" (a file whose first line is a paragraph)
# is cut, so that it neither crowds the sentence out of the model's 512 tokens nor makes
# each of its article's sentences cost a paragraph.
TITLE_CONTEXT_WORDS = 30


def after_title(title: str, sentence: str) -> str | None:
    """The sentence read in its article's context, "<title>. <sentence>": "He will now
    play Gaston Gaudio" is about a tennis match only after "Nadal reaches Buenos Aires last
    eight". None for an untitled article and for the headline itself."""
    words = title.split()
    if not words or " ".join(sentence.split()).casefold() == " ".join(words).casefold():
        return None
    if len(words) > TITLE_CONTEXT_WORDS:
        return f"{' '.join(words[:TITLE_CONTEXT_WORDS])} … {sentence}"
    title = " ".join(words)
    return f"{title}{' ' if title[-1] in '.!?:' else '. '}{sentence}"


def own_title(metadata: dict) -> str:
    """The title a chunk or sentence row carries, or "" for an untitled article (whose
    title is its id: see ``document_from_record``)."""
    title = str(metadata.get("title") or "")
    return "" if title == metadata.get("doc_id") else title


def display_path(path: Path) -> str:
    path = path.resolve()
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def read_source(path: Path) -> str:
    """The file's text exactly as ``open(path).read()`` returns it, or UnreadableFileError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"cannot read: {exc.strerror or exc}") from exc
    if not data.strip():
        raise UnreadableFileError("empty file")
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableFileError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if b"\x00" in data[:8192]:
        raise UnreadableFileError("binary file (contains NUL bytes)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"not UTF-8 text (bad byte at offset {exc.start})") from exc
    # Same newline handling as open(): offsets must match what readers of the file see.
    return path.read_text(encoding="utf-8")


def load_document(
    path: Path, chunk_size: int, chunk_overlap: int, source: str | None = None
) -> Document:
    """A file's document (``source``: its text when the caller has already read it)."""
    from rag.sources import SourceRecord, read_file

    record = read_file(path, REPO_ROOT, path.stem)
    if not isinstance(record, SourceRecord):
        raise UnreadableFileError(record.reason)
    if source is not None and source != record.text:
        from dataclasses import replace

        record = replace(record, text=source)
    return document_from_record(record, chunk_size, chunk_overlap)


def title_outside_text(record: SourceRecord) -> str:
    """The record's explicit title when its body does not hold it, else "": a news export
    or feed gives a headline and a summary that does not repeat it. A file's headline is
    its first line, and a page's is in its markup: those are read as text."""
    title = " ".join((record.title or "").split())
    body = " ".join(record.text[record.body_start :].split())
    return title if title and title.casefold() not in body.casefold() else ""


def record_hash(record: SourceRecord) -> str:
    """Changes when the text or the metadata of an article changes, or how it is embedded."""
    meta = "\0".join(
        x or "" for x in (record.title, record.published, record.url, record.publisher)
    )
    reader = f"{record.suffix}{READER_VERSIONS.get(record.suffix, '')}"
    # Records indexed before titles were embedded are embedded again, the others kept.
    embedded = "\0title-embedded" if title_outside_text(record) else ""
    return hashlib.sha256(f"{record.text}\0{meta}\0{reader}{embedded}".encode()).hexdigest()


def document_from_record(record: SourceRecord, chunk_size: int, chunk_overlap: int) -> Document:
    """Clean, chunk and split one article (a file or an export record)."""
    from rag.sources import clean_record

    cleaned = clean_record(record)
    if not cleaned.text.strip():
        raise UnreadableFileError("no article text left after cleaning")
    doc = Document(
        doc_id=record.doc_id,
        title=cleaned.title or record.doc_id,
        source=record.source,
        path=record.path,
        content_hash=record_hash(record),
        clean=cleaned,
        text=record.text,
        published=record.published,
        url=record.url,
        publisher=record.publisher,
        suffix=record.suffix,
        body_start=record.body_start,
        title_to_embed=title_outside_text(record),
    )
    doc.chunks = chunk_spans(cleaned, chunk_size, chunk_overlap)
    doc.sentences, doc.paragraphs = sentence_spans(cleaned, doc.chunks)
    return doc


@lru_cache(maxsize=8)
def _splitter(chunk_size: int, chunk_overlap: int):  # noqa: ANN202 - llama-index type
    import tiktoken
    from llama_index.core.node_parser import SentenceSplitter

    encoding = tiktoken.get_encoding("cl100k_base")
    return SentenceSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        tokenizer=encoding.encode,
        paragraph_separator="\n\n",
    )


def chunk_spans(cleaned: CleanText, chunk_size: int, chunk_overlap: int) -> list[Span]:
    texts = _splitter(chunk_size, chunk_overlap).split_text(cleaned.text)
    spans: list[Span] = []
    cursor = 0
    for text in texts:
        at = cleaned.text.find(text, cursor)
        if at < 0:  # the splitter never rewrites text; fail loudly if that changes
            raise RuntimeError(f"chunk not found in clean text: {text[:60]!r}")
        start, end = cleaned.source_span(at, at + len(text))
        spans.append(Span(text, start, end))
        cursor = at + 1
    return spans


# Feeds and search results wrap a sentence in a dateline ("Mar 24, 2005 — ") or a call to
# action ("Read more"): an answer quotes the sentence without them.
# Only after the sentence's end: "people should read more." is a sentence.
_CALL_TO_ACTION = re.compile(
    r"(?<=[.!?\"”’)])\s+(?:Read more|READ MORE|Continue reading|Read the full (?:story|article))"
    r"\W*$"
    r"|\s*\[\+\d+ chars\]\s*$"  # where a news API cut the text ("… [+2114 chars]")
)
_CALL_TO_ACTION_TAIL = 64  # a call to action is found only this near the end


def quotable(text: str) -> tuple[int, int]:
    """(start, end) of what is worth quoting of a sentence: without an opening dateline or
    a closing "Read more" (or a news API's "[+2114 chars]"); the whole sentence when that
    would leave under two words."""
    from rag.sources import opening_dateline

    start = opening_dateline(text)
    tail = text[-_CALL_TO_ACTION_TAIL:]
    # The regex tries every position: most sentences are cleared by what their end lacks.
    m = (
        _CALL_TO_ACTION.search(text, start)
        if any(key in tail for key in ("Read", "READ", "reading", "chars]"))
        else None
    )
    if not start and not m:
        return 0, len(text)
    end = m.start() if m else len(text)
    return (start, end) if len(text[start:end].split()) >= 2 else (0, len(text))


@lru_cache(maxsize=1)
def _punkt():  # noqa: ANN202 - nltk type
    from nltk.tokenize.punkt import PunktTokenizer

    return PunktTokenizer("english")


_UNIT_BREAK = re.compile(r"\n\s*\n")


def _units(cleaned: CleanText) -> list[tuple[int, int]]:
    """Spans of the clean text that sentences never cross: lines, or paragraphs in markdown."""
    pattern = _UNIT_BREAK if cleaned.soft_wrapped else re.compile(r"\n")
    spans, start = [], 0
    for m in pattern.finditer(cleaned.text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(cleaned.text)))
    return [(s, e) for s, e in spans if cleaned.text[s:e].strip()]


def _verbatim_pieces(cleaned: CleanText, start: int, end: int) -> list[tuple[int, int]]:
    """Split a clean span where it stops being a copy of the source: each character the
    source's next one, or what the HTML character reference there stands for."""
    pieces, piece_start, expected, i = [], start, -1, start
    while i < end:
        run = cleaned.source_run(i)
        if run is None:
            if i > piece_start:
                pieces.append((piece_start, i))
            i += 1
            piece_start = i
            continue
        if i + run[0] > end:  # a reference whose characters the span cuts
            break
        off = int(cleaned.offsets[i])
        if i > piece_start and off != expected:
            pieces.append((piece_start, i))
            piece_start = i
        expected = off + run[1]
        i += run[0]
    if i > piece_start:
        pieces.append((piece_start, min(i, end)))
    return pieces


def _merged_sentences(unit: str) -> list[tuple[int, int]]:
    """Punkt sentence spans; a fragment under 3 words ("It’s misleading.") joins the next."""
    spans = list(_punkt().span_tokenize(unit))
    merged: list[tuple[int, int]] = []
    carry: int | None = None
    for s, e in spans:
        s = carry if carry is not None else s
        carry = None
        if len(unit[s:e].split()) < 3:
            carry = s
            continue
        merged.append((s, e))
    if carry is not None:
        if merged:
            merged[-1] = (merged[-1][0], spans[-1][1])
        else:
            merged.append((carry, spans[-1][1]))
    return merged


def sentence_spans(
    cleaned: CleanText, chunks: list[Span]
) -> tuple[list[tuple[Span, int]], list[int]]:
    """Sentences quotable verbatim, each with the index of the first chunk holding it,
    and the index of the paragraph (line, HTML block, markdown paragraph) of each."""
    out: list[tuple[Span, int]] = []
    paragraphs: list[int] = []
    chunk_ends = [c.end for c in chunks]
    for paragraph, (unit_start, unit_end) in enumerate(_units(cleaned)):
        unit = cleaned.text[unit_start:unit_end]
        for s, e in _merged_sentences(unit):
            for ps, pe in _verbatim_pieces(cleaned, unit_start + s, unit_start + e):
                text = cleaned.text[ps:pe].strip()
                if len(text.split()) < 2:
                    continue
                ps += cleaned.text[ps:pe].index(text)
                src_start, src_end = cleaned.source_span(ps, ps + len(text))
                chunk = next((i for i, ce in enumerate(chunk_ends) if src_start < ce), 0)
                out.append((Span(text, src_start, src_end), chunk))
                paragraphs.append(paragraph)
    return out, paragraphs
