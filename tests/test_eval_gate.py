"""CI gate: the real eval on the seeds must keep every metric within eval/thresholds.toml.

Runs ``rag eval`` end to end (real engine, model, Chroma, baseline) into a temporary index
and output folder. A failure names the metric, its value and the threshold; raise a floor
in eval/thresholds.toml when the engine gets better.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rag.evaluation.cli import register
from rag.evaluation.report import write_reports
from rag.evaluation.runner import (
    DEFAULT_SET,
    DEFAULT_THRESHOLDS,
    EvalConfig,
    EvalResult,
    check_thresholds,
    load_questions,
    load_thresholds,
    read_article_list,
    run_eval,
    thresholds_for,
)
from rag.settings import get_settings

pytestmark = pytest.mark.slow

THRESHOLDS = load_thresholds(DEFAULT_THRESHOLDS)
BOUNDS = [(bound, metric) for bound in ("min", "max") for metric in THRESHOLDS[bound]]


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[EvalResult, Path]:
    tmp = tmp_path_factory.mktemp("eval")
    settings = get_settings().model_copy(update={"chroma_url": None})
    config = EvalConfig(
        questions=DEFAULT_SET,
        corpus=settings.seeds_dir,
        index_dir=tmp / "index",
        out=tmp / "out",
        settings=settings,
    )
    result = run_eval(config)
    write_reports(result, config.out, THRESHOLDS)
    return result, config.out


@pytest.fixture(scope="module")
def overall(eval_run: tuple[EvalResult, Path]) -> dict[str, Any]:
    return eval_run[0].summary["project"]["overall"]


def test_quote_fidelity_is_exact(overall: dict[str, Any]) -> None:
    assert THRESHOLDS["min"].get("quote_fidelity") == 1.0, "the quote-fidelity floor must stay 1.0"
    assert overall["quotes_checked"] > 0, "the engine cited nothing: quote fidelity is untested"
    assert overall["quote_fidelity"] == 1.0, (
        f"quote_fidelity = {overall['quote_fidelity']}: a quote differs from its file's text"
    )


@pytest.mark.parametrize(("bound", "metric"), BOUNDS, ids=[f"{b}-{m}" for b, m in BOUNDS])
def test_metric_within_threshold(
    eval_run: tuple[EvalResult, Path], overall: dict[str, Any], bound: str, metric: str
) -> None:
    problems = check_thresholds(overall, {bound: {metric: THRESHOLDS[bound][metric]}})
    assert not problems, (
        f"{problems[0]} (eval/thresholds.toml [{bound}]); "
        f"failed questions: {eval_run[1] / 'report.md'}"
    )


def test_every_question_is_answered_by_both_systems(eval_run: tuple[EvalResult, Path]) -> None:
    result, _ = eval_run
    assert set(result.records) == {"project", "baseline"}
    for records in result.records.values():
        assert len(records) == result.meta["questions"]
    assert sorted(result.meta["articles"]) == sorted(
        p.stem for p in get_settings().seeds_dir.iterdir()
    )


def test_reports_are_written(eval_run: tuple[EvalResult, Path]) -> None:
    _, out = eval_run
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(report) == {"meta", "summary", "questions"}
    assert set(report["summary"]) == {"project", "baseline"}
    first = report["questions"]["project"][0]
    assert {"question", "kind", "answer", "refused", "citations", "scores"} <= set(first)
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "| hit@1 |" in markdown and "## Failed questions" in markdown
    for png in ("metrics_by_kind.png", "latency.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def cli_app() -> typer.Typer:
    """A ``rag``-like app holding only the plugin's command."""
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app


