"""How the graph drives a small base model (backends with `completion_style`, e.g. `bundled`).

A 270M base model cannot plan, pick among tools or follow instructions, but it continues a
pattern well. So, under the router policy:

* plan: the plan comes from the routing decision (`route`), with no model call;
* act: the router has picked the tool; the model writes only its arguments, after worked
  examples of that tool chosen by similarity to the request (tools/demonstrations.py), under
  the tool's grammar;
* reflect: the failure itself is the lesson (no model call); the next act shows it;
* respond: one line continued after worked question -> result -> answer examples, checked
  against the real results: a reply without the computed value is replaced by the value, and
  retrieved passages are cited as evidence.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from typing import Any

import numpy as np

from agent import analogy, prompts
from agent.events import PlanEvent, ReflectionEvent, emit
from agent.llm.base import ChatRequest
from agent.state import AgentContext, AgentState
from tools.demonstrations import Demo, demonstrations

#: Worked examples shown per call: enough to set the pattern, few enough to keep prompts short.
DEMOS_PER_CALL = 6
#: Expressions by analogy the model may choose from. One, the closest example's shape: asked to
#: choose among the shapes of the closest few, the bundled model picks worse than the ranking
#: (bench/word_problems.py, docs/backends.md).
ANALOGY_CANDIDATES = 1
_CJK = re.compile(r"[\u3400-\u9fff]")
_QUOTE_MARKERS = re.compile(r"<<(?:quoted|end)[^>]*>>", re.I)


def uses_weak_model(ctx: AgentContext) -> bool:
    return ctx.policy == "router" and ctx.backend.completion_style


_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
#: A quantity, not part of a name: "GPT-2", "175B" and "8bit" are not numbers to compute with.
_QUANTITY = re.compile(r"(?<![A-Za-z_\-\d.,])\d+(?:[.,]\d+)*(?![A-Za-z_\d]|[.,]\d)")


def routed_tools(ctx: AgentContext, state: AgentState, chosen: list[str], exclude: set[str]) -> list[str]:
    """The router policy's pick, adjusted for weak models: after a result only arithmetic on it
    may follow, and a word problem nobody picked goes to the calculator."""
    if ctx.backend.completion_style and state.get("called_ok"):
        # A weak model's turn has its result; only arithmetic on it may follow (the size of
        # an image -> its pixel count), or it would go on through every tool that scores.
        chosen = [name for name in chosen if name == "calculator"]
    if not chosen and not state.get("step_log") and (allowed := set(ctx.registry.names()) - exclude):
        if ctx.router.allowed is not None:
            allowed &= ctx.router.allowed
        chosen = [name] if (name := numeric_fallback(state["request"], allowed) or question_fallback(state["request"], allowed)) else []
    return chosen


def numeric_fallback(request: str, available: set[str]) -> str | None:
    """The calculator for a request the router left alone that states two or more quantities:
    word problems ("3 shirts at 12.5 dollars each") read like prose, not like arithmetic."""
    if "calculator" in available and len(_QUANTITY.findall(request)) >= 2:
        return "calculator"
    return None


_QUESTION = re.compile(r"[?？]\s*$|什么|哪些|哪个|如何|为什么|怎么|吗\s*$", re.I)


def question_fallback(request: str, available: set[str]) -> str | None:
    """retrieve for a question the router left alone: a small model would make an answer up
    from nothing, while the documents either hold it or the agent says they do not
    (agent/grounding.py)."""
    if "retrieve" in available and _QUESTION.search(request.strip()):
        return "retrieve"
    return None


# ---------------------------------------------------------------- plan (route)


async def route(state: AgentState, runtime: Any) -> dict[str, Any]:
    """The plan of a routed turn: the router's tool, then the answer (no model call)."""
    from agent.node_act import offered_tools

    ctx = runtime.context
    offered = await asyncio.to_thread(offered_tools, ctx, state, None)
    if offered:
        tool = offered[0]["function"]["name"]
        steps = [f"Call {tool} for the request.", "Answer with its result."]
    else:
        steps = ["Answer directly."]
    emit(PlanEvent(steps=steps))
    return {"plan": steps, "plan_start": 0}


# ---------------------------------------------------------------- act


def similarities(ctx: AgentContext, request: str, texts: list[str]) -> np.ndarray | None:
    """Cosine similarity of each text to the request (None without an encoder, or no texts)."""
    encoder = getattr(ctx.router, "encoder", None)
    if encoder is None or not texts:
        return None
    vectors = encoder.encode([*texts, request])
    return vectors[:-1] @ vectors[-1]


