"""BM25 over the committed chunks: built at ingest, persisted, memory-mapped, kept in sync.

The index lives on disk beside the Chroma index (or, with a Chroma server, in each
replica's cache folder) and is opened with ``mmap``: an engine start reads a manifest,
not the corpus. It records the corpus generation (``store.CorpusVersion``) it was built
from, so ``sync`` can tell a stale index and bring it up to date from what Chroma holds:

* incrementally, when articles were only added or changed since: only their chunks are
  tokenized (every article record carries the generation that wrote it);
* from scratch, when articles were removed since, or nothing usable is on disk.

Either way the BM25 scores are recomputed for the whole corpus (the document frequencies
of every term move), from token ids kept on disk; tokenizing is the slow part, and it is
done once per chunk. Each build is written to a new folder and published by an atomic
rename of ``CURRENT``: readers never see a half-written index.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.documents import own_title
from rag.errors import ConfigError
from rag.settings import Settings
from rag.store import CorpusVersion, IndexStore, Rows

log = logging.getLogger(__name__)

FORMAT = 4  # bump when the files or the analyzer change: older indexes are rebuilt
# Question words carry no topic; BM25 should not match "what" or "did".
QUESTION_WORDS = (
    "what",
    "who",
    "whom",
    "whose",
    "how",
    "which",
    "when",
    "where",
    "why",
    "did",
    "does",
    "do",
    "done",
    "say",
    "said",
    "says",
    "tell",
    "told",
    "according",
    "much",
    "many",
)
BM25_K1 = 1.5  # bm25s defaults
BM25_B = 0.75


DEFAULT_SYNONYMS = Path(__file__).parent / "data" / "synonyms.txt"


def read_synonyms(path: Path) -> dict[str, str]:
    """``variant canonical`` pairs, one per line; ``#`` starts a comment."""
    pairs = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split("#", 1)[0].lower().split()
        if not words:
            continue
        if len(words) != 2:
            raise ValueError(f"{path}:{number}: expected 'variant canonical', got {line!r}")
        pairs[words[0]] = words[1]
    return pairs


def load_synonyms(settings: Settings) -> dict[str, str]:
    """The built-in demonym table, plus the user's file (``RAG_SYNONYMS_FILE``)."""
    pairs = read_synonyms(DEFAULT_SYNONYMS)
    if settings.synonyms_file is not None:
        try:
            pairs |= read_synonyms(settings.synonyms_file)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"cannot read the synonyms file: {exc}") from exc
    return pairs


# bm25s's own tokenization (scikit-learn's CountVectorizer pattern, lowercased, English
# stop words out, then stems). ``Analyzer`` reproduces it without rebuilding a stop-word
# set per text and with each word's stem kept once found: query-time tokenizing of the
# candidate sentences was a fifth of a warm answer. ``tests/test_lexical.py`` checks that
# both give the same terms.
TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")
STEM_CACHE_WORDS = 200_000  # a news vocabulary fits; the cache is dropped beyond it


def fold(word: str) -> str:
    """A word without its accents ("muñoz" -> "munoz", "zürich" -> "zurich"): readers type
    names without them as often as with."""
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class Analyzer:
    """Text → BM25 terms: lowercase words without accents, English stop words out,
    Snowball stems."""

    def __init__(self, synonyms: dict[str, str] | None = None) -> None:
        """``synonyms`` maps a lowercase word to the spelling it is indexed as."""
        import bm25s
        import Stemmer

        # bm25s sets its own logger to DEBUG on import; its chatter would end up in
        # `rag ask --json` output and server logs.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        # Read as the words are: without accents.
        self._synonyms = {fold(k): fold(v) for k, v in (synonyms or {}).items()}
        self._stemmer = Stemmer.Stemmer("english")
        self._stopwords = frozenset(bm25s.stopwords.STOPWORDS_EN) | frozenset(QUESTION_WORDS)
        # Each word seen, with its term ("" for a stop word): one lookup a word when warm.
        self._terms: dict[str, str] = {}

    def terms(self, text: str) -> list[str]:
        return self.terms_of([text])[0]

    def terms_of(self, texts: list[str]) -> list[list[str]]:
        words = [TOKEN_PATTERN.findall(text.lower()) for text in texts]
        known = self._terms
        try:
            return _look_up(known, words)
        except KeyError:  # words not seen yet
            return _look_up(self._learn(known, {w for ws in words for w in ws}), words)

    def _learn(self, known: dict[str, str], words: set[str]) -> dict[str, str]:
        """``known`` with the terms of ``words`` added (a new dict when it would grow past
        the cap); the dict to look them up in, whatever other threads do meanwhile."""
        new = [w for w in words if w not in known]
        if len(known) + len(new) > STEM_CACHE_WORDS:
            known, new = {}, list(words)
            self._terms = known
        folded = {w: fold(w) for w in new}
        to_stem = [w for w in new if folded[w] not in self._stopwords]
        stems = self._stemmer.stemWords([self._synonyms.get(folded[w], folded[w]) for w in to_stem])
        known.update(dict.fromkeys(new, ""))
        known.update(zip(to_stem, stems, strict=True))
        return known


