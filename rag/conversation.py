"""Turn a follow-up question into one that stands on its own, without an LLM.

A follow-up such as "And what does Kyiv demand?" or "What about Kyiv?" only makes
sense next to the question before it ("What are Russia's stated conditions for
talks?"). Retrieval sees one question at a time, so an elliptical follow-up gets
the earlier question's topic carried over:

- "What about X?" / "And X?" (a bare noun phrase) takes the earlier question and puts
  X in place of its first named entity: "What are X's stated conditions for talks?"
- any other elliptical question (leading "and"/"also", a pronoun, or too few content
  words) keeps its own words and gains the earlier question's topic in parentheses,
  minus the entities the new question replaces.

A question that names its own topic is returned unchanged.
"""

from __future__ import annotations

import itertools
import re

from rag.question import NAME_LINKS

_WORD = re.compile(r"[A-Za-z][\w'’-]*")
_CONNECTOR = re.compile(
    r"^\s*(?:and|also|but|so|then|or|plus|what about|how about)\b[\s,]*",
    re.IGNORECASE,
)
_WHAT_ABOUT = re.compile(
    r"^\s*(?:(?:and|but|so)\s+)?(?:what|how)\s+about\s+(?P<subject>.+?)\s*[?.!]*\s*$",
    re.IGNORECASE,
)
_AND_FRAGMENT = re.compile(r"^\s*and\s+(?P<subject>.+?)\s*[?.!]*\s*$", re.IGNORECASE)
_POSSESSIVE = re.compile(r"['’]s$|['’]$")
_DETERMINERS = frozenset({"the", "a", "an"})  # "And the Fed?" is a bare noun phrase

_PRONOUNS = frozenset(
    {
        "he",
        "him",
        "his",
        "she",
        "her",
        "hers",
        "it",
        "its",
        "they",
        "them",
        "their",
        "theirs",
        "this",
        "these",
        "those",
        "such",
        "same",
        "other",
        "former",
        "latter",
    }
)
_QUESTION_WORDS = frozenset(
    {"what", "which", "who", "whom", "whose", "when", "where", "why", "how"}
)
_STOPWORDS = (
    frozenset(
        {
            "a",
            "an",
            "the",
            "of",
            "to",
            "in",
            "on",
            "at",
            "by",
            "for",
            "from",
            "with",
            "about",
            "into",
            "over",
            "after",
            "before",
            "under",
            "between",
            "and",
            "or",
            "but",
            "so",
            "then",
            "also",
            "too",
            "as",
            "than",
            "that",
            "there",
            "here",
            "is",
            "are",
            "was",
            "were",
            "be",
            "been",
            "being",
            "am",
            "do",
            "does",
            "did",
            "done",
            "doing",
            "have",
            "has",
            "had",
            "having",
            "will",
            "would",
            "shall",
            "should",
            "can",
            "could",
            "may",
            "might",
            "must",
            "not",
            "no",
            "yes",
            "any",
            "some",
            "all",
            "each",
            "every",
            "i",
            "me",
            "my",
            "we",
            "us",
            "our",
            "you",
            "your",
            "more",
            "most",
            "much",
            "many",
            "very",
            "just",
            "only",
            "even",
            "still",
            "again",
            "ever",
            "say",
            "says",
            "said",
            "tell",
            "told",
        }
    )
    | _PRONOUNS
    | _QUESTION_WORDS
)
# A question with fewer content words than this leans on the one before it.
_MIN_CONTENT_WORDS = 3
# A bare noun phrase ("And Kyiv?") has at most this many words and no verb we can see.
_MAX_FRAGMENT_WORDS = 5


def standalone_question(question: str, history: list[dict]) -> str:
    """The question to search for, given the conversation so far (OpenAI "messages")."""
    previous: str | None = None  # the last question, made standalone
    topic: str | None = None  # the last one that named what the conversation is about
    for earlier in _user_questions(history):
        previous, topic = _resolve(earlier, previous, topic)
    return _resolve(question, previous, topic)[0]


def _user_questions(history: list[dict]) -> list[str]:
    return [
        m["content"].strip()
        for m in history or []
        if isinstance(m, dict)
        and m.get("role") == "user"
        and isinstance(m.get("content"), str)
        and m["content"].strip()
    ]


def _resolve(question: str, previous: str | None, topic: str | None) -> tuple[str, str]:
    """The question made standalone, and the conversation's topic after it. A follow-up
    that names nothing of its own ("How much did it pay?") asks more about the same
    topic, which the next follow-up carries: "When will the deal close?" after it gains
    the first question's topic, not the word "pay"."""
    question = " ".join(question.split())
    if previous is None or not is_elliptical(question):
        return question, question
    subject = _fragment_subject(question)
    if subject is not None:
        resolved = _substitute_subject(previous, subject)
        return resolved, resolved
    resolved = _carry_topic(question, topic or previous)
    return resolved, (resolved if _entities(question) else (topic or previous))


def is_elliptical(question: str) -> bool:
    """True when the question leans on an earlier one for its topic."""
    if _CONNECTOR.match(question):
        return True
    words = [w.lower() for w in _WORD.findall(question)]
    if any(w in _PRONOUNS for w in words):
        return True
    return len(_content_words(question)) < _MIN_CONTENT_WORDS


