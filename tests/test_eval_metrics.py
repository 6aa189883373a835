"""The eval's metric functions on hand-made answers (``Answer.to_dict()`` shape)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rag.evaluation import metrics
from rag.evaluation.runner import check_thresholds
from rag.settings import REPO_ROOT

SEED = "seeds/000_8d93e48187a857e9.txt"
GOLD = "000_8d93e48187a857e9"
OTHER = "001_7ad4693f24f79d99"
QUOTE = "He made his statement during a meeting with US Defense Secretary Lloyd Austin at the Ramstein Air Base in Germany."  # noqa: E501

QUESTION = {
    "id": "q001",
    "kind": "fact",
    "question": "Where did Zelensky meet US Defense Secretary Lloyd Austin?",
    "reference_answer": "At the Ramstein Air Base in Germany.",
    "gold_sources": [GOLD],
    "must_contain": [["Ramstein"], ["Germany", "German"]],
    "answerable": True,
}
UNANSWERABLE = {
    **QUESTION,
    "kind": "unanswerable",
    "reference_answer": "The articles do not say.",
    "gold_sources": [],
    "must_contain": [],
    "answerable": False,
}


def citation(doc_id: str = GOLD, quote: str = QUOTE, shift: int = 0, source: str = SEED) -> dict:
    text = (REPO_ROOT / source).read_text(encoding="utf-8")
    start = text.index(quote) + shift
    return {"n": 1, "doc_id": doc_id, "title": "t", "source": source, "quote": quote,
            "start": start, "end": start + len(quote)}  # fmt: skip


def passage(doc_id: str) -> dict:
    return {"doc_id": doc_id, "title": "t", "text": "…", "score": 0.5, "start": 0, "end": 1}


def answer(text: str, cites: list[dict], refused: bool = False, docs: tuple = (GOLD,)) -> dict:
    return {
        "question": QUESTION["question"],
        "answer": text,
        "refused": refused,
        "citations": cites,
        "passages": [passage(d) for d in docs],
        "timings_ms": {"retrieve": 5.0, "answer": 1.0, "total": 6.0},
    }


RIGHT = answer(f"“{QUOTE}” [1]", [citation()])


# --- a right answer -------------------------------------------------------------------------


def test_right_answer_scores_full_marks() -> None:
    s = metrics.score_answer(QUESTION, RIGHT, k=5)
    assert s["hit_at_1"] == s["hit_at_k"] == s["mrr"] == 1.0
    assert s["key_fact_recall"] == s["all_key_facts"] == 1.0
    assert s["citation_precision"] == s["citation_recall"] == 1.0
    assert (s["quotes_checked"], s["quotes_bad"]) == (1, 0)
    assert s["failures"] == []


def test_quote_at_its_offsets_is_verbatim() -> None:
    c = citation()
    assert (REPO_ROOT / SEED).read_text(encoding="utf-8")[c["start"] : c["end"]] == QUOTE
    assert metrics.quote_is_verbatim(c)


# --- a wrong citation -----------------------------------------------------------------------


def test_wrong_citation_costs_precision_and_recall() -> None:
    wrong = citation(OTHER, "Ukrainian President Volodymyr Zelensky", source=f"seeds/{OTHER}.txt")
    s = metrics.score_answer(QUESTION, answer("Ramstein in Germany.", [wrong]), k=5)
    assert s["citation_precision"] == 0.0
    assert s["citation_recall"] == 0.0
    assert s["quotes_bad"] == 0  # the quote itself is verbatim; it is just the wrong article
    assert any(OTHER in reason for reason in s["failures"])


def test_half_right_citations() -> None:
    cites = [citation(), {**citation(), "doc_id": OTHER}]
    assert metrics.citation_precision(cites, [GOLD]) == 0.5
    assert metrics.citation_recall(cites, [GOLD, "x"]) == 0.5
    assert metrics.citation_precision([], [GOLD]) is None


def test_a_key_fact_counts_in_the_first_quote_only_where_it_is_quoted_first() -> None:
    context = citation(OTHER, "Ukrainian President Volodymyr Zelensky", source=f"seeds/{OTHER}.txt")
    fact_second = answer(f"“{context['quote']}” [1] “{QUOTE}” [2]", [context, citation()])
    s = metrics.score_answer(QUESTION, fact_second, k=5)
    assert s["key_fact_recall"] == 1.0 and s["first_quote_fact"] == 0.0
    assert metrics.score_answer(QUESTION, RIGHT, k=5)["first_quote_fact"] == 1.0
    refusal = answer("The articles do not say.", [], refused=True)
    assert metrics.score_answer(QUESTION, refusal, k=5)["first_quote_fact"] == 0.0


# --- a quote off by one character -----------------------------------------------------------


@pytest.mark.parametrize("shift", [-1, 1])
def test_quote_shifted_by_one_character_is_not_verbatim(shift: int) -> None:
    assert not metrics.quote_is_verbatim(citation(shift=shift))


def test_quote_one_character_short_is_not_verbatim() -> None:
    c = citation()
    assert not metrics.quote_is_verbatim({**c, "end": c["end"] - 1})
    assert not metrics.quote_is_verbatim({**c, "quote": QUOTE[:-1] + "!"})


def test_bad_quote_is_reported() -> None:
    s = metrics.score_answer(QUESTION, answer(RIGHT["answer"], [citation(shift=1)]), k=5)
    assert (s["quotes_checked"], s["quotes_bad"]) == (1, 1)
    assert any("verbatim" in reason for reason in s["failures"])


def test_missing_file_or_bad_offsets_are_not_verbatim(tmp_path: Path) -> None:
    assert not metrics.quote_is_verbatim({**citation(), "source": str(tmp_path / "gone.txt")})
    assert not metrics.quote_is_verbatim({**citation(), "start": -1, "end": len(QUOTE) - 1})


def test_absolute_source_is_read_as_is(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("abc Ramstein def", encoding="utf-8")
    c = {"source": str(f), "start": 4, "end": 12, "quote": "Ramstein"}
    assert metrics.resolve_source(str(f)) == f
    assert metrics.quote_is_verbatim(c)


# --- refusals -------------------------------------------------------------------------------


def test_refused_answerable_question_scores_zero() -> None:
    refusal = answer("The articles do not say.", [], refused=True)
    s = metrics.score_answer(QUESTION, refusal, k=5)
    assert s["key_fact_recall"] == s["token_f1"] == s["citation_recall"] == 0.0
    assert s["citation_precision"] is None
    assert s["hit_at_1"] == 1.0  # retrieval is scored on the passages all the same
    assert "refused an answerable question" in s["failures"]


def test_refused_unanswerable_question_passes() -> None:
    refusal = answer("The articles do not say.", [], refused=True, docs=())
    s = metrics.score_answer(UNANSWERABLE, refusal, k=5)
    assert s["failures"] == []
    assert "key_fact_recall" not in s  # answer metrics are for answerable questions only


def test_answered_unanswerable_question_fails() -> None:
    s = metrics.score_answer(UNANSWERABLE, RIGHT, k=5)
    assert s["failures"] == ["answered an unanswerable question"]


# --- single functions -----------------------------------------------------------------------


def test_key_facts_need_one_alternative_of_every_group() -> None:
    groups = [["Storm Shadow"], ["Tomahawk", "cruise missiles"]]
    assert metrics.key_fact_recall("storm shadow and CRUISE missiles", groups) == 1.0
    assert metrics.key_fact_recall("Storm Shadow only", groups) == 0.5
    assert metrics.matched_facts("nothing", groups) == [False, False]
    assert metrics.key_fact_recall("anything", []) == 1.0


def test_key_facts_ignore_typographic_quotes_and_spacing() -> None:
    assert metrics.key_fact_recall("Russia’s  terms", [["Russia's terms"]]) == 1.0


def test_token_f1() -> None:
    assert metrics.token_f1("The Ramstein base", "Ramstein base") == 1.0
    assert metrics.token_f1("nothing alike", "Ramstein base") == 0.0
    assert metrics.token_f1("Ramstein", "Ramstein air base") == pytest.approx(0.5)


def test_retrieval_is_article_level() -> None:
    ranked = metrics.ranked_articles([passage("a"), passage("a"), passage("b"), passage("c")])
    assert ranked == ["a", "b", "c"]
    assert metrics.hit_at(ranked, ["b"], 1) == 0.0
    assert metrics.hit_at(ranked, ["b"], 2) == 1.0
    assert metrics.reciprocal_rank(ranked, ["c", "b"]) == 0.5
    assert metrics.reciprocal_rank([], ["a"]) == metrics.hit_at([], ["a"], 5) == 0.0


def test_percentile() -> None:
    assert metrics.percentile([3, 1, 2], 50) == 2
    assert metrics.percentile(list(range(101)), 95) == 95
    assert metrics.percentile([], 50) is None


def record(q: dict, a: dict) -> dict[str, Any]:
    return {"answerable": q["answerable"], "refused": a["refused"], "latency_ms": 10.0,
            "wall_ms": 12.0, "scores": metrics.score_answer(q, a, k=5)}  # fmt: skip


def test_summary_splits_answerable_and_unanswerable() -> None:
    refusal = answer("The articles do not say.", [], refused=True)
    rows = [
        record(QUESTION, RIGHT),
        record(QUESTION, refusal),
        record(UNANSWERABLE, refusal),
        record(UNANSWERABLE, RIGHT),
    ]
    s = metrics.summarize(rows)
    assert s["answerable"] == 2
    assert s["key_fact_recall"] == 0.5
    assert s["citation_precision"] == 1.0  # the refusal cites nothing: not counted
    assert s["citation_recall"] == 0.5
    assert s["refused_unanswerable"] == 0.5
    assert s["refused_answerable"] == 0.5
    assert s["quote_fidelity"] == 1.0 and s["quotes_checked"] == 2
    assert s["median_answer_chars"] == len(RIGHT["answer"])
    assert s["failed"] == 2


def test_threshold_messages_name_metric_value_and_limit() -> None:
    limits = {"min": {"hit_at_1": 0.9, "quote_fidelity": 1.0}, "max": {"refused_answerable": 0.03}}
    overall = {"hit_at_1": 0.85, "quote_fidelity": 1.0, "refused_answerable": 0.05}
    assert check_thresholds(overall, limits) == [
        "hit_at_1 = 0.85 is below its floor 0.9",
        "refused_answerable = 0.05 is above its ceiling 0.03",
    ]
    assert check_thresholds({}, {"min": {"mrr": 0.5}}) == ["mrr = missing is below its floor 0.5"]


def test_a_quote_from_a_windows_1252_file_is_checked_in_its_decoded_text(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.txt"
    path.write_bytes("Mutu paid \u00a315.8m for the move to Chelsea in 2003.\n".encode("cp1252"))
    quote = "Mutu paid \u00a315.8m for the move"
    citation = {"source": str(path), "start": 0, "end": len(quote), "quote": quote}
    assert metrics.quote_is_verbatim(citation)
    assert not metrics.quote_is_verbatim({**citation, "quote": quote.replace("\u00a3", "$")})


def test_what_a_question_leaves_out_is_not_scored() -> None:
    """A question of one's own set without gold articles or key facts: those metrics are
    left out of the averages, and citing some article is no failure."""
    question = {"answerable": True, "gold_sources": [], "must_contain": [],
                "reference_answer": "At Ramstein Air Base."}  # fmt: skip
    answer = {"answer": "“He met Austin at the Ramstein Air Base.” [1]", "refused": False,
              "citations": [{"n": 1, "doc_id": "x", "source": "nowhere.txt", "start": 0,
                             "end": 5, "quote": "He met"}],
              "passages": [{"doc_id": "x", "score": 1.0}]}  # fmt: skip
    scores = metrics.score_answer(question, answer, k=3)
    for key in (
        "hit_at_1",
        "mrr",
        "key_fact_recall",
        "first_quote_fact",
        "citation_precision",
        "citation_recall",
    ):
        assert scores[key] is None, key
    assert scores["token_f1"] > 0
    assert not any("gold" in reason or "key facts" in reason for reason in scores["failures"])
    row = metrics.summarize([{"answerable": True, "refused": False, "scores": scores,
                      "latency_ms": 1.0, "wall_ms": 1.0}])  # fmt: skip
    assert row["hit_at_1"] is None and row["key_fact_recall"] is None and row["token_f1"] > 0
