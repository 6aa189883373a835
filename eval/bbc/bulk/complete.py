"""Merge the bulk-written parts into ``bulk.jsonl``, listing every copy of each gold article.

    python eval/bbc/bulk/complete.py [--corpus ../shared/corpora/bbc]

The writers listed the article they read; the archive holds exact and near copies of some
stories, and a copy that answers must be gold too, or fitting would learn that its answering
sentence is a wrong one. Copies are found with the ingest's own near-duplicate index
(``rag.duplicates``) and kept when they hold every key fact. Questions whose key facts are
not verbatim in their article, or whose article is a copy of a held-out one, are dropped,
and said.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.duplicates import DuplicateIndex
from rag.evaluation.metrics import normalize

HERE = Path(__file__).parent
REPO = HERE.parents[2]


def eval_id(written: str) -> str:
    """ "b2-017" (part 2, question 17) -> "q52017", in the eval schema's id form."""
    part, number = written.removeprefix("b").split("-")
    return f"q{50000 + int(part) * 1000 + int(number)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared/corpora/bbc")
    args = parser.parse_args()
    texts = {
        p.stem: p.read_bytes().decode("utf-8", "replace") for p in sorted(args.corpus.glob("*.txt"))
    }
    index = DuplicateIndex()
    for doc_id, text in texts.items():
        index.add(doc_id, text)
    held_out = {
        g
        for line in (HERE.parent / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
        for g in json.loads(line)["gold_sources"]
    }
    kept, dropped = [], []
    for part in sorted(HERE.glob("part-*.jsonl")):
        for line in part.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            q = json.loads(line)
            q["id"] = eval_id(q["id"])
            if q["answerable"]:
                gold = list(dict.fromkeys(q["gold_sources"]))
                facts = [alt for group in q["must_contain"] for alt in group[:1]]
                if not all(normalize(f) in normalize(texts.get(gold[0], "")) for f in facts):
                    dropped.append(q["id"])
                    continue
                for copy, _ in index.duplicates_of(gold[0]):
                    if copy not in gold and all(
                        normalize(f) in normalize(texts[copy]) for f in facts
                    ):
                        gold.append(copy)
                if held_out & set(gold):  # a copy of a held-out article: not for fitting
                    dropped.append(q["id"])
                    continue
                q["gold_sources"] = gold
            kept.append(q)
    out = HERE / "bulk.jsonl"
    out.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in kept), "utf-8")
    print(f"wrote {out}: {len(kept)} questions; dropped: {dropped}")


if __name__ == "__main__":
    main()
