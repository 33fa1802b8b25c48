"""How far the predictor's reduced-precision dtypes stray from float32, and their speed.

Deviation, over the golden windows (`tests/golden`: the tiny reference checkpoints on real
5-minute candles; the 6 greedy and 12 sampled cases of `expected.json`), each case decoded in
float32 and in every other dtype the device runs, with the same seed:

- free-running token agreement: the share of generated (s1, s2) tokens that are equal, and the
  mean number of bars before a sample path's first different token (after one, the paths see
  different contexts and part ways);
- teacher-forced agreement: over the last window of float32's own tokens (history plus
  generated), the share of positions where the dtype's most likely next s1 token is float32's;
- the largest relative deviation of the mean forecast (price units, over the case's scale).

Speed: Kronos-small-shaped random weights, lookback 300 / 60 bars with 1 and 8 samples,
each dtype against float32 in one process (median of `--repeats`, interleaved).

    python -m benchmarks.dtype_compare [--device cuda] [--repeats 3] [--threads 1]
        [--skip-speed] [--skip-deviation]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmarks.predictor_speed import random_pair, synthetic_candles
from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.model.generation import History
from kronos_integration.model.kernels import supported_dtypes
from kronos_integration.predictor import KronosPredictor, prepare_series
from kronos_integration.sampling import SamplingParams
from tests.checkpoints import GOLDEN

WEIGHTS = {"model": "tiny-model", "model_fixed_te": "tiny-model-fixed-te"}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def generated_tokens(
    predictor: KronosPredictor, history: History, case: dict[str, Any], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens (s1, s2) of every sample path, each (samples, history + pred_len)."""
    sampling = case["sampling"]
    params = SamplingParams(sampling["T"], sampling["top_k"], sampling["top_p"])
    generator = torch.Generator(device=predictor.device).manual_seed(seed)
    run = predictor.decode_run(
        [history], case["pred_len"], sampling["sample_count"], params, generator
    )
    with torch.inference_mode():
        for bar in range(case["pred_len"]):
            run.bar(bar)
    return run.s1, run.s2


def teacher_forced_agreement(
    predictors: tuple[KronosPredictor, KronosPredictor], s1: torch.Tensor, s2: torch.Tensor,
    stamps: torch.Tensor, max_context: int,
) -> float:  # fmt: skip
    """Share of positions of the last window where both predict the same most likely s1."""
    window = slice(max(0, s1.shape[1] - max_context), s1.shape[1])
    choices = []
    with torch.inference_mode():
        for predictor in predictors:
            engine = predictor.engines.window
            x = engine.embed(s1[:, window], s2[:, window], engine.time_embedding(stamps[:, window]))
            hidden = engine.window(x)
            choices.append(engine.s1_logits(hidden).argmax(-1))
    return float((choices[0] == choices[1]).float().mean())


def deviation(dtypes: list[torch.dtype], device: torch.device) -> list[dict]:
    expected = json.loads((GOLDEN / "expected.json").read_text())
    candles = pd.read_csv(GOLDEN / "candles.csv", parse_dates=["timestamps"])
    future = pd.read_csv(GOLDEN / "future_timestamps.csv", parse_dates=["timestamps"])
    tokenizer = KronosTokenizer.from_pretrained(str(GOLDEN / "tiny-tokenizer"))
    models = {k: Kronos.from_pretrained(str(GOLDEN / v)) for k, v in WEIGHTS.items()}
    rows = []
    predictors: dict[tuple[str, int], dict[torch.dtype, KronosPredictor]] = {}
    for kind in ("greedy_predictions", "sampled_predictions"):
        for case in expected[kind]:
            history_df = candles.iloc[-case["lookback"] :]
            y_ts = future["timestamps"][: case["pred_len"]]
            series = prepare_series(
                history_df.drop(columns="timestamps"),
                history_df["timestamps"],
                y_ts,
                case["pred_len"],
                case["clip"],
            )
            history = History(series.x, series.x_stamp, series.y_stamp)
            seed = case["sampling"].get("seed", 0)
            key = (case["weights"], case["max_context"])
            if key not in predictors:
                predictors[key] = {
                    dtype: KronosPredictor(
                        models[case["weights"]],
                        tokenizer,
                        device=device,
                        max_context=case["max_context"],
                        dtype=dtype,
                    )
                    for dtype in dtypes
                }
            built = predictors[key]
            base_s1, base_s2 = generated_tokens(built[torch.float32], history, case, seed)
            stamps = torch.from_numpy(np.concatenate([series.x_stamp, series.y_stamp]))[None]
            stamps = stamps.to(device).expand(len(base_s1), -1, -1)
            start = len(series.x)
            for dtype, predictor in built.items():
                if dtype == torch.float32:
                    continue
                s1, s2 = generated_tokens(predictor, history, case, seed)
                same = (s1[:, start:] == base_s1[:, start:]) & (s2[:, start:] == base_s2[:, start:])
                first = [
                    int(np.argmin(row)) if not row.all() else len(row) for row in same.cpu().numpy()
                ]
                rows.append(
                    {
                        "case": f"{case['name']}-{case['weights']}",
                        "kind": kind.split("_")[0],
                        "dtype": dtype_name(dtype),
                        "token_agreement": float(same.float().mean()),
                        "bars_before_first_difference": statistics.mean(first),
                        "pred_len": case["pred_len"],
                        "teacher_forced_s1_agreement": teacher_forced_agreement(
                            (built[torch.float32], predictor),
                            base_s1,
                            base_s2,
                            stamps,
                            case["max_context"],
                        ),
                        "mean_forecast_rel_deviation": mean_deviation(
                            built[torch.float32], predictor, history_df, y_ts, case, seed
                        ),
                    }
                )
    return rows


