"""Sources: from a path on disk to the texts that are cleaned, chunked and cited.

``read_sources`` walks files and archive exports and yields one ``SourceRecord`` per
article, or a ``SkippedRecord`` saying why a file or a record was left out.

- Files (``.txt``, ``.md``/``.markdown``, ``.html``/``.htm``) are decoded as UTF-8 (a BOM
  is dropped), else with the encoding charset-normalizer detects. Newlines are translated
  as ``open()`` does: for a UTF-8 file ``record.text == open(path, encoding="utf-8-sig")
  .read()``. Citation offsets index into ``record.text``.
- Exports give one record per row: ``.jsonl``/``.ndjson`` (one JSON object per line) and
  ``.csv`` (a header row) are streamed; a ``.json`` document (a list of objects, or an
  object holding one, as news APIs answer) and an RSS or Atom feed (``.rss``, ``.atom``,
  ``.xml``; read with feedparser, an item's content else its summary as its text, the
  feed's title as its publisher) are read whole. Fields, each under the names of
  ``FIELDS``: ``title`` (or ``headline``), ``text`` (or ``body``, ``content``,
  ``description``, ``summary``, …), ``published`` (or ``date``, ``publishedAt``, …),
  ``url`` (or ``link``), ``publisher`` (or ``source``, also ``{"name": …}``), optional
  ``id``. A record's ``text`` is its text field exactly; its ``source`` is
  ``"<file>#<doc_id>"``; a text field holding HTML (tags, or character references such
  as ``&amp;``) is cleaned as a page.
- Metadata: HTML pages through ``article:published_time``, JSON-LD and ``<time>`` (dates
  read by htmldate, never from the page's URL), JSON-LD ``NewsArticle``, ``og:*`` and
  ``<link rel="canonical">``; Markdown through YAML front matter; plain text only through
  a dated dateline in its first lines ("LONDON, Nov 6, 2024 (Reuters) -",
  "Published: 6 November 2024"). Dates are ISO ``YYYY-MM-DD``; unknown stays None.
- Front matter stays in ``record.text``, so offsets index into the whole file;
  ``record.body_start`` is where the body begins, and ``clean_record`` cleans
  ``text[body_start:]`` with its offsets mapped back into the whole text.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

from rag.clean import CHAR_REFERENCE, NOT_IN_SOURCE, CleanText, clean
from rag.documents import MAX_FILE_BYTES, UnreadableFileError

FILE_SUFFIXES = {
    ".txt": ".txt",
    ".md": ".md",
    ".markdown": ".md",
    ".html": ".html",
    ".htm": ".html",
}
FEED_SUFFIXES = {".rss", ".atom", ".xml"}  # RSS or Atom feeds, read with feedparser
EXPORT_SUFFIXES = {".jsonl", ".ndjson", ".csv", ".json", *FEED_SUFFIXES}
# Each field's names, first found first: the names of common archive exports, news APIs
# and feeds. A full text is preferred to a summary when a record has both.
FIELDS = {
    "id": ("id",),
    "title": ("title", "headline"),
    "text": (
        "text",
        "body",
        "content",
        "article",
        "story",
        "description",
        "summary",
        "snippet",
        "abstract",
    ),
    "published": (
        "published",
        "date",
        "published_at",
        "publishedat",
        "pubdate",
        "date_published",
        "datepublished",
        "publication_date",
    ),
    "url": ("url", "link"),
    "publisher": ("publisher", "source", "site_name", "site"),
}
# A JSON document (not JSON Lines) or a feed is read whole: past this, it should be split.
MAX_WHOLE_BYTES = 100 * 1024 * 1024
SNIFF_BYTES = 4 * 1024 * 1024  # encoding detection reads at most this much


@dataclass(frozen=True)
class SourceRecord:
    doc_id: str
    text: str  # the exact text citation offsets index into
    source: str  # display path of a file; "<file>#<doc_id>" for an export record
    suffix: str  # how to clean it: ".txt", ".md" or ".html" (an export record: ".html" if
    # its text holds markup, else ".txt")
    title: str | None  # explicit title (export field, front matter, HTML metadata)
    published: str | None  # ISO date YYYY-MM-DD
    url: str | None
    publisher: str | None
    path: Path
    body_start: int = 0  # front matter ends here: cleaning starts here


@dataclass(frozen=True)
class SkippedRecord:
    source: str  # display path of the file
    reason: str  # e.g. "line 7: missing text" for an export record
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.source} {self.reason}" if self.line else f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class Metadata:
    title: str | None = None
    published: str | None = None
    url: str | None = None
    publisher: str | None = None


class _BadRecord(ValueError):
    pass


class _BadExport(ValueError):
    """A whole export that cannot be read: a JSON document that does not parse or holds no
    records, a file that is no feed, one too big to read whole."""


# --- walking and naming -----------------------------------------------------------------------


def source_files(paths: Path | Sequence[Path]) -> list[Path]:
    """Supported files under ``paths`` (files or folders), sorted, hidden ones left out. A
    file named on its own is kept whatever its type (``read_sources`` says why it skips
    one it does not read)."""
    return scan_sources(paths)[0]


def scan_sources(paths: Path | Sequence[Path]) -> tuple[list[Path], Counter[str]]:
    """``source_files``, and how many files of each other type the folders hold (by
    suffix: ``".pdf": 3``), which are not read."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    files: list[Path] = []
    others: Counter[str] = Counter()
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        for f in sorted(path.rglob("*")):
            if not f.is_file() or any(p.startswith(".") for p in f.relative_to(path).parts):
                continue
            if is_readable_type(f):
                files.append(f)
            else:
                others[f.suffix.lower() or "(no suffix)"] += 1
    return list(dict.fromkeys(f.resolve() for f in files)), others


