"""News-aware ingest and answers, on the real files of tests/data/sources: exports, other
encodings, same-stem files, metadata on every record, chunk and citation; `rag show`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from rag.engine import Engine
from rag.errors import BadQuestionError
from rag.ingest import duplicates_path, ingest_paths, rebuild_duplicates
from rag.scorer import ComposeRules
from rag.settings import REPO_ROOT, Settings
from rag.sources import SourceRecord, read_sources
from rag.store import IndexStore
from tests.conftest import make_settings
from tests.test_ask import run_cli

DATA = Path(__file__).parent / "data" / "sources"
NEWS = Path(__file__).parent / "data" / "news"  # dated reports of one story, one undated
BRIDGE = "What happened to the Harbour bridge in Port Elling?"


@pytest.fixture(scope="module")
def news_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("news-index"))
    ingest_paths([DATA, NEWS], settings, progress=False)
    return settings


@pytest.fixture(scope="module")
def news_engine(news_settings: Settings) -> Engine:
    return Engine(news_settings, auto_ingest=False)


def expected_records() -> dict[str, SourceRecord]:
    return {r.doc_id: r for r in read_sources(DATA, REPO_ROOT) if isinstance(r, SourceRecord)}


def test_every_source_kind_is_indexed_and_bad_records_reported(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "index")
    report = ingest_paths([DATA], settings, progress=False)
    records = IndexStore(settings).document_records()
    expected = expected_records()
    assert set(records) == set(expected)
    assert {"windows_1252", "wire-001", "wire-006"} <= set(records)
    assert len([d for d in records if d.startswith("report-")]) == 2  # same stem, two folders
    reasons = [f"{path}: {reason}" for path, reason in report.skipped]
    jsonl = "tests/data/sources/exports/export.jsonl: line "
    assert f"{jsonl}4: missing text" in reasons
    assert any(r.startswith(f"{jsonl}3: broken JSON") for r in reasons)
    assert any("binary file" in r for r in reasons)
    assert report.files == len(expected)
    again = ingest_paths([DATA], settings, progress=False)  # idempotent
    assert (again.added, again.removed, again.embedded_texts) == (0, 0, 0)


def test_stored_text_is_the_record_text(news_engine: Engine) -> None:
    for doc_id, record in expected_records().items():
        document, text = news_engine.document_text(doc_id)
        assert text == record.text
        assert (document.published, document.url, document.publisher) == (
            record.published,
            record.url,
            record.publisher,
        )
    _, cp1252 = news_engine.document_text("windows_1252")
    assert "£" in cp1252 or "’" in cp1252 or "é" in cp1252


def test_metadata_in_chunks_and_records(news_settings: Settings) -> None:
    store = IndexStore(news_settings)
    record = store.records_for(["wire-001"])["wire-001"]
    assert record.published == "2024-11-07" and record.source.endswith("export.jsonl#wire-001")
    chunks = store.chunks.get(where={"doc_id": "wire-001"}, include=["metadatas"])["metadatas"]
    assert chunks and all(m["published_day"] == 20241107 for m in chunks)
    assert all(m["published"] == "2024-11-07" for m in chunks)
    undated = [r for r in store.document_records().values() if r.published is None]
    assert undated  # unknown dates stay unknown
    for r in undated:
        metas = store.chunks.get(where={"doc_id": r.doc_id}, include=["metadatas"])["metadatas"]
        assert all("published" not in m and "published_day" not in m for m in metas)


def test_citations_verbatim_for_every_kind_of_source(news_engine: Engine) -> None:
    questions = [
        "What rate did the central bank keep?",
        "Why will the airport terminal open late?",
        "How many artefacts did the museum return?",
    ]
    seen_kinds = set()
    for question in questions:
        answer = news_engine.ask(question)  # a one-sentence record may be refused
        for c in answer.citations:
            _, text = news_engine.document_text(c.doc_id)
            assert text[c.start : c.end] == c.quote
            seen_kinds.add("export" if "#" in c.source else "file")
            if "#" in c.source:
                assert c.source.endswith(f"#{c.doc_id}")
        for p in answer.passages:
            _, text = news_engine.document_text(p.doc_id)
            assert p.start < p.end <= len(text)
    assert "export" in seen_kinds


def test_rag_show_prints_exactly_the_text(news_settings: Settings) -> None:
    result = run_cli(news_settings, "ask", "--json", "What rate did the central bank keep?")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    c = answer["citations"][0]
    assert {"published", "url", "publisher", "also_in"} <= set(c)
    shown = subprocess_show(news_settings, c["doc_id"])
    assert shown.returncode == 0 and shown.stderr == b""
    assert shown.stdout.decode("utf-8")[c["start"] : c["end"]] == c["quote"]
    cp = subprocess_show(news_settings, "windows_1252")
    assert cp.stdout.decode("utf-8") == expected_records()["windows_1252"].text
    missing = run_cli(news_settings, "show", "no-such-article")
    assert missing.returncode == 2 and "unknown article" in missing.stderr
    assert "Traceback" not in missing.stderr and missing.stdout == ""


def subprocess_show(settings: Settings, doc_id: str) -> subprocess.CompletedProcess[bytes]:
    """`rag show` as bytes: no newline translation between the command and the test."""
    env = {
        **os.environ,
        "RAG_INDEX_DIR": str(settings.index_dir),
        "RAG_SEEDS_DIR": str(settings.seeds_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", "show", doc_id],
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )


# --- dates -----------------------------------------------------------------------------------


def test_date_range_filters_dense_and_lexical_candidates(news_engine: Engine) -> None:
    answer = news_engine.ask(BRIDGE, since="2024-09-01", until="2024-11-30")
    assert answer.citations and answer.passages
    for item in [*answer.citations, *answer.passages]:
        assert item.published is not None and "2024-09-01" <= item.published <= "2024-11-30"
    june = news_engine.ask(BRIDGE, since=date(2024, 6, 1), until=date(2024, 6, 30))
    assert "harbour-2024-06" in {p.doc_id for p in june.passages}
    assert all("2024-06-01" <= (p.published or "") <= "2024-06-30" for p in june.passages)
    unfiltered = news_engine.ask("Who wants a cycle lane on the Harbour bridge?")
    assert "harbour-undated" in {p.doc_id for p in unfiltered.passages}
    filtered = news_engine.ask("Who wants a cycle lane on the Harbour bridge?", since="2000-01-01")
    assert "harbour-undated" not in {p.doc_id for p in filtered.passages}  # undated: left out


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("2024-13-01", None, "ISO date"),
        ("yesterday", None, "ISO date"),
        (None, "6/11/2024", "ISO"),
        ("2024-11-02", "2024-11-01", "after"),
    ],
)
def test_bad_dates_are_clear_errors(
    news_engine: Engine, since: str | None, until: str | None, message: str
) -> None:
    with pytest.raises(BadQuestionError, match=message):
        news_engine.ask(BRIDGE, since=since, until=until)


def test_latest_question_prefers_the_newest_article(news_engine: Engine) -> None:
    answer = news_engine.ask("What is the current state of the Harbour bridge in Port Elling?")
    assert answer.citations[0].doc_id == "harbour-2024-11"
    assert answer.citations[0].published == "2024-11-06"


def test_change_question_quotes_in_date_order_each_dated(news_engine: Engine) -> None:
    answer = news_engine.ask("How did the situation of the Harbour bridge in Port Elling change?")
    dates = [c.published for c in answer.citations]
    # Every dated article of the story; the undated letter, likelier, is left out.
    assert set(dates) == {"2024-06-12", "2024-09-20", "2024-11-06"}
    assert dates == sorted(dates)
    lines = answer.answer.split("\n\n")
    assert lines[0].startswith("12 Jun 2024:") or lines[0].startswith("20 Sep 2024:")
    assert all(line[:1].isdigit() for line in lines)


def test_cli_dates_and_bylines(news_settings: Settings) -> None:
    result = run_cli(news_settings, "ask", BRIDGE, "--since", "2024-11-01", "--until", "2024-11-30")
    assert result.returncode == 0, result.stderr
    assert "articles without a date are left out" in " ".join(result.stderr.split())
    assert "Port Elling Herald · 6 Nov 2024" in result.stdout
    assert "https://herald.example.org/news/lorries-harbour-bridge" in result.stdout
    bad = run_cli(news_settings, "ask", BRIDGE, "--since", "2024-02-30")
    assert bad.returncode == 2 and "ISO date" in bad.stderr and "Traceback" not in bad.stderr


# --- near duplicates ---------------------------------------------------------------------------


def test_duplicates_are_recorded_and_quoted_once(news_settings: Settings) -> None:
    store = IndexStore(news_settings)
    records = store.records_for(["wire_original", "wire_syndicated", "drought_followup"])
    assert records["wire_syndicated"].duplicate_of == "wire_original"
    assert records["wire_original"].duplicate_of is None
    assert records["drought_followup"].duplicate_of is None
    assert duplicates_path(store).exists()
    engine = Engine(news_settings, auto_ingest=False)
    answer = engine.ask("Why will water companies ban garden hoses?")
    assert answer.citations
    quotes = [c.quote for c in answer.citations]
    assert len(quotes) == len(set(quotes))
    cited = {c.doc_id for c in answer.citations}
    assert not {"wire_original", "wire_syndicated"} <= cited  # one copy quoted
    copy = next(c for c in answer.citations if c.doc_id in {"wire_original", "wire_syndicated"})
    assert copy.also_in == sorted({"wire_original", "wire_syndicated"} - {copy.doc_id})
    assert f"also in: {copy.also_in[0]}" in answer.answer


def test_rag_sources_shows_duplicate_groups(news_settings: Settings) -> None:
    result = run_cli(news_settings, "sources")
    assert result.returncode == 0, result.stderr
    assert "Near duplicates" in result.stdout
    assert "wire_original  copies: wire_syndicated" in result.stdout
    assert "Port Elling Herald · 6 Nov 2024" in result.stdout


def test_a_later_copy_is_found_even_without_the_saved_index(tmp_path: Path) -> None:
    folder = tmp_path / "wire"
    folder.mkdir()
    source = DATA / "duplicates"
    shutil.copy(source / "wire_original.txt", folder / "zz_first.txt")
    settings = make_settings(tmp_path / "index")
    ingest_paths([folder], settings, progress=False)
    store = IndexStore(settings)
    duplicates_path(store).unlink()  # a replica's cache, or a crash before the save
    shutil.copy(source / "wire_syndicated.txt", folder / "aa_second.txt")
    ingest_paths([folder], settings, progress=False)
    records = store.document_records()
    assert records["aa_second"].duplicate_of == "zz_first"  # earliest indexed, not first id
    assert set(rebuild_duplicates(store).doc_ids()) == {"zz_first", "aa_second"}


def test_a_running_engine_learns_of_a_new_copy_when_the_index_changes(tmp_path: Path) -> None:
    folder = tmp_path / "wire"
    folder.mkdir()
    shutil.copy(DATA / "duplicates" / "wire_original.txt", folder / "original.txt")
    settings = make_settings(tmp_path / "index")
    ingest_paths([folder], settings, progress=False)
    engine = Engine(settings, auto_ingest=False)
    question = "Why will water companies ban garden hoses?"
    assert [c.also_in for c in engine.ask(question).citations][0] == []
    shutil.copy(DATA / "duplicates" / "wire_syndicated.txt", folder / "syndicated.txt")
    ingest_paths([folder], settings, progress=False)
    engine.refresh(wait=True)  # what a running engine does every reload_seconds
    assert engine.ask(question).citations[0].also_in == ["syndicated"]


SPRINTERS = (
    "Kenteris, 31, and Thanou, 30, had been charged with avoiding {drugs} tests in Tel Aviv, "
    "Chicago and Athens and failing to notify anti-doping officials of their whereabouts "
    "before the Olympics."
)


def test_a_sentence_two_reports_word_alike_is_quoted_once(tmp_path: Path) -> None:
    """Two reports that are not copies of each other (as articles) carry one sentence
    reworded by a word. When both are likely answers, composition quotes it once."""
    from rag.compose import select
    from rag.question import Question

    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "tribunal.txt").write_text(
        "Greek sprinters cleared by tribunal\n\n"
        "Greek sprinters Kostas Kenteris and Katerina Thanou have been cleared of missing "
        "doping tests by an independent tribunal in Athens. "
        + SPRINTERS.format(drugs="drugs")
        + " The tribunal ruled that the pair had not been told to attend a test in Athens. "
        "Their lawyer said the verdict ended a long ordeal for both athletes.\n",
        encoding="utf-8",
    )
    (folder / "appeal.txt").write_text(
        "IAAF to appeal over Greek sprinters\n\n"
        "Athletics' world governing body says it will challenge the decision to clear the "
        "two Greek sprinters at the Court of Arbitration for Sport. "
        + SPRINTERS.format(drugs="drug")
        + " An IAAF spokesman said the federation had studied the ruling closely and found "
        "it wanting. The appeal is expected to be heard before the summer.\n",
        encoding="utf-8",
    )
    settings = make_settings(tmp_path / "index")
    ingest_paths([folder], settings, progress=False)
    assert IndexStore(settings).records_for(["appeal"])["appeal"].duplicate_of is None
    engine = Engine(settings, auto_ingest=False)
    evidence = engine._evidence(
        Question.read("What were Kenteris and Thanou charged with?"), 5, None
    )
    assert evidence is not None
    corpus = evidence.corpus
    texts = corpus.sentences.texts
    copies = [r for r, t in enumerate(texts) if "officials of their whereabouts" in t]
    assert {str(corpus.sentence_doc[r]) for r in copies} == {"tribunal", "appeal"}
    appeal = next(r for r, t in enumerate(texts) if t.startswith("The appeal is expected"))
    # Both copies as likely as each other, and a sentence of the appeal report after them.
    probs = np.zeros(len(texts))
    probs[copies], probs[appeal] = 0.6, 0.4
    rows = select(corpus, probs, ComposeRules(0.5, 0.5, 1, 450), max_quotes=3)
    assert len(set(rows) & set(copies)) == 1, [texts[r] for r in rows]
    assert appeal in rows  # the room the repeat would have taken


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("2024-11-06", "6 Nov 2024"), (None, ""), ("", ""), ("06/11/2024", ""), ("2024-02-30", "")],
)
def test_a_missing_or_malformed_stored_date_is_shown_as_no_date(
    stored: str | None, shown: str
) -> None:
    from rag.dates import display_date

    assert display_date(stored) == shown


def test_bm25_keeps_each_chunk_day_for_date_filters(news_settings: Settings) -> None:
    from rag.dates import DateRange
    from rag.lexical import open_lexical

    store = IndexStore(news_settings)
    lexical = open_lexical(store, Engine.analyzer_for(news_settings))
    assert lexical is not None
    terms = lexical.terms("cycle lane Harbour bridge Port Elling")
    everything = {c.rsplit(":", 2)[0] for c, _ in lexical.top_chunks(terms, 100)}
    assert "harbour-undated" in everything
    records = store.records_for(sorted(everything))
    for since, until in (("2024-09-01", "2024-11-30"), ("2000-01-01", None), (None, "2024-06-30")):
        dates = DateRange.of(since, until)
        hits = lexical.top_chunks(terms, 100, days=(dates.first_day, dates.last_day))
        found = {c.rsplit(":", 2)[0] for c, _ in hits}
        assert found == {d for d in everything if dates.holds(records[d].published)}
        assert "harbour-undated" not in found


@pytest.mark.parametrize("pool", [2, 30])  # 2: the nearest chunks hold enough in range
def test_dense_search_in_a_date_range_matches_chromas_filtered_search(
    news_settings: Settings, pool: int
) -> None:
    from rag.dates import DateRange
    from rag.lexical import open_lexical
    from rag.retrieve import _dense_hits

    engine = Engine(news_settings, auto_ingest=False)
    store = engine.store
    lexical = open_lexical(store, engine.analyzer)
    vector = engine.embedding.embed_query(BRIDGE)
    for since, until in (("2024-01-01", "2024-12-31"), ("2024-09-01", None), (None, "2024-06-30")):
        dates = DateRange.of(since, until)
        exact = store.nearest(store.chunks, vector, pool, None, dates.where())
        for index in (lexical, None):  # days from BM25, or from the article records
            found = _dense_hits(store, index, vector, pool, None, dates, {})
            assert [c for c, _ in found] == [c for c, _ in exact]
    assert lexical is not None
    days = lexical.days_of(["harbour-2024-06", "harbour-undated", "no-such-article"])
    assert days["harbour-2024-06"] // 100 == 202406 and days["harbour-undated"] == 0
    assert "no-such-article" not in days
