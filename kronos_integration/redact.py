"""The one place secrets are masked in text that leaves the process (log lines, error messages)."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


def mask_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-empty secret replaced by `MASK` (longest first, so a secret that
    contains another is masked whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
