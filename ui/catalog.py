"""The article browser's listing: filtered by date and publisher, sorted, capped.

The date range and the publisher are filters in Chroma (``Engine.sources``), so they
narrow a 100k-article archive without reading it all. At most ``READ_CAP`` matching
records are read (metadata only); the title filter and the sort work on those, and the
summary says so when more matched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rag.dates import DateRange
from rag.engine import Engine
from rag.models import SourceDocument

NEWEST, OLDEST, TITLE, PUBLISHER = "Newest first", "Oldest first", "Title", "Publisher"
SORTS = (NEWEST, OLDEST, TITLE, PUBLISHER)
ANY_PUBLISHER = "Any publisher"
READ_CAP = 5000  # matching records read per listing
SHOWN = 500  # rows in the table


@dataclass(frozen=True)
class ArticleQuery:
    sort: str = NEWEST
    publisher: str | None = None
    since: str | None = None
    until: str | None = None
    title: str = ""

    @property
    def filtered(self) -> bool:
        return bool(self.publisher or self.since or self.until or self.title.strip())


@dataclass(frozen=True)
class Listing:
    documents: list[SourceDocument]  # the rows shown, sorted
    matched: int  # articles that matched, among those read
    capped: bool  # more articles matched the date and publisher filters than were read
    total: int  # articles indexed
    filtered: bool

    def summary(self) -> str:
        if self.capped:
            return (
                f"More than {READ_CAP:,} of {self.total:,} articles match; the list is sorted "
                f"among the first {READ_CAP:,} read. Narrow the dates or the publisher to "
                "sort them all."
            )
        if self.filtered:
            text = f"{self.matched:,} of {self.total:,} articles match."
        else:
            text = f"{self.total:,} articles indexed."
        if len(self.documents) < self.matched:
            text += f" The first {len(self.documents):,} are listed."
        return text


def list_articles(engine: Engine, query: ArticleQuery) -> Listing:
    """Raises BadQuestionError for a bad date or range (the message says which)."""
    DateRange.of(query.since, query.until)  # check before reading anything
    read = engine.sources(
        limit=READ_CAP + 1, since=query.since, until=query.until, publisher=query.publisher
    )
    capped = len(read) > READ_CAP
    needle = query.title.strip().casefold()
    matching = [d for d in read[:READ_CAP] if needle in d.title.casefold()]
    ordered = sort_articles(matching, query.sort)
    return Listing(ordered[:SHOWN], len(matching), capped, engine.version.documents, query.filtered)


def sort_articles(documents: list[SourceDocument], sort: str) -> list[SourceDocument]:
    """Sorted as asked; articles without a date (or publisher) always come last."""
    by_title = sorted(documents, key=lambda d: d.title.casefold())
    newest = sorted(by_title, key=lambda d: d.published or "", reverse=True)
    orders: dict[str, Callable[[], list[SourceDocument]]] = {
        NEWEST: lambda: newest,
        OLDEST: lambda: sorted(by_title, key=lambda d: (d.published is None, d.published or "")),
        TITLE: lambda: by_title,
        PUBLISHER: lambda: sorted(
            newest, key=lambda d: (d.publisher is None, (d.publisher or "").casefold())
        ),
    }
    return orders.get(sort, orders[NEWEST])()


def publishers(engine: Engine) -> list[str]:
    """The publishers among the first ``READ_CAP`` articles (others can be typed in)."""
    found = {d.publisher for d in engine.sources(limit=READ_CAP) if d.publisher}
    return sorted(found, key=str.casefold)
