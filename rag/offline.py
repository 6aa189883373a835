"""Make every library we use work without a network.

Imported first by ``rag/__init__.py`` so these defaults are in place before
tiktoken, Chroma, NLTK or an OpenMP engine is loaded. Values the user already
exported win (``setdefault``).
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path


def _llama_index_static_dir() -> Path | None:
    spec = find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "_static"


def configure() -> None:
    static = _llama_index_static_dir()
    if static is not None:
        # tiktoken otherwise downloads its BPE files on first use.
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(static / "tiktoken_cache"))
        os.environ.setdefault("NLTK_DATA", str(static / "nltk_cache"))
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


configure()
