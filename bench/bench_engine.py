"""Engine benchmark: prints numbers, asserts nothing.

    .venv/bin/python bench/bench_engine.py [--rounds 3]

Measures, on copies of the seed articles in a fresh temporary index:
* ingest throughput next to the embedding model's raw throughput on the same texts;
* re-ingest of the unchanged seeds (in-process, and as a `rag ingest` process);
* warm `ask` latency p50/p95 over the eval questions;
* cold `rag ask` process time;
* peak RSS of this process and of a `rag ask` process.
Targets (2 cores): warm ask p50 <= 30 ms; cold `rag ask` <= 2 s; ingest >= 80% of the
model's raw throughput; unchanged re-ingest <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rag  # noqa: F401  (offline environment first)
from rag.components.embedding import load_embedding
from rag.documents import load_document
from rag.engine import Engine
from rag.ingest import collect_files, ingest_paths
from rag.settings import REPO_ROOT, Settings

QUESTIONS = REPO_ROOT / "eval" / "questions.jsonl"
CLI = [sys.executable, "-m", "rag.cli"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed_process(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def corpus_copies(settings: Settings, folder: Path, copies: int) -> Path:
    """The seeds, ``copies`` times under other names: enough text to amortise start-up."""
    folder.mkdir()
    for n in range(copies):
        for path in collect_files([settings.seeds_dir]):
            (folder / f"{path.stem}-{n}{path.suffix}").write_bytes(path.read_bytes())
    return folder


def bench_ingest(settings: Settings, corpus: Path) -> dict[str, float]:
    load_document(next(iter(collect_files([corpus]))), 256, 32)  # import llama-index, NLTK
    load_embedding(settings)  # and the model's shared library: one-off costs
    report = ingest_paths([corpus], settings, progress=False)
    docs = [
        load_document(p, settings.chunk_size, settings.chunk_overlap)
        for p in collect_files([corpus])
    ]
    texts = [c.text for d in docs for c in d.chunks] + [
        s.text for d in docs for s, _ in d.sentences
    ]
    model = load_embedding(settings)
    started = time.perf_counter()
    model.embed_documents(texts)
    raw_seconds = time.perf_counter() - started

    started = time.perf_counter()
    again = ingest_paths([corpus], settings, progress=False)
    reingest = time.perf_counter() - started
    assert again.added == 0
    return {
        "articles": report.files,
        "chunks": report.added,
        "texts_embedded": report.embedded_texts,
        "ingest_seconds": report.seconds,
        "ingest_chunks_per_s": report.added / report.seconds,
        "ingest_texts_per_s": report.embedded_texts / report.seconds,
        "model_texts_per_s": len(texts) / raw_seconds,
        "model_chunks_per_s_equiv": report.added / raw_seconds,
        "ingest_vs_model": raw_seconds / report.seconds,
        "reingest_unchanged_s": reingest,
    }


def bench_ask(settings: Settings, rounds: int) -> dict[str, float]:
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines()]
    engine = Engine(settings, auto_ingest=False)
    for q in questions[:5]:
        engine.ask(q)  # warm caches
    latencies = []
    for _ in range(rounds):
        for q in questions:
            started = time.perf_counter()
            engine.ask(q)
            latencies.append((time.perf_counter() - started) * 1000)
    return {
        "questions": len(latencies),
        "warm_ask_p50_ms": statistics.median(latencies),
        "warm_ask_p95_ms": percentile(latencies, 0.95),
    }


def bench_processes(settings: Settings) -> dict[str, float]:
    env = {**os.environ, "RAG_INDEX_DIR": str(settings.index_dir)}
    question = "What are Russia's stated conditions for talks?"
    runs = [timed_process([*CLI, "ask", question], env) for _ in range(3)]
    reingest = [timed_process([*CLI, "ingest", "-q"], env) for _ in range(3)]
    return {
        "cold_rag_ask_s": statistics.median(r[0] for r in runs),
        "rag_ask_peak_rss_mb": max(r[1] for r in runs),
        "cold_rag_ingest_unchanged_s": statistics.median(r[0] for r in reingest),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copies", type=int, default=4, help="Copies of the seeds to ingest.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        settings = Settings(index_dir=Path(tmp) / "index")
        corpus = corpus_copies(settings, Path(tmp) / "corpus", args.copies)
        seeds = Settings(index_dir=Path(tmp) / "seeds-index")
        # The seeds index is made and re-ingested by other processes before this one opens
        # it: an ingest does not write an index another process has open.
        timed_process([*CLI, "ingest", "-q"], {**os.environ, "RAG_INDEX_DIR": str(seeds.index_dir)})
        results = {
            **bench_ingest(settings, corpus),
            **bench_processes(seeds),
            **bench_ask(seeds, args.rounds),
            "bench_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    width = max(map(len, results))
    for key, value in results.items():
        print(
            f"{key:<{width}}  {value:,.3f}"
            if isinstance(value, float)
            else f"{key:<{width}}  {value}"
        )


if __name__ == "__main__":
    main()
