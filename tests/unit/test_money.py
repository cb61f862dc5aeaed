"""Amounts as integer thousandths: parsing edge cases and exact rendering."""

from decimal import Decimal

import pytest

from projections.money import MAX_ABS, to_decimal, to_number, to_thousandths


@pytest.mark.parametrize(
    "value, thousandths",
    [
        (0, 0),
        (120, 120_000),
        (-3, -3_000),
        ("120", 120_000),
        ("12.5", 12_500),
        ("0.125", 125),
        ("0.001", 1),
        ("-0.001", -1),
        ("-2.5", -2_500),
        ("0", 0),
        (Decimal("0.1"), 100),
        (Decimal("1.000"), 1_000),
        (Decimal("-7.25"), -7_250),
        (10**12, MAX_ABS),
        ("-1000000000000", -MAX_ABS),
    ],
)
def test_plain_decimals_become_exact_thousandths(value, thousandths):
    result = to_thousandths(value)
    assert result == thousandths and type(result) is int


@pytest.mark.parametrize(
    "value",
    [
        0.1,
        1.0,
        float("nan"),
        True,
        False,
        None,
        [1],
        {"v": 1},
        b"1",
    ],
)
def test_floats_bools_and_other_types_are_rejected(value):
    with pytest.raises(ValueError):
        to_thousandths(value)


@pytest.mark.parametrize(
    "text",
    [
        "1e2",
        "1E2",
        "1.5e1",
        "",
        " 1",
        "1 ",
        "+1",
        "01",
        "-01",
        "1.",
        ".5",
        "1.2.3",
        "1,5",
        "NaN",
        "Infinity",
        "0x10",
        "1_000",
        "٣",
    ],
)
def test_strings_that_are_not_plain_decimals_are_rejected(text):
    with pytest.raises(ValueError, match="not a plain decimal"):
        to_thousandths(text)


@pytest.mark.parametrize("text", ["1\u0663", "1.\u0665", "1\uff12"])  # Arabic-Indic / full-width digits
def test_strings_with_non_ascii_digits_are_rejected(text):
    # EVENTS.md: a plain decimal (`120`, `12.5`, `"0.125"`); the regex's \d also matches
    # non-ASCII digits, which Decimal() then parses ("1\u0663" -> 13 points).
    with pytest.raises(ValueError, match="not a plain decimal"):
        to_thousandths(text)


@pytest.mark.parametrize("value", ["0.1234", Decimal("0.1234"), Decimal("1.0000")])
def test_more_than_three_fractional_digits_are_rejected(value):
    with pytest.raises(ValueError, match="3 fractional digits"):
        to_thousandths(value)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_non_finite_decimals_are_rejected(value):
    with pytest.raises(ValueError):
        to_thousandths(value)


@pytest.mark.parametrize("value", [10**12 + 1, -(10**12) - 1, "1000000000000.001", Decimal("-1000000000000.001")])
def test_amounts_beyond_the_range_are_rejected(value):
    with pytest.raises(ValueError, match="out of range"):
        to_thousandths(value)


def test_point_one_plus_point_two_renders_as_exactly_point_three():
    total = to_thousandths("0.1") + to_thousandths("0.2")
    assert total == 300
    assert to_number(total) == 0.3
    assert repr(to_number(total)) == "0.3"


@pytest.mark.parametrize(
    "thousandths, rendered",
    [
        (0, "0.0"),
        (1, "0.001"),
        (-1, "-0.001"),
        (125, "0.125"),
        (120_000, "120.0"),
        (999_999_999_999_999, "999999999999.999"),
        (MAX_ABS, "1000000000000.0"),
        (-999_999_999_999_999, "-999999999999.999"),
    ],
)
def test_to_number_renders_thousandths_exactly(thousandths, rendered):
    assert repr(to_number(thousandths)) == rendered


@pytest.mark.parametrize(
    "thousandths",
    [
        7,
        33,
        100_001,
        123_456_789,
        2**40 + 1,
        549_755_813_887_999,
        MAX_ABS - 1,
        3 * MAX_ABS // 7,
    ],
)
def test_to_number_round_trips_through_its_shortest_repr(thousandths):
    assert Decimal(repr(to_number(thousandths))) * 1000 == thousandths


def test_to_decimal_is_exact():
    assert to_decimal(125) == Decimal("0.125")
    assert to_decimal(-2_500) == Decimal("-2.5")
    assert str(to_decimal(1)) == "0.001"
