import pytest

from kronos_integration.isin import luhn_check_digit, validate_isin


@pytest.mark.parametrize(
    "isin",
    [
        "US67066G1040",
        "US0378331005",
        "DE000BAY0017",
        "GB0002634946",
        "AU0000XVGZA3",
        "JP3633400001",
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
