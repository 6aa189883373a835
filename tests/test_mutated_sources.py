"""Readers against broken input: seeded mutations of a page, a feed, a JSON document and
exports (inserted bytes, cut runs, stray markup). None may raise; every sentence read
from them must read as its span of the source."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rag.clean import reads_as
from rag.documents import UnreadableFileError, document_from_record
from rag.sources import SourceRecord, read_export, read_file

SEEDS = {
    ".html": b"<html><body><h1>Caf&eacute; owners</h1><p>It&#8217;s the end &amp; more. "
    b"Rates rose &pound;12m &NotEqualTilde; &#x110000; &#0;.</p></body></html>",
    ".json": b'{"articles":[{"title":"T","content":"<p>Hi &amp; bye. It&#8217;s over.</p>"}]}',
    ".rss": b'<rss version="2.0"><channel><title>x</title><item><title>a</title><description>'
    b"b &lt;i&gt;c. Another sentence &amp;amp; more.</description></item></channel></rss>",
    ".csv": b'title,text\nA,"B, c &pound;5 rose."\n',
    ".jsonl": b'{"text":"a &amp; b. Caf&eacute; here."}\n{"text":1}\n',
}
STRAY = [b"&", b"<", b">", b'"', b"\x00", b"\xff", b"[", b"{", b"&#", b";", b"<![", b"]]>"]
STRAY += [b"&pound", b"&#x110000;", b"&foo.bar;", b"<![CDATA[", b"[" * 5000]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at, roll = rng.randint(0, len(out)), rng.random()
        if roll < 0.4:
            out[at:at] = bytes([rng.randint(0, 255)])
        elif roll < 0.7:
            del out[at : at + rng.randint(1, 4)]
        else:
            out[at:at] = rng.choice(STRAY)
    return bytes(out)


@pytest.mark.parametrize("suffix", sorted(SEEDS))
def test_mutated_sources_never_raise_and_quote_exactly(tmp_path: Path, suffix: str) -> None:
    rng = random.Random(suffix)
    for n in range(80):
        path = tmp_path / f"case{n}{suffix}"
        path.write_bytes(mutate(SEEDS[suffix], rng))
        items = (
            [read_file(path, tmp_path, "page")]
            if suffix == ".html"
            else read_export(path, tmp_path)
        )
        for item in items:
            if not isinstance(item, SourceRecord):
                continue
            try:
                doc = document_from_record(item, 256, 32)
            except UnreadableFileError:
                continue  # nothing left after cleaning: said so, not raised further
            for sentence, _ in doc.sentences:
                assert reads_as(item.text[sentence.start : sentence.end], sentence.text), path
