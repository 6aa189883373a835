"""Ingestion into real Chroma with the real embedding model."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import rag.ingest
from rag.engine import Engine
from rag.errors import EmptyIndexError, IndexUnavailableError, RagError
from rag.ingest import ingest_paths
from rag.store import IndexStore
from tests.conftest import SEEDS, make_settings


def chunk_rows(settings, doc_id: str) -> list[str]:  # noqa: ANN001
    return IndexStore(settings).chunks.get(where={"doc_id": doc_id}, include=[])["ids"]


def test_reingest_is_idempotent(tmp_path: Path, corpus_dir: Path) -> None:
    settings = make_settings(tmp_path / "index")
    first = ingest_paths([corpus_dir], settings, progress=False)
    assert first.files == 2 and first.added > 0 and first.embedded_texts > first.added
    total = IndexStore(settings).chunks.count()

    again = ingest_paths([corpus_dir], settings, progress=False)
    assert (again.added, again.removed, again.embedded_texts) == (0, 0, 0)
    assert again.kept == first.added
    assert IndexStore(settings).chunks.count() == total


def test_changed_file_replaces_its_chunks(tmp_path: Path, corpus_dir: Path) -> None:
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir], settings, progress=False)
    path = corpus_dir / "000_8d93e48187a857e9.txt"
    old_ids = set(chunk_rows(settings, path.stem))

    path.write_text(
        path.read_text(encoding="utf-8")
        + "\nThe foreign ministers agreed to meet again in Vienna in early December.\n",
        encoding="utf-8",
    )
    report = ingest_paths([corpus_dir], settings, progress=False)
    new_ids = set(chunk_rows(settings, path.stem))
    assert report.added == len(new_ids) and report.removed == len(old_ids)
    assert not old_ids & new_ids
    assert report.kept == len(chunk_rows(settings, "003_042faa28e221901a"))

    answer = Engine(settings, auto_ingest=False).ask("Where will the foreign ministers meet?")
    assert "Vienna" in answer.answer


def test_prune_removes_deleted_files(tmp_path: Path, corpus_dir: Path) -> None:
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir], settings, progress=False)
    (corpus_dir / "000_8d93e48187a857e9.txt").unlink()

    kept = ingest_paths([corpus_dir], settings, progress=False)
    assert kept.removed == 0 and chunk_rows(settings, "000_8d93e48187a857e9")

    pruned = ingest_paths([corpus_dir], settings, prune=True, progress=False)
    assert pruned.removed > 0
    assert not chunk_rows(settings, "000_8d93e48187a857e9")
    assert [d.doc_id for d in Engine(settings).sources()] == ["003_042faa28e221901a"]


def test_interrupted_ingest_leaves_nothing_half_indexed(
    tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path / "index")
    monkeypatch.setattr(rag.ingest, "BATCH_SENTENCES", 1)  # one article per batch
    real_commit = IndexStore.commit_documents
    calls = {"n": 0}

    def commit_then_interrupt(self, records, texts):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 2:  # doc 1 committed, doc 2's rows written, then Ctrl-C
            raise KeyboardInterrupt
        return real_commit(self, records, texts)

    monkeypatch.setattr(IndexStore, "commit_documents", commit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        ingest_paths([corpus_dir], settings, progress=False)
    # The second article's chunks were written, but it was never committed: invisible.
    assert chunk_rows(settings, "003_042faa28e221901a")
    engine = Engine(settings, auto_ingest=False)
    assert [d.doc_id for d in engine.sources()] == ["000_8d93e48187a857e9"]
    assert {p.doc_id for p in engine.ask("What did Peskov say about NATO?").passages} == {
        "000_8d93e48187a857e9"
    }

    monkeypatch.setattr(IndexStore, "commit_documents", real_commit)
    report = ingest_paths([corpus_dir], settings, progress=False)
    assert report.kept > 0 and report.added > 0
    clean_settings = make_settings(tmp_path / "clean")
    clean = ingest_paths([corpus_dir], clean_settings, progress=False)
    assert IndexStore(settings).chunks.count() == IndexStore(clean_settings).chunks.count()
    assert len(IndexStore(settings).document_records()) == len(
        IndexStore(clean_settings).document_records()
    )
    assert clean.added == report.added + report.kept


def test_bad_files_are_skipped_and_the_rest_indexed(tmp_path: Path, corpus_dir: Path) -> None:
    (corpus_dir / "empty.txt").write_bytes(b"")
    (corpus_dir / "binary.txt").write_bytes(b"\x00\x01\x02PK\x03\x04" * 50)
    latin1 = "La déclaration à la presse a été lue par le ministre à Genève mardi."
    (corpus_dir / "latin1.txt").write_bytes(latin1.encode("latin-1"))  # decoded, not skipped
    (corpus_dir / "notes.pdf").write_bytes(b"%PDF-1.4")  # unsupported: not even looked at
    settings = make_settings(tmp_path / "index")
    report = ingest_paths([corpus_dir], settings, progress=False)
    assert report.files == 3
    reasons = dict((Path(p).name, r) for p, r in report.skipped)
    assert set(reasons) == {"empty.txt", "binary.txt"}
    assert "empty" in reasons["empty.txt"] and "binary" in reasons["binary.txt"]
    _, text = Engine(settings, auto_ingest=False).document_text("latin1")
    assert text == latin1


def test_missing_path_is_an_error_and_indexes_nothing(tmp_path: Path, corpus_dir: Path) -> None:
    settings = make_settings(tmp_path / "index")
    with pytest.raises(RagError, match="no such file"):
        ingest_paths([corpus_dir, tmp_path / "nope"], settings, progress=False)
    with pytest.raises(EmptyIndexError):
        Engine(settings.model_copy(update={"seeds_dir": tmp_path / "none"}))


def test_locked_index_is_reported(tmp_path: Path, corpus_dir: Path) -> None:
    settings = make_settings(tmp_path / "index")
    settings.index_dir.mkdir()
    with open(settings.index_dir / ".ingest.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(IndexUnavailableError, match="locked"):
            ingest_paths([corpus_dir], settings, progress=False)


def test_a_read_only_index_is_not_called_unreadable(tmp_path: Path) -> None:
    """Chroma writes to its files even to answer, so an index on a read-only mount fails
    to open with SQLite's "attempt to write a readonly database". The advice is to give
    write access, not to move the index away and rebuild it. (The error is SQLite's own,
    from a database opened read-only: as root, as CI runs, file modes do not stop writes.)"""
    import sqlite3

    from rag.store import _describe_failure

    db = tmp_path / "chroma.sqlite3"
    sqlite3.connect(db).execute("create table t (x)").connection.commit()
    read_only = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as raised:
        read_only.execute("insert into t values (1)")
    said = _describe_failure(make_settings(tmp_path), raised.value)
    assert "is read-only" in said and "write access" in said
    assert "move it away" not in said and "unreadable" not in said


@contextmanager
def other_process(settings, code: str) -> Iterator[None]:  # noqa: ANN001
    """Another Python process that runs ``code`` on the index (``store``, ``settings``)
    and keeps it open until the block ends."""
    script = (
        "import sys\n"
        "from rag.settings import Settings\n"
        "from rag.store import IndexStore, writing_index\n"
        "settings = Settings(\n"
        f"    _env_file=None, index_dir={str(settings.index_dir)!r},"
        f" cache_dir={str(settings.cache_dir)!r}\n"
        ")\n"
        f"{code}\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAG_INDEX_DIR": str(settings.index_dir)},
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        yield
    finally:
        process.stdin.close()
        process.wait(timeout=60)


def test_ingest_refuses_an_index_another_process_has_open(tmp_path: Path, corpus_dir: Path) -> None:
    """Chroma's embedded store is not safe to write while another process reads it (a
    running `rag serve`): the ingest stops before writing, says why, and works once the
    other process has gone."""
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir / "000_8d93e48187a857e9.txt"], settings, progress=False)
    with other_process(settings, "store = IndexStore(settings)"):
        with pytest.raises(IndexUnavailableError, match="open in another process"):
            ingest_paths([corpus_dir], settings, progress=False)
        cli = subprocess.run(
            [sys.executable, "-m", "rag.cli", "ingest", str(corpus_dir)],
            env={**os.environ, "RAG_INDEX_DIR": str(settings.index_dir)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        said = " ".join(cli.stderr.split())  # the console wraps long lines
        assert cli.returncode == IndexUnavailableError.exit_code
        assert "open in another process" in said and "Traceback" not in said
    assert [d.doc_id for d in Engine(settings, auto_ingest=False).sources()] == [
        "000_8d93e48187a857e9"
    ]
    report = ingest_paths([corpus_dir], settings, progress=False)
    assert report.added > 0 and report.kept > 0
    assert len(Engine(settings, auto_ingest=False).sources()) == 2


def test_an_index_being_written_is_not_opened(tmp_path: Path, corpus_dir: Path) -> None:
    settings = make_settings(tmp_path / "index")
    writing = (
        "from rag.ingest import ingest_paths\n"
        f"ingest_paths([Path({str(corpus_dir)!r})], settings, progress=False)\n"
        "held = writing_index(settings.index_dir)\n"
        "held.__enter__()  # as if still ingesting"
    )
    with (
        other_process(settings, "from pathlib import Path\n" + writing),
        pytest.raises(IndexUnavailableError, match="`rag ingest` is writing"),
    ):
        Engine(settings, auto_ingest=False)
    assert len(Engine(settings, auto_ingest=False).sources()) == 2


def test_one_process_may_ask_and_ingest(tmp_path: Path, corpus_dir: Path) -> None:
    """The lock is the process's: an engine and an ingest in one process share it."""
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir / "000_8d93e48187a857e9.txt"], settings, progress=False)
    engine = Engine(settings, auto_ingest=False)
    assert ingest_paths([corpus_dir], settings, progress=False).added > 0
    with other_process(settings, "store = IndexStore(settings)"):  # readers share it
        assert engine.ask("What did Peskov say about talks?").passages


