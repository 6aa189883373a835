"""Composing the answer: the answering sentence first, then only what it needs.

Last stage of the one path (read → retrieve → score → compose). The answer is made of
verbatim sentences: the most probable one; the sentence before it when it cannot be read
alone ("He said…", "One of these…"), and the one after it when that one goes on from it
("One of these conditions is…", "But…", "However, …"); another sentence of the same
article (not its headline, which the sources show as its title), or another article's best
one (the other side of a comparison), when the scorer finds them likely enough. Quotes are
grouped by article, the best article first; within an article the answering sentence (with
the sentences it needs) leads and the others follow in text order. Each is cited [n].

``choose`` picks the sentences for every kind of question (a keyword search, a question
about two sides, "latest", "how did it change"); ``rag.fit`` scores its rules through it,
so the rules are fitted on the answers users get.
"""

from __future__ import annotations

import numpy as np

from rag.dates import display_date
from rag.documents import own_title
from rag.duplicates import worded_alike
from rag.features import holds_every_term
from rag.models import Citation, quoted
from rag.retrieve import Corpus
from rag.scorer import ComposeRules, Logistic

ANSWER_CHAR_BUDGET = 450  # the median answer stays within this (``rag.fit`` checks it)
# First words that point back to the sentence before ("He said…", "This means…").
_POINTING_BACK = frozenset(
    [
        "he",
        "she",
        "they",
        "it",
        "its",
        "his",
        "her",
        "their",
        "this",
        "these",
        "those",
        "that",
        "such",
        "there",
        "both",
        "but",
        "however",
    ]
)
_POINTING_BACK_PHRASES = ("one of these", "one of them", "one of those", "the move", "the deal")


def choose(
    corpus: Corpus,
    probs: np.ndarray,
    rules: ComposeRules,
    max_quotes: int,
    *,
    sides: list[int] | None = None,
    latest: bool = False,
    changed: bool = False,
) -> list[int]:
    """The sentence rows to quote, best first (the fit scores the rules by this too).

    ``changed`` ("how did X change"): a dated quote from each of the likeliest dated
    articles, when two are dated. ``latest`` ("latest/current/now"): the newest likely
    article leads. ``sides``: the best sentence of each side of an "A's and B's" or
    two-part question (``best_per_side``), quoted too.
    """
    if changed and (rows := timeline(corpus, probs, rules.other_article, max_quotes)):
        return rows
    if latest and not changed:
        probs = prefer_newest(corpus, probs, rules.other_article)
    return select(corpus, probs, rules, max_quotes, required=sides)


def best_per_side(sentence: Logistic, side_values: list[np.ndarray]) -> list[int]:
    """The best sentence for each side of a question, by the ranker's logits over that
    side's features; a sentence that best answers both is one side's only."""
    rows: list[int] = []
    for values in side_values:
        logits = sentence.logits(values)
        logits[rows] = -np.inf
        rows.append(int(np.argmax(logits)))
    return rows


def keyword_first(
    corpus: Corpus, terms: list[str], logits: np.ndarray, probs: np.ndarray
) -> int | None:
    """A keyword search ("Storm Shadow") quotes first the likeliest sentence that holds
    every keyword (its probability raised above the best in ``probs``), and is not
    refused: the archive mentions what was searched for. The scorer, fitted on questions,
    ranks such a sentence low when the words are few (seeds set: 2 of its 9 keyword
    searches were refused). Its row, or None when no sentence holds every keyword."""
    holding = np.flatnonzero(holds_every_term(corpus, terms)) if terms else np.zeros(0, int)
    if not holding.size:
        return None
    row = int(holding[np.argmax(logits[holding])])
    probs[row] = np.nextafter(probs.max(), 2.0)
    return row


def prefer_newest(corpus: Corpus, probs: np.ndarray, likely: float) -> np.ndarray:
    """For "latest/current/now" questions: the newest dated article whose best sentence
    is likely enough (``likely``, or half the best probability) leads the answer."""
    best = float(probs.max())
    floor = min(likely, best / 2)
    newest: tuple[str, int] | None = None  # (published, row of its best sentence)
    for doc in dict.fromkeys(corpus.sentence_doc):
        rows = np.flatnonzero(corpus.sentence_doc == doc)
        row = int(rows[np.argmax(probs[rows])])
        published = corpus.sentences.metadatas[row].get("published")
        if published and probs[row] >= floor and (newest is None or published > newest[0]):
            newest = (published, row)
    if newest is None:
        return probs
    out = probs.copy()
    out[newest[1]] = max(best + 1e-6, out[newest[1]])
    return out


