"""What of an internal message may leave the process: secrets masked in every text that does
(log lines, error messages), and a client's one-line view of an error (`redact_detail`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
PATH_MASK = "<path>"
MAX_DETAIL_CHARS = 300

# A file system path that starts at a root, a home or a dot (POSIX, Windows drive or UNC) or a
# file:// URL, not
# preceded by a word character or a slash: repo ids (`owner/name`), ratios and the path part of an
# http URL stay. It runs to the next blank, quote, comma, semicolon or bracket.
_PATH = re.compile(
    r"(?:file://|(?<![\w/\\.:-])(?:~|[A-Za-z]:|\.{1,2})?[/\\]{1,2}(?=[\w.~-]))[^\s'\"`,;()\[\]{}<>]*"
)
# A tensor printed with its values, e.g. `tensor([[0.1, 0.2], ...])`.
_TENSOR = re.compile(r"\btensor\((?:[^()]|\([^()]*\))*\)?")


def mask_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-empty secret replaced by `MASK` (longest first, so a secret that
    contains another is masked whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_detail(text: str, max_chars: int = MAX_DETAIL_CHARS) -> str:
    """An internal error's text as a client may read it: its first line only (a state_dict's
    per-tensor list follows it), file system paths as `PATH_MASK`, printed tensors as `tensor(…)`,
    at most `max_chars` characters (cut with `…`). Mask secrets first (`mask_secrets`)."""
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    first = _TENSOR.sub("tensor(…)", first)
    first = _PATH.sub(lambda m: PATH_MASK + _trailing_stop(m.group()), first)
    first = " ".join(first.split())
    if len(lines) > 1:
        first += f" (+{len(lines) - 1} more lines in the log)"
    return first if len(first) <= max_chars else first[: max_chars - 1].rstrip() + "…"


def _trailing_stop(path: str) -> str:
    """The sentence's full stop or colon a path match swallowed, given back."""
    stripped = path.rstrip(".:")
    return path[len(stripped) :]
