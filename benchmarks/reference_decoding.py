"""The reference predictor's decoding loop without a cache: the baseline to measure against.

It follows the published algorithm step for step (repeat each series `sample_count` times,
encode the repeated batch, recompute the whole window for every generated bar, decode, average)
on this project's model classes. Tests use it to show the cached predictor gives the same
results; `predictor_speed.py` uses it as the speed baseline.
"""

from __future__ import annotations

import pandas as pd
import torch

from kronos_integration.forecast import CANDLE_COLUMNS
from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.predictor import Timestamps, prepare_series
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


def reference_predict(
    model: Kronos,
    tokenizer: KronosTokenizer,
    df: pd.DataFrame,
    x_timestamp: Timestamps,
    y_timestamp: Timestamps,
    pred_len: int,
    *,
    max_context: int = 512,
    clip: float = 5.0,
    params: SamplingParams | None = None,
    sample_count: int = 1,
) -> pd.DataFrame:
    """The reference `KronosPredictor.predict`, recomputing the window at every step."""
    series = prepare_series(df, x_timestamp, y_timestamp, pred_len, clip)
    device = next(model.parameters()).device
    paths = reference_paths(
        model,
        tokenizer,
        torch.from_numpy(series.x)[None].to(device),
        torch.from_numpy(series.x_stamp)[None].to(device),
        torch.from_numpy(series.y_stamp)[None].to(device),
        pred_len,
        max_context,
        params or SamplingParams(),
        sample_count,
    )
    mean = series.denormalise(paths[0].cpu().numpy().mean(axis=0))
    return pd.DataFrame(mean, columns=list(CANDLE_COLUMNS), index=y_timestamp)
