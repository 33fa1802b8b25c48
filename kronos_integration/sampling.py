"""Token sampling: temperature, top-k and nucleus (top-p) filtering, then one multinomial draw."""

from __future__ import annotations

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
    remove_sorted = cumulative > top_p
    remove_sorted[..., 1:] = remove_sorted[..., :-1].clone()
    remove_sorted[..., 0] = False
    remove = remove_sorted.scatter(1, sorted_indices, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def sample_tokens(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw one token per row of `logits` (N, V): int64 (N, 1) on the logits' device."""
    logits = logits / params.temperature
    if params.top_k > 0:
        logits = _keep_top_k(logits, params.top_k)
    if params.top_p < 1.0 and not (params.top_k > 0 and params.reference_top_k):
        logits = _keep_nucleus(logits, params.top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
