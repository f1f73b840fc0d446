"""Calculator expressions by analogy with worked examples (agent/analogy.py)."""

from __future__ import annotations

import pytest

from agent import analogy
from tools.calculator import evaluate
from tools.demonstrations import CALCULATOR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A pencil costs 0.45 dollars. How much do 8 pencils cost?", ["0.45", "8"]),
        ("I had 1,250 yuan, paid 487 and 129.5.", ["1250", "487", "129.5"]),
        ("What is 17% of 2340? And 3 percent of 50?", ["17%", "2340", "3%", "50"]),
        ("工人每天做 120 个零件，15 天做多少个？", ["120", "15"]),  # a full-width comma before 15
        ("一双鞋原价 450 元，打七五折后卖多少元？", ["450", "7.5"]),
        ("打八折", ["8"]),
        ("GPT-2 has 1.5B parameters; compare it with 175B and a 8bit model", []),
    ],
)
def test_quantities_in_order(text, expected):
    assert analogy.quantities(text) == expected


def test_template_abstracts_the_questions_numbers_and_keeps_constants():
    assert analogy.template("I had 500 dollars, spent 120 and 75.5.", "500-120-75.5") == "{0}-{1}-{2}"
    assert analogy.template("A van uses 8 litres per 100 km. Litres for 350 km?", "8*350/100") == "{0}*{2}/{1}"
    assert analogy.template("How many seconds are in 2 hours?", "2*60*60") == "{0}*60*60"
    assert analogy.template("What is 15% of 80?", "15% * 80") == "{0}% * {1}"


def test_a_shape_that_drops_or_repeats_a_quantity_is_not_a_template():
    assert analogy.template("Ann is 9 and has 3 cats with 4 legs each. How many legs?", "3*4") is None
    assert analogy.template("Save 3% a year for 3 years", "3%*3") is None
    assert analogy.template("What is pi squared?", "pi^2") is None


def test_candidates_fill_the_most_similar_shapes_with_the_requests_numbers():
    ranked = [
        ("I had 500 dollars, spent 120 on shoes and 75.5 on books. How much is left?", {"expression": "500-120-75.5"}),
        ("What is 15% of 80?", {"expression": "15% * 80"}),
        ("A jacket costs 80 dollars and is 25% off. What is the sale price?", {"expression": "80*(1-25%)"}),
    ]
    # The three-slot shape does not fit two quantities, nor a percentage slot a plain 2340.
    assert analogy.candidates("What is 17% of 2,340?", ranked) == ["17% * 2340"]
    found = analogy.candidates("A bike costs 240 dollars and is 15% off. Sale price?", ranked[::-1])
    assert found[0] == "240*(1-15%)"
    assert evaluate(found[0]) == "204"
    # Three quantities fit only the three-slot shape.
    assert analogy.candidates("I had 1,250 yuan, paid 487 for rent and 129.5 for food.", ranked) == ["1250-487-129.5"]
    assert analogy.candidates("No numbers here", ranked) == []


def test_every_shipped_calculator_example_evaluates_and_most_are_templates():
    shapes = [analogy.template(q, a["expression"]) for q, a in CALCULATOR]
    for question, arguments in CALCULATOR:
        assert "error" not in evaluate(arguments["expression"]).lower(), question
    assert sum(s is not None for s in shapes) >= 0.8 * len(shapes)