def mean_deviation(
    base: KronosPredictor,
    other: KronosPredictor,
    history: pd.DataFrame,
    y_ts: pd.Series,
    case: dict[str, Any],
    seed: int,
) -> float:
    """max |mean forecast difference| / max |float32 mean forecast|, per column, worst column."""
    sampling = case["sampling"]
    means = [
        p.forecast(
            history.drop(columns="timestamps"),
            history["timestamps"],
            y_ts,
            case["pred_len"],
            sample_count=sampling["sample_count"],
            T=sampling["T"],
            top_k=sampling["top_k"],
            top_p=sampling["top_p"],
            seed=seed,
        ).mean
        for p in (base, other)
    ]
    scale = np.abs(means[0]).max(axis=0) + 1e-9
    return float((np.abs(means[1] - means[0]).max(axis=0) / scale).max())


def speed(dtypes: list[torch.dtype], device: torch.device, repeats: int) -> list[dict]:
    model, tokenizer = random_pair("small", device)
    predictors = {d: KronosPredictor(model, tokenizer, device=device, dtype=d) for d in dtypes}
    stamps = pd.date_range("2024-01-02 09:30", periods=400, freq="5min")
    lookback, bars = 300, 60
    df, x_ts, y_ts = synthetic_candles(lookback), stamps[:lookback], stamps[lookback:][:bars]
    rows = []
    for samples in (1, 8):
        times: dict[torch.dtype, list[float]] = {d: [] for d in dtypes}
        for _ in range(repeats + 1):  # the first round warms up
            for dtype, predictor in predictors.items():
                start = time.perf_counter()
                predictor.forecast(df, x_ts, y_ts, bars, sample_count=samples, seed=1)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times[dtype].append(time.perf_counter() - start)
        base = statistics.median(times[torch.float32][1:])
        for dtype in dtypes:
            median = statistics.median(times[dtype][1:])
            rows.append(
                {
                    "lookback": lookback,
                    "bars": bars,
                    "samples": samples,
                    "dtype": dtype_name(dtype),
                    "seconds": median,
                    "vs_float32": base / median,
                    "kernels": predictors[dtype].kernels.describe(),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-deviation", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as set)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtypes = list(supported_dtypes(device))
    print(
        f"device {device} | torch {torch.__version__} threads {torch.get_num_threads()}"
        f" | dtypes {[dtype_name(d) for d in dtypes]}"
    )
    if len(dtypes) == 1:
        print("this device runs float32 only: nothing to compare")
        return
    rows = [] if args.skip_deviation else deviation(dtypes, device)
    print(
        f"{'case':40} {'kind':7} {'dtype':9} {'tokens =':>8} {'bars to 1st ≠':>13} "
        f"{'forced s1 =':>11} {'mean dev':>9}"
    )
    for r in rows:
        print(
            f"{r['case']:40} {r['kind']:7} {r['dtype']:9} {r['token_agreement']:>8.3f} "
            f"{r['bars_before_first_difference']:>6.1f}/{r['pred_len']:<6} "
            f"{r['teacher_forced_s1_agreement']:>11.3f} {r['mean_forecast_rel_deviation']:>9.2e}"
        )
    summary = {}
    for dtype in sorted({r["dtype"] for r in rows}):
        for kind in ("greedy", "sampled"):
            chosen = [r for r in rows if r["dtype"] == dtype and r["kind"] == kind]
            summary[f"{dtype}/{kind}"] = {
                key: round(statistics.mean(r[key] for r in chosen), 4)
                for key in (
                    "token_agreement",
                    "teacher_forced_s1_agreement",
                    "mean_forecast_rel_deviation",
                )
            }
    print("mean over cases:", json.dumps(summary))
    timing = [] if args.skip_speed else speed(dtypes, device, args.repeats)
    for r in timing:
        print(
            f"speed {r['lookback']}/{r['bars']}/{r['samples']} {r['dtype']:9} "
            f"{r['seconds']:.3f} s  {r['vs_float32']:.2f}x float32  [{r['kernels']}]"
        )
    print(
        json.dumps(
            {
                "benchmark": "dtype_compare",
                "device": str(device),
                "torch": torch.__version__,
                "deviation": rows,
                "summary": summary,
                "speed": timing,
            }
        )
    )


if __name__ == "__main__":
    main()
