"""Merge the parts writers wrote into one set, listing every copy of each gold article.

    python eval/bbc/complete.py bulk    # eval/bbc/bulk/part-*.jsonl -> bulk/bulk.jsonl
    python eval/bbc/complete.py train   # eval/bbc/train/part-*.jsonl -> train/train.jsonl

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
REPO = HERE.parents[1]
# The writers' id prefix of each set, where its ids start in the eval schema's form, and the
# sets whose gold articles (and their copies) it must not touch: the held-out half always;
# the question encoder's training set also the fitting half, on which its fit is checked.
SETS = {
    "bulk": ("b", 50000, ("heldout.jsonl",)),
    "train": ("t", 60000, ("heldout.jsonl", "fit.jsonl")),
}


def eval_id(written: str, prefix: str, first: int) -> str:
    """ "b2-017" (part 2, question 17) -> "q52017", in the eval schema's id form."""
    part, number = written.removeprefix(prefix).split("-")
    return f"q{first + int(part) * 1000 + int(number)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", choices=sorted(SETS))
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared/corpora/bbc")
    args = parser.parse_args()
    prefix, first, untouchable = SETS[args.set]
    folder = HERE / args.set
    texts = {
        p.stem: p.read_bytes().decode("utf-8", "replace") for p in sorted(args.corpus.glob("*.txt"))
    }
    index = DuplicateIndex()
    for doc_id, text in texts.items():
        index.add(doc_id, text)
    held_out = {
        g
        for name in untouchable
        for line in (HERE / name).read_text(encoding="utf-8").splitlines()
        for g in json.loads(line)["gold_sources"]
    }
    kept, dropped = [], []
    for part in sorted(folder.glob("part-*.jsonl")):
        for line in part.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            q = json.loads(line)
            q["id"] = eval_id(q["id"], prefix, first)
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
                if held_out & set(gold):  # a copy of an article it must not touch
                    dropped.append(q["id"])
                    continue
                q["gold_sources"] = gold
            kept.append(q)
    out = folder / f"{args.set}.jsonl"
    out.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in kept), "utf-8")
    print(f"wrote {out}: {len(kept)} questions; dropped: {dropped}")


if __name__ == "__main__":
    main()
