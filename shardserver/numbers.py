"""Numbers as Redis reads them from arguments."""

LLONG_MIN = -(2**63)
LLONG_MAX = 2**63 - 1


def parse_int(text: bytes) -> int | None:
    """A 64-bit integer as Redis's ``string2ll`` accepts it, or None.

    An optional ``-``, then digits with no leading zero (except ``0`` itself); no spaces,
    no ``+``, nothing else.
    """
    size = len(text)
    if size == 0 or size > 20:
        return None
    digits = text[1:] if text[0] == 0x2D else text
    if not digits.isdigit() or not digits.isascii():
        return None
    if digits[0] == 0x30 and (len(digits) > 1 or digits is not text):
        return None
    value = int(text)
    if value < LLONG_MIN or value > LLONG_MAX:
        return None
    return value