def test_corrupted_index_is_reported(tmp_path: Path, corpus_dir: Path) -> None:
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir], settings, progress=False)
    database = settings.index_dir / "chroma.sqlite3"
    database.write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexUnavailableError, match="unreadable|cannot"):
        Engine(settings, auto_ingest=False)


def test_auto_ingest_of_seeds_on_first_ask(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SEEDS / "003_042faa28e221901a.txt", seeds)
    settings = make_settings(tmp_path / "index", seeds_dir=seeds)
    engine = Engine(settings)
    assert [d.doc_id for d in engine.sources()] == ["003_042faa28e221901a"]


def test_article_text_comes_from_the_index_not_the_file(tmp_path: Path, corpus_dir: Path) -> None:
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir], settings, progress=False)
    engine = Engine(settings, auto_ingest=False)
    doc, text = engine.document_text("003_042faa28e221901a")
    assert doc.title.startswith("Moscow says") and "Peskov" in text
    path = corpus_dir / "003_042faa28e221901a.txt"
    indexed = path.read_text(encoding="utf-8")
    path.write_text("Breaking: " + indexed, encoding="utf-8")  # citations still index into
    assert engine.document_text("003_042faa28e221901a")[1] == indexed  # the indexed text
    path.unlink()  # a replica has no files at all
    assert engine.document_text("003_042faa28e221901a")[1] == indexed


