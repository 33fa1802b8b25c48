"""ISIN validation: format (ISO 6166) and the Luhn check digit."""

from __future__ import annotations

import re

_ISIN_FORMAT = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")


def _expanded_digits(body: str) -> str:
    """Each letter becomes its two-digit value (A=10 … Z=35); digits stay as they are."""
    return "".join(str(int(char, 36)) for char in body)


def luhn_check_digit(body: str) -> int:
    """Check digit of the first 11 ISIN characters, by Luhn on their letter-expanded digits."""
    digits = [int(d) for d in _expanded_digits(body)]
    total = 0
    # The rightmost digit of the body sits next to the check digit, so it is the one doubled.
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def validate_isin(value: str) -> str:
    """Return `value` if it is a well-formed ISIN with the right check digit; else ValueError."""
    if not _ISIN_FORMAT.fullmatch(value):
        raise ValueError(
            "not an ISIN: expected 2 capital letters (country), 9 capitals or digits, "
            f"and 1 check digit, got {value!r}"
        )
    expected = luhn_check_digit(value[:11])
    if int(value[11]) != expected:
        raise ValueError(f"ISIN check digit of {value!r} is wrong: expected {expected}")
    return value