def _look_up(known: dict[str, str], words: list[list[str]]) -> list[list[str]]:
    term_of = known.__getitem__
    return [[t for t in map(term_of, ws) if t] for ws in words]


@dataclass
class _Tokens:
    """Token ids of every indexed chunk, flat, with the row each chunk starts at."""

    chunk_ids: np.ndarray  # str per row
    doc_ids: np.ndarray  # str per row
    days: np.ndarray  # int32 per row: its article's publication day (YYYYMMDD), 0 if unknown
    ids: np.ndarray  # int32, all rows' token ids one after the other
    starts: np.ndarray  # int64, len(rows) + 1
    vocab: dict[str, int]

    def rows(self) -> int:
        return len(self.chunk_ids)

    def without_docs(self, doc_ids: set[str]) -> _Tokens:
        keep = ~np.isin(self.doc_ids, list(doc_ids)) if doc_ids else np.ones(self.rows(), bool)
        lengths = np.diff(self.starts)
        token_keep = np.repeat(keep, lengths)
        return _Tokens(
            self.chunk_ids[keep],
            self.doc_ids[keep],
            self.days[keep],
            self.ids[token_keep],
            np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64),
            self.vocab,
        )

    def plus(
        self, chunk_ids: list[str], doc_ids: list[str], days: list[int], terms: list[list[str]]
    ) -> _Tokens:
        vocab = self.vocab
        new_ids = [[vocab.setdefault(t, len(vocab)) for t in row] for row in terms]
        flat = np.fromiter((i for row in new_ids for i in row), dtype=np.int32)
        lengths = np.asarray([len(row) for row in new_ids], dtype=np.int64)
        return _Tokens(
            np.concatenate([self.chunk_ids, np.asarray(chunk_ids, dtype=str)]),
            np.concatenate([self.doc_ids, np.asarray(doc_ids, dtype=str)]),
            np.concatenate([self.days, np.asarray(days, dtype=np.int32)]),
            np.concatenate([self.ids, flat]),
            np.concatenate([self.starts, self.starts[-1] + np.cumsum(lengths)]),
            vocab,
        )


def _empty_tokens() -> _Tokens:
    return _Tokens(
        np.asarray([], dtype=str),
        np.asarray([], dtype=str),
        np.asarray([], dtype=np.int32),
        np.asarray([], dtype=np.int32),
        np.zeros(1, dtype=np.int64),
        {},
    )


