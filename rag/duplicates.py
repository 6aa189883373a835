"""Near-duplicate articles: MinHash signatures of word 5-gram shingles, found through LSH.

Two articles are near duplicates when the Jaccard similarity of their sets of word
5-grams (of the clean text, lower-cased) is at least ``THRESHOLD``, as estimated from
128-permutation MinHash signatures; ``MinHashLSH`` proposes the candidates. The
threshold was chosen by measurement on the BBC archive with ``bench/duplicates.py``:
edited copies of one report score 0.56 and above (estimates 0.54 and above), the
closest different article (a follow-up reusing paragraphs) 0.47 (estimate 0.43), and
no other pair lies between 0.37 and 0.56. At 0.5 the index finds all 169 pairs (103
exact copies, 66 near) with no false pair.

datasketch imports scipy (about 0.6 s), so it is imported on first use.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

THRESHOLD = 0.5  # estimated Jaccard of word 5-gram sets
# LSH proposes pairs from this much below the threshold: at the threshold itself its
# banding missed 3 of the 10 BBC pairs between 0.5 and 0.7.
CANDIDATE_MARGIN = 0.2
NUM_PERM = 128
SHINGLE_WORDS = 5
SEED = 1
_FORMAT = 1  # of saved indexes
_WORD = re.compile(r"\w+")


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[str]:
    """Lower-cased word ``size``-grams; a text shorter than that is one shingle."""
    words = _WORD.findall(text.lower())
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def worded_alike(a: str, b: str) -> bool:
    """Two short texts (sentences) near duplicates by the articles' test, computed exactly:
    the Jaccard of their shingles reaches ``THRESHOLD``."""
    ours, theirs = shingles(a), shingles(b)
    return bool(ours and theirs) and jaccard(ours, theirs) >= THRESHOLD


@lru_cache(maxsize=1)
def _permutations() -> Any:
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, seed=SEED).permutations


def signature(text: str) -> Any:
    """The LeanMinHash of the text's shingles, or None for a text without words."""
    from datasketch import LeanMinHash, MinHash

    grams = shingles(text)
    if not grams:
        return None
    minhash = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=_permutations(), scheme="affine32")
    minhash.update_batch([g.encode("utf-8") for g in grams])
    return LeanMinHash(minhash)


class DuplicateIndex:
    """Doc ids by MinHash signature; ``query`` returns the near duplicates of a text."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self._signatures: dict[str, Any] = {}
        self._lsh = self._new_lsh()

    def _new_lsh(self) -> Any:
        from datasketch import MinHashLSH

        candidates = max(self.threshold - CANDIDATE_MARGIN, 0.05)
        return MinHashLSH(threshold=candidates, num_perm=NUM_PERM)

    def __len__(self) -> int:
        return len(self._signatures)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._signatures

    def doc_ids(self) -> list[str]:
        return list(self._signatures)

    def add(self, doc_id: str, text: str) -> None:
        """Index the clean text of ``doc_id`` (replacing an earlier one). A text without
        words is not indexed: it is nobody's duplicate."""
        self.remove(doc_id)
        sig = signature(text)
        if sig is not None:
            self._signatures[doc_id] = sig
            self._lsh.insert(doc_id, sig)

    def remove(self, doc_id: str) -> None:
        if self._signatures.pop(doc_id, None) is not None:
            self._lsh.remove(doc_id)

    def query(self, text: str) -> list[str]:
        """Indexed doc ids whose estimated Jaccard with ``text`` reaches the threshold,
        most similar first."""
        sig = signature(text)
        return [] if sig is None else [d for d, _ in self._matches(sig)]

    def duplicates_of(self, doc_id: str) -> list[tuple[str, float]]:
        """(doc id, estimated Jaccard) of the indexed near duplicates of ``doc_id``."""
        sig = self._signatures.get(doc_id)
        return [] if sig is None else [m for m in self._matches(sig) if m[0] != doc_id]

    def _matches(self, sig: Any) -> list[tuple[str, float]]:
        scored = ((d, self._signatures[d].jaccard(sig)) for d in self._lsh.query(sig))
        matches = [(d, j) for d, j in scored if j >= self.threshold]
        return sorted(matches, key=lambda m: (-m[1], m[0]))

    def save(self, path: Path) -> None:
        """Write the index atomically: readers see the old file or the new one."""
        # The LSH tables too: rebuilding them from 100,000 signatures takes 7 s of every
        # ingest into an index of that size; reading them back, 1 s.
        state = {
            "format": _FORMAT,
            "threshold": self.threshold,
            "signatures": self._signatures,
            "lsh": self._lsh,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> DuplicateIndex:
        """An index written by ``save``; the LSH tables are rebuilt from the signatures
        when the file has none (written by an earlier version)."""
        with path.open("rb") as f:
            try:
                state = pickle.load(f)
            except (AttributeError, ImportError, TypeError) as exc:  # another datasketch
                raise ValueError(f"{path} was written by another version: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a duplicate index (format {_FORMAT})")
        index = cls(state["threshold"])
        index._signatures = dict(state["signatures"])
        if state.get("lsh") is not None:
            index._lsh = state["lsh"]
            return index
        with index._lsh.insertion_session() as session:
            for doc_id, sig in index._signatures.items():
                session.insert(doc_id, sig)
        return index


def duplicate_groups(index: DuplicateIndex) -> list[list[str]]:
    """Doc ids linked by near-duplicate pairs (transitively), each group sorted; groups of
    two or more only, sorted by their first id."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    for doc_id in index.doc_ids():
        for other, _ in index.duplicates_of(doc_id):
            a, b = sorted((root(doc_id), root(other)))
            if a != b:
                parent[b] = a
    groups: dict[str, list[str]] = defaultdict(list)
    for doc_id in index.doc_ids():
        groups[root(doc_id)].append(doc_id)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)
