"""Cutting repetition loops and echoed prompt scaffolding from small-model text."""

from __future__ import annotations

from agent.llm.text_cleanup import cut_repetition
from agent.prompts import strip_scaffolding


def test_a_repeated_sentence_is_cut_at_its_first_repeat() -> None:
    text = "I'm sorry, I don't know. " * 10
    assert cut_repetition(text) == "I'm sorry, I don't know."


def test_a_character_loop_is_cut_but_numbers_are_not() -> None:
    assert cut_repetition("abc abc abc abc abc abc") == "abc"
    assert cut_repetition("2 to the power of 20 is 1048576, and 1/3 is 0.3333333") == (
        "2 to the power of 20 is 1048576, and 1/3 is 0.3333333"
    )


def test_text_without_repeats_is_kept() -> None:
    text = "17% of 2340 is 397.8. That is the answer."
    assert cut_repetition(text) == text


def test_echoed_prompt_sections_never_reach_the_answer() -> None:
    assert strip_scaffolding("17% of 2340 is 397.8\n\n# Output format\nPlain text for the user.") == "17% of 2340 is 397.8"
    assert strip_scaffolding("Answer: 12 pencils.\nQuestion: What is 2+2?") == "12 pencils."
    assert strip_scaffolding("Plain answer") == "Plain answer"
