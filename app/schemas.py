"""Request and response schemas (marshmallow): they validate input at the edge, load a /predict
body into the library's `ForecastRequest`, and generate `/openapi.json`. Unknown fields are
rejected everywhere (marshmallow's default, RAISE).

Limits that depend on configuration (horizon, candles, samples, quantiles, batch items) are
checked against the app's `Settings`, and each error names the limit and its variable.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any, Literal

import pandas as pd
from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_dump,
    validate,
    validates_schema,
)

from app.settings import current_settings
from kronos_integration.candles import MIN_HISTORY_BARS, candles_from_records
from kronos_integration.errors import field_message
from kronos_integration.forecast import DEFAULT_QUANTILES
from kronos_integration.isin import validate_isin
from kronos_integration.request import BacktestRequest, ForecastRequest

MAX_SEED = 2**32 - 1
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._=^-]{0,31}$"
"""A symbol is also a file name in KRONOS_DATA_DIR: no path separators, no leading dot."""
# Below this, logits / T overflows float32 (or T rounds to 0) and sampling has no distribution.
MIN_TEMPERATURE = 0.01
MAX_BACKTEST_HORIZONS = 5


def _check_isin(value: str) -> None:
    try:
        validate_isin(value)
    except ValueError as error:
        raise ValidationError(str(error)) from None


def _distinct(noun: str) -> Callable[[list[Any]], None]:
    def check(values: list[Any]) -> None:
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ValidationError(f"the {noun} {repeated[0]!r} appears more than once")

    return check


def _over_limit(name: str, limit: int, variable: str) -> str:
    return f"at most {limit} {name} allowed ({variable}={limit})"


class Timestamp(fields.Field):
    """An ISO 8601 date or date-time string, parsed to a `pandas.Timestamp`."""

    default_error_messages = {"invalid": "Not a valid ISO 8601 date or date-time."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> pd.Timestamp:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            raise self.make_error("invalid") from None
        if pd.isna(stamp):
            raise self.make_error("invalid")
        return stamp


class StrictBoolean(fields.Boolean):
    """JSON `true` or `false` only: marshmallow's Boolean also reads "yes", "off", 1, ... ."""

    default_error_messages = {"invalid": "Not a boolean: use true or false."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid")


class StrictFloat(fields.Float):
    """A JSON number only: marshmallow's Float also parses strings such as "1.5" (it refuses
    booleans itself)."""

    default_error_messages = {"invalid": "Not a number: send a JSON number."}  # noqa: RUF012

    def _validated(self, value: Any) -> float:
        if not isinstance(value, numbers.Real):
            raise self.make_error("invalid")
        return super()._validated(value)


def _price(**kwargs: Any) -> fields.Float:
    return StrictFloat(
        allow_nan=False, validate=validate.Range(min=0, min_inclusive=False), **kwargs
    )


def _quantity(**kwargs: Any) -> fields.Float:
    return StrictFloat(allow_nan=False, validate=validate.Range(min=0), **kwargs)


class CandleSchema(Schema):
    timestamp = Timestamp(required=True, metadata={"example": "2025-03-07T15:55:00"})
    open = _price(required=True)
    high = _price(required=True)
    low = _price(required=True)
    close = _price(required=True)
    volume = _quantity(metadata={"description": "Optional; 0 when absent."})
    amount = _quantity(metadata={"description": "Optional; volume × mean price when absent."})


class InstrumentSchema(Schema):
    """What a request is about: `isin` or `symbol`, and its trading calendar."""

    isin = fields.String(
        validate=_check_isin,
        metadata={"example": "US67066G1040", "description": "ISIN; or give `symbol` instead."},
    )
    symbol = fields.String(
        validate=validate.Regexp(
            SYMBOL_PATTERN,
            error="1-32 letters, digits and . _ - = ^, starting with a letter or digit",
        ),
        metadata={
            "example": "EURUSD",
            "description": "An instrument without an ISIN (FX pair, crypto, index): history "
            "inline or from KRONOS_DATA_DIR/<symbol>.csv.",
        },
    )
    calendar = fields.String(
        validate=validate.Length(min=1, max=32),
        metadata={
            "example": "XNYS",
            "description": "Trading calendar: an exchange MIC (XNYS, XLON, XETR, ...), 24/5 (FX), "
            "24/7, or history (inferred from the bars). Default: the data folder's, else the "
            "ISIN country's exchange, else inferred from the history.",
        },
    )
    candles = fields.List(
        fields.Nested(CandleSchema),
        validate=validate.Length(min=1),
        metadata={"description": "Inline history, oldest first; else KRONOS_DATA_DIR is used."},
    )

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def check_instrument(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if not isinstance(original, Mapping):
            return  # marshmallow has refused it already
        errors: dict[str, list[str]] = {}
        given = {name for name in ("isin", "symbol") if name in original}
        if len(given) != 1:
            message = "give exactly one of 'isin' and 'symbol'"
            errors["symbol" if given == {"symbol"} or len(given) == 2 else "isin"] = [message]
        if len(data.get("candles") or ()) > (limit := current_settings().max_candles):
            errors["candles"] = [_over_limit("candles", limit, "KRONOS_MAX_CANDLES")]
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def instrument(data: dict[str, Any]) -> dict[str, Any]:
        """The loaded instrument fields as keyword arguments of the library's requests."""
        try:
            candles = candles_from_records(data["candles"]) if "candles" in data else None
        except ValueError as error:
            raise ValidationError({"candles": [field_message("candles", str(error))]}) from None
        instrument_type: Literal["isin", "symbol"] = "isin" if "isin" in data else "symbol"
        return {
            "instrument": data[instrument_type],
            "instrument_type": instrument_type,
            "calendar": data.get("calendar"),
            "candles": candles,
        }


class PredictRequestSchema(InstrumentSchema):
    horizon_days = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "Trading days to forecast (KRONOS_MAX_HORIZON_DAYS caps it)."},
    )
    sample_count = fields.Integer(
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "Sample paths (default KRONOS_SAMPLE_COUNT)."},
    )
    temperature = StrictFloat(
        allow_nan=False,
        validate=validate.Range(min=MIN_TEMPERATURE, max=10),
        load_default=1.0,
        metadata={"description": "Sampling temperature, 0.01 … 10."},
    )
    top_p = StrictFloat(
        allow_nan=False,
        validate=validate.Range(min=0, max=1, min_inclusive=False),
        load_default=0.9,
    )
    top_k = fields.Integer(strict=True, validate=validate.Range(min=0), load_default=0)
    quantiles = fields.List(
        StrictFloat(
            allow_nan=False,
            validate=validate.Range(min=0, max=1, min_inclusive=False, max_inclusive=False),
        ),
        validate=[validate.Length(min=1), _distinct("level")],
        load_default=lambda: list(DEFAULT_QUANTILES),
        metadata={"uniqueItems": True},
    )
    seed = fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=MAX_SEED),
        metadata={
            "description": "Same seed, same answer; a random one is drawn and reported when absent."
        },
    )
    lookback = fields.Integer(
        strict=True,
        validate=validate.Range(min=MIN_HISTORY_BARS),
        metadata={"description": "History bars given to the model (default: see README)."},
    )
    include_path = StrictBoolean(load_default=False)
    include_history = StrictBoolean(
        load_default=False,
        metadata={"description": "Add `history`: the bars handed to the model, oldest first."},
    )
    calibrate = StrictBoolean(
        metadata={
            "description": "Rescale the quantile bands by a conformal backtest on this history's "
            "last KRONOS_CALIBRATION_ORIGINS origins (that many extra forecasts, in one batch). "
            "Default: KRONOS_CALIBRATE."
        },
    )

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def check_limits(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if not isinstance(original, Mapping):
            return  # marshmallow has refused it already
        settings = current_settings()
        errors: dict[str, list[str]] = {}
        if data.get("horizon_days", 0) > settings.max_horizon_days:
            errors["horizon_days"] = [
                f"must be at most {settings.max_horizon_days} "
                f"(KRONOS_MAX_HORIZON_DAYS={settings.max_horizon_days})"
            ]
        max_sample_count = settings.forecast.max_sample_count
        if data.get("sample_count", 0) > max_sample_count:
            errors["sample_count"] = [
                f"must be at most {max_sample_count} (KRONOS_MAX_SAMPLE_COUNT={max_sample_count})"
            ]
        if len(data.get("quantiles") or ()) > settings.max_quantiles:
            errors["quantiles"] = [
                _over_limit("quantile levels", settings.max_quantiles, "KRONOS_MAX_QUANTILES")
            ]
        if errors:
            raise ValidationError(errors)

    @post_load
    def to_request(self, data: dict[str, Any], **kwargs: Any) -> ForecastRequest:
        return ForecastRequest(
            **self.instrument(data),
            horizon_days=data["horizon_days"],
            sample_count=data.get("sample_count"),
            temperature=data["temperature"],
            top_k=data["top_k"],
            top_p=data["top_p"],
            seed=data.get("seed"),
            quantiles=tuple(data["quantiles"]),
            lookback=data.get("lookback"),
            include_path=data["include_path"],
            include_history=data["include_history"],
            calibrate=data.get("calibrate"),
        )


class BacktestRequestSchema(InstrumentSchema):
    horizon_days = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1)),
        validate=[validate.Length(min=1, max=MAX_BACKTEST_HORIZONS), _distinct("horizon")],
        load_default=lambda: list(BacktestRequest.horizon_days),
        metadata={
            "description": "Trading days ahead to score, at most "
            f"{MAX_BACKTEST_HORIZONS}, each at most KRONOS_MAX_HORIZON_DAYS.",
            "uniqueItems": True,
        },
    )
    origins = fields.Integer(
        strict=True,
        validate=validate.Range(min=1),
        load_default=BacktestRequest.origins,
        metadata={"description": "Forecast origins (KRONOS_MAX_BACKTEST_ORIGINS caps them)."},
    )
    window = fields.Integer(
        strict=True,
        validate=validate.Range(min=MIN_HISTORY_BARS),
        metadata={"description": "History bars per forecast (default KRONOS_LOOKBACK)."},
    )
    samples = fields.Integer(
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "Sample paths per forecast (default 32, at most the maximum)."},
    )
    seed = fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_SEED), load_default=0)

    @validates_schema(skip_on_field_errors=False)
    def check_limits(self, data: dict[str, Any], **kwargs: Any) -> None:
        settings = current_settings()
        errors: dict[str, list[str]] = {}
        longest = max(data.get("horizon_days") or [0])
        if longest > settings.max_horizon_days:
            errors["horizon_days"] = [
                f"{longest} is more than {settings.max_horizon_days} "
                f"(KRONOS_MAX_HORIZON_DAYS={settings.max_horizon_days})"
            ]
        if data.get("origins", 0) > (limit := settings.max_backtest_origins):
            errors["origins"] = [_over_limit("origins", limit, "KRONOS_MAX_BACKTEST_ORIGINS")]
        if data.get("samples", 0) > (limit := settings.forecast.max_sample_count):
            errors["samples"] = [_over_limit("samples", limit, "KRONOS_MAX_SAMPLE_COUNT")]
        if errors:
            raise ValidationError(errors)

    @post_load
    def to_request(self, data: dict[str, Any], **kwargs: Any) -> BacktestRequest:
        default = min(BacktestRequest.samples, current_settings().forecast.max_sample_count)
        samples = data.get("samples", default)
        return BacktestRequest(
            **self.instrument(data),
            horizon_days=tuple(sorted(data["horizon_days"])),
            origins=data["origins"],
            window=data.get("window"),
            samples=samples,
            seed=data["seed"],
        )


