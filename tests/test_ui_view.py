"""How agent events become chat messages, and the approval gate (no browser needed)."""

from __future__ import annotations

import asyncio

from apps.ui.approvals import Approvals
from apps.ui.chat_view import TurnView, gallery_items, history_messages
from apps.ui.session import ensure, user_key


def test_steps_are_collapsible_and_the_answer_streams_below_them(tmp_path):
    image = tmp_path / "cat.png"
    image.write_bytes(b"png")
    view = TurnView([], "draw a cat")
    view.apply({"type": "plan", "steps": ["draw", "describe"]})
    view.apply({"type": "tool_call", "id": "c1", "name": "generate_image", "arguments": {"prompt": "a cat"}})
    assert view.messages[-1]["metadata"]["status"] == "pending"
    view.apply({"type": "token", "node": "respond", "text": "Here is "})
    view.apply({"type": "token", "node": "act", "text": "(thinking)"})  # only the answer streams into the chat
    view.apply({
        "type": "tool_result", "id": "c1", "name": "generate_image", "ok": True, "result": {"ref": "artifact:1"},
        "artifacts": [{"id": "1", "kind": "image", "path": str(image), "prompt": "a cat"}], "seconds": 1.5,
    })
    view.apply({"type": "token", "node": "respond", "text": "a cat."})
    assert view.answer_text == "Here is a cat."
    view.apply({"type": "final", "answer": "Here is a cat.", "plan": [], "steps": [], "artifacts": [], "error": None})

    titles = [(m.get("metadata") or {}).get("title") for m in view.messages]
    assert titles[:4] == [None, "📝 Plan", "🔧 generate_image", None]  # user, plan, tool step, answer
    tool_step = view.messages[2]
    assert tool_step["metadata"]["status"] == "done" and tool_step["metadata"]["duration"] == 1.5
    assert "artifact:1" in tool_step["content"]
    assert view.messages[3]["content"] == "Here is a cat."
    assert view.messages[-1]["content"]["path"] == str(image)  # the image itself, inline
    assert gallery_items(view.artifacts) == [(str(image), "a cat")]


def test_a_failed_tool_and_a_model_error_read_as_text():
    view = TurnView([], "q")
    view.apply({"type": "tool_call", "id": "c1", "name": "calculator", "arguments": {"expression": "1/0"}})
    view.apply({"type": "tool_result", "id": "c1", "name": "calculator", "ok": False, "error": "division by zero", "seconds": 0})
    view.apply({"type": "final", "answer": "", "plan": [], "steps": [], "artifacts": [], "error": "the model server is down"})
    assert view.messages[1]["metadata"]["title"] == "⚠️ calculator failed"
    assert "division by zero" in view.messages[1]["content"]
    assert view.answer_text == "⚠️ the model server is down"


def test_a_missing_artifact_file_is_not_shown_as_a_broken_image():
    view = TurnView([], "q")
    view.apply({"type": "final", "answer": "ok", "plan": [], "steps": [], "error": None,
                "artifacts": [{"id": "x", "kind": "image", "path": "/nonexistent/x.png"}]})
    assert view.messages[-1] == {"role": "assistant", "content": "ok"}


def test_history_of_a_reopened_thread():
    stored = [
        {"role": "human", "content": "hi"},
        {"role": "ai", "content": ""},  # an assistant message that only called tools
        {"role": "tool", "content": "42"},
        {"role": "ai", "content": "It is 42."},
    ]
    shown = history_messages(stored)
    assert [m["role"] for m in shown] == ["user", "assistant", "assistant"]
    assert shown[1]["metadata"]["title"] == "🔧 tool result"


def test_sessions_get_their_own_ids_and_tampered_ids_are_replaced():
    a, b = ensure({}), ensure(None)
    assert a["user_id"] != b["user_id"] and len(a["thread_id"]) == 32
    assert ensure(a) == a
    forged = ensure({"user_id": "../../admin", "thread_id": a["thread_id"]})
    assert forged["user_id"] != "../../admin" and forged["thread_id"] != a["thread_id"]
    assert user_key(a).startswith("web-")


def test_approval_is_answered_only_by_the_same_visitor_and_thread():
    async def scenario():
        approvals = Approvals(timeout_s=5)
        seen = []
        gate = approvals.gate("alice", "t1", seen.append)
        waiting = asyncio.create_task(gate("generate_image", {"prompt": "a cat"}))
        await asyncio.sleep(0)
        assert seen == [{"type": "approval", "name": "generate_image", "arguments": {"prompt": "a cat"}}]
        assert not approvals.answer("bob", "t1", True)  # someone else cannot approve it
        assert approvals.pending("alice", "t1")
        assert approvals.answer("alice", "t1", True)
        return await waiting

    assert asyncio.run(scenario()) is True


def test_an_unanswered_approval_is_a_refusal():
    async def scenario():
        gate = Approvals(timeout_s=0.05).gate("alice", "t1", lambda event: None)
        return await gate("generate_image", {})

    assert asyncio.run(scenario()) is False
