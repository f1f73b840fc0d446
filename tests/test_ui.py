"""The web UI in a real browser (Debian's Chromium, headless) against a real `mmagent serve`."""

from __future__ import annotations

import pytest

from tests.conftest import call, calls, say, write_script
from tests.ui_server import browser, running_server  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.slow

QUESTION = "What is 6*7?"
ANSWER = "6 times 7 is 42."
CHAT_TEXT = "document.querySelector('#chat').innerText"


def scripted_server(tmp_path_factory, name: str, *messages):
    """A server whose scripted model replays `messages` from the top in every new thread
    (each visitor's chat)."""
    tmp = tmp_path_factory.mktemp(name)
    script = write_script(tmp / "script.jsonl", *messages)
    with running_server(tmp, f"scripted:{script}") as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from scripted_server(
        tmp_path_factory, "ui",
        say("1. Compute 6*7 with the calculator"),
        calls(call("calculator", {"expression": "6*7"})),
        say(ANSWER),
    )


def open_page(browser, url):
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_selector("#input textarea", timeout=60_000)
    return context, page


def send(page, text: str) -> None:
    page.fill("#input textarea", text)
    page.keyboard.press("Enter")


def wait_for_text(page, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function(f"{CHAT_TEXT}.includes({text!r})", timeout=timeout)


def test_a_message_streams_its_steps_and_the_answer(browser, server):
    context, page = open_page(browser, server)
    send(page, QUESTION)
    wait_for_text(page, ANSWER)
    chat = page.inner_text("#chat")
    assert QUESTION in chat
    assert "Plan" in chat and "calculator" in chat  # collapsible steps above the answer
    assert chat.index("calculator") < chat.index(ANSWER)
    page.get_by_text("calculator").first.click()  # open the step: the tool's real result is there
    page.wait_for_function(f"{CHAT_TEXT}.includes('42')")
    context.close()


def test_an_uploaded_image_shows_in_the_chat(browser, server, tmp_path):
    from PIL import Image

    picture = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (220, 30, 30)).save(picture)
    context, page = open_page(browser, server)
    page.set_input_files("#input input[type=file]", str(picture))
    page.wait_for_selector("#input img, #input .thumbnail-item", timeout=30_000)
    send(page, "What colour is this?")
    wait_for_text(page, ANSWER)
    assert page.locator("#chat img").count() >= 1
    context.close()


def test_a_file_that_is_not_an_image_gets_a_readable_message(browser, server, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is not a picture")
    context, page = open_page(browser, server)
    page.set_input_files("#input input[type=file]", str(fake))
    send(page, "What is this?")
    wait_for_text(page, "fake.png")
    assert "Traceback" not in page.inner_text("body")
    context.close()


def test_two_visitors_never_see_each_other(browser, server):
    first, page_a = open_page(browser, server)
    send(page_a, "My secret is 6*7")
    wait_for_text(page_a, ANSWER)

    second, page_b = open_page(browser, server)
    page_b.wait_for_timeout(1500)  # let the page load its (empty) history
    assert "My secret" not in page_b.inner_text("body")
    send(page_b, QUESTION)
    wait_for_text(page_b, ANSWER)
    assert "My secret" not in page_b.inner_text("body")

    # The first visitor's chat survives a reload (it is a stored thread), and is listed as theirs.
    page_a.reload()
    page_a.wait_for_selector("#input textarea")
    wait_for_text(page_a, "My secret is 6*7")
    assert QUESTION not in page_a.inner_text("#chat")
    first.close()
    second.close()


def test_new_chat_starts_an_empty_thread_and_the_old_one_can_be_reopened(browser, server):
    context, page = open_page(browser, server)
    send(page, "first chat")
    wait_for_text(page, ANSWER)
    page.click("#new-chat")
    page.wait_for_function(f"!{CHAT_TEXT}.includes('first chat')")
    page.click("#threads input")
    page.get_by_role("option", name="first chat").click()
    wait_for_text(page, "first chat")
    context.close()


def test_gradio_client_can_chat(server):
    from gradio_client import Client

    client = Client(server + "/", verbose=False)
    chat, *_ = client.predict(
        {"text": QUESTION, "files": []}, [], {}, ["calculator"], False, api_name="/chat"
    )
    texts = [m["content"] if isinstance(m["content"], str) else str(m["content"]) for m in chat]
    assert any(ANSWER in t for t in texts)


DECLINED = "You declined the drawing, so I made none."


@pytest.fixture(scope="module")
def drawing_server(tmp_path_factory):
    # After the call every model request (reflect, answer, reflection notes) gets the same line.
    yield from scripted_server(
        tmp_path_factory, "ui-draw",
        say("1. Draw a cat with generate_image"),
        calls(call("generate_image", {"prompt": "a cat", "seed": 1})),
        *[say(DECLINED)] * 8,
    )


def test_approval_pauses_image_generation_and_a_denial_reaches_the_model(browser, drawing_server):
    context, page = open_page(browser, drawing_server)
    page.get_by_role("tab", name="Settings").click()
    page.check("#approval-on input")
    page.get_by_role("tab", name="Chat").click()
    send(page, "draw a cat")
    page.wait_for_selector("#approval", state="visible", timeout=60_000)
    assert "generate_image" in page.inner_text("#chat")
    page.click("#deny")
    wait_for_text(page, DECLINED)
    page.get_by_text("generate_image failed").first.click()
    page.wait_for_function(f"{CHAT_TEXT}.includes('declined to run generate_image')")
    assert page.locator("#approval").is_hidden()

    # Thumbs down on that answer: a reflection note appears in this visitor's memory panel.
    page.locator("#chat button[aria-label='Dislike']").last.click()
    page.get_by_role("tab", name="Memory").click()
    page.click("#mem-refresh")
    page.wait_for_function(f"document.querySelector('#notes-list').innerText.includes({DECLINED!r})", timeout=30_000)
    context.close()


def test_documents_added_in_the_knowledge_panel_are_the_visitors_own(browser, server, tmp_path):
    notes = tmp_path / "lora-notes.md"
    notes.write_text("# LoRA\nLoRA trains two small low-rank matrices instead of the full weights.\n", encoding="utf-8")
    first, page = open_page(browser, server)
    page.get_by_role("tab", name="Knowledge").click()
    page.set_input_files("#kb-files input[type=file]", str(notes))
    page.click("#kb-ingest")
    page.wait_for_function("document.querySelector('#kb-report').innerText.includes('lora-notes.md: added')", timeout=90_000)
    page.wait_for_function("document.querySelector('#kb-sources').innerText.includes('lora-notes.md')")

    second, other = open_page(browser, server)
    other.get_by_role("tab", name="Knowledge").click()
    other.get_by_role("button", name="Refresh list").click()
    other.wait_for_timeout(1500)
    assert "lora-notes.md" not in other.inner_text("#kb-sources")
    first.close()
    second.close()
