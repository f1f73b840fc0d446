"""The running summary of turns trimmed from the prompt.

Extractive on purpose: one line per trimmed turn (the request, the tools used, the answer, each
clipped), newest kept when the summary outgrows its budget. It costs no model call, so it works
the same with every backend, scripted runs replay unchanged, and a weak local model cannot
hallucinate into it.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from memory.tokens import TokenCounter

CLIP = 160
OMITTED = "(earlier turns omitted)"


def clip(text: str, limit: int = CLIP) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def turn_lines(messages: list[AnyMessage]) -> list[str]:
    """One line per turn: `- User: … | used: tool, tool | Assistant: …`."""
    lines: list[str] = []
    request, tools, answer = "", [], ""

    def flush() -> None:
        if request or answer:
            used = f" | used: {', '.join(dict.fromkeys(tools))}" if tools else ""
            lines.append(f"- User: {clip(request)}{used} | Assistant: {clip(answer) or '(no answer)'}")

    for msg in messages:
        if isinstance(msg, HumanMessage):
            flush()
            request, tools, answer = msg.text, [], ""
        elif isinstance(msg, AIMessage):
            tools.extend(c["name"] for c in msg.tool_calls)
            if msg.text.strip():
                answer = msg.text
    flush()
    return lines


def extend_summary(previous: str, newly_trimmed: list[AnyMessage], limit: int, count: TokenCounter) -> str:
    """`previous` plus a line per newly trimmed turn, oldest lines dropped to stay within `limit` tokens."""
    lines = [ln for ln in previous.splitlines() if ln.strip() and ln != OMITTED] + turn_lines(newly_trimmed)
    dropped = False
    while lines and count("\n".join([OMITTED, *lines]) if dropped else "\n".join(lines)) > limit:
        lines.pop(0)
        dropped = True
    return "\n".join([OMITTED, *lines] if dropped and lines else lines)
