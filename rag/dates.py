"""Dates of articles: display, the --since/--until range, and questions about time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from rag.errors import BadQuestionError

_LATEST = re.compile(
    r"\b(latest|most recent(ly)?|newest|current(ly)?|now|today|these days|so far|"
    r"still|at the moment|right now)\b",
    re.I,
)
_CHANGE = re.compile(
    r"\bhow (has|have|did|do|does)\b.*\b(chang|evolv|shift|develop)\w*"
    r"|\b(over time|timeline|evolution of)\b",
    re.I,
)


def display_date(published: str | None) -> str:
    """ "2024-11-06" -> "6 Nov 2024"; "" when unknown (or not a date an index should hold,
    e.g. from a Chroma server written by another tool)."""
    try:
        d = date.fromisoformat(published or "")
    except (TypeError, ValueError):
        return ""
    return f"{d.day} {d:%b %Y}"


def parse_day(value: str | date | None, name: str) -> date | None:
    """An ISO date (YYYY-MM-DD) from a user, or a BadQuestionError saying what is wrong."""
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise ValueError
        return date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise BadQuestionError(
            f"{name} must be an ISO date like 2024-11-06, not {value!r}"
        ) from None


def day_number(published: str | None) -> int | None:
    """ "2024-11-06" -> 20241106; None for an unknown date."""
    return int(published.replace("-", "")) if published else None


@dataclass(frozen=True)
class DateRange:
    """Articles published between ``since`` and ``until``, both inclusive; either open."""

    since: date | None = None
    until: date | None = None

    @classmethod
    def of(cls, since: str | date | None, until: str | date | None) -> DateRange | None:
        """None when neither bound is given; a BadQuestionError for a bad or empty range."""
        start, end = parse_day(since, "since"), parse_day(until, "until")
        if start is None and end is None:
            return None
        if start and end and start > end:
            raise BadQuestionError(f"since ({start}) is after until ({end})")
        return cls(start, end)

    @property
    def first_day(self) -> int:
        return _day(self.since) if self.since else 0

    @property
    def last_day(self) -> int:
        return _day(self.until) if self.until else 99991231

    def where(self) -> dict:
        """A Chroma ``where`` on the ``published_day`` metadata of chunks (or records)."""
        return {
            "$and": [
                {"published_day": {"$gte": self.first_day}},
                {"published_day": {"$lte": self.last_day}},
            ]
        }

    def holds(self, published: str | None) -> bool:
        """Whether an article's date is in the range; an unknown date never is."""
        return self.holds_day(day_number(published) or 0)

    def holds_day(self, day: int) -> bool:
        """The same for a day as YYYYMMDD, 0 when unknown."""
        return day > 0 and self.first_day <= day <= self.last_day

    def describe(self) -> str:
        if self.since and self.until:
            return f"from {self.since} to {self.until}"
        return f"since {self.since}" if self.since else f"until {self.until}"


def _day(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def asks_for_latest(question: str) -> bool:
    """ "What is the latest…", "Who currently…", "…now?": the newest article should lead."""
    return bool(_LATEST.search(question))


def asks_how_it_changed(question: str) -> bool:
    """ "How did X change…", "…over time": quotes in date order, each dated."""
    return bool(_CHANGE.search(question))
