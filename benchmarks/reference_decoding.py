"""The reference predictor's decoding loop without a cache: the baseline to measure against.

It follows the published algorithm step for step (repeat each series `sample_count` times,
encode the repeated batch, recompute the whole window for every generated bar, decode) on this
project's model classes and sampling. It is `predictor_speed.py`'s speed baseline only: tests
hold the predictor to the independent oracle `tests/reference_predictor.py`, which shares none
of the project's decoding or sampling code.
"""

from __future__ import annotations

import torch

from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.sampling import SamplingParams, sample_tokens


@torch.no_grad()  # as the reference does
def reference_paths(
    model: Kronos,
    tokenizer: KronosTokenizer,
    x: torch.Tensor,
    x_stamp: torch.Tensor,
    y_stamp: torch.Tensor,
    pred_len: int,
    max_context: int,
    params: SamplingParams,
    sample_count: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x (B, L, 6) normalised, stamps (B, L, 5)/(B, pred_len, 5) -> (B, samples, pred_len, 6)."""
    batch = x.shape[0]
    x = x.repeat_interleave(sample_count, dim=0)
    stamps = torch.cat((x_stamp, y_stamp), dim=1).repeat_interleave(sample_count, dim=0)
    s1, s2 = tokenizer.encode(x, half=True)
    history = x.shape[1]
    for step in range(pred_len):
        end = history + step
        start = max(0, end - max_context)
        logits, hidden = model.decode_s1(s1[:, start:end], s2[:, start:end], stamps[:, start:end])
        s1_next = sample_tokens(logits[:, -1], params, generator)
        s2_logits = model.decode_s2(hidden, s1_next)[:, -1]
        s2_next = sample_tokens(s2_logits, params, generator)
        s1 = torch.cat((s1, s1_next), dim=1)
        s2 = torch.cat((s2, s2_next), dim=1)
    start = max(0, history + pred_len - max_context)
    decoded = tokenizer.decode((s1[:, start:], s2[:, start:]), half=True)[:, -pred_len:]
    return decoded.reshape(batch, sample_count, pred_len, -1)