def select(
    corpus: Corpus,
    probs: np.ndarray,
    rules: ComposeRules,
    max_quotes: int = 3,
    required: list[int] | None = None,
    other_articles: int = 1,
) -> list[int]:
    """Sentence rows to quote, best first. ``required``: rows that must be quoted too.
    ``other_articles``: how many articles besides the best one may be quoted (more for
    "how did X change" questions). A sentence is never quoted twice, nor one from a
    near-duplicate copy of an article already quoted."""
    order = [int(i) for i in np.argsort(-probs, kind="stable")]
    best = order[0]
    picked = [best]
    texts = corpus.sentences.texts
    length = len(texts[best])
    best_doc = corpus.sentence_doc[best]
    others_added: set[str] = set()
    same_article_added = 0
    top = float(probs[best])
    for row in order[1:]:
        if len(picked) >= max_quotes or probs[row] < top * min(
            rules.same_article, rules.other_article
        ):
            break
        doc = str(corpus.sentence_doc[row])
        same = doc == best_doc
        if same and is_headline(corpus, row):
            continue  # the answer's sources show it as the article's title
        wanted = top * (rules.same_article if same else rules.other_article)
        already = (
            same_article_added >= rules.same_article_quotes
            if same
            else len(others_added) >= other_articles
        )
        if already or probs[row] < wanted or _repeats(corpus, row, picked):
            continue
        if length + len(texts[row]) > rules.max_chars:
            continue
        picked.append(row)
        length += len(texts[row])
        if same:
            same_article_added += 1
        else:
            others_added.add(doc)
    for row in required or []:
        if row not in picked and not _repeats(corpus, row, picked):
            picked.append(row)
    return _with_antecedents(corpus, _with_continuation(corpus, picked))


def timeline(corpus: Corpus, probs: np.ndarray, floor: float, max_quotes: int) -> list[int]:
    """For "how did X change" questions: the best sentence (not a headline) of each of the
    likeliest dated articles, up to ``max_quotes``; [] when fewer than two are dated. An
    article is likely when its best sentence reaches ``floor`` or a quarter of the best
    dated sentence's probability (an undated article, left out, does not set the bar)."""
    dated = [
        row
        for row in map(int, np.argsort(-probs, kind="stable"))
        if corpus.sentences.metadatas[row].get("published") and corpus.sentence_position[row] > 0
    ]
    if not dated:
        return []
    floor = min(floor, float(probs[dated[0]]) / 4)
    best_of: dict[str, int] = {}
    for row in dated:
        if probs[row] < floor:
            break  # the rest are less likely still
        doc = str(corpus.sentence_doc[row])
        if doc in best_of or _repeats(corpus, row, list(best_of.values())):
            continue
        best_of[doc] = row
        if len(best_of) >= max_quotes:
            break
    return list(best_of.values()) if len(best_of) >= 2 else []


def _repeats(corpus: Corpus, row: int, picked: list[int]) -> bool:
    """The same sentence already quoted (from a copy of the same story), or a sentence of
    another article that is a near duplicate of one already quoted: the article is, or the
    sentence is worded as one (a report rewritten for another edition: "…avoiding drugs
    tests in Tel Aviv…" and "…avoiding drug tests in Tel Aviv…")."""
    texts, docs, groups = corpus.sentences.texts, corpus.sentence_doc, corpus.sentence_group
    return any(
        texts[p] == texts[row]
        or (
            docs[p] != docs[row]
            and (groups[p] == groups[row] or worded_alike(texts[p], texts[row]))
        )
        for p in picked
    )


def is_headline(corpus: Corpus, row: int) -> bool:
    """The sentence is its article's title line (a feed record's title is not a sentence)."""
    title = own_title(corpus.sentences.metadatas[row])
    text = corpus.sentences.texts[row]
    return corpus.sentence_position[row] == 0 and text.strip() == title.strip()


