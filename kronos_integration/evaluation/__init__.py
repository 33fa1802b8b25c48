"""Evaluation: rolling-origin backtests, proper scores and naive baselines, and their report."""