def ranked_demos(ctx: AgentContext, tool: str, request: str) -> list[Demo]:
    """The worked examples of `tool`, the most similar to `request` first (for the calculator,
    alike in wording with the numbers aside: its examples are shapes of expressions)."""
    demos = demonstrations(tool)
    if tool == "calculator":
        return analogy.rank(request, demos, lambda text, texts: similarities(ctx, text, texts))
    # No more than a prompt shows: their order as written, and no encoder call on this path.
    scores = similarities(ctx, request, [d[0] for d in demos]) if len(demos) > DEMOS_PER_CALL else None
    if scores is None:
        return demos[::-1]
    return [demos[i] for i in np.argsort(-scores, kind="stable")]


def known_results(state: AgentState, limit: int = 300) -> list[str]:
    """Earlier results of this turn, one short line each, for a call that builds on them."""
    lines = []
    for entry in state.get("step_log", []):
        shown = entry.get("result") if entry["ok"] else f"ERROR: {entry.get('error')}"
        text = shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False, default=str)
        lines.append(f"{entry['tool']} {json.dumps(entry['arguments'], ensure_ascii=False)} -> {text[:limit]}")
    return lines


def constrained_tool(
    tool: dict[str, Any], request: str, known: list[str], images: list[str], expressions: list[str] | None = None
) -> dict[str, Any]:
    """The tool as the model may fill it in: an `image` argument is one of the attached images,
    and the calculator's expression is one of `expressions` (by analogy with the worked
    examples) or else uses only the numbers of the request (and of earlier results), unit
    constants, functions and operators."""
    properties = tool["function"].get("parameters", {}).get("properties", {})
    tool = copy.deepcopy(tool)
    if "image" in properties and images:
        tool["function"]["parameters"]["properties"]["image"] = {"enum": list(dict.fromkeys(images))}
    if tool["function"]["name"] == "calculator" and "expression" in properties:
        from tools.calculator import request_numbers_pattern

        expression = tool["function"]["parameters"]["properties"]["expression"]
        expression.pop("maxLength", None)
        if expressions:
            expression["enum"] = expressions
        else:
            expression["pattern"] = request_numbers_pattern("\n".join([request, *known]))
    return tool


def call_request(ctx: AgentContext, state: AgentState, tool: dict[str, Any]) -> ChatRequest:
    """The act request: demonstrations, then the request, continued as the tool's arguments."""
    name = tool["function"]["name"]
    request = prompts.user_message_text(state["request"], state.get("images", []))
    known = known_results(state)
    ranked = ranked_demos(ctx, name, request)
    # By analogy only for the first call: a later one works on results, not on the request.
    expressions = analogy.candidates(request, ranked, ANALOGY_CANDIDATES) if name == "calculator" and not known else None
    tool = constrained_tool(tool, request, known, state.get("images", []), expressions)
    text = prompts.call_prompt(name, ranked[:DEMOS_PER_CALL][::-1], request, known)
    return ChatRequest(
        messages=[{"role": "user", "content": request}],
        tools=[tool],
        tool_choice=name,
        temperature=0.0,
        max_tokens=ctx.settings.limits.max_new_tokens,
        purpose="act",
        completion_prompt=text,
    )


# ---------------------------------------------------------------- reflect


async def reflect_on_failure(state: AgentState, runtime: Any) -> dict[str, Any]:
    """The lesson of a failed call is its error; the next act shows it to the model."""
    failures = [e for e in state.get("step_log", []) if not e["ok"]]
    last = failures[-1] if failures else None
    text = (
        f"{last['tool']} failed with {json.dumps(last['arguments'], ensure_ascii=False)}: {str(last.get('error'))[:200]}. "
        "Write the call differently."
        if last
        else "The plan ran out before an answer."
    )
    plan = state.get("plan", [])
    emit(ReflectionEvent(text=text, plan=plan))
    return {
        "reflections": [*state.get("reflections", []), text],
        "plan": plan,
        "plan_start": state.get("steps", 0),
        "last_round_failed": False,
    }


# ---------------------------------------------------------------- respond


def result_value(result: Any) -> str:
    """The value a tool result states: the calculator's "1989/5 = 397.8" states 397.8."""
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
    for sep in (" ≈ ", " = "):
        if sep in text:
            text = text.rsplit(sep, 1)[1]
    return text.strip()


