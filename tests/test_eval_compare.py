"""``rag eval --compare``: two runs of a set, question by question (bookkeeping on
hand-made records; the end-to-end run is in ``tests/test_eval_gate.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag.errors import RagError
from rag.evaluation.compare import compare, load_report, markdown


def record(qid: str, facts: float | None, refused: bool = False, hit: float = 1.0) -> dict:
    answerable = facts is not None
    scores: dict[str, Any] = {"citation_precision": None if refused else 1.0}
    if answerable:
        scores |= {"key_fact_recall": 0.0 if refused else facts, "hit_at_1": hit}
    return {
        "id": qid,
        "question": f"question {qid}?",
        "answerable": answerable,
        "refused": refused,
        "scores": scores,
    }


def report(records: list[dict]) -> dict:
    return {"meta": {}, "summary": {}, "questions": {"project": records}}


BEFORE = [record(f"a{i}", 1.0) for i in range(20)] + [record("u1", None, refused=False)]


def test_a_question_that_gains_its_key_fact_is_listed_and_counted() -> None:
    before = [record("a0", 0.0), record("a1", 0.5), *BEFORE[2:]]
    after = [record("a0", 0.0), *BEFORE[1:20], record("u1", None, refused=True)]
    comparison = compare(report(before), after)

    assert comparison.matched == 21
    facts = next(m for m in comparison.metrics if m.label == "key-fact recall")
    assert facts.questions == 20
    assert facts.before == pytest.approx(18.5 / 20) and facts.after == pytest.approx(19 / 20)
    assert facts.low <= facts.change <= facts.high
    assert [r["id"] for r in comparison.gained] == ["a1", "u1"]
    assert comparison.lost == []
    refusals = next(m for m in comparison.metrics if m.label == "unanswerable refused")
    assert (refusals.before, refusals.after) == (0.0, 1.0)


def test_one_answer_in_twenty_is_noise_and_many_are_not() -> None:
    one_lost = [record("a0", 0.0), *BEFORE[1:]]
    facts = next(m for m in compare(report(BEFORE), one_lost).metrics if m.label.startswith("key"))
    assert facts.verdict == "noise" and facts.low < 0 <= facts.high

    many_lost = [record(f"a{i}", 0.0) for i in range(10)] + BEFORE[10:]
    facts = next(m for m in compare(report(BEFORE), many_lost).metrics if m.label.startswith("key"))
    assert facts.verdict == "worse" and facts.high < 0

    unchanged = compare(report(BEFORE), BEFORE).metrics[0]
    assert unchanged.verdict == "unchanged"


def test_refusing_more_answerable_questions_is_worse() -> None:
    refused = [record(f"a{i}", 1.0, refused=True) for i in range(10)] + BEFORE[10:]
    comparison = compare(report(BEFORE), refused)
    false_refusals = next(m for m in comparison.metrics if m.label == "answerable refused")
    assert false_refusals.change == pytest.approx(0.5) and false_refusals.verdict == "worse"


def test_questions_only_in_one_run_are_left_out() -> None:
    comparison = compare(report(BEFORE[:5]), BEFORE)
    assert comparison.matched == 5
    assert "5 questions in both runs" in markdown(comparison)


def test_the_interval_is_the_same_every_time() -> None:
    after = [record("a0", 0.0), record("a1", 0.0), *BEFORE[2:]]
    first, second = (compare(report(BEFORE), after).metrics[1] for _ in range(2))
    assert (first.low, first.high) == (second.low, second.high)


@pytest.mark.parametrize(
    "content", [None, "not json", json.dumps({"questions": {"baseline": []}}), "[]"]
)
def test_an_unreadable_earlier_report_is_a_clear_error(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "report.json").write_text(content, encoding="utf-8")
    with pytest.raises(RagError, match="cannot read the earlier eval report"):
        load_report(tmp_path)


def test_a_set_the_earlier_run_did_not_have_is_not_compared(tmp_path: Path) -> None:
    """``rag eval --set a --set b --compare DIR`` with only DIR/a: b runs, uncompared."""
    import typer

    from rag.evaluation.cli import _earlier_reports

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "report.json").write_text(json.dumps(report(BEFORE)), encoding="utf-8")
    earlier = _earlier_reports(tmp_path, [Path("sets/a.jsonl"), Path("sets/b.jsonl")])
    assert earlier[0] is not None and earlier[0]["questions"]["project"] == BEFORE
    assert earlier[1] is None
    with pytest.raises(typer.Exit):
        _earlier_reports(tmp_path / "nowhere", [Path("sets/a.jsonl")])
