"""``rag.fit`` scores the composition rules on the answers the engine would give.

The fit picks its composition rules by the key facts and citations of composed answers;
those answers must be the ones ``Engine.ask`` quotes, for every kind of question the
engine composes its own way (a keyword search, a question about two sides, a question
about change over time), or the rules are fitted to answers nobody sees. Real engine,
real model, the shipped scorer, the seed articles.
"""

from __future__ import annotations

import pytest

from rag.components.reader import Reader
from rag.evaluation.runner import Question as EvalQuestion
from rag.fit import (
    READER_CANDIDATES,
    Scoring,
    answerable_probability,
    collect,
    composed_rows,
    read_examples,
)

QUESTIONS = [
    "What are Russia's stated conditions for talks?",
    "How do Kyiv's and Moscow's conditions for negotiations compare?",  # two sides
    "Tomahawk leak",  # a keyword search
    "How has Zelensky's position on talking with Putin changed over time?",
]


@pytest.fixture(scope="module")
def examples(seed_settings):  # noqa: ANN001, ANN201
    asked = [
        EvalQuestion(
            id=f"q{n:03d}",
            kind="fact",
            question=text,
            reference_answer="-",
            gold_sources=["003_042faa28e221901a"],  # labels only: the test compares quotes
            must_contain=[["Peskov"]],
            answerable=True,
        )
        for n, text in enumerate(QUESTIONS)
    ]
    return collect(asked, seed_settings)


def test_the_fit_composes_each_answer_as_the_engine_does(engine, examples) -> None:  # noqa: ANN001
    model = engine.model
    read_examples(examples, Reader(engine.settings, engine.embedding), model.sentence)
    scoring = Scoring(model.sentence, model.reader)
    assert [ex.question.question for ex in examples] == QUESTIONS
    assert len(examples[1].side_values) == 2 and examples[2].asked.keywords
    assert model.reader.candidates == READER_CANDIDATES
    for ex in examples:
        rows = composed_rows(ex, scoring, model.compose, engine.settings.max_quotes)
        quoted = [ex.corpus.sentences.texts[r] for r in rows]

        answer = engine.ask(ex.question.question)
        assert not answer.refused
        assert sorted(c.quote for c in answer.citations) == sorted(quoted)


def test_the_fit_judges_each_question_as_the_engine_does(engine, examples) -> None:  # noqa: ANN001
    """The refusal threshold is fitted on the probability the engine compares with it: for
    a two-part question, the better of the whole question's and each part's."""
    model = engine.model
    read_examples(examples, Reader(engine.settings, engine.embedding), model.sentence)
    assert len(examples[1].side_readings) == 2
    scoring = Scoring(model.sentence, model.reader)
    probabilities = answerable_probability(examples, scoring, model.refusal)
    for ex, probability in zip(examples, probabilities, strict=True):
        answer = engine.ask(ex.question.question)
        assert answer.confidence == pytest.approx(probability, abs=1e-3), ex.question.question


def test_a_question_read_without_its_sides_is_an_error_not_a_guess(engine, examples) -> None:  # noqa: ANN001
    """A two-part question whose sides were not read with it would be judged on the whole
    question alone, unlike the engine: the fit says so instead of fitting on it."""
    model = engine.model
    read_examples(examples, Reader(engine.settings, engine.embedding), model.sentence)
    two_sides = examples[1]
    two_sides.side_readings = two_sides.side_readings[:1]
    with pytest.raises(ValueError):
        answerable_probability([two_sides], Scoring(model.sentence, model.reader), model.refusal)
