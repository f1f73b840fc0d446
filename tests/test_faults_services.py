"""Faults in the parts mmagent depends on: a Chroma server that dies, stalls and comes back, and
a disk that fills up under the artifacts, the uploads and the thread database.

Real components only: a `chroma run` server process that gets SIGKILL and SIGSTOP, and real
1 MB tmpfs mounts that run out of space (the tests skip with the reason where mounting is not
permitted). Each time the failing part gives one clear error, the rest (calculator, chat, the
API) keeps working, and things recover once the part is back, without a restart.
"""

from __future__ import annotations

import base64
import errno
import io
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_support import api_settings, scripted_server, sse_events
from tests.conftest import call, calls, say
from tests.processes import chroma_cli, free_port, stop, wait_until_up

DOC = """# Lab notes

The centrifuge in room 4 spins at 5000 rpm for DNA extraction.

## Safety

Wear goggles when the centrifuge runs.
"""


# ---------------------------------------------------------------- a real Chroma server


class ChromaServer:
    """`chroma run` on a fixed port and data path, so that it can be killed and started again."""

    def __init__(self, path: Path, port: int) -> None:
        self.cli = chroma_cli()
        if self.cli is None:
            pytest.skip("the chroma CLI (from the chromadb package) is not installed")
        self.path, self.port = path, port
        self.proc: subprocess.Popen | None = None
        self.paused = False

    def start(self) -> ChromaServer:
        log_path = self.path.parent / f"chroma-{time.monotonic_ns()}.log"
        log = open(log_path, "wb")
        self.proc = subprocess.Popen([self.cli, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()  # the child has its own copy
        wait_until_up(self.proc, f"http://127.0.0.1:{self.port}/api/v2/heartbeat", 60, log_path, what="chroma run")
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def pause(self, on: bool) -> None:
        """SIGSTOP: the process still holds its port and accepts connections, but never answers."""
        self.proc.send_signal(signal.SIGSTOP if on else signal.SIGCONT)
        self.paused = on

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.paused:
            self.pause(False)
        stop(self.proc)


@pytest.fixture
def chroma(tmp_path):
    server = ChromaServer(tmp_path / "chroma-db", free_port())
    try:
        yield server.start()
    finally:
        server.stop()


def invoke(http: httpx.Client, name: str, **arguments: Any) -> tuple[dict[str, Any], float]:
    """A tool call through the API: (body, seconds). Always a 200: a tool failure is a result."""
    started = time.monotonic()
    response = http.post(f"/v1/tools/{name}/invoke", json=arguments)
    assert response.status_code == 200, response.text
    return response.json(), time.monotonic() - started


@pytest.mark.slow
def test_chroma_server_that_dies_stalls_and_returns(tmp_path, chroma):
    from memory.knowledge import KnowledgeBase

    knowledge = {"chroma_host": "127.0.0.1", "chroma_port": chroma.port, "chroma_timeout_s": 2, "web_search": False}
    doc = tmp_path / "lab.md"
    doc.write_text(DOC, encoding="utf-8")
    kb = KnowledgeBase(api_settings(tmp_path / "data", knowledge=knowledge))
    assert kb.ingest([doc], "lab").files[0].status == "added"
    kb.close()
    where = f"chroma server http://127.0.0.1:{chroma.port}"
    question = {"query": "How fast does the centrifuge spin?", "collection": "lab"}

    script = (
        say("1. Look up the notes and compute 6*7\n2. Answer"),
        calls(call("retrieve", question, "r1"), call("calculator", {"expression": "6*7"}, "c1")),
        say("The notes are unreachable; answer with the calculation alone.\n1. Answer"),  # reflect, after the failed tool
        say("6*7 is 42; the notes could not be searched."),
    )
    with scripted_server(tmp_path, *script, knowledge=knowledge) as url, httpx.Client(base_url=url, timeout=60) as http:
        found, _ = invoke(http, "retrieve", **question)
        assert found["ok"] and "5000 rpm" in found["result"][0]["text"]

        chroma.kill()
        gone, seconds = invoke(http, "retrieve", **question)
        assert not gone["ok"] and gone["error"].startswith(f"the {where} is unreachable (ConnectError"), gone
        assert seconds < 10
        searched, _ = invoke(http, "search", query="centrifuge")
        assert searched["ok"] and searched["result"]["local"] == [] and where in searched["result"]["local_error"]
        assert invoke(http, "calculator", expression="2**10")[0] == {"ok": True, "result": "1024", "data": {"value": 1024, "exact": "1024"}, "artifacts": []}

        # One agent run: the retrieve call fails with the same clear error, the calculator beside it works.
        run = http.post("/v1/threads/t1/runs", json={"input": "How fast is the centrifuge, and what is 6*7?"})
        events = sse_events(run)
        results = {data["name"]: data for name, data in events if name == "tool_result"}
        assert results["calculator"]["ok"] and results["calculator"]["result"] == "42"
        assert not results["retrieve"]["ok"] and "is unreachable" in results["retrieve"]["error"]
        final = events[-1][1]
        assert events[-1][0] == "final" and not final["error"]
        assert final["answer"].startswith("6*7 is 42") and f"retrieve failed: the {where} is unreachable" in final["answer"]
        assert http.get("/v1/health").json() == {"status": "ok"}

        # Back on the same port and data: the running app reconnects by itself.
        chroma.start()
        back, _ = invoke(http, "retrieve", **question)
        assert back["ok"] and "5000 rpm" in back["result"][0]["text"], back

        # A stalled server (alive, port open, never answering) costs the timeout, not a hang.
        chroma.pause(True)
        stalled, seconds = invoke(http, "retrieve", **question)
        assert not stalled["ok"] and stalled["error"] == f"the {where} did not answer within 2 s (knowledge.chroma_timeout_s)"
        assert seconds < 8
        assert invoke(http, "calculator", expression="1+1")[0]["result"] == "2"
        chroma.pause(False)
        again, _ = invoke(http, "retrieve", **question)
        assert again["ok"] and "5000 rpm" in again["result"][0]["text"]


@pytest.mark.slow
def test_stalled_chroma_server_at_first_connect_is_bounded(tmp_path, chroma):
    from memory.knowledge import KnowledgeBase
    from memory.knowledge.store import StoreUnavailable
    from tests.knowledge_helpers import HashEmbedder

    settings = api_settings(tmp_path / "data", knowledge={"chroma_host": "127.0.0.1", "chroma_port": chroma.port, "chroma_timeout_s": 1})
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    chroma.pause(True)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=rf"^cannot reach the chroma server http://127\.0\.0\.1:{chroma.port}"):
        kb.retrieve("anything")
    assert time.monotonic() - started < 5
    chroma.pause(False)
    assert kb.retrieve("anything") == []  # the same instance connects once the server answers


@pytest.mark.slow
def test_chroma_server_back_without_the_index_recovers_empty(tmp_path, chroma):
    from memory.knowledge import KnowledgeBase
    from memory.knowledge.store import StoreUnavailable
    from tests.knowledge_helpers import HashEmbedder

    settings = api_settings(tmp_path / "data", knowledge={"chroma_host": "127.0.0.1", "chroma_port": chroma.port})
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    doc = tmp_path / "lab.md"
    doc.write_text(DOC, encoding="utf-8")
    kb.ingest([doc], "lab")
    assert kb.retrieve("centrifuge", collection="lab")
    chroma.stop()  # back on the same port, but with empty data (a new volume, a wiped disk)
    shutil.rmtree(chroma.path)
    chroma.start()
    with pytest.raises(StoreUnavailable, match=r"^the knowledge index 'knowledge-test-hash' is gone from the chroma server .*re-ingest"):
        kb.retrieve("centrifuge", collection="lab")
    assert kb.retrieve("centrifuge", collection="lab") == []  # an empty index, not the same error forever
    assert kb.ingest([doc], "lab").files[0].status == "added"
    assert kb.retrieve("centrifuge", collection="lab")


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def tiny_disk():
    """Mounts a 1 MB tmpfs at a folder and fills it; yields a function that does so, unmounts at the end."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str = "1m") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if shutil.which("mount") is None:
            pytest.skip("no `mount` command here: cannot make a small disk")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip() or done.returncode}); run as root to test a full disk")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


PAGE = 4096  # tmpfs allocates whole pages


def fill(folder: Path) -> Path:
    """Writes a file until the disk is full; returns it (delete it to free the space)."""
    filler = folder / f"filler-{len(list(folder.glob('filler*')))}.bin"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def png(seed: int = 1, size: int = 64) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)  # noise: does not compress
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_full_disk_for_uploads_and_artifacts(tmp_path, tiny_disk):
    from apps.ui.chat import save_uploads
    from multimodal.artifacts import StorageFull, save_image, save_upload

    data = tmp_path / "data"
    settings = api_settings(data)
    uploads, artifacts = tiny_disk(data / "uploads"), tiny_disk(data / "artifacts")
    image = png()
    assert save_upload(settings, image, "before.png")["ref"].startswith("artifact:")  # the disk works
    fillers = [fill(uploads), fill(artifacts)]
    before = {uploads: files(uploads), artifacts: files(artifacts)}

    with pytest.raises(StorageFull, match=rf"^the disk is full: cannot save the image in {uploads}.*try again$"):
        save_upload(settings, png(2), "photo.png")
    with pytest.raises(StorageFull, match=rf"^the disk is full: cannot save the image in {artifacts}"):
        from PIL import Image

        save_image(settings, Image.open(io.BytesIO(png(3))), {"prompt": "noise"})
    (tmp_path / "photo.png").write_bytes(png(4))
    saved, errors = save_uploads(settings, [str(tmp_path / "photo.png")])  # the UI's upload handler
    assert saved == [] and len(errors) == 1 and errors[0].startswith("photo.png was not saved: the disk is full")
    # No temp file, no half artifact (an image without its sidecar) left behind.
    assert {uploads: files(uploads), artifacts: files(artifacts)} == before

    # Room for the image but not for its sidecar: the image written first is taken back.
    photo = png(6)
    with open(fillers[0], "r+b") as filler:
        filler.truncate(os.path.getsize(fillers[0]) - PAGE * -(-len(photo) // PAGE))  # frees exactly the image's pages
    with pytest.raises(StorageFull):
        save_upload(settings, photo, "photo.png")
    assert files(uploads) == before[uploads]
    fillers.append(fill(uploads))  # full again
    before[uploads] = files(uploads)

    script = (say("1. Answer"), say("It is noise."), say("1. Compute"), calls(call("calculator", {"expression": "6*7"})), say("42."))
    with scripted_server(tmp_path, *script) as url, httpx.Client(base_url=url, timeout=60) as http:
        data_url = "data:image/png;base64," + base64.b64encode(png(5)).decode()
        run = http.post("/v1/threads/t1/runs", json={"input": "What is this?", "images": [data_url]})
        assert run.status_code == 507 and run.json()["error"]["code"] == "storage_full"
        assert run.json()["error"]["message"].startswith("images.0: the disk is full")
        chat = http.post("/v1/chat/completions", json={"model": "mmagent", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": data_url}}]}]})
        assert chat.status_code == 507 and "the disk is full" in chat.json()["error"]["message"]
        assert files(uploads) == before[uploads]
        # The rest keeps working: a tool, and a chat turn without an image.
        assert http.post("/v1/tools/calculator/invoke", json={"expression": "2+2"}).json()["result"] == "4"
        assert sse_events(http.post("/v1/threads/t2/runs", json={"input": "What is 6*7?"}))[-1][1]["answer"] == "It is noise."

        for filler in fillers:
            filler.unlink()
        ok = http.post("/v1/threads/t3/runs", json={"input": "What is this?", "images": [data_url]})
        assert ok.status_code == 200 and sse_events(ok)[-1][0] == "final"


@pytest.mark.slow
def test_generate_image_on_a_full_disk_is_a_clear_tool_error(tmp_path, tiny_disk):
    from agent.config import Settings
    from tests.tiny_models import build_sd_pipeline
    from tools.images import image_tools

    pipeline = build_sd_pipeline(tmp_path / "tiny-sd")
    settings = Settings(data_dir=tmp_path / "data", device="cpu", models={"diffusion": str(pipeline)})
    artifacts = tiny_disk(settings.artifacts_dir)
    generate = next(t for t in image_tools(settings) if t.name == "generate_image")
    made = generate.invoke({"prompt": "a red cat", "steps": 1, "seed": 1})
    assert made.ok, made.error
    filler = fill(artifacts)
    before = files(artifacts)
    failed = generate.invoke({"prompt": "a blue dog", "steps": 1, "seed": 2})
    assert not failed.ok and failed.error.startswith(f"the disk is full: cannot save the image in {artifacts}")
    assert files(artifacts) == before
    filler.unlink()
    assert generate.invoke({"prompt": "a blue dog", "steps": 1, "seed": 2}).ok


def ui_message_for_a_write(db: Path) -> str:
    """What the web UI shows for the SQLite error a turn gets on this full disk (in a database of its own)."""
    import sqlite3

    from apps.ui.chat import describe

    conn = sqlite3.connect(db)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS probe (x BLOB)")
        for _ in range(100):
            conn.execute("INSERT INTO probe VALUES (?)", (os.urandom(65536),))
        conn.commit()
    except sqlite3.Error as exc:
        return describe(exc)
    finally:
        conn.close()
    raise AssertionError("the disk was not full")


def test_full_disk_for_the_thread_database(tmp_path, tiny_disk):
    data = tiny_disk(tmp_path / "data", size="2m")  # threads.sqlite and its WAL live here
    turn = (say("1. Compute"), calls(call("calculator", {"expression": "6*7"})), say("6*7 is 42."))
    with scripted_server(tmp_path, *turn) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert sse_events(http.post("/v1/threads/a/runs", json={"input": "What is 6*7?"}))[-1][1]["answer"] == "6*7 is 42."
        filler = fill(data)
        events = sse_events(http.post("/v1/threads/b/runs", json={"input": "What is 6*7?"}))
        assert events[-1][0] == "error", events
        assert events[-1][1]["code"] == "storage_full"
        assert events[-1][1]["message"].startswith("the server's disk is full"), events[-1]
        assert ui_message_for_a_write(data / "probe.sqlite").startswith("the server's disk is full: this turn could not be saved")
        assert http.get("/v1/health").json() == {"status": "ok"}
        assert http.post("/v1/tools/calculator/invoke", json={"expression": "2+2"}).json()["result"] == "4"
        assert [m["content"] for m in http.get("/v1/threads/a").json()["messages"]][-1] == "6*7 is 42."
        filler.unlink()
        assert sse_events(http.post("/v1/threads/c/runs", json={"input": "What is 6*7?"}))[-1][1]["answer"] == "6*7 is 42."
