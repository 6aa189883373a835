"""Follow-up questions become standalone search questions, with no LLM."""

from __future__ import annotations

import pytest

from rag.conversation import is_elliptical, standalone_question

RUSSIA = "What are Russia's stated conditions for talks?"


def history(*questions: str) -> list[dict]:
    messages: list[dict] = []
    for q in questions:
        messages.append({"role": "user", "content": q})
        messages.append({"role": "assistant", "content": "Peskov said things [1]."})
    return messages


def test_no_history_returns_the_question() -> None:
    assert standalone_question(RUSSIA, []) == RUSSIA


def test_whitespace_is_normalised() -> None:
    assert standalone_question("  Who   is Peskov? ", []) == "Who is Peskov?"


def test_self_contained_follow_up_is_unchanged() -> None:
    question = "Where did Zelensky meet US Defense Secretary Lloyd Austin?"
    assert standalone_question(question, history(RUSSIA)) == question


def test_and_follow_up_carries_the_topic_and_drops_the_replaced_entity() -> None:
    resolved = standalone_question("And what does Kyiv demand?", history(RUSSIA))
    assert resolved == "What does Kyiv demand (stated conditions for talks)?"
    assert "Russia" not in resolved


@pytest.mark.parametrize("follow_up", ["What about Kyiv?", "And Kyiv?", "and what about Kyiv"])
def test_bare_subject_replaces_the_first_entity(follow_up: str) -> None:
    assert standalone_question(follow_up, history(RUSSIA)) == (
        "What are Kyiv's stated conditions for talks?"
    )


def test_possessive_of_a_name_ending_in_s() -> None:
    resolved = standalone_question("What about the United States?", history(RUSSIA))
    assert resolved == "What are the United States' stated conditions for talks?"


def test_pronoun_follow_up_keeps_the_earlier_entities() -> None:
    resolved = standalone_question("What did they say about it?", history(RUSSIA))
    assert resolved == "What did they say about it (Russia's stated conditions for talks)?"


def test_follow_ups_chain_through_the_conversation() -> None:
    messages = history(RUSSIA, "What about Kyiv?")
    assert standalone_question("And Washington?", messages) == (
        "What are Washington's stated conditions for talks?"
    )


def test_a_follow_up_of_a_follow_up_carries_the_topic_not_the_middle_question() -> None:
    messages = history("Who bought IBM's PC business?", "How much did it pay?")
    assert standalone_question("When will the deal close?", messages) == (
        "When will the deal close (bought IBM's PC business)?"
    )


def test_a_follow_up_naming_its_own_subject_becomes_the_topic() -> None:
    messages = history(RUSSIA, "And what does Kyiv demand?")
    assert standalone_question("Why?", messages) == (
        "Why (Kyiv demand stated conditions for talks)?"
    )


@pytest.mark.parametrize(
    "follow_up", ["And the US Federal Reserve?", "What about the US Federal Reserve?"]
)
def test_a_name_of_several_words_is_replaced_whole(follow_up: str) -> None:
    earlier = "What did the Bank of England do with interest rates?"
    assert standalone_question(follow_up, history(earlier)) == (
        "What did the US Federal Reserve do with interest rates?"
    )


@pytest.mark.parametrize(
    ("earlier", "resolved"),
    [
        ("Why did Russia, Ukraine and Belarus meet?", "Why did Poland, Ukraine and Belarus meet?"),
        ("Why did Russia and Ukraine meet?", "Why did Poland and Ukraine meet?"),
        ("What did Ursula von der Leyen say?", "What did Poland say?"),
        ("Who bought IBM's PC business?", "Who bought Poland's PC business?"),
    ],
)
def test_names_in_a_list_stay_apart(earlier: str, resolved: str) -> None:
    assert standalone_question("What about Poland?", history(earlier)) == resolved


@pytest.mark.parametrize(
    ("earlier", "follow_up", "resolved"),
    [
        # a noun after the name replaces the noun it modifies…
        ("Why did the US dollar fall?", "And the euro?", "Why did the euro fall?"),
        ("What is the US dollar worth?", "What about the euro?", "What is the euro worth?"),
        # …a name replaces the name alone, and a question's verb stays
        ("How fast did the US economy grow?", "And Japan?", "How fast did the Japan economy grow?"),
        ("What did the US announce?", "And the minister?", "What did the minister announce?"),
    ],
)
def test_a_noun_replaces_the_noun_a_name_modifies(
    earlier: str, follow_up: str, resolved: str
) -> None:
    assert standalone_question(follow_up, history(earlier)) == resolved


def test_only_user_turns_count_as_questions() -> None:
    messages = [
        {"role": "assistant", "content": "Welcome! Ask about Ukraine."},
        {"role": "user", "content": RUSSIA},
        {"role": "assistant", "content": "The articles say Kyiv [1]."},
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": ""},
    ]
    assert standalone_question("What about Kyiv?", messages) == (
        "What are Kyiv's stated conditions for talks?"
    )


def test_malformed_history_entries_are_ignored() -> None:
    messages = [{"role": "user"}, {"content": "x"}, "text", {"role": "user", "content": 3}]
    assert standalone_question("Why?", messages) == "Why?"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("question", "elliptical"),
    [
        ("And what does Kyiv demand?", True),
        ("Also, who said that?", True),
        ("Why?", True),
        ("What did he say?", True),
        (RUSSIA, False),
        ("How much money did Washington set aside for Ukrainian drones?", False),
    ],
)
def test_is_elliptical(question: str, elliptical: bool) -> None:
    assert is_elliptical(question) is elliptical