class IsolatedItem(fields.Nested):
    """A batch item: validated on its own, so a bad item (``null`` included) becomes its own
    error, not the batch's."""

    def deserialize(
        self,
        value: Any,
        attr: str | None = None,
        data: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        try:
            return super().deserialize(value, attr, data, **kwargs)
        except ValidationError as error:
            messages = error.normalized_messages()
            if not isinstance(messages, dict):  # a whole-item message, such as for null
                messages = {"_schema": messages}
            return InvalidItem(messages)


class InvalidItem:
    """A batch item that failed validation, with marshmallow's messages per field."""

    def __init__(self, messages: dict[str, Any]) -> None:
        self.messages = messages


class BatchRequestSchema(Schema):
    items = fields.List(
        IsolatedItem(PredictRequestSchema),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "Requests like /predict's (KRONOS_MAX_BATCH_ITEMS caps them)."},
    )

    @validates_schema
    def check_limits(self, data: dict[str, Any], **kwargs: Any) -> None:
        limit = current_settings().max_batch_items
        if len(data.get("items") or ()) > limit:
            raise ValidationError(
                {"items": [_over_limit("items", limit, "KRONOS_MAX_BATCH_ITEMS")]}
            )


# Responses.


class ProblemSchema(Schema):
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    request_id = fields.String(allow_none=True)
    errors = fields.Raw(metadata={"description": "Messages per field (nested like the request)."})


