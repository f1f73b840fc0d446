"""Long-term memory tools: `remember`, `recall`, `forget`.

They act for the user in the call's `ToolContext`, never for a user the model names, so a
prompt cannot read or erase another user's memories. Built per app by `memory_tools(memory)`
(the store is the app's, not a global); `open_agent` registers them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from tools.registry import Tool, ToolArgs, ToolContext, ToolError

if TYPE_CHECKING:
    from memory.long_term import LongTermMemory


class RememberArgs(ToolArgs):
    text: str = Field(..., min_length=1, max_length=1000, description="The fact or preference to keep, as a short full sentence.")


class RecallArgs(ToolArgs):
    query: str = Field(..., min_length=1, max_length=2000, description="What to look for in the user's memories.")
    k: int = Field(5, ge=1, le=20, description="How many memories to return at most.")


class ForgetArgs(ToolArgs):
    memory: str = Field(..., min_length=1, max_length=1000, description="The id of the memory to delete, or words describing it.")


def memory_tools(store: LongTermMemory) -> list[Tool]:
    async def remember(text: str, context: ToolContext) -> dict[str, Any]:
        item = await store.remember(context.user_id, text)
        return {"id": item.id, "remembered": item.text}

    async def recall(query: str, k: int, context: ToolContext) -> list[dict[str, Any]] | str:
        found = await store.recall(context.user_id, query, k, min_score=0.15)
        if not found:
            return "No memories match."
        return [{"id": m.id, "text": m.text, "score": round(m.score or 0.0, 3)} for m in found]

    async def forget(memory: str, context: ToolContext) -> dict[str, Any]:
        gone = await store.forget(context.user_id, memory)
        if not gone:
            raise ToolError(f"no memory matches {memory[:200]!r}; call recall to see the ids")
        return {"forgotten": [{"id": m.id, "text": m.text} for m in gone]}

    return [
        Tool(
            "remember",
            "Save a fact or preference about the user for future conversations (name, likes, style, settings).",
            RememberArgs,
            remember,
            examples=["Remember that my name is Ada.", "I prefer watercolour style, keep that in mind.", "记住我喜欢水彩风格", "记住我的名字是小明"],
        ),
        Tool(
            "recall",
            "Search what you remember about the user from earlier conversations.",
            RecallArgs,
            recall,
            examples=["What is my name?", "Do you remember which style I like?", "你还记得我喜欢什么吗?", "我叫什么名字?"],
        ),
        Tool(
            "forget",
            "Delete a memory about the user, by its id or by describing it.",
            ForgetArgs,
            forget,
            examples=["Forget my address.", "Please delete what you know about my job.", "忘掉我的地址", "删除关于我工作的记忆"],
        ),
    ]
