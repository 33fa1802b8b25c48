"""Files in the operator's data folder that cannot be used are the operator's fault, not the
client's: a 500 problem+json of its own type naming the instrument and `KRONOS_DATA_DIR/<file>`
(never the real path), no field errors, the reason logged at ERROR, counted in the metrics."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.candles import make_candles
from tests.support import assert_problem, loaded_app, make_settings


def _write_data_folder(folder: Path) -> None:
    bad = make_candles(60).reset_index()
    bad.loc[10, "close"] = float("nan")
    bad.to_csv(folder / "BAD.csv", index=False)
    (folder / "BIN.csv").write_bytes(b"timestamp,open,high,low,close\n\xff\xfe\x81 not text\n")
    mixed = make_candles(60).reset_index()
    mixed["calendar"] = ["XNYS"] * 30 + ["XLON"] * 30
    mixed.to_csv(folder / "MIX.csv", index=False)
    make_candles(60).reset_index().to_csv(folder / "MSFT.csv", index=False)
    (folder / "MSFT.calendar").write_text("NOPE\n")


@pytest.mark.parametrize(
    ("symbol", "reason"),
    [
        ("BAD", "close"),
        ("BIN", "UnicodeDecodeError"),
        ("MIX", "several calendars"),
        ("MSFT", "KRONOS_DATA_DIR/MSFT.calendar: unknown 'NOPE'"),
    ],
)
def test_an_unusable_data_folder_file_is_a_500_naming_it_not_a_client_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, symbol: str, reason: str
) -> None:
    _write_data_folder(tmp_path)
    client = loaded_app(make_settings(mode="simulated", data_dir=tmp_path)).test_client()
    with caplog.at_level(logging.ERROR):
        response = client.post("/predict", json={"symbol": symbol, "horizon_days": 2})
    body = assert_problem(response, 500)
    assert body["type"].endswith("/stored-history-unusable")
    assert body["title"] == "Stored history is unusable"
    assert "errors" not in body
    assert f"The stored history of {symbol} (KRONOS_DATA_DIR/{symbol}.csv)" in body["detail"]
    assert str(tmp_path) not in response.get_data(as_text=True)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"KRONOS_DATA_DIR/{symbol}.csv" in m and reason in m for m in errors), errors
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'endpoint="/predict",method="POST",status="500"' in metrics
