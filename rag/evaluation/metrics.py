"""Pure metric functions: one question's answer scored against the eval set's gold data.

Every function takes plain values (the ``Answer.to_dict()`` shape for answers) and returns
numbers, so each can be tested on hand-made cases. ``score_answer`` combines them into the
per-question record the runner aggregates; ``summarize`` turns records into the table row.
"""

from __future__ import annotations

import re
import statistics
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from llama_index.core.evaluation import MRR, HitRate

from rag.clean import reads_as
from rag.settings import REPO_ROOT

_TYPOGRAPHY = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation + "\u2018\u2019\u201c\u201d"})


# --- text normalisation ---------------------------------------------------------------------


def normalize(text: str) -> str:
    """Case-folded text with typographic quotes/dashes made plain and whitespace collapsed."""
    return " ".join(text.translate(_TYPOGRAPHY).casefold().split())


def tokens(text: str) -> list[str]:
    """SQuAD-style tokens: lower case, no punctuation, no articles."""
    text = text.casefold().translate(_PUNCTUATION)
    return _ARTICLES.sub(" ", text).split()


# --- retrieval (article level) --------------------------------------------------------------


def ranked_articles(passages: Iterable[dict[str, Any]]) -> list[str]:
    """Doc ids in the order their best passage was retrieved, each once."""
    return list(dict.fromkeys(p["doc_id"] for p in passages))


def hit_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """1.0 when a gold article is among the first ``k`` retrieved articles (llama-index HitRate)."""
    if not ranked or not gold:
        return 0.0
    return HitRate().compute(expected_ids=list(gold), retrieved_ids=list(ranked[:k])).score


def reciprocal_rank(ranked: Sequence[str], gold: Sequence[str]) -> float:
    """1 / rank of the first gold article, 0.0 if none was retrieved (llama-index MRR)."""
    if not ranked or not gold:
        return 0.0
    return MRR().compute(expected_ids=list(gold), retrieved_ids=list(ranked)).score


# --- answers --------------------------------------------------------------------------------


def matched_facts(answer: str, must_contain: Sequence[Sequence[str]]) -> list[bool]:
    """For each key fact (a list of alternatives): does any alternative occur in the answer?"""
    text = normalize(answer)
    return [any(normalize(alt) in text for alt in alternatives) for alternatives in must_contain]


def key_fact_recall(answer: str, must_contain: Sequence[Sequence[str]]) -> float:
    """Share of key facts the answer states; 1.0 when there is nothing to state."""
    matched = matched_facts(answer, must_contain)
    return sum(matched) / len(matched) if matched else 1.0


def first_quote_fact(
    citations: Sequence[dict[str, Any]], must_contain: Sequence[Sequence[str]], refused: bool
) -> float:
    """1.0 when the answer's first quote, the one a reader meets first, holds a key fact."""
    if refused or not citations:
        return 0.0
    return float(any(matched_facts(citations[0]["quote"], must_contain)))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between an answer and the reference answer."""
    pred, ref = tokens(prediction), tokens(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


# --- citations ------------------------------------------------------------------------------


def citation_precision(citations: Sequence[dict[str, Any]], gold: Sequence[str]) -> float | None:
    """Share of citations that point at a gold article; None when nothing is cited."""
    if not citations:
        return None
    return sum(c["doc_id"] in gold for c in citations) / len(citations)


def citation_recall(citations: Sequence[dict[str, Any]], gold: Sequence[str]) -> float:
    """Share of gold articles cited at least once."""
    if not gold:
        return 1.0
    cited = {c["doc_id"] for c in citations}
    return len(cited & set(gold)) / len(set(gold))


def resolve_source(source: str, root: Path = REPO_ROOT) -> Path:
    """A citation's ``source`` as a path: relative sources are relative to the repo root."""
    path = Path(source)
    return path if path.is_absolute() else root / path


@lru_cache(maxsize=256)
def _source_text(source: str) -> str | None:
    """The text citation offsets index into, read the way ingest reads it: a file's decoded
    text, or the text field of an export's record (``file#doc_id``)."""
    from rag.documents import UnreadableFileError
    from rag.sources import SourceRecord, read_export, read_text

    file, _, doc_id = source.partition("#")
    path = resolve_source(file)
    try:
        if not doc_id:
            return read_text(path)
        records = read_export(path, REPO_ROOT)
        return next(
            (r.text for r in records if isinstance(r, SourceRecord) and r.doc_id == doc_id), None
        )
    except (OSError, UnreadableFileError):
        return None


def quote_is_verbatim(
    citation: dict[str, Any], read: Callable[[str], str | None] = _source_text
) -> bool:
    """True when the cited article's text at [start, end) is exactly the quote: as it is, or
    (an HTML page) with its character references ("&pound;", "&#8217;") read."""
    text = read(citation["source"])
    if text is None:
        return False
    start, end = citation["start"], citation["end"]
    if not 0 <= start < end <= len(text):
        return False
    return reads_as(text[start:end], citation["quote"])


# --- one question ---------------------------------------------------------------------------


