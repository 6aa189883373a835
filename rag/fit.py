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
   key facts quoted plus citation precision, with every fitting set's median answer within
   budget. (On key facts alone the grid took another article's best sentence at 5% of the
   best's probability: +0.004 key facts on the fitting half for -0.03 citation precision.)
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np

from rag.components.reader import Reader, Reading
from rag.compose import ANSWER_CHAR_BUDGET, best_per_side, choose, compose, keyword_first
from rag.dates import asks_for_latest, asks_how_it_changed
from rag.evaluation.metrics import normalize
from rag.evaluation.runner import Question as EvalQuestion
from rag.evaluation.runner import load_questions
from rag.features import (
    EVIDENCE_FEATURES,
    EVIDENCE_SIGNS,
    SENTENCE_FEATURES,
    SentenceTable,
    evidence_features,
)
from rag.question import Question
from rag.retrieve import Corpus
from rag.scorer import (
    DEFAULT_MODEL,
    ComposeRules,
    FittedModel,
    Logistic,
    ReaderRules,
    every_reading,
    judge,
    sigmoid,
)
from rag.settings import REPO_ROOT, Settings, get_settings

log = logging.getLogger("rag.fit")

# Questions written in bulk from other archive articles than the held-out half's (see
# eval/bbc/bulk/README.md): fitting examples only, never reported as a result.
BULK_SET = REPO_ROOT / "eval" / "bbc" / "bulk" / "bulk.jsonl"

PAIRS_PER_QUESTION = 40  # other sentences paired with each answering one
# The fitted median stays this far under the answer budget: sets it was not fitted on
# (the held-out half, other archives) have longer or shorter sentences.
BUDGET_MARGIN = 30
# The reader reads this many of the ranker's best sentences, at ~4 ms each a question. In
# cross-validation 5 put the answering sentence first for 0.743 of the fitting half, 3 for
# 0.726 (0.619 without the reader); 2 for 0.708 keeps a warm question within 30 ms.
READER_CANDIDATES = 2
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
    asked: Question  # the question as the engine reads it
    # each side of a two-part question, asked on its own, and the candidates' features for it
    side_tables: list[tuple[str, SentenceTable]]
    reading: Reading | None = None  # what the reader said of the ranker's best candidates
    side_readings: list[Reading] = field(default_factory=list)  # and of each side's

    @property
    def side_values(self) -> list[np.ndarray]:
        return [table.values for _, table in self.side_tables]


def collect(
    questions: list[EvalQuestion], settings: Settings, question_set: str = ""
) -> list[Example]:
    from rag.engine import Engine

    engine = Engine(settings, auto_ingest=False, model=UNFITTED)
    examples = []
    for q in questions:
        asked = Question.read(q.question)
        found = engine.candidates(asked)
        if found is None:
            continue
        candidates, table = found
        corpus = candidates.corpus
        examples.append(
            Example(
                q,
                corpus,
                table.values,
                sentence_labels(q, corpus),
                table,
                corpus.sentence_doc,
                question_set,
                asked,
                engine.side_tables(candidates, asked),
            )
        )
    return examples


# Engine needs a scorer to start; fitting uses only its stores, model and analyzer.
def _zeros(names: tuple[str, ...]) -> Logistic:
    n = len(names)
    return Logistic(names, np.zeros(n), np.ones(n), np.zeros(n), 0.0)


UNFITTED = FittedModel(
    sentence=_zeros(SENTENCE_FEATURES),
    refusal=_zeros(EVIDENCE_FEATURES),
    refusal_threshold=0.5,
    compose=ComposeRules(1.01, 1.01),
    meta={},
)


def sentence_labels(q: EvalQuestion, corpus: Corpus) -> np.ndarray:
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


def fit_monotone_logistic(
    x: np.ndarray, y: np.ndarray, names: tuple[str, ...], signs: dict[str, int]
) -> Logistic:
    """A logistic regression whose weight on each feature has the sign ``signs`` gives it
    (+1: more of it never makes the answer less likely; -1: never more likely), classes
    balanced, L2 as scikit-learn's default (C = 1).

    Near misses name what the archive covers, so on them more of the question's words
    found goes with "unanswerable"; a free model learns that and, on a question about
    something the archive never mentions ("What did the Pope say…?"), reads the words
    it does not know as a sign that it answers."""
    from scipy.optimize import minimize

    mean, scale = _standardisation(x)
    z = (x - mean) / scale
    target = np.where(y, 1.0, -1.0)
    weight = np.where(y, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    sign = np.asarray([signs[n] for n in names], dtype=np.float64)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1] * sign, params[-1]
        margin = target * (z @ w + b)
        p = 1.0 / (1.0 + np.exp(margin))
        value = float((weight * np.logaddexp(0.0, -margin)).sum() + 0.5 * w @ w)
        step = -(weight * target * p)
        return value, np.r_[(z.T @ step + w) * sign, step.sum()]

    bounds = [(0.0, None)] * len(names) + [(None, None)]
    found = minimize(loss, np.zeros(len(names) + 1), jac=True, bounds=bounds, method="L-BFGS-B")
    return Logistic(names, mean, scale, found.x[:-1] * sign, float(found.x[-1]))


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


@dataclass(frozen=True)
class Scoring:
    """A sentence's logit: the ranker's, combined with the reader's when there is one."""

    sentence: Logistic
    reader: ReaderRules | None = None

    def logits(self, ex: Example) -> np.ndarray:
        logits = self.sentence.logits(ex.values)
        if self.reader is None or ex.reading is None:
            return logits
        return self.reader.combine(logits, ex.reading.rows, ex.reading.scores)


def top1_share(examples: list[Example], scoring: Scoring) -> float:
    """Share of answerable questions whose best-scored sentence holds a key fact."""
    hits = [ex.labels[int(np.argmax(scoring.logits(ex)))] for ex in examples]
    return float(np.mean(hits)) if hits else 0.0


def evidence_matrix(examples: list[Example], scoring: Scoring) -> np.ndarray:
    rows = []
    for ex in examples:
        logits = scoring.logits(ex)
        best = int(np.argmax(logits))
        reading = ex.reading if scoring.reader is not None else None
        rows.append(evidence_features(ex.table, logits, best, ex.corpus.sentence_doc, reading))
    return np.asarray(rows)


def answerable_probability(
    examples: list[Example], scoring: Scoring, refusal: Logistic
) -> np.ndarray:
    """Each question's probability that the evidence answers it, as the engine computes it:
    a question of two parts is answered when either part is."""
    p = sigmoid(refusal.logits(evidence_matrix(examples, scoring)))
    return np.asarray(
        [max([p[i], *side_probabilities(ex, scoring, refusal)]) for i, ex in enumerate(examples)]
    )


def side_probabilities(ex: Example, scoring: Scoring, refusal: Logistic) -> list[float]:
    """The probability that the evidence answers each side of a two-part question."""
    # Read as the question was (``read_examples`` reads both or neither); a question read
    # with fewer sides than it has fails the zip below rather than going unread.
    read = scoring.reader is not None and ex.reading is not None
    readings = ex.side_readings if read else [None] * len(ex.side_tables)
    docs = ex.corpus.sentence_doc
    return [
        judge(scoring.sentence.logits(t.values), t, docs, refusal, scoring.reader, reading)[1]
        for (_, t), reading in zip(ex.side_tables, readings, strict=True)
    ]


@dataclass(frozen=True)
class CompositionScore:
    """What the composition rules give on the answerable examples."""

    key_facts: float  # share of key facts quoted
    precision: float  # share of quotes from a gold article (every answerable question, as
    # if none were refused; the eval counts the answered ones)
    median_chars: float  # the longest median answer of the question sets

    @property
    def value(self) -> float:
        """Key facts and citation precision count alike: a further quote must find more
        than it misleads (a quote of another article that does not answer is cited to
        the user as a source)."""
        return self.key_facts + self.precision


def composition_score(
    examples: list[Example], scoring: Scoring, rules: ComposeRules
) -> CompositionScore:
    """The composed answers' key facts, citation precision and median length, quotation
    marks and [n] markers included; the longest median of the question sets counts (each
    set must keep within budget). Answers are chosen as the engine chooses them
    (``rag.compose.choose``): keyword searches, both sides of two-sided questions,
    "latest" and "how did it change" questions included."""
    found: list[float] = []
    precision: list[float] = []
    lengths: dict[str, list[int]] = {}
    max_quotes = get_settings().max_quotes
    for ex in examples:
        if not ex.question.answerable:
            continue
        rows = composed_rows(ex, scoring, rules, max_quotes)
        answer = normalize(" ".join(ex.corpus.sentences.texts[r] for r in rows))
        groups = ex.question.must_contain
        found.append(
            sum(any(normalize(a) in answer for a in g) for g in groups) / max(len(groups), 1)
        )
        gold = set(ex.question.gold_sources)
        precision.append(float(np.mean([str(ex.docs[r]) in gold for r in rows])))
        text, _ = compose(ex.corpus, rows, by_date=asks_how_it_changed(ex.asked.text))
        lengths.setdefault(ex.question_set, []).append(len(text))
    return CompositionScore(
        float(np.mean(found)),
        float(np.mean(precision)),
        max(float(statistics.median(v)) for v in lengths.values()),
    )


def composed_rows(ex: Example, scoring: Scoring, rules: ComposeRules, max_quotes: int) -> list[int]:
    """The sentence rows the engine would quote for ``ex`` under ``rules``."""
    logits = scoring.logits(ex)
    probs = sigmoid(logits)
    asked = ex.asked
    keyword_first(ex.corpus, ex.table.terms if asked.keywords else [], logits, probs)
    return choose(
        ex.corpus,
        probs,
        rules,
        max_quotes,
        sides=best_per_side(scoring.sentence, ex.side_values),
        latest=asks_for_latest(asked.text),
        changed=asks_how_it_changed(asked.text),
    )


def fit_reader_rules(examples: list[Example], sentence: Logistic, candidates: int) -> ReaderRules:
    """How much the reader counts beside the ranker: a logistic regression of "holds a key
    fact" on (ranker logit, reader logit) over every candidate of the answerable questions,
    a sentence the reader did not read counting as its lowest reading."""
    from sklearn.linear_model import LogisticRegression

    x, y = [], []
    for ex in examples:
        if ex.reading is None:
            continue
        logits = sentence.logits(ex.values)
        read = every_reading(len(logits), ex.reading.rows, ex.reading.scores)
        x.append(np.column_stack([logits, read]))
        y.append(ex.labels)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(np.concatenate(x), np.concatenate(y))
    (scorer, reader), bias = model.coef_[0], float(model.intercept_[0])
    return ReaderRules(candidates, round(float(scorer), 6), round(float(reader), 6), round(bias, 6))


def read_examples(examples: list[Example], reader: Reader, sentence: Logistic) -> None:
    """What the reader says of the ranker's best candidates for each question, and for
    each side of a two-part one, as the engine reads them."""
    for ex in examples:
        sentences, logits = ex.corpus.sentences, sentence.logits(ex.values)
        ex.reading = reader.read_best(ex.asked.text, sentences, logits, READER_CANDIDATES)
        ex.side_readings = [
            reader.read_best(side, sentences, sentence.logits(t.values), READER_CANDIDATES)
            for side, t in ex.side_tables
        ]


def fit(examples: list[Example], reader: Reader | None = None) -> FittedModel:
    """The ranker and the refusal model's weights learn from every fitting question; the
    refusal threshold and the composition rules only from the questions written like the
    reported sets (the bulk-written ones are easier: their threshold would refuse twice as
    many answerable questions of the held-out half). With the bulk-written near misses
    (120, unseen by the question adapter) the fitting half's refusals separated better in
    cross-validation (AUC 0.915 -> 0.927), the seeds' as well as before.

    ``reader``: it reads the ranker's ``READER_CANDIDATES`` best sentences of every fitting
    question (it learnt from other questions: ``rag.fit_reader``), and how much it counts
    is fitted before the refusal and the composition, which then read the combined logits.
    """
    answerable = [ex for ex in examples if ex.question.answerable]
    y = np.concatenate([ex.labels for ex in answerable])
    sentence = fit_ranker(answerable, SENTENCE_FEATURES)
    scoring = Scoring(sentence)
    if reader is not None:
        read_examples(examples, reader, sentence)
        scoring = Scoring(sentence, fit_reader_rules(answerable, sentence, READER_CANDIDATES))
    refusal = fit_monotone_logistic(
        evidence_matrix(examples, scoring),
        np.asarray([ex.question.answerable for ex in examples]),
        EVIDENCE_FEATURES,
        EVIDENCE_SIGNS,
    )
    examples = [ex for ex in examples if ex.question_set != BULK_SET.name]
    is_answerable = np.asarray([ex.question.answerable for ex in examples])
    p = answerable_probability(examples, scoring, refusal)
    threshold = float(np.quantile(p[is_answerable], FALSE_REFUSALS)) - 1e-6

    best_rules, best = ComposeRules(1.01, 1.01), CompositionScore(0.0, 0.0, 0.0)
    for same, other, quotes, chars in itertools.product(GRID, GRID, SAME_ARTICLE_QUOTES, MAX_CHARS):
        rules = ComposeRules(same, other, quotes, chars)
        score = composition_score(examples, scoring, rules)
        within = score.median_chars <= ANSWER_CHAR_BUDGET - BUDGET_MARGIN
        if within and (score.value, -score.median_chars) > (best.value, -best.median_chars):
            best_rules, best = rules, score
    refused = p < threshold
    meta = {
        "fitted": datetime.now(UTC).isoformat(timespec="seconds"),
        "questions": len(examples),
        "ranker_questions": len(answerable),
        "sentences": int(len(y)),
        "positive_sentences": int(y.sum()),
        "fitting_best_sentence_holds_key_fact": round(
            top1_share([ex for ex in examples if ex.question.answerable], scoring), 4
        ),
        "fitting_key_fact_recall": round(best.key_facts, 4),
        "fitting_citation_precision": round(best.precision, 4),
        "fitting_median_answer_chars": best.median_chars,
        "fitting_refused_answerable": round(float(refused[is_answerable].mean()), 4),
        "fitting_refused_unanswerable": round(float(refused[~is_answerable].mean()), 4),
    }
    return FittedModel(sentence, refusal, threshold, best_rules, meta, scoring.reader)


def index_corpus(corpus: Path, index_dir: Path, collection: str | None = None) -> Settings:
    """Settings of an index of ``corpus`` in ``index_dir`` (the collection `rag eval
    --index` builds), brought up to date first: once per process, however many of the
    fitting steps ask for it."""
    collection = collection or f"{get_settings().collection}-eval"
    return _indexed(corpus.resolve(), index_dir.resolve(), collection)


@cache
def _indexed(corpus: Path, index_dir: Path, collection: str) -> Settings:
    from rag.ingest import ingest_paths

    settings = get_settings().model_copy(update={"index_dir": index_dir, "collection": collection})
    log.warning("indexing %s into %s (only new or changed files)", corpus, index_dir)
    ingest_paths([corpus], settings, progress=sys.stderr.isatty())
    return settings


def fitting_parser(description: str, out: Path, seeds: bool = True) -> argparse.ArgumentParser:
    """The arguments every fitting step takes: where the archive and its index are (and
    the seeds set's index, with ``seeds``), and the file to write."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bbc-corpus", type=Path, default=REPO_ROOT.parent / "shared/corpora/bbc")
    parser.add_argument("--bbc-index", type=Path, default=REPO_ROOT / ".fit" / "bbc-index")
    if seeds:
        parser.add_argument("--seeds-index", type=Path, default=REPO_ROOT / ".fit" / "seeds-index")
    parser.add_argument("--out", type=Path, default=out)
    return parser


def fitting_examples(
    bbc_corpus: Path, bbc_index: Path, seeds_index: Path, collection: str | None = None
) -> list[Example]:
    """The fitting sets' questions asked of their indexes (brought up to date first): the
    seeds set over ``seeds/``, and the BBC fitting half and bulk-written questions over the
    archive when it is there."""
    sets = [(REPO_ROOT / "eval" / "questions.jsonl", REPO_ROOT / "seeds", seeds_index)]
    if bbc_corpus.is_dir():
        sets.append((REPO_ROOT / "eval" / "bbc" / "fit.jsonl", bbc_corpus, bbc_index))
        sets.append((BULK_SET, bbc_corpus, bbc_index))
    else:
        log.warning("no BBC archive at %s: fitting on the seeds set only", bbc_corpus)
    examples: list[Example] = []
    for questions, corpus, index_dir in sets:
        settings = index_corpus(corpus, index_dir, collection)
        examples += collect(load_questions(questions), settings, questions.name)
    return examples


def main(argv: list[str] | None = None) -> None:
    parser = fitting_parser(__doc__.split("\n\n")[0], DEFAULT_MODEL)
    parser.add_argument(
        "--reader",
        type=lambda v: None if v == "none" else Path(v),
        default=get_settings().reader_file,
        help="The fitted reader (`python -m rag.fit_reader`), or `none`.",
    )
    parser.add_argument(
        "--collection",
        default=f"{get_settings().collection}-eval",
        help="Collection of the indexes (default: the one `rag eval --index` builds).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    examples = fitting_examples(args.bbc_corpus, args.bbc_index, args.seeds_index, args.collection)
    reader = None
    if args.reader is not None:
        reader = Reader(get_settings().model_copy(update={"reader_file": args.reader}))
    model = fit(examples, reader)
    args.out.write_text(_dumps(model), encoding="utf-8")
    print(f"wrote {args.out}: {model.meta}")


def _dumps(model: FittedModel) -> str:
    import json

    return json.dumps(model.to_dict(), indent=1) + "\n"


if __name__ == "__main__":
    main()
