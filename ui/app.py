"""The chat: a full app (chat, sources panel, article browser) and a compact widget.

Per-user state lives in ``gr.State`` (the raw conversation, for follow-ups); the engine
is the process-wide read-only one from ``rag.engine.get_engine``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import rag  # noqa: F401  (offline defaults before gradio is imported)

# isort: split
import gradio as gr

from rag.dates import DateRange
from rag.engine import Engine
from rag.errors import BadQuestionError, RagError
from rag.models import Answer
from ui import catalog, render

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
APP_CSS = STATIC_DIR / "app.css"
TITLE = "Ask the news"
EXAMPLE_QUESTIONS = (
    "What are Russia's stated conditions for talks?",
    "Where did Zelensky meet US Defense Secretary Lloyd Austin?",
    "What does Zelensky say about ceasefire negotiations with Russia?",
)
SEARCHING = "_Searching the articles…_"
# The Chatbot's own autoscroll keeps the end of a long answer (its source list) in view;
# instead, once an answer is shown, its question and first lines are scrolled into view.
# With ``wait``, first wait for the turn just asked to appear.
SHOW_LATEST_ANSWER_JS = """
(...args) => {
  const chat = document.querySelector("#%(chat)s");
  if (!chat) return args;
  const count = () => chat.querySelectorAll("[data-testid='user']").length;
  const before = count();
  const scrollBox = (el) => {
    for (; el && el !== chat.parentElement; el = el.parentElement) {
      const overflow = getComputedStyle(el).overflowY;
      if ((overflow === "auto" || overflow === "scroll") && el.scrollHeight > el.clientHeight)
        return el;
    }
    return null;
  };
  const show = () => {
    const users = chat.querySelectorAll("[data-testid='user']");
    const bots = chat.querySelectorAll("[data-testid='bot']");
    const bot = bots[bots.length - 1];
    const box = bot && scrollBox(bot);
    if (!box) return;
    const top = box.getBoundingClientRect().top;
    const user = users[users.length - 1];
    const userTop = user ? user.getBoundingClientRect().top : Infinity;
    const botTop = bot.getBoundingClientRect().top;
    const target = botTop - userTop < box.clientHeight / 3 ? userTop : botTop;
    box.scrollTop += target - top - 8;
  };
  const started = Date.now();
  const tick = () => {
    if (%(wait)s && count() <= before && Date.now() - started < 5000)
      return requestAnimationFrame(tick);
    requestAnimationFrame(show);
  };
  setTimeout(tick, 50);
  return args;
}
"""
# Gradio runs one question at a time and drops an Enter pressed (or Ask clicked) while an
# answer is still coming. Instead, the question stays in its box and is asked as soon as
# that answer is done. ``answering`` is true from a question's start to its answer's end.
ASK_WHEN_DONE_JS = """
(...args) => {
  const queue = (window.ragQueue = window.ragQueue || {answering: 0, waiting: false});
  const typed = () => {
    const box = document.querySelector("#question textarea");
    return box && box.value.trim() !== "";
  };
  if (!queue.listening) {
    queue.listening = true;
    document.addEventListener("keydown", (event) => {
      const inBox = event.target.closest && event.target.closest("#question");
      if (inBox && event.key === "Enter" && !event.shiftKey && !event.isComposing
          && queue.answering > 0 && typed()) queue.waiting = true;
    }, true);
    document.addEventListener("click", (event) => {
      const ask = event.target.closest && event.target.closest("#question .submit-button");
      if (ask && event.isTrusted && queue.answering > 0 && typed()) queue.waiting = true;
    }, true);
  }
  if (%(starting)s) {
    queue.answering += 1;
    queue.waiting = false;  // a waiting question is this one, or was asked by Gradio itself
  } else {
    queue.answering = Math.max(0, queue.answering - 1);
    if (queue.answering === 0 && queue.waiting) {
      queue.waiting = false;
      setTimeout(() => {
        const ask = document.querySelector("#question .submit-button");
        if (ask && typed()) ask.click();
      }, 100);
    }
  }
  return args;
}
"""
# The asking event's own step in the browser (an event Gradio drops runs none): it counts
# the answer as started, and passes the event's inputs on unchanged.
ASKING_JS = ASK_WHEN_DONE_JS % {"starting": "true"}
ANSWERED_JS = ASK_WHEN_DONE_JS % {"starting": "false"}  # after the asking event, client-side
# Follow-ups look back this many messages (user and assistant turns).
HISTORY_MESSAGES = 20

EngineProvider = Callable[[], Engine]
ChatMessages = list[dict[str, Any]]


@dataclass
class Turn:
    """What one question produces for the page."""

    chat: ChatMessages
    sources_html: str
    plain_text: str
    history: ChatMessages


def base_url(request: gr.Request | None) -> str:
    """The server's own origin as the browser reached it, for links in embedded chats.

    A widget inside another site's page resolves relative links against that site, so
    citation links carry this server's origin.
    """
    if request is None:
        return ""
    headers = request.headers
    host = headers.get("x-forwarded-host") or headers.get("host")
    if not host:
        return ""
    scheme = headers.get("x-forwarded-proto") or request.url.scheme or "http"
    return f"{scheme}://{host}"


class ChatHandler:
    """Answers one question of one conversation; holds no per-user state itself."""

    def __init__(self, engine: EngineProvider, with_sources: bool) -> None:
        self.engine = engine
        self.with_sources = with_sources

    def respond(
        self,
        question: str,
        chat: ChatMessages | None,
        history: ChatMessages | None,
        request: gr.Request,
    ) -> Iterator[tuple]:
        yield from self._respond(question, chat, history, request)

    def respond_in_range(
        self,
        question: str,
        since: str | None,
        until: str | None,
        chat: ChatMessages | None,
        history: ChatMessages | None,
        request: gr.Request,
    ) -> Iterator[tuple]:
        """A question limited to articles published between two optional dates."""
        yield from self._respond(question, chat, history, request, since, until)

    def respond_to_button_in_range(
        self,
        question: str,
        since: str | None,
        until: str | None,
        chat: ChatMessages | None,
        history: ChatMessages | None,
        request: gr.Request,
    ) -> Iterator[tuple]:
        """A click on an example question's button: what is typed in the box stays."""
        yield from self._respond(question, chat, history, request, since, until, typed=False)

    def _respond(
        self,
        question: str,
        chat: ChatMessages | None,
        history: ChatMessages | None,
        request: gr.Request,
        since: str | None = None,
        until: str | None = None,
        typed: bool = True,
    ) -> Iterator[tuple]:
        """``typed``: the question comes from the question box, which is emptied as it is
        asked (an example clicked leaves the box as it is)."""
        chat, history = list(chat or []), list(history or [])
        question = (question or "").strip()
        if not question:
            gr.Warning("Type a question first.")
            yield self._outputs(question, chat, gr.skip(), gr.skip(), history)
            return
        chat.append({"role": "user", "content": render.user_markdown(question)})
        box = "" if typed else gr.skip()
        yield self._outputs(box, [*chat, _assistant(SEARCHING)], gr.skip(), gr.skip(), history)
        try:
            dates = DateRange.of(since, until)
            answer = self.engine().ask(
                question, history=history[-HISTORY_MESSAGES:] or None, since=since, until=until
            )
        except BadQuestionError as exc:
            # Back in the box to be mended ("the limit is 2,000 characters", a bad date):
            # it fails at once, before anything new can have been typed there.
            chat.append(_assistant(f"**Sorry:** {render.escape_markdown(str(exc))}"))
            yield self._outputs(question if typed else box, chat, gr.skip(), gr.skip(), history)
            return
        except RagError as exc:
            chat.append(_assistant(f"**Sorry:** {render.escape_markdown(str(exc))}"))
            yield self._outputs(gr.skip(), chat, gr.skip(), gr.skip(), history)
            return
        except Exception:
            log.exception("answering %r failed", question)
            chat.append(_assistant("**Sorry:** something went wrong; the server log says what."))
            yield self._outputs(gr.skip(), chat, gr.skip(), gr.skip(), history)
            return
        origin = base_url(request)
        yield from self._stream_answer(chat, answer, origin, history, render.range_note(dates))

    def respond_to_example(
        self,
        selected: gr.SelectData,
        chat: ChatMessages | None,
        history: ChatMessages | None,
        request: gr.Request,
    ) -> Iterator[tuple]:
        """A click on one of the Chatbot's example questions."""
        yield from self._respond(selected.value["text"], chat, history, request, typed=False)

    def _stream_answer(
        self, chat: ChatMessages, answer: Answer, origin: str, history: ChatMessages, note: str
    ) -> Iterator[tuple]:
        # One quote at a time: each paragraph of the answer is one article's quotes.
        paragraphs = answer.answer.split("\n\n")
        for shown in range(1, len(paragraphs) if not answer.refused else 1):
            partial = replace(answer, answer="\n\n".join(paragraphs[:shown]), refused=False)
            markdown = render.answer_markdown(partial, origin, note)
            text = markdown.split(f"\n\n{render.SOURCES_HEADING}")[0]
            yield self._outputs(gr.skip(), [*chat, _assistant(text)], gr.skip(), gr.skip(), history)
        turn = self._turn(chat, answer, origin, history, note)
        yield self._outputs(gr.skip(), turn.chat, turn.sources_html, turn.plain_text, turn.history)

    def _turn(
        self, chat: ChatMessages, answer: Answer, origin: str, history: ChatMessages, note: str
    ) -> Turn:
        chat = [*chat, _assistant(render.answer_markdown(answer, origin, note))]
        sources_html = ""
        if self.with_sources:
            sources_html = render.sources_panel_html(
                answer, self.engine().document_text, origin, note
            )
        history = [
            *history,
            {"role": "user", "content": answer.question},
            {"role": "assistant", "content": answer.answer},
        ]
        return Turn(chat, sources_html, render.answer_plain_text(answer, note), history)

    def _outputs(
        self, question: Any, chat: ChatMessages, sources: Any, plain: Any, history: ChatMessages
    ) -> tuple:
        """``question``: what the question box shows; once it is emptied as the question
        is asked, ``gr.skip()``, so that the next question typed meanwhile stays there."""
        if self.with_sources:
            return question, chat, sources, plain, history
        return question, chat, history