def _fragment_subject(question: str) -> str | None:
    """X in "What about X?" or in a verbless "And X?", else None."""
    match = _WHAT_ABOUT.match(question)
    if match is None:
        match = _AND_FRAGMENT.match(question)
        if match is None:
            return None
        subject_words = _WORD.findall(match["subject"])
        if not subject_words or len(subject_words) > _MAX_FRAGMENT_WORDS:
            return None
        first = subject_words[0].lower()
        if first in _QUESTION_WORDS | _STOPWORDS and first not in _DETERMINERS:
            return None
    subject = match["subject"].strip(" ,;:")
    return subject or None


def _substitute_subject(previous: str, subject: str) -> str:
    names = _name_spans(previous)
    if not names:
        return f"{_strip_end(previous)} ({subject})?"
    start, end, name = names[0]
    if not _name_spans(subject) and not _POSSESSIVE.search(name):
        end = _modified_noun_end(previous, end)
    replacement = subject
    if previous[:start].lower().endswith("the ") and subject.lower().startswith("the "):
        replacement = subject[4:]  # "What did the Bank of England…" + "the Fed"
    if _POSSESSIVE.search(name):
        replacement += "'" if subject.endswith("s") else "'s"
    return previous[:start] + replacement + previous[end:]


def _modified_noun_end(text: str, end: int) -> int:
    """Where the noun a name modifies ends ("US dollar"), else ``end``: "And the euro?"
    after "Why did the US dollar fall?" replaces "US dollar", as a name would replace "US"
    alone ("And Japan?" after "How fast did the US economy grow?"). The word after the
    name is taken for such a noun only when another content word follows it, the verb:
    "What did the US announce?" ends at its verb."""
    following = list(itertools.islice(_WORD.finditer(text, end), 2))
    if (
        len(following) < 2
        or text[end : following[0].start()] != " "
        or not all(_is_content(word[0]) for word in following)
    ):
        return end
    return following[0].end()


def _carry_topic(question: str, previous: str) -> str:
    core = _CONNECTOR.sub("", question, count=1).strip()
    core = core[:1].upper() + core[1:]
    own_words = {_bare(w) for w in _WORD.findall(core)}
    replaces_entities = bool(_entities(core))
    carried = [
        word
        for word in _topic_words(previous)
        if _bare(word) not in own_words
        and not (replaces_entities and _is_entity_word(previous, word))
    ]
    if not carried:
        return core
    return f"{_strip_end(core)} ({' '.join(carried)})?"


def _topic_words(question: str) -> list[str]:
    """The question's words from its first content word to its last."""
    words = _WORD.findall(question)
    content = [i for i, w in enumerate(words) if _is_content(w)]
    if not content:
        return []
    return words[content[0] : content[-1] + 1]


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if _is_content(w)]


def _is_content(word: str) -> bool:
    return _bare(word) not in _STOPWORDS


def _bare(word: str) -> str:
    return _POSSESSIVE.sub("", word).lower()


def _name_spans(text: str) -> list[tuple[int, int, str]]:
    """Names: runs of capitalised words, with the linking words between them ("the Bank of
    England", "the US Federal Reserve"); not a question's first word nor a stop word
    ("The", "What"), unless written in capitals ("US", "EU")."""
    words = list(_WORD.finditer(text))
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(words):
        if not _is_name_word(words[i].group(0)) or (
            i == 0 and words[i].group(0).lower() in _QUESTION_WORDS
        ):
            i += 1
            continue
        last = i
        while (step := _name_continues(text, words, last)) is not None:
            last = step
        start, end = words[i].start(), words[last].end()
        spans.append((start, end, text[start:end]))
        i = last + 1
    return spans


def _is_name_word(word: str) -> bool:
    """Capitalised and not a stop word ("The", "What"), or an acronym ("US")."""
    return word[0].isupper() and (
        _bare(word) not in _STOPWORDS or (word.isupper() and len(word) > 1)
    )


def _name_continues(text: str, words: list[re.Match[str]], last: int) -> int | None:
    """The index of the name's next capitalised word after word ``last``, with at most two
    linking words between ("Bank of England", "Ursula von der Leyen"; not "and": "Russia
    and Ukraine" are two), only spaces between them; None when the name ends at ``last``,
    as it does at a possessive ("IBM's PC")."""
    if _POSSESSIVE.search(words[last].group(0)):
        return None
    for links in range(3):
        after = last + links + 1
        if after >= len(words):
            return None
        if text[words[after - 1].end() : words[after].start()] != " ":
            return None
        word = words[after].group(0)
        if _is_name_word(word):
            return after
        if word.lower() not in NAME_LINKS:
            return None
    return None


def _entities(text: str) -> set[str]:
    """The words of the text's names (linking words left out)."""
    return {
        _bare(word)
        for _, _, name in _name_spans(text)
        for word in _WORD.findall(name)
        if word.lower() not in NAME_LINKS
    }


def _is_entity_word(text: str, word: str) -> bool:
    return _bare(word) in _entities(text)


def _strip_end(text: str) -> str:
    return text.rstrip(" ?.!")
