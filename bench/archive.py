"""Index a real archive and ask it questions: the figures of the archive-scale issue.

    python bench/archive.py                 # the whole BBC archive (../shared/corpora/bbc)
    python bench/archive.py --slice 300     # 300 of its articles, for a quick run

Prints: ingest wall time, articles/s and tokens/s of `rag ingest` (a fresh process on a
fresh index, with its peak RSS) next to the embedding model alone on the same texts;
adding 10 new articles to that index; cold `rag ask`; `rag serve` until /api/health
answers; warm `ask` p50/p95 over the BBC questions and the peak RSS of that process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout + done.stderr


def articles_of(corpus: Path, size: int | None) -> Path:
    """The corpus folder, or a folder of links to a seeded sample of its articles."""
    if size is None:
        return corpus
    files = sorted(corpus.glob("*.txt"))
    chosen = random.Random(300).sample(files, min(size, len(files)))
    folder = Path(tempfile.mkdtemp(prefix="archive-slice-"))
    for f in chosen:
        (folder / f.name).symlink_to(f)
    return folder


def model_alone(folder: Path, sample: int) -> dict[str, float]:
    """The embedding model on (a sample of) the texts ingest embeds: each sentence, and each
    sentence after its article's title."""
    import rag  # noqa: F401
    from rag.components.embedding import load_embedding
    from rag.documents import UnreadableFileError, load_document
    from rag.settings import get_settings

    settings = get_settings()
    sentences = []
    for path in sorted(folder.glob("*.txt")):
        try:
            doc = load_document(path, settings.chunk_size, settings.chunk_overlap)
        except UnreadableFileError:
            continue
        sentences += [s.text for s, _ in doc.sentences]
        sentences += [t for t in doc.titled_sentences() if t is not None]
    total = len(sentences)
    texts = random.Random(0).sample(sentences, min(sample, total))
    model = load_embedding(settings)
    tokens = sum(_token_count(model, t) for t in texts)
    started = time.perf_counter()
    model.embed_documents(texts)
    seconds = time.perf_counter() - started
    return {
        "texts": total,
        "texts_per_s": len(texts) / seconds,
        "tokens_per_s": tokens / seconds,
        "tokens_per_text": tokens / len(texts),
    }


def _token_count(model: object, text: str) -> int:
    counter = getattr(model, "token_count", None)
    return counter(text) if counter else len(text.split())


def add_ten(corpus: Path, env: dict[str, str]) -> tuple[float, str]:
    """Ingest 10 new articles (edited copies of archive articles, new names)."""
    folder = Path(tempfile.mkdtemp(prefix="archive-new-"))
    for i, path in enumerate(sorted(corpus.glob("*.txt"))[:10]):
        text = path.read_bytes().decode("utf-8", "replace")
        (folder / f"new_{i:02d}.txt").write_text(
            text + f"\nUpdate {i}: the story was revised on publication day.\n", encoding="utf-8"
        )
    try:
        return run([sys.executable, "-m", "rag.cli", "ingest", "-q", str(folder)], env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def serve_ready(env: dict[str, str]) -> float:
    from ui.screenshots import free_port

    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - started < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1):
                    return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("rag serve did not get ready in 120 s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "bbc")
    parser.add_argument("--slice", type=int, default=None, help="Only this many articles.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "archive")
    parser.add_argument("--model-sample", type=int, default=4000, help="Sentences timed.")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"no archive at {args.corpus}")
    index = args.out / "index" if args.slice is None else args.out / f"index-{args.slice}"
    shutil.rmtree(index, ignore_errors=True)
    env = {
        **os.environ,
        "RAG_INDEX_DIR": str(index),
        "RAG_CACHE_DIR": str(index / "cache"),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    folder = articles_of(args.corpus, args.slice)
    articles = len(list(folder.glob("*.txt")))

    seconds, output = run([sys.executable, "-m", "rag.cli", "ingest", "-q", str(folder)], env)
    ingest_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    model = model_alone(folder, args.model_sample)
    tokens = model["texts"] * model["tokens_per_text"]
    print(f"archive: {articles} articles ({args.corpus})")
    print(f"ingest: {output.strip().splitlines()[-1]}")
    print(
        f"ingest: {seconds:.1f} s = {articles / seconds:.2f} articles/s, "
        f"{tokens / seconds:,.0f} tokens/s (≈{tokens:,.0f} tokens in "
        f"{model['texts']:,} texts embedded); peak RSS {ingest_rss:.0f} MB"
    )
    print(
        f"model alone: {model['texts_per_s']:.1f} texts/s, "
        f"{model['tokens_per_s']:,.0f} tokens/s  → ingest runs at "
        f"{tokens / seconds / model['tokens_per_s']:.0%} of the model alone"
    )
    add_seconds, add_output = add_ten(args.corpus, env)
    print(f"add 10 articles: {add_seconds:.1f} s ({add_output.strip().splitlines()[-1]})")
    cold = [run([sys.executable, "-m", "rag.cli", "ask", "Who bought Leeds?"], env)[0]]
    cold += [run([sys.executable, "-m", "rag.cli", "ask", "Who bought Leeds?"], env)[0]]
    cold += [run([sys.executable, "-m", "rag.cli", "ask", "Who bought Leeds?"], env)[0]]
    print(f"cold `rag ask`: median {statistics.median(cold):.2f} s of {len(cold)}")
    print(f"`rag serve` ready: {serve_ready(env):.2f} s")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "--measure", str(index)],
        capture_output=True,
        text=True,
        check=True,
    )
    warm = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"warm ask over {warm['questions']} questions: p50 {warm['p50_ms']:.1f} ms, "
        f"p95 {warm['p95_ms']:.1f} ms; engine start {warm['engine_start_s']:.2f} s; "
        f"RSS {warm['rss_mb']:.0f} MB"
    )
    if folder != args.corpus:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