class LexicalIndex:
    """A published, read-only BM25 index; ``sync`` makes new ones."""

    def __init__(self, folder: Path, analyzer: Analyzer) -> None:
        import bm25s

        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"lexical index format {manifest.get('format')} != {FORMAT}")
        self.folder = folder
        self.analyzer = analyzer
        self.generation: int = int(manifest["generation"])
        self.fingerprint: str = manifest["fingerprint"]
        self.chunk_ids = np.load(folder / "chunk_ids.npy", mmap_mode="r")
        self.doc_ids = np.load(folder / "doc_ids.npy", mmap_mode="r")
        self.days = np.load(folder / "days.npy", mmap_mode="r")
        self._bm25 = bm25s.BM25.load(folder / "bm25", mmap=True, show_progress=False)
        self._vocab: dict[str, int] = self._bm25.vocab_dict
        indptr = self._bm25.scores["indptr"]
        self._df = np.diff(np.asarray(indptr))  # chunks holding each term
        self.size = len(self.chunk_ids)
        # The doc id column sorted, and the rows in that order: finds an article's chunks.
        # Written at build; an index built before has it made in memory when first needed.
        self._doc_order: tuple[np.ndarray, np.ndarray] | None = None
        if (folder / "doc_order.npy").is_file():
            self._doc_order = (
                np.load(folder / "sorted_doc_ids.npy", mmap_mode="r"),
                np.load(folder / "doc_order.npy", mmap_mode="r"),
            )

    # --- reading ----------------------------------------------------------------------------

    def days_of(self, doc_ids: list[str]) -> dict[str, int]:
        """Publication day (YYYYMMDD, 0 when undated) of the articles this index holds;
        an article it does not hold (added since it was built) is left out."""
        return {doc: int(self.days[rows[0]]) for doc, rows in self._rows_of(doc_ids).items()}

    def chunks_of(self, doc_ids: list[str]) -> dict[str, list[str]]:
        """The chunk ids of the articles this index holds, in text order (as they were when
        it was built); an article it does not hold is left out."""
        out = {}
        for doc, rows in self._rows_of(doc_ids).items():
            ids = [str(self.chunk_ids[r]) for r in rows]
            out[doc] = sorted(ids, key=lambda cid: int(cid.rsplit(":c", 1)[1]))
        return out

    def _rows_of(self, doc_ids: list[str]) -> dict[str, np.ndarray]:
        """The rows (chunks) of each article this index holds."""
        if self._doc_order is None:
            order = np.argsort(self.doc_ids, kind="stable")
            self._doc_order = (np.asarray(self.doc_ids)[order], order)  # an older build
        sorted_ids, order = self._doc_order
        if not len(sorted_ids) or not doc_ids:
            return {}
        wanted = np.asarray(doc_ids, dtype=str)
        first = np.searchsorted(sorted_ids, wanted, side="left")
        last = np.searchsorted(sorted_ids, wanted, side="right")
        return {
            doc: order[lo:hi] for doc, lo, hi in zip(doc_ids, first, last, strict=True) if hi > lo
        }

    def terms(self, text: str) -> list[str]:
        return self.analyzer.terms(text)

    def known_terms(self, terms: list[str]) -> list[str]:
        return [t for t in terms if (i := self._vocab.get(t)) is not None and self._df[i] > 0]

    def top_chunks(
        self,
        terms: list[str],
        n: int,
        doc_ids: list[str] | None = None,
        days: tuple[int, int] | None = None,
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25 score), best first; only chunks that match a term.
        ``days``: only chunks of articles published in (first, last), YYYYMMDD inclusive."""
        known = self.known_terms(terms)
        if not known or self.size == 0:
            return []
        scores = np.asarray(self._bm25.get_scores(known), dtype=np.float32)
        if doc_ids:
            scores = np.where(np.isin(self.doc_ids, doc_ids), scores, 0.0)
        if days is not None:
            first, last = days
            # An undated article (day 0) is never in a range.
            held = (self.days >= max(first, 1)) & (self.days <= last)
            scores = np.where(held, scores, 0.0)
        n = min(n, self.size)
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(str(self.chunk_ids[i]), float(scores[i])) for i in top if scores[i] > 0]

    def unseen_idf(self) -> float:
        """The inverse document frequency a term no chunk holds would have: the weight of a
        question's word the archive does not know, the rarest of all."""
        return float(np.log(1.0 + (self.size + 0.5) / 0.5))

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25 (Lucene) inverse document frequency of known terms, over chunks."""
        out = {}
        for t in self.known_terms(terms):
            df = float(self._df[self._vocab[t]])
            out[t] = float(np.log(1.0 + (self.size - df + 0.5) / (df + 0.5)))
        return out

    def scores_of(self, counts: np.ndarray, lengths: list[int], terms: list[str]) -> np.ndarray:
        """BM25 of short texts (sentences) for the query ``terms``, with the corpus's term
        weights; ``counts``: how many times each text holds each term (``term_counts``),
        ``lengths``: each text's number of terms."""
        idf = self.idf(terms)
        if not idf or not lengths:
            return np.zeros(len(lengths), dtype=np.float32)
        length = np.asarray(lengths, dtype=np.float32)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / (float(length.mean()) or 1.0))
        weights = np.asarray([idf.get(t, 0.0) for t in terms], dtype=np.float32)
        return (weights * counts * (BM25_K1 + 1) / (counts + norm[:, None])).sum(axis=1)


