"""The calculator's functions (sqrt, log, sin, factorial, round, ...) and constants, each bounded
before it computes; `_FUNCTIONS` is the whitelist the parser checks calls against."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING

import mpmath
import sympy
from sympy.core.evalf import PrecisionExhausted

from tools.calculator_limits import (
    _LOG10_2,
    DIGITS,
    MAX_BITS,
    MAX_EXP_ARG,
    MAX_FACTORIAL,
    MAX_ROOT_INDEX,
    MAX_ROUND_DIGITS,
    MAX_WORKING_DIGITS,
    RADICAL_BITS,
    SYMBOLIC_BITS,
)
from tools.calculator_numbers import (
    Num,
    _apply,
    _approx,
    _fbits,
    _floor_int,
    _fraction_power,
    _from_mpc,
    _is_negative_real,
    _is_real,
    _is_zero,
    _mpf,
    _numeric,
    _rational_atom_bits,
    _sym,
)
from tools.registry import ToolError

if TYPE_CHECKING:
    from tools.calculator_eval import _Evaluator

# --- functions ----------------------------------------------------------------------------------

Impl = Callable[["_Evaluator", ast.Call, list[Num]], Num]


def _root_impl(n_fixed: int | None, real: bool) -> Impl:
    def impl(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
        x = args[0]
        n = n_fixed if n_fixed is not None else ev.whole(args[1], node)
        if not 1 <= n <= MAX_ROOT_INDEX:
            raise ToolError(f"root index must be a whole number from 1 to {MAX_ROOT_INDEX:,} ({ev.where(node)})")
        if isinstance(x, Fraction):
            return x if n == 1 else _fraction_power(x, 1, n, real=real)
        if _rational_atom_bits(x) > RADICAL_BITS:
            x = _numeric(x)
        if real and n % 2 and _is_negative_real(x):
            return -((-x) ** sympy.Rational(1, n))
        return x ** sympy.Rational(1, n)

    return impl


def _exact_log(x: Fraction, base: int) -> Fraction | None:
    """log(x, base) when x is a whole power of base (or its reciprocal), else None."""
    if x <= 0 or base < 2:
        return None
    sign, n = (1, x.numerator) if x.denominator == 1 else (-1, x.denominator) if x.numerator == 1 else (0, 0)
    if not sign:
        return None
    k = round(math.log(n) / math.log(base))
    return Fraction(sign * k) if base**k == n else None


def _log_impl(fixed_base: int | None) -> Impl:
    def impl(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
        x = args[0]
        base = Fraction(fixed_base) if fixed_base else (args[1] if len(args) > 1 else None)
        if _is_zero(x):
            raise ToolError(f"{ev.where(node)} is undefined: the logarithm of 0 is minus infinity")
        if base is not None and (_is_zero(base) or _is_zero(base - 1)):
            raise ToolError(f"{ev.where(node)} is undefined: a logarithm base cannot be 0 or 1")
        if isinstance(x, Fraction) and isinstance(base, Fraction) and base.denominator == 1:
            exact = _exact_log(x, base.numerator)
            if exact is not None:
                return exact
        if isinstance(x, Fraction) and _fbits(x) > SYMBOLIC_BITS:
            log_x = _from_mpc(mpmath.log(_mpf(x)))  # of a huge exact number: only the decimal is useful
        else:
            log_x = _apply(sympy.log, ev.bounded(x, node))
        return log_x if base is None else log_x / _apply(sympy.log, ev.bounded(base, node))

    return impl


def _transcendental(func: Callable[..., sympy.Expr], *, re_limit: float | None = None,
                    im_limit: float | None = None) -> Impl:
    def impl(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
        return _apply(func, ev.bounded(args[0], node, re_limit=re_limit, im_limit=im_limit))

    return impl


def _abs(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
    return abs(args[0]) if isinstance(args[0], Fraction) else _apply(sympy.Abs, args[0])


def _floor_ceil(kind: str) -> Impl:
    def impl(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
        x = ev.real(args[0], node)
        if isinstance(x, Fraction):
            return Fraction(math.floor(x) if kind == "floor" else math.ceil(x))
        return Fraction(_floor_int(x, ev.where(node)) if kind == "floor" else -_floor_int(-x, ev.where(node)))

    return impl


def _factorial(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
    n = ev.whole(args[0], node)
    if n < 0:
        raise ToolError(f"factorial needs a whole number from 0 to {MAX_FACTORIAL:,} ({ev.where(node)})")
    if n > MAX_FACTORIAL:
        digits = f"about {math.lgamma(n + 1) / math.log(10):.3g}" if n < 10**300 else "far too many"
        raise ToolError(f"{ev.where(node)} is too large: {digits} digits; factorial is limited to "
                        f"n <= {MAX_FACTORIAL:,}")
    return Fraction(math.factorial(n))


def _binomial(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
    n, k = ev.whole(args[0], node), ev.whole(args[1], node)
    if n < 0 or k < 0:
        raise ToolError(f"binomial needs whole numbers n >= 0 and k >= 0 ({ev.where(node)})")
    small = min(k, n - k)
    # log2 C(n, k) <= k * (log2(n/k) + log2(e)), checked before computing.
    if small > 0 and (small > MAX_BITS or small * (math.log2(n) - math.log2(small) + 1.45) > MAX_BITS):
        raise ToolError(f"{ev.where(node)} is too large (limit about {int(MAX_BITS * _LOG10_2):,} digits)")
    return Fraction(math.comb(n, k))


def _gcd_lcm(kind: str) -> Impl:
    def impl(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
        acc = ev.whole(args[0], node)
        for arg in args[1:]:
            acc = math.gcd(acc, ev.whole(arg, node)) if kind == "gcd" else math.lcm(acc, ev.whole(arg, node))
            if acc.bit_length() > MAX_BITS:
                raise ToolError(f"{ev.where(node)} is too large (limit about {int(MAX_BITS * _LOG10_2):,} digits)")
        return Fraction(abs(acc))

    return impl


def _round(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
    """Round half away from zero (school rounding: round(2.5) = 3), unlike Python's round."""
    x = args[0]
    ndigits = ev.whole(args[1], node) if len(args) > 1 else 0
    if abs(ndigits) > MAX_ROUND_DIGITS:
        raise ToolError(f"round() supports at most {MAX_ROUND_DIGITS} digits ({ev.where(node)})")
    x = ev.real(x, node)
    if isinstance(x, sympy.Float):
        x = Fraction(str(x))  # round the decimal the user sees: round(2.675, 2) = 2.68
    scale = Fraction(10) ** ndigits
    if isinstance(x, Fraction):
        rounded = Fraction(math.floor(abs(x) * scale + Fraction(1, 2)))
    else:
        size = -x if _is_negative_real(x) else x
        rounded = Fraction(_floor_int(size * _sym(scale) + sympy.Rational(1, 2), ev.where(node)))
    rounded /= scale
    return -rounded if _is_negative_real(x) else rounded