def compact(result: Any) -> str:
    """A structured result as short "key: value" text a small model can quote from: scalars
    as they are, lists of records by their first values ("dominant_colors: red 100%")."""
    if not isinstance(result, dict):
        return result_value(result)
    parts = []
    for key, value in result.items():
        if key in ("image", "path", "ref") or value in (None, "", []):
            continue
        if isinstance(value, list):
            items = []
            for item in value[:4]:
                if isinstance(item, dict):
                    named = [str(v) for k, v in item.items() if isinstance(v, str) and not str(v).startswith("#")][:2]
                    share = item.get("share")
                    items.append(" ".join(named) + (f" {share:.0%}" if isinstance(share, (int, float)) else ""))
                else:
                    items.append(str(item))
            value = ", ".join(items)
        elif isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False)[:80]
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts)


def passages(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, list):
        return [p for p in result if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []


def passage_text(passage: dict[str, Any]) -> str:
    """A retrieved passage without its quote header and markers."""
    lines = [ln for ln in passage["text"].splitlines() if not _QUOTE_MARKERS.search(ln)]
    return " ".join(" ".join(lines).split())


def evidence(ctx: AgentContext, request: str, hits: list[dict[str, Any]], n: int = 2) -> list[tuple[int, str, str]]:
    """The `n` sentences of the retrieved passages closest to the request: (passage number,
    sentence, source). A small model's answer may miss; these show what the documents say."""
    sentences: list[tuple[int, str, str]] = []
    for number, hit in enumerate(hits, 1):
        for sentence in re.split(r"(?<=[。！？!?；;.])\s*", passage_text(hit)):
            if len(sentence.strip()) >= 8:
                sentences.append((number, sentence.strip()[:300], str(hit.get("source", ""))))
    scores = similarities(ctx, request, [s for _, s, _ in sentences])
    if scores is None:
        return sentences[:n]
    # Earlier passages rank higher in the retriever: a small prior keeps ties with them.
    scores = scores - 0.01 * np.asarray([number for number, _, _ in sentences])
    return [sentences[i] for i in sorted(np.argsort(-scores)[:n])]


def closest(ctx: AgentContext, request: str, texts: list[str], n: int) -> list[str]:
    """The `n` texts most similar to the request, in their original order."""
    scores = similarities(ctx, request, texts) if len(texts) > n else None
    if scores is None:
        return texts[:n]
    return [texts[i] for i in sorted(np.argsort(-scores)[:n])]


def answer_request(ctx: AgentContext, state: AgentState) -> ChatRequest:
    request = prompts.user_message_text(state["request"], state.get("images", []))
    results = [e for e in state.get("step_log", []) if e["ok"]]
    shown = []
    for entry in results[-3:]:
        hits = passages(entry["result"])
        if hits:
            text = " ".join(f"[{i}] {passage_text(h)[:300]}" for i, h in enumerate(hits[:2], 1))
        else:
            text = compact(entry["result"])[:300]
        shown.append((entry["tool"], text))
    text = prompts.answer_prompt(request, shown)
    return ChatRequest(
        messages=[{"role": "user", "content": request}], tool_choice="none", temperature=0.0,
        max_tokens=min(120, ctx.settings.limits.max_new_tokens), purpose="respond",
        completion_prompt=text, stop=["\n"],
    )


def checked_answer(ctx: AgentContext, state: AgentState, reply: str) -> str:
    """The model's line, kept only where it agrees with the results, plus cited evidence."""
    request = state["request"]
    chinese = bool(_CJK.search(request))
    reply = prompts.strip_scaffolding(reply)
    results = [e for e in state.get("step_log", []) if e["ok"]]
    # Only numbers are checked: a reply may rightly say just part of a structured result.
    values = [v for e in results if isinstance(e["result"], str) and _NUMBER.fullmatch((v := result_value(e["result"])).replace(",", "").lstrip("-"))]
    stated = _NUMBER.findall(reply.replace(",", ""))
    if values and (values[-1] not in reply or not stated or stated[-1] not in values[-1].replace(",", "")):
        # A small model misquotes numbers; the value the tool computed is the answer, and it
        # is the last number said (what a reader, and a checker, takes as the result).
        reply = (f"结果是 {values[-1]}。" if chinese else f"The result is {values[-1]}.")
    records = [e["result"] for e in results if isinstance(e["result"], dict)]
    if records and not values:
        # A small model misreads records (it quotes the width for the height, or the worked
        # example's numbers): the answer is the measured facts closest to the question.
        facts = compact(records[-1]).split("; ")
        reply = "; ".join(closest(ctx, request, facts, 2)) + ("。" if chinese else ".")
    hits = [h for e in results for h in passages(e["result"])]
    if hits:
        cited = evidence(ctx, request, hits)
        header = "文档中的相关内容：" if chinese else "From your documents:"
        lines = [f"[{n}] {sentence} ({source})" for n, sentence, source in cited]
        reply = "\n".join([reply.strip(), "", header, *lines]).strip()
    return reply
