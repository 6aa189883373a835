"""rag.sources on real files: metadata forms, exports with bad records, encodings, ids."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from datetime import date
from pathlib import Path

import pytest

from rag.clean import clean
from rag.settings import REPO_ROOT
from rag.sources import (
    SkippedRecord,
    SourceRecord,
    assign_doc_ids,
    clean_record,
    dateline_date,
    detect_encoding,
    holds_markup,
    normalise_date,
    read_export,
    read_file,
    read_sources,
)

DATA = Path(__file__).parent / "data" / "sources"
BBC = Path("/work/shared/corpora/bbc")


def record(relative: str) -> SourceRecord:
    path = DATA / relative
    item = read_file(path, DATA, path.stem)
    assert isinstance(item, SourceRecord), item
    return item


def fields(r: SourceRecord) -> tuple[str | None, ...]:
    return (r.title, r.published, r.url, r.publisher)


def sha(text: str, length: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


# --- HTML metadata ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("meta_published.html", (None, "2024-11-06", None, None)),
        (
            "jsonld.html",
            (
                "Kremlin sets out terms for ceasefire talks",
                "2024-06-14",
                "https://ledger.example.org/world/kremlin-terms-ceasefire",
                "Northern Ledger",
            ),
        ),
        (
            "opengraph.html",
            (
                "Port strike ends after pay agreement",
                None,
                "https://www.coastalpost.example.com/business/port-strike-ends",
                "The Coastal Post",
            ),
        ),
        # The date in the canonical URL is not the page's statement of its date.
        (
            "canonical.html",
            (None, None, "https://metro.example.net/2023/05/02/council-approves-tram-line", None),
        ),
        ("time_element.html", (None, "2024-03-15", None, None)),
        # A "Monday, July 15, 2024" banner in the page is not its date.
        ("no_metadata.html", (None, None, None, None)),
    ],
)
def test_html_metadata(name: str, expected: tuple[str | None, ...]) -> None:
    r = record(f"html/{name}")
    assert fields(r) == expected
    assert (r.suffix, r.source, r.body_start) == (".html", f"html/{name}", 0)
    assert r.text == (DATA / "html" / name).read_text(encoding="utf-8")


def test_html_is_cleaned_as_before() -> None:
    r = record("html/jsonld.html")
    assert clean_record(r).text == clean(r.text, ".html").text


# --- Markdown front matter ----------------------------------------------------------------


def test_front_matter_fields_and_offsets() -> None:
    path = DATA / "md" / "front_matter.md"
    r = record("md/front_matter.md")
    assert fields(r) == (
        "Ceasefire talks: what each side wants",
        "2024-11-06",
        "https://www.example.com/analysis/ceasefire-talks",
        "Example Weekly",
    )
    assert r.text == path.read_text(encoding="utf-8")  # offsets index into the whole file
    assert r.text[: r.body_start].endswith("source: Example Weekly\n---\n")
    cleaned = clean_record(r)
    assert cleaned.source_text == r.text
    assert cleaned.title == "Ceasefire talks: what each side wants"
    assert cleaned.text.startswith("Ceasefire talks: what each side wants\n\nMoscow wants")
    assert "title:" not in cleaned.text and "Example Weekly" not in cleaned.text
    quote = "Kyiv says it will not negotiate while Russian troops remain on its territory"
    at = cleaned.text.index(quote)
    start, end = cleaned.verbatim_span(at, at + len(quote))
    assert r.text[start:end] == quote
    assert start == r.text.index(quote) > r.body_start


# --- plain text dates ---------------------------------------------------------------------


def test_dateline_and_published_line() -> None:
    assert record("text/dateline.txt").published == "2024-11-06"
    assert record("text/published_line.txt").published == "2024-11-06"
    assert record("same_stem/a/report.txt").published is None


def test_weather_banner_is_not_a_date() -> None:
    path = REPO_ROOT / "seeds" / "004_9a883b0f2de4c558.txt"
    assert "Monday, July 15, 2024" in path.read_text(encoding="utf-8").splitlines()[1]
    r = read_file(path, REPO_ROOT, path.stem)
    assert isinstance(r, SourceRecord)
    assert fields(r) == (None, None, None, None)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("LONDON, Nov 6, 2024 (Reuters) - Shares fell.", "2024-11-06"),
        ("KYIV, Ukraine, 6 November 2024 /AP/ — Talks stalled.", "2024-11-06"),
        ("NEW YORK, Nov. 6, 2024 /PRNewswire/ -- A company said.", "2024-11-06"),
        ("First published on Wednesday, 6 November 2024", "2024-11-06"),
        ("Date: 2024-11-06", "2024-11-06"),
        ("WASHINGTON/KYIV, Nov 6 – The United States", None),  # no year
        ("Monday, July 15, 2024", None),  # a banner on its own line
        ("32.1 C\nMonday, July 15, 2024\n\nTitle", None),
        ("The deal, signed Nov 6, 2024 - was late.", None),  # not a dateline
    ],
)
def test_dateline_date(line: str, expected: str | None) -> None:
    assert dateline_date(line) == expected


def test_dateline_only_in_the_first_lines() -> None:
    text = "\n".join(f"Line {i} of the story." for i in range(12))
    assert dateline_date(text + "\nLONDON, Nov 6, 2024 (Reuters) - late") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-11-06T23:30:00-05:00", "2024-11-06"),  # the date written, not UTC
        ("2024-11-07T12:00:00Z", "2024-11-07"),
        ("6 November 2024", "2024-11-06"),
        ("Wed, 06 Nov 2024 09:30:00 GMT", "2024-11-06"),
        ("31/12/2024", "2024-12-31"),
        (date(2024, 1, 2), "2024-01-02"),
        ("03/04/2024", None),  # March 4 or 3 April
        ("November 2024", None),
        ("Nov 6", None),
        ("2024-02-30", None),
        ("not a date", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_date(value: str | date | None, expected: str | None) -> None:
    assert normalise_date(value) == expected


# --- exports ------------------------------------------------------------------------------


def split(items: list[SourceRecord | SkippedRecord]) -> tuple[list[SourceRecord], list[str]]:
    records = [i for i in items if isinstance(i, SourceRecord)]
    skipped = [str(i) for i in items if isinstance(i, SkippedRecord)]
    return records, skipped


def test_jsonl_export() -> None:
    path = DATA / "exports" / "export.jsonl"
    records, skipped = split(list(read_export(path, DATA)))
    hashed = f"export-{sha('exports/export.jsonl#https://wire.example.com/airport-delay', 12)}"
    assert [r.doc_id for r in records] == ["wire-001", hashed, "wire-006"]
    assert skipped == [
        "exports/export.jsonl line 3: broken JSON (Invalid control character at column 80)",
        "exports/export.jsonl line 4: missing text",
        "exports/export.jsonl line 6: title is an array, expected a string",
        "exports/export.jsonl line 8: not a JSON object",
        "exports/export.jsonl line 9: missing text",
        "exports/export.jsonl line 10: text is a number, expected a string",
    ]
    first, second, third = records
    lines = path.read_text(encoding="utf-8").splitlines()
    assert first.text == json.loads(lines[0])["text"]
    assert (first.source, first.suffix, first.path) == (
        "exports/export.jsonl#wire-001",
        ".txt",
        path,
    )
    assert fields(first) == (
        "Central bank holds rates",
        "2024-11-07",
        "https://wire.example.com/bank-holds",
        "Example Wire",
    )
    # aliases: body, date, source
    assert fields(second) == (
        "Airport expansion delayed",
        "2024-11-06",
        "https://wire.example.com/airport-delay",
        "Example Wire",
    )
    assert second.text.startswith("The airport's new terminal")
    # id "wire 006/β" sanitised, alias content, an unreadable date stays unknown
    assert (third.doc_id, third.published, third.url) == ("wire-006", None, None)


def test_csv_export() -> None:
    path = DATA / "exports" / "export.csv"
    records, skipped = split(list(read_export(path, DATA)))
    hashed = f"export-{sha('exports/export.csv#https://paper.example.org/council-tax', 12)}"
    assert [r.doc_id for r in records] == ["csv-1", hashed]
    assert skipped == [
        "exports/export.csv line 3: missing text",
        "exports/export.csv line 4: 7 fields, expected 6",
        "exports/export.csv line 7: 2 fields, expected 6",
    ]
    assert fields(records[0]) == (
        "Bridge reopens after repairs",
        "2024-10-28",
        "https://paper.example.org/bridge",
        "Example Paper",
    )
    council = records[1]
    assert council.text == (
        "Council tax will rise by 4.9% next year.\nThe council blamed higher social care costs."
    )
    assert (council.published, council.source) == ("2024-10-30", f"exports/export.csv#{hashed}")


def test_json_document_as_a_news_api_answers() -> None:
    """A news API's answer saved as one JSON document: records under "articles", the
    publisher an object, the date as "publishedAt", the text HTML cut by the API."""
    path = DATA / "exports" / "news_api.json"
    records, skipped = split(list(read_export(path, DATA)))
    assert skipped == [
        "exports/news_api.json record 3: missing text",
        "exports/news_api.json record 4: not a JSON object",
    ]
    harbour, cycle = records
    assert fields(harbour) == (
        "Harbour reopens after storm repairs",
        "2024-11-04",
        "https://wire.example.com/harbour-reopens",
        "Example Wire",
    )
    assert harbour.doc_id.startswith("news_api-")
    # The full text is preferred to the summary; its markup is cleaned as a page's.
    assert harbour.text.startswith("<p>The harbour reopened") and harbour.suffix == ".html"
    cleaned = clean_record(harbour)
    assert "<p>" not in cleaned.text and "track()" not in cleaned.text
    assert "Repairs cost £2.1m, the port authority said." in cleaned.text
    start, end = cleaned.verbatim_span(0, cleaned.text.index("repairs.") + len("repairs."))
    assert harbour.text[start:end] == "The harbour reopened on Monday after three weeks of repairs."
    # Only a summary: it is the text (plain, so cleaned as text).
    assert cycle.text == "Councillors approved 12 miles of new cycle lanes."
    assert (cycle.suffix, cycle.publisher, cycle.published) == (
        ".txt",
        "Example Paper",
        "2024-11-05",
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"headline": "One", "body": "A story."}]', ["A story."]),  # a list of records
        ('{"title": "One", "text": "A single story."}', ["A single story."]),  # one record
        ('{"items": [{"description": "From a feed."}]}', ["From a feed."]),
        ('{"count": 0, "items": []}', "no records: expected a list of objects"),
        ('{"items": [{"text": "Cut', "broken JSON (Unterminated string starting"),
        ('"just a string"', "no records: expected a list of objects"),
    ],
)
def test_json_documents(tmp_path: Path, content: str, expected: list[str] | str) -> None:
    path = tmp_path / "feed.json"
    path.write_text(content, encoding="utf-8")
    records, skipped = split(list(read_export(path, tmp_path)))
    if isinstance(expected, list):
        assert [r.text for r in records] == expected and not skipped
    else:
        assert not records and len(skipped) == 1
        assert skipped[0].startswith(f"feed.json: {expected}")


def test_a_json_document_too_big_to_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.sources

    path = tmp_path / "big.json"
    path.write_text(json.dumps([{"text": "A story. " * 100}] * 20), encoding="utf-8")
    monkeypatch.setattr(rag.sources, "MAX_WHOLE_BYTES", 10_000)
    records, skipped = split(list(read_export(path, tmp_path)))
    assert not records
    assert skipped == [
        "big.json: a JSON file of 0 MB is read whole (at most 0 MB); split it, or write it as "
        "JSON Lines"
    ]


def test_json_nested_too_deeply_is_a_bad_record_not_a_crash(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "feed.jsonl").write_text(
        '{"text": "A first story."}\n' + deep + '\n{"text": "A second story."}\n',
        encoding="utf-8",
    )
    (tmp_path / "dump.json").write_text(deep, encoding="utf-8")
    records, skipped = split(list(read_sources(tmp_path, tmp_path)))
    assert [r.text for r in records] == ["A first story.", "A second story."]
    assert skipped == [
        "dump.json: JSON nested too deeply; nothing read",
        "feed.jsonl line 2: JSON nested too deeply",
    ]


@pytest.mark.parametrize(
    ("text", "markup"),
    [
        ("<p>Shares rose.</p>", True),
        ("Shares rose.<br/>Bonds fell.", True),
        ('<a href="https://example.com">Shares</a> rose.', True),
        ("Profits rose by <5% in the year to March> said the report.", False),
        ("The ratio was a < b and c > d.", False),
        ("I <3 this band.", False),
        ("AT&amp;T said it&#39;s done.", True),  # character references, as feeds escape text
        ("R&D; spending rose; AT&T fell.", False),  # no entity is called "D"
    ],
)
def test_an_export_text_holds_markup(text: str, markup: bool) -> None:
    assert holds_markup(text) is markup


def test_rss_and_atom_feeds() -> None:
    """A feed's items are records: the full content (HTML, cleaned as a page) else the
    summary is the text, the feed's title the publisher, the item's date its date."""
    feeds = DATA / "feeds"
    records, skipped = split(list(read_sources(feeds, DATA)))
    assert skipped == [
        "feeds/sitemap.xml: not an RSS or Atom feed with items",
        "feeds/wire.rss item 3: missing text",
    ]
    tolls, ferry, library = records  # paper.atom, then wire.rss
    assert fields(ferry) == (
        "Ferry operator adds winter sailings",
        "2024-11-06",
        "https://wire.example.com/ferry-winter",
        "Example Wire",
    )
    cleaned = clean_record(ferry)
    assert "between Oban and Craignure." in cleaned.text and "track()" not in cleaned.text
    assert (library.suffix, library.text) == (
        ".txt",
        "The central library will open until 9pm on Thursdays from December.",
    )
    assert fields(tolls)[1:] == (
        "2024-11-08",
        "https://paper.example.org/bridge-tolls",
        "Example Paper",
    )
    assert clean_record(tolls).text == (
        "Tolls on the Skye bridge will rise by 20p in April & again in 2026."
    )


def test_a_feed_never_reads_what_it_points_at(tmp_path: Path) -> None:
    """An external entity (a file on this machine) is not read into an article."""
    secret = tmp_path / "secret.txt"
    secret.write_text("PASSWORD=hunter2", encoding="utf-8")
    (tmp_path / "evil.rss").write_text(
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<rss version="2.0"><channel><title>Evil</title><item><title>Leak</title>'
        "<description>Before &x; after, in a sentence.</description></item></channel></rss>",
        encoding="utf-8",
    )
    items = list(read_export(tmp_path / "evil.rss", tmp_path))
    assert all("hunter2" not in getattr(item, "text", str(item)) for item in items)


def test_export_is_streamed(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    body = "A paragraph of an archived article about the harbour and its trade. " * 30
    with path.open("w", encoding="utf-8") as f:
        for i in range(10_000):
            f.write(json.dumps({"id": f"r{i}", "title": f"Story {i}", "text": body}) + "\n")
    size = path.stat().st_size
    assert size > 20_000_000
    tracemalloc.start()
    try:
        count = sum(isinstance(r, SourceRecord) for r in read_export(path, tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < size / 5  # records are not all held at once


def test_doc_ids_unique_across_sources(tmp_path: Path) -> None:
    (tmp_path / "wire-001.txt").write_text("A story filed as a file.\n", encoding="utf-8")
    (tmp_path / "more.jsonl").write_text(
        '{"id": "wire-001", "text": "The same id in an export."}\n'
        '{"id": "wire-002", "text": "A new story."}\n'
        '{"id": "wire-002", "text": "The id again."}\n',
        encoding="utf-8",
    )
    records, skipped = split(list(read_sources(tmp_path, tmp_path)))
    assert [r.source for r in records] == ["more.jsonl#wire-001", "more.jsonl#wire-002"]
    assert skipped == [
        "more.jsonl line 3: doc id 'wire-002' already used by more.jsonl#wire-002",
        "wire-001.txt: doc id 'wire-001' already used by more.jsonl#wire-001",
    ]


# --- encodings ----------------------------------------------------------------------------


def test_windows_1252_file() -> None:
    path = DATA / "text" / "windows_1252.txt"
    data = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert detect_encoding(path) == "cp1252"
    r = record("text/windows_1252.txt")
    assert r.text == data.decode("cp1252").replace("\r\n", "\n")
    assert r.text.startswith("Café owners protest over £12m rates bill\n\n")
    assert "“It’s the end for small places like mine – and the council knows it.”" in r.text


@pytest.mark.skipif(not BBC.is_dir(), reason=f"BBC archive not present at {BBC}")
def test_bbc_windows_1252_file() -> None:
    path = BBC / "bbc_sport_199.txt"
    r = read_file(path, BBC, path.stem)
    assert isinstance(r, SourceRecord)
    assert "a £15.8m signing from Parma" in r.text
    assert r.text == path.read_bytes().decode("cp1252")


def test_utf8_text_matches_open() -> None:
    for relative in ("text/dateline.txt", "html/jsonld.html", "md/front_matter.md"):
        with (DATA / relative).open(encoding="utf-8") as f:
            assert record(relative).text == f.read()
    bom = record("text/bom_crlf.txt")
    with (DATA / "text" / "bom_crlf.txt").open(encoding="utf-8-sig") as f:
        assert bom.text == f.read()
    assert bom.text.startswith("Hospital waiting lists") and "\r" not in bom.text


def test_bad_files_are_skipped() -> None:
    for name, reason in [
        ("binary.txt", "binary file (contains NUL bytes)"),
        ("empty.txt", "empty file"),
    ]:
        item = read_file(DATA / "text" / name, DATA, "x")
        assert item == SkippedRecord(f"text/{name}", reason)
    missing = read_file(DATA / "nope.txt", DATA, "x")
    assert isinstance(missing, SkippedRecord) and missing.reason.startswith("cannot read")


# --- doc ids ------------------------------------------------------------------------------


def test_same_stem_files_get_distinct_stable_ids() -> None:
    a, b = DATA / "same_stem" / "a" / "report.txt", DATA / "same_stem" / "b" / "report.txt"
    other = DATA / "text" / "dateline.txt"
    ids = assign_doc_ids([a, b, other], DATA)
    assert ids == {
        a: f"report-{sha('same_stem/a/report.txt', 8)}",
        b: f"report-{sha('same_stem/b/report.txt', 8)}",
        other: "dateline",
    }
    assert assign_doc_ids([other, b, a], DATA) == ids
    assert assign_doc_ids([a], DATA) == {a: "report"}


def test_read_sources_walks_the_tree() -> None:
    records, skipped = split(list(read_sources(DATA, DATA)))
    ids = [r.doc_id for r in records]
    assert len(ids) == len(set(ids))
    assert {f"report-{sha('same_stem/a/report.txt', 8)}", "windows_1252", "wire-001"} <= set(ids)
    assert "text/binary.txt: binary file (contains NUL bytes)" in skipped
    assert len(records) == 26 and len(skipped) == 15
