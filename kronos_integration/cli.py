"""`kronos` (or `python -m kronos_integration`) `{predict,backtest,download,push,info}`.

`predict` forecasts a CSV or Parquet file of candles through the same pipeline as the service, in
the same modes (`auto` falls back to the simulator and says so), and prints the same per-day
summary (`--json`: the same document as `POST /predict`). `backtest` scores a backend's forecasts
from rolling origins of such a file against what happened, beside naive baselines (a table on
stdout, a progress bar on stderr, `--json` summary, `--report` HTML page). Defaults come from the
same `KRONOS_*` variables as the service (`KRONOS_MODEL_ID`, `KRONOS_DEVICE`, `HF_TOKEN`, …), so
`download` fetches exactly what the service will load and `info` shows what it would load. Exit
status: 0 on success, 1 when loading, downloading or pushing fails, 2 for bad arguments or input.
The token is passed on, never printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2
import pandas as pd
import torch
from huggingface_hub.errors import HfHubHTTPError
from tqdm import tqdm

from kronos_integration.backends import LoadedBackend, load_backend, mode_names
from kronos_integration.candles import read_candles_file
from kronos_integration.config import ForecastSettings, ModelSettings, SettingsError
from kronos_integration.errors import ForecastError
from kronos_integration.evaluation.backtest import BacktestConfig
from kronos_integration.evaluation.report import summary_table, write_html
from kronos_integration.evaluation.runner import backtest_backend
from kronos_integration.forecast import check_quantile_levels
from kronos_integration.history import History, resolve_history
from kronos_integration.isin import validate_isin
from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.pipeline import ForecastResult, run_forecast, trading_calendar, warm_up
from kronos_integration.plot import plot_forecast
from kronos_integration.redact import mask_secrets
from kronos_integration.registry import (
    ArtifactSpec,
    HubEnvironment,
    ModelLoadError,
    check_hub_repo_id,
    find_cached,
    is_local_spec,
    is_mlflow_spec,
    load_module,
    resolve_artifact,
    resolve_device,
)
from kronos_integration.request import ForecastRequest

logger = logging.getLogger(__name__)

CHECKPOINT_KINDS: tuple[str, ...] = ("model", "tokenizer")


class UsageError(ValueError):
    """Bad arguments or input file (exit status 2)."""


@dataclasses.dataclass(frozen=True)
class Defaults:
    """The `KRONOS_*` settings the options default to."""

    model: ModelSettings
    forecast: ForecastSettings


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    try:
        defaults = Defaults(ModelSettings.from_env(), ForecastSettings.from_env())
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args = build_parser(defaults).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.run(args, defaults)
    except (UsageError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def build_parser(defaults: Defaults) -> argparse.ArgumentParser:
    """The argument parser; option defaults are the `KRONOS_*` settings in `defaults`."""
    parser = argparse.ArgumentParser(
        prog="kronos",
        description="Forecast candles, and fetch, publish and inspect Kronos checkpoints.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model, forecast = defaults.model, defaults.forecast

    predict = commands.add_parser(
        "predict", help="forecast a CSV/Parquet file of candles (the service's pipeline)"
    )
    _add_series_options(predict, forecast)
    predict.add_argument(
        "--horizon-days", type=_positive_int, required=True, help="trading days to forecast"
    )
    predict.add_argument("--lookback", type=_positive_int, default=None)
    predict.add_argument("--sample-count", type=_positive_int, default=None)
    predict.add_argument("--quantiles", type=_quantile_list, default=(0.1, 0.5, 0.9))
    predict.add_argument("--seed", type=int, default=None)
    predict.add_argument("--temperature", type=_positive_float, default=1.0)
    predict.add_argument("--top-k", type=int, default=0)
    predict.add_argument("--top-p", type=_positive_float, default=0.9)
    predict.add_argument("--max-context", type=_positive_int, default=model.max_context)
    predict.add_argument("--clip", type=_positive_float, default=model.clip)
    predict.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        default=forecast.calibrate,
        help="conformal bands from a backtest on the file's last origins (default: "
        "KRONOS_CALIBRATE)",
    )
    predict.add_argument("--include-path", action="store_true", help="every bar in --json too")
    predict.add_argument("--json", action="store_true", help="print the /predict document")
    predict.add_argument("--plot", type=Path, default=None, metavar="FILE", help="write a PNG")
    _add_artifact_options(predict, model)
    _add_device_option(predict, model)
    predict.set_defaults(run=run_predict)

    backtest = commands.add_parser(
        "backtest",
        help="score rolling-origin forecasts of a CSV/Parquet file against what happened, "
        "beside naive baselines",
    )
    _add_series_options(backtest, forecast)
    backtest.add_argument(
        "--horizon-days",
        type=_horizon_list,
        default=(1, 5, 20),
        help="trading days ahead to score, comma-separated (default: 1,5,20)",
    )
    backtest.add_argument(
        "--origins", type=_positive_int, default=200, help="forecast origins (default: 200)"
    )
    backtest.add_argument(
        "--window",
        type=_positive_int,
        default=forecast.lookback,
        help="history bars per forecast (default: KRONOS_LOOKBACK)",
    )
    backtest.add_argument(
        "--samples", type=_positive_int, default=64, help="sample paths per forecast (default: 64)"
    )
    backtest.add_argument("--seed", type=int, default=0)
    backtest.add_argument(
        "--conformal",
        action="store_true",
        help="also score the backend with conformal bands (KRONOS_CALIBRATION_ORIGINS more "
        "forecasts per origin)",
    )
    backtest.add_argument("--json", type=Path, default=None, metavar="FILE", help="summary")
    backtest.add_argument("--report", type=Path, default=None, metavar="FILE", help="HTML page")
    backtest.add_argument("--max-context", type=_positive_int, default=model.max_context)
    _add_artifact_options(backtest, model)
    _add_device_option(backtest, model)
    backtest.set_defaults(run=run_backtest)

    download = commands.add_parser(
        "download", help="pre-fetch model and tokenizer into the Hugging Face cache (HF_HOME)"
    )
    _add_artifact_options(download, model)
    download.set_defaults(run=run_download)

    push = commands.add_parser("push", help="upload a local checkpoint folder to a hub repo")
    push.add_argument("folder", type=Path, help="folder with config.json and model.safetensors")
    push.add_argument("repo_id", help="target hub repo, ORG/NAME (created if missing)")
    push.add_argument("--kind", choices=CHECKPOINT_KINDS, required=True)
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--branch", default=None, help="push to this branch (default: main)")
    push.set_defaults(run=run_push)

    info = commands.add_parser("info", help="what would be loaded, from where, on which device")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_artifact_options(info, model)
    _add_device_option(info, model)
    info.set_defaults(run=run_info)
    return parser


def run_predict(args: argparse.Namespace, defaults: Defaults) -> None:
    _check_folders(("--plot", args.plot))
    _check_samples("--sample-count", args.sample_count, defaults)
    history = _read_history(args.file)
    instrument = args.instrument or args.file.stem
    request = ForecastRequest(
        instrument=instrument,
        instrument_type="isin" if _is_isin(instrument) else "symbol",
        calendar=args.calendar,
        horizon_days=args.horizon_days,
        sample_count=args.sample_count,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        quantiles=args.quantiles,
        lookback=args.lookback,
        include_path=args.include_path,
        calibrate=args.calibrate,
    )
    loaded = _load_backend(args, defaults, clip=args.clip)
    try:
        result = run_forecast(
            loaded.backend,
            history,
            request,
            defaults.forecast,
            fallback_reason=loaded.fallback_reason,
        )
    except ForecastError as error:
        raise UsageError(str(error)) from error
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(day_table(result).to_string(float_format=lambda v: f"{v:.4f}"))
        for warning in result.warnings:  # in the JSON document as metadata.warnings
            print(f"warning: {warning}", file=sys.stderr)
    if args.plot is not None:
        title = (
            f"{request.instrument}: {request.horizon_days} trading days, "
            f"{result.forecast.sample_count} paths ({result.backend.name})"
        )
        plot_forecast(history.candles, result.forecast, args.plot, title=title)
        print(f"plot written to {args.plot}", file=sys.stderr)


def run_backtest(args: argparse.Namespace, defaults: Defaults) -> None:
    _check_folders(("--json", args.json), ("--report", args.report))
    _check_samples("--samples", args.samples, defaults)
    history = _read_history(args.file)
    instrument = args.instrument or args.file.stem
    isin = instrument if _is_isin(instrument) else None
    try:
        calendar = trading_calendar(history, args.calendar, isin)
    except ForecastError as error:
        raise UsageError(str(error)) from error
    loaded = _load_backend(args, defaults)
    config = BacktestConfig(
        horizon_days=args.horizon_days, origins=args.origins, window=args.window, seed=args.seed
    )
    # total: at most --origins (the history may allow fewer; the first report sets the real number)
    with tqdm(desc="backtest", unit="origin", total=args.origins, file=sys.stderr) as bar:
        try:
            run = backtest_backend(
                history.candles,
                loaded.backend,
                calendar,
                config,
                samples=args.samples,
                conformal=args.conformal,
                conformal_origins=defaults.forecast.calibration_origins,
                series=args.file.stem,
                progress=lambda done, total: _advance(bar, done, total),
            )
        except ValueError as error:
            raise UsageError(f"{args.file}: {error}") from error
    run.summary["backend"]["fallback_reason"] = loaded.fallback_reason
    print(summary_table(run.summary))
    if args.json is not None:
        args.json.write_text(json.dumps(run.summary, indent=1), encoding="utf-8")
        print(f"summary written to {args.json}", file=sys.stderr)
    if args.report is not None:
        write_html(run.summary, run.frame, args.report, f"Backtest of {args.file.name}")
        print(f"report written to {args.report}", file=sys.stderr)


def _check_folders(*options: tuple[str, Path | None]) -> None:
    """UsageError for an output file whose folder does not exist (before any work is done)."""
    for option, path in options:
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"{option} {path}: the folder {path.parent} does not exist")


def _read_history(path: Path) -> History:
    try:
        return resolve_history(path.stem, read_candles_file(path), [])
    except (OSError, ValueError) as error:  # InvalidRequestError is a ValueError
        raise UsageError(f"{path}: {error}") from error


def _advance(bar: tqdm, done: int, total: int) -> None:
    bar.total = total
    bar.update(done - bar.n)


def _load_backend(
    args: argparse.Namespace, defaults: Defaults, *, clip: float | None = None
) -> LoadedBackend:
    """The backend of `--mode` with this command's checkpoint options (`load_backend`'s warning
    says so on stderr, reason whole, when `auto` falls back to the simulator)."""
    settings = dataclasses.replace(
        _model_settings(args, defaults),
        max_context=args.max_context,
        clip=defaults.model.clip if clip is None else clip,
    )
    return load_backend(args.mode, settings, warm_up)


def run_download(args: argparse.Namespace, defaults: Defaults) -> None:
    for spec in _specs(args):
        resolved = resolve_artifact(
            spec, token=defaults.model.hf_token, hub_timeout_s=args.hub_timeout
        )
        print(
            f"{spec.repo_id}@{spec.revision or 'main'}: commit {resolved.sha} ({resolved.source})"
        )
        print(f"  {resolved.folder}")


def run_push(args: argparse.Namespace, defaults: Defaults) -> None:
    token = defaults.model.hf_token
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
            token=token,
            branch=args.branch,
            commit_message=f"Upload Kronos {args.kind} checkpoint",
        )
    except (HfHubHTTPError, OSError, httpx2.HTTPError) as error:
        detail = mask_secrets(str(error), [token])
        raise ModelLoadError(args.repo_id, f"push failed: {detail}") from error
    print(url)


def run_info(args: argparse.Namespace, defaults: Defaults) -> None:
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
        "hf_token": "set" if defaults.model.hf_token else "not set",
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


def day_table(result: ForecastResult) -> pd.DataFrame:
    """The per-day summary as a table: one row per horizon day, the API's fields as columns."""
    rows = [
        {
            "date": day["date"],
            "predicted_price": day["predicted_price"],
            **{f"q{key}": value for key, value in day["quantiles"].items()},
            "probability_up": day["probability_up"],
            "confidence": day["confidence"],
        }
        for day in result.days
    ]
    return pd.DataFrame(rows, index=pd.Index([day["day"] for day in result.days], name="day"))


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


