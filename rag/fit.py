"""Fit the sentence scorer, the refusal model and the composition thresholds: ``make fit``.

    python -m rag.fit [--bbc-corpus DIR] [--bbc-index DIR] [--out rag/data/scorer.json]

Fitted only on the fitting sets: the seeds set (``eval/questions.jsonl`` over ``seeds/``),
the fitting half of the BBC archive questions (``eval/bbc/fit.jsonl``) and the questions
written in bulk from other archive articles (``eval/bbc/bulk/bulk.jsonl``), both over the
archive. The held-out half (``eval/bbc/heldout.jsonl``) is never read here.

1. Every candidate sentence of every answerable question is labelled: does it hold a key
   fact (``must_contain``) of the question, in one of its gold articles? A logistic
   regression (scikit-learn) of that label on ``rag.features.SENTENCE_FEATURES``.
2. For every question, answerable or not, the evidence features of the best sentence;
   a logistic regression of "answerable" on them. The refusal threshold is set so that
   at most ``FALSE_REFUSALS`` of the fitting half's answerable questions are refused.
3. The composition rules: a grid over the probabilities (as a share of the best one's) a
   further quote of the same or another article needs, how many more of the same article
   may be quoted, and the longest quoted text a further quote may make; the best share of
   key facts quoted with every fitting set's median answer within budget.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rag.compose import ANSWER_CHAR_BUDGET, compose, select
from rag.evaluation.metrics import normalize
from rag.evaluation.runner import Question as EvalQuestion
from rag.evaluation.runner import load_questions
from rag.features import (
    EVIDENCE_FEATURES,
    SENTENCE_FEATURES,
    SentenceTable,
    evidence_features,
)
from rag.question import Question
from rag.retrieve import Corpus
from rag.scorer import DEFAULT_MODEL, ComposeRules, FittedModel, Logistic, sigmoid
from rag.settings import REPO_ROOT, Settings, get_settings

log = logging.getLogger("rag.fit")

# Questions written in bulk from other archive articles than the held-out half's (see
# eval/bbc/bulk/README.md): fitting examples only, never reported as a result.
BULK_SET = REPO_ROOT / "eval" / "bbc" / "bulk" / "bulk.jsonl"

PAIRS_PER_QUESTION = 40  # other sentences paired with each answering one
# The fitted median stays this far under the answer budget: sets it was not fitted on
# (the held-out half, other archives) have longer or shorter sentences.
BUDGET_MARGIN = 30
FALSE_REFUSALS = 0.05  # at most this share of answerable fitting questions refused
# A further quote's probability as a share of the best one's; 1.01: never.
SAME_ARTICLE_QUOTES = (1, 2)  # further sentences of the best article, at most
# The longest quoted text a further quote may make: a cap above the budget lets short
# answers take a third sentence while the median stays within it.
MAX_CHARS = (400, 450, 500, 550, 600)
GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)


@dataclass
class Example:
    """One question's candidates, features and labels."""

    question: EvalQuestion
    corpus: Corpus
    values: np.ndarray
    labels: np.ndarray  # per sentence: holds a key fact in a gold article
    table: SentenceTable
    docs: np.ndarray  # article of each sentence
    question_set: str  # the file the question comes from


def collect(
    questions: list[EvalQuestion], settings: Settings, question_set: str = ""
) -> list[Example]:
    from rag.engine import Engine

    engine = Engine(settings, auto_ingest=False, model=_UNFITTED)
    examples = []
    for q in questions:
        found = engine.candidates(Question.read(q.question))
        if found is None:
            continue
        candidates, table = found
        corpus = candidates.corpus
        examples.append(
            Example(
                q,
                corpus,
                table.values,
                _labels(q, corpus),
                table,
                corpus.sentence_doc,
                question_set,
            )
        )
    return examples


# Engine needs a scorer to start; fitting uses only its stores, model and analyzer.
def _zeros(names: tuple[str, ...]) -> Logistic:
    n = len(names)
    return Logistic(names, np.zeros(n), np.ones(n), np.zeros(n), 0.0)


_UNFITTED = FittedModel(
    sentence=_zeros(SENTENCE_FEATURES),
    refusal=_zeros(EVIDENCE_FEATURES),
    refusal_threshold=0.5,
    compose=ComposeRules(1.01, 1.01),
    meta={},
)


