"""Exact amounts as integer thousandths: the only numeric type of the read-model."""

import re
from decimal import Decimal

SCALE = 1000
MAX_ABS = 10**12 * SCALE  # keeps every sum far inside a signed 64-bit integer
_PLAIN_DECIMAL = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]{1,3}))?")


def to_thousandths(value: object) -> int:
    """Parse a JSON number (int or Decimal, never float) or a plain decimal string."""
    if isinstance(value, (bool, float)):
        raise ValueError("amounts must be plain decimals (no exponent, no binary floats)")
    if isinstance(value, str):
        plain = _PLAIN_DECIMAL.fullmatch(value)
        if not plain:
            raise ValueError(f"{value!r} is not a plain decimal with at most 3 fractional digits")
        sign, whole, fraction = plain.groups()  # integer arithmetic: no Decimal on the hot path
        scaled = int(whole) * SCALE + (int(fraction.ljust(3, "0")) if fraction else 0)
        value = -scaled if sign else scaled
        if scaled > MAX_ABS:
            raise ValueError("amount out of range")
        return value
    if isinstance(value, int):
        scaled = value * SCALE
    elif isinstance(value, Decimal):
        if not value.is_finite() or int(value.as_tuple().exponent) < -3:
            raise ValueError("amounts have at most 3 fractional digits")
        scaled = int(value * SCALE)
    else:
        raise ValueError("amount must be a number or a decimal string")
    if abs(scaled) > MAX_ABS:
        raise ValueError("amount out of range")
    return scaled


def to_number(thousandths: int) -> float:
    """JSON rendering: exact (shortest repr) for any total below about 2**43 points, far above real balances."""
    return thousandths / SCALE


def to_decimal(thousandths: int) -> Decimal:
    return Decimal(thousandths).scaleb(-3)