def _assistant(markdown: str) -> dict[str, str]:
    return {"role": "assistant", "content": markdown}


def show_latest_answer_js(chat_id: str, wait: bool) -> str:
    return SHOW_LATEST_ANSWER_JS % {"chat": chat_id, "wait": "true" if wait else "false"}


def _chatbot(height: int | str, elem_id: str, examples: bool = False) -> gr.Chatbot:
    return gr.Chatbot(
        examples=[{"text": q} for q in EXAMPLE_QUESTIONS[:2]] if examples else None,
        label="Answers",
        show_label=False,
        elem_id=elem_id,
        height=height,
        autoscroll=False,  # see SHOW_LATEST_ANSWER_JS
        latex_delimiters=[],  # "$200 million … $300" must stay text
        sanitize_html=True,
        render_markdown=True,
        allow_tags=False,
        feedback_options=None,
        buttons=[],  # "share" would post to Hugging Face; copy lives in the plain-text box
        placeholder="Answers quote the articles word for word; **[n]** opens the quote "
        "inside its article.",
    )


def _question_box() -> gr.Textbox:
    return gr.Textbox(
        show_label=False,
        placeholder="Ask a question about the articles…",
        elem_id="question",
        submit_btn="Ask",
        max_lines=4,
        autofocus=False,
        scale=1,
    )


