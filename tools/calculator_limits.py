"""The calculator's bounds: every costly step is checked against these *before* it runs."""

from __future__ import annotations

import math

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
