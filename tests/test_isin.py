from importlib import resources

import pytest

from kronos_integration.isin import (
    ISIN_ONLY_PREFIXES,
    ISO_3166_COUNTRIES,
    luhn_check_digit,
    validate_isin,
)


def _with_check_digit(body: str) -> str:
    return f"{body}{luhn_check_digit(body)}"


@pytest.mark.parametrize(
    "isin",
    [
        "US67066G1040",
        "US0378331005",
        "DE000BAY0017",
        "GB0002634946",
        "AU0000XVGZA3",
        "JP3633400001",
        "AN8068571086",  # SLB: Netherlands Antilles, withdrawn from ISO 3166-1 in 2010
    ],
)
def test_real_isins_are_accepted(isin):
    assert validate_isin(isin) == isin
    assert luhn_check_digit(isin[:11]) == int(isin[11])


@pytest.mark.parametrize(
    ("isin", "reason"),
    [
        ("US67066G1041", "check digit"),
        ("US0378331006", "check digit"),
        ("us67066g1040", "not an ISIN"),
        ("US67066G104", "not an ISIN"),
        ("US67066G10400", "not an ISIN"),
        ("1S67066G1040", "not an ISIN"),
        ("US67066G104X", "not an ISIN"),
        ("US67066G-040", "not an ISIN"),
        ("", "not an ISIN"),
        ("ÜS67066G1040", "not an ISIN"),
    ],
)
def test_bad_isins_are_rejected_with_the_reason(isin, reason):
    with pytest.raises(ValueError, match=reason):
        validate_isin(isin)


def test_every_wrong_check_digit_is_caught():
    body = "US67066G104"
    wrong = [d for d in range(10) if d != luhn_check_digit(body)]
    for digit in wrong:
        with pytest.raises(ValueError):
            validate_isin(f"{body}{digit}")


@pytest.mark.parametrize("prefix", ["ZZ", "AA", "QQ", "XX", "EA", "UK"])
def test_a_prefix_that_is_no_country_nor_an_isin_prefix_is_rejected(prefix):
    with pytest.raises(ValueError, match=f"ISIN prefix '{prefix}'.*not an ISO 3166-1"):
        validate_isin(_with_check_digit(f"{prefix}000000000"))


@pytest.mark.parametrize("prefix", sorted(ISIN_ONLY_PREFIXES))
def test_isin_only_prefixes_are_accepted(prefix):
    isin = _with_check_digit(f"{prefix}000000000")
    assert validate_isin(isin) == isin


def test_the_country_list_is_the_iana_copy_of_iso_3166_1():
    table = resources.files("tzdata").joinpath("zoneinfo", "iso3166.tab").read_text("utf-8")
    listed = {line.split("\t")[0] for line in table.splitlines() if not line.startswith("#")}
    assert listed == ISO_3166_COUNTRIES
