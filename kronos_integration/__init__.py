"""Kronos OHLCV forecasting: checkpoint-compatible model, fast predictor, simulator, loading."""