class PredictionDaySchema(Schema):
    day = fields.Integer(required=True, metadata={"description": "1 … horizon_days"})
    date = fields.String(required=True, metadata={"description": "Trading day (ISO date)."})
    timestamp = fields.String(required=True, metadata={"description": "That day's last bar."})
    predicted_price = fields.Float(required=True, metadata={"description": "Mean close."})
    confidence = fields.Float(
        required=True, allow_none=True, metadata={"description": "See README; null for 1 sample."}
    )
    probability_up = fields.Float(required=True)
    quantiles = fields.Dict(keys=fields.String(), values=fields.Float(), required=True)


class CandleValuesSchema(Schema):
    open = fields.Float(required=True)
    high = fields.Float(required=True)
    low = fields.Float(required=True)
    close = fields.Float(required=True)
    volume = fields.Float(required=True)
    amount = fields.Float(required=True)


class HistoryBarSchema(CandleValuesSchema):
    timestamp = fields.String(required=True)


class PathBarSchema(Schema):
    timestamp = fields.String(required=True)
    mean = fields.Nested(CandleValuesSchema, required=True)
    quantiles = fields.Dict(
        keys=fields.String(), values=fields.Nested(CandleValuesSchema), required=True
    )


class ArtifactInfoSchema(Schema):
    id = fields.String(required=True, metadata={"description": "Hub repo id or local folder."})
    revision = fields.String(allow_none=True, metadata={"description": "Requested revision."})
    sha = fields.String(allow_none=True, metadata={"description": "Resolved commit sha."})
    parameters = fields.Integer(allow_none=True)


