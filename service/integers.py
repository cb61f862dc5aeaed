"""Integer parameters: decimal digits within a range, their length bounded before any conversion (Python's
int() refuses strings of more than 4300 digits, and a long one costs time)."""

INT32, INT64 = 2**31 - 1, 2**63 - 1


def bounded_int(raw: str, maximum: int, minimum: int = 0) -> int | None:
    """The value of `raw` when it is a decimal integer from `minimum` to `maximum`, else None."""
    if not raw.isascii() or not raw.isdigit():
        return None
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(maximum)):
        return None
    value = int(digits)
    return value if minimum <= value <= maximum else None