def _date_box(label: str, elem_id: str) -> gr.DateTime:
    # type="string": the text as typed, so rag.dates can say what is wrong with a bad date.
    return gr.DateTime(
        include_time=False, type="string", label=label, elem_id=elem_id, min_width=150
    )


def build_chat(engine: EngineProvider, concurrency: int) -> gr.Blocks:
    """The full app: chat with sources panel, example questions, article browser."""
    handler = ChatHandler(engine, with_sources=True)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\nEvery answer quotes the indexed articles and cites them.")
        history = gr.State([])
        with gr.Tab("Chat", id="chat-tab"), gr.Row(equal_height=False, elem_id="chat-row"):
            with gr.Column(scale=3, min_width=320):
                chatbot = _chatbot(height="60vh", elem_id="chat")
                question = _question_box()
                with gr.Row(elem_id="date-range", equal_height=True):
                    since = _date_box("Published since (optional)", "since")
                    until = _date_box("Published until (optional)", "until")
                with gr.Row(elem_id="examples"):
                    example_buttons = [
                        gr.Button(q, size="sm", variant="secondary", elem_classes="rag-example")
                        for q in EXAMPLE_QUESTIONS
                    ]
                new_chat = gr.Button("New conversation", size="sm", elem_id="new-chat")
            with gr.Column(scale=2, min_width=300, elem_id="sources-column"):
                sources = gr.HTML(
                    render.sources_panel_html(None),
                    elem_id="sources",
                    js_on_load=None,
                    label="Sources",
                )
                plain = gr.Textbox(
                    label="Answer with citations (plain text, to copy)",
                    elem_id="answer-text",
                    interactive=False,
                    lines=3,
                    max_lines=12,
                    buttons=["copy"],
                )
        with gr.Tab("Articles", id="articles-tab") as articles_tab:
            _article_browser(engine, articles_tab)

        outputs = [question, chatbot, sources, plain, history]
        ask = {
            "fn": handler.respond_in_range,
            "outputs": outputs,
            "js": ASKING_JS,
            "api_visibility": "private",
            "concurrency_limit": concurrency,
            "concurrency_id": "ask",
        }
        asked = [question.submit(inputs=[question, since, until, chatbot, history], **ask)]
        for button in example_buttons:
            asked.append(
                button.click(
                    inputs=[button, since, until, chatbot, history],
                    **(ask | {"fn": handler.respond_to_button_in_range}),
                )
            )
        _show_answers_first(
            chatbot, "chat", [question.submit, *(b.click for b in example_buttons)], asked
        )
        new_chat.click(
            lambda: ("", [], render.sources_panel_html(None), "", []),
            outputs=outputs,
            api_visibility="private",
            queue=False,
        )
        chatbot.clear(
            lambda: (render.sources_panel_html(None), "", []),
            outputs=[sources, plain, history],
            api_visibility="private",
            queue=False,
        )
        _api_endpoint(engine, concurrency)
    demo.queue(default_concurrency_limit=concurrency)
    return demo


