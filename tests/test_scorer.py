"""Reading questions, the fitted scorer file, and composing answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.compose import needs_antecedent
from rag.errors import ConfigError
from rag.features import EVIDENCE_FEATURES, SENTENCE_FEATURES
from rag.question import MONTHS, WEEKDAYS, AnswerType, Question, holds_answer_type, sides, words
from rag.scorer import DEFAULT_MODEL, FittedModel
from tests.conftest import SEEDS


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many jobs will Fiat cut in Turin?", AnswerType.NUMBER),
        ("How much did the council spend on the harbour?", AnswerType.NUMBER),
        ("What percentage of voters backed the plan?", AnswerType.NUMBER),
        ("When did the merger go through?", AnswerType.DATE),
        ("In what year did the band split?", AnswerType.DATE),
        ("Who replaced the chief executive?", AnswerType.NAME),
        ("Which company bought the brewery?", AnswerType.NAME),
        ("Where will the summit be held?", AnswerType.PLACE),
        ("Why did the shares fall?", AnswerType.REASON),
        ("What did Ofcom say about the deal?", AnswerType.NONE),
    ],
)
def test_the_question_word_says_what_is_asked(question: str, kind: AnswerType) -> None:
    assert Question.read(question).answer_type is kind


def test_an_answer_type_counts_only_what_the_question_lacks() -> None:
    question = Question.read("How many jobs will Fiat cut in 2005?")
    assert holds_answer_type("Fiat will cut 1,200 jobs at its plant.", question)
    assert not holds_answer_type("Fiat said cuts would come in 2005.", question)
    who = Question.read("Who replaced Carly Fiorina at Hewlett-Packard?")
    assert holds_answer_type("The board named Mark Hurd as chief executive.", who)
    assert not holds_answer_type("Carly Fiorina left Hewlett-Packard in February.", who)


def _answer_type_by_words(sentence: str, question: Question) -> bool:
    """The definition, read word by word (``holds_answer_type`` skips most words)."""
    ws = words(sentence)
    new = [w for w in ws if w.lower() not in question.words]
    kind = question.answer_type
    if kind is AnswerType.NUMBER:
        return any(any(c.isdigit() for c in w) for w in new)
    if kind is AnswerType.DATE:
        return any(w.lower() in MONTHS | WEEKDAYS or (w.isdigit() and len(w) == 4) for w in new)
    if kind is AnswerType.REASON:
        return bool({"because", "after", "due", "since", "so", "as"} & {w.lower() for w in ws})
    known = question.words | MONTHS | WEEKDAYS
    return any(w[:1].isupper() and w.lower() not in known for w in ws[1:])


TRICKY_SENTENCES = [
    "“Hurd said the board agreed.”",  # the first word after an opening quote
    "— Hurd left; (Reuters) reported it.",  # a dash is a token, not a word
    "the board named hurd's deputy, Élysée-trained.",  # a non-ASCII capital
    "Profits rose in the éclair trade, said mr hurd.",
    "Sales fell 3% in May because of the strike.",
    "It happened on Tuesday, 12 June 2005 (a 1,200-job cut).",
    "'Hurd's' deal was done in 2005.",
    "...",
]


@pytest.mark.parametrize(
    "question",
    [
        "Who replaced Carly Fiorina at Hewlett-Packard?",
        "Where will the summit be held?",
        "How many jobs will Fiat cut in 2005?",
        "When did the strike end?",
        "Why did the shares fall?",
    ],
)
def test_the_answer_type_reads_a_sentence_as_its_words_do(question: str) -> None:
    q = Question.read(question)
    sentences = TRICKY_SENTENCES + [
        line for path in sorted(SEEDS.glob("*.txt")) for line in path.read_text().split(". ")
    ]
    for sentence in sentences:
        assert holds_answer_type(sentence, q) == _answer_type_by_words(sentence, q), sentence


@pytest.mark.parametrize(
    ("text", "keywords"),
    [
        ("Storm Shadow", True),
        ("Ramstein Austin Zelensky meeting", True),
        ("HAWK T-72 aid package", True),
        ("What did Putin say?", False),
        ("Why did the talks stall", False),  # a question without its "?"
        ("Is Putin ill", False),
        ("Tell me about Kursk", False),  # a request
        ("Putin said what about Kursk?", False),
        ("Peace talks between Moscow and Kyiv in the spring of 2022", False),  # a sentence
        ("", False),
        # asking only who or what a name is: a sentence naming it answers
        ("Who is Marta Kos?", True),
        ("What is the Oreshnik?", True),
        ("who was Ken Bates", True),
        ("What is the range of the Oreshnik?", False),
        ("Who is the EU's enlargement commissioner?", False),
        ("What is Marta Kos's role?", True),  # read as "Who is Marta Kos?"
        ("What job does Ken Bates hold?", True),
        ("What role did Marta Kos play in the talks?", False),
        ("What did Ken Bates do?", False),
        ("What is the EU's role?", False),
        ("What is the Bank of England?", True),  # refused on the archive before
        ("Who is Ursula von der Leyen?", True),
        ("Who is the head of Ofcom?", False),
        ("What is Ofcom for?", False),
    ],
)
def test_a_keyword_search_is_told_from_a_question(text: str, keywords: bool) -> None:
    assert Question.read(text).keywords is keywords


def test_a_month_in_a_question_is_not_a_name() -> None:
    question = Question.read("What happened to the Harbour bridge in Port Elling in June?")
    assert question.names == {"harbour", "port", "elling"}


def test_a_quarter_or_a_financial_year_is_not_a_name() -> None:
    # A report says "the third quarter": "Q3" unknown to the archive is no sign it is silent.
    question = Question.read("How much did Varento make in Q3 2024, in H1 and in FY2023?")
    assert question.names == {"varento"}
    assert Question.read("What did the G7 agree in Q4?").names == {"g7"}


def test_a_question_about_two_sides_is_split() -> None:
    assert sides("How do Kyiv's and Moscow's conditions for talks compare?") == [
        "How do Kyiv's conditions for talks compare?",
        "How do Moscow's conditions for talks compare?",
    ]
    assert sides("What did the council and the mayor agree?") == []


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        (
            "Who won the final, and by how much?",
            ["Who won the final?", "by how much?"],
        ),
        (
            "How many nominations did the film get, and in how many categories is it listed?",
            ["How many nominations did the film get?", "in how many categories is it listed?"],
        ),
        ("Which member has retired and is not on the tour?", []),  # one question
        ("What did the council decide, and the mayor?", []),  # no second question word
    ],
)
def test_two_questions_asked_as_one_are_split(question: str, parts: list[str]) -> None:
    assert sides(question) == parts


@pytest.mark.parametrize(
    ("sentence", "needs"),
    [
        ("He said the talks would resume in March.", True),
        ("“This is a disaster,” she added.", True),
        ("One of these conditions is the removal of all troops.", True),
        ("But Moscow needs to neutralize Ukrainian attempts first, he stressed.", True),
        ("However, the US has hesitated to provide that approval.", True),
        ("The board said profits rose by 12%.", False),
        ("Heathrow will expand.", False),
    ],
)
def test_a_sentence_that_points_back_needs_the_one_before(sentence: str, needs: bool) -> None:
    assert needs_antecedent(sentence) is needs


def test_the_shipped_model_matches_the_features() -> None:
    model = FittedModel.load(DEFAULT_MODEL)
    assert model.sentence.features == SENTENCE_FEATURES
    assert model.refusal.features == EVIDENCE_FEATURES
    assert 0 < model.refusal_threshold < 1
    assert model.meta["questions"] > 200, "fitted on the seeds and BBC fitting sets"
    assert np.isfinite(model.sentence.weights).all()


def test_a_model_file_for_other_features_is_a_clear_error(tmp_path: Path) -> None:
    data = json.loads(DEFAULT_MODEL.read_text(encoding="utf-8"))
    data["sentence"]["features"] = ["dense", "something_else"]
    path = tmp_path / "scorer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="make fit"):
        FittedModel.load(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        FittedModel.load(path)


def test_the_sentence_holding_what_the_headline_lacks_stands_out(engine) -> None:  # noqa: ANN001
    """Within-article features, on the real seed index: the question's words its article's
    headline lacks ("drones", "electronic-warfare", "money") are in the answering sentence."""
    question = Question.read(
        "How much money has Washington set aside so Ukraine can build its own drones "
        "and electronic-warfare systems?"
    )
    candidates, table = engine.candidates(question)
    corpus = candidates.corpus
    column = SENTENCE_FEATURES.index
    rows = np.flatnonzero(corpus.sentence_doc == "000_8d93e48187a857e9")
    texts = [corpus.sentences.texts[r] for r in rows]
    answer = rows[next(i for i, t in enumerate(texts) if "200 million" in t)]
    headline = rows[int(np.argmin(corpus.sentence_position[rows]))]
    for feature in ("beyond_headline", "local_coverage"):
        values = table.values[rows, column(feature)]
        assert table.values[answer, column(feature)] == values.max() > 0, feature
    assert table.values[headline, column("beyond_headline")] == 0.0
    assert table.values[answer, column("centred_dense")] > np.median(
        table.values[rows, column("centred_dense")]
    )


def test_a_snippet_has_no_headline_to_look_beyond(tmp_path: Path) -> None:
    """Records of one sentence (web snippets): the whole snippet is its body, so a snippet
    holding the question's terms is not marked down for having no text past its opening."""
    from rag.engine import Engine
    from rag.ingest import ingest_paths
    from tests.conftest import make_settings

    export = tmp_path / "snippets.jsonl"
    records = [
        {"id": "s1", "text": "The Harbour bridge reopened to lorries after load tests."},
        {"id": "s2", "text": "Ferries between the two quays will stop running next week."},
    ]
    export.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    question = "Why were lorries allowed back on the Harbour bridge?"
    settings = make_settings(tmp_path / "index")
    ingest_paths([export], settings, progress=False)
    engine = Engine(settings, auto_ingest=False)
    candidates, table = engine.candidates(Question.read(question))
    row = list(candidates.corpus.sentence_doc).index("s1")
    column = SENTENCE_FEATURES.index
    assert table.values[row, column("beyond_headline")] > 0
    assert table.values[row, column("beyond_lede")] > 0
    answer = engine.ask(question)
    assert [c.doc_id for c in answer.citations][:1] == ["s1"]