def is_readable_type(path: Path) -> bool:
    """An article file (``.txt``, ``.md``, ``.html``…) or an export."""
    return path.suffix.lower() in FILE_SUFFIXES or is_export(path)


def _read_as_article(path: Path) -> bool:
    """A file of an article type, or one without a suffix named on its own (a PDF or a Word
    file named so would decode as noise, not as its text)."""
    return is_readable_type(path) or not path.suffix


def readable_types() -> str:
    files = ", ".join(sorted(FILE_SUFFIXES))
    return f"{files} and exports ({', '.join(sorted(EXPORT_SUFFIXES))})"


def is_export(path: Path) -> bool:
    return path.suffix.lower() in EXPORT_SUFFIXES


def cleaning_suffix(source: str, text: str) -> str:
    """How a source's text is cleaned: ".txt", ".md" or ".html". A file by its suffix; an
    export's record (``file#doc_id``) as a page when its text holds markup."""
    file, _, doc_id = source.partition("#")
    if doc_id and is_export(Path(file)):
        return ".html" if holds_markup(text) else ".txt"
    return FILE_SUFFIXES.get(Path(source).suffix.lower(), ".txt")


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX form) when inside it, else its absolute path."""
    path = path.resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _sha1(text: str, length: int) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


def assign_doc_ids(files: Iterable[Path], root: Path) -> dict[Path, str]:
    """Each file's stem, or ``stem-<8 hex of sha1(path relative to root)>`` for every file
    whose stem another file shares. Depends on the set of files only, not their order."""
    files = list(files)
    stems = Counter(f.stem for f in files)
    return {
        f: f.stem if stems[f.stem] == 1 else f"{f.stem}-{_sha1(relative_name(f, root), 8)}"
        for f in files
    }


def sanitise_id(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-")


def read_sources(
    paths: Path | Sequence[Path], root: Path
) -> Iterator[SourceRecord | SkippedRecord]:
    """Every article under ``paths`` (files, folders, exports), shown and hashed relative to
    ``root``. Bad files and records come out as SkippedRecord; iteration goes on."""
    files = source_files(paths)
    articles = [f for f in files if not is_export(f)]
    doc_ids = assign_doc_ids((f for f in articles if _read_as_article(f)), root)
    used: dict[str, str] = {}  # doc id -> source that has it
    for path in files:
        if is_export(path):
            yield from read_export(path, root, used)
            continue
        if not _read_as_article(path):
            yield SkippedRecord(
                relative_name(path, root),
                f"not a type rag reads ({path.suffix}); it reads {readable_types()}",
            )
            continue
        item = read_file(path, root, doc_ids[path])
        if isinstance(item, SourceRecord) and item.doc_id in used:
            item = SkippedRecord(
                item.source, f"doc id {item.doc_id!r} already used by {used[item.doc_id]}"
            )
        elif isinstance(item, SourceRecord):
            used[item.doc_id] = item.source
        yield item


# --- decoding ---------------------------------------------------------------------------------

_UTF_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def detect_encoding(path: Path) -> str:
    """``"utf-8-sig"`` for UTF-8 with or without BOM, else the detected encoding. Raises
    UnreadableFileError for an unreadable, empty, binary or undecodable file."""
    try:
        with path.open("rb") as f:
            head = f.read(64 * 1024)
            if not head.strip():
                raise UnreadableFileError("empty file")
            bom = next((enc for mark, enc in _UTF_BOMS if head.startswith(mark)), None)
            if bom:
                return bom
            if b"\x00" in head[:8192]:
                raise UnreadableFileError("binary file (contains NUL bytes)")
            f.seek(0)
            if _is_utf8(f):
                return "utf-8-sig"
            f.seek(0)
            sample = f.read(SNIFF_BYTES)
    except OSError as exc:
        raise UnreadableFileError(f"cannot read: {exc.strerror or exc}") from exc
    return _detected_encoding(sample)


def _is_utf8(f: BinaryIO) -> bool:
    """Whether the rest of the open binary file is valid UTF-8; read 1 MB at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := f.read(1024 * 1024):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _detected_encoding(sample: bytes) -> str:
    """charset-normalizer's choice. When few bytes are non-ASCII, language statistics
    cannot tell code pages apart (it reads a lone 0xA3 "£" as Shift-JIS); then cp1252, the
    usual legacy encoding of news text, wins if charset-normalizer finds it plausible."""
    import charset_normalizer

    matches = charset_normalizer.from_bytes(sample)
    non_ascii = len(sample.translate(None, bytes(range(128))))
    if non_ascii * 50 <= len(sample) and any("cp1252" in m.could_be_from_charset for m in matches):
        return "cp1252"
    best = matches.best()
    if best is None:
        raise UnreadableFileError("not text in any known encoding")
    # On a tie (short texts: "Genève" reads as well in cp1250 as in cp1252), cp1252 wins.
    for m in matches:
        tied = (m.chaos, m.coherence) == (best.chaos, best.coherence)
        if tied and "cp1252" in m.could_be_from_charset:
            return "cp1252"
    return best.encoding


