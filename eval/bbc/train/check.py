"""Check a part of the training questions before it is merged.

    python eval/bbc/train/check.py eval/bbc/train/part-1.jsonl

Prints one line per problem and exits 1 when there is one:

* a line that is not a question in the eval schema (``rag.evaluation.runner.Question``,
  with the writers' ``t<part>-<n>`` ids);
* an id used twice, or a gold article that is not one of the part's articles;
* a key fact (each alternative of each ``must_contain`` group) that is not verbatim in
  the gold article;
* more than ``MOST_COPIED`` of the questions copying their article: sharing a run of
  ``COPIED_WORDS`` words with it (readers paraphrase; a question that repeats the
  sentence teaches word matching only). Each such question is listed as a warning: a
  long name ("Bank of England deputy governor") may be shared.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from rag.evaluation.metrics import normalize  # noqa: E402
from rag.evaluation.runner import Question  # noqa: E402

COPIED_WORDS = 5
MOST_COPIED = 0.2
_WORD = re.compile(r"[\w'’£$€%.-]+")


def word_runs(text: str, n: int) -> set[tuple[str, ...]]:
    words = [w.strip(".'’-").casefold() for w in _WORD.findall(text)]
    words = [w for w in words if w]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def check(part: Path, corpus: Path) -> tuple[list[str], list[str]]:
    """(problems, warnings) of one part."""
    listed = HERE / part.name.replace("part-", "articles-").replace(".jsonl", ".txt")
    articles = (
        {s for s in listed.read_text(encoding="utf-8").split() if s.startswith("bbc_")}
        if listed.exists()
        else None
    )
    problems: list[str] = []
    warnings: list[str] = []
    seen: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for n, line in enumerate(part.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            written_id = raw.get("id", "")
            if not re.fullmatch(r"t\d-\d{3,}", written_id):
                problems.append(f"line {n}: id {written_id!r} is not t<part>-<number>")
            q = Question.model_validate({**raw, "id": "q000"})
        except Exception as exc:  # noqa: BLE001 - report every bad line
            problems.append(f"line {n}: {exc}".replace("\n", " "))
            continue
        seen[written_id] += 1
        kinds[q.kind] += 1
        for gold in q.gold_sources:
            if articles is not None and gold not in articles:
                problems.append(f"line {n} ({written_id}): {gold} is not one of {listed.name}")
            path = corpus / f"{gold}.txt"
            if not path.exists():
                problems.append(f"line {n} ({written_id}): no article {gold}")
                continue
            text = path.read_bytes().decode("utf-8", "replace")
            plain = normalize(text)
            for group in q.must_contain:
                for alt in group:
                    if normalize(alt) not in plain:
                        problems.append(
                            f"line {n} ({written_id}): key fact {alt!r} is not verbatim in {gold}"
                        )
            copied = word_runs(q.question, COPIED_WORDS) & word_runs(text, COPIED_WORDS)
            if copied:
                run = " ".join(sorted(copied)[0])
                warnings.append(f"line {n} ({written_id}): copies {run!r} from {gold}")
    problems += [f"id {i} is used {c} times" for i, c in seen.items() if c > 1]
    total = sum(kinds.values())
    print(f"{part.name}: {total} questions {dict(sorted(kinds.items()))}; {len(warnings)} copy")
    if warnings and len(warnings) > MOST_COPIED * total:
        problems.append(
            f"{len(warnings)} of {total} questions copy {COPIED_WORDS} words from their article"
            f" (at most {MOST_COPIED:.0%}): reword them"
        )
    return problems, warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="+", type=Path)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared/corpora/bbc")
    args = parser.parse_args()
    problems: list[str] = []
    for part in args.parts:
        errors, warnings = check(part, args.corpus)
        print("\n".join(f"warning: {w}" for w in warnings))
        problems += errors
    print("\n".join(problems) or "no problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