def test_the_chunk_search_explores_as_many_candidates_as_set(tmp_path: Path) -> None:
    """A new index searches with ``search_ef``; one made with Chroma's default is changed
    in place when opened (Chroma's own configuration, read back by a fresh client)."""
    import chromadb

    settings = make_settings(tmp_path / "index")
    store = IndexStore(settings)
    assert store.chunks.configuration_json["hnsw"]["ef_search"] == settings.search_ef == 300
    store.chunks.modify(configuration={"hnsw": {"ef_search": 100}})  # as older indexes have

    IndexStore(settings)
    fresh = chromadb.PersistentClient(
        path=str(settings.index_dir),
        settings=chromadb.Settings(anonymized_telemetry=False),
    )
    chunks = fresh.get_collection(f"{settings.collection}-chunks")
    assert chunks.configuration_json["hnsw"]["ef_search"] == 300


def test_the_search_setting_is_changed_after_a_moment_of_sqlite_lock(tmp_path: Path) -> None:
    """Chroma's SQLite file can be locked for a moment by Chroma itself (seen once in CI):
    the change is tried again, and an index that stays locked still opens, with a warning."""
    import chromadb

    settings = make_settings(tmp_path / "index")
    store = IndexStore(settings)
    store.chunks.modify(configuration={"hnsw": {"ef_search": 100}})

    class LockedFor:  # the real collection, its first ``times`` changes refused
        def __init__(self, times: int) -> None:
            self.times, self.configuration_json = times, store.chunks.configuration_json

        def modify(self, **change: object) -> None:
            if self.times:
                self.times -= 1
                raise RuntimeError("Database error: (code: 5) database is locked")
            store.chunks.modify(**change)

    store._keep_search_ef(LockedFor(99))  # never free: gives up, the index still answers
    store._keep_search_ef(LockedFor(2))
    fresh = chromadb.PersistentClient(
        path=str(settings.index_dir),
        settings=chromadb.Settings(anonymized_telemetry=False),
    )
    chunks = fresh.get_collection(f"{settings.collection}-chunks")
    assert chunks.configuration_json["hnsw"]["ef_search"] == 300