def test_cli_writes_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``rag eval --set --corpus --out`` end to end, on one article and two questions."""
    monkeypatch.setenv("RAG_CHROMA_URL", "")
    get_settings.cache_clear()
    corpus = tmp_path / "articles"
    corpus.mkdir()
    seed = sorted(get_settings().seeds_dir.iterdir())[0]
    shutil.copy(seed, corpus / seed.name)
    chosen = [q for q in load_questions(DEFAULT_SET) if q.gold_sources == [seed.stem]][:1]
    chosen += [q for q in load_questions(DEFAULT_SET) if not q.answerable][:1]
    question_set = tmp_path / "set.jsonl"
    question_set.write_text("".join(q.model_dump_json() + "\n" for q in chosen), encoding="utf-8")

    app = cli_app()
    args = ["eval", "--set", str(question_set), "--corpus", str(corpus), "--out", str(tmp_path)]
    run = CliRunner().invoke(app, [*args, "--no-baseline"])
    get_settings.cache_clear()

    assert run.exit_code == 0, run.output
    assert "hit@1" in run.output and "By question kind" in run.output
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["meta"]["articles"] == [seed.stem]
    assert [r["id"] for r in report["questions"]["project"]] == [q.id for q in chosen]
    assert (tmp_path / "report.md").exists() and (tmp_path / "metrics_by_kind.png").exists()

    # The same set again, compared with the first run as if its answer had missed the key
    # fact: that question is listed as better now.
    records = report["questions"]["project"]
    answered = next(r for r in records if r["answerable"])
    assert answered["scores"]["key_fact_recall"] > 0, "the seed question lost its key fact"
    answered["scores"]["key_fact_recall"] = 0.0
    (tmp_path / "report.json").write_text(json.dumps(report), encoding="utf-8")
    second = tmp_path / "second"
    args = ["eval", "--set", str(question_set), "--corpus", str(corpus), "--index",
            str(tmp_path / "index"), "--out", str(second), "--compare", str(tmp_path)]  # fmt: skip
    run = CliRunner().invoke(app, [*args, "--no-baseline"])
    get_settings.cache_clear()

    assert run.exit_code == 0, run.output
    assert "Compared with" in run.output and "key-fact recall" in run.output
    comparison = json.loads((second / "report.json").read_text(encoding="utf-8"))["comparison"]
    assert comparison["matched_questions"] == len(chosen)
    assert [r["id"] for r in comparison["gained"]] == [answered["id"]]
    assert "## Compared with" in (second / "report.md").read_text(encoding="utf-8")


def test_cli_compare_needs_an_earlier_report(tmp_path: Path) -> None:
    run = CliRunner().invoke(cli_app(), ["eval", "--compare", str(tmp_path), "--no-baseline"])
    assert run.exit_code == 2
    assert "cannot read the earlier eval report" in run.output


def test_cli_evaluates_an_export_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A corpus folder holding a JSON Lines export: its records (named by their ids, not by
    the file) are what the eval index keeps, and what answers cite."""
    monkeypatch.setenv("RAG_CHROMA_URL", "")
    get_settings.cache_clear()
    seed = sorted(get_settings().seeds_dir.iterdir())[0]
    lines = seed.read_text(encoding="utf-8").splitlines()
    record = {"id": "wire-1", "title": lines[0], "text": "\n".join(lines[1:]).strip()}
    corpus = tmp_path / "export"
    corpus.mkdir()
    (corpus / "wire.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    chosen = [q for q in load_questions(DEFAULT_SET) if q.gold_sources == [seed.stem]][:1]
    question_set = tmp_path / "set.jsonl"
    question_set.write_text(
        chosen[0].model_copy(update={"gold_sources": ["wire-1"]}).model_dump_json() + "\n",
        encoding="utf-8",
    )

    args = ["eval", "--set", str(question_set), "--corpus", str(corpus), "--out", str(tmp_path)]
    run = CliRunner().invoke(cli_app(), [*args, "--no-baseline"])
    get_settings.cache_clear()

    assert run.exit_code == 0, run.output
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["meta"]["articles"] == ["wire-1"]
    assert report["questions"]["project"][0]["citations"][0]["doc_id"] == "wire-1"


def test_cli_rejects_a_missing_corpus(tmp_path: Path) -> None:
    run = CliRunner().invoke(cli_app(), ["eval", "--corpus", str(tmp_path / "nope")])
    assert run.exit_code == 2


# --- the BBC archive: held-out questions over a slice of it ---------------------------------

BBC_CORPUS = get_settings().seeds_dir.parents[1] / "shared" / "corpora" / "bbc"
BBC_SET = DEFAULT_SET.parent / "bbc" / "heldout.jsonl"
BBC_SLICE = DEFAULT_SET.parent / "bbc" / "slice.txt"


@pytest.fixture(scope="module")
def bbc_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[EvalResult, Path]:
    if not BBC_CORPUS.is_dir():
        pytest.skip(f"the BBC archive is not at {BBC_CORPUS} (CI has it; a clone may not)")
    tmp = tmp_path_factory.mktemp("bbc-eval")
    settings = get_settings().model_copy(update={"chroma_url": None})
    config = EvalConfig(
        questions=BBC_SET,
        corpus=BBC_CORPUS,
        only=read_article_list(BBC_SLICE),
        index_dir=tmp / "index",
        out=tmp / "out",
        baseline=False,
        settings=settings,
    )
    result = run_eval(config)
    write_reports(result, config.out, thresholds_for(BBC_SET, BBC_SLICE))
    return result, config.out


BBC_THRESHOLDS = thresholds_for(BBC_SET, BBC_SLICE) or {"min": {}, "max": {}}
BBC_BOUNDS = [(b, m) for b in ("min", "max") for m in BBC_THRESHOLDS[b]]


@pytest.mark.parametrize(("bound", "metric"), BBC_BOUNDS, ids=[f"{b}-{m}" for b, m in BBC_BOUNDS])
def test_bbc_heldout_metric_within_threshold(
    bbc_run: tuple[EvalResult, Path], bound: str, metric: str
) -> None:
    overall = bbc_run[0].summary["project"]["overall"]
    problems = check_thresholds(overall, {bound: {metric: BBC_THRESHOLDS[bound][metric]}})
    assert not problems, (
        f"{problems[0]} (eval/bbc/thresholds.toml [{bound}]); "
        f"failed questions: {bbc_run[1] / 'report.md'}"
    )


def test_bbc_refusal_curve_is_drawn(bbc_run: tuple[EvalResult, Path]) -> None:
    assert (bbc_run[1] / "refusal_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(bbc_run[0].meta["articles"]) == set(read_article_list(BBC_SLICE))


def test_the_bbc_gate_holds_only_over_the_slice_it_was_set_on(tmp_path: Path) -> None:
    """eval/bbc/thresholds.toml's floors were set on the slice of the archive: a run over
    the whole archive (other distractors) keeps the targets and gates nothing."""
    on_slice = thresholds_for(BBC_SET, BBC_SLICE)
    assert on_slice is not None and on_slice["min"]["hit_at_1"] > 0
    other_list = tmp_path / "slice.txt"
    other_list.write_text(BBC_SLICE.read_text(encoding="utf-8"), encoding="utf-8")
    for scope in (None, other_list):
        elsewhere = thresholds_for(BBC_SET, scope)
        assert elsewhere == {"min": {}, "max": {}, "target": on_slice["target"]}
        assert not check_thresholds({"hit_at_1": 0.0}, elsewhere)
    assert thresholds_for(DEFAULT_SET)["min"]["key_fact_recall"] > 0  # the seeds: any run


def test_an_eval_over_an_export_compares_with_the_baseline_on_its_records(tmp_path: Path) -> None:
    """The README's `rag eval --corpus ARCHIVE --set PAIRS` on an archive holding an export:
    the baseline reads the records the engine indexed (an export's records have no file
    of their own), and both rows cite them by their ids."""
    corpus = tmp_path / "archive"
    corpus.mkdir()
    shutil.copy(
        get_settings().seeds_dir / sorted(p.name for p in get_settings().seeds_dir.iterdir())[0],
        corpus,
    )
    records = [
        {
            "id": "ferry-strike",
            "title": "Ferry crews walk out over pay",
            "text": "Ferry crews on the Dunmore crossing walked out on Tuesday over a pay offer of "
            "2.5%, the RMT union said. The operator, Westwater Lines, cancelled all 14 sailings.",
        },
        {
            "id": "library-trust",
            "title": "Trust saves Dunmore libraries",
            "text": "The Halloway Trust will pay to keep Dunmore's three libraries open until "
            "2027, the council said on Friday. The trust pledged £1.2m over three years.",
        },
    ]
    (corpus / "export.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
    )
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps(
            {
                "question": "Who will pay to keep the Dunmore libraries open?",
                "answer": "The Halloway Trust",
                "key_facts": [["Halloway Trust"]],
                "gold_sources": ["library-trust"],
            }
        )
        + "\n",
        encoding="utf-8",
    )
    settings = get_settings().model_copy(update={"chroma_url": None})
    config = EvalConfig(
        questions=pairs,
        corpus=corpus,
        index_dir=tmp_path / "index",
        out=tmp_path / "out",
        settings=settings,
    )
    result = run_eval(config)
    baseline = result.records["baseline"][0]
    assert baseline["citations"][0]["doc_id"] in {"ferry-strike", "library-trust"}
    assert result.summary["baseline"]["overall"]["quote_fidelity"] == 1.0
    assert result.summary["project"]["overall"]["hit_at_1"] == 1.0
