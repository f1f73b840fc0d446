"""The `calculator` tool: exact, safe evaluation of one arithmetic expression.

The expression is parsed with `ast` (never `eval`, `sympify` or `parse_expr`), checked against a
whitelist of nodes, operators, functions and constants, and evaluated node by node: whole numbers
and fractions as Python `Fraction`s, everything else (radicals, pi, logs, complex numbers) as
sympy objects, so results stay exact where they can. Every costly step is bounded *before* it
runs (input length, nesting, power/factorial/binomial sizes, magnitudes handed to sympy and to
transcendental functions), and a wall-clock budget is checked between steps as a last resort.

Input rules, applied before parsing:

* `^` is a power (`2^10` == `2**10`); `×` `·` `÷` `−`, full-width digits, brackets and operators
  (Chinese input), `π`, `√2` / `√(x)` and superscripts (`3²`) are understood; a trailing `=` or `?`
  is dropped; `3 x 4` (an x with spaces around it, between numbers) is multiplication.
* Percent: `N%` means N/100 when the `%` is followed by nothing, an operator (`+ - * /`), `)`, `,`
  or the word `of`, so `15% of 80`, `15% * 80`, `80 * 15%` and `200 + 10%` all read it as a
  percentage. When an operand follows (`10 % 3`, `10 % (2+1)`), `%` is the modulo operator. N is
  the number, name or bracketed group just before the `%`. `30°` means 30*pi/180.
* Thousands separators: `1,000,000` and `1,234.5` (groups of exactly three digits, no spaces)
  are single numbers everywhere except directly inside a function call's brackets, where commas
  separate arguments (`gcd(12,345)` is gcd(12, 345)). A number that would start with 0, such as
  the `000` in `max(1,000)`, is rejected with a hint instead of being misread.

Numbers: integer and fraction arithmetic is exact up to about 78,900 digits; a decimal literal
(`0.1`) is a 15-digit float and makes the result a float. Irrational values are kept exact while
they are small (see "numbers" below) and must lie within 10^-1000 .. 10^1000; beyond the sizes
sympy handles quickly they become accurate 15-digit decimals. Complex results are allowed and
use `i` (`sqrt(-4)` -> `2*i`); `i` is also accepted as input. Output format: see `DESCRIPTION`.
"""

from __future__ import annotations

import ast
import math
import re
import time
import unicodedata
from collections.abc import Callable
from fractions import Fraction

import mpmath
import sympy
from mpmath import libmp
from pydantic import Field
from sympy.core.evalf import PrecisionExhausted
from sympy.printing.str import StrPrinter

from tools.registry import Tool, ToolArgs, ToolError

MAX_INPUT_CHARS = 1000
MAX_NODES = 1000
#: Bracket/function/power nesting; a long flat sum such as 1+2+...+300 does not count as nesting.
MAX_NESTING = 60
#: Exact integers and fractions. gcd and division of 1e6-bit numbers take over a second in
#: CPython (no gmpy2), so the cap is 2**18 bits (about 78,900 digits) to keep each step fast.
MAX_BITS = 2**18
#: Rationals handed to sympy (inside radicals, pi, ...); see the note at "numbers" below.
SYMBOLIC_BITS = 3400
#: Non-rational values (radicals, pi, floats, complex) must lie within 10**-1000 .. 10**1000 so
#: that every numeric evaluation of them needs little precision.
MAX_MAGNITUDE_BITS = 3322
#: sympy factors integers when simplifying radicals (sqrt(8) -> 2*sqrt(2)); that costs 0.3 s at
#: 3300 bits and merges products (sqrt(a)*sqrt(b) -> sqrt(a*b)), so exact radicals are kept only
#: while the integers under them stay below this size. Bigger ones are evaluated as floats.
RADICAL_BITS = 1024
#: Arguments of functions (sin, log, ...) that sympy may simplify symbolically; see _apply.
SMALL_BITS = 512
#: exp/sinh/cosh arguments (and sin/cos/tan imaginary parts) beyond this overflow 10**1000 anyway.
MAX_EXP_ARG = 2400
MAX_FACTORIAL = 10_000
MAX_ROUND_DIGITS = 1000
MAX_ROOT_INDEX = 10**6
MAX_RESULT_CHARS = 20_000
#: Longer exact irrational forms are dropped in favour of the decimal alone.
MAX_EXACT_CHARS = 2000
MAX_SECONDS = 1.0
MAX_WORKING_DIGITS = 1300
#: Larger exact irrational forms (sympy tree nodes) are replaced by their 15-digit decimal.
MAX_EXACT_NODES = 100
DIGITS = 15

_LOG10_2 = math.log10(2)


# --- input normalisation ------------------------------------------------------------------------

