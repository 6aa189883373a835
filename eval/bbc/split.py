"""Split the BBC archive questions once into a fitting half and a held-out half.

    python eval/bbc/split.py   # writes eval/bbc/fit.jsonl and eval/bbc/heldout.jsonl

Questions were written from the articles of ``sample.txt`` (a seeded random sample of
the archive) into ``part1.jsonl`` and ``part2.jsonl``. Questions about the same sampled
article go to the same half, so nothing fitted has seen the held-out articles' wording;
unanswerable questions are split at random. Kinds are balanced between the halves.
Run once: anything fitted (``make fit``) reads only ``fit.jsonl`` (and the seeds set);
``heldout.jsonl`` is reported, never tuned on.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
SEED = 20261125


def main() -> None:
    questions = [
        json.loads(line)
        for part in ("part1.jsonl", "part2.jsonl")
        for line in (HERE / part).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    sample = [
        s for s in (HERE / "sample.txt").read_text(encoding="utf-8").split() if s.startswith("bbc_")
    ]
    rng = random.Random(SEED)
    halves: dict[str, list[dict]] = {"fit": [], "heldout": []}
    # Group by the sampled article a question was written from (its first sampled gold).
    groups: dict[str, list[dict]] = defaultdict(list)
    for q in questions:
        article = next((g for g in q["gold_sources"] if g in sample), None)
        groups[article or q["id"]].append(q)
    keys = sorted(groups)
    rng.shuffle(keys)
    for key in keys:
        smaller = min(halves, key=lambda h: (len(halves[h]), h))
        halves[smaller].extend(groups[key])
    for name, qs in halves.items():
        qs.sort(key=lambda q: q["id"])
        text = "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in qs)
        (HERE / f"{name}.jsonl").write_text(text, encoding="utf-8")
        kinds = defaultdict(int)
        for q in qs:
            kinds[q["kind"]] += 1
        print(name, len(qs), dict(sorted(kinds.items())))


if __name__ == "__main__":
    main()
