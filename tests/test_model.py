"""The model is checkpoint-compatible and numerically faithful to the reference (golden vectors)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.model.decoder import FusedKronos, SharedPrefix
from kronos_integration.model.module import Linear, onednn_available
from kronos_integration.predictor import KronosPredictor, prepare_series, time_features
from tests.checkpoints import GOLDEN, TEST_DEVICE, make_tiny_pair

WEIGHTS = {"model": "tiny-model", "model_fixed_te": "tiny-model-fixed-te"}


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads((GOLDEN / "expected.json").read_text())


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return pd.read_csv(GOLDEN / "candles.csv", parse_dates=["timestamps"])


@pytest.fixture(scope="module")
def future() -> pd.Series:
    return pd.read_csv(GOLDEN / "future_timestamps.csv", parse_dates=["timestamps"])["timestamps"]


@pytest.fixture(scope="module")
def golden_tokenizer() -> KronosTokenizer:
    return KronosTokenizer.from_pretrained(str(GOLDEN / "tiny-tokenizer"))


def normalised(candles: pd.DataFrame, pred_len: int = 1) -> torch.Tensor:
    series = prepare_series(candles, candles["timestamps"], candles["timestamps"][:pred_len], 1, 5)
    return torch.from_numpy(series.x)[None]  # (1, 400, 6)


@pytest.mark.parametrize("folder", ["tiny-tokenizer", "tiny-model", "tiny-model-fixed-te"])
def test_golden_checkpoints_load_in_eval_mode(folder: str) -> None:
    cls = KronosTokenizer if "tokenizer" in folder else Kronos
    module = cls.from_pretrained(str(GOLDEN / folder))
    assert not module.training
    assert all(not m.training for m in module.modules())


def test_tokenizer_encode_and_decode_match_reference(
    golden_tokenizer: KronosTokenizer, expected: dict[str, Any], candles: pd.DataFrame
) -> None:
    with torch.inference_mode():
        s1, s2 = golden_tokenizer.encode(normalised(candles), half=True)
        ids = (torch.tensor([expected["encode_s1"]]), torch.tensor([expected["encode_s2"]]))
        decoded = golden_tokenizer.decode(ids, half=True)
    assert s1[0].tolist() == expected["encode_s1"]
    assert s2[0].tolist() == expected["encode_s2"]
    np.testing.assert_allclose(decoded[0].numpy(), expected["decode"], atol=1e-4)


@pytest.mark.parametrize("prefix", list(WEIGHTS))
def test_model_logits_match_reference(
    prefix: str, expected: dict[str, Any], candles: pd.DataFrame
) -> None:
    model = Kronos.from_pretrained(str(GOLDEN / WEIGHTS[prefix]))
    s1 = torch.tensor([expected["encode_s1"][-128:]])
    s2 = torch.tensor([expected["encode_s2"][-128:]])
    stamp = torch.from_numpy(time_features(candles["timestamps"][-128:]))[None]
    with torch.inference_mode():
        s1_logits, hidden = model.decode_s1(s1, s2, stamp)
        argmax = int(s1_logits[0, -1].argmax())
        s2_logits = model.decode_s2(hidden, torch.tensor([[argmax]]))
    np.testing.assert_allclose(
        s1_logits[0, -1].numpy(), expected[f"{prefix}_s1_logits_last"], atol=1e-4
    )
    assert argmax == expected[f"{prefix}_s1_argmax_last"]
    np.testing.assert_allclose(
        s2_logits[0, -1].numpy(), expected[f"{prefix}_s2_logits_last"], atol=1e-4
    )


def golden_cases(key: str = "greedy_predictions") -> list[Any]:
    cases = json.loads((GOLDEN / "expected.json").read_text())[key]
    return [
        pytest.param(c, id=f"{c['name']}-{c['weights']}-seed{c['sampling'].get('seed', '')}")
        for c in cases
    ]


def golden_prediction(
    case: dict[str, Any],
    tokenizer: KronosTokenizer,
    candles: pd.DataFrame,
    future: pd.Series,
) -> pd.DataFrame:
    """The predictor's `predict` on a golden case, after seeding torch's global generator."""
    model = Kronos.from_pretrained(str(GOLDEN / WEIGHTS[case["weights"]]))
    predictor = KronosPredictor(
        model,
        tokenizer,
        device=TEST_DEVICE,
        max_context=case["max_context"],
        clip=case["clip"],
    )
    history = candles.iloc[-case["lookback"] :]
    sampling = case["sampling"]
    torch.manual_seed(sampling.get("seed", 0))
    result = predictor.predict(
        history.drop(columns="timestamps"),
        history["timestamps"],
        future[: case["pred_len"]],
        case["pred_len"],
        T=sampling["T"],
        top_k=sampling["top_k"],
        top_p=sampling["top_p"],
        sample_count=sampling["sample_count"],
    )
    assert list(result.index) == list(future[: case["pred_len"]])
    return result


@pytest.mark.parametrize("case", golden_cases())
def test_greedy_predictions_match_reference_in_every_window_regime(
    case: dict[str, Any],
    golden_tokenizer: KronosTokenizer,
    candles: pd.DataFrame,
    future: pd.Series,
) -> None:
    result = golden_prediction(case, golden_tokenizer, candles, future)
    np.testing.assert_allclose(result.to_numpy(), case["prediction"], rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(TEST_DEVICE != "cpu", reason="torch's CPU generator produced these draws")
@pytest.mark.parametrize("case", golden_cases("sampled_predictions"))
def test_sampled_predictions_match_reference_under_the_same_global_seed(
    case: dict[str, Any],
    golden_tokenizer: KronosTokenizer,
    candles: pd.DataFrame,
    future: pd.Series,
) -> None:
    """The reference drew these with `torch.multinomial` from the global generator: the same
    draws mean the same tokens, so the means agree to float rounding, not just statistically."""
    result = golden_prediction(case, golden_tokenizer, candles, future)
    np.testing.assert_allclose(result.to_numpy(), case["prediction"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", ["default", "onednn"])
def test_fused_passes_compute_the_modules_functions(kernel: str) -> None:
    """A window pass equals `Kronos.hidden_states`; one-token steps over its cache equal the
    window's later positions; the s1/s2 heads equal `decode_s1`/`decode_s2` (float rounding)."""
    if kernel == "onednn" and (TEST_DEVICE != "cpu" or not onednn_available()):
        pytest.skip("oneDNN kernels are CPU-only and need a torch built with them")
    model, _ = make_tiny_pair(seed=8)
    model = model.to(TEST_DEVICE)
    engine = FusedKronos(model, kernel)
    generator = torch.Generator().manual_seed(0)
    s1 = torch.randint(0, 64, (2, 12), generator=generator).to(TEST_DEVICE)
    s2 = torch.randint(0, 64, (2, 12), generator=generator).to(TEST_DEVICE)
    stamps = torch.from_numpy(time_features(pd.date_range("2024-01-02", periods=12, freq="h")))
    stamps = stamps[None].expand(2, -1, -1).to(TEST_DEVICE)
    close = {"rtol": 1e-4, "atol": 1e-5}
    with torch.inference_mode():
        expected = model.hidden_states(s1, s2, stamps)
        x = engine.embed(s1, s2, engine.time_embedding(stamps))
        cache = engine.new_cache(2, 12)
        torch.testing.assert_close(engine.window(x[:, :8], cache), expected[:, :8], **close)
        tables = engine.rotary_tables(12)
        for position in range(8, 12):
            at = torch.tensor([position], device=TEST_DEVICE)
            rotary = [(cos[at], sin[at]) for cos, sin in tables]
            hidden = engine.step(x[:, position], cache, at, position + 1, None, rotary)
            torch.testing.assert_close(hidden, expected[:, position], **close)
        logits, hidden = model.decode_s1(s1, s2, stamps)
        torch.testing.assert_close(engine.s1_logits(hidden[:, -1]), logits[:, -1], **close)
        nxt = torch.tensor([[3], [5]], device=TEST_DEVICE)
        keys, values = engine.dep_memory(hidden)
        torch.testing.assert_close(
            engine.s2_logits(hidden[:, -1], nxt[:, 0], keys, values),
            model.decode_s2(hidden, nxt)[:, -1],
            **close,
        )