def _less(a: Num, b: Num) -> bool:
    """a < b for real values, exactly where the 15-digit values are too close to tell."""
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a < b
    za, zb = _approx(a).real, _approx(b).real
    if abs(za - zb) > abs(za + zb) * 1e-12:
        return za < zb
    # sympy.Min/Max would do this through its assumption system, which can take seconds here.
    try:
        diff = (_sym(a) - _sym(b)).evalf(DIGITS, strict=True, maxn=MAX_WORKING_DIGITS)
    except PrecisionExhausted:
        return False  # equal as far as can be told
    return bool(diff < 0)


def _min_max(kind: str) -> Impl:
    def impl(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
        if not all(_is_real(a) for a in args):
            raise ToolError(f"{kind}() needs real numbers ({ev.where(node)})")
        best = args[0]
        for arg in args[1:]:
            if _less(arg, best) if kind == "min" else _less(best, arg):
                best = arg
        return best

    return impl


def _mod(ev: _Evaluator, node: ast.Call, args: list[Num]) -> Num:
    ev.require_nonzero(args[1], node)
    return ev.modulo(node, args[0], args[1])


_EXP = dict(re_limit=MAX_EXP_ARG)
_TRIG = dict(im_limit=MAX_EXP_ARG)
# name -> (min args, max args or None, implementation)
_FUNCTIONS: dict[str, tuple[int, int | None, Impl]] = {
    "sqrt": (1, 1, _root_impl(2, real=False)),
    "cbrt": (1, 1, _root_impl(3, real=True)),
    "root": (2, 2, _root_impl(None, real=True)),
    "abs": (1, 1, _abs),
    "exp": (1, 1, _transcendental(sympy.exp, **_EXP)),
    "log": (1, 2, _log_impl(None)),
    "ln": (1, 1, _log_impl(None)),
    "log10": (1, 1, _log_impl(10)),
    "log2": (1, 1, _log_impl(2)),
    "sin": (1, 1, _transcendental(sympy.sin, **_TRIG)),
    "cos": (1, 1, _transcendental(sympy.cos, **_TRIG)),
    "tan": (1, 1, _transcendental(sympy.tan, **_TRIG)),
    "asin": (1, 1, _transcendental(sympy.asin)),
    "acos": (1, 1, _transcendental(sympy.acos)),
    "atan": (1, 1, _transcendental(sympy.atan)),
    "arcsin": (1, 1, _transcendental(sympy.asin)),
    "arccos": (1, 1, _transcendental(sympy.acos)),
    "arctan": (1, 1, _transcendental(sympy.atan)),
    "sinh": (1, 1, _transcendental(sympy.sinh, **_EXP)),
    "cosh": (1, 1, _transcendental(sympy.cosh, **_EXP)),
    "tanh": (1, 1, _transcendental(sympy.tanh, **_EXP)),
    "factorial": (1, 1, _factorial),
    "binomial": (2, 2, _binomial),
    "comb": (2, 2, _binomial),
    "gcd": (2, None, _gcd_lcm("gcd")),
    "lcm": (2, None, _gcd_lcm("lcm")),
    "floor": (1, 1, _floor_ceil("floor")),
    "ceil": (1, 1, _floor_ceil("ceil")),
    "ceiling": (1, 1, _floor_ceil("ceil")),
    "round": (1, 2, _round),
    "min": (1, None, _min_max("min")),
    "max": (1, None, _min_max("max")),
    "mod": (2, 2, _mod),
}
_CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "e": sympy.E, "tau": 2 * sympy.pi, "i": sympy.I}