def term_counts(texts_terms: list[list[str]], terms: list[str]) -> np.ndarray:
    """(texts, terms): how many times each text holds each term."""
    column = {term: j for j, term in enumerate(terms)}
    counts = np.zeros((len(texts_terms), len(terms)), dtype=np.float32)
    hits = [(row, column[t]) for row, ts in enumerate(texts_terms) for t in ts if t in column]
    if hits:
        rows, columns = zip(*hits, strict=True)
        np.add.at(counts, (list(rows), list(columns)), 1.0)
    return counts


# --- keeping it in sync with Chroma ----------------------------------------------------------


def lexical_dir(store: IndexStore) -> Path:
    """Where this index's BM25 lives: beside an embedded index, or in the replica's cache."""
    settings = store.settings
    if not settings.chroma_url:
        return settings.index_dir / "lexical" / settings.collection
    import hashlib

    key = hashlib.sha256(f"{settings.chroma_url}|{settings.collection}".encode()).hexdigest()
    return settings.cache_dir / "lexical" / key[:16]


_sync_lock = threading.Lock()


def open_lexical(store: IndexStore, analyzer: Analyzer) -> LexicalIndex | None:
    """The published index, or None when there is none (or it cannot be read)."""
    root = lexical_dir(store)
    try:
        name = (root / "CURRENT").read_text(encoding="utf-8").strip()
        return LexicalIndex(root / name, analyzer)
    except (OSError, ValueError, KeyError) as exc:
        if (root / "CURRENT").exists():
            log.warning("lexical index at %s unreadable (%s): it will be rebuilt", root, exc)
        return None


def sync_lexical(
    store: IndexStore,
    analyzer: Analyzer,
    current: LexicalIndex | None = None,
    version: CorpusVersion | None = None,
    progress: bool = False,
) -> LexicalIndex | None:
    """An index up to date with ``version`` (read from Chroma when not given)."""
    version = version if version is not None else store.corpus_version()
    if version is None:
        return None
    with _sync_lock:
        current = current or open_lexical(store, analyzer)
        if current is not None and current.generation == version.generation:
            return current
        # Another process (the ingest, another replica on this machine) may have done it.
        published = open_lexical(store, analyzer)
        if published is not None and published.generation == version.generation:
            return published
        tokens, since = _reusable_tokens(published, version)
        tokens = _with_changes(store, analyzer, tokens, since, progress)
        return _publish(store, analyzer, tokens, version)


def _reusable_tokens(published: LexicalIndex | None, version: CorpusVersion) -> tuple[_Tokens, int]:
    """Token ids worth keeping, and the generation after which articles must be re-read."""
    if (
        published is None
        or published.fingerprint != version.fingerprint
        or published.generation > version.generation
        or version.rebuilt_after > published.generation
    ):
        return _empty_tokens(), 0
    folder = published.folder
    vocab = json.loads((folder / "token_vocab.json").read_text(encoding="utf-8"))
    return (
        _Tokens(
            np.asarray(published.chunk_ids),
            np.asarray(published.doc_ids),
            np.asarray(published.days),
            np.load(folder / "token_ids.npy"),
            np.load(folder / "token_starts.npy"),
            vocab,
        ),
        published.generation,
    )


def _with_changes(
    store: IndexStore, analyzer: Analyzer, tokens: _Tokens, since: int, progress: bool
) -> _Tokens:
    """Re-read the chunks of articles committed after generation ``since``."""
    where = {"generation": {"$gt": since}} if since else None
    records = {
        doc_id: meta["content_hash"]
        for rows in store.scan(store.documents, include=["metadatas"], where=where)
        for doc_id, meta in zip(rows.ids, rows.metadatas, strict=True)
    }
    if not records:
        return tokens
    tokens = tokens.without_docs(set(records))
    from tqdm import tqdm

    doc_list = sorted(records)
    bar = tqdm(total=len(doc_list), unit="article", desc="lexical index", disable=not progress)
    with bar:
        for i in range(0, len(doc_list), 200):
            batch = doc_list[i : i + 200]
            chunks = _committed_chunks(store, batch, records)
            tokens = tokens.plus(
                chunks.ids,
                [m["doc_id"] for m in chunks.metadatas],
                [int(m.get("published_day") or 0) for m in chunks.metadatas],
                _with_titles(chunks, analyzer.terms_of(chunks.texts), analyzer),
            )
            bar.update(len(batch))
    return tokens


