"""ISIN validation: format (ISO 6166), the prefix and the Luhn check digit."""

from __future__ import annotations

import re

_ISIN_FORMAT = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")

_ISO_3166_ALPHA_2 = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
ZW
"""
ISO_3166_COUNTRIES = frozenset(_ISO_3166_ALPHA_2.split())
"""The 249 ISO 3166-1 alpha-2 codes officially assigned as of ISO/TC 46 N1127 (2024-02-29), as
listed by the IANA time zone database's `iso3166.tab` (tzdata 2026.6; a test compares the two)."""

ISIN_ONLY_PREFIXES: dict[str, str] = {
    "EU": "European Union",
    "EZ": "OTC derivatives (ISO 6166:2021)",
    "QS": "assigned internally (Euroclear France; temporarily in Germany)",
    "QT": "assigned internally (Switzerland)",
    "XA": "CUSIP Global Services substitute agencies",
    "XB": "NSD Russia substitute agencies",
    "XC": "WM Datenservice (Germany) substitute agencies",
    "XD": "SIX Financial Information substitute agencies",
    "XF": "assigned internally, not unique",
    "XK": "Kosovo (no ISO 3166-1 code yet)",
    "XS": "international securities (Euroclear, Clearstream)",
    "AN": "Netherlands Antilles (withdrawn from ISO 3166-1 in 2010; SLB's AN8068571086)",
    "CS": "Serbia and Montenegro (withdrawn from ISO 3166-1 in 2006)",
}
"""Prefixes ISINs use besides ISO 3166-1 codes: those of ISO 6166 and the numbering agencies (as
collected by python-stdnum's `stdnum.isin` and ANNA's ISO 6166 page), and withdrawn country codes
that ISINs issued before the withdrawal keep."""

ISIN_PREFIXES = ISO_3166_COUNTRIES | ISIN_ONLY_PREFIXES.keys()


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
    """Return `value` if it is a well-formed ISIN with a known prefix (`ISIN_PREFIXES`) and the
    right check digit; else ValueError."""
    if not _ISIN_FORMAT.fullmatch(value):
        raise ValueError(
            "not an ISIN: expected 2 capital letters (country), 9 capitals or digits, "
            f"and 1 check digit, got {value!r}"
        )
    if value[:2] not in ISIN_PREFIXES:
        raise ValueError(
            f"ISIN prefix {value[:2]!r} of {value!r} is not an ISO 3166-1 country code "
            "nor an ISIN prefix such as XS or EU"
        )
    expected = luhn_check_digit(value[:11])
    if int(value[11]) != expected:
        raise ValueError(f"ISIN check digit of {value!r} is wrong: expected {expected}")
    return value
