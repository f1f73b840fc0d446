"""Per-step overhead of mmagent's graph vs LangGraph's prebuilt ReAct agent, same scripted model.

Both agents get an instant scripted model and the same instant tool, so the time measured is
the graphs' own work per model step (state updates, checkpoints, message handling, events).
Each turn is R tool rounds then an answer. mmagent also plans (one more model call), so the
figure compared is seconds per model call, over many turns; both use an in-memory checkpointer.

    python bench/graph_overhead.py [--turns 100] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import create_react_agent
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", message="create_react_agent has been moved")

from agent.config import Settings  # noqa: E402
from agent.llm.scripted import ScriptedBackend  # noqa: E402
from agent.runner import Agent  # noqa: E402
from tests.conftest import call, calls, say, write_script  # noqa: E402
from tools.registry import Tool, ToolRegistry  # noqa: E402


class AddArgs(BaseModel):
    a: int
    b: int


def add(a: int, b: int) -> int:
    return a + b


class ToolFakeModel(GenericFakeChatModel):
    """The prebuilt agent binds tools; the fake model ignores them and replays its messages."""

    def bind_tools(self, tools, **kwargs):
        return self


def prebuilt_messages(rounds: int, turns: int):
    for t in range(turns):
        for r in range(rounds):
            yield AIMessage(content="", tool_calls=[{"id": f"c{t}_{r}", "name": "add", "args": {"a": r, "b": 1}}])
        yield AIMessage(content="done")


async def time_prebuilt(rounds: int, turns: int) -> float:
    tool = Tool("add", "Add two integers.", AddArgs, add).as_langchain()
    model = ToolFakeModel(messages=prebuilt_messages(rounds, turns))
    agent = create_react_agent(model, [tool], checkpointer=InMemorySaver())
    start = time.perf_counter()
    for t in range(turns):
        await agent.ainvoke({"messages": [("user", f"turn {t}")]}, {"configurable": {"thread_id": f"p{t}"}})
    return time.perf_counter() - start


async def time_mmagent(rounds: int, turns: int, folder: Path) -> float:
    turn = [say("1. Add\n2. Answer")]
    turn += [calls(call("add", {"a": r, "b": 1}, f"c{r}")) for r in range(rounds)]
    turn.append(say("done"))
    script = write_script(folder / "script.jsonl", *turn)
    settings = Settings(limits={"max_steps": rounds + 2, "max_reflections": 0})
    registry = ToolRegistry([Tool("add", "Add two integers.", AddArgs, add)])
    agent = Agent(settings, ScriptedBackend(script), registry, None, InMemorySaver())
    start = time.perf_counter()
    for t in range(turns):
        result = await agent.arun(f"turn {t}", thread_id=f"m{t}")  # a fresh thread replays the script
        assert result.answer == "done" and len(result.steps) == rounds, result
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    prebuilt_calls = args.rounds + 1  # tool rounds + answer
    ours_calls = args.rounds + 2  # + plan
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(time_prebuilt(args.rounds, 3))  # warm imports and caches for both
        asyncio.run(time_mmagent(args.rounds, 3, Path(tmp)))
        prebuilt, ours = [], []
        for _ in range(args.repeats):
            prebuilt.append(asyncio.run(time_prebuilt(args.rounds, args.turns)) / (args.turns * prebuilt_calls))
            ours.append(asyncio.run(time_mmagent(args.rounds, args.turns, Path(tmp))) / (args.turns * ours_calls))
    p, o = statistics.median(prebuilt), statistics.median(ours)
    print(f"turns={args.turns} tool rounds/turn={args.rounds} repeats={args.repeats} (median)")
    print(f"{'agent':<28}{'ms per model step':>20}")
    print(f"{'langgraph prebuilt ReAct':<28}{p * 1000:>20.2f}")
    print(f"{'mmagent graph':<28}{o * 1000:>20.2f}")
    print(f"ratio mmagent/prebuilt: {o / p:.2f}")


if __name__ == "__main__":
    main()
