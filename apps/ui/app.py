"""The Gradio page: chat, knowledge base, memory and settings.

Built once per server. Handlers get the shared services (agent, settings) through
`get_services` and the visitor from the browser's own storage (`session`), so every browser
profile is its own user with its own threads and memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from apps.ui import panels
from apps.ui.approvals import Approvals
from apps.ui.chat import describe, run_turn, save_uploads
from apps.ui.chat_view import gallery_items, history_messages
from apps.ui.session import ensure, new_id, user_key

CSS = "#chat {flex-grow: 1}"


def build_ui(get_services: Callable[[], Any], tool_names: list[str]) -> gr.Blocks:
    approvals = Approvals()

    with gr.Blocks(title="mmagent", fill_height=True) as demo:
        session = gr.BrowserState({}, storage_key="mmagent-session")
        gallery_state = gr.State([])

        with gr.Sidebar(open=True):
            gr.Markdown("## mmagent")
            new_chat = gr.Button("➕ New chat", elem_id="new-chat")
            threads = gr.Dropdown(label="Your chats", choices=[], value=None, interactive=True, elem_id="threads")

        with gr.Tab("Chat", elem_id="tab-chat"):
            chatbot = gr.Chatbot(elem_id="chat", label="mmagent", height=520, feedback_options=("Like", "Dislike"), buttons=["copy"])
            with gr.Row(visible=False, elem_id="approval") as approval_row:
                gr.Markdown("The agent asks to generate an image.")
                approve_btn = gr.Button("Approve", variant="primary", elem_id="approve")
                deny_btn = gr.Button("Deny", variant="stop", elem_id="deny")
            box = gr.MultimodalTextbox(
                elem_id="input", file_types=["image"], file_count="multiple", sources=["upload"],
                placeholder="Ask something, or attach an image…", show_label=False, autofocus=True,
            )
            gallery = gr.Gallery(label="Images", elem_id="gallery", columns=4, height=220)

        with gr.Tab("Knowledge", elem_id="tab-knowledge"):
            knowledge = panels.knowledge_panel()
        with gr.Tab("Memory", elem_id="tab-memory"):
            memory = panels.memory_panel()
        with gr.Tab("Settings", elem_id="tab-settings"):
            model_info = gr.Markdown(elem_id="model-info")
            tools_on = gr.CheckboxGroup(tool_names, value=tool_names, label="Tools the agent may use", elem_id="tools-on")
            approval_on = gr.Checkbox(label="Ask me before generating an image", value=False, elem_id="approval-on")

        # ------------------------------------------------------------ session and threads

        async def on_load(state):
            state = ensure(state)
            services = get_services()
            chat = await _thread_messages(services, state)
            # The agent may add tools of its own (e.g. memory tools, MCP servers' tools, which
            # start here on first need) to the registry it was given.
            await services.agent.ready_tools()
            names = services.agent.registry.names()
            tools = gr.update(choices=names, value=names)
            return state, await _thread_choices(services, state), chat, panels.describe_model(services), tools

        demo.load(on_load, [session], [session, threads, chatbot, model_info, tools_on], api_visibility="undocumented")

        async def on_new_chat(state):
            state = ensure(state)
            state["thread_id"] = new_id()
            return state, [], [], [], gr.update(value=None)

        new_chat.click(on_new_chat, [session], [session, chatbot, gallery, gallery_state, threads], api_visibility="undocumented")

        async def on_pick_thread(thread_id, state):
            state = ensure(state)
            if not thread_id or thread_id == state["thread_id"]:
                return state, gr.skip()
            state["thread_id"] = thread_id
            return state, await _thread_messages(get_services(), state)

        threads.input(on_pick_thread, [threads, session], [session, chatbot], api_visibility="undocumented")

        # ------------------------------------------------------------ chat

        async def on_submit(message, chat, state, shown, enabled, ask_first):
            state = ensure(state)
            message = message or {}
            text = (message.get("text") or "").strip()
            files = message.get("files") or []
            if not text and not files:
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), state, gr.skip()
                return
            services = get_services()
            images, errors = save_uploads(services.settings, files)
            chat = list(chat or [])
            if errors:
                chat.append({"role": "assistant", "content": "⚠️ " + "; ".join(errors)})
                if not text and not images:
                    yield chat, None, gr.skip(), gr.skip(), gr.update(visible=False), state, gr.skip()
                    return
            messages, items = chat, list(shown or [])
            async for view in run_turn(
                services, approvals, state, text, images, chat, tools=list(enabled or []), approval_on=bool(ask_first)
            ):
                messages, items = view.messages, list(shown or []) + gallery_items([*images, *view.artifacts])
                waiting = approvals.pending(user_key(state), state["thread_id"])
                yield messages, None, items, items, gr.update(visible=waiting), state, gr.skip()
            # The last update carries everything, so API clients (gradio_client) get the whole turn.
            choices = await _thread_choices(services, state)
            yield messages, None, items, items, gr.update(visible=False), state, choices

        box.submit(
            on_submit,
            [box, chatbot, session, gallery_state, tools_on, approval_on],
            [chatbot, box, gallery, gallery_state, approval_row, session, threads],
            api_name="chat",
            concurrency_limit=None,  # visitors must not queue behind each other; the model backend serialises itself
        )

        def answer(approved: bool):
            def on_click(state):
                state = ensure(state)
                approvals.answer(user_key(state), state["thread_id"], approved)
                return gr.update(visible=False)

            return on_click

        approve_btn.click(answer(True), [session], [approval_row], concurrency_limit=None, api_visibility="undocumented")
        deny_btn.click(answer(False), [session], [approval_row], concurrency_limit=None, api_visibility="undocumented")

        async def on_like(data: gr.LikeData, state):
            state = ensure(state)
            services = get_services()
            try:
                await services.agent.feedback(state["thread_id"], user_key(state), bool(data.liked))
            except Exception as exc:  # noqa: BLE001 - feedback must never break the chat
                gr.Warning(f"Feedback not saved: {describe(exc)}")
                return
            gr.Info("Thanks: noted." if data.liked else "Noted: the agent will reflect on what went wrong.")

        chatbot.like(on_like, [session], None, api_visibility="undocumented")

        panels.wire_knowledge(knowledge, session, get_services)
        panels.wire_memory(memory, session, get_services)

    return demo


async def _thread_messages(services, state) -> list[dict[str, Any]]:
    try:
        return history_messages(await services.agent.history(state["thread_id"], user_id=user_key(state)))
    except (KeyError, PermissionError):  # a new thread, or not this visitor's
        return []


async def _thread_choices(services, state):
    listed = await services.agent.list_threads(user_key(state))
    choices = [(f"{t.get('title') or '(untitled)'}"[:60], t["id"]) for t in listed]
    current = state["thread_id"] if any(t["id"] == state["thread_id"] for t in listed) else None
    return gr.update(choices=choices, value=current)
