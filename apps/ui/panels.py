"""The side panels: knowledge base, memory and reflection notes, and what runs where.

Each panel is built by one function and wired by another, so the page layout (app.py) reads
at a glance. Every handler turns a failure into a readable message in the panel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from apps.ui.chat import describe, file_path
from apps.ui.session import ensure, user_key

DOCUMENT_TYPES = [".txt", ".md", ".html", ".htm", ".pdf", ".docx"]


def describe_model(services) -> str:
    from multimodal.devices import device_report

    backend = services.agent.backend
    details = ", ".join(f"{k}: {v}" for k, v in backend.describe().items() if k != "spec")
    devices = device_report()
    gpus = ", ".join(str(g) for g in devices.get("gpus") or []) or "none"
    return (
        f"**Model**: `{backend.spec}`" + (f" ({details})" if details else "") + "  \n"
        f"**Device for local models**: {devices.get('auto_device')} ({devices.get('auto_dtype')}); GPUs: {gpus}  \n"
        f"**Data folder**: `{services.settings.data_dir}`"
    )


# ---------------------------------------------------------------- knowledge


@dataclass
class KnowledgePanel:
    files: gr.File
    ingest: gr.Button
    report: gr.Markdown
    sources: gr.Dataframe
    refresh: gr.Button


def knowledge_panel() -> KnowledgePanel:
    gr.Markdown("Documents you add here are yours: the agent searches them for your questions only.")
    files = gr.File(label="Add documents", file_count="multiple", file_types=DOCUMENT_TYPES, elem_id="kb-files")
    ingest = gr.Button("Add to knowledge base", elem_id="kb-ingest")
    report = gr.Markdown(elem_id="kb-report")
    sources = gr.Dataframe(headers=["source", "chunks"], label="Your documents", interactive=False, elem_id="kb-sources")
    refresh = gr.Button("Refresh list", size="sm")
    return KnowledgePanel(files, ingest, report, sources, refresh)


def wire_knowledge(panel: KnowledgePanel, session: gr.BrowserState, get_services: Callable[[], Any]) -> None:
    async def list_sources(state):
        state = ensure(state)
        services = get_services()
        try:
            rows = await services.knowledge_sources(user_key(state))
        except Exception as exc:  # noqa: BLE001
            gr.Warning(describe(exc))
            return gr.skip()
        return [[r["source"], r.get("chunks", "")] for r in rows]

    async def ingest(files, state):
        state = ensure(state)
        services = get_services()
        if not files:
            return "Choose one or more files first.", gr.skip(), None
        try:
            report = await services.ingest_documents(user_key(state), [file_path(f) for f in files])
        except Exception as exc:  # noqa: BLE001
            return f"⚠️ {describe(exc)}", gr.skip(), None
        return report, await list_sources(state), None

    panel.ingest.click(ingest, [panel.files, session], [panel.report, panel.sources, panel.files])
    panel.refresh.click(list_sources, [session], [panel.sources])


# ---------------------------------------------------------------- memory


@dataclass
class MemoryPanel:
    memories: gr.Dataframe
    notes: gr.Dataframe
    refresh: gr.Button
    delete_id: gr.Textbox
    delete: gr.Button
    status: gr.Markdown


def memory_panel() -> MemoryPanel:
    gr.Markdown("What the agent remembers about you, and the notes it wrote after answers that went wrong.")
    memories = gr.Dataframe(headers=["id", "memory"], label="Memories", interactive=False, elem_id="mem-list")
    notes = gr.Dataframe(headers=["id", "task", "reflection"], label="Reflection notes", interactive=False, elem_id="notes-list")
    refresh = gr.Button("Refresh", size="sm", elem_id="mem-refresh")
    with gr.Row():
        delete_id = gr.Textbox(label="Delete by id", scale=3, elem_id="mem-delete-id")
        delete = gr.Button("Delete", variant="stop", scale=1, elem_id="mem-delete")
    status = gr.Markdown()
    return MemoryPanel(memories, notes, refresh, delete_id, delete, status)


def wire_memory(panel: MemoryPanel, session: gr.BrowserState, get_services: Callable[[], Any]) -> None:
    async def show(state):
        state = ensure(state)
        agent = get_services().agent
        user = user_key(state)
        try:
            memories = [[m["id"], m["text"]] for m in await agent.memories(user)]
            notes = [[n["id"], n.get("task", ""), n["text"]] for n in await agent.notes(user)]
        except Exception as exc:  # noqa: BLE001
            return gr.skip(), gr.skip(), f"⚠️ {describe(exc)}"
        return memories, notes, ""

    async def delete(item_id, state):
        state = ensure(state)
        item_id = (item_id or "").strip()
        if not item_id:
            return gr.skip(), gr.skip(), "Type the id of a memory or note to delete."
        try:
            deleted = await get_services().agent.forget(user_key(state), item_id)
        except Exception as exc:  # noqa: BLE001
            return gr.skip(), gr.skip(), f"⚠️ {describe(exc)}"
        memories, notes, _ = await show(state)
        return memories, notes, "Deleted." if deleted else f"No memory or note with id {item_id} is yours."

    panel.refresh.click(show, [session], [panel.memories, panel.notes, panel.status])
    panel.delete.click(delete, [panel.delete_id, session], [panel.memories, panel.notes, panel.status])
