"""An OpenAI-compatible stub model for `bench/load.py --echo`: it answers with what it was sent.

The scripted model's replies are fixed text, so they cannot show what reached the prompt. This
stub can: every reply names each secret token (`tok` + 32 hex digits) found anywhere in the
messages it received. If one user's memories, notes or history ever reached another user's
prompt, that user's answer carries the other's token and the load test flags it.

Rules (enough for one agent turn per request):
  * tools offered and the last message is the user's: call calculator, remember (the user's
    secret token, so it lands in that user's long-term memory) and recall;
  * otherwise (plan, the act after tool results, respond, reflect): reply
    "Tokens in my prompt: ..." with every token seen.

    .venv/bin/python bench/echo_model.py --port 8001
"""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from sse_starlette import EventSourceResponse

TOKEN = re.compile(r"tok[0-9a-f]{32}")


def reply_for(body: dict[str, Any]) -> dict[str, Any]:
    """The assistant message for one request: `{"content"}` or `{"tool_calls"}`."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if body.get("tools") and last.get("role") == "user":
        mine = TOKEN.findall(json.dumps(last.get("content")))
        calls = [
            ("calculator", {"expression": "6*7"}),
            ("remember", {"text": f"my secret is {mine[-1] if mine else 'unknown'}"}),
            ("recall", {"query": "my secret", "k": 20}),
        ]
        return {"tool_calls": [
            {"index": i, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(calls)
        ]}
    seen = sorted(set(TOKEN.findall(json.dumps(messages))))
    return {"content": "Tokens in my prompt: " + (" ".join(seen) or "none")}


def create_app() -> FastAPI:
    app = FastAPI(title="echo model")

    @app.get("/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        message = {"role": "assistant", **reply_for(body)}
        finish = "tool_calls" if "tool_calls" in message else "stop"
        base = {"id": "chatcmpl-echo", "created": int(time.time()), "model": body.get("model", "echo")}
        if not body.get("stream"):
            for call in message.get("tool_calls", []):
                call.pop("index")
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return {**base, "object": "chat.completion", "choices": [choice]}

        def chunk(delta: dict[str, Any], reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": reason}
            return json.dumps({**base, "object": "chat.completion.chunk", "choices": [choice]})

        async def events():
            yield chunk({"role": "assistant", "content": ""})
            yield chunk({k: v for k, v in message.items() if k != "role"})
            yield chunk({}, finish)
            yield "[DONE]"

        return EventSourceResponse(events(), sep="\n")

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
