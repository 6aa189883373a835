"""Measure duplicate and near-duplicate pairs in an archive to choose the MinHash threshold.

    .venv/bin/python bench/duplicates.py [/work/shared/corpora/bbc] [--threshold 0.5]

Ground truth: exact duplicates (same normalised text) and pairs whose exact Jaccard of
word 5-gram sets reaches a threshold, over all candidate pairs of a low-threshold LSH
(checked against an exact all-pairs computation). For thresholds 0.5..0.9 it prints the
recall of ``DuplicateIndex`` (LSH + estimated Jaccard), its false pairs, and finally
pairs near the chosen threshold so a human can judge them.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.duplicates import THRESHOLD, DuplicateIndex, jaccard, shingles, signature  # noqa: E402
from rag.sources import SourceRecord, clean_record, read_sources  # noqa: E402

Pair = tuple[str, str]


def clean_texts(corpus: Path) -> dict[str, str]:
    texts = {}
    for item in read_sources(corpus, corpus):
        if isinstance(item, SourceRecord):
            texts[item.doc_id] = clean_record(item).text
        else:
            print(f"skipped {item}")
    return texts


def exact_duplicate_pairs(texts: dict[str, str]) -> set[Pair]:
    groups: dict[str, list[str]] = {}
    for doc_id, text in texts.items():
        words = " ".join(re.findall(r"\w+", text.lower()))
        groups.setdefault(hashlib.sha1(words.encode()).hexdigest(), []).append(doc_id)
    return {p for g in groups.values() for p in itertools.combinations(sorted(g), 2)}


def candidate_pairs(texts: dict[str, str], threshold: float) -> set[Pair]:
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    sigs = {d: signature(t) for d, t in texts.items()}
    for doc_id, sig in sigs.items():
        lsh.insert(doc_id, sig)
    return {tuple(sorted((d, o))) for d, s in sigs.items() for o in lsh.query(s) if o != d}


def all_pairs_above(sets: dict[str, set[str]], threshold: float) -> set[Pair]:
    """Exact Jaccard of every pair through a sparse doc x shingle matrix."""
    from scipy.sparse import csr_matrix

    ids = list(sets)
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, doc_id in enumerate(ids):
        for g in sets[doc_id]:
            rows.append(i)
            cols.append(vocab.setdefault(g, len(vocab)))
    m = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)))
    inter = (m @ m.T).tocoo()
    sizes = np.asarray(m.sum(axis=1)).ravel()
    union = sizes[inter.row] + sizes[inter.col] - inter.data
    keep = (inter.row < inter.col) & (inter.data / union >= threshold)
    return {
        (ids[i], ids[j]) if ids[i] < ids[j] else (ids[j], ids[i])
        for i, j in zip(inter.row[keep], inter.col[keep], strict=True)
    }


def recall(found: set[Pair], true_pairs: set[Pair]) -> float:
    return len(found & true_pairs) / len(true_pairs) if true_pairs else 1.0


def histogram(values: list[float]) -> None:
    edges = np.arange(0.0, 1.01, 0.1)
    counts, _ = np.histogram(values, bins=edges)
    for lo, count in zip(edges, counts, strict=False):
        print(f"  {lo:.1f}-{lo + 0.1:.1f}  {count:6d}  {'#' * min(count, 60)}")


def index_pairs(texts: dict[str, str], threshold: float) -> set[Pair]:
    index = DuplicateIndex(threshold)
    for doc_id, text in texts.items():
        index.add(doc_id, text)
    return {tuple(sorted((d, o))) for d in index.doc_ids() for o, _ in index.duplicates_of(d)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=Path("/work/shared/corpora/bbc"))
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--candidates", type=float, default=0.2, help="low LSH threshold")
    args = parser.parse_args()

    started = time.perf_counter()
    texts = clean_texts(args.corpus)
    sets = {d: shingles(t) for d, t in texts.items()}
    print(f"{len(texts)} articles read and cleaned in {time.perf_counter() - started:.1f} s")

    exact = exact_duplicate_pairs(texts)
    candidates = candidate_pairs(texts, args.candidates)
    scores = {p: jaccard(sets[p[0]], sets[p[1]]) for p in candidates}
    print(f"\nexact duplicate pairs (same normalised text): {len(exact)}")
    print(f"candidate pairs from LSH at {args.candidates}: {len(candidates)}")
    print("exact Jaccard of candidate pairs:")
    histogram(list(scores.values()))
    truth = all_pairs_above(sets, 0.3)
    found = {p for p, j in scores.items() if j >= 0.3}
    print(
        f"all-pairs check: {len(truth)} pairs with Jaccard >= 0.3, "
        f"{len(truth & found)} of them among the candidates"
    )
    print(f"exact duplicates missing from the candidates: {len(exact - candidates)}")

    print("\n        pairs with exact J >= t     LSH at t alone    DuplicateIndex(t)")
    print("   t    all  exact-dup  near-dup    found  recall    found  recall  false")
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        true_pairs = {p for p, j in scores.items() if j >= t} | exact
        lsh = candidate_pairs(texts, t)
        got = index_pairs(texts, t)
        print(
            f"  {t:.1f}  {len(true_pairs):5d}  {len(exact):9d}  {len(true_pairs - exact):8d}"
            f"  {len(lsh):7d}  {recall(lsh, true_pairs):6.1%}"
            f"  {len(got):7d}  {recall(got, true_pairs):6.1%}  {len(got - true_pairs):5d}"
        )

    print(f"\n15 candidate pairs nearest the threshold {args.threshold}:")
    near = sorted(scores.items(), key=lambda s: abs(s[1] - args.threshold))[:15]
    for (a, b), j in sorted(near, key=lambda s: -s[1]):
        print(f"\nJ={j:.3f}  {a} / {b}")
        print(f"  {' '.join(texts[a][:100].split())}")
        print(f"  {' '.join(texts[b][:100].split())}")


if __name__ == "__main__":
    main()