def read_text(path: Path) -> str:
    """The file's decoded text, newlines translated as ``open()`` does."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableFileError(f"cannot read: {exc.strerror or exc}") from exc
    if size > MAX_FILE_BYTES:
        raise UnreadableFileError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    encoding = detect_encoding(path)
    try:
        with path.open(encoding=encoding) as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"not {encoding} text (bad byte at {exc.start})") from exc
    if not text.strip():
        raise UnreadableFileError("empty file")
    return text


# --- files ------------------------------------------------------------------------------------


def read_file(path: Path, root: Path, doc_id: str) -> SourceRecord | SkippedRecord:
    name = relative_name(path, root)
    try:
        text = read_text(path)
    except UnreadableFileError as exc:
        return SkippedRecord(name, str(exc))
    suffix = cleaning_suffix(name, text)
    body_start, meta = file_metadata(text, suffix)
    return SourceRecord(
        doc_id=doc_id,
        text=text,
        source=name,
        suffix=suffix,
        title=meta.title,
        published=meta.published,
        url=meta.url,
        publisher=meta.publisher,
        path=path,
        body_start=body_start,
    )


def file_metadata(text: str, suffix: str) -> tuple[int, Metadata]:
    """(where the body starts, metadata) of a file's text."""
    if suffix == ".html":
        return 0, html_metadata(text)
    body_start, meta = front_matter(text) if suffix == ".md" else (0, Metadata())
    if meta.published is None:
        meta = replace(meta, published=dateline_date(text[body_start:]))
    return body_start, meta


