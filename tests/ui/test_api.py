"""HTTP: /api/ask, errors, CORS and framing policy, /embed.js, the Gradio API endpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ui.screenshots import EXAMPLE_QUESTION, HostPage, LocalServer

pytestmark = pytest.mark.slow

OTHER_ORIGIN = "http://127.0.0.1:9"  # never allowed
ANSWER_KEYS = {
    *["question", "answer", "refused", "citations", "passages", "timings_ms"],
    *["confidence", "weak_evidence", "standalone_question"],
}


@pytest.fixture(scope="module")
def client(server: LocalServer) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=60, trust_env=False) as http:
        yield http


def cli_answer(server: LocalServer, question: str) -> dict:
    """``rag ask --json`` against the same index the server uses, embedding the question on
    the server's runtime (a one-shot `rag ask` would use the C engine: passage scores then
    differ in the fourth decimal)."""
    env = {
        **os.environ,
        "RAG_INDEX_DIR": str(server.workdir / "index"),
        "RAG_QUERY_RUNTIME": "int8",
    }
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", "--json", question],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("{"))
    return json.loads(line)


def without_timings(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "timings_ms"}


def test_ask_returns_the_cli_json_object(client: httpx.Client, server: LocalServer) -> None:
    response = client.post("/api/ask", json={"question": EXAMPLE_QUESTION})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert set(answer) == ANSWER_KEYS
    assert without_timings(answer) == without_timings(cli_answer(server, EXAMPLE_QUESTION))
    assert set(answer["timings_ms"]) == {"retrieve", "answer", "total"}
    assert any(c["doc_id"].startswith("003_") for c in answer["citations"])


def test_citation_quote_is_the_exact_file_span(client: httpx.Client) -> None:
    answer = client.post("/api/ask", json={"question": EXAMPLE_QUESTION}).json()
    for citation in answer["citations"]:
        article = client.get(f"/article/{citation['doc_id']}").text
        assert citation["doc_id"]
        with open(_repo_path(citation["source"]), encoding="utf-8") as f:
            assert f.read()[citation["start"] : citation["end"]] == citation["quote"]
        assert "<h1>" in article


def test_article_endpoint_gives_the_text_citations_index_into(client: httpx.Client) -> None:
    answer = client.post("/api/ask", json={"question": EXAMPLE_QUESTION}).json()
    for citation in answer["citations"]:
        assert {"published", "url", "publisher", "also_in"} <= set(citation)
        article = client.get(f"/api/articles/{citation['doc_id']}")
        assert article.status_code == 200
        body = article.json()
        assert body["doc_id"] == citation["doc_id"] and "published" in body
        assert body["text"][citation["start"] : citation["end"]] == citation["quote"]
    missing = client.get("/api/articles/no-such-article")
    assert missing.status_code == 404 and "unknown article" in missing.json()["detail"]


def test_ask_date_range(client: httpx.Client) -> None:
    bridge = "What happened to the Harbour bridge in Port Elling?"
    ok = client.post("/api/ask", json={"question": bridge, "since": "2024-11-01", "until": None})
    assert ok.status_code == 200  # only the November report is dated in range
    assert {c["doc_id"] for c in ok.json()["citations"]} == {"harbour-2024-11"}
    bad = client.post("/api/ask", json={"question": EXAMPLE_QUESTION, "since": "2024-13-01"})
    assert bad.status_code == 400 and "ISO date" in bad.json()["detail"]


def _repo_path(source: str) -> str:
    from rag.settings import REPO_ROOT

    return source if os.path.isabs(source) else str(REPO_ROOT / source)


def test_top_k_and_history(client: httpx.Client) -> None:
    body = {
        "question": "And what does Kyiv demand?",
        "top_k": 3,
        "history": [
            {"role": "user", "content": EXAMPLE_QUESTION},
            {"role": "assistant", "content": "Peskov said [1]."},
        ],
    }
    response = client.post("/api/ask", json=body)
    assert response.status_code == 200
    assert len(response.json()["passages"]) <= 3
    searched = "What does Kyiv demand (stated conditions for talks)?"
    assert response.json()["standalone_question"] == searched
    alone = client.post("/api/ask", json={"question": EXAMPLE_QUESTION}).json()
    assert alone["standalone_question"] is None


def test_unanswerable_question_is_a_refusal(client: httpx.Client) -> None:
    answer = client.post("/api/ask", json={"question": "Who won the 1986 World Cup?"}).json()
    assert answer["refused"] is True and answer["citations"] == []
    assert "don't say" in answer["answer"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"question": ""}, 400),
        ({"question": "   \n\t "}, 400),
        ({"question": "x" * 2001}, 400),
        ({}, 422),
        ({"question": 42}, 422),
        ({"question": "Why?", "top_k": 0}, 422),
        ({"question": "Why?", "top_k": "many"}, 422),
        ({"question": "Why?", "history": [{"role": "robot", "content": "x"}]}, 422),
        ({"question": "Why?", "surprise": True}, 422),
        ({"question": "Why?", "doc_ids": ["no-such-article"]}, 400),
    ],
)
def test_bad_requests_get_json_errors(client: httpx.Client, body: dict, status: int) -> None:
    response = client.post("/api/ask", json=body)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["detail"]


def test_bad_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/api/ask", content=b'{"question": "Why?"', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "the body is not valid JSON"}


def test_json_sent_as_plain_text_is_400_saying_which_header(client: httpx.Client) -> None:
    response = client.post(
        "/api/ask", content=b'{"question": "Why?"}', headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400
    assert "Content-Type: application/json" in response.json()["detail"]


def test_oversized_body_is_413(client: httpx.Client) -> None:
    response = client.post("/api/ask", json={"question": "Why? " * 20_000})
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_oversized_chunked_body_is_413(client: httpx.Client) -> None:
    def chunks():  # no content-length: the limit is counted as the body arrives
        yield b'{"question": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(
        "/api/ask", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_health_sources_and_openapi(client: httpx.Client) -> None:
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["articles"] == len(client.get("/api/sources").json()) == 9
    schema = client.get("/api/openapi.json").json()
    assert {"/api/ask", "/api/health", "/api/sources"} <= set(schema["paths"])
    ask = schema["paths"]["/api/ask"]["post"]
    assert {"200", "400", "413", "422"} <= set(ask["responses"])
    assert client.get("/docs").status_code == 404 or "swagger" not in client.get("/docs").text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/ask", "POST"),  # an API route opened in a browser
        ("PUT", "/api/ask", "POST"),
        ("POST", "/api/health", "GET"),
        ("DELETE", "/api/articles/003_042faa28e221901a", "GET"),
    ],
)
def test_a_method_a_route_does_not_take_is_405_saying_which_it_does(
    client: httpx.Client, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["detail"] == f"{method} is not allowed on {path}; use {allowed}"


def test_an_unknown_api_route_is_a_json_404(client: httpx.Client) -> None:
    response = client.get("/api/answers")
    assert response.status_code == 404
    assert "/api/openapi.json" in response.json()["detail"]
    assert client.get("/").status_code == 200  # the chat, mounted at "/", is not shadowed


def test_concurrent_users_all_get_answers(client: httpx.Client) -> None:
    questions = [EXAMPLE_QUESTION, "Where did Zelensky meet Lloyd Austin?"] * 12

    def ask(question: str) -> tuple[int, str]:
        response = client.post("/api/ask", json={"question": question})
        return response.status_code, response.json()["question"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(ask, questions))
    assert results == [(200, q) for q in questions]


# --- cross-origin policy ----------------------------------------------------------------------


def test_cors_preflight_granted_to_the_allowed_origin(
    client: httpx.Client, host_page: HostPage
) -> None:
    for path in ("/api/ask", "/widget/gradio_api/queue/join"):
        response = client.options(
            path,
            headers={
                "Origin": host_page.origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == host_page.origin


def test_cors_denied_to_other_origins(client: httpx.Client) -> None:
    preflight = client.options(
        "/api/ask",
        headers={"Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    for path in ("/api/health", "/widget/config", "/embed.js", "/config"):
        response = client.get(path, headers={"Origin": OTHER_ORIGIN})
        assert "access-control-allow-origin" not in response.headers, path
    post = client.post(
        "/api/ask", json={"question": EXAMPLE_QUESTION}, headers={"Origin": OTHER_ORIGIN}
    )
    assert "access-control-allow-origin" not in post.headers


def test_simple_requests_from_the_allowed_origin(client: httpx.Client, host_page: HostPage) -> None:
    for path in ("/api/health", "/widget/config", "/embed.js"):
        response = client.get(path, headers={"Origin": host_page.origin})
        assert response.headers.get("access-control-allow-origin") == host_page.origin, path


def test_frame_ancestors_match_the_allowlist(client: httpx.Client, host_page: HostPage) -> None:
    for path in ("/", "/widget/", "/article/003_042faa28e221901a", "/api/health"):
        response = client.get(path)
        policy = response.headers["content-security-policy"]
        ancestors = re.search(r"frame-ancestors ([^;]+)", policy).group(1).split()
        assert ancestors == ["'self'", host_page.origin], path
        assert "x-frame-options" not in response.headers


def test_article_view_has_no_script_and_marks_the_span(client: httpx.Client) -> None:
    response = client.get("/article/003_042faa28e221901a", params={"start": 664, "end": 833})
    assert response.status_code == 200
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert '<mark id="quote">' in response.text and "<script" not in response.text
    assert client.get("/article/no-such-article").status_code == 404
    out_of_range = client.get("/article/003_042faa28e221901a", params={"start": 5, "end": 10**9})
    assert out_of_range.status_code == 200 and "<mark" not in out_of_range.text


# --- embedding --------------------------------------------------------------------------------


def test_embed_js_is_stable_and_loads_the_local_web_component(client: httpx.Client) -> None:
    response = client.get("/embed.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    entry = re.search(r'import "\./(assets/index-[\w-]+\.js)";', response.text).group(1)
    bundle = client.get(f"/{entry}")
    assert bundle.status_code == 200
    assert "customElements.define(`gradio-app`" in bundle.text or "gradio-app" in bundle.text
    assert "http" not in response.text.split("import", 1)[1]  # no CDN


def test_widget_path_without_slash_redirects(client: httpx.Client) -> None:
    response = client.get("/widget")
    assert response.status_code == 307 and response.headers["location"] == "/widget/"
    assert client.get("/widget", follow_redirects=True).status_code == 200


def test_gradio_client_calls_the_named_endpoint(server: LocalServer) -> None:
    from gradio_client import Client

    client = Client(server.url, verbose=False, download_files=False)
    result = client.predict(question=EXAMPLE_QUESTION, api_name="/ask")
    assert set(result) == ANSWER_KEYS
    assert any(c["doc_id"].startswith("003_") for c in result["citations"])
    assert "/ask" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
