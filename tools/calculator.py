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
they are small (see `tools/calculator_numbers.py`) and must lie within 10^-1000 .. 10^1000; beyond the sizes
sympy handles quickly they become accurate 15-digit decimals. Complex results are allowed and
use `i` (`sqrt(-4)` -> `2*i`); `i` is also accepted as input. Output format: see `DESCRIPTION`.

The parts, one concern each: `calculator_parse` (normalise, whitelist check), `calculator_limits`
(the bounds), `calculator_numbers` + `calculator_functions` + `calculator_eval` (evaluate within
the bounds), `calculator_render` (the readable result), `calculator_examples` (example requests).
This module is the API: `evaluate`, the tool, its schema, description and examples.
"""

from __future__ import annotations

import ast
import importlib
import re
import unicodedata
from dataclasses import dataclass

from pydantic import Field

from tools.calculator_examples import EXAMPLES
from tools.calculator_limits import MAX_INPUT_CHARS
from tools.calculator_parse import _check_tree, _normalise, _shorten
from tools.registry import Tool, ToolArgs, ToolError, ToolOutput

__all__ = ["Calculation", "CalculatorArgs", "DESCRIPTION", "EXAMPLES", "calculate", "calculator_tool", "evaluate", "request_numbers_pattern"]


# --- public API ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Calculation:
    """One result, readable and structured: `text` is what the model (and the CLI) shows,
    `value` and `exact` are the fields of `_fields` (a JSON number and the exact form)."""

    text: str
    value: int | float | None
    exact: str | None

    def data(self) -> dict[str, int | float | str | None]:
        return {"value": self.value, "exact": self.exact}


def evaluate(expression: str) -> str:
    """Evaluate one expression exactly; raise ToolError with a readable message on bad input."""
    return calculate(expression).text


def calculate(expression: str) -> Calculation:
    """`evaluate`, with the value also as separate fields; raises ToolError like it."""
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
    # The evaluating parts import sympy (about half a second): on first use, not with the tool.
    from tools.calculator_eval import _Evaluator
    from tools.calculator_functions import _CONSTANTS, _FUNCTIONS
    from tools.calculator_render import _fields, _format

    _check_tree(tree, source, _FUNCTIONS, _CONSTANTS)
    try:
        value = _Evaluator(source).visit(tree.body)
        return Calculation(_format(value), **_fields(value))
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


#: Unit constants a word problem may need without stating them (metres, minutes, hours, days,
#: percent...) and single digits (counts for averages, "1 - 25%", squares).
_UNIT_NUMBERS = ("3600", "1000", "365", "100", "60", "24", "12", "10", *"987654321")
_REQUEST_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def request_numbers_pattern(request: str) -> str:
    """A regex for expressions over the request's own numbers, unit constants and functions:
    operands joined by operators, never two numbers side by side. A small model that writes the
    expression under this pattern cannot copy prose ("17% of 2340 = 17"), glue numbers together
    or invent numbers the problem does not contain."""
    from tools.calculator_functions import _FUNCTIONS

    numbers = set(_UNIT_NUMBERS)
    for found in _REQUEST_NUMBER.findall(unicodedata.normalize("NFKC", request)):
        numbers.update({found, found.replace(",", "")})
    atom = "(?:" + "|".join([*sorted((re.escape(n) for n in numbers), key=len, reverse=True), "pi"]) + ")%?"
    opening = r"(?:\(|(?:" + "|".join(sorted(_FUNCTIONS, key=len, reverse=True)) + r")\()*"
    operand = opening + atom + r"\)*"
    return "^" + operand + r"(?: ?[-+*/^,] ?" + operand + ")*$"


def calculator_tool() -> Tool:
    def run(expression: str) -> ToolOutput:
        result = calculate(expression)
        # The model reads the text; programs (the API's /v1/tools/calculator/invoke) get the fields too.
        return ToolOutput(result=result.text, data=result.data())

    # The evaluator bounds its own time; the tool timeout is only a backstop.
    return Tool(name="calculator", description=DESCRIPTION, args_schema=CalculatorArgs, func=run,
                examples=list(EXAMPLES), timeout_s=5.0, warm_up=_warm_up)


def _warm_up() -> None:
    importlib.import_module("tools.calculator_eval")  # sympy, once, before the first call needs it