_NUM = r"(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?"
_SUPERSCRIPT_RUN = re.compile(r"⁻?[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
_SUPERSCRIPT_DIGITS = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
_SYMBOLS = str.maketrans({"×": "*", "✕": "*", "∗": "*", "·": "*", "⋅": "*", "÷": "/", "∕": "/", "⁄": "/",
                          "−": "-", "–": "-"})
_TRAILING = re.compile(r"[\s=?]+$")
_TIMES_X = re.compile(r"(?<=[\d)])\s+[xX]\s+(?=[\d(.])")
_SQRT_ATOM = re.compile(rf"√\s*({_NUM}|[A-Za-z_]\w*)(?![\w(.])")
_THOUSANDS = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?!\d|,\d)")
_POSTFIX = re.compile(r"%\s*of\b|%(?=\s*(?:$|[-+*/),]))|°")
_OPERAND_BEFORE = re.compile(rf"(?:(?<![\w.]){_NUM}|[A-Za-z_]\w*)\s*$")
_LEADING_ZERO = re.compile(r"(?<![\w.])0\d[\d_]*")


def _normalise(text: str) -> str:
    # Superscripts first: NFKC would turn 3² into 32.
    text = _SUPERSCRIPT_RUN.sub(lambda m: "**" + m.group().translate(_SUPERSCRIPT_DIGITS), text)
    text = unicodedata.normalize("NFKC", text).translate(_SYMBOLS)
    text = _TRAILING.sub("", re.sub(r"\s+", " ", text).strip()).replace("^", "**")
    text = _TIMES_X.sub("*", text)
    text = re.sub(r"π", "pi", re.sub(r"(?<=[\d)])\s*π", "*pi", text))  # 2π is common enough to accept
    text = _SQRT_ATOM.sub(r"sqrt(\1)", text)
    text = re.sub(r"√(?=\s*\()", "sqrt", text)
    text = _THOUSANDS.sub(lambda m: m.group() if _inside_call(text, m.start()) else m.group().replace(",", ""), text)
    text = _rewrite_postfix(text)
    if m := _LEADING_ZERO.search(text):
        raise ToolError(
            f"a number cannot start with 0 ({m.group()!r}); if it is part of a number written with thousands "
            "separators inside a function call, write the number without commas (1000000)"
        )
    return text


def _inside_call(text: str, pos: int) -> bool:
    """Whether `pos` sits directly inside the brackets of a function call like max(...)."""
    stack: list[bool] = []
    for i, ch in enumerate(text[:pos]):
        if ch == "(":
            stack.append(bool(re.search(r"[A-Za-z_]\w*\s*$", text[:i])))
        elif ch == ")" and stack:
            stack.pop()
    return bool(stack and stack[-1])


def _rewrite_postfix(text: str) -> str:
    """`N%` -> `(N/100)` (and `of` -> `*`), `N°` -> `(N*pi/180)`; see the module docstring."""
    pos = 0
    while m := _POSTFIX.search(text, pos):
        start = _operand_start(text, m.start())
        if start is None:
            sign = "%" if m.group().startswith("%") else "°"
            raise ToolError(f"'{sign}' must follow a number or a bracketed expression, e.g. 15{sign} or (10+5){sign}")
        operand = text[start : m.start()].rstrip()
        if m.group() == "°":
            new = f"({operand}*pi/180)"
        else:
            new = f"({operand}/100)" + ("*" if m.group().endswith("of") else "")
        text = text[:start] + new + text[m.end() :]
        pos = start + len(new)
    return text


