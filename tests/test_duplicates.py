"""rag.duplicates on real article pairs: a syndicated copy is found, a follow-up is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.duplicates import THRESHOLD, DuplicateIndex, duplicate_groups, shingles
from rag.sources import SourceRecord, clean_record, read_file

DATA = Path(__file__).parent / "data" / "sources" / "duplicates"
BBC = Path("/work/shared/corpora/bbc")


def clean_text(path: Path) -> str:
    record = read_file(path, path.parent, path.stem)
    assert isinstance(record, SourceRecord), record
    return clean_record(record).text


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


@pytest.fixture
def texts() -> dict[str, str]:
    return {p.stem: clean_text(p) for p in sorted(DATA.glob("*.txt"))}


@pytest.fixture
def index(texts: dict[str, str]) -> DuplicateIndex:
    index = DuplicateIndex()
    for doc_id, text in texts.items():
        index.add(doc_id, text)
    return index


def test_fixture_pair_is_a_near_duplicate(texts: dict[str, str]) -> None:
    assert round(jaccard(texts["wire_original"], texts["wire_syndicated"]), 3) == 0.686
    assert jaccard(texts["wire_original"], texts["drought_followup"]) == 0.0


def test_shingles() -> None:
    assert shingles("A b, c d E f") == {"a b c d e", "b c d e f"}
    assert shingles("Too short here") == {"too short here"}
    assert shingles(" -- ") == set()


def test_query_finds_the_copy(index: DuplicateIndex, texts: dict[str, str]) -> None:
    assert index.query(texts["wire_syndicated"]) == ["wire_syndicated", "wire_original"]
    assert index.query(texts["drought_followup"]) == ["drought_followup"]
    [(other, estimate)] = index.duplicates_of("wire_original")
    assert other == "wire_syndicated" and THRESHOLD <= estimate < 1.0
    assert duplicate_groups(index) == [["wire_original", "wire_syndicated"]]


def test_re_adding_replaces_the_text(index: DuplicateIndex, texts: dict[str, str]) -> None:
    index.add("wire_syndicated", texts["drought_followup"])
    assert len(index) == 3
    assert index.duplicates_of("wire_original") == []
    assert duplicate_groups(index) == [["drought_followup", "wire_syndicated"]]
    index.remove("wire_syndicated")
    assert "wire_syndicated" not in index and duplicate_groups(index) == []


def test_text_without_words_is_not_indexed() -> None:
    index = DuplicateIndex()
    index.add("a", " -- ")
    index.add("b", "...")
    assert len(index) == 0 and index.query("") == [] and duplicate_groups(index) == []


def test_save_and_load(index: DuplicateIndex, texts: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "dups" / "index.pkl"
    index.save(path)
    index.save(path)  # replacing an existing file
    assert [p.name for p in path.parent.iterdir()] == ["index.pkl"]  # no temporary files
    loaded = DuplicateIndex.load(path)
    assert loaded.threshold == index.threshold and sorted(loaded.doc_ids()) == sorted(texts)
    assert loaded.query(texts["wire_original"]) == ["wire_original", "wire_syndicated"]
    assert duplicate_groups(loaded) == duplicate_groups(index)
    loaded.add("late_copy", texts["wire_original"])
    assert duplicate_groups(loaded) == [["late_copy", "wire_original", "wire_syndicated"]]


def test_an_index_saved_by_an_earlier_version_rebuilds_its_lsh_tables(
    index: DuplicateIndex, texts: dict[str, str], tmp_path: Path
) -> None:
    """Files written before the LSH tables were saved hold only the signatures."""
    import pickle

    path = tmp_path / "index.pkl"
    index.save(path)
    state = pickle.loads(path.read_bytes())
    assert state.pop("lsh") is not None
    path.write_bytes(pickle.dumps(state))
    loaded = DuplicateIndex.load(path)
    assert loaded.query(texts["wire_original"]) == ["wire_original", "wire_syndicated"]
    loaded.remove("wire_syndicated")  # the tables are the index's own, not the file's
    assert loaded.query(texts["wire_original"]) == ["wire_original"]


def test_load_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "other.pkl"
    path.write_bytes(b"\x80\x05N.")  # a pickled None
    with pytest.raises(ValueError, match="not a duplicate index"):
        DuplicateIndex.load(path)
    # A class that is gone (another datasketch): as unreadable, so the caller rebuilds.
    path.write_bytes(b"cdatasketch_gone\nLSH\n.")  # a pickled reference to a class
    with pytest.raises(ValueError, match="another version"):
        DuplicateIndex.load(path)


@pytest.mark.skipif(not BBC.is_dir(), reason=f"BBC archive not present at {BBC}")
def test_bbc_pairs() -> None:
    """Measured with bench/duplicates.py: 088/337 is one report edited (exact Jaccard 0.562,
    the lowest same-report pair); 327/328 is a follow-up a week later (0.467)."""
    names = ["politics_069", "politics_311", "politics_088", "politics_337"]
    names += ["politics_327", "politics_328"]
    texts = {n: clean_text(BBC / f"bbc_{n}.txt") for n in names}
    assert round(jaccard(texts["politics_088"], texts["politics_337"]), 3) == 0.562
    assert round(jaccard(texts["politics_327"], texts["politics_328"]), 3) == 0.467
    index = DuplicateIndex()
    for name, text in texts.items():
        index.add(name, text)
    assert duplicate_groups(index) == [
        ["politics_069", "politics_311"],  # the same file twice
        ["politics_088", "politics_337"],
    ]
