"""Turning agent events into Gradio chat messages.

Pure functions over plain dicts (Gradio's "messages" format), so the rendering is tested
without a browser. Steps (plan, tool calls, reflections) are assistant messages with a
`metadata.title`, which Gradio shows as collapsible blocks; the answer is a plain message
that grows as tokens arrive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULT_CHARS = 1500  # a step shows the start of a long tool result; the model saw its own limit


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str, indent=1)


def _clip(text: str, limit: int = RESULT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


def image_message(artifact: dict[str, Any]) -> dict[str, Any] | None:
    path = artifact.get("path")
    if artifact.get("kind", "image") != "image" or not path or not Path(path).is_file():
        return None
    return {"role": "assistant", "content": {"path": str(path), "alt_text": artifact.get("prompt") or artifact.get("name") or "image"}}


class TurnView:
    """The chat as it stands during one turn: earlier messages plus this turn's, updated per event."""

    def __init__(self, history: list[dict[str, Any]], text: str, images: list[dict[str, Any]] | None = None) -> None:
        self.messages: list[dict[str, Any]] = list(history)
        for image in images or []:
            self.messages.append({"role": "user", "content": {"path": image["path"], "alt_text": image.get("name", "upload")}})
        if text:
            self.messages.append({"role": "user", "content": text})
        self.artifacts: list[dict[str, Any]] = []
        self._answer: dict[str, Any] | None = None
        self._steps = 0

    # -- steps

    def _step(self, title: str, content: str, *, status: str = "done", step_id: str | None = None) -> dict[str, Any]:
        self._steps += 1
        message = {
            "role": "assistant",
            "content": content,
            "metadata": {"title": title, "status": status, "id": step_id or f"step-{self._steps}"},
        }
        # Steps go above the answer, which stays last while it streams.
        if self._answer is not None and self._answer in self.messages:
            self.messages.insert(self.messages.index(self._answer), message)
        else:
            self.messages.append(message)
        return message

    def _find(self, step_id: str) -> dict[str, Any] | None:
        for message in reversed(self.messages):
            if (message.get("metadata") or {}).get("id") == step_id:
                return message
        return None

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "plan":
            self._step("📝 Plan", "\n".join(f"{i}. {s}" for i, s in enumerate(event.get("steps", []), 1)) or "(no steps)")
        elif kind == "tool_call":
            args = _text(event.get("arguments", {}))
            self._step(f"🔧 {event['name']}", f"```json\n{args}\n```", status="pending", step_id=f"call-{event['id']}")
        elif kind == "tool_result":
            self._tool_result(event)
        elif kind == "reflection":
            self._step("🤔 Reflection", event.get("text", ""))
        elif kind == "approval":
            self._step("✋ Approval needed", f"The agent wants to run **{event['name']}** with:\n```json\n{_text(event.get('arguments', {}))}\n```\nApprove or deny below.")
        elif kind == "token" and event.get("node") == "respond":
            self._answer_text(self.answer_text + event.get("text", ""))
        elif kind == "final":
            self._final(event)
        elif kind == "error":
            self._answer_text(f"⚠️ {event.get('message', 'something went wrong')}")

    def _tool_result(self, event: dict[str, Any]) -> None:
        message = self._find(f"call-{event['id']}") or self._step(f"🔧 {event['name']}", "", status="pending")
        if event.get("ok"):
            message["content"] += f"\n**Result**\n```\n{_clip(_text(event.get('result')))}\n```"
        else:
            message["metadata"]["title"] = f"⚠️ {event['name']} failed"
            message["content"] += f"\n**Error**: {event.get('error')}"
        message["metadata"]["status"] = "done"
        if "seconds" in event:
            message["metadata"]["duration"] = float(event["seconds"])
        for artifact in event.get("artifacts", []):
            self._add_artifact(artifact)

    def _add_artifact(self, artifact: dict[str, Any]) -> None:
        if any(a.get("id") == artifact.get("id") and a.get("path") == artifact.get("path") for a in self.artifacts):
            return
        self.artifacts.append(artifact)

    @property
    def answer_text(self) -> str:
        return self._answer["content"] if self._answer else ""

    def _answer_text(self, text: str) -> None:
        if self._answer is None:
            self._answer = {"role": "assistant", "content": ""}
            self.messages.append(self._answer)
        self._answer["content"] = text

    def _final(self, event: dict[str, Any]) -> None:
        answer = event.get("answer") or ""
        if event.get("error") and event["error"] not in answer:
            answer = (answer + "\n\n" if answer else "") + f"⚠️ {event['error']}"
        # Cited passages (agent/grounding.py) whose source the answer text does not show yet.
        cited = [c for c in event.get("citations") or [] if c.get("source") and c["source"] not in answer]
        if cited:
            answer += "\n\n**Sources**\n" + "\n".join(
                f"[{c['n']}] {c['source']}" + (f" > {c['heading']}" if c.get("heading") else "") for c in cited)
        self._answer_text(answer or "(no answer)")
        for artifact in event.get("artifacts", []):
            self._add_artifact(artifact)
        for artifact in self.artifacts:
            shown = image_message(artifact)
            if shown:
                self.messages.append(shown)


def history_messages(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stored thread (as `Agent.history` returns it) in the chat's format, for reopening."""
    messages: list[dict[str, Any]] = []
    for item in history:
        role = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"}.get(item.get("role", ""))
        content = item.get("content") or ""
        if role is None:
            if item.get("role") == "tool" and content:
                messages.append({"role": "assistant", "content": _clip(content), "metadata": {"title": "🔧 tool result", "status": "done"}})
            continue
        if content:
            messages.append({"role": role, "content": content})
    return messages


def gallery_items(artifacts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a["path"], a.get("prompt") or a.get("name") or "") for a in artifacts if image_message(a)]
