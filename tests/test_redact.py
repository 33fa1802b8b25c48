"""What of an internal error a client may read (kronos_integration/redact.py)."""

from __future__ import annotations

import pytest

from kronos_integration.redact import MAX_DETAIL_CHARS, PATH_MASK, mask_secrets, redact_detail

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
        ("from file:///srv/weights.bin", "from <path>"),
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
