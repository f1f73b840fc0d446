"""The graph with a small base model (a completion-style backend): the router's tool is the
plan, worked examples fill the arguments under a numbers-only pattern, and the answer states
the computed value, never a misquoted one."""

from __future__ import annotations

import asyncio
import re

from langgraph.checkpoint.memory import InMemorySaver

from agent.config import Settings
from agent.llm.base import ChatBackend, ChatReply, ChatRequest, ToolCall
from agent.runner import Agent
from agent.tool_router import ToolRouter
from multimodal.text_embeddings import SentenceEncoder
from tools.calculator import calculator_tool
from tools.registry import ToolRegistry

PROBLEM = "A shirt costs 12 dollars. Tom buys 3 shirts. How much does he pay?"


class BaseModelStandIn(ChatBackend):
    """Answers like a weak base model: a right call, then an answer with a wrong number."""

    spec = "stand-in"
    chooses_tools = False
    constrained = True
    completion_style = True

    def __init__(self, expression: str = "12*3", answer: str = "Tom pays 35 dollars.") -> None:
        self.requests: list[ChatRequest] = []
        self.expression, self.answer = expression, answer

    async def complete(self, request: ChatRequest, *, on_token=None, session="default") -> ChatReply:
        self.requests.append(request)
        if request.purpose == "act":
            return ChatReply(tool_calls=[ToolCall(name="calculator", arguments={"expression": self.expression})])
        return ChatReply(content=self.answer)


def agent_with(backend: ChatBackend) -> Agent:
    registry = ToolRegistry([calculator_tool()])
    return Agent(Settings(), backend, registry, ToolRouter(registry, SentenceEncoder()), InMemorySaver())


def test_a_word_problem_is_routed_filled_from_examples_and_answered_with_the_real_value() -> None:
    backend = BaseModelStandIn()
    result = asyncio.run(agent_with(backend).arun(PROBLEM, thread_id="t"))
    purposes = [r.purpose for r in backend.requests]
    assert purposes == ["act", "respond"]  # no plan or reflect model calls
    act = backend.requests[0]
    assert act.completion_prompt and act.completion_prompt.rstrip().endswith(f"Request: {PROBLEM}\nArguments:")
    assert act.completion_prompt.count("Request: ") == 7  # six worked examples, then the request
    # The closest worked example ("A pencil costs 0.45 dollars. How much do 8 pencils cost?")
    # has the shape {0}*{1}: the request's numbers fill it, and the model may write only that.
    assert act.tools[0]["function"]["parameters"]["properties"]["expression"]["enum"] == ["12*3"]
    assert result.steps[0]["result"] == "36"
    assert "36" in result.answer and "35" not in result.answer
    assert result.plan == ["Call calculator for the request.", "Answer with its result."]


def test_without_an_example_of_its_shape_the_expression_uses_only_the_requests_numbers() -> None:
    backend = BaseModelStandIn(expression="3+5+8+13+21+34+55")
    problem = "Add up 3, 5, 8, 13, 21, 34 and 55 for me."  # no worked example states seven numbers
    result = asyncio.run(agent_with(backend).arun(problem, thread_id="t"))
    expression = backend.requests[0].tools[0]["function"]["parameters"]["properties"]["expression"]
    assert "enum" not in expression
    pattern = expression["pattern"]
    assert re.match(pattern, "3+5+8") and not re.match(pattern, "3+5 = 8") and not re.match(pattern, "99+3")  # 99 is not in it
    assert result.steps[0]["result"] == "139"


def test_a_failed_call_is_reflected_on_without_a_model_call_and_retried() -> None:
    backend = BaseModelStandIn(expression="12*(3")
    result = asyncio.run(agent_with(backend).arun(PROBLEM, thread_id="t"))
    purposes = [r.purpose for r in backend.requests]
    assert "reflect" not in purposes and purposes.count("act") == 2  # the router drops it after two failures
    retry = backend.requests[1].completion_prompt or ""
    assert "Known: calculator" in retry and "ERROR" in retry  # the failure is shown to the model
    assert "calculator failed" in result.answer


def test_chit_chat_gets_no_tool() -> None:
    backend = BaseModelStandIn(answer="Hello! How can I help you today?")
    result = asyncio.run(agent_with(backend).arun("Hello there!", thread_id="t"))
    assert [r.purpose for r in backend.requests] == ["respond"]
    assert result.answer == "Hello! How can I help you today?"
