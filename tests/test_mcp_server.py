"""Our tools served over MCP, used by the official SDK client: `mmagent mcp` over stdio and
`/mcp` of `mmagent serve` over streamable HTTP (behind the API key, memories per key's user)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.api_support import api_settings, running
from tests.conftest import write_script
from tests.mcp_support import mmagent_stdio

pytestmark = pytest.mark.slow  # starts servers

OURS = {"calculator", "retrieve", "search", "generate_image", "caption_image", "classify_image", "image_info", "remember", "recall", "forget"}
DOC = "The lighthouse of Alexandria stood on the island of Pharos; it was finished around 280 BC."


def ingest(data_dir: Path, tmp_path: Path) -> None:
    from agent.config import Settings
    from memory.knowledge import KnowledgeBase

    doc = tmp_path / "pharos.txt"
    doc.write_text(DOC, encoding="utf-8")
    kb = KnowledgeBase(Settings(data_dir=data_dir))
    try:
        assert kb.ingest([doc]).files[0].status == "added"
    finally:
        kb.close()


async def exercise(client: Client) -> dict:
    listed = await client.list_tools()
    out = {"tools": {t.name: t for t in listed.tools}}
    out["calc"] = await client.call_tool("calculator", {"expression": "17% * 2340"})
    out["retrieve"] = await client.call_tool("retrieve", {"query": "Where did the lighthouse of Alexandria stand?"})
    out["bad"] = await client.call_tool("calculator", {"expr": "1+1"})
    out["unknown"] = await client.call_tool("no_such_tool", {})
    return out


def check(out: dict) -> None:
    assert OURS <= set(out["tools"])
    assert out["tools"]["calculator"].input_schema["required"] == ["expression"]
    assert not out["calc"].is_error and "397.8" in out["calc"].content[0].text
    assert not out["retrieve"].is_error and "Pharos" in out["retrieve"].content[0].text
    assert out["bad"].is_error and "invalid arguments for calculator" in out["bad"].content[0].text
    assert out["unknown"].is_error and "unknown tool 'no_such_tool'" in out["unknown"].content[0].text


def test_the_sdk_client_uses_our_tools_over_stdio(tmp_path):
    data = tmp_path / "data"
    ingest(data, tmp_path)
    params = StdioServerParameters(**mmagent_stdio(data, user="ada"))

    async def main():
        async with Client(params) as client:
            out = await exercise(client)
            await client.call_tool("remember", {"text": "My favourite colour is teal."})
            out["recall"] = await client.call_tool("recall", {"query": "favourite colour"})
            return out

    out = asyncio.run(main())
    check(out)
    assert "teal" in out["recall"].content[0].text


def http_client(url: str, key: str | None) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)))


def test_the_sdk_client_uses_our_tools_over_http_and_keys_keep_memories_apart(tmp_path):
    from apps.server import create_app

    data = tmp_path / "data"
    ingest(data, tmp_path)
    script = write_script(tmp_path / "s.jsonl", {"role": "assistant", "content": "unused"})
    settings = api_settings(
        data, memory={"long_term": True}, api_key="shared-key", server={"api_keys": {"alice": "alice-key", "bob": "bob-key"}},
        knowledge={"web_search": False},
    )
    app = create_app(settings, llm=f"scripted:{script}", ui=False)

    with running(app) as base:
        url = f"{base}/mcp"
        refused = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10)
        wrong = httpx.post(url, json={}, headers={"Authorization": "Bearer nope"}, timeout=10)

        async def main():
            async with http_client(url, "alice-key") as alice:
                out = await exercise(alice)
                await alice.call_tool("remember", {"text": "My locker code is 4711."})
                out["alice_recall"] = await alice.call_tool("recall", {"query": "locker code"})
            async with http_client(url, "bob-key") as bob:
                out["bob_recall"] = await bob.call_tool("recall", {"query": "locker code"})
                out["bob_forget"] = await bob.call_tool("forget", {"memory": "locker code"})
            async with http_client(url, "alice-key") as alice:
                out["alice_again"] = await alice.call_tool("recall", {"query": "locker code"})
            return out

        out = asyncio.run(main())
        # The per-user key's user, not the user a request names, owns the memories (also on /v1).
        posing = httpx.post(
            f"{base}/v1/tools/recall/invoke", json={"query": "locker code"},
            headers={"Authorization": "Bearer bob-key", "X-MMAGENT-User": "alice"}, timeout=30,
        )
        shared = httpx.post(
            f"{base}/v1/tools/recall/invoke", json={"query": "locker code"},
            headers={"Authorization": "Bearer shared-key", "X-MMAGENT-User": "alice"}, timeout=30,
        )

    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert wrong.status_code == 401
    check(out)
    assert "4711" in out["alice_recall"].content[0].text
    assert "4711" not in out["bob_recall"].content[0].text and "No memories match" in out["bob_recall"].content[0].text
    assert out["bob_forget"].is_error
    assert "4711" in out["alice_again"].content[0].text
    assert posing.status_code == 200 and "4711" not in posing.text
    assert shared.status_code == 200 and "4711" in shared.text  # the shared key may act for any user


def test_mcp_can_be_turned_off(tmp_path):
    from apps.server import create_app

    script = write_script(tmp_path / "s.jsonl", {"role": "assistant", "content": "unused"})
    app = create_app(api_settings(tmp_path / "data", mcp={"serve_http": False}), llm=f"scripted:{script}", ui=False)
    with running(app) as base:
        response = httpx.post(f"{base}/mcp", json={}, timeout=10)
    assert response.status_code == 404
    assert json.dumps(response.json())  # a JSON error body, as for every other unknown path