def _history_source() -> fields.String:
    """Where the history came from (/predict's metadata and the /backtest summary)."""
    return fields.String(
        required=True,
        validate=validate.OneOf(("request", "data_dir", "synthetic")),
        metadata={
            "description": "Where the history came from: request (the candles sent), data_dir "
            "(KRONOS_DATA_DIR), synthetic (made up: allowed for the simulator or by "
            "KRONOS_ALLOW_SYNTHETIC_HISTORY)."
        },
    )


NOT_SIMULATED = "Null when the simulator answered: it has no token distribution to cut."


class CalendarInfoSchema(Schema):
    name = fields.String(required=True, metadata={"description": "XNYS, 24/5, history, ..."})
    source = fields.String(
        required=True, metadata={"description": "request, data_dir, isin or history"}
    )


class CalibrationInfoSchema(Schema):
    requested = fields.Boolean(
        required=True, metadata={"description": "`calibrate`, or KRONOS_CALIBRATE."}
    )
    calibrated = fields.Boolean(
        required=True, metadata={"description": "Whether the bands were rescaled."}
    )
    method = fields.String(
        required=True, allow_none=True, metadata={"example": "split-conformal band scaling"}
    )
    origins = fields.Integer(
        required=True, metadata={"description": "Inner backtest origins used (0: none)."}
    )
    checked_steps = fields.Integer(
        required=True,
        metadata={"description": "Bars ahead the history could check; later bars reuse the last."},
    )
    factor_first_step = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "Band width factor of the first bar (>1 widened, <1 narrowed)."},
    )
    factor_last_step = fields.Float(required=True, allow_none=True)
    coverage_before = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        required=True,
        metadata={"description": "Per band (0.8, 0.9): share of inner outcomes the raw band held."},
    )
    reason = fields.String(
        required=True, allow_none=True, metadata={"description": "Why not calibrated."}
    )
    elapsed_ms = fields.Float(required=True, metadata={"description": "Time the backtest took."})


