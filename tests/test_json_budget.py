"""json_budget: grammar schemas are finite, and the worst case bounds every reply."""

from __future__ import annotations

from agent.llm.json_budget import UNBOUNDED, fit_budget, grammar_schema, worst_case_tokens

SLOPPY = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "anything": {},
        "options": {"type": "object", "properties": {"unit": {"enum": ["c", "f"]}}, "additionalProperties": True},
    },
    "required": ["city"],
}


def test_grammar_schema_caps_arrays_closes_objects_and_types_untyped_values() -> None:
    schema = grammar_schema(SLOPPY, max_items=8)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["tags"]["maxItems"] == 8
    assert schema["properties"]["anything"]["type"] == ["string", "number", "boolean", "null"]
    assert schema["properties"]["options"]["additionalProperties"] is False
    assert "type" not in schema["properties"]["options"]["properties"]["unit"]  # enums keep their values
    assert SLOPPY["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}  # the input is untouched


def test_worst_case_is_finite_only_for_finite_schemas() -> None:
    assert worst_case_tokens(grammar_schema(SLOPPY, 8), 40, 16) < UNBOUNDED
    assert worst_case_tokens({"type": "array", "items": {"type": "string"}}, 40, 16) >= UNBOUNDED
    recursive = {"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"}
    assert worst_case_tokens(recursive, 40, 16) >= UNBOUNDED


def test_worst_case_grows_with_the_string_budget_and_counts_keys() -> None:
    schema = {"type": "object", "properties": {"expression": {"type": "string"}}}
    small, large = worst_case_tokens(schema, 10, 16), worst_case_tokens(schema, 40, 16)
    assert large - small == 30
    assert small >= len('{"expression":""}')


def test_fit_budget_shrinks_strings_to_fit_and_reports_what_it_needs() -> None:
    schema = grammar_schema(SLOPPY, 8)
    roomy = fit_budget(schema, 10_000, 40)
    assert roomy.string_tokens == 40 and roomy.worst_case <= 10_000
    tight = fit_budget(schema, 300, 40)
    assert tight.string_tokens < 40 and tight.worst_case <= 300
    impossible = fit_budget(schema, 10, 40)
    assert impossible.string_tokens == 4 and impossible.worst_case > 10  # the caller raises its budget


def test_the_lexer_follows_strings_escapes_and_numbers() -> None:
    from agent.llm.json_budget import JsonLexer

    lexer = JsonLexer()
    for piece in (b'{"a', b"b", b'\\"', b"c"):
        lexer.feed(piece)
    assert lexer.in_string and lexer.string_tokens == 3  # an escaped quote does not close it
    lexer.feed(b'", "n": 12')
    assert not lexer.in_string and lexer.in_number and lexer.number_tokens == 0
    lexer.feed(b"34")
    assert lexer.number_tokens == 1
    lexer.feed(b"}")
    assert not lexer.in_number
