"""The snippet version of an archive (``rag.evaluation.snippets``), made from the seeds."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rag.evaluation.metrics import normalize
from rag.evaluation.runner import DEFAULT_SET, load_questions
from rag.evaluation.snippets import SNIPPET_ID_PREFIX, make_snippets
from tests.conftest import SEEDS

NOISE = re.compile(r"^(BBC News: |[A-Z][a-z]{2} \d{1,2}, 2005 — )|( \.\.\.| Read more)$")


def test_snippets_are_short_windows_of_their_articles_holding_the_key_facts() -> None:
    questions = load_questions(DEFAULT_SET)
    made = make_snippets(SEEDS, questions, size=5, seed=3)
    assert [r["id"] for r in made.records] == [
        SNIPPET_ID_PREFIX + p.stem for p in sorted(SEEDS.glob("*.txt"))
    ]
    for record in made.records:
        article = normalize(
            (SEEDS / (record["id"].removeprefix(SNIPPET_ID_PREFIX) + ".txt")).read_text(
                encoding="utf-8"
            )
        )
        text = NOISE.sub("", NOISE.sub("", record["text"]))
        body = text.removesuffix(" ...")  # a last sentence cut short ends so too
        assert normalize(body.rsplit(" ", 1)[0]) in article  # verbatim from its article
        assert normalize(record["title"]) in article
        assert len(body) < len(article) / 3  # a few sentences, not the article

    kept = made.questions
    assert sum(not q.answerable for q in kept) == sum(not q.answerable for q in questions)
    answerable = [q for q in kept if q.answerable]
    assert answerable and len(answerable) < sum(q.answerable for q in questions)
    texts = {r["id"]: normalize(r["title"] + " " + r["text"]) for r in made.records}
    for q in answerable:
        assert q.gold_sources and all(g in texts for g in q.gold_sources)
        for group in q.must_contain:
            assert any(normalize(a) in texts[g] for a in group for g in q.gold_sources)


def test_the_same_seed_makes_the_same_snippets(tmp_path: Path) -> None:
    questions = load_questions(DEFAULT_SET)
    first, second = (make_snippets(SEEDS, questions, 5, seed=7) for _ in range(2))
    assert first.records == second.records
    first.write(tmp_path / "corpus", tmp_path / "questions.jsonl")
    lines = (tmp_path / "corpus" / "snippets.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == first.records
    assert load_questions(tmp_path / "questions.jsonl") == first.questions
