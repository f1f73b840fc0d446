"""OpenTelemetry traces of every run: a span for the run, each graph node, each model call
(tokens in and out) and each tool call (arguments, ok or error), with thread and user.

One `RunTracer` per app (its own TracerProvider, never the global one, so two apps in a
process, e.g. tests, keep their traces apart). Spans go to the OTLP exporter when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set (the variables the OTLP exporter itself reads); otherwise
each run is written as one JSON file under `data_dir/traces/<thread>/`, which
`mmagent trace THREAD` prints as a tree.

Nothing here is shared across users: the run's span, its thread and user, and its token
counts live in the run's `AgentContext`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Longest argument text put on a tool-call span.
MAX_ARGUMENT_CHARS = 2000
#: Runs whose root span never ended (a killed run) are dropped beyond this many.
MAX_OPEN_TRACES = 256
_SAFE_THREAD = re.compile(r"^(?!\.+$)[\w.-]{1,100}$")


class RunUsage:
    """Tokens of one run's model calls (per run, in its context; never shared)."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.calls = 0
        self._lock = threading.Lock()

    def add(self, prompt: int, completion: int) -> None:
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.calls += 1

    def as_openai(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def recorded_arguments(arguments: Any, mask: bool = True) -> str:
    """Tool arguments as put on a span, cut to a bounded size. With `_mask` the one place
    where private data is masked before a trace leaves the process."""
    try:
        text = json.dumps(arguments, ensure_ascii=False, default=str, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(arguments)
    text = _mask(text, mask)
    return text if len(text) <= MAX_ARGUMENT_CHARS else text[:MAX_ARGUMENT_CHARS] + "…"


def _mask(text: str, enabled: bool = True) -> str:
    # Every argument and error text a span records passes through here: traces go to files
    # and collectors that outlive the conversation, so private data is masked (safety.mask_pii).
    from memory.pii import mask_pii

    return mask_pii(text) if enabled else text


class RunTracer:
    """The app's tracer: OTLP when configured, else JSON files per run."""

    def __init__(self, settings: Any) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        self.settings = settings
        self.folder = Path(settings.data_dir) / "traces"
        self.provider = TracerProvider(resource=Resource.create({"service.name": "mmagent"}))
        self.exporter = "otlp" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "json"
        if self.exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            self.provider.add_span_processor(JsonRunWriter(self.folder, settings.tracing.keep_runs))
        self.tracer = self.provider.get_tracer("mmagent")
        self.record_arguments = settings.tracing.record_arguments

    @contextlib.contextmanager
    def run(self, *, thread_id: str, user_id: str, request: str, kind: str = "turn") -> Iterator[Any]:
        """The run's span, ended on exit; yields the OpenTelemetry Context its children use.
        Not made current: a run is an async generator, resumed in other contexts."""
        from opentelemetry import trace

        span = self.tracer.start_span(
            "run", attributes={"mmagent.thread_id": thread_id, "mmagent.user_id": user_id, "mmagent.run.kind": kind,
                               "mmagent.request.chars": len(request)},
        )
        start = time.perf_counter()
        try:
            yield trace.set_span_in_context(span)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            span.set_attribute("mmagent.seconds", round(time.perf_counter() - start, 4))
            span.end()

    def shutdown(self) -> None:
        try:
            self.provider.shutdown()
        except Exception as exc:  # noqa: BLE001 - an exporter failing at exit must not fail the app
            log.warning("tracing shutdown: %s", exc)


@contextlib.contextmanager
def span(ctx: Any, name: str, attributes: dict[str, Any] | None = None, parent: Any = None) -> Iterator[Any]:
    """A child span of the current one (or of `parent`), made current, with the run's thread
    and user; yields None when the run is not traced."""
    tracer: RunTracer | None = getattr(ctx, "tracer", None)
    if tracer is None:
        yield None
        return
    from opentelemetry import trace

    attrs = {"mmagent.thread_id": ctx.thread_id or ctx.session, "mmagent.user_id": ctx.user_id, **(attributes or {})}
    start = time.perf_counter()
    with tracer.tracer.start_as_current_span(name, context=parent, attributes=attrs, record_exception=False, set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            current.set_attribute("mmagent.seconds", round(time.perf_counter() - start, 4))


def traced(name: str, node):
    """A graph node whose every run is a span "node <name>" under the run's span."""

    @functools.wraps(node)
    async def wrapper(state, runtime):
        ctx = runtime.context
        with span(ctx, f"node {name}", {"mmagent.node": name}, parent=getattr(ctx, "trace_parent", None)):
            return await node(state, runtime)

    return wrapper


def model_call_attributes(current: Any, purpose: str, prompt: int, completion: int, estimated: bool) -> None:
    if current is None:
        return
    current.set_attribute("gen_ai.operation.name", "chat")
    current.set_attribute("mmagent.purpose", purpose)
    current.set_attribute("gen_ai.usage.input_tokens", prompt)
    current.set_attribute("gen_ai.usage.output_tokens", completion)
    current.set_attribute("mmagent.tokens_estimated", estimated)


def tool_call_attributes(current: Any, ctx: Any, arguments: Any, ok: bool, error: str | None) -> None:
    if current is None:
        return
    from opentelemetry import trace

    tracer = getattr(ctx, "tracer", None)
    settings = getattr(ctx, "settings", None)
    mask = settings.safety.mask_pii if settings is not None else True
    if tracer is not None and tracer.record_arguments:
        current.set_attribute("mmagent.tool.arguments", recorded_arguments(arguments, mask))
    current.set_attribute("mmagent.tool.ok", ok)
    if not ok:
        current.set_attribute("mmagent.tool.error", _mask(error or "", mask)[:MAX_ARGUMENT_CHARS])
        current.set_status(trace.StatusCode.ERROR, "tool failed")


# ---------------------------------------------------------------- JSON traces


class JsonRunWriter:
    """A span processor that writes each finished run (a root span and its descendants) as
    one JSON file: `<folder>/<thread>/<start time>-<trace id>.json`, newest `keep` per thread."""

    def __init__(self, folder: Path, keep: int) -> None:
        self.folder = folder
        self.keep = keep
        self._open: dict[int, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    # The SDK's SpanProcessor interface, duck-typed so that importing this module does not
    # import the SDK (graph.py imports `traced`; the CLI should start fast).
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        record = _span_record(span)
        trace_id = span.context.trace_id
        with self._lock:
            spans = self._open.setdefault(trace_id, [])
            spans.append(record)
            if span.parent is not None:
                if len(self._open) > MAX_OPEN_TRACES:
                    self._open.pop(next(iter(self._open)))
                return
            del self._open[trace_id]
        self._write(record, spans)

    def _write(self, root: dict[str, Any], spans: list[dict[str, Any]]) -> None:
        thread = str(root["attributes"].get("mmagent.thread_id", "unknown"))
        folder = self.folder / thread_folder(thread)
        payload = {
            "trace_id": root["trace_id"], "thread_id": thread, "user_id": root["attributes"].get("mmagent.user_id"),
            "seconds": root["seconds"], "spans": sorted(spans, key=lambda s: s["start"]),
        }
        try:
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{int(root['start'] * 1e6):020d}-{root['trace_id']}.json"
            tmp = folder / (name + ".tmp")
            tmp.write_text(json.dumps(payload, ensure_ascii=False, default=str), encoding="utf-8")
            tmp.replace(folder / name)
            for old in sorted(folder.glob("*.json"))[: -self.keep]:
                old.unlink(missing_ok=True)
        except OSError as exc:  # a full disk must not fail the user's run
            log.warning("could not write the trace of thread %s: %s", thread, exc)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _span_record(span: Any) -> dict[str, Any]:
    start, end = span.start_time or 0, span.end_time or span.start_time or 0
    return {
        "name": span.name,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent is not None else None,
        "start": start / 1e9,
        "seconds": round((end - start) / 1e9, 6),
        "status": span.status.status_code.name.lower(),
        "attributes": dict(span.attributes or {}),
    }


def thread_folder(thread_id: str) -> str:
    """A thread's folder name: the id itself when it is a safe file name, else its hash."""
    if _SAFE_THREAD.match(thread_id):
        return thread_id
    return "h-" + hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class TraceNotFound(LookupError):
    pass


def last_trace(settings: Any, thread_id: str) -> dict[str, Any]:
    """The last run's trace of a thread; raises TraceNotFound."""
    folder = Path(settings.data_dir) / "traces" / thread_folder(thread_id)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise TraceNotFound(f"no trace for thread {thread_id[:100]!r} under {folder.parent} (traces are written as runs finish)")
    return json.loads(files[-1].read_text(encoding="utf-8"))


def render_tree(trace: dict[str, Any]) -> str:
    """The trace as an indented tree: name, seconds, and what matters about each span."""
    spans = trace["spans"]
    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["span_id"] for s in spans}
    for s in spans:
        parent = s["parent_id"] if s["parent_id"] in ids else None
        children.setdefault(parent, []).append(s)
    lines = [f"trace {trace['trace_id']}  thread {trace['thread_id']}  user {trace.get('user_id')}  {trace['seconds']:.3f} s"]

    def walk(parent: str | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for i, s in enumerate(kids):
            last = i == len(kids) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{s['name']}  {s['seconds']:.3f} s{_details(s)}")
            walk(s["span_id"], prefix + ("   " if last else "│  "))

    walk(None, "")
    return "\n".join(lines)


def _details(s: dict[str, Any]) -> str:
    a = s["attributes"]
    parts = []
    if "gen_ai.usage.input_tokens" in a:
        approx = "~" if a.get("mmagent.tokens_estimated") else ""
        parts.append(f"tokens {approx}{a['gen_ai.usage.input_tokens']} in / {approx}{a['gen_ai.usage.output_tokens']} out")
    if "mmagent.tool.ok" in a:
        parts.append("ok" if a["mmagent.tool.ok"] else f"error: {a.get('mmagent.tool.error', '')[:120]}")
        if a.get("mmagent.tool.server"):
            parts.append(f"server {a['mmagent.tool.server']}")
        if "mmagent.tool.arguments" in a:
            parts.append(f"args {a['mmagent.tool.arguments'][:120]}")
    elif s["status"] == "error":
        parts.append("error")
    return ("  " + "  ".join(parts)) if parts else ""
