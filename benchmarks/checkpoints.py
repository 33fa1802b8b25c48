"""Random-weight checkpoints with the published Kronos layouts, saved with ``save_pretrained``.

The layouts (constructor configs) are those of the Hugging Face repos NeoQuasar/Kronos-mini,
-small, -base and Kronos-Tokenizer-base; the weights are random, so the service loads and runs
them exactly as the real ones (same shapes, same cost, same memory) without a download.
Kronos-mini is published with Kronos-Tokenizer-2k, whose layout is not reproduced here; it is
paired with the base tokenizer, so its numbers include the base tokenizer's cost.
"""

from __future__ import annotations

from pathlib import Path

from tests.checkpoints import make_published_shape_checkpoints

SHAPES = ("mini", "small", "base")
"""The `--shape` choices: Kronos-mini, Kronos-small, Kronos-base (tests/golden's layouts)."""


def save_random_checkpoints(directory: Path, shape: str, seed: int = 0) -> tuple[Path, Path]:
    """Save a random Kronos-``shape`` model and a Kronos-Tokenizer-base-shaped tokenizer under
    ``directory``; returns (model_dir, tokenizer_dir) for KRONOS_MODEL_ID / KRONOS_TOKENIZER_ID."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    return make_published_shape_checkpoints(directory, f"Kronos-{shape}", seed)
