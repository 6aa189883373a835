"""Chunks and sentences carry exact offsets into the file text."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiktoken

from rag.documents import UnreadableFileError, load_document, quotable, read_source
from tests.conftest import SEEDS

SEED_FILES = sorted(SEEDS.glob("*.txt"))


def read_like_users(path: Path) -> str:
    with open(path) as fh:  # the contract: offsets index into open(source).read()
        return fh.read()


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.stem)
def test_chunk_offsets_round_trip(path: Path) -> None:
    doc = load_document(path, chunk_size=256, chunk_overlap=32)
    source = read_like_users(path)
    encoding = tiktoken.get_encoding("cl100k_base")
    assert len(doc.chunks) >= 2
    for chunk in doc.chunks:
        span = source[chunk.start : chunk.end]
        # A chunk's span starts and ends exactly where its text does; lines dropped as
        # debris may sit inside the span, article lines never go missing from it.
        assert span.startswith(chunk.text[:40]) and span.endswith(chunk.text[-40:])
        for line in chunk.text.splitlines():
            assert line in span
        assert len(encoding.encode(chunk.text)) <= 256
    starts = [c.start for c in doc.chunks]
    assert starts == sorted(starts)


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.stem)
def test_sentences_are_verbatim_and_cover_the_article(path: Path) -> None:
    doc = load_document(path, chunk_size=256, chunk_overlap=32)
    source = read_like_users(path)
    for sentence, chunk in doc.sentences:
        assert source[sentence.start : sentence.end] == sentence.text
        assert 0 <= chunk < len(doc.chunks)
    quoted = "".join(s.text for s, _ in doc.sentences)
    for line in doc.clean.text.splitlines():  # no article text is unquotable
        for word in line.split()[:3]:
            assert word in quoted


def test_chunks_overlap(tmp_path: Path) -> None:
    doc = load_document(SEEDS / "001_7ad4693f24f79d99.txt", chunk_size=128, chunk_overlap=32)
    assert len(doc.chunks) >= 4
    overlapping = sum(a.end > b.start for a, b in zip(doc.chunks, doc.chunks[1:], strict=False))
    assert overlapping >= 1


def test_title_and_ids() -> None:
    doc = load_document(SEEDS / "003_042faa28e221901a.txt", 256, 32)
    assert doc.doc_id == "003_042faa28e221901a"
    assert doc.source == "seeds/003_042faa28e221901a.txt"
    assert doc.title.startswith("Moscow says the key to peace")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"   \n\n  ", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("Caf\u00e9 au lait".encode("latin-1"), "not UTF-8"),
    ],
)
def test_unreadable_files_are_refused_with_a_reason(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(UnreadableFileError, match=reason):
        read_source(path)


def test_windows_newlines_offsets_match_open(tmp_path: Path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(
        b"Talks resume in Geneva today\r\n\r\nThe delegations met on Monday. They agreed on "
        b"a second round of talks in March.\r\n"
    )
    doc = load_document(path, 256, 32)
    text = read_like_users(path)
    for sentence, _ in doc.sentences:
        assert text[sentence.start : sentence.end] == sentence.text


@pytest.mark.parametrize(
    ("sentence", "quoted"),
    [
        ("Mar 24, 2005 — Shares fell 3% on Monday.", "Shares fell 3% on Monday."),
        ("LONDON, Nov 6, 2024 (Reuters) - Shares fell 3%.", "Shares fell 3%."),
        ("The deal is done. Read more", "The deal is done."),
        ("The band split. Continue reading »", "The band split."),
        ("The firm said it would… [+2114 chars]", "The firm said it would…"),  # a news API's cut
        # Sentences of their own, not a feed's wrapping:
        ("He said people should read more.", "He said people should read more."),
        ("In March 2005 - a year on - prices rose.", "In March 2005 - a year on - prices rose."),
        ("May 5, 2005 — Yes.", "May 5, 2005 — Yes."),  # nothing worth quoting would be left
    ],
)
def test_quotes_leave_out_a_feeds_dateline_and_read_more(sentence: str, quoted: str) -> None:
    start, end = quotable(sentence)
    assert sentence[start:end] == quoted


def test_a_sentence_is_read_after_its_title() -> None:
    from rag.documents import after_title

    assert after_title("Nadal reaches last eight", "He will now play Gaudio.") == (
        "Nadal reaches last eight. He will now play Gaudio."
    )
    assert after_title("Is the deal off?", "Talks ended.") == "Is the deal off? Talks ended."
    assert after_title("Nadal  reaches\nlast eight", "Nadal reaches last eight") is None
    assert after_title("", "It rained.") is None
    paragraph = " ".join(f"word{i}" for i in range(200))  # a first line that is no headline
    cut = after_title(paragraph, "It rained.")
    assert cut == " ".join(f"word{i}" for i in range(30)) + " … It rained."
