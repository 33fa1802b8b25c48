"""An oracle for `KronosPredictor.predict` that shares none of the project's decoding code.

Written from the reference inference procedure in the architecture notes (KRONOS_ARCHITECTURE.md,
"Inference procedure of the reference predictor"): normalisation, time features, window, token
sampling and averaging are all here; only the model classes (`Kronos.decode_s1`/`decode_s2`,
`KronosTokenizer.encode`/`decode`, which the golden vectors check on their own) come from the
project. It recomputes the whole window for every bar, as the reference does, and draws from
torch's global generator in the reference's order (s1, then s2, each step, all rows at once), so
under the same `torch.manual_seed` it reproduces the reference's sampled paths.
`tests/test_golden_sampled.py` checks it against the published outputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from kronos_integration.model import Kronos, KronosTokenizer

COLUMNS = ["open", "high", "low", "close", "volume", "amount"]


def _stamps(timestamps: pd.Series | pd.DatetimeIndex) -> torch.Tensor:
    """(T, 5) float32: minute, hour, weekday (Mon=0), day of month, month."""
    index = pd.DatetimeIndex(timestamps)
    columns = [index.minute, index.hour, index.day_of_week, index.day, index.month]
    return torch.tensor(np.array(columns, dtype=np.float32).T)


def _filtered(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """The reference's rule: top-k when top_k > 0 (top_p then ignored), else nucleus when
    top_p < 1 (the first token past top_p is kept)."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        return logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True)
        mass_before = torch.cumsum(torch.softmax(ordered, dim=-1), dim=-1)
        drop_sorted = torch.zeros_like(mass_before, dtype=torch.bool)
        drop_sorted[:, 1:] = mass_before[:, :-1] > top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        return logits.masked_fill(drop, float("-inf"))
    return logits


def _draw(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """One token per row (R, V) -> (R, 1), from the global generator."""
    probs = torch.softmax(_filtered(logits / temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, num_samples=1)


@torch.no_grad()
def reference_predict(
    model: Kronos,
    tokenizer: KronosTokenizer,
    df: pd.DataFrame,
    x_timestamp: pd.Series | pd.DatetimeIndex,
    y_timestamp: pd.Series | pd.DatetimeIndex,
    pred_len: int,
    *,
    max_context: int = 512,
    clip: float = 5.0,
    T: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.9,
    sample_count: int = 1,
) -> np.ndarray:
    """The mean forecast (pred_len, 6) float32 in price units, columns open … amount.

    Missing columns are filled as the reference does: no volume, then volume and amount are 0;
    volume but no amount, then amount is volume × mean(open, high, low, close). The model and
    tokenizer are on the CPU (they are put in eval mode).
    """
    model, tokenizer = model.eval(), tokenizer.eval()
    df = df.copy()
    if "volume" not in df:
        df["volume"] = df["amount"] = 0.0
    if "amount" not in df:
        df["amount"] = df["volume"] * df[["open", "high", "low", "close"]].mean(axis=1)
    x = df[COLUMNS].to_numpy(dtype=np.float32)
    mean, std = x.mean(axis=0), x.std(axis=0)
    normalised = np.clip((x - mean) / (std + 1e-5), -clip, clip)
    rows = torch.from_numpy(normalised)[None].repeat_interleave(sample_count, dim=0)  # (R, L, 6)
    stamps = torch.cat((_stamps(x_timestamp), _stamps(y_timestamp)))[None]
    stamps = stamps.repeat_interleave(sample_count, dim=0)  # (R, L + pred_len, 5)
    s1, s2 = tokenizer.encode(rows, half=True)  # (R, L) each
    for _ in range(pred_len):
        end = s1.shape[1]
        start = max(0, end - max_context)
        logits, hidden = model.decode_s1(s1[:, start:], s2[:, start:], stamps[:, start:end])
        s1_next = _draw(logits[:, -1], T, top_k, top_p)
        s2_next = _draw(model.decode_s2(hidden, s1_next)[:, -1], T, top_k, top_p)
        s1, s2 = torch.cat((s1, s1_next), dim=1), torch.cat((s2, s2_next), dim=1)
    start = max(0, s1.shape[1] - max_context)
    decoded = tokenizer.decode((s1[:, start:], s2[:, start:]), half=True)[:, -pred_len:]
    mean_path = decoded.numpy().mean(axis=0)  # (pred_len, 6): average, then denormalise
    return np.asarray(mean_path * (std + 1e-5) + mean, dtype=np.float32)