def test_steps_reading_a_shared_history_once_per_series_compute_the_modules_functions() -> None:
    """Two series of 8 history tokens, 3 sample rows each that go their own ways after it:
    steps whose attention reads the history from a `SharedPrefix` (once per series) equal
    `Kronos.hidden_states` of each row's tokens, and the s2 head equals the one reading
    every row's whole cache."""
    model, _ = make_tiny_pair(seed=9)
    model = model.to(TEST_DEVICE)
    engine = FusedKronos(model)
    generator = torch.Generator().manual_seed(1)
    history = torch.randint(0, 64, (2, 2, 8), generator=generator)  # (s1/s2, series, L)
    own = torch.randint(0, 64, (2, 6, 4), generator=generator)  # (s1/s2, rows, bars)
    rows = [torch.cat((h.repeat_interleave(3, 0), o), 1) for h, o in zip(history, own, strict=True)]
    s1, s2 = (tokens.to(TEST_DEVICE) for tokens in rows)
    stamps = torch.from_numpy(time_features(pd.date_range("2024-01-02", periods=12, freq="h")))
    stamps = stamps[None].expand(6, -1, -1).to(TEST_DEVICE)
    close = {"rtol": 1e-4, "atol": 1e-5}
    with torch.inference_mode():
        expected = model.hidden_states(s1, s2, stamps)  # (6, 12, d)
        x = engine.embed(s1, s2, engine.time_embedding(stamps))
        cache = engine.new_cache(2, 12)
        engine.window(x[::3, :8], cache)  # each series' history once
        prefix = SharedPrefix.of(cache, 8, samples=3)
        cache.repeat_rows(3)
        tables = engine.rotary_tables(12)
        for position in range(8, 12):
            at = torch.tensor([position], device=TEST_DEVICE)
            rotary = [(cos[at], sin[at]) for cos, sin in tables]
            hidden = engine.step(x[:, position], cache, at, position + 1, None, rotary, prefix)
            torch.testing.assert_close(hidden, expected[:, position], **close)
        s1_ids = torch.arange(6, device=TEST_DEVICE)
        keys, values = cache.dep_keys[:, :, 8:12], cache.dep_values[:, :, 8:12]
        torch.testing.assert_close(
            engine.s2_logits(hidden, s1_ids, keys, values, None, prefix),
            engine.s2_logits(hidden, s1_ids, cache.dep_keys, cache.dep_values),
            **close,
        )


