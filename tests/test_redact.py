"""What of an internal error a client may read (kronos_integration/redact.py)."""

from __future__ import annotations

import pytest

from kronos_integration.redact import (
    MAX_DETAIL_CHARS,
    PATH_MASK,
    mask_secrets,
    redact_detail,
    strip_userinfo,
)

KEPT = "cannot load 'NeoQuasar/Kronos-small' from http://127.0.0.1:9/api/models: 1/3 config.json"


@pytest.mark.parametrize(
    ("detail", "redacted"),
    [
        (
            "ModelLoadError: cannot load '/srv/models/kronos': no such local folder",
            "ModelLoadError: cannot load '<path>': no such local folder",
        ),
        (
            "not in the cache /root/.cache/huggingface/hub and the hub was not asked",
            "not in the cache <path> and the hub was not asked",
        ),
        ("[Errno 2] No such file: '/srv/a/config.json'.", "[Errno 2] No such file: '<path>'."),
        ("in ~/models/x, ./local/y and ../up/z", "in <path>, <path> and <path>"),
        (r"at C:\Users\me\model.bin and \\share\models", "at <path> and <path>"),
        ("from file:///srv/weights.bin", "from file:<path>"),
        ("at file:/srv/weights.bin.", "at file:<path>."),
        # A path inside any URI with no host (MLflow's default store, SQLAlchemy's relative form).
        (
            "UnsupportedModelRegistryStoreURIException: got unsupported URI "
            "'sqlite:////tmp/pytest-of-me/p/mlflow.db' for model registry data storage.",
            "UnsupportedModelRegistryStoreURIException: got unsupported URI "
            "'sqlite:<path>' for model registry data storage.",
        ),
        ("store sqlite:///mlflow.db, postgresql:///db", "store sqlite:<path>, postgresql:<path>"),
        # A URL's credentials go; its host and path stay.
        (
            "hub http://user:pa55word@127.0.0.1:9/api/models unreachable",
            "hub http://127.0.0.1:9/api/models unreachable",
        ),
        ("got tensor([[0.1, 0.2], [0.3, 0.4]]) here", "got tensor(…) here"),
        ("got tensor([[0.1, 0.2],", "got tensor(…)"),
        (
            "RuntimeError: Error(s) in loading state_dict for Kronos:\n\tsize mismatch for a: "
            "torch.Size([64, 32])\n\tsize mismatch for b",
            "RuntimeError: Error(s) in loading state_dict for Kronos: (+2 more lines in the log)",
        ),
        # Not paths: repo ids, URLs of a hub, ratios, file names.
        (KEPT, KEPT),
    ],
)
def test_paths_tensors_and_extra_lines_are_removed(detail, redacted):
    assert redact_detail(detail) == redacted
    assert PATH_MASK == "<path>"


def test_a_long_detail_is_cut_to_one_bounded_line():
    detail = "ValueError: " + "word   " * 200
    redacted = redact_detail(detail)
    assert len(redacted) == MAX_DETAIL_CHARS and redacted.endswith("…")
    assert "  " not in redacted
    assert redact_detail(detail, max_chars=40) == "ValueError: word word word word word wo…"


def test_secrets_are_masked_longest_first():
    assert mask_secrets("token hf_abc and hf_abcdef", ["hf_abc", "hf_abcdef", None]) == (
        "token *** and ***"
    )


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("http://user:pa55word@127.0.0.1:9", "http://127.0.0.1:9"),
        (
            "see https://tok@hub.example/x?a=b@c and ftp://u@h/",
            "see https://hub.example/x?a=b@c and ftp://h/",
        ),
        ("mail user@example.com, repo owner/name", "mail user@example.com, repo owner/name"),
    ],
)
def test_url_credentials_are_stripped_everywhere_a_secret_is_masked(text, stripped):
    assert strip_userinfo(text) == stripped
    assert mask_secrets(text, []) == stripped
