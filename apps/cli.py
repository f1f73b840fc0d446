"""The `mmagent` command line. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from apps.errors import UserError, one_line


def _settings(llm: str | None = None):
    from agent.config import load_settings

    return load_settings(llm=llm)


llm_option = click.option("--llm", "llm", metavar="SPEC", help="auto | bundled | hf:<repo-or-path> | openai:<model> | scripted:<file.jsonl>")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mmagent")
def cli() -> None:
    """mmagent: a graph-based multimodal agent."""


# ---------------------------------------------------------------- ask / chat


def _check_images(images: tuple[str, ...]) -> list[str]:
    refs = []
    for image in images:
        path = Path(image)
        if not path.is_file():
            raise UserError(f"image not found: {image}")
        refs.append(str(path.resolve()))
    return refs


def _progress(event: dict[str, Any]) -> None:
    """Steps on stderr while the answer is being worked out; the answer itself goes to stdout."""
    kind = event["type"]
    if kind == "plan":
        click.echo("plan:\n" + "\n".join(f"  {i}. {s}" for i, s in enumerate(event["steps"], 1)), err=True)
    elif kind == "tool_call":
        click.echo(f"→ {event['name']} {json.dumps(event['arguments'], ensure_ascii=False)}", err=True)
    elif kind == "tool_result":
        shown = event["result"] if event["ok"] else f"ERROR: {event['error']}"
        text = shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False, default=str)
        click.echo(f"← {event['name']}: {text[:300]}", err=True)
    elif kind == "reflection":
        click.echo(f"reflection: {event['text']}", err=True)


async def _ask(question: str, images: list[str], thread: str | None, llm: str | None, as_json: bool) -> int:
    from agent.runner import open_agent

    settings = _settings(llm)
    async with open_agent(settings, warm_up=True) as agent:
        result = await agent.arun(question, thread_id=thread, images=images, on_event=None if as_json else _progress)
    if as_json:
        click.echo(json.dumps(result.model_dump(), ensure_ascii=False, default=str))
    else:
        click.echo(result.answer)
    if result.error:
        if not as_json:
            click.echo(f"error: {one_line(result.error)}", err=True)
        return 1
    return 0


@cli.command()
@click.argument("question")
@click.option("--image", "images", multiple=True, metavar="PATH", help="Attach an image (repeatable).")
@click.option("--thread", metavar="ID", help="Continue this conversation thread.")
@llm_option
@click.option("--json", "as_json", is_flag=True, help='Print {"answer", "plan", "steps", "artifacts", ...} as JSON.')
def ask(question: str, images: tuple[str, ...], thread: str | None, llm: str | None, as_json: bool) -> None:
    """Ask one question and print the answer."""
    if not question.strip():
        raise UserError("the question is empty")
    sys.exit(asyncio.run(_ask(question, _check_images(images), thread, llm, as_json)))


@cli.command()
@click.option("--thread", metavar="ID", help="Continue this conversation thread.")
@llm_option
def chat(thread: str | None, llm: str | None) -> None:
    """Chat in the terminal (empty line or Ctrl-D to quit)."""
    asyncio.run(_chat(thread, llm))


async def _chat(thread: str | None, llm: str | None) -> None:
    from agent.runner import new_thread_id, open_agent

    settings = _settings(llm)
    thread = thread or new_thread_id()
    async with open_agent(settings, warm_up=True) as agent:
        click.echo(f"mmagent chat · model {agent.backend.spec} · thread {thread} · empty line to quit", err=True)
        while True:
            try:
                line = await asyncio.to_thread(input, "you> ")
            except EOFError:
                break
            if not line.strip():
                break
            result = await agent.arun(line, thread_id=thread, on_event=_progress)
            click.echo(f"mmagent> {result.answer}")


# ---------------------------------------------------------------- serve


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535))
@llm_option
def serve(host: str, port: int, llm: str | None) -> None:
    """Serve the web UI at / and the HTTP API at /v1 from one process."""
    from apps.server import serve as run_server

    _check_port_free(host, port)
    click.echo(f"mmagent serving on http://{host}:{port}/ (UI) and http://{host}:{port}/v1 (API)", err=True)
    run_server(_settings(llm), host=host, port=port, llm=llm)


def _check_port_free(host: str, port: int) -> None:
    """uvicorn logs a traceback-like error on a busy port; say it in one line instead."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- tools


@cli.group()
def tools() -> None:
    """List or call the built-in tools and those of the configured MCP servers."""