def needs_antecedent(text: str) -> bool:
    lower = text.lower().lstrip("“\"‘' ")
    first = lower.split(maxsplit=1)[0].strip(",.;:") if lower else ""
    return first in _POINTING_BACK or lower.startswith(_POINTING_BACK_PHRASES)


def _with_continuation(corpus: Corpus, picked: list[int]) -> list[int]:
    """Add the sentence after the best quote when it points back to it: "…ready to reopen
    talks, but only on its own terms." goes on "But Moscow needs to … first", which holds
    the terms."""
    best, after = picked[0], picked[0] + 1
    if (
        after < len(corpus.sentences.texts)
        and corpus.sentence_doc[after] == corpus.sentence_doc[best]
        and after not in picked
        and not _repeats(corpus, after, picked)
        and needs_antecedent(corpus.sentences.texts[after])
    ):
        return [best, after, *picked[1:]]
    return picked


def _with_antecedents(corpus: Corpus, picked: list[int]) -> list[int]:
    """Add the sentence before each quote that points back to it (rows are in text order)."""
    out = list(picked)
    for row in picked:
        before = row - 1
        if (
            before >= 0
            and corpus.sentence_doc[before] == corpus.sentence_doc[row]
            and corpus.sentence_position[before] > 0  # not the headline
            and before not in out
            and needs_antecedent(corpus.sentences.texts[row])
        ):
            out.insert(out.index(row), before)
    return out


def compose(
    corpus: Corpus,
    rows: list[int],
    by_date: bool = False,
    copies: dict[str, list[str]] | None = None,
) -> tuple[str, list[Citation]]:
    """Group the chosen sentences (``rows``, best first) by article, best article first;
    in each, the sentence that answers leads (``answer_first``).

    ``by_date``: articles in date order (undated last), each line dated ("how did X
    change" questions), when at least two are dated; else (an undated archive, where the
    question was answered as any other) as usual. ``copies``: doc id -> its near-duplicate
    copies ("also in: …").
    """
    copies = copies or {}
    first_row: dict[str, int] = {}
    for row in rows:
        first_row.setdefault(str(corpus.sentence_doc[row]), row)
    doc_order = list(first_row)
    published = {d: corpus.sentences.metadatas[r].get("published") for d, r in first_row.items()}
    by_date = by_date and sum(bool(day) for day in published.values()) >= 2
    if by_date:
        doc_order.sort(key=lambda d: published[d] or "9999")
    citations: list[Citation] = []
    lines: list[str] = []
    for doc in doc_order:
        in_doc = answer_first(corpus, [r for r in rows if corpus.sentence_doc[r] == doc])
        parts = []
        for r in in_doc:
            meta = corpus.sentences.metadatas[r]
            citation = Citation(
                n=len(citations) + 1,
                doc_id=meta["doc_id"],
                title=meta["title"],
                source=meta["source"],
                quote=corpus.sentences.texts[r],
                start=int(meta["start"]),
                end=int(meta["end"]),
                published=meta.get("published"),
                url=meta.get("url"),
                publisher=meta.get("publisher"),
                also_in=copies.get(doc, []),
            )
            citations.append(citation)
            parts.append(f"{quoted(citation.quote)} [{citation.n}]")
        line = " ".join(parts)
        if by_date:
            when = display_date(citations[-1].published) or "Undated"
            line = f"{when}: {line}"
        if copies.get(doc):
            line += f" (also in: {', '.join(copies[doc])})"
        lines.append(line)
    return "\n\n".join(lines), citations


def answer_first(corpus: Corpus, rows: list[int]) -> list[int]:
    """One article's quotes, its likeliest first in ``rows``: that sentence with those
    around it it is read with (the one before it points back to, the ones after that point
    back to it) leads, the others follow in text order. A reader meets the answer before
    the context quoted beside it."""
    texts, chosen = corpus.sentences.texts, set(rows)
    first = last = rows[0]
    while first - 1 in chosen and needs_antecedent(texts[first]):
        first -= 1
    while last + 1 in chosen and needs_antecedent(texts[last + 1]):
        last += 1
    lead = list(range(first, last + 1))
    return lead + sorted(chosen - set(lead))


def refusal_text() -> str:
    return (
        "The articles don't say. None of the indexed articles contains a passage that "
        "answers this question."
    )