def _with_titles(chunks: Rows, terms: list[list[str]], analyzer: Analyzer) -> list[list[str]]:
    """An article's title is searchable like its text. A file's headline is its first
    line, so its first chunk holds it already; the title of an export record (or a page's
    metadata) is not in the text, and its terms join the first chunk's."""
    for row, meta in enumerate(chunks.metadatas):
        title = own_title(meta)
        if meta.get("position") != 0 or not title:
            continue
        if " ".join(title.split()) not in " ".join(chunks.texts[row].split()):
            terms[row] = analyzer.terms(title) + terms[row]
    return terms


def _committed_chunks(store: IndexStore, doc_ids: list[str], hashes: dict[str, str]) -> Rows:
    ids, texts, metas = [], [], []
    for rows in store.scan(
        store.chunks, include=["documents", "metadatas"], where={"doc_id": {"$in": doc_ids}}
    ):
        for cid, text, meta in zip(rows.ids, rows.texts, rows.metadatas, strict=True):
            if hashes.get(meta["doc_id"]) == meta["content_hash"]:
                ids.append(cid)
                texts.append(text)
                metas.append(meta)
    return Rows(ids, texts, metas)


def _publish(
    store: IndexStore, analyzer: Analyzer, tokens: _Tokens, version: CorpusVersion
) -> LexicalIndex:
    import bm25s

    root = lexical_dir(store)
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"gen-{version.generation}-", dir=root))
    bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    rows = [
        tokens.ids[tokens.starts[i] : tokens.starts[i + 1]].tolist() for i in range(tokens.rows())
    ]
    if rows:
        bm25.scores = bm25.build_index_from_ids(
            unique_token_ids=list(range(len(tokens.vocab))),
            corpus_token_ids=rows,
            show_progress=False,
        )
    else:  # an empty corpus: no term matches anything
        bm25.scores = {
            "data": np.zeros(0, np.float32),
            "indices": np.zeros(0, np.int32),
            "indptr": np.zeros(len(tokens.vocab) + 1, np.int32),
            "num_docs": 0,
        }
        bm25.nonoccurrence_array = None  # set by indexing, which an empty corpus skips
    bm25.vocab_dict = tokens.vocab
    bm25.save(folder / "bm25", show_progress=False)
    np.save(folder / "chunk_ids.npy", tokens.chunk_ids)
    np.save(folder / "doc_ids.npy", tokens.doc_ids)
    np.save(folder / "days.npy", tokens.days)
    order = np.argsort(tokens.doc_ids, kind="stable")
    np.save(folder / "sorted_doc_ids.npy", tokens.doc_ids[order])
    np.save(folder / "doc_order.npy", order)
    np.save(folder / "token_ids.npy", tokens.ids)
    np.save(folder / "token_starts.npy", tokens.starts)
    (folder / "token_vocab.json").write_text(json.dumps(tokens.vocab), encoding="utf-8")
    manifest = {
        "format": FORMAT,
        "generation": version.generation,
        "fingerprint": version.fingerprint,
        "chunks": tokens.rows(),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    pointer = root / f".CURRENT.{os.getpid()}"
    pointer.write_text(folder.name, encoding="utf-8")
    os.replace(pointer, root / "CURRENT")
    _remove_old(root, keep=folder.name)
    return LexicalIndex(folder, analyzer)


def _remove_old(root: Path, keep: str) -> None:
    """Builds before the previous one. The previous one stays: a reader may have read
    ``CURRENT`` just before it moved. Open readers keep their memory maps either way."""
    older = sorted(
        (p for p in root.glob("gen-*") if p.name != keep), key=lambda p: p.stat().st_mtime
    )
    for old in older[:-1]:
        shutil.rmtree(old, ignore_errors=True)