@tools.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the OpenAI function schemas (MCP tools with their `server`).")
def tools_list(as_json: bool) -> None:
    from agent.runner import open_tools
    from tools.mcp_tools import listing

    async def listed():
        async with open_tools(_settings()) as (registry, _, errors):
            return listing(registry), errors

    schemas, errors = asyncio.run(listed())
    for server, error in errors.items():
        if error:
            click.echo(f"warning: MCP server {server} is down: {one_line(error)}", err=True)
    if as_json:
        click.echo(json.dumps(schemas, ensure_ascii=False, indent=2))
        return
    for schema in schemas:
        function = schema["function"]
        where = f" [MCP server {schema['server']}]" if "server" in schema else ""
        click.echo(f"{function['name']}{where}: {(function['description'] or '').splitlines()[0] if function['description'] else ''}")


@tools.command("call")
@click.argument("name")
@click.option("--args", "args", default="{}", metavar="JSON", help="The tool's arguments as a JSON object.")
@click.option("--json", "as_json", is_flag=True, help='Print {"ok": true, "result": ...} or {"ok": false, "error": ...}.')
def tools_call(name: str, args: str, as_json: bool) -> None:
    """Call one tool directly."""
    from agent.runner import open_tools

    async def called():
        async with open_tools(_settings()) as (registry, _, _errors):
            return await registry.ainvoke(name, args)

    result = asyncio.run(called())
    if as_json:
        payload = {"ok": True, "result": result.result} if result.ok else {"ok": False, "error": result.error}
        if result.artifacts:
            payload["artifacts"] = result.artifacts
        click.echo(json.dumps(payload, ensure_ascii=False, default=str))
    elif result.ok:
        value = result.result
        click.echo(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str))
    else:
        click.echo(f"error: {one_line(result.error or 'tool failed')}", err=True)
    sys.exit(0 if result.ok else 1)


# ---------------------------------------------------------------- run (scripted task runs)

from apps.tasks import run_command  # noqa: E402 - registered here, defined in apps/tasks.py

cli.add_command(run_command)


# ---------------------------------------------------------------- eval (score suites of tasks)

from apps.eval.command import eval_command  # noqa: E402 - registered here, defined in apps/eval/command.py

cli.add_command(eval_command)


# ---------------------------------------------------------------- ingest (knowledge base)

from apps.ingest import ingest  # noqa: E402 - registered here, defined in apps/ingest.py

cli.add_command(ingest)


# ---------------------------------------------------------------- doctor


@cli.command()
@llm_option
@click.option("--json", "as_json", is_flag=True)
def doctor(llm: str | None, as_json: bool) -> None:
    """Show the LLM that would be used and why, devices, data folder and tools."""
    from apps.doctor import report

    info = report(_settings(llm))
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2, default=str))
        return
    for section, values in info.items():
        click.echo(f"{section}:")
        for key, value in values.items():
            click.echo(f"  {key}: {value}")


# ---------------------------------------------------------------- memory, threads, feedback

from apps.memory_cli import feedback as _feedback_command  # noqa: E402 - registered next to the others
from apps.memory_cli import memory as _memory_group  # noqa: E402

cli.add_command(_memory_group)
cli.add_command(_feedback_command)


# ---------------------------------------------------------------- mcp (serve our tools), trace (last run's spans)

from apps.mcp_cli import mcp_command, trace_command  # noqa: E402 - registered here, defined in apps/mcp_cli.py

cli.add_command(mcp_command)
cli.add_command(trace_command)


# ---------------------------------------------------------------- image (watermark check)

from apps.image_cli import image as _image_group  # noqa: E402 - defined in apps/image_cli.py

cli.add_command(_image_group)


# ---------------------------------------------------------------- entry point


def _configure_logging() -> None:
    level = logging.DEBUG if os.environ.get("MMAGENT_DEBUG") else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("agent", "tools", "memory", "multimodal", "apps"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)
        logger.propagate = False
    _mask_logs(handler)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _mask_logs(handler: logging.Handler) -> None:
    """Private data in log lines is masked (docs/safety.md) unless `safety.mask_pii` is off."""
    from memory.pii import install_log_masking

    try:
        enabled = _settings().safety.mask_pii
    except Exception:  # noqa: BLE001 - a broken config is reported by the command itself; mask meanwhile
        enabled = True
    install_log_masking([handler], enabled)


def main(argv: list[str] | None = None) -> None:
    _configure_logging()
    try:
        cli.main(args=argv, prog_name="mmagent", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that turns any failure into one line
        if os.environ.get("MMAGENT_DEBUG"):
            raise
        click.echo(f"error: {one_line(describe_error(exc))}", err=True)
        sys.exit(1)


def describe_error(exc: Exception) -> str:
    from pydantic import ValidationError

    from agent.llm.base import LLMError

    if isinstance(exc, (UserError, LLMError)):
        return str(exc)
    if isinstance(exc, ValidationError):
        from tools.registry import format_validation_error

        return f"invalid configuration: {format_validation_error(exc)}"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc} (set MMAGENT_DEBUG=1 for a traceback)"


if __name__ == "__main__":
    main()
