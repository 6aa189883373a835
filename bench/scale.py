"""How start-up, latency and memory grow with the corpus: 2k, 20k and 100k articles.

    python bench/scale.py [--source bench/out/archive/index] [--sizes 20000 100000]

The larger indexes are built without the model: the BBC index that ``bench/archive.py``
made is replicated with new article ids and slightly perturbed vectors, written through
the store layer (``IndexStore.add_rows`` / ``commit_documents``), then published the way
ingest does (corpus version, BM25 index). Each index is then measured in fresh
processes: cold ``rag ask`` (imports, model, stores), warm ``ask`` p50/p95 over the BBC
questions, and the peak RSS of the process that asked them. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTION_SETS = [ROOT / "eval" / "bbc" / "fit.jsonl", ROOT / "eval" / "bbc" / "heldout.jsonl"]
NOISE = 0.02  # std of the noise added to each vector coordinate before renormalising


def settings_for(index_dir: Path):  # noqa: ANN201
    from rag.settings import Settings

    return Settings(
        _env_file=None, index_dir=index_dir, cache_dir=index_dir / "cache", reload_seconds=0
    )


def replicate(source: Path, target: Path, articles: int) -> dict[str, float]:
    """Write ``articles`` articles into ``target``: copies of ``source``'s, perturbed."""
    import rag  # noqa: F401  (offline environment)
    from rag.ingest import fingerprint, publish
    from rag.store import IndexStore, Rows, pack_vectors, unpack_vectors

    src = IndexStore(settings_for(source))
    dst_settings = settings_for(target)
    dst = IndexStore(dst_settings)
    records = src.document_records()
    texts = {
        doc_id: text
        for rows in src.scan(src.documents, include=["documents"])
        for doc_id, text in zip(rows.ids, rows.texts, strict=True)
    }
    rng = np.random.default_rng(0)
    copies = -(-articles // len(records))
    index_of = {doc: i for i, doc in enumerate(sorted(records))}

    def wanted(copy: int, doc: str) -> bool:
        return copy * len(records) + index_of[doc] < articles

    started = time.perf_counter()
    written = 0
    dst.write_version(fingerprint(dst_settings))
    generation = dst.next_generation()
    for rows in src.scan(src.chunks, include=["documents", "metadatas", "embeddings"]):
        for k in range(copies):
            ids, metas, keep = [], [], []
            for n, (cid, meta) in enumerate(zip(rows.ids, rows.metadatas, strict=True)):
                doc, rest = cid.split(":", 1)
                if not wanted(k, doc):
                    continue
                keep.append(n)
                new_doc = doc if k == 0 else f"{doc}~{k}"
                ids.append(f"{new_doc}:{rest}")
                meta = {**meta, "doc_id": new_doc}
                if k and meta["sentence_vectors"]:
                    entries = json.loads(meta["sentences"])
                    scales = [e[4] for e in entries]
                    vectors = _perturb(unpack_vectors(meta["sentence_vectors"], scales, 384), rng)
                    packed, new_scales = pack_vectors(vectors)
                    for entry, scale in zip(entries, new_scales, strict=True):
                        entry[4] = scale
                    meta["sentences"] = json.dumps(entries, ensure_ascii=False)
                    meta["sentence_vectors"] = packed
                metas.append(meta)
            if not ids:
                continue
            vectors = rows.embeddings[keep]
            vectors = vectors if k == 0 else _perturb(vectors, rng)
            dst.add_rows(dst.chunks, Rows(ids, [rows.texts[n] for n in keep], metas, vectors))
        # Records are committed once all their chunks are written: after the scan.
    from dataclasses import replace

    for k in range(copies):
        batch, batch_texts = [], []
        for doc_id, record in records.items():
            if not wanted(k, doc_id):
                continue
            new_doc = doc_id if k == 0 else f"{doc_id}~{k}"
            batch.append(replace(record, doc_id=new_doc, generation=generation))
            batch_texts.append(texts[doc_id])
            written += 1
        for i in range(0, len(batch), 2000):
            dst.commit_documents(batch[i : i + 2000], batch_texts[i : i + 2000])
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    publish(dst, dst_settings, removed=False)
    return {"write_s": wrote, "bm25_s": time.perf_counter() - started, "articles": written}


def _perturb(vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = vectors + rng.normal(0, NOISE, vectors.shape).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def measure(index_dir: Path) -> dict[str, float]:
    """In this process: engine start, warm latency over the BBC questions, peak RSS."""
    import rag  # noqa: F401
    from rag.engine import Engine

    questions = [
        json.loads(line)["question"]
        for path in QUESTION_SETS
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    started = time.perf_counter()
    engine = Engine(settings_for(index_dir), auto_ingest=False)
    start_s = time.perf_counter() - started
    questions = questions[:80]
    for q in questions[:10]:
        engine.ask(q)
    latencies = []
    for q in questions:
        t = time.perf_counter()
        engine.ask(q)
        latencies.append((time.perf_counter() - t) * 1000)
    return {
        "engine_start_s": start_s,
        "p50_ms": statistics.median(latencies),
        "p95_ms": float(np.percentile(latencies, 95)),
        "rss_mb": peak_rss_mb(),
        "questions": len(latencies),
    }


def peak_rss_mb() -> float:
    """This process's peak RSS. Not ``ru_maxrss``: Linux carries it over fork and exec, so
    a child of the process that built a 100k index would report the builder's peak."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cold_ask(index_dir: Path, runs: int = 3) -> float:
    """Median seconds of a whole `rag ask` process."""
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "RAG_CACHE_DIR": str(index_dir)}
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rag.cli", "ask", "Who bought the Leeds United ground?"],
            env=env,
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT / "bench" / "out" / "archive" / "index")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "scale")
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000, 100_000])
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    if not (args.source / "chroma.sqlite3").exists():
        sys.exit(f"no index at {args.source}: run `python bench/archive.py` first")
    rows = [("2k (the archive)", args.source, {})]
    for size in args.sizes:
        target = args.out / f"{size}"
        if not (target / "chroma.sqlite3").exists():
            print(f"building {size:,} articles in {target} …", flush=True)
            rows.append((f"{size // 1000}k", target, replicate(args.source, target, size)))
        else:
            rows.append((f"{size // 1000}k", target, {}))
    print(f"{'index':<18}{'cold ask s':>11}{'start s':>9}{'p50 ms':>8}{'p95 ms':>8}{'RSS MB':>8}")
    for label, index_dir, built in rows:
        done = subprocess.run(
            [sys.executable, __file__, "--measure", str(index_dir)],
            check=True,
            capture_output=True,
            text=True,
        )
        m = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{label:<18}{cold_ask(index_dir):>11.2f}{m['engine_start_s']:>9.2f}"
            f"{m['p50_ms']:>8.1f}{m['p95_ms']:>8.1f}{m['rss_mb']:>8.0f}"
            + (f"   (built: {built})" if built else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()
