"""The calculator's input side: normalise what people type (module docstring of
`tools.calculator`), then check the parsed tree against the whitelist of nodes and operators."""

from __future__ import annotations

import ast
import re
import unicodedata
from collections.abc import Collection, Mapping

from tools.calculator_limits import MAX_NESTING, MAX_NODES
from tools.registry import ToolError

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


def _check_tree(tree: ast.Expression, source: str, functions: Mapping[str, tuple[int, int | None, object]],
                constants: Collection[str]) -> None:
    """Reject anything outside the whitelist (`functions`: name -> (min args, max args or None, _);
    `constants`: names) before a single value is computed."""
    available = f"available functions: {', '.join(sorted(functions))}; constants: {', '.join(constants)}"
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    nodes = 0
    while stack:
        node, level = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ToolError(f"expression too long (more than {MAX_NODES} parts)")
        if level > MAX_NESTING:
            raise ToolError(f"expression nested too deeply (more than {MAX_NESTING} levels)")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float, complex)):
                kind = "strings" if isinstance(node.value, (str, bytes)) else f"the value {node.value!r}"
                raise ToolError(f"not allowed: {kind} in {_segment(source, node)}; only numbers, operators and the listed functions")
        elif isinstance(node, ast.Name):
            key = node.id.lower()
            if key in functions:
                raise ToolError(f"'{node.id}' is a function: call it with brackets, e.g. {key}(2)")
            if key not in constants:
                raise ToolError(f"unknown name '{node.id}'; {available}")
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                if type(node.func) in _FORBIDDEN:
                    stack.append((node.func, level + 1))
                    continue
                raise ToolError(f"only the listed functions can be called ({_segment(source, node)}); "
                                "write multiplication with *, e.g. 2*(3+4)")
            name = node.func.id.lower()
            if name not in functions:
                raise ToolError(f"unknown function '{node.func.id}'; {available}")
            if node.keywords:
                raise ToolError(f"keyword arguments are not supported ({_segment(source, node)}); "
                                "pass arguments by position, e.g. round(x, 2)")
            lo, hi, _ = functions[name]
            if not lo <= len(node.args) <= (hi if hi is not None else len(node.args)):
                want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
                plural = "s" if hi != 1 else ""
                raise ToolError(f"{name}() takes {want} argument{plural}, got {len(node.args)} ({_segment(source, node)})")
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
            raise ToolError(f"not allowed: {what} in {_segment(source, node)}; only numbers, operators and the listed functions")


def _segment(source: str, node: ast.AST) -> str:
    """The node's text, for error messages only: it re-splits the source on every call."""
    return _shorten(ast.get_source_segment(source, node) or ast.unparse(node))


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
