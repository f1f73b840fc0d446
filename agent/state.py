"""Typed graph state and the run-scoped context the nodes receive.

The state holds only plain data (messages, strings, lists, dicts) so that checkpoints can be
read back with strict msgpack deserialisation. Images travel as references (artifact id or
path), never as base64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from agent.config import Settings
from agent.llm.base import ChatBackend
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from agent.safety import SafetyGuard
    from agent.tool_router import ToolRouter
    from memory.long_term import LongTermMemory


class AgentState(TypedDict, total=False):
    # The conversation across turns: user, assistant (with tool calls) and tool messages.
    messages: Annotated[list[AnyMessage], add_messages]
    # Per turn (reset by the input of each new turn):
    request: str
    images: list[str]
    plan: list[str]
    plan_start: int  # the act round at which the current plan (or replan) began
    steps: int  # act rounds taken
    reflections: list[str]  # reflection notes written in this turn
    step_log: list[dict[str, Any]]  # one entry per tool call: tool, arguments, ok, result/error
    artifacts: list[dict[str, Any]]
    called_ok: list[str]  # tools that succeeded this turn (the router does not offer them again)
    last_round_failed: bool
    bad_arguments: dict[str, str]  # tool_call_id -> raw arguments that were not JSON
    draft: str  # an answer the act step produced without calling tools
    error: str | None  # a model failure that ends the turn
    answer: str
    refusal: str  # set by guard_input when moderation flags the request: the answer, no model call
    memories: list[str]  # what long-term memory recalled about the user for this request
    lessons: list[str]  # reflection notes from earlier tasks/trials, for the plan
    task_type: str  # the task's type when a task file gives one (notes are also retrieved by type)
    # Across turns: the running summary of turns trimmed from the prompt, and the id of the
    # last message it covers.
    summary: str
    summary_upto: str


def new_turn(request: str, images: list[str] | None = None, lessons: list[str] | None = None, task_type: str = "") -> dict[str, Any]:
    """The graph input for a new user turn: resets every per-turn field."""
    from agent.prompts import user_message_text
    from langchain_core.messages import HumanMessage

    images = list(images or [])
    return {
        "messages": [HumanMessage(content=user_message_text(request, images))],
        "request": request,
        "images": images,
        "plan": [],
        "plan_start": 0,
        "steps": 0,
        "reflections": [],
        "step_log": [],
        "artifacts": [],
        "called_ok": [],
        "last_round_failed": False,
        "bad_arguments": {},
        "draft": "",
        "error": None,
        "answer": "",
        "refusal": "",
        "memories": [],
        "lessons": list(lessons or []),
        "task_type": task_type,
    }


@dataclass(frozen=True)
class TurnOptions:
    """Run options for programmatic callers (Reflexion trials, task runs); chat needs none."""

    session: str | None = None  # backend session key (default: the thread id); trials share one
    lessons: tuple[str, ...] | list[str] = ()  # reflections to plan with, besides retrieved notes
    task_type: str = ""
    self_evaluate: bool = True  # the chat self-evaluation after the turn (trials evaluate themselves)


@dataclass(frozen=True)
class AgentContext:
    """What the nodes need besides the state; passed per run, so nothing is global."""

    settings: Settings
    backend: ChatBackend
    registry: ToolRegistry
    router: "ToolRouter | None"
    session: str = "default"  # keys per-conversation backend state: the thread id unless a caller groups runs
    user_id: str = "local"  # whose memories and files this run may touch
    memory: "LongTermMemory | None" = None  # per-user memories and notes (None: no long-term memory)
    thread_id: str = ""  # the thread, when it differs from the session
    needs_approval: frozenset[str] = frozenset()  # tools the person must approve before they run
    approve: Any = None  # async (tool name, arguments) -> bool, from the UI
    tracer: Any = None  # agent.tracing.RunTracer of the app (None: not traced)
    trace_parent: Any = None  # the OpenTelemetry Context of this run's span: nodes are its children
    usage: Any = None  # agent.tracing.RunUsage: this run's tokens, summed over its model calls
    safety: "SafetyGuard | None" = None  # moderation of requests and answers (None: off)

    def tool_context(self, request: str = ""):
        from tools.registry import ToolContext

        return ToolContext(
            user_id=self.user_id, thread_id=self.thread_id or self.session, settings=self.settings,
            needs_approval=self.needs_approval, approve=self.approve, request=request,
        )

    @property
    def policy(self) -> str:
        policy = self.settings.routing.policy
        if policy == "auto":
            return "model" if self.backend.chooses_tools else "router"
        return policy
