"""Tiny random Kronos checkpoints that tests save and load for real (no download)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import torch

from kronos_integration.model import Kronos, KronosTokenizer

GOLDEN = Path(__file__).resolve().parent / "golden"
"""Reference vectors, tiny checkpoints and real candles (see `golden/ORIGIN.md`)."""
# The core tests run on this device (`KRONOS_TEST_DEVICE=cuda` on a GPU machine).
TEST_DEVICE = os.environ.get("KRONOS_TEST_DEVICE", "cpu")


def tiny_tokenizer_config() -> dict[str, Any]:
    """A tokenizer with the real layout at tiny widths (dropouts non-zero on purpose)."""
    return dict(
        d_in=6, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2,
        ffn_dropout_p=0.1, attn_dropout_p=0.1, resid_dropout_p=0.1, s1_bits=6, s2_bits=6,
        beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=3,
    )  # fmt: skip


def tiny_model_config(learn_te: bool = True) -> dict[str, Any]:
    """A Kronos with the real layout at tiny widths, matching `tiny_tokenizer_config`."""
    return dict(
        s1_bits=6, s2_bits=6, n_layers=2, d_model=32, n_heads=4, ff_dim=64, ffn_dropout_p=0.25,
        attn_dropout_p=0.1, resid_dropout_p=0.25, token_dropout_p=0.1, learn_te=learn_te,
    )  # fmt: skip


def make_tiny_pair(seed: int = 0, learn_te: bool = True) -> tuple[Kronos, KronosTokenizer]:
    """Random tiny model and tokenizer in eval mode; weights scaled up so logits are decisive."""
    torch.manual_seed(seed)
    model = Kronos(**tiny_model_config(learn_te)).eval()
    tokenizer = KronosTokenizer(**tiny_tokenizer_config()).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
    return model, tokenizer


@functools.cache
def tiny_parameter_counts() -> tuple[int, int]:
    """(model, tokenizer) parameter counts of the tiny checkpoints, as /models reports them."""
    model, tokenizer = make_tiny_pair()
    return (
        sum(p.numel() for p in model.parameters()),
        sum(p.numel() for p in tokenizer.parameters()),
    )


def make_tiny_checkpoints(directory: Path, seed: int = 0) -> tuple[Path, Path]:
    """Save a tiny model and tokenizer under `directory`: (model_dir, tokenizer_dir)."""
    model, tokenizer = make_tiny_pair(seed)
    model_dir, tokenizer_dir = directory / "tiny-model", directory / "tiny-tokenizer"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(tokenizer_dir)
    return model_dir, tokenizer_dir


def make_published_shape_checkpoints(
    directory: Path, model: str = "Kronos-small", seed: int = 0
) -> tuple[Path, Path]:
    """Random weights in a published layout (`model` from golden/checkpoint_layouts.json) and a
    Kronos-Tokenizer-base-shaped tokenizer, saved under `directory`: the real shapes and cost,
    no download. Returns (model_dir, tokenizer_dir)."""
    layouts = json.loads((GOLDEN / "checkpoint_layouts.json").read_text())
    torch.manual_seed(seed)
    model_dir, tokenizer_dir = directory / model, directory / "Kronos-Tokenizer-base"
    Kronos(**layouts[model]["config"]).save_pretrained(model_dir)
    KronosTokenizer(**layouts["Kronos-Tokenizer-base"]["config"]).save_pretrained(tokenizer_dir)
    return model_dir, tokenizer_dir
