"""Cleaning drops web-page debris from the seeds and keeps every article sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.clean import NOT_IN_SOURCE, clean, reads_as
from tests.conftest import SEEDS

DATA = Path(__file__).parent / "data"

# Every line of the seeds that is not article text, by file.
DEBRIS = {
    "000_8d93e48187a857e9.txt": [
        "Read more",
        "Shadow shake-up: Zelensky’s pointless purge of his ministers reveals Kiev’s despair",
    ],
    "001_7ad4693f24f79d99.txt": [
        "This website uses cookies to improve your experience. We'll assume you're ok with "
        "this, but you can opt-out if you wish. Accept Read More",
    ],
    "002_0b6b9fc6a5e753ee.txt": [
        "InternationalNews",
        "Related Articles",
        "Leave a Reply",
        "Your email address will not be published. Required fields are marked *",
        "Back to top button",
    ],
    "003_042faa28e221901a.txt": [
        "NATOKey to Peace",
        "Key to Peace",
        "-",
        "Ukrainian leader Vladimir Zelensky. ©  Jean Catuffe / Getty Images",
        "Russian troops raise the flag over Selidovo in the Donetsk People’s Republic (DPR) "
        "©  Sputnik / Russian Defense Ministry",
        "Source X/RT/NYT/WP/AP",
        "0 0 votes",
        "Article Rating",
        "Subscribe",
        "Notify of",
        "guest",
        "0 Comments",
        "Oldest",
        "Newest Most Voted",
        "Inline Feedbacks",
        "View all comments",
        "Latest news",
        "Must read",
        "More",
        "Russia targets Ukraine’s power grid in biggest missile strike in months, officials say",
        "Russia fired over 200 missile and drones across Ukraine...",
        "Keir Starmer promises Ukraine will be ‘top of my agenda’ at G20",
        "Ukraine will be “top of my agenda” this week...",
        "You might also likeRELATED",
        "Recommended to you",
        "0",
        "Would love your thoughts, please comment.x",
        "()",
        "x",
    ],
    "004_9a883b0f2de4c558.txt": ["32.1 C", "Monday, July 15, 2024", "Most Popular Articles"],
}

TITLES = {
    "000_8d93e48187a857e9.txt": "Kiev has asked its Western helpers to redouble their pressure "
    "on Moscow",
    "001_7ad4693f24f79d99.txt": "Zelensky Refutes Claims of Ongoing Ceasefire Negotiations "
    "with Russia",
    "002_0b6b9fc6a5e753ee.txt": "Zelensky Ties Negotiation with Russia to “Western Guarantees” and "
    "Continued Military Support",
    "003_042faa28e221901a.txt": "Moscow says the key to peace in Europe Ukraine must give up NATO "
    "aspirations and withdraw its forces from all Russian territories",
    "004_9a883b0f2de4c558.txt": "US urges Ukraine to be open to peace negotiations with Russia",
}


@pytest.mark.parametrize("name", sorted(DEBRIS))
def test_seed_debris_removed_and_article_lines_kept(name: str) -> None:
    source = (SEEDS / name).read_text(encoding="utf-8")
    cleaned = clean(source, ".txt")
    kept = {_norm(line) for line in cleaned.text.splitlines()}
    debris = {_norm(d) for d in DEBRIS[name]}
    for line in debris:
        assert line not in kept, f"debris kept: {line!r}"
    for line in map(_norm, source.splitlines()):
        if line and line not in debris:
            assert line in kept, f"article text lost: {line!r}"


def _norm(line: str) -> str:
    return " ".join(line.split())  # the seeds use no-break spaces in places


@pytest.mark.parametrize("name", sorted(TITLES))
def test_seed_titles(name: str) -> None:
    cleaned = clean((SEEDS / name).read_text(encoding="utf-8"), ".txt")
    assert cleaned.title == TITLES[name]


@pytest.mark.parametrize("name", sorted(DEBRIS))
def test_every_clean_line_maps_back_verbatim(name: str) -> None:
    source = (SEEDS / name).read_text(encoding="utf-8")
    cleaned = clean(source, ".txt")
    position = 0
    for line in cleaned.text.split("\n"):
        if line:
            span = cleaned.verbatim_span(position, position + len(line))
            assert span is not None and source[span[0] : span[1]] == line
        position += len(line) + 1


def test_hostile_html_keeps_text_and_drops_code() -> None:
    source = (DATA / "hostile.html").read_text(encoding="utf-8")
    cleaned = clean(source, ".html")
    assert cleaned.title == "Ceasefire talks & the Black Sea grain deal"
    text = cleaned.text
    assert "Negotiators met in Istanbul" in text
    assert "<script>alert(1)</script>" in text  # an escaped tag is article text: kept as text
    assert "click here for the full transcript" in text
    for gone in (
        "__pwned",
        "onerror",
        "javascript:window",
        "football",
        "Leave a Reply",
        "cookies",
        "Copyright",
        "World",
    ):
        assert gone not in text, gone


def test_html_entities_and_inline_tags_keep_offsets() -> None:
    source = "<html><body><h1>A &amp; B</h1><p>Plain <b>bold</b> words here.</p></body></html>"
    cleaned = clean(source, ".html")
    assert cleaned.title == "A & B"
    start = cleaned.text.index("Plain")
    s, e = cleaned.source_span(start, start + len("Plain bold words here."))
    assert source[s:e] == "Plain <b>bold</b> words here."
    # Not a verbatim copy (markup inside): citations must not use it as a quote.
    assert cleaned.verbatim_span(start, start + len("Plain bold words here.")) is None


def test_markdown_heading_is_title_and_soft_wraps_join() -> None:
    source = "# Talks resume\n\nThe delegations met\nin Geneva on Monday.\n\nRead more\n"
    cleaned = clean(source, ".md")
    assert cleaned.title == "Talks resume"
    assert "The delegations met\nin Geneva on Monday." in cleaned.text
    assert "Read more" not in cleaned.text


@pytest.mark.parametrize("heading", ["Most popular stories", "Related stories", "Top stories:"])
def test_a_widget_heading_between_paragraphs_is_not_article_text(heading: str) -> None:
    first = "The council met on Monday to agree the budget for the coming year."
    second = "Councillors voted by 31 to 12 to raise the tax by 4.99%, the maximum allowed."
    text = clean(f"Council agrees budget\n{first}\n{heading}\n{second}\n", ".txt").text
    assert first in text and second in text
    assert heading.rstrip(":") not in text


def test_prose_after_a_widget_marker_is_kept() -> None:
    long_line = "The talks " + "went on for many hours and covered many topics " * 3 + "today."
    source = f"Title of the story here\nRelated Articles\n{long_line}\n"
    assert long_line in clean(source, ".txt").text


RELATED = (
    "Related: the club's statement in full, with what the owner told the players and staff "
    "about the search for a successor, the timetable and the budget for the next coach."
)
NEWS_PAGE = f"""<html><body><article>
<h1>Brentford sack head coach after Fulham thrashing</h1>
<p class="writer">By Jamie Collins, Brentford correspondent · Sunday 23 November 2025</p>
<p>Saturday's defeat was their fifth successive league loss, the club said.</p>
<p>Read more: <a href="/ratings">Brentford 0-4 Fulham: player ratings as Bees hit new low</a></p>
<p>By Monday, the owner had met the coach to discuss the team's form.</p>
<p>{RELATED}</p>
<p>(Reporting by Jamie Collins; Editing by Anna Whitcombe)</p>
</article>
<div><h2>Most read</h2><p>Interest rates held at 3.75%</p>
<p>Ealing Broadway station works to close entrance until spring</p></div>
</body></html>"""


def test_bylines_credits_teasers_and_other_stories_are_not_article_text() -> None:
    text = clean(NEWS_PAGE, ".html").text
    assert "Saturday's defeat was their fifth successive league loss" in text
    assert "By Monday, the owner had met the coach" in text  # a sentence, not a byline
    assert "Related: the club's statement in full" in text  # prose, not a teaser
    for debris in ("By Jamie Collins", "player ratings", "Reporting by", "Most read", "3.75%"):
        assert debris not in text
    markdown = (
        "# Pension age rises\n\n*By Lena Horvath, Political Correspondent | 21 November 2024*\n"
    )
    assert "Horvath" not in clean(markdown + "\nThe law passed by 112 votes to 84.\n", ".md").text


@pytest.mark.parametrize(
    "page",
    [
        "<p>Before.</p><![CD garbage<p>The council met on Monday to agree the budget.</p>",
        "<p>Before.</p><![&#CDATA[ no end <p>The council met on Monday to agree the budget.</p>",
    ],
)
def test_a_malformed_marked_section_is_text_not_a_crash(page: str) -> None:
    """html.parser raises AssertionError on "<![" with no known keyword (and moves its
    position on first): the page is read, every offset inside it and exact."""
    cleaned = clean(page, ".html")
    assert "The council met on Monday to agree the budget." in cleaned.text
    inside = cleaned.offsets[cleaned.offsets != NOT_IN_SOURCE]
    assert inside.max() < len(page)
    start = cleaned.text.index("The council")
    span = cleaned.source_span(start, start + len("The council met on Monday"))
    assert page[span[0] : span[1]] == "The council met on Monday"


@pytest.mark.parametrize(
    ("source", "quote", "reads"),
    [
        ("Rates rose &pound;12m.", "Rates rose £12m.", True),
        ("It&#8217;s over", "It’s over", True),
        ("Rates rose &pound5 today", "Rates rose £5 today", True),  # no ";": as parsers read it
        ("R&amp;D rose", "R&amp;D rose", True),  # a text file's literal "&amp;"
        ("R&amp;D rose", "R&D rose", True),
        ("Rates rose &pound;12m.", "Rates rose 12m.", False),
        ("Rates rose &pound;12m.", "Rates rose £12m", False),
    ],
)
def test_a_quote_reads_as_its_span(source: str, quote: str, reads: bool) -> None:
    assert reads_as(source, quote) is reads


def test_a_quote_with_thousands_of_references_is_read_without_recursion() -> None:
    # A scraped page of curly quotes: it was one nested call per reference.
    assert reads_as("It&#8217;s over. " * 3000, "It’s over. " * 3000)
    assert not reads_as("It&#8217;s over. " * 3000, "It’s over. " * 2999 + "It's over. ")


def test_a_reference_without_its_semicolon_is_quoted_whole() -> None:
    page = "<p>Rates rose &pound5 today in the town centre, the council said.</p>"
    cleaned = clean(page, ".html")
    assert cleaned.text == "Rates rose £5 today in the town centre, the council said."
    start, end = cleaned.source_span(0, len(cleaned.text))
    assert reads_as(page[start:end], cleaned.text)