def unsaved_search_rows(settings) -> int:  # noqa: ANN001
    """Chunk rows Chroma's embedded store logged but has not written into the HNSW index on
    disk: each process that opens the index adds them again (read from Chroma's own
    SQLite tables: no API tells)."""
    import sqlite3

    chunks = IndexStore(settings).chunks
    with sqlite3.connect(settings.index_dir / "chroma.sqlite3") as db:
        (segment,) = db.execute(
            "SELECT id FROM segments WHERE collection = ? AND scope = 'VECTOR'", (str(chunks.id),)
        ).fetchone()
        saved = db.execute("SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (segment,))
        saved_up_to = (saved.fetchone() or (0,))[0]
        return db.execute(
            "SELECT COUNT(*) FROM embeddings_queue WHERE topic LIKE ? AND seq_id > ?",
            (f"%/{chunks.id}", saved_up_to),
        ).fetchone()[0]


def test_an_ingest_leaves_the_whole_search_index_on_disk(tmp_path: Path, corpus_dir: Path) -> None:
    """Rows left for the next process to add again were added in parallel, and Chroma 1.5
    then lost some from the search in some processes (``IndexStore.save_search_index``)."""
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir], settings, progress=False)
    assert IndexStore(settings).chunks.count() > 0
    assert unsaved_search_rows(settings) == 0
    store = IndexStore(settings)
    assert store.chunks.configuration_json["hnsw"]["sync_threshold"] == 1000  # set back

    (corpus_dir / "extra.txt").write_text("Extra headline\n\nA new article arrived today.\n")
    ingest_paths([corpus_dir], settings, progress=False)
    assert unsaved_search_rows(settings) == 0


def test_an_index_written_before_is_saved_whole_by_the_next_ingest(
    tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path / "index")
    with monkeypatch.context() as patch:  # as versions before this one left it
        patch.setattr(IndexStore, "save_search_index", lambda self: None)
        ingest_paths([corpus_dir], settings, progress=False)
    assert unsaved_search_rows(settings) > 0

    again = ingest_paths([corpus_dir], settings, progress=False)
    assert again.added == 0 and unsaved_search_rows(settings) == 0


def test_a_title_the_text_lacks_is_embedded_with_the_first_chunk(tmp_path: Path) -> None:
    """Two export records with the same text and different titles: the search by meaning
    finds the one whose title answers, because its first chunk's vector holds the title."""
    import json

    from rag.components.embedding import load_embedding

    text = "The decision was announced on Tuesday after a long meeting of the council."
    records = [
        {"id": "ferry", "title": "Harbour board approves new ferry terminal", "text": text},
        {"id": "pass", "title": "Snowstorm closes the mountain pass to lorries", "text": text},
    ]
    export = tmp_path / "feed"
    export.mkdir()
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (export / "feed.jsonl").write_text(lines, encoding="utf-8")
    settings = make_settings(tmp_path / "index")
    report = ingest_paths([export], settings, progress=False)
    assert report.embedded_texts == 2 * 3  # a sentence, a title, the sentence after its title

    store = IndexStore(settings)
    question = load_embedding(settings).embed_query("Which ferry terminal was approved?")
    similarity = dict(store.nearest(store.chunks, question, 2))
    by_doc = {row.split(":")[0]: score for row, score in similarity.items()}
    assert by_doc["ferry"] > by_doc["pass"] + 0.02


