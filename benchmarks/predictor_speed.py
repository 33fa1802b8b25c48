"""Speed of `KronosPredictor` against the reference's full-recompute decoding loop.

Random weights shaped like a published model (`--model small`: Kronos-small, d_model 512,
8 layers; `base`: Kronos-base, d_model 832, 12 layers) with a Kronos-Tokenizer-base-sized
tokenizer, in one process. Regimes (lookback, bars): `fits` 400/30 (the window never slides),
`long` 300/60, `slides` 400/120 with max_context 512 (the last bars recompute a sliding
window); each with the sample counts of `--samples`. Prints a table and one JSON line with
medians, ratios, the predictor's kernel choice and peak memory.

The reference runs in float32 on its own copy of the weights with torch's default kernels, as
the reference code does. The predictor is timed with its defaults (kernels measured on this
machine on the CPU, whole-bar CUDA graphs on a GPU) in `--dtype`, and, in the `plain` column,
in float32 with torch's default kernels and no graphs.

    python -m benchmarks.predictor_speed [--device cuda] [--model base] [--dtype bfloat16]
        [--regimes fits long slides] [--samples 1 8] [--cases fits:1 slides:32]
        [--repeats 3] [--threads 1]
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
from tests.checkpoints import GOLDEN

LAYOUTS = GOLDEN / "checkpoint_layouts.json"
MODELS = {"small": "Kronos-small", "base": "Kronos-base"}
REGIMES = {"fits": (400, 30), "long": (300, 60), "slides": (400, 120)}  # (lookback, bars)
SAMPLING = SamplingParams(temperature=1.0, top_k=0, top_p=0.9)


@dataclass
class Row:
    regime: str
    lookback: int
    bars: int
    sample_count: int
    cached_s: float
    cached_plain_s: float
    reference_s: float
    speedup: float
    speedup_plain: float
    cached_runs: int
    reference_runs: int


def published_config(name: str) -> dict[str, Any]:
    """The constructor arguments of a published checkpoint (from the golden layouts)."""
    return dict(json.loads(LAYOUTS.read_text())[name]["config"])


def random_pair(model: str, device: torch.device, seed: int = 0) -> tuple[Kronos, KronosTokenizer]:
    """A random model shaped like `MODELS[model]` and a Kronos-Tokenizer-base-shaped tokenizer."""
    torch.manual_seed(seed)
    kronos = Kronos(**published_config(MODELS[model])).to(device).eval()
    tokenizer = KronosTokenizer(**published_config("Kronos-Tokenizer-base")).to(device).eval()
    return kronos, tokenizer


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
    parser.add_argument("--model", default="small", choices=list(MODELS))
    parser.add_argument("--dtype", default="float32", help="the predictor's dtype")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the predictor")
    parser.add_argument("--baseline-repeats", type=int, default=3, help="runs of the reference")
    parser.add_argument(
        "--baseline-budget-s",
        type=float,
        default=60.0,
        help="stop repeating a reference case once this much time is spent on it (>= 1 run)",
    )
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument(
        "--cases",
        nargs="+",
        default=[],
        metavar="REGIME:SAMPLES",
        help="explicit cases instead of every regime with every sample count, e.g. fits:1",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as set)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, tokenizer = random_pair(args.model, device)
    plain_model, plain_tokenizer = copy.deepcopy(model), copy.deepcopy(tokenizer)
    start = time.perf_counter()
    predictor = KronosPredictor(model, tokenizer, device=device, dtype=args.dtype)
    construct_s = time.perf_counter() - start
    plain = KronosPredictor(
        plain_model, plain_tokenizer, device=device, cuda_graphs=False, onednn=False
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

    pairs = [(r, s) for r in args.regimes for s in args.samples]
    if args.cases:
        pairs = [(case.split(":")[0], int(case.split(":")[1])) for case in args.cases]
    cases = [(r, *REGIMES[r], s) for r, s in pairs]
    for warm in (predictor, plain):  # first-call allocations, kernel selection, graph pools
        cached_run(400, 4, max(c[3] for c in cases), warm)()
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
        Row(c[0], c[1], c[2], c[3], cached[c][0], cached_plain[c][0], reference[c][0],
            reference[c][0] / cached[c][0], reference[c][0] / cached_plain[c][0],
            cached[c][1], reference[c][1])
        for c in cases
    ]  # fmt: skip
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else str(torch.cpu.get_capabilities().get("cpu_name", platform.processor()))
    )
    print(
        f"device {device} ({name}) | torch {torch.__version__} threads {torch.get_num_threads()}"
        f" | {MODELS[args.model]} shape, predictor {args.dtype}"
    )
    print(f"kernels: {predictor.kernels.describe()} (construction {construct_s:.2f} s)")
    print(f"decoding: {predictor.stats}")
    header = ("regime", "bars", "samples", "cached s", "plain s", "reference s", "speed-up")
    print("{:7} {:>8} {:>7} {:>9} {:>8} {:>12} {:>9} {:>6} {:>6}".format(*header, "plain", "runs"))
    for row in rows:
        print(
            f"{row.regime:7} {row.lookback:>4}/{row.bars:<3} {row.sample_count:>7} "
            f"{row.cached_s:>9.3f} {row.cached_plain_s:>8.3f} {row.reference_s:>12.3f} "
            f"{row.speedup:>8.1f}x {row.speedup_plain:>5.1f}x "
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
                "device_name": name,
                "model": MODELS[args.model],
                "dtype": args.dtype,
                "machine": platform.machine(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "kernels": asdict(predictor.kernels),
                "construction_s": round(construct_s, 3),
                "rows": [asdict(r) for r in rows],
                "peak_mib_cached": round(cached_peak, 1),
                "peak_mib_all": round(reference_peak, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
