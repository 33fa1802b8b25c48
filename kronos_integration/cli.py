"""`python -m kronos_integration {download,push,predict,info}`: the model registry from a shell.

Defaults come from the service's own settings (`KRONOS_MODEL_ID`, `KRONOS_DEVICE`, `HF_TOKEN`, …),
so `download` fetches exactly what the service will load and `info` shows what it would load.
Exit status: 0 on success, 1 when loading, downloading or pushing fails, 2 for bad arguments or
input. The token is passed on, never printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pandas as pd
import torch
from huggingface_hub.errors import HfHubHTTPError

from app.settings import Settings, SettingsError
from kronos_integration.data import future_grid, read_history_file, validate_candles
from kronos_integration.forecast import CANDLE_COLUMNS, Forecast, check_quantile_levels
from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.plot import plot_forecast
from kronos_integration.predictor import KronosPredictor
from kronos_integration.registry import (
    ArtifactSpec,
    HubEnvironment,
    ModelLoadError,
    check_hub_repo_id,
    find_cached,
    is_local_spec,
    is_mlflow_spec,
    load_artifacts,
    load_module,
    resolve_artifact,
    resolve_device,
)

logger = logging.getLogger(__name__)

CHECKPOINT_KINDS: tuple[str, ...] = ("model", "tokenizer")


class UsageError(ValueError):
    """Bad arguments or input file (exit status 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args = build_parser(settings).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.run(args, settings)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    """The argument parser; artifact and device defaults are `settings`' values."""
    parser = argparse.ArgumentParser(
        prog="python -m kronos_integration",
        description="Fetch, publish, inspect and run Kronos checkpoints.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    download = commands.add_parser(
        "download", help="pre-fetch model and tokenizer into the Hugging Face cache (HF_HOME)"
    )
    _add_artifact_options(download, settings)
    download.set_defaults(run=run_download)

    push = commands.add_parser("push", help="upload a local checkpoint folder to a hub repo")
    push.add_argument("folder", type=Path, help="folder with config.json and model.safetensors")
    push.add_argument("repo_id", help="target hub repo, ORG/NAME (created if missing)")
    push.add_argument("--kind", choices=CHECKPOINT_KINDS, required=True)
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--branch", default=None, help="push to this branch (default: main)")
    push.set_defaults(run=run_push)

    predict = commands.add_parser("predict", help="forecast from a CSV of candles")
    predict.add_argument("csv", type=Path, help="CSV with timestamp, open, high, low, close[, …]")
    predict.add_argument("--pred-len", type=_positive_int, default=24, help="future bars")
    predict.add_argument("--lookback", type=_positive_int, default=settings.lookback)
    predict.add_argument(
        "--sample-count", type=_positive_int, default=settings.default_sample_count
    )
    predict.add_argument("--quantiles", type=_quantile_list, default=(0.1, 0.5, 0.9))
    predict.add_argument("--seed", type=int, default=None)
    predict.add_argument("--temperature", type=float, default=1.0)
    predict.add_argument("--top-k", type=int, default=0)
    predict.add_argument("--top-p", type=float, default=0.9)
    predict.add_argument("--max-context", type=_positive_int, default=settings.max_context)
    predict.add_argument("--clip", type=float, default=settings.clip)
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.add_argument("--plot", type=Path, default=None, metavar="FILE", help="write a PNG")
    _add_artifact_options(predict, settings)
    _add_device_option(predict, settings)
    predict.set_defaults(run=run_predict)

    info = commands.add_parser("info", help="what would be loaded, from where, on which device")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_artifact_options(info, settings)
    _add_device_option(info, settings)
    info.set_defaults(run=run_info)
    return parser


def run_download(args: argparse.Namespace, settings: Settings) -> None:
    for spec in _specs(args):
        resolved = resolve_artifact(spec, token=settings.hf_token, hub_timeout_s=args.hub_timeout)
        print(
            f"{spec.repo_id}@{spec.revision or 'main'}: commit {resolved.sha} ({resolved.source})"
        )
        print(f"  {resolved.folder}")


def run_push(args: argparse.Namespace, settings: Settings) -> None:
    spec = ArtifactSpec(str(args.folder))
    if not args.folder.is_dir():
        raise UsageError(f"{args.folder} is not a folder")
    if is_local_spec(ArtifactSpec(args.repo_id)):
        raise UsageError(f"{args.repo_id!r} is not a hub repo id of the form ORG/NAME")
    resolved = resolve_artifact(spec)
    cpu = torch.device("cpu")
    module: Kronos | KronosTokenizer = (
        load_module(Kronos, resolved, cpu)
        if args.kind == "model"
        else load_module(KronosTokenizer, resolved, cpu)
    )
    try:
        url = module.push_to_hub(
            args.repo_id,
            private=args.private,
            token=settings.hf_token,
            branch=args.branch,
            commit_message=f"Upload Kronos {args.kind} checkpoint",
        )
    except (HfHubHTTPError, OSError, httpx2.HTTPError) as error:
        detail = str(error).replace(settings.hf_token, "***") if settings.hf_token else str(error)
        raise ModelLoadError(args.repo_id, f"push failed: {detail}") from error
    print(url)


def run_predict(args: argparse.Namespace, settings: Settings) -> None:
    if args.plot is not None and not args.plot.parent.is_dir():
        raise UsageError(f"--plot {args.plot}: the folder {args.plot.parent} does not exist")
    try:
        history = validate_candles(read_history_file(args.csv))
        # The grid comes from the whole file: a short lookback must not lose the session's times.
        grid = future_grid(pd.DatetimeIndex(history.index), args.pred_len)
    except (OSError, ValueError) as error:
        raise UsageError(f"{args.csv}: {error}") from error
    candles = history.iloc[-args.lookback :]
    x_timestamps = pd.DatetimeIndex(candles.index)
    y_timestamps = grid.timestamps[: args.pred_len]
    device = _device(args)
    model_spec, tokenizer_spec = _specs(args)
    loaded = load_artifacts(
        model_spec,
        tokenizer_spec,
        device=device,
        token=settings.hf_token,
        hub_timeout_s=args.hub_timeout,
    )
    try:
        predictor = KronosPredictor(
            loaded.model, loaded.tokenizer, device, max_context=args.max_context, clip=args.clip
        )
        forecast = predictor.forecast(
            candles,
            x_timestamps,
            y_timestamps,
            args.pred_len,
            sample_count=args.sample_count,
            T=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            quantiles=args.quantiles,
            seed=args.seed,
        )
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.json:
        document = {
            "model": {"id": model_spec.repo_id, "sha": loaded.model_sha},
            "tokenizer": {"id": tokenizer_spec.repo_id, "sha": loaded.tokenizer_sha},
            **forecast_document(forecast),
        }
        print(json.dumps(document, indent=2))
    else:
        print(forecast_table(forecast).to_string(float_format=lambda v: f"{v:.4f}"))
    if args.plot is not None:
        title = f"{model_spec.repo_id}: {args.pred_len} bars, {forecast.sample_count} paths"
        plot_forecast(candles, forecast, args.plot, title=title)
        print(f"plot written to {args.plot}", file=sys.stderr)


def run_info(args: argparse.Namespace, settings: Settings) -> None:
    hub = HubEnvironment.from_env()
    try:
        device = str(_device(args))
    except UsageError as error:
        device = f"unusable: {error}"
    report: dict[str, Any] = {
        "device": device,
        "hub_endpoint": hub.endpoint,
        "hub_cache": str(hub.cache_dir),
        "offline": hub.offline,
        "hf_token": "set" if settings.hf_token else "not set",
        "artifacts": [
            _artifact_report(kind, spec, hub)
            for kind, spec in zip(("model", "tokenizer"), _specs(args), strict=True)
        ],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for artifact in report["artifacts"]:
        print(f"{artifact['kind']}: {artifact['id']} @ {artifact['revision']}")
        print(f"  {artifact['where']}")
    for key in ("device", "hub_endpoint", "hub_cache", "offline", "hf_token"):
        print(f"{key}: {report[key]}")


def forecast_table(forecast: Forecast) -> pd.DataFrame:
    """Per future bar: the mean of each candle column, then each close quantile."""
    table = forecast.mean_frame()
    close = CANDLE_COLUMNS.index("close")
    for level, values in zip(forecast.quantile_levels, forecast.quantiles, strict=True):
        table[f"close_q{level:g}"] = values[:, close]
    return table


def forecast_document(forecast: Forecast) -> dict[str, Any]:
    """The forecast as JSON-ready data: per bar its timestamp, mean and quantiles by column."""
    quantiles = forecast.quantiles  # (Q, L, 6)
    bars = []
    for position, timestamp in enumerate(forecast.timestamps):
        per_level = {
            f"{level:g}": _by_column(quantiles[q, position])
            for q, level in enumerate(forecast.quantile_levels)
        }
        bars.append(
            {
                "timestamp": timestamp.isoformat(),
                "mean": _by_column(forecast.mean[position]),
                "quantiles": per_level,
            }
        )
    return {
        "sample_count": forecast.sample_count,
        "seed": forecast.seed,
        "quantile_levels": list(forecast.quantile_levels),
        "bars": bars,
    }


def _by_column(row: np.ndarray) -> dict[str, float]:
    return {name: float(value) for name, value in zip(CANDLE_COLUMNS, row, strict=True)}


def _artifact_report(kind: str, spec: ArtifactSpec, hub: HubEnvironment) -> dict[str, Any]:
    cached = find_cached(spec, hub=hub)
    if cached is not None and cached.source == "local":
        where = f"local folder {cached.folder}"
    elif cached is not None:
        where = f"hub cache, commit {cached.sha}: {cached.folder}"
    elif is_mlflow_spec(spec):
        where = "MLflow model registry (MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI)"
    elif is_local_spec(spec):
        where = "local folder that does not exist"
    elif problem := _repo_id_problem(spec.repo_id):
        where = f"{problem}: loading will fail"
    elif hub.offline:
        where = "not cached, and HF_HUB_OFFLINE=1: loading will fail"
    else:
        where = f"not cached: will be downloaded from {hub.endpoint} into {hub.cache_dir}"
    return {
        "kind": kind,
        "id": spec.repo_id,
        "revision": spec.revision or "main",
        "sha": cached.sha if cached else None,
        "where": where,
    }


def _repo_id_problem(repo_id: str) -> str | None:
    try:
        check_hub_repo_id(repo_id)
    except ModelLoadError as error:
        return error.reason
    return None


def _specs(args: argparse.Namespace) -> tuple[ArtifactSpec, ArtifactSpec]:
    return (
        ArtifactSpec(args.model, args.revision),
        ArtifactSpec(args.tokenizer, args.tokenizer_revision),
    )


def _device(args: argparse.Namespace) -> torch.device:
    try:
        return resolve_device(args.device)
    except ValueError as error:
        raise UsageError(str(error)) from error


def _add_artifact_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    group = parser.add_argument_group("checkpoints (defaults from KRONOS_* variables)")
    group.add_argument("--model", default=settings.model_id, help="hub repo id or local folder")
    group.add_argument("--revision", default=settings.model_revision, help="branch, tag or sha")
    group.add_argument("--tokenizer", default=settings.tokenizer_id)
    group.add_argument("--tokenizer-revision", default=settings.tokenizer_revision)
    group.add_argument(
        "--hub-timeout", type=float, default=settings.hub_timeout_s, help="seconds per request"
    )


def _add_device_option(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("--device", default=settings.device, help="cpu, cuda, cuda:N or auto")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _quantile_list(text: str) -> tuple[float, ...]:
    try:
        return check_quantile_levels([float(part) for part in text.split(",")])
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