def _show_answers_first(
    chatbot: gr.Chatbot, chat_id: str, triggers: list[Callable], asked: list[Any]
) -> None:
    """Scroll each new question, then its finished answer, into view (not the sources);
    once an answer is done, ask the question that waited for it (``ASK_WHEN_DONE_JS``)."""
    for trigger in triggers:
        trigger(None, js=show_latest_answer_js(chat_id, True), **_CLIENT_ONLY)
    for event in asked:
        event.then(None, js=show_latest_answer_js(chat_id, False), **_CLIENT_ONLY)
        event.then(None, js=ANSWERED_JS, **_CLIENT_ONLY)


_CLIENT_ONLY: dict[str, Any] = {"queue": False, "api_visibility": "private"}


def _article_browser(engine: EngineProvider, tab: gr.Tab) -> None:
    """Sort and filter controls over the article table; rendered when the tab opens."""
    with gr.Row(elem_id="article-filters", equal_height=True):
        sort = gr.Dropdown(
            list(catalog.SORTS), value=catalog.NEWEST, label="Sort", elem_id="article-sort"
        )
        publisher = gr.Dropdown(
            [catalog.ANY_PUBLISHER],
            value=catalog.ANY_PUBLISHER,
            label="Publisher",
            allow_custom_value=True,  # the list names those of the first articles only
            elem_id="article-publisher",
        )
        since = _date_box("Published since", "article-since")
        until = _date_box("Published until", "article-until")
        title = gr.Textbox(
            label="Title contains", elem_id="article-title", submit_btn=False, max_lines=1
        )
    article_list = gr.HTML(elem_id="article-list", js_on_load=None)

    def show(
        sort: str, publisher: str | None, since: str | None, until: str | None, title: str
    ) -> str:
        query = catalog.ArticleQuery(
            sort=sort,
            publisher=None if publisher in (None, "", catalog.ANY_PUBLISHER) else publisher,
            since=since,
            until=until,
            title=title or "",
        )
        return article_list_html(engine, query)

    def open_tab(*filters: Any) -> tuple:
        choices = [catalog.ANY_PUBLISHER, *catalog.publishers(engine())]
        return gr.Dropdown(choices=choices), show(*filters)

    filters = [sort, publisher, since, until, title]
    private = {"api_visibility": "private", "queue": False}
    tab.select(open_tab, inputs=filters, outputs=[publisher, article_list], **private)
    gr.on(
        [sort.change, publisher.change, since.change, until.change, title.submit, title.blur],
        show,
        inputs=filters,
        outputs=article_list,
        trigger_mode="always_last",
        **private,
    )


def article_list_html(engine: EngineProvider, query: catalog.ArticleQuery) -> str:
    try:
        listing = catalog.list_articles(engine(), query)
    except RagError as exc:  # a bad date in the filters
        return render.article_list_html([], f"Cannot list the articles: {exc}.")
    return render.article_list_html(listing.documents, listing.summary())


def build_widget(engine: EngineProvider, concurrency: int) -> gr.Blocks:
    """The compact chat for other pages: answers keep their [n] links and source list."""
    handler = ChatHandler(engine, with_sources=False)
    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_height=True) as widget:
        history = gr.State([])
        chatbot = _chatbot(height=420, elem_id="widget-chat", examples=True)
        question = _question_box()
        ask = {
            "outputs": [question, chatbot, history],
            "js": ASKING_JS,
            "api_visibility": "private",
            "concurrency_limit": concurrency,
            "concurrency_id": "ask",
        }
        asked = [
            question.submit(handler.respond, inputs=[question, chatbot, history], **ask),
            chatbot.example_select(handler.respond_to_example, inputs=[chatbot, history], **ask),
        ]
        _show_answers_first(
            chatbot, "widget-chat", [question.submit, chatbot.example_select], asked
        )
        chatbot.clear(lambda: [], outputs=history, api_visibility="private", queue=False)
    widget.queue(default_concurrency_limit=concurrency)
    return widget


def _api_endpoint(engine: EngineProvider, concurrency: int) -> None:
    """``/ask`` for gradio_client: the same object as ``rag ask --json``."""

    def ask(question: str, top_k: int | None = None, history: list[dict] | None = None) -> dict:
        """Answer a question with cited quotes from the indexed articles."""
        try:
            return engine().ask(question, top_k=top_k, history=history).to_dict()
        except RagError as exc:
            raise gr.Error(str(exc)) from None

    gr.api(ask, api_name="ask", concurrency_limit=concurrency, concurrency_id="ask")