def test_a_title_the_text_holds_is_not_embedded_twice(tmp_path: Path) -> None:
    """A file's headline is its first sentence; an export whose text starts with its title
    is read the same way. Neither changes the content hash of an index built before."""
    import hashlib

    from rag.documents import READER_VERSIONS, record_hash, title_outside_text
    from rag.sources import SourceRecord

    def record(title: str | None, text: str, body: str = "") -> SourceRecord:
        return SourceRecord(
            doc_id="a", source="a.jsonl#a", path=Path("a.jsonl"), text=text, suffix=".txt",
            title=title, published=None, url=None, publisher=None,
            body_start=text.index(body) if body else 0,  # after front matter
        )  # fmt: skip

    def hash_before(r: SourceRecord) -> str:  # record_hash as it was before titles
        meta = "\0".join(x or "" for x in (r.title, r.published, r.url, r.publisher))
        reader = f"{r.suffix}{READER_VERSIONS.get(r.suffix, '')}"
        return hashlib.sha256(f"{r.text}\0{meta}\0{reader}".encode()).hexdigest()

    held = [
        record(None, "Ferry terminal approved\n\nThe board met."),  # a plain file
        record("Ferry terminal approved", "Ferry  terminal\napproved. The board met."),
        record("Ferry", "title: Ferry\n---\nFerry is approved.", body="Ferry is"),
    ]
    for r in held:
        assert title_outside_text(r) == "" and record_hash(r) == hash_before(r)
    lacking = record("Ferry terminal approved", "title: Ferry terminal approved\n---\nIt is.", "It")
    assert title_outside_text(lacking) == "Ferry terminal approved"
    assert record_hash(lacking) != hash_before(lacking)