class PredictMetadataSchema(Schema):
    device = fields.String(required=True)
    dtype = fields.String(
        required=True, metadata={"description": "What the model computes in (KRONOS_DTYPE)."}
    )
    max_context = fields.Integer(required=True)
    lookback_periods = fields.Integer(required=True)
    prediction_periods = fields.Integer(required=True)
    history_periods = fields.Integer(required=True)
    history_source = _history_source()
    bar_interval = fields.String(required=True, metadata={"description": "ISO 8601 duration."})
    calendar = fields.Nested(CalendarInfoSchema, required=True)
    calibration = fields.Nested(CalibrationInfoSchema, required=True)
    warnings = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "What looks wrong but was forecast anyway, as sentences (empty: "
            "nothing), e.g. history bars outside the calendar's sessions."
        },
    )
    sample_count = fields.Integer(required=True)
    seed = fields.Integer(required=True)
    temperature = fields.Float(required=True)
    top_p = fields.Float(required=True, allow_none=True, metadata={"description": NOT_SIMULATED})
    top_k = fields.Integer(required=True, allow_none=True, metadata={"description": NOT_SIMULATED})
    quantiles = fields.List(fields.Float(), required=True)
    model_revision = fields.String(allow_none=True)
    tokenizer = fields.Nested(ArtifactInfoSchema, allow_none=True)
    fallback_reason = fields.String(allow_none=True)
    elapsed_ms = fields.Float(required=True)
    worker_pid = fields.Integer(required=True)


class PredictResponseSchema(Schema):
    isin = fields.String(metadata={"description": "The request's ISIN (absent for a symbol)."})
    symbol = fields.String(metadata={"description": "The request's symbol (absent for an ISIN)."})
    model = fields.String(
        required=True, metadata={"description": "The serving backend: kronos, simulated, ..."}
    )
    model_version = fields.String(
        required=True,
        metadata={"description": "Repo id or folder, or the algorithm's version."},
    )
    prediction_horizon_days = fields.Integer(required=True)
    current_price = fields.Float(required=True)
    predictions = fields.List(fields.Nested(PredictionDaySchema), required=True)
    path = fields.List(fields.Nested(PathBarSchema))
    history = fields.List(fields.Nested(HistoryBarSchema))
    metadata = fields.Nested(PredictMetadataSchema, required=True)


class BatchItemResultSchema(Schema):
    index = fields.Integer(required=True)
    status = fields.Integer(required=True)
    result = fields.Nested(PredictResponseSchema, allow_none=True)
    error = fields.Nested(ProblemSchema, allow_none=True)


class BatchResponseSchema(Schema):
    results = fields.List(fields.Nested(BatchItemResultSchema), required=True)


