"""The agent graph. Read it top to bottom: (guard_input → recall →) plan → act → observe → reflect → respond.

    START → guard_input → recall → plan → act ─┬─(tool calls)──→ observe ─┬─(more to do)────→ act
              │                    (or route)  │                          │
              │                                │                          ├─(tool failed /
              │                                │                          │  plan ran out)──→ reflect → act
              │                                │                          └─(step limit /
              │                                │                             repeated call)─→ respond
              │                                └─(answer / nothing to call)─────────────────→ respond → END
              └─(flagged request: refusal)──────────────────────────────────────────────────→ respond

guard_input moderates the request before any model sees it (agent/safety.py: harmful requests,
prompt injection, jailbreaks, system-prompt extraction); respond passes the final answer through
`guard_output` (system-prompt text cut out, a flagged answer withheld).

recall brings long-term memory into the turn (user memories, reflection notes); it calls no model.
For a small base model (agent/weak_model.py) `route` replaces plan (the router's decision is the
plan) and reflection needs no model call; act and respond switch to few-shot prompts.

A model failure in any node sets `error` and goes straight to respond, which says so.
Every node run is a span of the run's trace (agent/tracing.py).
"""

from __future__ import annotations

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Checkpointer

from agent.node_guard import after_guard_input, guard_input
from agent.nodes import act, observe, plan, recall, reflect, repeated_call, respond
from agent.state import AgentContext, AgentState
from agent.tracing import traced
from agent.weak_model import reflect_on_failure, route, uses_weak_model


def planner(state: AgentState, runtime) -> str:
    return "route" if uses_weak_model(runtime.context) else "plan"


def after_plan(state: AgentState) -> str:
    return "respond" if state.get("error") else "act"


def after_act(state: AgentState) -> str:
    last = state["messages"][-1]
    if not state.get("error") and isinstance(last, AIMessage) and last.tool_calls:
        return "observe"
    return "respond"


def after_observe(state: AgentState, runtime, max_steps: int, max_reflections: int, max_repeated_calls: int) -> str:
    steps = state.get("steps", 0)
    if steps >= max_steps or repeated_call(state, max_repeated_calls):
        return "respond"
    can_reflect = len(state.get("reflections", [])) < max_reflections
    plan_ran_out = steps - state.get("plan_start", 0) > len(state.get("plan", []))
    if can_reflect and (state.get("last_round_failed") or plan_ran_out):
        return "reflect_on_failure" if uses_weak_model(runtime.context) else "reflect"
    return "act"


def build_graph(settings_limits=None, checkpointer: Checkpointer = None):
    """Compile the graph. Limits come from settings; per-run dependencies come in the context."""
    from agent.config import Limits

    limits = settings_limits or Limits()
    graph = StateGraph(AgentState, context_schema=AgentContext)
    nodes = {
        "guard_input": guard_input, "recall": recall, "plan": plan, "route": route, "act": act, "observe": observe,
        "reflect": reflect, "reflect_on_failure": reflect_on_failure, "respond": respond,
    }
    for name, node in nodes.items():
        graph.add_node(name, traced(name, node))  # each node run is a span of the run's trace

    graph.add_edge(START, "guard_input")
    graph.add_conditional_edges("guard_input", after_guard_input, ["recall", "respond"])
    graph.add_conditional_edges("recall", planner, ["plan", "route"])
    graph.add_conditional_edges("plan", after_plan, ["act", "respond"])
    graph.add_edge("route", "act")
    graph.add_conditional_edges("act", after_act, ["observe", "respond"])
    graph.add_conditional_edges(
        "observe",
        lambda s, runtime: after_observe(s, runtime, limits.max_steps, limits.max_reflections, limits.max_repeated_calls),
        ["act", "reflect", "reflect_on_failure", "respond"],
    )
    graph.add_conditional_edges("reflect", after_plan, ["act", "respond"])
    graph.add_edge("reflect_on_failure", "act")
    graph.add_edge("respond", END)
    return graph.compile(checkpointer=checkpointer)


def recursion_limit(max_steps: int) -> int:
    """LangGraph's own limit, set above ours so users get our graceful stop, never GraphRecursionError."""
    return 4 * max_steps + 10
