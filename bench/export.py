"""An archive export against the same texts as files, and answers with date filters.

    python bench/export.py                  # 1,000 BBC articles (../shared/corpora/bbc)
    python bench/export.py --articles 300   # a quick run
    python bench/export.py --without-model 10000   # 10,000 records, everything but the model

The same articles are written twice: as one JSON Lines export (one record per article,
with a title, a publisher and a publication date spread over 2024), and as one text file
each. Each is ingested by a fresh `rag ingest` process into a fresh index. Prints the
articles/s of both, then warm `ask` p50/p95 on the export's index over the BBC questions,
without a date range and with one (a quarter of the year, and an open-ended "since").

``--without-model N``: N records (the archive's articles repeated, each copy with its own id
and title) against N files, ingested in this process with a stand-in embedding that costs
next to nothing: the rate of everything an export adds or changes (reading, cleaning,
splitting, near duplicates, Chroma writes, BM25), at a size the model would take hours for.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

YEAR_START = date(2024, 1, 1)


def sample_articles(corpus: Path, size: int) -> list[Path]:
    files = sorted(corpus.glob("*.txt"))
    return random.Random(300).sample(files, min(size, len(files)))


def write_both(articles: list[Path], folder: Path) -> tuple[Path, Path]:
    """One export file and one folder of text files, holding the same article texts."""
    rng = random.Random(9)
    files = folder / "files"
    files.mkdir(parents=True)
    export = folder / "export" / "archive.jsonl"
    export.parent.mkdir()
    with export.open("w", encoding="utf-8") as out:
        for path in articles:
            text = path.read_bytes().decode("utf-8", "replace")
            (files / path.name).write_text(text, encoding="utf-8")
            title, _, body = text.partition("\n")
            record = {
                "id": path.stem,
                "title": title.strip(),
                "text": body.strip(),
                "published": (YEAR_START + timedelta(days=rng.randrange(366))).isoformat(),
                "publisher": "BBC News",
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return export, files


def ingest(source: Path, index: Path) -> float:
    env = {**os.environ, "RAG_INDEX_DIR": str(index), "RAG_CACHE_DIR": str(index / "cache")}
    cache = Path(os.environ.get("RAG_CACHE_DIR", Path.home() / ".cache" / "newsrag"))
    if (cache / "onnx").is_dir():  # the encoder is built once per machine, not timed
        shutil.copytree(cache / "onnx", index / "cache" / "onnx")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rag.cli", "ingest", "-q", str(source)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def warm_latency(index: Path, questions: list[str], **dates: str) -> tuple[float, float]:
    from rag.engine import Engine
    from rag.settings import get_settings

    settings = get_settings().model_copy(update={"index_dir": index, "cache_dir": index / "cache"})
    engine = Engine(settings, auto_ingest=False)
    engine.refresh(wait=True)
    for q in questions[:5]:
        engine.ask(q, **dates)
    times = []
    for q in questions:
        started = time.perf_counter()
        engine.ask(q, **dates)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


class TextHashEmbedding:
    """A stand-in model for bookkeeping timings: one pseudo-random unit vector per text."""

    name = "text-hash"
    dim = 384

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        rows = [
            np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.dim) for t in texts
        ]
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-6)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def repeated(articles: list[Path], size: int, folder: Path) -> list[Path]:
    """``size`` article files: the archive's, then copies with a new name and title."""
    folder.mkdir(parents=True)
    out = []
    for i in range(size):
        source = articles[i % len(articles)]
        text = source.read_bytes().decode("utf-8", "replace")
        if i >= len(articles):
            text = f"{text.partition(chr(10))[0].strip()} (edition {i // len(articles)})\n{text}"
        target = folder / f"{source.stem}_{i:05d}.txt"
        target.write_text(text, encoding="utf-8")
        out.append(target)
    return out


def without_model(corpus: Path, size: int) -> None:
    import rag.components.embedding
    from rag.ingest import ingest_paths
    from rag.settings import get_settings

    rag.components.embedding.load_embedding = lambda settings: TextHashEmbedding()
    folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        articles = repeated(sorted(corpus.glob("*.txt")), size, folder / "articles")
        export, files = write_both(articles, folder / "both")
        seconds = {}
        for label, source in (("export (JSONL)", export), ("files (.txt)", files)):
            index = folder / f"index-{label[:5]}"
            settings = get_settings().model_copy(
                update={"index_dir": index, "cache_dir": index / "cache"}
            )
            started = time.perf_counter()
            ingest_paths([source], settings, progress=False)
            seconds[label] = time.perf_counter() - started
            print(f"{label}: {seconds[label]:.1f} s = {size / seconds[label]:.1f} articles/s")
        ratio = seconds["files (.txt)"] / seconds["export (JSONL)"]
        print(f"{size} articles, stand-in embedding; export / files: {ratio:.2f}x the articles/s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "bbc")
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--without-model", type=int, metavar="N", help="See the module doc.")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"no archive at {args.corpus}")
    if args.without_model:
        without_model(args.corpus, args.without_model)
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        articles = sample_articles(args.corpus, args.articles)
        export, files = write_both(articles, folder)
        n = len(articles)
        as_export = ingest(export, folder / "index-export")
        as_files = ingest(files, folder / "index-files")
        print(f"{n} articles ({args.corpus})")
        print(f"export (JSONL): {as_export:.1f} s = {n / as_export:.2f} articles/s")
        print(f"files (.txt):   {as_files:.1f} s = {n / as_files:.2f} articles/s")
        print(f"export / files: {as_files / as_export:.2f}x the articles/s")
        questions = [
            json.loads(line)["question"]
            for name in ("fit.jsonl", "heldout.jsonl")
            for line in (ROOT / "eval" / "bbc" / name).read_text(encoding="utf-8").splitlines()
        ]
        index = folder / "index-export"
        for label, dates in (
            ("no date range", {}),
            ("since 2024-04-01 until 2024-06-30", {"since": "2024-04-01", "until": "2024-06-30"}),
            ("since 2024-07-01", {"since": "2024-07-01"}),
        ):
            p50, p95 = warm_latency(index, questions, **dates)
            print(f"warm ask, {label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({len(questions)} q)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
