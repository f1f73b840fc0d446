"""The calculator's output: the readable text of a value (exact form and decimal) for the model, and
the same value as separate fields (a JSON number, the exact form) for programs."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import mpmath
import sympy
from sympy.core.evalf import PrecisionExhausted
from sympy.printing.str import StrPrinter

from tools.calculator_limits import _LOG10_2, DIGITS, MAX_EXACT_CHARS, MAX_RESULT_CHARS, MAX_WORKING_DIGITS
from tools.calculator_numbers import Num, _approx, _float_dps, _mpf, _working_digits
from tools.registry import ToolError

# --- output -------------------------------------------------------------------------------------

def _digit_count(n: int) -> int:
    n = abs(n)
    if n < 10**15:
        return len(str(n))
    d = int((n.bit_length() - 1) * _LOG10_2)
    while 10**d <= n:
        d += 1
    return d


def _int_to_str(n: int) -> str:
    """str() for ints of any size (CPython refuses more than 4300 digits by default)."""
    if n < 0:
        return "-" + _int_to_str(-n)
    if n.bit_length() <= 14_000:
        return str(n)
    half = _digit_count(n) // 2
    high, low = divmod(n, 10**half)
    return _int_to_str(high) + _int_to_str(low).zfill(half)


class _Printer(StrPrinter):
    """sympy's str form, valid as calculator input again: i for the imaginary unit, e for E."""

    def _print_ImaginaryUnit(self, expr: sympy.Expr) -> str:
        return "i"

    def _print_Exp1(self, expr: sympy.Expr) -> str:
        return "e"


def _decimal(value: Num, dps: int = DIGITS) -> str:
    if isinstance(value, Fraction):
        return mpmath.nstr(_mpf(value), dps)
    work = _working_digits(value, dps)
    try:
        v = value.evalf(work, strict=True, maxn=MAX_WORKING_DIGITS + work)
    except PrecisionExhausted:
        v = value.evalf(work, chop=True)  # numerically zero but not provably so
    re_part, im_part = v.as_real_imag() if not v.is_Float else (v, sympy.Integer(0))

    def fmt(x: sympy.Expr) -> str:
        return mpmath.nstr(mpmath.mpf(sympy.Float(x)._mpf_), dps)

    if im_part.is_zero:
        return fmt(re_part)
    imag = f"{fmt(abs(im_part))}*i"
    if re_part.is_zero:
        return imag if im_part > 0 else f"-{imag}"
    return f"{fmt(re_part)} {'+' if im_part > 0 else '-'} {imag}"


def _decimal_is_exact(r: Fraction) -> bool:
    return Fraction(_decimal(r)) == r


def _format(value: Num) -> str:
    if isinstance(value, Fraction):
        digits = _digit_count(value.numerator) + (0 if value.denominator == 1 else _digit_count(value.denominator))
        if digits > MAX_RESULT_CHARS:
            raise ToolError(f"result too large to show ({digits:,} digits); it is about {_decimal(value)}")
        if value.denominator == 1:
            return _int_to_str(value.numerator)
        exact = f"{_int_to_str(value.numerator)}/{_int_to_str(value.denominator)}"
        return f"{exact} {'=' if _decimal_is_exact(value) else '≈'} {_decimal(value)}"
    if value.has(sympy.Float):
        return _decimal(value, _float_dps(value))
    dec = _decimal(value)
    parts = value.as_coefficients_dict()
    gaussian = set(parts) <= {sympy.Integer(1), sympy.I} and all(c.is_Rational for c in parts.values())
    if gaussian and all(c.is_Integer for c in parts.values()):
        return _Printer().doprint(value)
    exact = _Printer().doprint(value)
    if len(exact) > MAX_EXACT_CHARS:
        return f"≈ {dec}"
    is_exact = gaussian and all(_decimal_is_exact(Fraction(int(c.p), int(c.q))) for c in parts.values())
    return f"{exact} {'=' if is_exact else '≈'} {dec}"


#: Integers up to this size are exact as a JSON number in every parser (JavaScript's doubles too).
_SAFE_INTEGER = 2**53


def _fields(value: Num) -> dict[str, Any]:
    """The result for programs: `value`, a JSON number (an integer when the result is a whole
    number below 2**53, else the nearest double; None when the result is not real or a double
    cannot hold it), and `exact`, the exact form as calculator input ("3/2", "2*sqrt(2)"; None
    when only a decimal is known: decimal input, or an exact form too long to show).
    Called after `_format`, which has refused results too large to show."""
    return {"value": _json_number(value), "exact": _exact_form(value)}


def _json_number(value: Num) -> int | float | None:
    if isinstance(value, Fraction):
        if value.denominator == 1 and abs(value.numerator) < _SAFE_INTEGER:
            return value.numerator
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if number or not value else None  # underflow to 0.0 would misstate it
    z = _approx(value)
    if z.imag:
        return None
    # A decimal result is only known to the digits shown ("0.1*3" is 0.3, not 0.30000000000000004).
    number = float(_decimal(value, _float_dps(value))) if value.has(sympy.Float) else float(z.real)
    if not math.isfinite(number) or (not number and z.real):
        return None
    return number


def _exact_form(value: Num) -> str | None:
    if isinstance(value, Fraction):
        numerator = _int_to_str(value.numerator)
        return numerator if value.denominator == 1 else f"{numerator}/{_int_to_str(value.denominator)}"
    if value.has(sympy.Float):
        return None
    exact = _Printer().doprint(value)
    return exact if len(exact) <= MAX_EXACT_CHARS else None