def test_rag_remove_by_id_and_by_source(
    tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rag remove`: an export's records by --source, an article by id; the near-duplicate
    index follows (the next ingest need not rebuild it); bad input removes nothing."""
    import json

    from typer.testing import CliRunner

    import rag.cli
    from rag.duplicates import DuplicateIndex
    from rag.ingest import duplicates_path

    feed = tmp_path / "feed"
    feed.mkdir()
    records = [
        {"id": "ferry-1", "title": "Ferry terminal approved", "text": "It costs 48m kroner."},
        {"id": "pass-1", "title": "Storm closes pass", "text": "Snow closed the pass on Monday."},
    ]
    (feed / "feed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus_dir, feed], settings, progress=False)
    monkeypatch.setattr(rag.cli, "get_settings", lambda: settings)

    def rag_command(*args: str):  # noqa: ANN202
        return CliRunner().invoke(rag.cli.app, list(args))

    def indexed() -> set[str]:
        return set(IndexStore(settings).document_records())

    everything = indexed()
    for bad in [(), ("no-such-article",), ("--source", str(tmp_path / "elsewhere"))]:
        run = rag_command("remove", *bad)
        assert run.exit_code == 2 and "error:" in run.output
    with other_process(settings, "store = IndexStore(settings)"):  # a running `rag serve`
        run = rag_command("remove", "pass-1")
        assert run.exit_code == IndexUnavailableError.exit_code
        assert "open in another process" in " ".join(run.output.split())
    assert indexed() == everything

    run = rag_command("remove", "--source", str(feed / "feed.jsonl"))
    assert run.exit_code == 0 and "2 articles removed" in run.output, run.output
    assert indexed() == {"000_8d93e48187a857e9", "003_042faa28e221901a"}
    run = rag_command("remove", "000_8d93e48187a857e9")
    assert run.exit_code == 0 and "1 articles removed" in run.output
    assert indexed() == {"003_042faa28e221901a"}
    assert set(DuplicateIndex.load(duplicates_path(IndexStore(settings))).doc_ids()) == indexed()

    answer = Engine(settings, auto_ingest=False).ask("How much will the ferry terminal cost?")
    assert all(c.doc_id == "003_042faa28e221901a" for c in answer.citations)


def test_a_new_index_links_its_chunks_densely_enough_to_reach_them(tmp_path: Path) -> None:
    """The chunk search of a new index is built with more links than Chroma's default (see
    ``IndexStore._collection``), read back from Chroma's own configuration."""
    from rag.store import HNSW_BUILD_EF

    settings = make_settings(tmp_path / "index")
    hnsw = IndexStore(settings).chunks.configuration_json["hnsw"]
    assert (hnsw["max_neighbors"], hnsw["ef_construction"]) == (32, HNSW_BUILD_EF)
    assert settings.search_links == 32
    fewer = make_settings(tmp_path / "smaller", search_links=16)  # RAG_SEARCH_LINKS=16
    hnsw = IndexStore(fewer).chunks.configuration_json["hnsw"]
    assert hnsw["max_neighbors"] == 16


BBC = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "bbc"


@pytest.mark.slow
@pytest.mark.skipif(not BBC.is_dir(), reason=f"BBC archive not present at {BBC}")
def test_every_chunk_is_found_by_its_own_vector(tmp_path: Path) -> None:
    """1,000 snippets of the archive (one chunk each; their vectors lie close together):
    every chunk is among the 10 nearest of its own vector. With Chroma's default links,
    1 to 7 of them were not, even among the 100 nearest, in each of five builds."""
    import numpy as np

    from rag.evaluation.snippets import make_snippets

    make_snippets(BBC, [], 1000, seed=20261126).write(tmp_path / "corpus", tmp_path / "q.jsonl")
    settings = make_settings(tmp_path / "index")
    ingest_paths([tmp_path / "corpus"], settings, progress=False)
    store = IndexStore(settings)
    lost = [
        row_id
        for rows in store.scan(store.chunks, include=["embeddings"])
        for row_id, vector in zip(rows.ids, rows.embeddings, strict=True)
        if row_id not in {hit for hit, _ in store.nearest(store.chunks, np.asarray(vector), 10)}
    ]
    assert store.chunks.count() >= 1000 and lost == []


def test_each_sentence_is_embedded_again_after_its_title(tmp_path: Path) -> None:
    """A sentence that needs its article's context ("He will now play …") is stored with a
    second vector, of the sentence after the title; the engine reads both. The headline
    itself, and the sentences of an untitled record, keep their one vector."""
    import json

    from rag.components.embedding import load_embedding
    from rag.engine import Engine
    from rag.question import Question

    corpus = tmp_path / "news"
    corpus.mkdir()
    (corpus / "nadal.txt").write_text(
        "Nadal reaches Buenos Aires last eight\n\n"
        "He beat Potito Starace 6-1 6-3. He will now play Gaston Gaudio.\n",
        encoding="utf-8",
    )
    (corpus / "feed.jsonl").write_text(json.dumps({"id": "untitled", "text": "It rained."}) + "\n")
    settings = make_settings(tmp_path / "index")
    ingest_paths([corpus], settings, progress=False)

    model = load_embedding(settings)
    engine = Engine(settings, auto_ingest=False, embedding=model)
    found = engine.candidates(Question.read("Whom will Nadal play next?"))
    assert found is not None
    corpus_rows = found[0].corpus
    texts = corpus_rows.sentences.texts
    plain, titled = corpus_rows.sentences.embeddings, corpus_rows.sentence_titled
    expected = model.embed_documents(["Nadal reaches Buenos Aires last eight. " + texts[2]])[0]
    assert texts[2] == "He will now play Gaston Gaudio."
    assert float(titled[2] @ expected) > 0.99  # int8-packed: not bit-equal
    assert float(titled[2] @ plain[2]) < 0.95
    assert float(titled[0] @ plain[0]) > 0.99  # the headline
    question = model.embed_query("Whom will Nadal play next?")
    assert float(titled[2] @ question) > float(plain[2] @ question)
    untitled = engine.candidates(Question.read("Did it rain?"), doc_ids=["untitled"])
    assert untitled is not None
    rows = untitled[0].corpus
    assert float(rows.sentence_titled[0] @ rows.sentences.embeddings[0]) > 0.99


def test_files_of_other_types_and_bad_records_are_named_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PDF decodes as noise, not as its text: named on its own it is skipped, saying
    why; in a folder it is left out, and `rag ingest` says how many such files it left."""
    import json

    from typer.testing import CliRunner

    import rag.cli

    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy(SEEDS / sorted(p.name for p in SEEDS.iterdir())[0], folder / "talks.txt")
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\nBT /F1 12 Tf (Ferry fares rise) Tj ET\n"
    (folder / "fares.pdf").write_bytes(pdf)
    (folder / "notes.docx").write_bytes(b"PK\x03\x04 word/document.xml")
    good = {"id": "fares", "title": "Fares rise", "text": "Ferry fares rise by 4% in May."}
    (folder / "feed.jsonl").write_text(json.dumps(good) + "\n{not json\n", encoding="utf-8")
    settings = make_settings(tmp_path / "index")
    monkeypatch.setattr(rag.cli, "get_settings", lambda: settings)

    run = CliRunner().invoke(rag.cli.app, ["ingest", "-q", str(folder / "fares.pdf")])
    assert run.exit_code == 1, run.output
    assert "fares.pdf: not a type rag reads (.pdf)" in " ".join(run.output.split())

    run = CliRunner().invoke(rag.cli.app, ["ingest", "-q", str(folder)])
    assert run.exit_code == 0, run.output
    said = " ".join(run.output.split())
    assert "not read: files of other types (1 .docx, 1 .pdf)" in said and "2 articles" in said
    assert said.count("skipped a record of") == 1 and "feed.jsonl (line 2):" in said
    assert set(IndexStore(settings).document_records()) == {"talks", "fares"}
