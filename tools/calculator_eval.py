"""The calculator's evaluator: walks the checked tree node by node, bounding each value as soon as
it appears and the whole calculation by a wall-clock budget."""

from __future__ import annotations

import ast
import math
import re
import time
from fractions import Fraction

import mpmath
import sympy
from sympy.core.evalf import PrecisionExhausted

from tools.calculator_functions import _CONSTANTS, _FUNCTIONS
from tools.calculator_limits import (
    _LOG10_2,
    DIGITS,
    MAX_BITS,
    MAX_MAGNITUDE_BITS,
    MAX_ROOT_INDEX,
    MAX_SECONDS,
    MAX_WORKING_DIGITS,
    RADICAL_BITS,
    SYMBOLIC_BITS,
)
from tools.calculator_numbers import (
    Num,
    _approx,
    _bits,
    _float_dps,
    _floor_int,
    _fraction_power,
    _from_mpc,
    _is_real,
    _is_simple,
    _is_zero,
    _log2_abs,
    _mag,
    _mpf,
    _numeric,
    _radical_bits,
    _rational_atom_bits,
    _sym,
    _to_decimal,
)
from tools.calculator_parse import _segment
from tools.registry import ToolError

# --- evaluation ---------------------------------------------------------------------------------

class _Evaluator:
    def __init__(self, source: str) -> None:
        self.source = source
        self.deadline = time.monotonic() + MAX_SECONDS

    def where(self, node: ast.AST) -> str:
        return _segment(self.source, node)

    def visit(self, node: ast.AST) -> Num:
        if time.monotonic() > self.deadline:
            raise ToolError(f"calculation took too long (over {MAX_SECONDS:g} s); simplify the expression")
        if isinstance(node, ast.BinOp):
            # Walk a left-leaning chain (1+2+3+...) in a loop, not by recursion.
            chain = []
            while isinstance(node, ast.BinOp):
                chain.append(node)
                node = node.left
            value = self.visit(node)
            for op_node in reversed(chain):
                value = self.check(self.binop(op_node, value, self.visit(op_node.right)), op_node)
            return value
        if isinstance(node, ast.Constant):
            return self.check(self.constant(node), node)
        if isinstance(node, ast.Name):
            return _CONSTANTS[node.id.lower()]
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            args = [self.visit(a) for a in node.args]
            return self.check(_FUNCTIONS[node.func.id.lower()][2](self, node, args), node)
        raise ToolError(f"{type(node).__name__} is not allowed")  # _check_tree already refused it

    def constant(self, node: ast.Constant) -> Num:
        if isinstance(node.value, int):
            return Fraction(node.value)
        # Read floats from the source text: 1e400 is inf as a Python float but fine here.
        text = (ast.get_source_segment(self.source, node) or repr(node.value)).replace("_", "")
        if isinstance(node.value, complex):
            digits = text.rstrip("jJ")
            if not re.search(r"[.eE]", digits):
                return sympy.Integer(int(digits)) * sympy.I
            return sympy.Float(digits, DIGITS) * sympy.I
        return sympy.Float(text, DIGITS)

    def check(self, value: Num, node: ast.AST) -> Num:
        """Refuse undefined, oversized or out-of-range values as soon as they appear."""
        if not isinstance(value, Fraction):
            if value.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
                raise ToolError(f"{self.where(node)} is undefined (division by zero or an infinite result)")
            if value.is_Rational:
                value = Fraction(int(value.p), int(value.q))
        if isinstance(value, Fraction):
            if max(value.numerator.bit_length(), value.denominator.bit_length()) > MAX_BITS:
                raise ToolError(f"{self.where(node)} is too large for exact arithmetic (limit about "
                                f"{int(MAX_BITS * _LOG10_2):,} digits)")
            return value
        if value.has(sympy.Float) and not value.is_Float:
            value = value.evalf(_float_dps(value))  # 1.5*pi is a float, not an exact form
        elif any(_bits(r) > SYMBOLIC_BITS for r in value.atoms(sympy.Rational)) or not _is_simple(value):
            value = _to_decimal(value)
            if value.is_Rational:
                return Fraction(int(value.p), int(value.q))
        mag = _mag(_approx(value))
        if mag is not None and abs(mag) > MAX_MAGNITUDE_BITS:
            raise self.out_of_range(node, mag * _LOG10_2)
        return value

    def out_of_range(self, node: ast.AST, log10: float | mpmath.mpf) -> ToolError:
        power = f"{int(log10)}" if abs(log10) < 10**15 else f"({mpmath.nstr(log10, 3)})"
        return ToolError(f"{self.where(node)} is out of range (about 10^{power}); results that are not exact "
                         "integers or fractions must lie between 10^-1000 and 10^1000")

    # -- operators --

    def binop(self, node: ast.BinOp, a: Num, b: Num) -> Num:
        op = type(node.op)
        if op is ast.Pow:
            return self.power(node, a, b)
        if op in (ast.Div, ast.FloorDiv, ast.Mod):
            self.require_nonzero(b, node)
        if isinstance(a, Fraction) and isinstance(b, Fraction):
            if op is ast.Add:
                return a + b
            if op is ast.Sub:
                return a - b
            if op is ast.Mult:
                return a * b
            if op is ast.Div:
                return a / b
            return Fraction(a // b) if op is ast.FloorDiv else a % b
        x, y = _sym(a), _sym(b)
        if op is ast.Add:
            return x + y
        if op is ast.Sub:
            return x - y
        if _radical_bits(x) + _radical_bits(y) > RADICAL_BITS:
            # sympy would merge sqrt(a)*sqrt(b) into sqrt(a*b) and factor a*b: use floats instead.
            x, y = _numeric(x), _numeric(y)
        if op is ast.Mult:
            return x * y
        if op is ast.Div:
            return x / y
        if op is ast.FloorDiv:
            return Fraction(_floor_int(self.real(x / y, node), self.where(node)))
        return self.modulo(node, x, y)

    def require_nonzero(self, b: Num, node: ast.AST) -> None:
        if _is_zero(b):
            raise ToolError(f"division by zero in {self.where(node)}")
        if isinstance(b, Fraction) or b.is_Number:
            return
        # Numerically, not with b.is_zero: sympy's assumptions can take seconds on big numbers.
        try:
            b.evalf(DIGITS, strict=True, maxn=MAX_WORKING_DIGITS)
        except PrecisionExhausted:
            raise ToolError(f"division by zero in {self.where(node)} (the divisor is zero or too close to zero "
                            "to tell)") from None

    def modulo(self, node: ast.AST, a: Num, b: Num) -> Num:
        if isinstance(a, Fraction) and isinstance(b, Fraction):
            return a % b
        x, y = self.real(_sym(a), node), self.real(_sym(b), node)
        quotient = _floor_int(x / y, self.where(node))
        remainder = x - y * quotient
        mag = _mag(_approx(x))
        if mag is not None and mag > 100:
            # Huge operands: the exact form cancels over many digits, so keep the decimal only.
            return sympy.Float(remainder.evalf(int(mag * _LOG10_2) + 40), DIGITS)
        return remainder

    def real(self, x: Num, node: ast.AST) -> Num:
        if not _is_real(x):
            raise ToolError(f"{self.where(node)} needs real numbers")
        return x

    def power(self, node: ast.AST, base: Num, exp: Num) -> Num:
        where = self.where(node)
        if isinstance(base, Fraction) and isinstance(exp, Fraction):
            if base == 0:
                if exp < 0:
                    raise ToolError(f"division by zero in {where} (0 to a negative power)")
                return Fraction(int(exp == 0))
            if abs(base) == 1 and exp.denominator == 1:
                return base if exp.numerator % 2 else Fraction(1)
            # Estimate the size before computing: 9**9**9**9 fails here at the second level.
            if exp.numerator.bit_length() > 64:
                raise ToolError(f"{where} is too large (the exponent is far too big)")
            est_bits = abs(float(exp)) * _log2_abs(base)
            if est_bits > MAX_BITS:
                raise ToolError(f"{where} is too large: about {est_bits * _LOG10_2:,.0f} digits (limit about "
                                f"{int(MAX_BITS * _LOG10_2):,} digits)")
            if exp.denominator == 1:
                return base**exp.numerator
            if exp.denominator > MAX_ROOT_INDEX:
                return _from_mpc(mpmath.power(_mpf(base), _mpf(exp)))
            return _fraction_power(base, exp.numerator, exp.denominator, real=False)
        # A float, radical or complex on either side: bound |base**exp| = |exp(exp*log(base))| first.
        z_base, z_exp = _approx(base), _approx(exp)
        if not z_base:
            if not z_exp:
                return Fraction(1)
            if z_exp.real <= 0:
                raise ToolError(f"{where} is undefined (0 to a power whose real part is not positive)")
            return Fraction(0)
        w = z_exp * mpmath.log(z_base)
        if abs(w.real) > MAX_MAGNITUDE_BITS * math.log(2):
            raise self.out_of_range(node, w.real / math.log(10))
        if (_mag(w) or 0) > MAX_MAGNITUDE_BITS:
            raise ToolError(f"{where} is out of range (the exponent is too large)")
        x, y = _sym(base), _sym(exp)
        growth = _rational_atom_bits(x) * (abs(exp) if isinstance(exp, Fraction) else 1)
        if growth > SYMBOLIC_BITS or (not y.is_Integer and _rational_atom_bits(x) > RADICAL_BITS):
            x, y = _numeric(x), _numeric(y)
        return x**y

    def bounded(self, x: Num, node: ast.Call, *, re_limit: float | None = None,
                im_limit: float | None = None) -> sympy.Expr:
        """The sympy form of a transcendental function's argument, small enough to evaluate quickly."""
        name = node.func.id.lower()
        z = _approx(x)
        mag = _mag(z)
        if mag is not None and mag > MAX_MAGNITUDE_BITS:
            raise ToolError(f"the argument of {name}() is too large ({self.where(node)}); the limit is 10^1000")
        if re_limit is not None and abs(z.real) > re_limit or im_limit is not None and abs(z.imag) > im_limit:
            raise ToolError(f"{self.where(node)} is out of range (the result would exceed 10^1000)")
        return _sym(x)

    def whole(self, x: Num, node: ast.Call) -> int:
        if isinstance(x, Fraction) and x.denominator == 1:
            return x.numerator
        if isinstance(x, sympy.Float) and mpmath.isint(mpmath.mpf(x._mpf_)) and abs(x) < 2**53:
            return int(x)
        raise ToolError(f"{node.func.id.lower()}() needs whole numbers ({self.where(node)})")