def _add_series_options(parser: argparse.ArgumentParser, forecast: ForecastSettings) -> None:
    """The candles file, the backend that forecasts it, and what the file is."""
    parser.add_argument("file", type=Path, help="timestamp, open, high, low, close[, volume, …]")
    parser.add_argument(
        "--mode",
        choices=mode_names(),
        default=forecast.mode,
        help="backend: auto (Kronos, else the simulator) or one backend (default: KRONOS_MODE)",
    )
    parser.add_argument(
        "--instrument", default=None, help="its ISIN or symbol (default: the file name)"
    )
    parser.add_argument(
        "--calendar",
        default=None,
        help="XNYS, 24/5, 24/7, history, ... (default: the ISIN's exchange, else inferred)",
    )


def _add_artifact_options(parser: argparse.ArgumentParser, model: ModelSettings) -> None:
    group = parser.add_argument_group("checkpoints (defaults from KRONOS_* variables)")
    group.add_argument("--model", default=model.model_id, help="hub repo id or local folder")
    group.add_argument("--revision", default=model.model_revision, help="branch, tag or sha")
    group.add_argument("--tokenizer", default=model.tokenizer_id)
    group.add_argument("--tokenizer-revision", default=model.tokenizer_revision)
    group.add_argument(
        "--hub-timeout", type=_positive_float, default=model.hub_timeout_s, help="s per request"
    )