def test_decoding_a_shared_history_once_per_series_equals_decoding_every_window() -> None:
    """The tokenizer's decoder is causal: the generated bars of rows that share a history
    decode the same when the history is decoded once per series."""
    _, tokenizer = make_tiny_pair(seed=10)
    tokenizer = tokenizer.to(TEST_DEVICE)
    generator = torch.Generator().manual_seed(2)
    history = torch.randint(0, 64, (2, 2, 10), generator=generator)  # (s1/s2, series, P)
    own = torch.randint(0, 64, (2, 6, 5), generator=generator)  # (s1/s2, rows, G)
    windows = [
        torch.cat((h.repeat_interleave(3, 0), o), 1) for h, o in zip(history, own, strict=True)
    ]
    with torch.inference_mode():
        expected = tokenizer.decode(tuple(w.to(TEST_DEVICE) for w in windows))[:, 10:]
        got = tokenizer.decode_shared(
            (history[0].to(TEST_DEVICE), history[1].to(TEST_DEVICE)),
            (own[0].to(TEST_DEVICE), own[1].to(TEST_DEVICE)),
            samples=3,
        )
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["Kronos-Tokenizer-base", "Kronos-mini", "Kronos-small", "Kronos-base"]
)
def test_published_configs_build_the_published_state_dict(name: str) -> None:
    layout = json.loads((GOLDEN / "checkpoint_layouts.json").read_text())[name]
    cls = KronosTokenizer if layout["class"] == "KronosTokenizer" else Kronos
    with torch.device("meta"):
        module = cls(**layout["config"])
    shapes = {key: list(value.shape) for key, value in module.state_dict().items()}
    assert shapes == layout["state_dict"]
    assert sum(p.numel() for p in module.parameters()) == layout["parameters"]