def _operand_start(text: str, end: int) -> int | None:
    j = len(text[:end].rstrip())
    if j and text[j - 1] == ")":
        depth = 0
        for i in range(j - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(text[i], 0)
            if depth == 0:
                # Include a function name: sqrt(2)% is (sqrt(2)/100).
                name = re.search(r"[A-Za-z_]\w*\s*$", text[:i])
                return name.start() if name else i
        return None
    m = _OPERAND_BEFORE.search(text[:j])
    return m.start() if m else None


# --- whitelist check ----------------------------------------------------------------------------

_BINOPS: dict[type, str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
                            ast.Mod: "%", ast.Pow: "**"}
_OTHER_BINOPS: dict[type, str] = {ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.LShift: "<<",
                                  ast.RShift: ">>", ast.MatMult: "@"}
_UNARY: dict[type, str] = {ast.UAdd: "+", ast.USub: "-"}
_FORBIDDEN: dict[type, str] = {
    ast.Attribute: "attribute access ('.name')",
    ast.Subscript: "indexing ('[...]')",
    ast.Lambda: "lambda functions",
    ast.ListComp: "comprehensions", ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Compare: "comparisons (<, >, ==)",
    ast.BoolOp: "'and'/'or'",
    ast.IfExp: "'if ... else'",
    ast.List: "lists", ast.Set: "sets", ast.Dict: "dicts",
    ast.Tuple: "a comma outside a function call (commas separate function arguments, or group thousands in "
               "threes like 1,000,000; use '.' for decimals)",
    ast.NamedExpr: "assignment (':=')",
    ast.JoinedStr: "strings", ast.FormattedValue: "strings",
    ast.Starred: "'*' unpacking",
    ast.Await: "'await'", ast.Yield: "'yield'", ast.YieldFrom: "'yield'",
}


def _check_tree(tree: ast.Expression, source: str) -> None:
    """Reject anything outside the whitelist before a single value is computed."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    nodes = 0
    while stack:
        node, level = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ToolError(f"expression too long (more than {MAX_NODES} parts)")
        if level > MAX_NESTING:
            raise ToolError(f"expression nested too deeply (more than {MAX_NESTING} levels)")
        where = _segment(source, node)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float, complex)):
                kind = "strings" if isinstance(node.value, (str, bytes)) else f"the value {node.value!r}"
                raise ToolError(f"not allowed: {kind} in {where}; only numbers, operators and the listed functions")
        elif isinstance(node, ast.Name):
            key = node.id.lower()
            if key in _FUNCTIONS:
                raise ToolError(f"'{node.id}' is a function: call it with brackets, e.g. {key}(2)")
            if key not in _CONSTANTS:
                raise ToolError(f"unknown name '{node.id}'; {_AVAILABLE}")
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                if type(node.func) in _FORBIDDEN:
                    stack.append((node.func, level + 1))
                    continue
                raise ToolError(f"only the listed functions can be called ({where}); "
                                "write multiplication with *, e.g. 2*(3+4)")
            name = node.func.id.lower()
            if name not in _FUNCTIONS:
                raise ToolError(f"unknown function '{node.func.id}'; {_AVAILABLE}")
            if node.keywords:
                raise ToolError(f"keyword arguments are not supported ({where}); "
                                "pass arguments by position, e.g. round(x, 2)")
            lo, hi, _ = _FUNCTIONS[name]
            if not lo <= len(node.args) <= (hi if hi is not None else len(node.args)):
                want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
                plural = "s" if hi != 1 else ""
                raise ToolError(f"{name}() takes {want} argument{plural}, got {len(node.args)} ({where})")
            stack.extend((arg, level + 1) for arg in reversed(node.args))
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                symbol = _OTHER_BINOPS.get(type(node.op), type(node.op).__name__)
                raise ToolError(f"operator {symbol!r} is not supported; use + - * / // % ** (or ^)")
            # The left operand of a chain (a+b+c) stays on the same level: long flat sums are fine.
            stack.append((node.right, level + 1))
            stack.append((node.left, level))
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                raise ToolError(f"operator {'not' if isinstance(node.op, ast.Not) else '~'!r} is not supported")
            stack.append((node.operand, level + 1))
        else:
            what = _FORBIDDEN.get(type(node), f"{type(node).__name__} expressions")
            raise ToolError(f"not allowed: {what} in {where}; only numbers, operators and the listed functions")


def _segment(source: str, node: ast.AST) -> str:
    return _shorten(ast.get_source_segment(source, node) or ast.unparse(node))


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


# --- functions ----------------------------------------------------------------------------------

Impl = Callable[[_Evaluator, ast.Call, list[Num]], Num]


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
_AVAILABLE = f"available functions: {', '.join(sorted(_FUNCTIONS))}; constants: {', '.join(_CONSTANTS)}"


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


# --- public API ---------------------------------------------------------------------------------

def evaluate(expression: str) -> str:
    """Evaluate one expression exactly; raise ToolError with a readable message on bad input."""
    if not isinstance(expression, str):
        raise ToolError(f"expression must be a string, got {type(expression).__name__}")
    if len(expression) > MAX_INPUT_CHARS:
        raise ToolError(f"expression too long ({len(expression):,} characters; the limit is {MAX_INPUT_CHARS:,})")
    if not expression.strip():
        raise ToolError("empty expression; give an arithmetic expression such as (3+5)*12")
    source = _normalise(expression)
    if not source:
        raise ToolError("empty expression; give an arithmetic expression such as (3+5)*12")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        shown = f" (read as {_shorten(source)!r})" if source != expression.strip() else ""
        raise ToolError(
            f"invalid syntax in {_shorten(expression.strip())!r}{shown}: {exc.msg}. "
            "Write multiplication explicitly (2*pi, not 2pi) and use ** or ^ for powers."
        ) from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise ToolError(f"could not parse {expression.strip()!r}: {exc}") from None
    _check_tree(tree, source)
    try:
        return _format(_Evaluator(source).visit(tree.body))
    except ToolError:
        raise
    except RecursionError:
        raise ToolError("expression nested too deeply to evaluate") from None
    except MemoryError:
        raise ToolError("result too large to compute") from None
    except Exception as exc:  # sympy can fail in odd ways on odd input; the model still gets a reason
        message = _shorten(f"{type(exc).__name__}: {exc}", 200)
        raise ToolError(f"could not evaluate {_shorten(expression.strip())!r}: {message}") from None


class CalculatorArgs(ToolArgs):
    expression: str = Field(
        description="One math expression, e.g. '(3+5)*12', '15% of 240', 'sqrt(2)^3', 'factorial(20)'.",
        max_length=MAX_INPUT_CHARS,
        strict=True,
    )


DESCRIPTION = (
    "Evaluate one arithmetic expression exactly (no variables or equations). Operators: + - * / "
    "// % ** (or ^), brackets. '15%' is a percentage when followed by nothing, an operator, ')' or "
    "'of' ('15% of 80', '80*15%'); 'a % b' between two numbers is modulo. '30°' is degrees; "
    "trig functions otherwise use radians. Thousands separators like 1,000,000 are fine. "
    "Functions: sqrt, cbrt, root(x, n), abs, exp, ln, log(x) (natural), log(x, base), log10, log2, "
    "sin, cos, tan, asin, acos, atan, sinh, cosh, tanh, factorial, binomial(n, k), gcd, lcm, floor, "
    "ceil, round(x, ndigits) (half away from zero), min, max, mod(a, b). Constants: pi, e, tau, i. "
    "Result: an integer in full ('2**100' -> '1267650600228229401496703205376'); a fraction with its "
    "decimal ('1/3 + 1/6' -> '1/2 = 0.5', '2/3' -> '2/3 ≈ 0.666666666666667'); an irrational value "
    "as exact form and 15-digit decimal ('sqrt(8)' -> '2*sqrt(2) ≈ 2.82842712474619'); a decimal "
    "when the input has decimals ('0.1*3' -> '0.3'); complex results use i ('sqrt(-4)' -> '2*i'). "
    "Limits: exact numbers up to about 78,900 digits (results over 20,000 digits are not shown), "
    "other values between 1e-1000 and 1e1000, factorial(n) for n <= 10000. Errors explain what to fix."
)

EXAMPLES = [
    "What is 15% of 240?",
    "A ticket costs 8.5 dollars. How much do 6 tickets cost?",
    "A bus drives 180 km in 2 hours. How fast does it go?",
    "I have 90 dollars and spend 35. How much is left?",
    "一个西瓜 12.5 元，买 4 个多少钱？",
    "小刚有 56 张卡片，送给同学 18 张，还剩多少张？",
    "Calculate (1250 - 380) * 12 / 5",
    "What is 2 to the power of 100, exactly?",
    "What's the square root of 50?",
    "计算 (3+5)*12 的结果",
    "1/3 加 1/6 等于多少？",
    "240 的 15% 是多少？",
    "帮我算一下 20 的阶乘",
]


#: Unit constants a word problem may need without stating them (metres, minutes, hours, days,
#: percent...) and single digits (counts for averages, "1 - 25%", squares).
_UNIT_NUMBERS = ("3600", "1000", "365", "100", "60", "24", "12", "10", *"987654321")
_REQUEST_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def request_numbers_pattern(request: str) -> str:
    """A regex for expressions over the request's own numbers, unit constants and functions:
    operands joined by operators, never two numbers side by side. A small model that writes the
    expression under this pattern cannot copy prose ("17% of 2340 = 17"), glue numbers together
    or invent numbers the problem does not contain."""
    numbers = set(_UNIT_NUMBERS)
    for found in _REQUEST_NUMBER.findall(unicodedata.normalize("NFKC", request)):
        numbers.update({found, found.replace(",", "")})
    atom = "(?:" + "|".join([*sorted((re.escape(n) for n in numbers), key=len, reverse=True), "pi"]) + ")%?"
    opening = r"(?:\(|(?:" + "|".join(sorted(_FUNCTIONS, key=len, reverse=True)) + r")\()*"
    operand = opening + atom + r"\)*"
    return "^" + operand + r"(?: ?[-+*/^,] ?" + operand + ")*$"


def calculator_tool() -> Tool:
    def run(expression: str) -> str:
        return evaluate(expression)

    # The evaluator bounds its own time; the tool timeout is only a backstop.
    return Tool(name="calculator", description=DESCRIPTION, args_schema=CalculatorArgs, func=run,
                examples=list(EXAMPLES), timeout_s=5.0)