def _add_device_option(parser: argparse.ArgumentParser, model: ModelSettings) -> None:
    parser.add_argument("--device", default=model.device, help="cpu, cuda, cuda:N or auto")


def _model_settings(args: argparse.Namespace, defaults: Defaults) -> ModelSettings:
    """The defaults with this command's checkpoint and device options."""
    return dataclasses.replace(
        defaults.model,
        model_id=args.model,
        model_revision=args.revision,
        tokenizer_id=args.tokenizer,
        tokenizer_revision=args.tokenizer_revision,
        hub_timeout_s=args.hub_timeout,
        device=args.device,
    )


def _is_isin(text: str) -> bool:
    try:
        validate_isin(text)
    except ValueError:
        return False
    return True


def _check_samples(option: str, samples: int | None, defaults: Defaults) -> None:
    """Sample paths within KRONOS_MAX_SAMPLE_COUNT, as the service allows (scoring takes memory
    quadratic in them: CRPS compares every pair of paths)."""
    limit = defaults.forecast.max_sample_count
    if samples is not None and samples > limit:
        raise UsageError(f"{option}: at most {limit} (KRONOS_MAX_SAMPLE_COUNT={limit})")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _horizon_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(_positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(
            f"{error} in {text!r}: give trading days separated by commas, such as 1,5,20"
        ) from None
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text}: a horizon appears more than once")
    return tuple(sorted(values))


def _quantile_list(text: str) -> tuple[float, ...]:
    try:
        return check_quantile_levels([float(part) for part in text.split(",")])
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
