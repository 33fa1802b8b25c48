"""Token sampling: temperature, top-k and nucleus (top-p) filtering, then one multinomial draw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SamplingParams:
    """How to draw a token from logits.

    `reference_top_k` keeps the reference predictor's rule: when `top_k > 0` nucleus filtering is
    skipped, whatever `top_p` says. Without it both filters apply (top-k first, then top-p).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    reference_top_k: bool = True

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"T (temperature) must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")


def _keep_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    k = min(max(top_k, 1), logits.shape[-1])
    kth_largest = torch.topk(logits, k)[0][..., -1, None]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def _keep_nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the most likely tokens up to and including the first whose cumulative mass > top_p."""
    sorted_logits, sorted_indices = torch.sort(logits, descending=True)
    cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    # A token goes when the mass before it already exceeds top_p; the most likely one stays.
    remove_sorted = torch.zeros_like(cumulative, dtype=torch.bool)
    torch.gt(cumulative[..., :-1], top_p, out=remove_sorted[..., 1:])
    remove = remove_sorted.scatter(-1, sorted_indices, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


RowGenerators = Sequence[tuple[int, torch.Generator | None]]
"""Consecutive blocks of rows and the generator each block draws from: (rows, generator)."""


def sample_tokens(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | RowGenerators | None = None,
) -> torch.Tensor:
    """Draw one token per row of `logits` (N, V): int64 (N, 1) on the logits' device.

    The draw is `torch.multinomial(probs, 1)`'s own algorithm (`argmax(probs / q)`, q ~ Exp(1)
    from `generator`), so it consumes the generator and picks tokens exactly as torch does,
    but without multinomial's host-side checks: it can run inside a CUDA graph. `generator`
    may also give each block of rows its own generator (`RowGenerators`, rows summing to N):
    each block then draws exactly what it would draw alone, whatever the other blocks are.
    """
    if params.temperature != 1.0:  # x / 1.0 == x exactly: skip the op
        logits = logits / params.temperature
    if params.top_k > 0:
        logits = _keep_top_k(logits, params.top_k)
    if params.top_p < 1.0 and not (params.top_k > 0 and params.reference_top_k):
        logits = _keep_nucleus(logits, params.top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.argmax(probs / exponential_noise(probs, generator), dim=-1, keepdim=True)


def exponential_noise(
    like: torch.Tensor, generator: torch.Generator | RowGenerators | None
) -> torch.Tensor:
    """Exp(1) noise shaped like `like` (N, V), from one generator or one per block of rows."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.empty_like(like).exponential_(1, generator=generator)
    blocks = [
        like.new_empty(rows, like.shape[-1]).exponential_(1, generator=block_generator)
        for rows, block_generator in generator
    ]
    if sum(len(b) for b in blocks) != like.shape[0]:
        raise ValueError(f"the generators' rows do not add up to the {like.shape[0]} rows")
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)
