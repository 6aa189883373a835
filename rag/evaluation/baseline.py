"""The comparison row: a stock llama-index pipeline over the same articles and embedding model.

The indexed articles' texts (the text each citation's offsets index into: a file's, or an
export record's) as llama-index ``Document``s → ``VectorStoreIndex`` (default
``SentenceSplitter``) → Chroma (a collection of its own, in a temporary folder unless a
Chroma server is configured) → ``index.as_retriever()``. Its answer is the top retrieved
chunk, cited with that chunk's character span; it never refuses. No LLM is involved
anywhere: ``Settings.llm`` is a ``MockLLM`` and the embedding model is passed explicitly, so
llama-index cannot reach OpenAI.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core import Settings as LlamaSettings
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import MockLLM
from llama_index.core.schema import NodeWithScore
from llama_index.vector_stores.chroma import ChromaVectorStore

from rag.components.embedding import EmbeddingModel, embed_question
from rag.models import SourceDocument
from rag.settings import Settings
from rag.store import chroma_client

DESCRIPTION = "llama-index VectorStoreIndex (default SentenceSplitter) + Chroma, top chunk"
# Kept out of the text llama-index embeds and splits: the article's words alone, as ours.
_METADATA = ["doc_id", "title", "source"]


class RagEmbedding(BaseEmbedding):
    """Our embedding model behind llama-index's ``BaseEmbedding`` interface."""

    _model: Any = PrivateAttr()

    def __init__(self, model: EmbeddingModel, **kwargs: Any) -> None:
        super().__init__(model_name=model.name, **kwargs)
        self._model = model

    @classmethod
    def class_name(cls) -> str:
        return "RagEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        # The stock pipeline gets the plain model's vector: the adapter is ours.
        return embed_question(self._model, query).plain.tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._model.embed_documents([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._model.embed_documents(texts).tolist()


class Baseline:
    """Build with ``Baseline(articles, embedding, settings)`` (each indexed article and its
    text); ``ask()`` mimics ``Answer.to_dict()``.

    Use as a context manager (or call ``close()``) to drop its Chroma collection.
    """

    def __init__(
        self,
        articles: list[tuple[SourceDocument, str]],
        embedding: EmbeddingModel,
        settings: Settings,
    ) -> None:
        LlamaSettings.llm = MockLLM()  # nothing here needs an LLM; never fall back to OpenAI
        self._tmp = tempfile.TemporaryDirectory(prefix="rag-eval-baseline-")
        self._settings = settings.model_copy(update={"index_dir": Path(self._tmp.name)})
        self._client = chroma_client(self._settings)
        self._name = f"{settings.collection}-baseline"[:63]
        self._drop_collection()
        collection = self._client.create_collection(self._name, embedding_function=None)
        self.top_k = settings.top_k
        self.index = self._build(articles, collection, RagEmbedding(embedding))
        self.retriever = self.index.as_retriever(similarity_top_k=self.top_k)

    @staticmethod
    def _build(
        articles: list[tuple[SourceDocument, str]], collection: Any, embed_model: BaseEmbedding
    ) -> VectorStoreIndex:
        documents = [
            Document(
                text=text,
                id_=article.doc_id,
                metadata={
                    "doc_id": article.doc_id,
                    "title": article.title,
                    "source": article.source,
                },
                excluded_embed_metadata_keys=_METADATA,
                excluded_llm_metadata_keys=_METADATA,
            )
            for article, text in articles
        ]
        store = ChromaVectorStore(chroma_collection=collection)
        return VectorStoreIndex.from_documents(
            documents,
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=embed_model,
        )

    def ask(self, question: str) -> dict[str, Any]:
        started = time.perf_counter()
        nodes = self.retriever.retrieve(question)
        elapsed = (time.perf_counter() - started) * 1000
        passages = [_passage(n) for n in nodes]
        top = passages[0] if passages else None
        return {
            "question": question,
            "answer": top["text"] if top else "",
            "refused": top is None,
            "citations": [_citation(top)] if top else [],
            "passages": passages,
            "timings_ms": {"retrieve": elapsed, "answer": 0.0, "total": elapsed},
        }

    def _drop_collection(self) -> None:
        if self._name in {
            c if isinstance(c, str) else c.name for c in self._client.list_collections()
        }:
            self._client.delete_collection(self._name)

    def close(self) -> None:
        self._drop_collection()
        self._tmp.cleanup()

    def __enter__(self) -> Baseline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _passage(hit: NodeWithScore) -> dict[str, Any]:
    meta = hit.node.metadata
    return {
        "doc_id": meta["doc_id"],
        "title": meta["title"],
        "source": meta["source"],
        "text": hit.node.get_content(),
        "score": float(hit.score or 0.0),
        "start": hit.node.start_char_idx,
        "end": hit.node.end_char_idx,
    }


def _citation(passage: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": 1,
        "doc_id": passage["doc_id"],
        "title": passage["title"],
        "source": passage["source"],
        "quote": passage["text"],
        "start": passage["start"] if passage["start"] is not None else -1,
        "end": passage["end"] if passage["end"] is not None else -1,
    }
