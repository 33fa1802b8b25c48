"""Speed of the cached `KronosPredictor` against the reference's full-recompute decoding loop.

Kronos-small-sized random weights (d_model 512, 8 layers, ff 1024, 8 heads) with a
Kronos-Tokenizer-base-sized tokenizer, float32, in one process. Two regimes: `fits`
(lookback 400, 30 bars: the window never slides) and `slides` (lookback 400, 120 bars,
max_context 512: the last bars recompute a sliding window), each with 1 and 8 sample paths.
Prints a table and one JSON line with medians, ratios and peak memory. The reference runs on
its own copy of the weights with torch's default kernels, as the reference code does; the cached
predictor is timed with its defaults (oneDNN-packed linear layers on the CPU, CUDA graphs on a
GPU) and, in the `plain` column, without them.

    python -m benchmarks.predictor_speed [--device cuda] [--repeats 3] [--baseline-repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmarks.reference_decoding import reference_paths
from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.predictor import KronosPredictor, prepare_series
from kronos_integration.sampling import SamplingParams

SMALL: dict[str, Any] = dict(
    s1_bits=10, s2_bits=10, n_layers=8, d_model=512, n_heads=8, ff_dim=1024, ffn_dropout_p=0.25,
    attn_dropout_p=0.1, resid_dropout_p=0.25, token_dropout_p=0.1, learn_te=True,
)  # fmt: skip
TOKENIZER_BASE: dict[str, Any] = dict(
    d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, ffn_dropout_p=0.0,
    attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0,
    gamma=1.1, zeta=0.05, group_size=4,
)  # fmt: skip
REGIMES = {"fits": (400, 30), "slides": (400, 120)}  # name: (lookback, pred_len)
SAMPLING = SamplingParams(temperature=1.0, top_k=0, top_p=0.9)


@dataclass
class Row:
    regime: str
    sample_count: int
    cached_s: float
    cached_plain_s: float
    reference_s: float
    speedup: float
    speedup_plain: float
    cached_runs: int
    reference_runs: int


def synthetic_candles(length: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, length)))
    return pd.DataFrame(
        {
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": rng.uniform(1e3, 1e4, length),
        }
    )


def median_seconds(
    run: Callable[[], object], repeats: int, device: torch.device, budget_s: float = float("inf")
) -> tuple[float, int]:
    """Median wall time of up to `repeats` runs, stopping once `budget_s` is spent; (s, runs)."""
    times: list[float] = []
    while len(times) < repeats and (not times or sum(times) < budget_s):
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(times)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the cached predictor")
    parser.add_argument("--baseline-repeats", type=int, default=3, help="runs of the reference")
    parser.add_argument(
        "--baseline-budget-s",
        type=float,
        default=60.0,
        help="stop repeating a reference case once this much time is spent on it (>= 1 run)",
    )
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Kronos(**SMALL).to(device).eval()
    tokenizer = KronosTokenizer(**TOKENIZER_BASE).to(device).eval()
    plain_model, plain_tokenizer = copy.deepcopy(model), copy.deepcopy(tokenizer)
    predictor = KronosPredictor(model, tokenizer, device=device, max_context=512)
    plain = KronosPredictor(
        plain_model,
        plain_tokenizer,
        device=device,
        max_context=512,
        cuda_graphs=False,
        onednn=False,
    )
    stamps = pd.date_range("2024-01-02 09:30", periods=600, freq="5min")

    def cached_run(
        lookback: int, pred_len: int, samples: int, with_: KronosPredictor = predictor
    ) -> Callable[[], object]:
        df = synthetic_candles(lookback)
        x_ts, y_ts = stamps[:lookback], stamps[lookback : lookback + pred_len]
        return lambda: with_.forecast(df, x_ts, y_ts, pred_len, sample_count=samples, seed=1)

    def reference_run(lookback: int, pred_len: int, samples: int) -> Callable[[], object]:
        x_ts, y_ts = stamps[:lookback], stamps[lookback : lookback + pred_len]
        series = prepare_series(synthetic_candles(lookback), x_ts, y_ts, pred_len, 5.0)
        x, x_stamp, y_stamp = (
            torch.from_numpy(a)[None].to(device) for a in (series.x, series.x_stamp, series.y_stamp)
        )
        return lambda: reference_paths(
            plain_model, plain_tokenizer, x, x_stamp, y_stamp, pred_len, 512, SAMPLING, samples
        )

    cases = [(r, *REGIMES[r], s) for r in args.regimes for s in args.samples]
    cached_run(400, 2, 1)()  # warm-up: first-call allocations and kernel selection
    cached_run(400, 2, 1, plain)()
    cached = {c: median_seconds(cached_run(*c[1:]), args.repeats, device) for c in cases}
    cached_plain = {
        c: median_seconds(cached_run(*c[1:], plain), args.repeats, device) for c in cases
    }
    cached_peak = peak_memory_mib(device)
    reference = {
        c: median_seconds(
            reference_run(*c[1:]), args.baseline_repeats, device, args.baseline_budget_s
        )
        for c in cases
    }
    reference_peak = peak_memory_mib(device)

    rows = [
        Row(c[0], c[3], cached[c][0], cached_plain[c][0], reference[c][0],
            reference[c][0] / cached[c][0], reference[c][0] / cached_plain[c][0],
            cached[c][1], reference[c][1])
        for c in cases
    ]  # fmt: skip
    print(f"device {device} | torch {torch.__version__} threads {torch.get_num_threads()}")
    header = (
        "regime",
        "samples",
        "cached s",
        "plain s",
        "reference s",
        "speed-up",
        "plain",
        "runs",
    )
    print("{:8} {:>7} {:>9} {:>8} {:>12} {:>9} {:>6} {:>6}".format(*header))
    for row in rows:
        print(
            f"{row.regime:8} {row.sample_count:>7} {row.cached_s:>9.3f} {row.cached_plain_s:>8.3f} "
            f"{row.reference_s:>12.3f} {row.speedup:>8.1f}x {row.speedup_plain:>5.1f}x "
            f"{row.cached_runs:>3}/{row.reference_runs}"
        )
    print(
        f"peak memory: {cached_peak:.0f} MiB after cached runs, {reference_peak:.0f} MiB after all"
    )
    print(
        json.dumps(
            {
                "benchmark": "predictor_speed",
                "device": str(device),
                "machine": platform.machine(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "rows": [asdict(r) for r in rows],
                "peak_mib_cached": round(cached_peak, 1),
                "peak_mib_all": round(reference_peak, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
