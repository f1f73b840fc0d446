"""`mmagent memory ...` (memories, reflection notes, threads) and `mmagent feedback`.

Housekeeping commands open the stores only, never a model; `feedback` opens the agent because a
thumbs down makes the model write a reflection. Errors are one line and a non-zero exit (the
`mmagent` entry point formats them).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from apps.errors import UserError

user_option = click.option("--user", "user_id", default="local", show_default=True, metavar="ID", help="Whose items.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
notes_option = click.option("--notes", "notes", is_flag=True, help="Reflection notes instead of memories.")


def _settings(llm: str | None = None):
    from agent.config import load_settings

    return load_settings(llm=llm)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _memory(settings):
    from agent.runner import open_memory
    from multimodal.text_embeddings import SentenceEncoder

    return open_memory(settings, SentenceEncoder())  # the encoder loads only if a command embeds


@asynccontextmanager
async def _housekeeping_agent(settings) -> AsyncIterator[Any]:
    """An Agent over the thread database with no model: for listing, export, delete, prune."""
    from agent.llm.base import ChatBackend, LLMError
    from agent.runner import Agent
    from memory.threads import open_threads
    from tools.registry import ToolRegistry

    class NoModel(ChatBackend):
        spec = "none"

        async def complete(self, request, *, on_token=None, session="default"):
            raise LLMError("this command does not use a model")

    async with open_threads(settings.threads_db) as (saver, catalog):
        yield Agent(settings, NoModel(), ToolRegistry(), None, saver, threads=catalog)


def _run(coro) -> Any:
    from memory.threads import ThreadError

    try:
        return asyncio.run(coro)
    except ThreadError as exc:
        raise UserError(str(exc)) from None


# ---------------------------------------------------------------- memories and notes


@click.group("memory")
def memory() -> None:
    """Long-term memories, reflection notes and conversation threads."""


@memory.command("list")
@user_option
@notes_option
@json_option
def memory_list(user_id: str, notes: bool, as_json: bool) -> None:
    """List a user's memories (or reflection notes), newest first."""
    items = _run(_memory(_settings()).list("note" if notes else "memory", user_id))
    _print_items(items, as_json)


@memory.command("search")
@click.argument("query")
@user_option
@notes_option
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 100))
@json_option
def memory_search(query: str, user_id: str, notes: bool, k: int, as_json: bool) -> None:
    """Search a user's memories (or notes, by task) by meaning."""
    if not query.strip():
        raise UserError("the query is empty")
    items = _run(_memory(_settings()).search("note" if notes else "memory", user_id, query, k))
    _print_items(items, as_json)


@memory.command("delete")
@click.argument("item_id")
@user_option
def memory_delete(item_id: str, user_id: str) -> None:
    """Delete one memory or note by id."""
    gone = _run(_memory(_settings()).delete(user_id, item_id))
    if gone is None:
        raise UserError(f"user {user_id!r} has no memory or note with id {item_id!r}")
    click.echo(f"deleted {gone.kind} {gone.id}: {gone.text}")


@memory.command("export")
@user_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
def memory_export(user_id: str, output: Path | None) -> None:
    """Everything long-term memory stores for a user (memories and reflection notes) as JSON,
    exactly as stored: private data shows as [email], [phone], ... when masking is on."""

    async def go():
        store = _memory(_settings())
        return {
            "user": user_id,
            "memories": [m.public() for m in await store.list("memory", user_id)],
            "notes": [n.public() for n in await store.list("note", user_id)],
        }

    text = json.dumps(_run(go()), ensure_ascii=False, indent=2, default=str)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


def _print_items(items: list, as_json: bool) -> None:
    if as_json:
        _echo_json([i.public() for i in items])
        return
    for item in items:
        score = f" ({item.score:.2f})" if item.score is not None else ""
        task = f"  [task: {item.task}; {item.outcome}]" if item.kind == "note" else ""
        click.echo(f"{item.id}  {_when(item.created_at)}{score}  {item.text}{task}")


