"""What the chat's handler sends to the page, turn by turn, on the real engine (seeds).

The question box is emptied once, as a typed question is asked; every later update
leaves it alone, so a next question typed while an answer is still on its way is not
wiped. A question the engine rejects goes back into the box to be mended.
"""

from __future__ import annotations

import gradio as gr
import pytest

from ui.app import EXAMPLE_QUESTIONS, ChatHandler

LEFT_ALONE = gr.skip()


@pytest.fixture
def handler(engine) -> ChatHandler:  # noqa: ANN001
    return ChatHandler(lambda: engine, with_sources=True)


def _boxes(updates: list[tuple]) -> list:
    return [update[0] for update in updates]


def test_a_typed_question_empties_the_box_once_and_never_again(handler: ChatHandler) -> None:
    updates = list(handler.respond_in_range(EXAMPLE_QUESTIONS[0], None, None, [], [], None))
    assert len(updates) >= 2
    assert _boxes(updates) == ["", *[LEFT_ALONE] * (len(updates) - 1)]
    _, chat, sources, plain, history = updates[-1]
    assert "Peskov" in chat[-1]["content"] and "[1]" in plain
    assert "rag-citation" in sources
    assert [m["role"] for m in history] == ["user", "assistant"]


def test_a_refused_question_leaves_the_box_alone_after_emptying_it(handler: ChatHandler) -> None:
    updates = list(
        handler.respond_in_range("What is the price of tea in Peru?", None, None, [], [], None)
    )
    assert _boxes(updates) == ["", *[LEFT_ALONE] * (len(updates) - 1)]
    assert "The articles don't say" in updates[-1][1][-1]["content"]


@pytest.mark.parametrize(
    ("question", "since", "said"),
    [
        ("Why? " * 1_000, None, "the limit is"),
        ("Where did Zelensky meet Lloyd Austin?", "2024-13-45", "must be an ISO date"),
    ],
    ids=["too-long", "bad-date"],
)
def test_a_rejected_question_goes_back_into_the_box(
    handler: ChatHandler, question: str, since: str | None, said: str
) -> None:
    updates = list(handler.respond_in_range(question, since, None, [], [], None))
    assert updates[0][0] == ""
    box, chat, *_ = updates[-1]
    assert box == question.strip()
    assert chat[-1]["content"].startswith("**Sorry:**") and said in chat[-1]["content"]


def test_an_example_clicked_leaves_what_is_typed_in_the_box(handler: ChatHandler) -> None:
    updates = list(
        handler.respond_to_button_in_range(EXAMPLE_QUESTIONS[1], None, None, [], [], None)
    )
    assert _boxes(updates) == [LEFT_ALONE] * len(updates)
    assert "Ramstein" in updates[-1][1][-1]["content"]


def test_the_widget_example_leaves_what_is_typed_in_the_box(engine) -> None:  # noqa: ANN001
    widget = ChatHandler(lambda: engine, with_sources=False)
    selected = gr.SelectData(None, {"value": {"text": EXAMPLE_QUESTIONS[1]}, "index": 1})
    updates = list(widget.respond_to_example(selected, [], [], None))
    assert _boxes(updates) == [LEFT_ALONE] * len(updates)
    assert "Ramstein" in updates[-1][1][-1]["content"]


def test_an_answer_on_weak_evidence_says_so_from_its_first_update(handler: ChatHandler) -> None:
    question = "Who is the EU foreign-policy chief who visited Kyiv with Antonio Costa?"
    updates = list(handler.respond_in_range(question, None, None, [], [], None))
    chats = [update[1] for update in updates[1:]]  # the first update shows the question
    assert chats and all("Weak evidence" in chat[-1]["content"] for chat in chats)
    assert updates[-1][3].startswith("Weak evidence")  # the plain text to copy
