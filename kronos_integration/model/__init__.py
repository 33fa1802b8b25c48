"""Checkpoint-compatible Kronos model and tokenizer."""

from kronos_integration.model.kronos import Kronos, KronosTokenizer

__all__ = ["Kronos", "KronosTokenizer"]