def test_save_pretrained_round_trip(tmp_path: Path) -> None:
    model, tokenizer = make_tiny_pair(seed=3)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "t")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"config.json", "model.safetensors"}
    loaded_model = Kronos.from_pretrained(str(tmp_path / "m"))
    loaded_tokenizer = KronosTokenizer.from_pretrained(tmp_path / "t")
    assert not loaded_model.training and not loaded_tokenizer.training
    for original, loaded in ((model, loaded_model), (tokenizer, loaded_tokenizer)):
        expected_state, got_state = original.state_dict(), loaded.state_dict()
        assert expected_state.keys() == got_state.keys()
        for key, value in expected_state.items():
            assert torch.equal(value, got_state[key]), key


def test_loading_a_checkpoint_with_another_layout_fails_loudly(tmp_path: Path) -> None:
    model, _ = make_tiny_pair()
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["n_layers"] += 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match="Missing key"):
        Kronos.from_pretrained(str(tmp_path / "m"))


def test_attention_keeps_no_per_call_state_on_the_module() -> None:
    """The reference caches RoPE tables on the module by length; ours holds only `inv_freq`."""
    model, _ = make_tiny_pair()
    ids = torch.zeros(1, 7, dtype=torch.long)
    with torch.inference_mode():
        model.decode_s1(ids, ids, torch.zeros(1, 7, 5))
        model.decode_s1(ids[:, :3], ids[:, :3], torch.zeros(1, 3, 5))
        model.double()  # a dtype change leaves nothing stale behind
        logits, _ = model.decode_s1(ids, ids, torch.zeros(1, 7, 5))
    assert logits.dtype == torch.float64
    for module in model.modules():
        tensors = [k for k, v in vars(module).items() if isinstance(v, torch.Tensor)]
        assert tensors == [], (type(module).__name__, tensors)
    rotary = model.transformer[0].self_attn.rotary
    assert list(rotary._buffers) == ["inv_freq"]


def test_threads_share_one_model_and_get_the_single_threaded_results() -> None:
    model, tokenizer = make_tiny_pair(seed=5)
    predictor = KronosPredictor(model, tokenizer, device=TEST_DEVICE, max_context=48)
    rng = np.random.default_rng(0)
    stamps = pd.date_range("2024-01-02 09:30", periods=80, freq="5min")
    jobs = []
    for length in (20, 33, 40, 45):
        close = 100 + np.cumsum(rng.normal(0, 1, length))
        df = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close})
        jobs.append((df, stamps[:length], stamps[length : length + 12]))

    def run(job: tuple[pd.DataFrame, pd.DatetimeIndex, pd.DatetimeIndex]) -> np.ndarray:
        df, x_ts, y_ts = job
        return predictor.forecast(df, x_ts, y_ts, 12, sample_count=3, seed=11).paths

    single = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(run, jobs * 3))
    for index, paths in enumerate(threaded):
        np.testing.assert_array_equal(paths, single[index % len(jobs)])


@pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN kernels")
def test_packed_linear_matches_the_default_kernel_and_never_serves_stale_weights() -> None:
    torch.manual_seed(0)
    layer = Linear(64, 32).eval()
    x = torch.randn(3, 5, 64)
    with torch.inference_mode():
        expected = torch.nn.functional.linear(x, layer.weight, layer.bias)
        layer.pack_for_cpu()
        packed = layer(x)
        torch.testing.assert_close(packed, expected, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            layer.weight.mul_(2.0)  # the packed copy is now stale: the default kernel runs
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    assert set(layer.state_dict()) == {"weight", "bias"}