def _labels(q: EvalQuestion, corpus: Corpus) -> np.ndarray:
    gold = set(q.gold_sources)
    facts = [[normalize(alt) for alt in group] for group in q.must_contain]
    return np.asarray(
        [
            doc in gold and any(alt in normalize(text) for group in facts for alt in group)
            for doc, text in zip(corpus.sentence_doc, corpus.sentences.texts, strict=True)
        ],
        dtype=bool,
    )


def fit_logistic(x: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> Logistic:
    from sklearn.linear_model import LogisticRegression

    mean, scale = _standardisation(x)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    model.fit((x - mean) / scale, y)
    return Logistic(names, mean, scale, model.coef_[0], float(model.intercept_[0]))


def fit_ranker(examples: list[Example], names: tuple[str, ...]) -> Logistic:
    """Weights that rank a question's answering sentences above its other candidates.

    A logistic regression on pairs (answering minus other sentence of the same
    question): what matters is which sentence is best for this question, not how
    sentences compare across questions. A second, one-feature regression then maps the
    ranking score to a probability, which composition and refusal read.
    """
    from sklearn.linear_model import LogisticRegression

    every = np.concatenate([ex.values for ex in examples])
    mean, scale = _standardisation(every)
    rng = np.random.default_rng(0)
    # Each question set weighs the same in all: the bulk-written one must not outvote the
    # sets written like the questions users ask.
    per_set = Counter(ex.question_set for ex in examples)
    diffs, pair_weights = [], []
    for ex in examples:
        z = (ex.values - mean) / scale
        pos, neg = np.flatnonzero(ex.labels), np.flatnonzero(~ex.labels)
        if not len(pos) or not len(neg):
            continue
        # Every other sentence of an answering article (the hard choice), and a sample of
        # the rest.
        gold = np.isin(ex.docs, ex.docs[pos])
        near, far = neg[gold[neg]], neg[~gold[neg]]
        far = rng.choice(far, size=min(len(far), PAIRS_PER_QUESTION), replace=False)
        neg = np.concatenate([near, far])
        diffs.append((z[pos][:, None, :] - z[neg][None, :, :]).reshape(-1, z.shape[1]))
        pair_weights.append(np.full(len(diffs[-1]), 1.0 / per_set[ex.question_set]))
    d, w = np.concatenate(diffs), np.concatenate(pair_weights)
    w *= len(w) / w.sum()
    ranker = LogisticRegression(C=1.0, fit_intercept=False, max_iter=2000)
    ranker.fit(
        np.concatenate([d, -d]),
        np.r_[np.ones(len(d)), np.zeros(len(d))],
        sample_weight=np.concatenate([w, w]),
    )
    weights = ranker.coef_[0]
    scores = ((every - mean) / scale) @ weights
    labels = np.concatenate([ex.labels for ex in examples])
    calibration = LogisticRegression(C=1.0, max_iter=2000).fit(scores[:, None], labels)
    a, b = float(calibration.coef_[0][0]), float(calibration.intercept_[0])
    return Logistic(names, mean, scale, weights * a, b)


def _standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    return x.mean(axis=0), scale


def top1_share(examples: list[Example], sentence: Logistic) -> float:
    """Share of answerable questions whose best-scored sentence holds a key fact."""
    hits = [ex.labels[int(np.argmax(sentence.logits(ex.values)))] for ex in examples]
    return float(np.mean(hits)) if hits else 0.0


def evidence_matrix(examples: list[Example], sentence: Logistic) -> np.ndarray:
    rows = []
    for ex in examples:
        logits = sentence.logits(ex.values)
        best = int(np.argmax(logits))
        rows.append(evidence_features(ex.table, logits, best, ex.corpus.sentence_doc))
    return np.asarray(rows)


def key_fact_score(examples: list[Example], sentence: Logistic, rules: ComposeRules) -> tuple:
    """(share of key facts quoted, median answer length) on the answerable examples.

    The length is the composed answer's, quotation marks and [n] markers included; the
    longest median of the question sets counts (each set must keep within budget)."""
    found: list[float] = []
    lengths: dict[str, list[int]] = {}
    for ex in examples:
        if not ex.question.answerable:
            continue
        probs = sigmoid(sentence.logits(ex.values))
        rows = select(ex.corpus, probs, rules)
        answer = normalize(" ".join(ex.corpus.sentences.texts[r] for r in rows))
        groups = ex.question.must_contain
        found.append(
            sum(any(normalize(a) in answer for a in g) for g in groups) / max(len(groups), 1)
        )
        text, _ = compose(ex.corpus, rows)
        lengths.setdefault(ex.question_set, []).append(len(text))
    return float(np.mean(found)), max(float(statistics.median(v)) for v in lengths.values())


def fit(examples: list[Example]) -> FittedModel:
    """The ranker learns from every fitting question; the refusal model, its threshold and
    the composition rules only from the questions written like the reported sets (the
    bulk-written ones are easier: their threshold would refuse twice as many answerable
    questions of the held-out half)."""
    answerable = [ex for ex in examples if ex.question.answerable]
    y = np.concatenate([ex.labels for ex in answerable])
    sentence = fit_ranker(answerable, SENTENCE_FEATURES)
    examples = [ex for ex in examples if ex.question_set != BULK_SET.name]

    evidence = evidence_matrix(examples, sentence)
    is_answerable = np.asarray([ex.question.answerable for ex in examples])
    refusal = fit_logistic(evidence, is_answerable, EVIDENCE_FEATURES)
    p = sigmoid(refusal.logits(evidence))
    threshold = float(np.quantile(p[is_answerable], FALSE_REFUSALS)) - 1e-6

    best_rules, best_score = ComposeRules(1.01, 1.01), (-1.0, 0.0)
    for same, other, quotes, chars in itertools.product(GRID, GRID, SAME_ARTICLE_QUOTES, MAX_CHARS):
        rules = ComposeRules(same, other, quotes, chars)
        recall, median = key_fact_score(examples, sentence, rules)
        within = median <= ANSWER_CHAR_BUDGET - BUDGET_MARGIN
        if within and (recall, -median) > (best_score[0], -best_score[1]):
            best_rules, best_score = rules, (recall, median)
    refused = p < threshold
    meta = {
        "fitted": datetime.now(UTC).isoformat(timespec="seconds"),
        "questions": len(examples),
        "ranker_questions": len(answerable),
        "sentences": int(len(y)),
        "positive_sentences": int(y.sum()),
        "fitting_best_sentence_holds_key_fact": round(
            top1_share([ex for ex in examples if ex.question.answerable], sentence), 4
        ),
        "fitting_key_fact_recall": round(best_score[0], 4),
        "fitting_median_answer_chars": best_score[1],
        "fitting_refused_answerable": round(float(refused[is_answerable].mean()), 4),
        "fitting_refused_unanswerable": round(float(refused[~is_answerable].mean()), 4),
    }
    return FittedModel(sentence, refusal, threshold, best_rules, meta)


def _index(corpus: Path, index_dir: Path, collection: str) -> Settings:
    from rag.ingest import ingest_paths

    settings = get_settings().model_copy(
        update={"index_dir": index_dir.resolve(), "collection": collection}
    )
    log.warning("indexing %s into %s (only new or changed files)", corpus, index_dir)
    ingest_paths([corpus], settings, progress=sys.stderr.isatty())
    return settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bbc-corpus", type=Path, default=REPO_ROOT.parent / "shared/corpora/bbc")
    parser.add_argument("--bbc-index", type=Path, default=REPO_ROOT / ".fit" / "bbc-index")
    parser.add_argument("--seeds-index", type=Path, default=REPO_ROOT / ".fit" / "seeds-index")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    parser.add_argument(
        "--collection",
        default=f"{get_settings().collection}-eval",
        help="Collection of the indexes (default: the one `rag eval --index` builds).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    sets = [(REPO_ROOT / "eval" / "questions.jsonl", REPO_ROOT / "seeds", args.seeds_index)]
    if args.bbc_corpus.is_dir():
        sets.append((REPO_ROOT / "eval" / "bbc" / "fit.jsonl", args.bbc_corpus, args.bbc_index))
        sets.append((BULK_SET, args.bbc_corpus, args.bbc_index))
    else:
        log.warning("no BBC archive at %s: fitting on the seeds set only", args.bbc_corpus)
    examples: list[Example] = []
    for questions, corpus, index_dir in sets:
        settings = _index(corpus, index_dir, args.collection)
        examples += collect(load_questions(questions), settings, questions.name)
    model = fit(examples)
    args.out.write_text(_dumps(model), encoding="utf-8")
    print(f"wrote {args.out}: {model.meta}")


def _dumps(model: FittedModel) -> str:
    import json

    return json.dumps(model.to_dict(), indent=1) + "\n"


if __name__ == "__main__":
    main()