def clean_record(record: SourceRecord) -> CleanText:
    """``clean`` of the record's body, offsets into ``record.text``; explicit title first."""
    cleaned = clean(record.text[record.body_start :], record.suffix)
    offsets = cleaned.offsets.copy()
    offsets[offsets != NOT_IN_SOURCE] += record.body_start
    return replace(
        cleaned,
        source_text=record.text,
        offsets=offsets,
        title=record.title or cleaned.title,
    )


# --- exports ----------------------------------------------------------------------------------


def read_export(
    path: Path, root: Path, used: dict[str, str] | None = None
) -> Iterator[SourceRecord | SkippedRecord]:
    """One record per row of a JSON Lines or CSV export (streamed), per object of a JSON
    document's list of records, or per item of a feed. ``used`` maps doc ids already taken
    to their source; a record reusing one is skipped."""
    name = relative_name(path, root)
    used = {} if used is None else used
    try:
        encoding = detect_encoding(path)
    except UnreadableFileError as exc:
        yield SkippedRecord(name, str(exc))
        return
    rows, unit = _READERS.get(path.suffix.lower(), (_jsonl_rows, "line"))
    line = 0
    try:
        for line, row in rows(path, encoding):
            try:
                record = _record(row, path, name)
                if record.doc_id in used:
                    raise _BadRecord(
                        f"doc id {record.doc_id!r} already used by {used[record.doc_id]}"
                    )
            except _BadRecord as exc:
                yield SkippedRecord(name, f"{unit} {line}: {exc}", line)
                continue
            used[record.doc_id] = record.source
            yield record
    except (UnicodeDecodeError, csv.Error) as exc:
        yield SkippedRecord(name, f"after {unit} {line}: {exc}; rest of the file skipped", line + 1)
    except _BadExport as exc:
        yield SkippedRecord(name, str(exc))


def _jsonl_rows(path: Path, encoding: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, object or why the line is not one). Lines split at "\\n" only."""
    with path.open(encoding=encoding, newline="\n") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"broken JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"
                continue
            except RecursionError:
                yield number, "JSON nested too deeply"
                continue
            yield number, row if isinstance(row, dict) else "not a JSON object"


def _json_rows(path: Path, encoding: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(record number, object or why it is not one) of a JSON document: a list of records,
    an object holding one (``{"articles": [...]}``, as news APIs answer), or one record."""
    _check_size(path)
    try:
        document = json.loads(path.read_text(encoding=encoding))
    except json.JSONDecodeError as exc:
        raise _BadExport(
            f"broken JSON ({exc.msg.removesuffix(' at')} at line {exc.lineno} column "
            f"{exc.colno}); nothing read"
        ) from None
    except RecursionError:
        raise _BadExport("JSON nested too deeply; nothing read") from None
    records = _records_of(document)
    if records is None:
        raise _BadExport("no records: expected a list of objects, or an object holding one")
    for number, row in enumerate(records, 1):
        yield number, row if isinstance(row, dict) else "not a JSON object"


