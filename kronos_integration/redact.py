"""What of an internal message may leave the process: secrets masked in every text that does
(log lines, error messages; a URL's `user:password@` is one), and a client's one-line view of an
error (`redact_detail`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
PATH_MASK = "<path>"
MAX_DETAIL_CHARS = 300

# Where a path runs to: the next blank, quote, comma, semicolon or bracket.
_PATH_END = r"[^\s'\"`,;()\[\]{}<>]*"
# A URI whose path is on this machine: any `file:` URI, or any scheme with an empty authority
# (`sqlite:////abs/mlflow.db`, `sqlite:///relative.db`, `file:///srv`). The scheme stays.
_LOCAL_URI = re.compile(r"\b(file:|[A-Za-z][\w+.-]*:(?=///))/" + _PATH_END)
# A file system path that starts at a root, a home or a dot (POSIX, Windows drive or UNC), not
# preceded by a word character or a slash: repo ids (`owner/name`), ratios and the path part of an
# http URL stay.
_PATH = re.compile(r"(?<![\w/\\.:-])(?:~|[A-Za-z]:|\.{1,2})?[/\\]{1,2}(?=[\w.~-])" + _PATH_END)
# The `user:password@` (or `token@`) of a URL with a host.
_USERINFO = re.compile(r"(?<=://)[^\s/?#@'\"`<>]+@")
# A tensor printed with its values, e.g. `tensor([[0.1, 0.2], ...])`.
_TENSOR = re.compile(r"\btensor\((?:[^()]|\([^()]*\))*\)?")


def mask_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-empty secret replaced by `MASK` (longest first, so a secret that
    contains another is masked whole) and the credentials of every URL removed
    (`strip_userinfo`)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return strip_userinfo(text)


def strip_userinfo(text: str) -> str:
    """`text` with the `user:password@` of every URL in it removed:
    `http://u:p@127.0.0.1:9/x` -> `http://127.0.0.1:9/x`."""
    return _USERINFO.sub("", text)


def redact_detail(text: str, max_chars: int = MAX_DETAIL_CHARS) -> str:
    """An internal error's text as a client may read it: its first line only (a state_dict's
    per-tensor list follows it), file system paths as `PATH_MASK` (inside a local URI too:
    `sqlite:<path>`), URLs without their credentials, printed tensors as `tensor(…)`,
    at most `max_chars` characters (cut with `…`). Mask secrets first (`mask_secrets`)."""
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    first = _TENSOR.sub("tensor(…)", strip_userinfo(first))
    first = _LOCAL_URI.sub(lambda m: m.group(1) + PATH_MASK + _trailing_stop(m.group()), first)
    first = _PATH.sub(lambda m: PATH_MASK + _trailing_stop(m.group()), first)
    first = " ".join(first.split())
    if len(lines) > 1:
        first += f" (+{len(lines) - 1} more lines in the log)"
    return first if len(first) <= max_chars else first[: max_chars - 1].rstrip() + "…"


def _trailing_stop(path: str) -> str:
    """The sentence's full stop or colon a path match swallowed, given back."""
    stripped = path.rstrip(".:")
    return path[len(stripped) :]
