"""The persisted BM25 index: versioned with the Chroma index, updated, never trusted stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.engine import Engine
from rag.ingest import ingest_paths
from rag.lexical import (
    Analyzer,
    LexicalIndex,
    _with_titles,
    lexical_dir,
    open_lexical,
    term_counts,
)
from rag.question import Question
from rag.store import IndexStore, Rows
from tests.conftest import SEEDS, make_settings

NEW_ARTICLE = (
    "Harbour board approves Tromsø ferry terminal\n\n"
    "The Tromsø harbour board approved a new ferry terminal on Tuesday.\n"
    "The terminal will cost 48 million kroner and open in the spring.\n"
)


def published(settings) -> tuple[int, int]:  # noqa: ANN001
    """(generation of the published BM25 index, generation of the corpus)."""
    store = IndexStore(settings)
    lexical = open_lexical(store, Engine.analyzer_for(settings))
    version = store.corpus_version()
    assert lexical is not None and version is not None
    return lexical.generation, version.generation


def test_ingest_publishes_an_index_of_the_committed_chunks(
    tmp_path: Path, corpus_dir: Path
) -> None:
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir], settings, progress=False)
    lexical_generation, corpus_generation = published(settings)
    assert lexical_generation == corpus_generation
    store = IndexStore(settings)
    lexical = open_lexical(store, Engine.analyzer_for(settings))
    assert lexical.size == store.chunks.count()
    hits = lexical.top_chunks(lexical.terms("Ramstein air base"), 3)
    assert hits and hits[0][0].startswith("000_8d93e48187a857e9:")


def test_adding_an_article_tokenizes_only_its_chunks(
    tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir], settings, progress=False)
    tokenized: list[str] = []
    real = Analyzer.terms_of

    def counting(self, texts):  # noqa: ANN001, ANN202
        tokenized.extend(texts)
        return real(self, texts)

    monkeypatch.setattr(Analyzer, "terms_of", counting)
    (corpus_dir / "tromso.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    ingest_paths([corpus_dir], settings, progress=False)
    assert tokenized and all("Tromsø" in text for text in tokenized)
    monkeypatch.setattr(Analyzer, "terms_of", real)

    lexical_generation, corpus_generation = published(settings)
    assert lexical_generation == corpus_generation
    engine = Engine(settings, auto_ingest=False)
    answer = engine.ask("How much will the Tromsø ferry terminal cost?")
    assert answer.citations and answer.citations[0].doc_id == "tromso"
    assert "48 million kroner" in answer.answer


def test_a_pruned_article_leaves_the_index(tmp_path: Path, corpus_dir: Path) -> None:
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir], settings, progress=False)
    (corpus_dir / "000_8d93e48187a857e9.txt").unlink()
    ingest_paths([corpus_dir], settings, prune=True, progress=False)
    store = IndexStore(settings)
    lexical = open_lexical(store, Engine.analyzer_for(settings))
    assert lexical.generation == store.corpus_version().generation
    assert set(lexical.doc_ids) == {"003_042faa28e221901a"}
    assert lexical.top_chunks(lexical.terms("Ramstein"), 3) == []


def test_pruning_every_article_leaves_an_empty_index_that_refuses(
    tmp_path: Path, corpus_dir: Path
) -> None:
    """The last articles removed: an empty BM25 index is published (bm25s never indexed
    anything, so it must be told there is nothing to save), and questions are refused."""
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir], settings, progress=False)
    for article in corpus_dir.iterdir():
        article.unlink()
    ingest_paths([corpus_dir], settings, prune=True, progress=False)
    store = IndexStore(settings)
    lexical = open_lexical(store, Engine.analyzer_for(settings))
    assert lexical is not None and lexical.generation == store.corpus_version().generation
    assert lexical.size == 0 and lexical.top_chunks(lexical.terms("Ramstein"), 3) == []
    answer = Engine(settings, auto_ingest=False).ask("Where did Zelensky meet Lloyd Austin?")
    assert answer.refused and not answer.citations


def test_a_stale_or_broken_index_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "index")
    ingest_paths([SEEDS], settings, progress=False)
    store = IndexStore(settings)
    root = lexical_dir(store)
    # Stale: the corpus moved on (as after an ingest by another machine).
    version = store.write_version(store.corpus_version().fingerprint)
    engine = Engine(settings, auto_ingest=False)
    assert engine.lexical.generation == version.generation
    # Broken: a published folder that cannot be read.
    current = root / (root / "CURRENT").read_text().strip()
    (current / "manifest.json").write_text("{not json")
    store.write_version(version.fingerprint)
    engine = Engine(settings, auto_ingest=False)
    assert engine.lexical is not None and engine.lexical.size == store.chunks.count()
    # Gone: deleted by hand.
    shutil.rmtree(root)
    engine = Engine(settings, auto_ingest=False)
    assert engine.ask("Where did Zelensky meet Lloyd Austin?").citations


def test_a_running_engine_picks_up_new_articles(tmp_path: Path, corpus_dir: Path) -> None:
    settings = make_settings(tmp_path / "index", reload_seconds=0)
    ingest_paths([corpus_dir], settings, progress=False)
    engine = Engine(settings, auto_ingest=False)
    before = engine.version.generation
    assert engine.ask("Where did Zelensky meet Lloyd Austin?").citations
    assert len(engine.chunk_cache) > 0
    (corpus_dir / "tromso.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    ingest_paths([corpus_dir], settings, progress=False)  # as another process would
    engine.refresh(wait=True)
    assert engine.version.generation > before
    assert len(engine.chunk_cache) == 0  # what was read before is not served after a change
    assert engine.lexical.generation == engine.version.generation
    answer = engine.ask("How much will the Tromsø ferry terminal cost?")
    assert answer.citations and answer.citations[0].doc_id == "tromso"


def test_analyzer_gives_the_terms_bm25s_tokenize_gives() -> None:
    """The query-time analyzer must match how bm25s tokenizes, word for word."""
    import bm25s
    import Stemmer

    from rag.lexical import QUESTION_WORDS, fold

    texts = [path.read_text(encoding="utf-8") for path in sorted(SEEDS.glob("*"))]
    texts += [
        "Kyiv's and Moscow's terms: 1,000 drones, $2.5bn, 'don't' — naïve Zürich café 2024-11-06!",
        "",
        "a I of",
        "Über MÜNCHEN straße ΑΘΗΝΑ Москва 東京",
    ]
    stemmer = Stemmer.Stemmer("english")
    expected = bm25s.tokenize(
        [" ".join(fold(w) for w in text.split(" ")) for text in texts],
        stopwords=list(bm25s.stopwords.STOPWORDS_EN) + list(QUESTION_WORDS),
        stemmer=stemmer.stemWords,
        return_ids=False,
        show_progress=False,
    )
    analyzer = Analyzer()
    assert analyzer.terms_of(texts) == [[t for t in doc if t] for doc in expected]
    # Stems already found are reused, and give the same answer the second time.
    assert analyzer.terms_of(texts[:1]) == [[t for t in expected[0] if t]]


def test_a_name_typed_without_its_accents_finds_the_name_written_with_them() -> None:
    analyzer = Analyzer()
    assert analyzer.terms("Who is Jose Munoz?") == analyzer.terms("Who is José Muñoz?")
    assert analyzer.terms("Zurich, Sao Paulo") == analyzer.terms("Zürich, São Paulo")
    assert analyzer.terms("Über") == analyzer.terms("uber") == ["uber"]


def test_the_analyzer_gives_the_same_terms_when_its_word_cache_starts_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fresh = Analyzer().terms_of(["The banks raised rates", "Rates rose at the bank again"])
    monkeypatch.setattr("rag.lexical.STEM_CACHE_WORDS", 4)
    analyzer = Analyzer()
    assert analyzer.terms_of(["The banks raised rates"]) == fresh[:1]
    # Five words more than the cap holds: the cache starts over with this text's words.
    assert analyzer.terms_of(["Rates rose at the bank again"]) == fresh[1:]
    assert len(analyzer._terms) == len({"rates", "rose", "at", "the", "bank", "again"})
    assert analyzer.terms_of(["The banks raised rates"]) == fresh[:1]


def test_candidate_chunks_come_from_the_bm25_index_and_survive_a_re_ingest(
    tmp_path: Path, corpus_dir: Path
) -> None:
    """The BM25 index lists each article's chunks (no record read per question); an article
    re-ingested since the running engine opened that index is found through its record."""
    settings = make_settings(tmp_path / "index", reload_seconds=0)
    ingest_paths([corpus_dir], settings, progress=False)
    engine = Engine(settings, auto_ingest=False)
    records = engine.store.document_records()
    listed = engine.lexical.chunks_of([*records, "no-such-article"])
    assert set(listed) == set(records)
    for doc, record in records.items():
        key = f"{doc}:{record.content_hash[:16]}"
        assert listed[doc] == [f"{key}:c{i}" for i in range(record.chunks)]  # c10 after c9
    # An index built before it kept the sorted article column makes it when needed.
    for name in ("doc_order.npy", "sorted_doc_ids.npy"):
        (engine.lexical.folder / name).unlink()
    older = LexicalIndex(engine.lexical.folder, engine.analyzer)
    assert older.chunks_of(list(records)) == engine.lexical.chunks_of(list(records))

    path = corpus_dir / "000_8d93e48187a857e9.txt"
    edited = path.read_text(encoding="utf-8").replace(
        "at the Ramstein Air Base in Germany", "at the Spangdahlem Air Base in Germany"
    )
    path.write_text(edited, encoding="utf-8")
    ingest_paths([corpus_dir], settings, progress=False)  # as another process would
    answer = engine.ask("At which air base did Zelensky meet Lloyd Austin?")  # not refreshed
    assert answer.citations and answer.citations[0].doc_id == "000_8d93e48187a857e9"
    assert "Spangdahlem" in answer.answer


def test_an_export_records_title_is_searchable_and_its_noise_not_quoted(tmp_path: Path) -> None:
    """A feed's record: its title names the place, its text does not. The title's words
    are in the BM25 index (so the name is known, and the record found by it)."""
    export = tmp_path / "feed"
    export.mkdir()
    record = {
        "id": "ferry-1",
        "title": "Harbour board approves Tromsø ferry terminal",
        # As a feed gives it: a dateline before, a call to action after.
        "text": "Jun 8, 2005 — The board approved a new ferry terminal on Tuesday. "
        "The terminal will cost 48 million kroner and open in the spring. Read more",
    }
    (export / "feed.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    settings = make_settings(tmp_path / "index")
    ingest_paths([export, SEEDS], settings, progress=False)
    lexical = open_lexical(IndexStore(settings), Engine.analyzer_for(settings))
    assert lexical is not None
    hits = lexical.top_chunks(lexical.terms("Tromsø"), 3)
    assert hits and hits[0][0].startswith("ferry-1:")
    engine = Engine(settings, auto_ingest=False)
    answer = engine.ask("How much will the Tromsø ferry terminal cost?")
    assert not answer.refused
    assert answer.citations[0].doc_id == "ferry-1" and "48 million kroner" in answer.answer
    for citation in answer.citations:  # quoted without the feed's dateline and "Read more"
        assert record["text"][citation.start : citation.end] == citation.quote
        assert not citation.quote.startswith("Jun") and "Read more" not in citation.quote
    assert any(c.quote.endswith("open in the spring.") for c in answer.citations)
    # The refusal weighs how much of the question an article holds: its title counts.
    found = engine.candidates(Question.read("Which harbour board approved the Tromsø terminal?"))
    assert found is not None
    assert found[1].article_coverage["ferry-1"] == pytest.approx(1.0)


def test_only_a_title_the_text_lacks_joins_the_first_chunks_terms() -> None:
    analyzer = Analyzer()
    texts = ["Ferry terminal approved\n\nThe board met.", "It opens in spring.", "Board met."]
    chunks = Rows(
        ids=["a:0", "a:1", "b:0"],
        texts=texts,
        metadatas=[
            {"doc_id": "a", "title": "Ferry terminal approved", "position": 0},  # a file
            {"doc_id": "a", "title": "Ferry terminal approved", "position": 1},
            {"doc_id": "b", "title": "Tromsø harbour", "position": 0},  # an export record
        ],
    )
    terms = _with_titles(chunks, analyzer.terms_of(texts), analyzer)
    assert terms[:2] == analyzer.terms_of(texts[:2])
    assert terms[2] == analyzer.terms("Tromsø harbour") + analyzer.terms("Board met.")
    untitled = Rows(["c:0"], ["Board met."], [{"doc_id": "c", "title": "c", "position": 0}])
    assert _with_titles(untitled, analyzer.terms_of(["Board met."]), analyzer) == [
        analyzer.terms("Board met.")
    ]


def test_term_counts_count_each_term_of_each_text() -> None:
    counts = term_counts([["bank", "rate", "bank"], [], ["rate"]], ["bank", "rate", "war"])
    assert counts.tolist() == [[2, 1, 0], [0, 0, 0], [0, 1, 0]]


def test_a_question_without_accents_is_answered_from_the_article_with_them(
    tmp_path: Path, corpus_dir: Path
) -> None:
    """"Who is Jose Munoz?" of an archive that writes "José Muñoz": before, "Munoz" was a
    name no article mentions, the refusal's strongest sign of a near miss."""
    (corpus_dir / "coach.txt").write_text(
        "Valencia name Muñoz as coach\n\n"
        "Valencia have appointed José Muñoz, the former Sevilla assistant, as head coach on a "
        "two-year contract. Muñoz, 47, replaces Ruben Baraja, who was sacked on Sunday after "
        "a run of six defeats.\n",
        encoding="utf-8",
    )
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir], settings, progress=False)
    answer = Engine(settings, auto_ingest=False).ask("Who is Jose Munoz?")
    assert not answer.refused, answer.confidence
    assert answer.citations[0].doc_id == "coach"
    assert "former Sevilla assistant" in answer.answer
