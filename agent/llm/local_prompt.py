"""Prompt rendering for the transformers backend: the tokenizer's chat template when it has one that
accepts the conversation, else a simplified conversation, else the plain transcript (see
`agent/llm/local.py`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from agent.llm.constrained import _native_messages, _simplified_messages, _tools_text, render_transcript

logger = logging.getLogger(__name__)


@dataclass
class RenderedPrompt:
    text: str
    #: "template", "template-simplified" or "transcript"; the transcript needs stop strings.
    style: str
    add_special_tokens: bool


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]], instruction: str) -> RenderedPrompt:
    """Chat template if the tokenizer has one that accepts the conversation, else the transcript."""
    if getattr(tokenizer, "chat_template", None):
        tools_text = _tools_text(tools) if tools else ""

        def native() -> str:
            msgs = _native_messages(messages, instruction)
            text = _apply_template(tokenizer, msgs, tools or None)
            if tools and text == _apply_template(tokenizer, msgs, None):
                # The template ignores `tools` (Gemma's does): describe them in the system text.
                text = _apply_template(tokenizer, _native_messages(messages, f"{tools_text}\n\n{instruction}"), None)
            return text

        def simplified() -> str:
            return _apply_template(tokenizer, _simplified_messages(messages, tools_text, instruction), None)

        for style, render in (("template", native), ("template-simplified", simplified)):
            try:
                text = render()
            except Exception as exc:  # noqa: BLE001 - templates raise anything from jinja errors to TypeError
                logger.debug("Chat template rejected the %s form: %s", style, exc)
                continue
            if isinstance(text, str) and text:
                # The template already contains BOS and friends.
                return RenderedPrompt(text, style, add_special_tokens=False)
    return RenderedPrompt(render_transcript(messages, tools, instruction), "transcript", add_special_tokens=True)


def _apply_template(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