# ---------------------------------------------------------------- threads


@memory.group("threads")
def threads() -> None:
    """List, export, delete and prune conversation threads."""


@threads.command("list")
@user_option
@click.option("--all-users", is_flag=True, help="Every user's threads (administrators).")
@json_option
def threads_list(user_id: str, all_users: bool, as_json: bool) -> None:
    """A user's threads, most recently updated first."""

    async def go():
        async with _housekeeping_agent(_settings()) as agent:
            if all_users:
                return [{**t.public(), "user_id": t.user_id} for t in await agent.threads.list(None)]
            return await agent.list_threads(user_id)

    listed = _run(go())
    if as_json:
        _echo_json(listed)
        return
    for t in listed:
        owner = f"  user={t['user_id']}" if all_users else ""
        click.echo(f"{t['id']}  {t['updated_at']}  {t['messages']:>4} msgs{owner}  {t['title'][:60]}")


@threads.command("export")
@click.argument("thread_id")
@user_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
def threads_export(thread_id: str, user_id: str, output: Path | None) -> None:
    """Export one thread as JSON."""

    async def go():
        async with _housekeeping_agent(_settings()) as agent:
            return await agent.export_thread(thread_id, user_id)

    text = json.dumps(_run(go()), ensure_ascii=False, indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


@threads.command("delete")
@click.argument("thread_id")
@user_option
def threads_delete(thread_id: str, user_id: str) -> None:
    """Delete one thread and all its checkpoints."""

    async def go():
        async with _housekeeping_agent(_settings()) as agent:
            await agent.delete_thread(thread_id, user_id)

    _run(go())
    click.echo(f"deleted thread {thread_id}")


@threads.command("prune")
@click.option("--max-age-days", type=click.FloatRange(min=0, min_open=True), help="Override memory.max_thread_age_days.")
@click.option("--max-threads", type=click.IntRange(min=1), help="Override memory.max_threads.")
@json_option
def threads_prune(max_age_days: float | None, max_threads: int | None, as_json: bool) -> None:
    """Delete threads past the retention limits, keep only each thread's latest checkpoint, VACUUM."""
    settings = _settings()
    overrides = {k: v for k, v in {"max_thread_age_days": max_age_days, "max_threads": max_threads}.items() if v is not None}
    settings = settings.model_copy(update={"memory": settings.memory.model_copy(update=overrides)})

    async def go():
        before = _size(settings.threads_db)
        async with _housekeeping_agent(settings) as agent:
            report = await agent.prune_threads(vacuum=True)
        return {**report, "bytes_before": before, "bytes_after": _size(settings.threads_db)}

    report = _run(go())
    if as_json:
        _echo_json(report)
    else:
        click.echo(
            f"deleted {report['deleted']} threads, {report['checkpoints_removed']} old checkpoints; "
            f"{report['bytes_before']:,} → {report['bytes_after']:,} bytes"
        )


def _size(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


# ---------------------------------------------------------------- feedback


@click.command("feedback")
@click.argument("thread_id")
@click.option("--good/--bad", "good", required=True, help="Thumbs up or down on the thread's last answer.")
@click.option("--comment", metavar="TEXT", help="What was wrong (helps the reflection).")
@user_option
@click.option("--llm", "llm", metavar="SPEC", help="The model that writes the reflection on --bad.")
def feedback(thread_id: str, good: bool, comment: str | None, user_id: str, llm: str | None) -> None:
    """Rate a thread's last answer; --bad makes the agent write a reflection note."""

    async def go():
        from agent.runner import open_agent

        async with open_agent(_settings(llm)) as agent:
            return await agent.feedback(thread_id, user_id, good, comment)

    note = _run(go())
    if note:
        click.echo(f"noted; reflection {note['id']}: {note['text']}")
    else:
        click.echo("noted")
    sys.exit(0)
