"""Answers over short, noisy web-style snippets: a stand-in for a corpus we do not have.

    python bench/snippets.py                       # the BBC held-out questions, 1,000 snippets
    python bench/snippets.py --set eval/bbc/fit.jsonl --out bench/out/snippets-fit

The issue's third corpus is about 1,000 noisy web news snippets with factoid questions. We
do not have it, so this makes the nearest thing from the archive (``../shared/corpora/bbc``):
one snippet of one to three sentences per article, with web noise, and the set's questions
that the snippets can answer (``rag.evaluation.snippets`` says how), then runs ``rag eval``
on it. The corpus, the questions, the index and the report go to ``bench/out/snippets/``.

It measures the engine on records of one to three sentences with noise around them, not
the other corpus's writing or questions. Nothing is fitted on it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.evaluation.runner import load_questions  # noqa: E402
from rag.evaluation.snippets import make_snippets  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, default=ROOT.parent / "shared/corpora/bbc")
    parser.add_argument("--set", type=Path, default=ROOT / "eval/bbc/heldout.jsonl")
    parser.add_argument("--snippets", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "snippets")
    args = parser.parse_args(argv)
    if not args.archive.is_dir():
        sys.exit(f"no archive at {args.archive}: this benchmark needs ../shared/corpora/bbc")

    questions = load_questions(args.set)
    snippets = make_snippets(args.archive, questions, args.snippets, args.seed)
    question_file = args.out / f"{args.set.stem}-snippets.jsonl"
    snippets.write(args.out / "corpus", question_file)
    answerable = sum(q.answerable for q in snippets.questions)
    print(
        f"{len(snippets.records)} snippets; {len(snippets.questions)} questions of "
        f"{len(questions)} ({answerable} answerable, {len(snippets.questions) - answerable} "
        f"unanswerable) -> {question_file}",
        flush=True,
    )
    command = [sys.executable, "-m", "rag.cli", "eval", "--corpus", str(args.out / "corpus")]
    command += ["--set", str(question_file), "--index", str(args.out / "index")]
    command += ["--out", str(args.out / "report"), "--no-baseline"]
    subprocess.run(command, check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
