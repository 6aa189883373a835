"""Speed of the web app on this machine, against the targets in the issue.

Starts ``rag serve`` on a free loopback port with a fresh index of the seeds (or uses
--url), then measures:

- /api/ask latency, one user, warm (target: p50 <= 60 ms)
- first page paint in Debian's chromium after the server is ready (target: <= 2 s)
- 8 concurrent users x 20 questions: errors (target: 0), p95 (target: <= 5x the p50 above)
- server RSS after the load (target: <= 600 MB)

    python bench/bench_api.py [--url URL] [--users 8] [--questions 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ui.screenshots import LocalServer, launch_chromium, start_server  # noqa: E402

QUESTIONS_FILE = REPO / "eval" / "questions.jsonl"
TARGETS = {"p50_ms": 60.0, "first_paint_s": 2.0, "p95_over_p50": 5.0, "rss_mb": 600.0}


def questions() -> list[str]:
    rows = [json.loads(line) for line in QUESTIONS_FILE.read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows] or ["What are Russia's stated conditions for talks?"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed_ask(http: httpx.Client, question: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = http.post("/api/ask", json={"question": question})
    return (time.perf_counter() - started) * 1000, response.status_code


def single_user(url: str, asked: list[str], rounds: int) -> list[float]:
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as http:
        for q in asked[:5]:  # warm-up
            timed_ask(http, q)
        latencies = []
        for i in range(rounds):
            ms, status = timed_ask(http, asked[i % len(asked)])
            if status != 200:
                raise RuntimeError(f"/api/ask answered {status}")
            latencies.append(ms)
    return latencies


def concurrent_users(url: str, asked: list[str], users: int, each: int) -> tuple[list, int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def user(offset: int) -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=120, trust_env=False) as http:
            for i in range(each):
                try:
                    ms, status = timed_ask(http, asked[(offset * 7 + i) % len(asked)])
                except httpx.HTTPError:
                    ms, status = 0.0, 0
                with lock:
                    latencies.append(ms)
                    errors += status != 200

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


def first_paint_seconds(url: str) -> dict[str, float]:
    """Navigation start to first contentful paint, and to the chat's input being usable."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        started = time.perf_counter()
        page.goto(url)
        page.locator("#question textarea").wait_for(timeout=60_000)
        ready = time.perf_counter() - started
        fcp = page.evaluate(
            "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
        )
        browser.close()
    return {"first_contentful_paint_s": fcp / 1000, "chat_input_visible_s": ready}


def rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_mb": fields.get("VmRSS", -1.0), "peak_rss_mb": fields.get("VmHWM", -1.0)}


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def run(server_url: str, server: LocalServer | None, args: argparse.Namespace) -> dict:
    asked = questions()
    results: dict = {"ready_s": getattr(server, "ready_s", None)}
    results.update(first_paint_seconds(server_url))
    single = single_user(server_url, asked, args.rounds)
    p50 = statistics.median(single)
    results.update({"single_p50_ms": p50, "single_p95_ms": percentile(single, 95)})
    many, errors = concurrent_users(server_url, asked, args.users, args.questions)
    results.update(
        {
            "concurrent_requests": len(many),
            "concurrent_errors": errors,
            "concurrent_p50_ms": statistics.median(many),
            "concurrent_p95_ms": percentile(many, 95),
        }
    )
    if server is not None:
        results.update(rss_mb(server.process.pid))
    return results


def report(r: dict, users: int, each: int) -> None:
    ratio = r["concurrent_p95_ms"] / r["single_p50_ms"]
    lines = [
        f"server ready after          {r['ready_s'] or float('nan'):8.1f} s (model + index)",
        f"first contentful paint      {r['first_contentful_paint_s']:8.2f} s   "
        f"target <= {TARGETS['first_paint_s']} s  {verdict(r['first_contentful_paint_s'] <= 2)}",
        f"chat input visible          {r['chat_input_visible_s']:8.2f} s",
        f"/api/ask single user p50    {r['single_p50_ms']:8.1f} ms  "
        f"target <= {TARGETS['p50_ms']:.0f} ms {verdict(r['single_p50_ms'] <= TARGETS['p50_ms'])}",
        f"/api/ask single user p95    {r['single_p95_ms']:8.1f} ms",
        f"{users} users x {each} questions    {r['concurrent_requests']:8d} requests, "
        f"{r['concurrent_errors']} errors  {verdict(r['concurrent_errors'] == 0)}",
        f"  p50 {r['concurrent_p50_ms']:.1f} ms, p95 {r['concurrent_p95_ms']:.1f} ms = "
        f"{ratio:.2f}x single p50  target <= {TARGETS['p95_over_p50']:.0f}x  "
        f"{verdict(ratio <= TARGETS['p95_over_p50'])}",
    ]
    if "rss_mb" in r:
        lines.append(
            f"server RSS                  {r['rss_mb']:8.0f} MB (peak {r['peak_rss_mb']:.0f} MB)"
            f"  target <= {TARGETS['rss_mb']:.0f} MB  {verdict(r['peak_rss_mb'] <= 600)}"
        )
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Benchmark a running server instead of starting one.")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--questions", type=int, default=20, help="Questions per user.")
    parser.add_argument("--rounds", type=int, default=100, help="Single-user requests.")
    parser.add_argument("--json", type=Path, help="Also write the numbers here.")
    args = parser.parse_args()
    server = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        started = time.monotonic()
        server = start_server()
        server.ready_s = time.monotonic() - started  # type: ignore[attr-defined]
        url = server.url
    try:
        results = run(url, server, args)
    finally:
        if server is not None:
            server.stop()
    report(results, args.users, args.questions)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
