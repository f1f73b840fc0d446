"""`mmagent mcp` (our tools over MCP on stdio) and `mmagent trace THREAD` (the last run's spans)."""

from __future__ import annotations

import asyncio
import json

import click

from apps.errors import UserError


@click.command("mcp")
@click.option("--user", "user_id", default="local", show_default=True, metavar="ID", help="Whose memories the memory tools use.")
def mcp_command(user_id: str) -> None:
    """Serve the built-in tools to an MCP client over stdio (stdin/stdout)."""
    import re

    from agent.config import load_settings
    from apps.mcp_server import serve_stdio

    if not re.match(r"^(?!\.+$)[\w.@:+\-]{1,128}$", user_id):
        raise UserError("--user must be 1-128 letters, digits or . _ @ : + - (not dots alone)")
    asyncio.run(serve_stdio(load_settings(), user_id))


@click.command("trace")
@click.argument("thread")
@click.option("--json", "as_json", is_flag=True, help="Print the trace file (every span with its attributes).")
def trace_command(thread: str, as_json: bool) -> None:
    """Print the last run of THREAD as a tree of spans with timings."""
    from agent.config import load_settings
    from agent.tracing import TraceNotFound, last_trace, render_tree

    try:
        trace = last_trace(load_settings(), thread)
    except TraceNotFound as exc:
        raise UserError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"the trace of thread {thread[:100]!r} cannot be read: {exc}") from None
    click.echo(json.dumps(trace, ensure_ascii=False, indent=2) if as_json else render_tree(trace))
