"""The calculator's structured result: a JSON number and the exact form as separate fields, for
programs (the API), besides the readable text the model sees."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from tests.api_support import scripted_server
from tests.conftest import say
from tools.calculator import calculate, calculator_tool, evaluate
from tools.registry import ToolError


@pytest.mark.parametrize(
    "expression, text, value, exact",
    [
        ("3/2", "3/2 = 1.5", 1.5, "3/2"),
        ("-7/2", "-7/2 = -3.5", -3.5, "-7/2"),
        ("2/3", "2/3 ≈ 0.666666666666667", 2 / 3, "2/3"),
        ("6*7", "42", 42, "42"),
        ("2**53 - 1", "9007199254740991", 9007199254740991, "9007199254740991"),
        # Beyond 2**53 a JSON number is a double for most readers: the exact digits are in `exact`.
        ("2**100", str(2**100), float(2**100), str(2**100)),
        ("sqrt(8)", "2*sqrt(2) ≈ 2.82842712474619", math.sqrt(8), "2*sqrt(2)"),
        ("pi", "pi ≈ 3.14159265358979", math.pi, "pi"),
        # Decimal input: only the decimal is known, and the value is the decimal shown.
        ("0.1*3", "0.3", 0.3, None),
        ("1.5*pi", "4.71238898038469", 4.71238898038469, None),
        # Not a real number, or beyond what a double holds: no JSON number, never inf or a wrong 0.
        ("sqrt(-4)", "2*i", None, "2*i"),
        ("1e400*2", "2.0e+400", None, None),
        ("factorial(200)", str(math.factorial(200)), None, str(math.factorial(200))),
        ("sqrt(2)*10**-500", None, None, "sqrt(2)/1" + "0" * 500),
    ],
)
def test_value_and_exact_form(expression, text, value, exact):
    result = calculate(expression)
    assert result.text == evaluate(expression)
    if text is not None:
        assert result.text == text
    assert result.value == value and type(result.value) is type(value)
    assert result.exact == exact
    assert result.data() == {"value": value, "exact": exact}
    json.dumps(result.data(), allow_nan=False)  # always valid JSON


def test_exact_form_is_calculator_input_again():
    for expression in ("2/3", "sqrt(8)", "sqrt(-4)", "pi/4", "2**100", "cbrt(3)*e"):
        exact = calculate(expression).exact
        assert evaluate(exact) == evaluate(expression)


def test_bad_input_still_raises():
    with pytest.raises(ToolError, match="division by zero"):
        calculate("1/0")


def test_tool_result_carries_fields_and_model_reads_text():
    result = calculator_tool().invoke({"expression": "3/2"})
    assert result.ok and result.result == "3/2 = 1.5"
    assert result.data == {"value": 1.5, "exact": "3/2"}
    assert result.for_model() == "3/2 = 1.5"
    failed = calculator_tool().invoke({"expression": "1/0"})
    assert not failed.ok and failed.data is None


def test_api_invoke_returns_value_and_exact_form(tmp_path):
    with scripted_server(tmp_path, say("unused")) as url, httpx.Client(base_url=url, timeout=60) as http:
        body = http.post("/v1/tools/calculator/invoke", json={"expression": "3/2"}).json()
        assert body == {"ok": True, "result": "3/2 = 1.5", "data": {"value": 1.5, "exact": "3/2"}, "artifacts": []}
        body = http.post("/v1/tools/calculator/invoke", json={"expression": "2**100"}).json()
        assert body["data"]["exact"] == str(2**100) and body["data"]["value"] == float(2**100)
        body = http.post("/v1/tools/calculator/invoke", json={"expression": "sqrt(-4)"}).json()
        assert body["data"] == {"value": None, "exact": "2*i"}
        failed = http.post("/v1/tools/calculator/invoke", json={"expression": "1/0"})
        assert failed.status_code == 200 and failed.json()["ok"] is False and "data" not in failed.json()
