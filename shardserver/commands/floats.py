"""INCRBYFLOAT's number arithmetic: C ``long double`` as Redis uses it, emulated exactly.

Redis parses both operands with ``strtold``, adds them as ``long double`` and writes the sum
with ``%.17Lf`` less its trailing zeros. On x86-64 a ``long double`` is the x87 extended
format (a 64-bit significand, exponents from 2**-16445 to 2**16383), so ``0.1 + 0.2`` is
``0.3`` there, where Python floats give ``0.30000000000000004``, and ``1e400`` is a valid
result of 401 digits. Python has no such type, so values are held here as exact
:class:`~fractions.Fraction` objects and rounded to the format (to nearest, ties to even)
after every parse and every sum: the results are Redis's to the last digit.
"""

from __future__ import annotations

import ctypes
import math
import platform
import re
from fractions import Fraction

#: (significand bits, exponent of the lowest significand bit, values reach 2**this) of the
#: platform's ``long double``: the x87 extended format on x86, IEEE quad or double elsewhere.
_FORMATS = {
    "extended": (64, -16445, 16384),
    "quad": (113, -16494, 16384),
    "double": (53, -1074, 1024),
}
if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
    _FORMAT = "extended"
else:
    _FORMAT = "quad" if ctypes.sizeof(ctypes.c_longdouble) == 16 else "double"
_BITS, _MIN_EXP, _MAX_EXP = _FORMATS[_FORMAT]

#: Redis's MAX_LONG_DOUBLE_CHARS: longer arguments are refused before parsing.
MAX_CHARS = 5 * 1024
#: Decimal exponents past which a parsed value certainly overflows or rounds to zero.
_DEC_MAX = math.ceil(_MAX_EXP * math.log10(2)) + 1
_DEC_MIN = math.floor((_MIN_EXP - 1) * math.log10(2)) - 1

#: What ``strtold`` accepts (less NaN, which Redis refuses anyway), as the whole argument.
_NUMBER = re.compile(
    rb"""(?P<sign>[+-]?)(?:
        (?P<inf>inf(?:inity)?)
      | 0x(?P<hi>[0-9a-f]*)(?:\.(?P<hf>[0-9a-f]*))?(?:p(?P<hexp>[+-]?[0-9]+))?
      | (?P<di>[0-9]*)(?:\.(?P<df>[0-9]*))?(?:e(?P<dexp>[+-]?[0-9]+))?
    )""",
    re.IGNORECASE | re.VERBOSE,
)

#: Python refuses int <-> decimal text conversions past 4300 digits; work in smaller chunks.
_CHUNK = 4000

LongDouble = Fraction | float  # a float only for the infinities
ZERO = Fraction(0)


def _decimal_int(digits: bytes) -> int:
    """The value of a string of decimal digits of any length."""
    value = 0
    for start in range(0, len(digits), _CHUNK):
        chunk = digits[start : start + _CHUNK]
        value = value * 10 ** len(chunk) + int(chunk)
    return value


def _decimal_text(value: int) -> bytes:
    """``value`` (>= 0) in decimal, of any length."""
    if value < 10**_CHUNK:
        return b"%d" % value
    high, low = divmod(value, 10**_CHUNK)
    return _decimal_text(high) + b"%0*d" % (_CHUNK, low)


def _dyadic(significand: int, power: int) -> Fraction:
    """``significand * 2**power`` exactly."""
    return Fraction(significand << power) if power >= 0 else Fraction(significand, 1 << -power)


def _exponent(text: bytes | None) -> int:
    """An exponent's value (absent: 0); it may have thousands of digits."""
    if not text:
        return 0
    magnitude = _decimal_int(text.lstrip(b"+-"))
    return -magnitude if text[:1] == b"-" else magnitude


def _round(exact: Fraction) -> Fraction | None:
    """The long double nearest to ``exact`` (ties to even); None if it overflows."""
    if not exact:
        return exact
    num, den = abs(exact.numerator), exact.denominator
    top = num.bit_length() - den.bit_length()  # floor(log2(exact)), or one more
    if (num << -top if top < 0 else num) < (den << top if top > 0 else den):
        top -= 1
    shift = max(top - (_BITS - 1), _MIN_EXP)  # exponent of the last significand bit
    if shift >= 0:
        den <<= shift
    else:
        num <<= -shift
    significand, rest = divmod(num, den)
    if 2 * rest > den or (2 * rest == den and significand & 1):
        significand += 1
    if significand.bit_length() + shift > _MAX_EXP:
        return None
    value = _dyadic(significand, shift)
    return value if exact > 0 else -value


def parse(text: bytes) -> LongDouble | None:
    """The argument as Redis's ``string2ld`` reads it, or None where Redis says
    "value is not a valid float": empty, too long, not all of it a number, NaN, or out of
    range (overflowing, or a non-zero number rounding to zero)."""
    if not text or len(text) >= MAX_CHARS:
        return None
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    negative = match["sign"] == b"-"
    if match["inf"]:
        return -math.inf if negative else math.inf
    if match["di"] is None:  # hexadecimal
        whole, fraction = match["hi"], match["hf"] or b""
        if not whole and not fraction:
            return None
        significand = int(whole + fraction, 16)
        power = _exponent(match["hexp"]) - 4 * len(fraction)
        if not significand:
            return Fraction(0)
        size = significand.bit_length()
        if power + size - 1 >= _MAX_EXP or power + size < _MIN_EXP - 1:
            return None
        exact = _dyadic(significand, power)
    else:
        whole, fraction = match["di"], match["df"] or b""
        digits = (whole + fraction).lstrip(b"0")
        if not whole and not fraction:
            return None
        if not digits:
            return Fraction(0)
        power = _exponent(match["dexp"]) - len(fraction)
        if power + len(digits) - 1 >= _DEC_MAX or power + len(digits) <= _DEC_MIN:
            return None
        significand = _decimal_int(digits)
        exact = (
            Fraction(significand * 10**power) if power >= 0 else Fraction(significand, 10**-power)
        )
    value = _round(exact)
    if not value:  # overflow, or a non-zero number too small for the format
        return None
    return -value if negative else value


def add(value: LongDouble, increment: LongDouble) -> Fraction | None:
    """The long double sum, or None where it is infinite or NaN."""
    if value.__class__ is float or increment.__class__ is float:
        return None  # an infinity plus anything is infinite or NaN
    return _round(value + increment)


def format_human(value: Fraction) -> bytes:
    """Redis's ``ld2string`` in human mode: ``%.17Lf``, trailing zeros and a bare point
    dropped, and ``-0`` written as ``0``."""
    num, den = abs(value.numerator), value.denominator
    scaled, rest = divmod(num * 10**17, den)
    if 2 * rest > den or (2 * rest == den and scaled & 1):
        scaled += 1
    if not scaled:
        return b"0"
    whole, fraction = divmod(scaled, 10**17)
    text = _decimal_text(whole)
    decimals = (b"%017d" % fraction).rstrip(b"0")
    if decimals:
        text += b"." + decimals
    return b"-" + text if value < 0 else text