def _feed_rows(path: Path, encoding: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(item number, its fields) of an RSS or Atom feed: the item's full content, else its
    summary, as its text; the feed's title as its publisher."""
    import feedparser

    _check_size(path)
    # Bytes, never a path: feedparser fetches whatever looks like an address.
    try:
        feed = feedparser.parse(path.read_bytes())
    except Exception as exc:  # noqa: BLE001  (a third-party parser on any file: e.g. "&#x110000;")
        raise _BadExport(f"not a readable feed ({type(exc).__name__}: {exc})") from None
    if not feed.entries:
        why = f" ({feed.bozo_exception})" if feed.get("bozo") else ""
        raise _BadExport(f"not an RSS or Atom feed with items{why}")
    publisher = feed.feed.get("title")
    for number, entry in enumerate(feed.entries, 1):
        content = [c.get("value") for c in entry.get("content", []) if c.get("value")]
        yield (
            number,
            {
                "title": entry.get("title"),
                "text": content[0] if content else entry.get("summary"),
                "published": entry.get("published") or entry.get("updated"),
                "url": entry.get("link"),
                "publisher": publisher,
            },
        )


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_WHOLE_BYTES:
        raise _BadExport(
            f"a {path.suffix.lstrip('.').upper()} file of {size / 2**20:.0f} MB is read whole "
            f"(at most {MAX_WHOLE_BYTES / 2**20:.0f} MB); split it, or write it as JSON Lines"
        )


def _records_of(document: Any) -> list[Any] | None:
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        return None
    if any(document.get(alias) for alias in FIELDS["text"]):
        return [document]
    lists = [v for v in document.values() if isinstance(v, list) and v]
    return next((v for v in lists if any(isinstance(row, dict) for row in v)), None)


def _csv_rows(path: Path, encoding: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(first line of the row, fields by lower-case header, or why the row is bad)."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FILE_BYTES))
    with path.open(encoding=encoding, newline="") as f:
        try:
            dialect: Any = csv.Sniffer().sniff(f.readline(), delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        f.seek(0)
        reader = csv.reader(f, dialect)
        header = [h.strip().lower() for h in next(reader, [])]
        if not set(header) & set(FIELDS["text"]):
            yield 1, f"no text column (expected one of: {', '.join(FIELDS['text'])})"
            return
        end = reader.line_num
        for row in reader:
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                yield start, f"{len(row)} fields, expected {len(header)}"
                continue
            yield start, dict(zip(header, row, strict=True))


# Each export suffix: how its rows are read, and what a row's number counts.
_READERS = {
    ".csv": (_csv_rows, "line"),
    ".json": (_json_rows, "record"),
    **dict.fromkeys(FEED_SUFFIXES, (_feed_rows, "item")),
}


def _record(row: dict[str, Any] | str, path: Path, name: str) -> SourceRecord:
    if isinstance(row, str):
        raise _BadRecord(row)
    row = {str(k).strip().lower(): v for k, v in row.items()}
    fields = {key: _field(row, key) for key in FIELDS}
    text = fields["text"]
    if not isinstance(text, str) or not text.strip():
        raise _BadRecord("missing text")
    url, title = _words(fields["url"]), _words(fields["title"])
    doc_id = sanitise_id(str(fields["id"])) if fields["id"] is not None else ""
    if not doc_id:
        doc_id = sanitise_id(f"{path.stem}-{_sha1(name + '#' + (url or title or text), 12)}")
    published = fields["published"]
    return SourceRecord(
        doc_id=doc_id,
        text=text,
        source=f"{name}#{doc_id}",
        suffix=cleaning_suffix(f"{name}#{doc_id}", text),
        title=title,
        published=(normalise_date(published) if published else None) or dateline_date(text),
        url=url,
        publisher=_words(fields["publisher"]),
        path=path,
    )


def _field(row: dict[str, Any], key: str) -> Any:
    """The first non-empty of a field's names; a value of the wrong type is a _BadRecord."""
    for alias in FIELDS[key]:
        value = row.get(alias)
        if key == "publisher" and isinstance(value, dict):  # {"id": …, "name": "BBC News"}
            value = value.get("name")
        if value is None or value == "":
            continue
        allowed = (str, int) if key == "id" else (str,)
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise _BadRecord(f"{alias} is {_json_type(value)}, expected a string")
        return value
    return None


_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)(?:\s[^<>]*)?/?>")


def holds_markup(text: str) -> bool:
    """Whether an export's text field is HTML (a feed's description, a scraped page's
    content): it holds a tag of a real HTML element, or a character reference ("&amp;",
    "&#39;"). Such a record is cleaned as a page, so its quotes read as a browser shows it."""
    from html.entities import html5

    from lxml.html import defs

    return any(m.group(1).lower() in defs.tags for m in _TAG.finditer(text)) or any(
        written.endswith(";") and (written.startswith("&#") or written[1:] in html5)
        for written in (m.group() for m in CHAR_REFERENCE.finditer(text))
    )


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", list: "an array"}
    return names.get(type(value), "an object")


def _words(value: Any) -> str | None:
    """Whitespace-normalised string, None when empty or not a string."""
    return (" ".join(value.split()) or None) if isinstance(value, str) else None


# --- dates ------------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})(?![\d])")
_AMBIGUOUS = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}\b")
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_FULL_DATE = (
    rf"(?P<date>(?i:(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+)?"
    rf"(?:{_MONTH}\s+{_DAY},?\s+\d{{4}}|{_DAY}\s+{_MONTH},?\s+\d{{4}}|\d{{4}}-\d\d-\d\d)))"
)
# "LONDON, Nov 6, 2024 (Reuters) -", "KYIV, Ukraine, 6 November 2024 /AP/ —"
_DATELINE = re.compile(
    rf"^[A-Z][A-Z.'’/ -]*,\s*(?:[A-Z][A-Za-z.'’ -]*,\s*)?{_FULL_DATE}"
    rf"\s*(?:\([^)\n]{{1,40}}\)|/[^/\n]{{1,40}}/)?\s*[-–—]"
)
# "Published: 6 November 2024", "First published on Nov 6, 2024", "Date: 2024-11-06"
_LABELLED = re.compile(
    rf"^(?i:(?:first\s+)?(?:published|posted)(?:\s+on)?\s*:?|date\s*:)\s*{_FULL_DATE}"
)
DATELINE_LINES = 10  # a dateline is looked for in the first lines of a story
# A dateline opening a sentence, with or without a place: "Mar 24, 2005 — " (a search
# result's), "LONDON, Nov 6, 2024 (Reuters) - ".
_OPENING_DATELINE = re.compile(
    rf"^(?:[A-Z][A-Z.'’/ -]*,\s*(?:[A-Z][A-Za-z.'’ -]*,\s*)?)?{_FULL_DATE}"
    rf"\s*(?:\([^)\n]{{1,40}}\)|/[^/\n]{{1,40}}/)?\s*[-–—]\s+"
)
_DEFAULTS = (datetime(1900, 1, 1), datetime(1904, 2, 2))


def normalise_date(value: str | date | None) -> str | None:
    """ISO ``YYYY-MM-DD`` of a full date (year, month and day all stated), else None.
    The date is the one written, not converted to UTC."""
    if isinstance(value, date):
        return value.isoformat()[:10]
    if not isinstance(value, str) or not value.strip():
        return None
    if m := _ISO_DATE.match(value):
        try:
            return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        except ValueError:
            return None
    m = _AMBIGUOUS.match(value)
    if m and m[1] != m[2] and int(m[1]) <= 12 and int(m[2]) <= 12:
        return None  # 03/04/2024: March 4 or 3 April?
    from dateutil import parser

    try:
        first, second = (parser.parse(value, default=d).date() for d in _DEFAULTS)
    except (ValueError, OverflowError):
        return None
    return first.isoformat() if first == second else None  # else a part was missing


def dateline_date(text: str) -> str | None:
    """The date of a dateline or "Published:" line among the first lines of a story.
    A date alone on a line (a page's date banner) is not one."""
    lines = (m[0].strip() for m in re.finditer(r"[^\n]*\S[^\n]*", text))  # lazily
    for _, line in zip(range(DATELINE_LINES), lines, strict=False):
        if m := _DATELINE.match(line) or _LABELLED.match(line):
            return normalise_date(m["date"])
    return None


def opening_dateline(text: str) -> int:
    """Length of the dateline that opens the text (0 when none does)."""
    m = _OPENING_DATELINE.match(text)
    return m.end() if m else 0


# --- markdown front matter --------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S | re.M)


def front_matter(text: str) -> tuple[int, Metadata]:
    """(length of the YAML front matter, its metadata); (0, empty) when there is none."""
    import yaml

    m = _FRONT_MATTER.match(text)
    if not m:
        return 0, Metadata()
    try:
        data = yaml.safe_load(m[1])
    except yaml.YAMLError:
        return 0, Metadata()
    if not isinstance(data, dict):
        return 0, Metadata()

    def scalar(*keys: str) -> Any:
        return next((data[k] for k in keys if data.get(k) not in (None, "")), None)

    published = scalar("date", "published")
    return m.end(), Metadata(
        title=_words(_as_text(scalar("title"))),
        published=normalise_date(published if isinstance(published, date) else _as_text(published)),
        url=_words(_as_text(scalar("url"))),
        publisher=_words(_as_text(scalar("source", "publisher"))),
    )


def _as_text(value: Any) -> str | None:
    return (
        str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
    )


# --- HTML metadata ----------------------------------------------------------------------------


def html_metadata(text: str) -> Metadata:
    """Metadata a news page states about itself; nothing is inferred from its URL."""
    import lxml.html
    from lxml import etree

    try:
        parser = lxml.html.HTMLParser(encoding="utf-8")
        tree = lxml.html.document_fromstring(text.encode("utf-8"), parser=parser)
    except (etree.ParserError, ValueError):
        return Metadata()
    article = _json_ld_article(tree)
    return Metadata(
        title=_words(article.get("headline")) or _meta(tree, "og:title"),
        published=_html_date(tree) or normalise_date(_words(article.get("datePublished"))),
        url=_web_url(tree.xpath("//link[@rel='canonical']/@href"))
        or _web_url([_meta(tree, "og:url"), article.get("url")]),
        publisher=_publisher(article.get("publisher")) or _meta(tree, "og:site_name"),
    )


def _html_date(tree: Any) -> str | None:
    from htmldate import find_date

    # url="" keeps htmldate from reading a date out of the canonical link's address.
    return find_date(tree, extensive_search=False, original_date=True, url="")


def _meta(tree: Any, name: str) -> str | None:
    values = tree.xpath("//meta[@property=$n or @name=$n]/@content", n=name)
    return next((w for v in values if (w := _words(v))), None)


def _web_url(candidates: list[Any]) -> str | None:
    for value in candidates:
        url = _words(value)
        if url and urlparse(url).scheme in {"http", "https"} and urlparse(url).netloc:
            return url
    return None


def _json_ld_article(tree: Any) -> dict[str, Any]:
    """The first JSON-LD object whose @type is an Article (NewsArticle, BlogPosting...)."""
    for script in tree.xpath("//script[@type='application/ld+json']/text()"):
        try:
            data = json.loads(script, strict=False)
        except json.JSONDecodeError:
            continue
        for node in _json_ld_nodes(data):
            types = node.get("@type")
            types = types if isinstance(types, list) else [types]
            names = {re.split(r"[/:]", t)[-1] for t in types if isinstance(t, str)}
            if any(n.endswith("Article") or n.endswith("BlogPosting") for n in names):
                return node
    return {}


def _json_ld_nodes(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _json_ld_nodes(item)
    elif isinstance(data, dict):
        yield data
        yield from _json_ld_nodes(data.get("@graph"))


def _publisher(value: Any) -> str | None:
    if isinstance(value, list):
        return next((p for v in value if (p := _publisher(v))), None)
    if isinstance(value, dict):
        return _words(value.get("name"))
    return _words(value)
