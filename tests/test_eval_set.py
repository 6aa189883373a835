"""The eval set (eval/questions.jsonl) is well-formed and covers the seed articles."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from rag.clean import clean
from rag.evaluation.metrics import normalize
from rag.evaluation.runner import DEFAULT_SET, KINDS, Question, load_questions
from rag.settings import get_settings


@pytest.fixture(scope="module")
def questions() -> list[Question]:
    return load_questions(DEFAULT_SET)


def clean_texts(folder: Path) -> dict[str, str]:
    """Each article's clean text (what answers can quote), normalized like the metrics."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return {p.stem: normalize(clean(p.read_text(encoding="utf-8"), p.suffix).text) for p in files}


@pytest.fixture(scope="module")
def seed_texts() -> dict[str, str]:
    return clean_texts(get_settings().seeds_dir)


def test_every_line_is_a_valid_question() -> None:
    lines = [line for line in DEFAULT_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    for line in lines:
        Question.model_validate(json.loads(line))  # raises with the field at fault


def test_ids_are_unique(questions: list[Question]) -> None:
    duplicates = [i for i, n in Counter(q.id for q in questions).items() if n > 1]
    assert not duplicates, f"duplicate ids: {duplicates}"


def test_questions_are_unique(questions: list[Question]) -> None:
    counts = Counter(normalize(q.question) for q in questions)
    assert not [q for q, n in counts.items() if n > 1]


def test_size_and_kinds(questions: list[Question]) -> None:
    kinds = Counter(q.kind for q in questions)
    assert len(questions) >= 60
    assert set(kinds) <= set(KINDS), f"kinds present: {dict(kinds)}"
    assert len(kinds) >= 6
    assert kinds["unanswerable"] >= 8


def test_gold_sources_are_seed_articles(questions: list[Question], seed_texts: dict) -> None:
    unknown = {(q.id, d) for q in questions for d in q.gold_sources if d not in seed_texts}
    assert not unknown, f"gold sources that are not seed articles: {sorted(unknown)}"


def test_every_seed_article_is_covered(questions: list[Question], seed_texts: dict) -> None:
    covered = {d for q in questions for d in q.gold_sources}
    assert set(seed_texts) <= covered, (
        f"seed articles no question asks about: {set(seed_texts) - covered}"
    )  # noqa: E501


def test_key_facts_occur_in_a_gold_article(questions: list[Question], seed_texts: dict) -> None:
    missing = [
        (q.id, alt)
        for q in questions
        for group in q.must_contain
        for alt in group
        if not any(normalize(alt) in seed_texts[d] for d in q.gold_sources)
    ]
    assert not missing, f"must_contain alternatives found in no gold article: {missing}"


def test_multi_questions_have_several_gold_articles(questions: list[Question]) -> None:
    single = [q.id for q in questions if q.kind == "multi" and len(q.gold_sources) < 2]
    assert not single, f"multi-article questions with one gold article: {single}"


def test_schema_rejects_inconsistent_entries() -> None:
    good = {"id": "q999", "kind": "fact", "question": "Who is X?", "reference_answer": "X.",
            "gold_sources": ["a"], "must_contain": [["X"]], "answerable": True}  # fmt: skip
    Question.model_validate(good)
    bad = [
        {**good, "answerable": False},
        {**good, "must_contain": [[]]},
        {**good, "reference_answer": " "},
        {**good, "kind": "trivia"},
        {**good, "extra": 1},
        {**good, "kind": "unanswerable", "answerable": False},  # keeps gold data
    ]
    for entry in bad:
        with pytest.raises(ValueError):
            Question.model_validate(entry)


def test_the_projects_sets_give_every_field() -> None:
    """A set of one's own may leave out articles and key facts; the project's never do."""
    sets = [DEFAULT_SET, BBC_DIR / "fit.jsonl", BBC_DIR / "heldout.jsonl"]
    for path in sets:
        for q in load_questions(path):
            assert re.fullmatch(r"q\d{3,}", q.id), (path, q.id)
            assert not q.answerable or (q.gold_sources and q.must_contain), (path, q.id)


def test_plain_question_answer_pairs_are_an_eval_set(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    lines = [
        {"question": "Where did Zelensky meet Lloyd Austin?", "answer": "At Ramstein."},
        {"question": "What did the Pope say about it?", "answer": None},
        {"question": "Who spoke for the Kremlin?", "answer": "Dmitry Peskov",
         "key_facts": ["Peskov", ["Kremlin", "Moscow"]], "gold_sources": ["003_042faa28e221901a"]},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    first, second, third = load_questions(path)
    assert (first.id, first.kind, first.answerable) == ("line-1", "fact", True)
    assert first.reference_answer == "At Ramstein."
    assert first.gold_sources == first.must_contain == []
    assert (second.id, second.kind, second.answerable) == ("line-2", "unanswerable", False)
    assert third.must_contain == [["Peskov"], ["Kremlin", "Moscow"]]


def test_a_bad_line_says_which_field_is_wrong_in_plain_words(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"answer": "x", "sources": ["a"]}\n', encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        load_questions(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:1: ")
    assert "question: Field required" in message and "sources: Extra inputs" in message
    assert "pydantic.dev" not in message and "input_value" not in message


def test_load_questions_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "q001"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="set.jsonl:1"):
        load_questions(path)


# --- the BBC archive set (eval/bbc/) ---------------------------------------------------------

BBC_DIR = DEFAULT_SET.parent / "bbc"
BBC_CORPUS = DEFAULT_SET.parents[2] / "shared" / "corpora" / "bbc"


@pytest.fixture(scope="module")
def bbc_halves() -> dict[str, list[Question]]:
    return {h: load_questions(BBC_DIR / f"{h}.jsonl") for h in ("fit", "heldout")}


def test_bbc_set_size_mix_and_split(bbc_halves: dict[str, list[Question]]) -> None:
    fit, heldout = bbc_halves["fit"], bbc_halves["heldout"]
    every = fit + heldout
    assert len(every) >= 200
    assert not {q.id for q in fit} & {q.id for q in heldout}, "a question is in both halves"
    assert abs(len(fit) - len(heldout)) <= 10
    unanswerable = [q for q in every if not q.answerable]
    assert len(unanswerable) >= 40
    assert sum(q.near_miss for q in unanswerable) >= len(unanswerable) // 2 - 1
    kinds = Counter(q.kind for q in every)
    for kind in ("fact", "number", "who", "when", "why", "multi"):
        assert kinds[kind] >= 6, f"too few {kind} questions: {dict(kinds)}"
    # The held-out half is made of other articles than the fitting half's.
    fit_gold = {g for q in fit for g in q.gold_sources[:1]}
    assert not fit_gold & {g for q in heldout for g in q.gold_sources[:1]}


@pytest.mark.skipif(not BBC_CORPUS.is_dir(), reason=f"the BBC archive is not at {BBC_CORPUS}")
def test_bbc_key_facts_are_in_their_gold_articles(bbc_halves: dict[str, list[Question]]) -> None:
    """Every key fact can be quoted: it is in the text of one of the question's articles."""
    problems = []
    for q in bbc_halves["fit"] + bbc_halves["heldout"]:
        texts = [
            normalize((BBC_CORPUS / f"{g}.txt").read_bytes().decode("utf-8", "replace"))
            for g in q.gold_sources
        ]
        for group in q.must_contain:
            if not any(normalize(alt) in t for alt in group for t in texts):
                problems.append((q.id, group))
    assert not problems


BULK_SET = BBC_DIR / "bulk" / "bulk.jsonl"


def test_bulk_fitting_questions_stay_off_the_held_out_articles(
    bbc_halves: dict[str, list[Question]],
) -> None:
    """The bulk-written fitting questions (eval/bbc/bulk/) never touch a held-out article."""
    bulk = load_questions(BULK_SET)
    assert len(bulk) >= 300
    assert len({q.id for q in bulk}) == len(bulk)
    assert not {q.id for q in bulk} & {q.id for q in bbc_halves["fit"] + bbc_halves["heldout"]}
    held_out = {g for q in bbc_halves["heldout"] for g in q.gold_sources}
    assert not held_out & {g for q in bulk for g in q.gold_sources}
    assert sum(not q.answerable for q in bulk) >= 60


def _key_facts_missing_from_gold_articles(path: Path) -> list[tuple]:
    """(question, gold article, key fact) for each key fact of ``path`` not in that article."""
    problems = []
    for q in load_questions(path):
        for gold in q.gold_sources:
            text = normalize((BBC_CORPUS / f"{gold}.txt").read_bytes().decode("utf-8", "replace"))
            problems += [
                (q.id, gold, g)
                for g in q.must_contain
                if not any(normalize(alt) in text for alt in g)
            ]
    return problems


@pytest.mark.skipif(not BBC_CORPUS.is_dir(), reason=f"the BBC archive is not at {BBC_CORPUS}")
def test_bulk_key_facts_are_in_their_gold_articles() -> None:
    assert not _key_facts_missing_from_gold_articles(BULK_SET)


TRAIN_SET = BBC_DIR / "train" / "train.jsonl"


def test_the_adapters_training_questions_stay_off_every_fitting_and_held_out_article(
    bbc_halves: dict[str, list[Question]],
) -> None:
    """The question adapter learns from eval/bbc/train/ only: never from an article a
    reported or scorer-fitting question of the BBC halves is about."""
    train = load_questions(TRAIN_SET)
    assert len(train) >= 3000
    assert len({q.id for q in train}) == len(train)
    others = bbc_halves["fit"] + bbc_halves["heldout"] + load_questions(BULK_SET)
    assert not {q.id for q in train} & {q.id for q in others}
    halves = {g for q in bbc_halves["fit"] + bbc_halves["heldout"] for g in q.gold_sources}
    assert not halves & {g for q in train for g in q.gold_sources}
    assert sum(not q.answerable for q in train) >= 400


@pytest.mark.skipif(not BBC_CORPUS.is_dir(), reason=f"the BBC archive is not at {BBC_CORPUS}")
def test_the_adapters_training_key_facts_are_in_their_gold_articles() -> None:
    assert not _key_facts_missing_from_gold_articles(TRAIN_SET)


INVENTED_DIR = DEFAULT_SET.parent / "invented"


def test_the_invented_news_set_is_well_formed_and_its_key_facts_can_be_quoted() -> None:
    """eval/invented: every gold article exists, and every key fact is in the clean text of
    one of them (a page's byline or sidebar would not count)."""
    questions = load_questions(INVENTED_DIR / "questions.jsonl")
    texts = clean_texts(INVENTED_DIR / "articles")
    assert len(questions) == len({q.id for q in questions}) == 48
    assert sum(not q.answerable for q in questions) == 10
    assert {d for q in questions for d in q.gold_sources} == set(texts)
    missing = [
        (q.id, group)
        for q in questions
        for group in q.must_contain
        if not any(normalize(alt) in texts[d] for alt in group for d in q.gold_sources)
    ]
    assert not missing