class _Undotted(Schema):
    """Scores keyed like `coverage_0.8`: dotted keys are renamed before dumping (marshmallow reads a
    dot as a path), each field giving the dotted name back with `data_key`."""

    @pre_dump
    def undot(self, data: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {key.replace(".", "_"): value for key, value in data.items()}


def _band_coverage(band: str, **kwargs: Any) -> fields.Float:
    return fields.Float(
        data_key=f"coverage_{band}",
        allow_none=True,
        metadata={"description": f"Share of outcomes in the central {band} band (null: one path)."},
        **kwargs,
    )


class HorizonScoresSchema(_Undotted):
    n = fields.Integer(required=True, metadata={"description": "Scored forecasts."})
    coverage_0_5 = _band_coverage("0.5", required=True)
    coverage_0_8 = _band_coverage("0.8", required=True)
    coverage_0_9 = _band_coverage("0.9", required=True)
    pinball = fields.Float(required=True, metadata={"description": "Mean pinball loss, 7 levels."})
    crps = fields.Float(required=True)
    mae = fields.Float(required=True, metadata={"description": "Of the median, in last closes."})
    mape = fields.Float(required=True, metadata={"description": "Percent."})
    mase = fields.Float(required=True)
    direction_hit = fields.Float(required=True)
    brier = fields.Float(required=True, allow_none=True, metadata={"description": "Of P(up)."})
    pit_histogram = fields.List(fields.Float(), required=True, allow_none=True)
    date_accuracy = fields.Float(
        required=True, metadata={"description": "Share of scored days on the calendar's date."}
    )
    pinball_vs_baseline = fields.Float(metadata={"description": "Below 1: beats the baseline."})
    crps_vs_baseline = fields.Float()


class TopTenthSchema(_Undotted):
    n = fields.Integer(required=True)
    coverage_0_8 = _band_coverage("0.8", required=True)
    coverage_0_9 = _band_coverage("0.9", required=True)
    scaled_error = fields.Float(required=True)


class ConfidenceRankingSchema(Schema):
    spearman_vs_scaled_error = fields.Float(
        required=True, metadata={"description": "Negative: more confident, smaller error."}
    )
    top_tenth = fields.Nested(TopTenthSchema, required=True)
    scaled_error_by_quintile = fields.List(fields.Float(), required=True)
    mean = fields.Float(required=True)


class ReliabilityBinSchema(Schema):
    p_up = fields.Float(required=True, metadata={"description": "Mean forecast P(up) of the bin."})
    observed = fields.Float(required=True, metadata={"description": "Share that went up."})
    n = fields.Integer(required=True, metadata={"description": "Forecasts in the bin."})


class ModelScoresSchema(Schema):
    horizons = fields.Dict(
        keys=fields.String(), values=fields.Nested(HorizonScoresSchema), required=True
    )
    reliability = fields.List(
        fields.Nested(ReliabilityBinSchema),
        required=True,
        allow_none=True,
        metadata={
            "description": "Reliability diagram of P(up) over all horizons: forecasts sorted by "
            "P(up) in ten groups of equal count; null for a point forecast."
        },
    )
    confidence = fields.Nested(
        ConfidenceRankingSchema,
        required=True,
        allow_none=True,
        metadata={"description": "How confidence ranks errors; null for the baselines."},
    )


class BacktestBackendSchema(Schema):
    name = fields.String(required=True)
    version = fields.String(required=True)
    fallback_reason = fields.String(allow_none=True)


class BacktestResponseSchema(Schema):
    series = fields.List(fields.String(), required=True)
    forecasts_per_model = fields.Integer(required=True)
    baseline = fields.String(required=True, metadata={"description": "The ratios' reference."})
    backend = fields.Nested(BacktestBackendSchema, required=True)
    calendar = fields.Nested(CalendarInfoSchema, required=True)
    history_source = _history_source()
    horizon_days = fields.List(fields.Integer(), required=True)
    origins = fields.Integer(required=True)
    first_origin = fields.String(required=True, metadata={"description": "Its last history bar."})
    last_origin = fields.String(required=True)
    window = fields.Integer(required=True)
    samples = fields.Integer(required=True)
    conformal_origins = fields.Integer(required=True)
    seed = fields.Integer(required=True)
    elapsed_s = fields.Float(required=True)
    models = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(ModelScoresSchema),
        required=True,
        metadata={"description": "The backend's scores and the baselines' (see README)."},
    )


class HealthSchema(Schema):
    status = fields.String(required=True)


class ServiceStatusSchema(Schema):
    status = fields.String(required=True, metadata={"description": "ready or loading"})
    ready = fields.Boolean(required=True)
    mode = fields.String(required=True, metadata={"description": "Configured KRONOS_MODE."})
    serving = fields.String(
        allow_none=True, metadata={"description": "The serving backend (null while loading)."}
    )
    worker_pid = fields.Integer(required=True)


class ModelsSchema(ServiceStatusSchema):
    fallback_reason = fields.String(
        allow_none=True,
        metadata={"description": "Why auto mode serves the simulator: one line, no paths."},
    )
    model = fields.Nested(ArtifactInfoSchema, allow_none=True)
    tokenizer = fields.Nested(ArtifactInfoSchema, allow_none=True)
    device = fields.String(allow_none=True)
    dtype = fields.String(allow_none=True)
    max_context = fields.Integer(required=True)
    clip = fields.Float(required=True)
    load_seconds = fields.Float(allow_none=True)
    loaded_at = fields.String(allow_none=True, metadata={"description": "UTC, ISO 8601."})
    torch_threads = fields.Integer(allow_none=True, metadata={"description": "Per worker."})
