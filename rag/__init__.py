"""Ask questions of a news corpus; get answers that quote and cite their articles.

>>> from rag import ask
>>> ask("What are Russia's stated conditions for talks?").citations[0].doc_id
"""

from rag import offline as _offline  # noqa: F401  (must run before any other import)
from rag.models import Answer, Citation, Passage, SourceDocument

__all__ = ["Answer", "Citation", "Passage", "SourceDocument", "ask"]


def ask(question: str, **kwargs: object) -> Answer:
    """Answer with the process-wide engine (built on first call)."""
    from rag.engine import ask as _ask

    return _ask(question, **kwargs)
