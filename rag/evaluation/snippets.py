"""A snippet version of an archive and a question set: short, noisy records like a web feed's.

``bench/snippets.py`` reports answers over it: the issue's third corpus, ~1,000 noisy web
news snippets, is not one we have.

- **Snippets.** One per article: its headline as the title and a window of one to three
  consecutive body sentences (seeded). For an article that answers a question of the set,
  the window holds the sentence with the question's first key fact. Web noise at random: a
  "Jan 12, 2005 —" date or a "BBC News:" prefix, a trailing "..." or "Read more", a last
  sentence cut short (never one with the key fact).
- **Questions.** The set's answerable questions whose every key fact, and every name they
  mention, is in a gold article's snippet or title (gold sources become the snippets), and
  all its unanswerable ones. A question written from a whole article may lean on what its
  snippet leaves out; one written from the snippet would not.
- **Distractors.** Other articles' snippets, up to ``size`` snippets in all.
"""

from __future__ import annotations

import calendar
import json
import random
from dataclasses import dataclass
from pathlib import Path

from rag.documents import load_document
from rag.evaluation.metrics import normalize
from rag.evaluation.runner import Question
from rag.question import Question as Reading
from rag.settings import get_settings

MONTHS = [calendar.month_abbr[m] for m in range(1, 13)]
SNIPPET_ID_PREFIX = "snip-"


@dataclass
class SnippetSet:
    records: list[dict[str, str]]  # export records: id, title, text
    questions: list[Question]

    def write(self, corpus: Path, questions: Path) -> None:
        """The records as ``corpus/snippets.jsonl``, the questions as JSON lines."""
        corpus.mkdir(parents=True, exist_ok=True)
        lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in self.records)
        (corpus / "snippets.jsonl").write_text("".join(lines), encoding="utf-8")
        questions.parent.mkdir(parents=True, exist_ok=True)
        questions.write_text("".join(q.model_dump_json() + "\n" for q in self.questions))


def make_snippets(archive: Path, questions: list[Question], size: int, seed: int) -> SnippetSet:
    rng = random.Random(seed)
    paths = {p.stem: p for p in sorted(archive.glob("*.txt"))}
    fact_of: dict[str, str] = {}  # each gold article's window holds this key fact
    for q in questions:
        for doc in q.gold_sources:
            fact_of.setdefault(doc, normalize(q.must_contain[0][0]))
    distractors = [d for d in paths if d not in fact_of]
    rng.shuffle(distractors)
    chosen = [d for d in fact_of if d in paths] + distractors[: max(0, size - len(fact_of))]

    records: list[dict[str, str]] = []
    snippets: dict[str, str] = {}  # doc -> title and text, normalised
    for doc in sorted(chosen):
        title, sentences = _body_sentences(paths[doc])
        if not sentences:
            continue
        fact = fact_of.get(doc)
        must = next((i for i, s in enumerate(sentences) if fact and fact in normalize(s)), None)
        text = _noisy(_window(sentences, rng, must), rng, fact if must is not None else None)
        snippets[doc] = normalize(f"{title} {text}")
        records.append({"id": SNIPPET_ID_PREFIX + doc, "title": title, "text": text})
    return SnippetSet(records, [a for q in questions if (a := _answered(q, snippets))])


def _answered(q: Question, snippets: dict[str, str]) -> Question | None:
    """The question over the snippets (gold sources renamed), or None when they cannot
    answer it."""
    if not q.answerable:
        return q
    gold = [d for d in q.gold_sources if d in snippets]

    def held(group: list[str], doc: str) -> bool:
        return any(normalize(alt) in snippets[doc] for alt in group)

    holding = [d for d in gold if all(held(g, d) for g in q.must_contain)]
    # A multi-article question needs each fact in one of its articles' snippets.
    spread = q.kind == "multi" and all(any(held(g, d) for d in gold) for g in q.must_contain)
    named = all(any(n in snippets[d] for d in gold) for n in Reading.read(q.question).names)
    if not named or not (holding or spread):
        return None
    answering = holding or gold
    return q.model_copy(update={"gold_sources": [SNIPPET_ID_PREFIX + d for d in answering]})


def _body_sentences(path: Path) -> tuple[str, list[str]]:
    """(headline, body sentences) of an archive article, split as ingest splits them."""
    settings = get_settings()
    doc = load_document(path, settings.chunk_size, settings.chunk_overlap)
    texts = [span.text.strip() for span, _ in doc.sentences]
    return doc.title, [t for t in texts[1:] if t]


def _window(sentences: list[str], rng: random.Random, must: int | None) -> list[str]:
    """One to three consecutive sentences; holding sentence ``must`` when given."""
    size = min(rng.choice((1, 2, 2, 3)), len(sentences))
    if must is None:
        start = rng.randrange(len(sentences) - size + 1)
    else:
        start = rng.randrange(max(0, must - size + 1), min(must, len(sentences) - size) + 1)
    return sentences[start : start + size]


def _noisy(sentences: list[str], rng: random.Random, keep: str | None) -> str:
    """The snippet's text, with the kinds of noise search results and feeds carry."""
    parts = list(sentences)
    if len(parts) > 1 and (keep is None or keep not in normalize(parts[-1])) and rng.random() < 0.3:
        words = parts[-1].split()
        parts[-1] = " ".join(words[: max(3, len(words) // 2)]) + " ..."
    text = " ".join(parts)
    roll = rng.random()
    if roll < 0.3:
        text = f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, 2005 — {text}"
    elif roll < 0.45:
        text = f"BBC News: {text}"
    roll = rng.random()
    if roll < 0.2:
        text += " ..."
    elif roll < 0.3:
        text += " Read more"
    return text
