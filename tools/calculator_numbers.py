"""The calculator's numbers: exact Fractions and bounded sympy values, and the helpers that keep
every step on them cheap (see the note below)."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import mpmath
import sympy
from mpmath import libmp
from sympy.core.evalf import PrecisionExhausted

from tools.calculator_limits import (
    _LOG10_2,
    DIGITS,
    MAX_EXACT_NODES,
    MAX_MAGNITUDE_BITS,
    MAX_WORKING_DIGITS,
    RADICAL_BITS,
    SMALL_BITS,
    SYMBOLIC_BITS,
)
from tools.calculator_parse import _shorten
from tools.registry import ToolError

# --- numbers ------------------------------------------------------------------------------------
# A value is a Fraction (exact integer or fraction) or a sympy expression (irrational, complex or
# float). Rationals stay out of sympy because its assumption system can run a primality test on
# a big Integer (asking `is_negative` may do), which takes minutes at 100,000 bits, and it factors
# integers under radicals. So sympy only sees rationals up to SYMBOLIC_BITS (a test costs under
# 0.1 s there), radicals of integers up to RADICAL_BITS, function calls on modest arguments
# (SMALL_BITS, see _apply), and small exact forms (_is_simple); anything beyond that is turned
# into an accurate 15-digit decimal at once instead of being carried along symbolically.

Num = Fraction | sympy.Expr


def _fbits(x: Fraction) -> int:
    return max(x.numerator.bit_length(), x.denominator.bit_length())


def _bits(r: sympy.Rational) -> int:
    return max(int(r.p).bit_length(), int(r.q).bit_length())


def _log2_abs(x: Fraction) -> float:
    """log2 of the larger of |numerator| and denominator: how big powers of x get."""
    return max(math.log2(abs(x.numerator)) if x.numerator else 0.0, math.log2(x.denominator))


def _int_mpf(n: int) -> mpmath.mpf:
    # mpmath normalises big ints bit by bit (0.1 s at 262,000 bits); 128 leading bits are plenty.
    shift = max(abs(n).bit_length() - 128, 0)
    return mpmath.mpf((n >> shift, shift)) if shift else mpmath.mpf(n)


def _mpf(x: Fraction) -> mpmath.mpf:
    return _int_mpf(x.numerator) / _int_mpf(x.denominator)


def _from_mpc(z: mpmath.mpc | mpmath.mpf) -> sympy.Expr:
    if isinstance(z, mpmath.mpf) or not z.imag:
        return sympy.Float(mpmath.mpf(z.real), DIGITS)
    return sympy.Float(z.real, DIGITS) + sympy.Float(z.imag, DIGITS) * sympy.I


def _sym(x: Num) -> sympy.Expr:
    """The sympy form of a value; a rational too big for sympy becomes a 15-digit float."""
    if not isinstance(x, Fraction):
        return x
    if _fbits(x) <= SYMBOLIC_BITS:
        return sympy.Rational(x.numerator, x.denominator)
    return sympy.Float(_mpf(x), DIGITS)


def _approx(value: Num) -> mpmath.mpc:
    """A 15-digit value for bounds checks; callers keep `value` bounded so this stays cheap."""
    if isinstance(value, Fraction):
        return mpmath.mpc(_mpf(value))
    v = value.evalf(_working_digits(value))
    re_part, im_part = v.as_real_imag() if not v.is_Float else (v, sympy.Integer(0))
    if not all(isinstance(part, (sympy.Float, sympy.Rational)) for part in (re_part, im_part)):
        raise ToolError(f"could not evaluate {_shorten(str(value))} numerically (undefined or infinite?)")
    return mpmath.mpc(sympy.Float(re_part)._mpf_, sympy.Float(im_part)._mpf_)


def _mag(z: mpmath.mpc) -> int | None:
    """Approximate log2 |z|, None for zero."""
    if not z:
        return None
    return max(mpmath.mag(part) for part in (z.real, z.imag) if part)


def _is_zero(x: Num) -> bool:
    # Not `x == 0`: in sympy, Float(0.0) == 0 is False.
    if isinstance(x, Fraction):
        return x == 0
    return bool(x.is_zero) if x.is_Number else not _approx(x)


def _is_negative_real(x: Num) -> bool:
    if isinstance(x, Fraction):
        return x < 0
    z = _approx(x)
    return not z.imag and z.real < 0


def _is_real(x: Num) -> bool:
    return isinstance(x, Fraction) or not _approx(x).imag


def _radical_bits(value: Num) -> int:
    if isinstance(value, Fraction) or value.is_Number:
        return 0
    return sum(_bits(p.base) for p in value.atoms(sympy.Pow)
               if p.base.is_Rational and p.exp.is_Rational and not p.exp.is_Integer)


def _rational_atom_bits(value: sympy.Expr) -> int:
    return sum(_bits(r) for r in value.atoms(sympy.Rational))


def _atom_digits(value: sympy.Expr) -> int:
    """Digits of the largest rational inside `value`: the most that cancellation can eat."""
    return int(max((_bits(r) for r in value.atoms(sympy.Rational)), default=0) * _LOG10_2)


def _working_digits(value: sympy.Expr, dps: int = DIGITS) -> int:
    # sympy's evalf evaluates arguments at the target precision only, so log(1 + 10**-999) would
    # come out as 0 at 15 digits; extra digits cover whatever the exact numbers inside can cancel.
    return dps + min(_atom_digits(value), MAX_WORKING_DIGITS) + 10


def _numeric(value: Num) -> sympy.Expr:
    return _sym(value).evalf(DIGITS)


def _float_dps(value: sympy.Expr) -> int:
    return max([DIGITS, *(mpmath.libmp.prec_to_dps(f._prec) for f in value.atoms(sympy.Float))])


def _iroot(n: int, k: int) -> tuple[int, bool]:
    """floor(n ** (1/k)) for n >= 0 and whether it is exact (sympy's version is slow on big n)."""
    if n < 2 or k == 1:
        return n, True
    if k == 2:
        r = math.isqrt(n)
        return r, r * r == n
    if n.bit_length() <= k:
        return 1, n == 1
    # mpmath's root at full precision is off by at most one or two units; fix those up exactly.
    prec = n.bit_length() // k + 64
    zeros = (n & -n).bit_length() - 1  # strip them first: mpmath would, slowly
    x = libmp.to_int(libmp.mpf_nthroot(libmp.from_man_exp(n >> zeros, zeros), k, prec, "f"), "f")
    while (x + 1) ** k <= n:
        x += 1
    while x**k > n:
        x -= 1
    return x, x**k == n


def _floor_int(x: sympy.Expr, where: str) -> int:
    """floor of a real value, evaluated with enough digits for its size.

    sympy.floor gives up (returns floor(...) unevaluated) beyond about 30 digits.
    """
    mag = _mag(_approx(x)) or 0
    if mag > 2 * MAX_MAGNITUDE_BITS:  # round(x, 1000) scales x by 10^1000
        raise ToolError(f"{where} is out of range: rounding to a whole number is supported for values up to "
                        "10^1000 unless they are exact integers or fractions")
    if mag > 50 and x.has(sympy.Float):
        raise ToolError(f"{where}: a decimal this large is only known to {DIGITS} significant digits, so its "
                        "whole-number part is not exact; use exact numbers (10**20, not 1e20)")
    dps = int(max(mag, 0) * _LOG10_2) + _atom_digits(x) + 40
    v = x.evalf(dps)
    if not v.is_Float:
        v = sympy.Float(v, dps) if v.is_Number else None
    if v is None:
        raise ToolError(f"could not evaluate {_shorten(str(x))} numerically")
    nearest = libmp.to_int(v._mpf_, "n")
    # Within 10^-30 of an integer: treat it as that integer (e.g. sin(x)**2 + cos(x)**2).
    if abs(v - nearest) < sympy.Float("1e-30", dps):
        return nearest
    return libmp.to_int(v._mpf_, "f")


def _fraction_power(base: Fraction, p: int, q: int, *, real: bool) -> Num:
    """base**(p/q) for q > 1: exact when the root is perfect or sympy can simplify it cheaply.

    real=True takes the real root of a negative base for odd q (cbrt(-8) = -2); otherwise the
    principal (complex) root, as sympy and Python do.
    """
    if base == 0:
        return Fraction(0)
    size = abs(base)
    root_num, exact_num = _iroot(size.numerator, q)
    root_den, exact_den = _iroot(size.denominator, q)
    magnitude: Num
    if exact_num and exact_den:
        magnitude = Fraction(root_num, root_den) ** p
    elif _fbits(size) <= RADICAL_BITS:
        magnitude = sympy.Rational(size.numerator, size.denominator) ** sympy.Rational(p, q)
    else:
        magnitude = sympy.Float(mpmath.root(_mpf(size), q) ** p, DIGITS)
    if base > 0:
        return magnitude
    if real and q % 2:
        return -magnitude if p % 2 else magnitude
    return _sym(magnitude) * sympy.Integer(-1) ** sympy.Rational(p, q)


def _apply(func: Callable[..., sympy.Expr], x: sympy.Expr) -> sympy.Expr:
    """func(x), exact (sin(pi/6) -> 1/2) for modest arguments, else a 15-digit decimal.

    sympy re-simplifies function calls whenever they take part in later arithmetic, and on huge
    or very precise arguments that can take seconds (sin(acos(x)) becomes sqrt(1 - x**2) and
    factors x**2) or fail (acos(cos(exp(1000)))). Such calls are evaluated numerically at once;
    the unevaluated form still evaluates accurately.
    """
    mag = _mag(_approx(x))
    atoms_small = max((_bits(r) for r in x.atoms(sympy.Rational)), default=0) <= SMALL_BITS
    if (mag is None or abs(mag) <= 64) and atoms_small and _is_simple(x, max_calls=1):
        try:
            return func(x)
        except Exception:  # e.g. sympy cannot decide a comparison while simplifying
            pass
    return _to_decimal(func(x, evaluate=False))


def _is_simple(value: sympy.Expr, max_calls: int = 2) -> bool:
    """Small enough, and with function calls nested at most max_calls deep, to keep exact.

    sympy re-simplifies exact forms in every later operation; on big or deeply nested ones
    (asin(cosh(sqrt(acos(pi))))) that takes seconds, and such forms help no reader anyway.
    """
    stack = [(value, 0)]
    nodes = 0
    while stack:
        expr, depth = stack.pop()
        nodes += 1
        if isinstance(expr, sympy.Function):
            depth += 1
        if nodes > MAX_EXACT_NODES or depth > max_calls:
            return False
        stack.extend((arg, depth) for arg in expr.args)
    return True


def _to_decimal(value: sympy.Expr) -> sympy.Expr:
    """value as an accurate 15-digit float (complex when needed)."""
    work = _working_digits(value)
    try:
        result = value.evalf(work, strict=True, maxn=MAX_WORKING_DIGITS + work).evalf(DIGITS)
    except PrecisionExhausted:
        return sympy.Integer(0)  # zero to 1300 digits, e.g. sin(pi*10**999): take it as exactly 0
    if result.atoms(sympy.Function) or result.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise ToolError(f"could not evaluate {_shorten(str(value))} numerically")
    return result