def failure_reasons(
    question: dict[str, Any], scores: dict[str, Any], answer: dict[str, Any]
) -> list[str]:
    """Why a question counts as failed, in words; empty when it passed every check."""
    reasons: list[str] = []
    if scores["quotes_bad"]:
        reasons.append(f"{scores['quotes_bad']} quote(s) not verbatim at their offsets")
    if not question["answerable"]:
        if not answer["refused"]:
            reasons.append("answered an unanswerable question")
        return reasons
    if answer["refused"]:
        reasons.append("refused an answerable question")
    if scores["hit_at_k"] == 0:
        reasons.append("no gold article retrieved")
    elif scores["hit_at_1"] == 0:
        reasons.append(f"gold article not ranked first (got {scores['retrieved'][0]})")
    missing = [
        alts for alts, ok in zip(question["must_contain"], scores["facts"], strict=True) if not ok
    ]
    if missing and not answer["refused"]:
        reasons.append("missing key facts: " + "; ".join(" | ".join(a) for a in missing))
    gold = set(question["gold_sources"])
    wrong = sorted({c["doc_id"] for c in answer["citations"]} - gold) if gold else []
    if wrong:
        reasons.append("cites non-gold article(s): " + ", ".join(wrong))
    if not answer["refused"] and scores["citation_recall"] == 0:
        reasons.append("cites no gold article")
    return reasons


def score_answer(question: dict[str, Any], answer: dict[str, Any], k: int) -> dict[str, Any]:
    """All per-question metrics for one ``Answer.to_dict()`` against its eval-set entry."""
    gold = question["gold_sources"]
    ranked = ranked_articles(answer["passages"])
    citations = answer["citations"]
    verbatim = [quote_is_verbatim(c) for c in citations]
    refused = bool(answer["refused"])
    answerable = bool(question["answerable"])
    facts = matched_facts(answer["answer"], question["must_contain"])
    scores: dict[str, Any] = {
        "retrieved": ranked,
        "cited": [c["doc_id"] for c in citations],
        "facts": facts,
        "quotes_checked": len(verbatim),
        "quotes_bad": verbatim.count(False),
        "answer_chars": len(answer["answer"]),
    }
    if answerable:
        # A set of one's own may leave out the articles or the key facts: not scored then.
        has_gold, has_facts = bool(gold), bool(question["must_contain"])
        scores |= {
            "hit_at_1": hit_at(ranked, gold, 1) if has_gold else None,
            "hit_at_k": hit_at(ranked, gold, k) if has_gold else None,
            "mrr": reciprocal_rank(ranked, gold) if has_gold else None,
            "key_fact_recall": (0.0 if refused else sum(facts) / len(facts)) if has_facts else None,
            "all_key_facts": float(not refused and all(facts)) if has_facts else None,
            "first_quote_fact": first_quote_fact(citations, question["must_contain"], refused)
            if has_facts
            else None,
            "token_f1": 0.0
            if refused
            else token_f1(answer["answer"], question["reference_answer"]),
            "citation_precision": citation_precision(citations, gold) if has_gold else None,
            "citation_recall": citation_recall(citations, gold) if has_gold else None,
        }
    scores["failures"] = failure_reasons(question, scores, answer)
    return scores


# --- aggregation ----------------------------------------------------------------------------


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, float | int | None]:
    """One table row from per-question records (``question`` + ``answer`` + ``scores`` each)."""
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    answered = [r for r in answerable if not r["refused"]]

    def over(rows: Sequence[dict[str, Any]], key: str) -> float | None:
        return mean(r["scores"].get(key) for r in rows)

    checked = sum(r["scores"]["quotes_checked"] for r in records)
    bad = sum(r["scores"]["quotes_bad"] for r in records)
    latencies = [r["latency_ms"] for r in records]
    return {
        "questions": len(records),
        "answerable": len(answerable),
        "hit_at_1": over(answerable, "hit_at_1"),
        "hit_at_k": over(answerable, "hit_at_k"),
        "mrr": over(answerable, "mrr"),
        "key_fact_recall": over(answerable, "key_fact_recall"),
        "all_key_facts": over(answerable, "all_key_facts"),
        "first_quote_fact": over(answerable, "first_quote_fact"),
        "token_f1": over(answerable, "token_f1"),
        "median_answer_chars": (
            statistics.median(r["scores"]["answer_chars"] for r in answered) if answered else None
        ),
        "citation_precision": over(answerable, "citation_precision"),
        "citation_recall": over(answerable, "citation_recall"),
        "quotes_checked": checked,
        "quote_fidelity": (checked - bad) / checked if checked else None,
        "refused_unanswerable": share([r["refused"] for r in unanswerable]),
        "refused_answerable": share([r["refused"] for r in answerable]),
        "refused": share([r["refused"] for r in records]),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "wall_p50_ms": percentile([r["wall_ms"] for r in records], 50),
        "wall_p95_ms": percentile([r["wall_ms"] for r in records], 95),
        "wall_total_s": sum(r["wall_ms"] for r in records) / 1000,
        "failed": sum(bool(r["scores"]["failures"]) for r in records),
    }
