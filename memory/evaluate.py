"""The Reflexion evaluator for scripted runs: does an answer pass the task's check?

A check is one of:
  - None: `numeric` when `expected` is a number, else `contains`
  - "exact": equal after normalising case, spaces and end punctuation
  - "numeric": the answer's last number equals `expected` (relative tolerance 1e-6)
  - "contains": the normalised `expected` occurs in the normalised answer
  - "regex:<pattern>": the pattern matches the answer (case-insensitive)
  - an expression over `answer` and `expected`, e.g. "'cat' in answer.lower() and len(answer) < 200";
    evaluated by a small whitelist interpreter, never `eval`, so a task file cannot run code
  - a callable (answer, expected) -> bool, from Python
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

Check = str | Callable[[str, Any], bool] | None


class Evaluation(BaseModel):
    passed: bool
    reason: str


class CheckError(ValueError):
    """The check itself is invalid (not the answer): a task-file mistake to report."""


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).lower()).strip(" .。!!?？")


_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


def numbers(text: str) -> list[float]:
    out = []
    for raw in _NUMBER.findall(str(text)):
        try:
            out.append(float(raw.replace(",", "")))
        except ValueError:
            continue
    return out


def last_number(text: str) -> float | None:
    found = numbers(text)
    return found[-1] if found else None


def same_number(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def evaluate(answer: str, expected: Any = None, check: Check = None) -> Evaluation:
    answer = answer or ""
    if callable(check):
        passed = bool(check(answer, expected))
        return Evaluation(passed=passed, reason="the check function " + ("passed" if passed else "failed"))
    mode = (check or "").strip()
    if not mode:
        if expected is None:
            raise CheckError("a task needs `expected` or a `check` to be evaluated")
        mode = "numeric" if _as_number(expected) is not None else "contains"
    if mode == "exact":
        passed = normalise(answer) == normalise(expected)
        return Evaluation(passed=passed, reason=f"expected exactly {expected!r}" if not passed else "exact match")
    if mode == "numeric":
        want = _as_number(expected)
        if want is None:
            raise CheckError(f"numeric check needs a number as expected, got {expected!r}")
        got = last_number(answer)
        passed = got is not None and same_number(got, want)
        return Evaluation(passed=passed, reason="numeric match" if passed else f"expected the number {expected}, the answer's last number is {got}")
    if mode == "contains":
        passed = normalise(expected) in normalise(answer)
        return Evaluation(passed=passed, reason="contains the expected text" if passed else f"the answer does not contain {expected!r}")
    if mode.startswith("regex:"):
        try:
            passed = re.search(mode[6:], answer, re.I | re.S) is not None
        except re.error as exc:
            raise CheckError(f"invalid regex in check: {exc}") from None
        return Evaluation(passed=passed, reason="regex matched" if passed else f"the answer does not match {mode[6:]!r}")
    passed = bool(safe_eval(mode, {"answer": answer, "expected": expected}))
    return Evaluation(passed=passed, reason=f"check {mode!r} " + ("passed" if passed else "failed"))


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?\s*", value):
        return float(value.replace(",", ""))
    return None


# ---------------------------------------------------------------- expression checks

_FUNCS: dict[str, Callable[..., Any]] = {
    "len": len, "abs": abs, "round": round, "min": min, "max": max, "any": any, "all": all,
    "int": int, "float": float, "str": str, "bool": bool,
    "number": last_number, "numbers": numbers, "normalise": normalise, "same_number": same_number,
}
_METHODS = {"lower", "upper", "strip", "startswith", "endswith", "split", "count", "replace", "isdigit", "find"}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Mod: operator.mod}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}


def safe_eval(expression: str, names: dict[str, Any]) -> Any:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise CheckError(f"check is neither a known check nor a valid expression: {exc.msg}") from None
    try:
        return _eval(tree.body, names)
    except CheckError:
        raise
    except Exception:  # noqa: BLE001 - a check that raises on this answer (e.g. no number in it) fails
        return False


def _eval(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise CheckError(f"unknown name {node.id!r} in check (use answer, expected)")
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, names) for e in node.elts]
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, names) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        value = _eval(node.operand, names)
        return (not value) if isinstance(node.op, ast.Not) else -value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval(node.left, names), _eval(node.right, names))
    if isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        left = _eval(node.left, names)
        for op, comparator in zip(node.ops, node.comparators):
            right = _eval(comparator, names)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Subscript):
        return _eval(node.value, names)[_eval(node.slice, names)]
    if isinstance(node, ast.Call) and not node.keywords:
        args = [_eval(a, names) for a in node.args]
        if isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
            return _FUNCS[node.func.id](*args)
        if isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS:
            target = _eval(node.func.value, names)
            if isinstance(target, str):
                return getattr(target, node.func.attr)(*args)
        raise CheckError(f"call not allowed in check: {ast.unparse(node.func)}")
    raise CheckError(f"not allowed in check: {ast.unparse(node)}")
