"""Free vs grammar-constrained tool calls on the bundled Gemma 3 270M (a script, not a test).

For each prompt the model is asked for the arguments of one named tool, with the same rendered
prompt, greedy decoding and token budget:
  * free:        plain generate(); the text is searched for the first JSON object in it;
  * constrained: LocalBackend (xgrammar) with tool_choice=<that tool>;
  * required:    LocalBackend with tool_choice="required" over all tools (also reports whether
                 the model picked the intended tool).

    python bench/constrained_decoding.py [--cache-dir DIR] [--device cpu] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config import Settings  # noqa: E402
from agent.llm.base import ChatRequest, LLMError  # noqa: E402
from agent.llm.local import (  # noqa: E402
    TRANSCRIPT_STOPS,
    LocalBackend,
    plan_output,
    render_prompt,
    tool_parameters,
    validate_against_schema,
)
from multimodal.llm_loader import load_bundled_model  # noqa: E402


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


TOOLS = [
    _tool("calculator", "Evaluate an arithmetic expression.", {"expression": {"type": "string"}}, ["expression"]),
    _tool(
        "get_weather",
        "Current weather for a city.",
        {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        ["city", "unit"],
    ),
    _tool(
        "web_search",
        "Search the web.",
        {"query": {"type": "string"}, "max_results": {"type": "integer", "minimum": 1, "maximum": 10}},
        ["query", "max_results"],
    ),
    _tool(
        "translate",
        "Translate text.",
        {"text": {"type": "string"}, "target_language": {"enum": ["en", "zh", "fr", "de"]}},
        ["text", "target_language"],
    ),
    _tool(
        "set_reminder",
        "Set a reminder.",
        {
            "message": {"type": "string"},
            "when": {
                "type": "object",
                "properties": {"hour": {"type": "integer", "minimum": 0, "maximum": 23}, "minute": {"type": "integer", "minimum": 0, "maximum": 59}},
                "required": ["hour", "minute"],
            },
        },
        ["message", "when"],
    ),
]

PROMPTS = [
    ("What is 12 times 7? Use the calculator.", "calculator"),
    ("What's the weather in Paris right now, in celsius?", "get_weather"),
    ("Search the web for the tallest building in the world, 3 results.", "web_search"),
    ("Translate 'good morning' into French.", "translate"),
    ("Remind me to call mom at 18:30.", "set_reminder"),
]


def _first_json_object(text: str) -> Any:
    """The first JSON object anywhere in free text (lenient, to give free generation its best shot)."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch == "{":
            try:
                return decoder.raw_decode(text[i:])[0]
            except ValueError:
                continue
    raise ValueError("no JSON object")


def free_call(backend: LocalBackend, tool: dict[str, Any], prompt: str, max_tokens: int) -> tuple[Any, float]:
    """Same prompt the constrained path renders, generated without a grammar."""
    runtime = backend._ensure_runtime()  # bench-only peek at the loaded model
    lm = runtime.lm
    request = ChatRequest(messages=[{"role": "user", "content": prompt}], tools=[tool], tool_choice=tool["function"]["name"])
    plan = plan_output(request)
    rendered = render_prompt(lm.tokenizer, request.messages, [tool], plan.instruction)
    enc = lm.tokenizer(rendered.text, return_tensors="pt", add_special_tokens=rendered.add_special_tokens)
    started = time.perf_counter()
    out = lm.model.generate(
        **enc, max_new_tokens=max_tokens, do_sample=False, eos_token_id=runtime.stop_ids,
        pad_token_id=lm.tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None,
    )
    seconds = time.perf_counter() - started
    text = lm.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    for stop in TRANSCRIPT_STOPS:
        text = text.split(stop)[0]
    return text, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: the shared model cache (MMAGENT_CACHE_DIR)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--verbose", action="store_true", help="print every output")
    args = parser.parse_args()
    cache_dir = args.cache_dir or Settings().models_cache_dir

    started = time.perf_counter()
    lm = load_bundled_model(cache_dir, args.device)
    print(f"bundled model: {lm.origin} load {time.perf_counter() - started:.1f} s on {lm.device}")
    backend = LocalBackend("bundled", lm)
    # Warm-up: tokenizer info for xgrammar and the first generate() are one-off costs.
    asyncio.run(backend.complete(ChatRequest(messages=[{"role": "user", "content": "hi"}], tools=[TOOLS[0]], tool_choice="calculator", max_tokens=64)))

    rows: dict[str, dict[str, list[Any]]] = {m: {"json": [], "valid": [], "right": [], "s": []} for m in ("free", "constrained", "required")}
    for prompt, name in PROMPTS:
        tool = next(t for t in TOOLS if t["function"]["name"] == name)
        schema = tool_parameters(tool)

        text, seconds = free_call(backend, tool, prompt, args.max_tokens)
        try:
            value = _first_json_object(text)
            ok_json = True
        except ValueError:
            value, ok_json = None, False
        rows["free"]["json"].append(ok_json)
        rows["free"]["valid"].append(ok_json and not validate_against_schema(value, schema))
        rows["free"]["right"].append(None)
        rows["free"]["s"].append(seconds)
        if args.verbose:
            print(f"[free] {name}: {text[:160]!r}")

        for mode, choice, tools in (("constrained", name, [tool]), ("required", "required", TOOLS)):
            request = ChatRequest(messages=[{"role": "user", "content": prompt}], tools=tools, tool_choice=choice, max_tokens=args.max_tokens)
            started = time.perf_counter()
            try:
                reply = asyncio.run(backend.complete(request))
                call = reply.tool_calls[0]
                called = next(t for t in TOOLS if t["function"]["name"] == call.name)
                ok_json, ok_valid = True, not validate_against_schema(call.arguments, tool_parameters(called))
                right = call.name == name
                shown = f"{call.name}({json.dumps(call.arguments, ensure_ascii=False)})"
            except LLMError as exc:
                ok_json = ok_valid = right = False
                shown = f"LLMError: {exc}"
            rows[mode]["s"].append(time.perf_counter() - started)
            rows[mode]["json"].append(ok_json)
            rows[mode]["valid"].append(ok_valid)
            rows[mode]["right"].append(right)
            if args.verbose:
                print(f"[{mode}] {name}: {shown[:160]}")

    n = len(PROMPTS)
    print(f"\n{n} tool-call prompts, greedy, max_tokens={args.max_tokens}, device={lm.device}")
    print(f"{'mode':<28} {'valid JSON':>10} {'schema-valid':>13} {'right tool':>11} {'s/call':>8}")
    labels = {"free": "free generation", "constrained": "xgrammar, named tool", "required": "xgrammar, required (5 tools)"}
    for mode, data in rows.items():
        right = "-" if mode != "required" else f"{sum(data['right'])}/{n}"
        print(
            f"{labels[mode]:<28} {sum(data['json']):>8}/{n} {sum(data['valid']):>11}/{n} {right:>11} "
            f"{statistics.mean(data['s']):>8.2f}"
        )


if __name__ == "__main__":
    main()
