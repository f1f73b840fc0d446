"""`openai:<model>`: any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp server) with
native tool calling. Base URL and key come from `OPENAI_BASE_URL` / `OPENAI_API_KEY`, as the
official client reads them. Arguments are validated by the act node, which gives the model one
repair round with the validation error.
"""

from __future__ import annotations

import os
from typing import Any

from agent.llm.base import ChatBackend, ChatReply, ChatRequest, LLMError, TokenCallback, Usage, reply_from_openai


class OpenAIBackend(ChatBackend):
    chooses_tools = True
    constrained = False

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None, timeout_s: float = 120.0) -> None:
        if not model:
            raise LLMError("openai backend needs a model name: --llm openai:<model>")
        self.model = model
        self.spec = f"openai:{model}"
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        # Local servers (vLLM, Ollama, llama.cpp) accept any key; the client insists on one.
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self.timeout_s = timeout_s
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout_s, max_retries=1)
        return self._client

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stream": True,
            # The last chunk then carries the call's token counts (OpenAI, vLLM, llama.cpp, Ollama).
            "stream_options": {"include_usage": True},
        }
        if request.tools and request.tool_choice != "none":
            params["tools"] = request.tools
            if request.tool_choice in ("auto", "required"):
                params["tool_choice"] = request.tool_choice
            else:
                params["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
        if request.response_schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.purpose, "schema": request.response_schema},
            }
        return params

    async def complete(self, request: ChatRequest, *, on_token: TokenCallback | None = None, session: str = "default") -> ChatReply:
        import openai

        content: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage: Usage | None = None
        try:
            stream = await self.client.chat.completions.create(**self._params(request))
            async for chunk in stream:
                if getattr(chunk, "usage", None) is not None:
                    usage = Usage(prompt_tokens=chunk.usage.prompt_tokens or 0, completion_tokens=chunk.usage.completion_tokens or 0)
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta.content:
                    content.append(delta.content)
                    if on_token:
                        on_token(delta.content)
                for tc in delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = tc.id or slot["id"]
                    if tc.function:
                        slot["name"] += tc.function.name or ""
                        slot["arguments"] += tc.function.arguments or ""
        except openai.APIConnectionError:
            raise LLMError(f"cannot reach the OpenAI-compatible server at {self.base_url} (set OPENAI_BASE_URL)") from None
        except openai.AuthenticationError:
            raise LLMError(f"the server at {self.base_url} rejected the API key (set OPENAI_API_KEY)") from None
        except openai.NotFoundError:
            raise LLMError(f"model {self.model!r} not found at {self.base_url}") from None
        except openai.APIStatusError as exc:
            raise LLMError(f"the model server answered {exc.status_code}: {_short(exc)}") from None
        except openai.APITimeoutError:
            raise LLMError(f"the model server at {self.base_url} did not answer within {self.timeout_s:g} s") from None
        reply = reply_from_openai("".join(content), [calls[i] for i in sorted(calls)])
        reply.usage = usage
        return reply

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "base_url": self.base_url, "api_key_set": bool(os.environ.get("OPENAI_API_KEY"))}

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "…"
