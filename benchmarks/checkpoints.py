"""Random-weight checkpoints with the published Kronos layouts, saved with ``save_pretrained``.

The layouts (constructor configs) are those of the Hugging Face repos NeoQuasar/Kronos-mini,
-small, -base and Kronos-Tokenizer-base; the weights are random, so the service loads and runs
them exactly as the real ones (same shapes, same cost, same memory) without a download.
Kronos-mini is published with Kronos-Tokenizer-2k, whose layout is not reproduced here; it is
paired with the base tokenizer, so its numbers include the base tokenizer's cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kronos_integration.model import Kronos, KronosTokenizer

_COMMON: dict[str, Any] = dict(s1_bits=10, s2_bits=10, learn_te=True)
MODEL_LAYOUTS: dict[str, dict[str, Any]] = {
    "mini": dict(
        _COMMON, n_layers=4, d_model=256, n_heads=4, ff_dim=512, ffn_dropout_p=0.2,
        attn_dropout_p=0.0, resid_dropout_p=0.2, token_dropout_p=0.0,
    ),
    "small": dict(
        _COMMON, n_layers=8, d_model=512, n_heads=8, ff_dim=1024, ffn_dropout_p=0.25,
        attn_dropout_p=0.1, resid_dropout_p=0.25, token_dropout_p=0.1,
    ),
    "base": dict(
        _COMMON, n_layers=12, d_model=832, n_heads=16, ff_dim=2048, ffn_dropout_p=0.2,
        attn_dropout_p=0.0, resid_dropout_p=0.2, token_dropout_p=0.0,
    ),
}  # fmt: skip
TOKENIZER_LAYOUT: dict[str, Any] = dict(
    d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, ffn_dropout_p=0.0,
    attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0,
    gamma=1.1, zeta=0.05, group_size=4,
)  # fmt: skip


def save_random_checkpoints(directory: Path, shape: str, seed: int = 0) -> tuple[Path, Path]:
    """Save a random Kronos-``shape`` model and a Kronos-Tokenizer-base-shaped tokenizer under
    ``directory``; returns (model_dir, tokenizer_dir) for KRONOS_MODEL_ID / KRONOS_TOKENIZER_ID."""
    if shape not in MODEL_LAYOUTS:
        raise ValueError(f"shape must be one of {sorted(MODEL_LAYOUTS)}, got {shape!r}")
    torch.manual_seed(seed)
    model_dir = directory / f"kronos-{shape}"
    tokenizer_dir = directory / "kronos-tokenizer-base"
    Kronos(**MODEL_LAYOUTS[shape]).save_pretrained(model_dir)
    KronosTokenizer(**TOKENIZER_LAYOUT).save_pretrained(tokenizer_dir)
    return model_dir, tokenizer_dir
