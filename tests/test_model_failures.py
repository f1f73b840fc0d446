"""A model that fails to load: a clear error, and the rest keeps working.

Chat models: a missing folder, a damaged folder (config.json garbage, truncated safetensors), an
`openai:` server that is not there. The CLI prints one `error:` line and exits non-zero; the
server starts (models load on first use), answers chat with a JSON error that says the model
failed to load, and keeps serving tools and health; a spec that can never work stops
`mmagent serve` with one line. Image models: a damaged tiny BLIP folder makes the image tool
fail readably, the next tool in the same run works, and a repaired folder loads on the next call.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from agent.config import Settings
from agent.llm.base import ChatRequest, LLMError
from agent.llm.local import LocalBackend
from tests.api_support import api_settings, running
from tests.conftest import call, calls, say, write_script

# ------------------------------------------------------------------ model folders


def tiny_llm(folder: Path) -> Path:
    """A tiny random-weight causal LM with its tokenizer, saved as a real model folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate("hello world what is one two three".split())}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>").save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=128, eos_token_id=1, bos_token_id=None, pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def truncate(file: Path) -> bytes:
    """Cut `file` to half its size (a download that died mid-way); returns the original bytes."""
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    return data


def garble(file: Path) -> bytes:
    """Replace `file` with text that is not JSON; returns the original bytes."""
    data = file.read_bytes()
    file.write_text("{this is not json", encoding="utf-8")
    return data


DAMAGE = {"config.json": garble, "model.safetensors": truncate}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ the CLI


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMAGENT_", "OPENAI_"))}
    # Long-term memory is not the subject here and would only add start-up time.
    return {**env, "MMAGENT_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "MMAGENT_MEMORY__LONG_TERM": "false", **extra}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every CLI case, started at once: each process pays the import time. (A damaged folder is
    the server's and the backend's case below; in the CLI it takes the same path as a missing one.)"""
    data = tmp_path_factory.mktemp("cli-data")
    port = closed_port()
    cases = {
        "hf-missing": (["ask", "What is 2+2?", "--llm", f"hf:{data / 'no-such-model'}"], {}),
        "openai-closed-port": (["ask", "What is 2+2?", "--llm", "openai:gpt-test"], {"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}),
        "serve-bad-spec": (["serve", "--port", str(closed_port()), "--llm", f"scripted:{data / 'missing.jsonl'}"], {}),
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "apps.cli", *args], env=cli_env(data / name, **extra), cwd=data,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, (args, extra) in cases.items()
    }
    results = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("hf-missing", "there is no such folder"),
        ("openai-closed-port", "cannot reach the OpenAI-compatible server at http://127.0.0.1:"),
        ("serve-bad-spec", "scripted model file not found"),
    ],
)
def test_the_cli_says_it_in_one_error_line_and_exits_non_zero(cli_runs, case, expected):
    proc = cli_runs[case]
    assert proc.returncode not in (0, None, -9), (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    others = [line for line in proc.stderr.splitlines() if not line.startswith("error: ")]
    assert all(line.startswith("Loading LLM ") or line.startswith("mmagent serving") for line in others), proc.stderr


# ------------------------------------------------------------------ the server


def test_the_server_starts_and_only_chat_fails_while_the_model_cannot_load(tmp_path):
    from apps.server import create_app

    folder = tiny_llm(tmp_path / "damaged-llm")
    truncate(folder / "model.safetensors")
    app = create_app(api_settings(tmp_path / "data"), llm=f"hf:{folder}", ui=False)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/v1/health").json() == {"status": "ok"}
        chat = {"model": "mmagent", "messages": [{"role": "user", "content": "What is 2+2?"}]}
        for _ in range(2):  # no failure is cached as success, and none hangs the next request
            response = http.post("/v1/chat/completions", json=chat)
            assert response.status_code == 502 and response.headers["content-type"].startswith("application/json")
            message = response.json()["error"]["message"]
            assert message.startswith("the model failed: Could not load the LLM") and str(folder) in message
            assert "the folder exists but its files could not be loaded" in message
            tool = http.post("/v1/tools/calculator/invoke", json={"expression": "2+2"})
            assert tool.status_code == 200 and tool.json() == {"ok": True, "result": "4", "data": {"value": 4, "exact": "4"}, "artifacts": []}
        with http.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as streamed:
            assert streamed.status_code == 200
            assert "Could not load the LLM" in streamed.read().decode()
        assert http.get("/v1/tools").status_code == 200 and http.get("/v1/health").status_code == 200


def test_a_spec_that_can_never_work_refuses_to_start(tmp_path):
    from apps.server import create_app

    with pytest.raises(LLMError, match="unknown LLM spec 'bogus:x'"):
        create_app(api_settings(tmp_path / "data"), llm="bogus:x", ui=False)


# ------------------------------------------------------------------ the backend: no failure cached


@pytest.mark.parametrize("damaged", sorted(DAMAGE))
def test_a_repaired_model_folder_loads_on_the_next_call(tmp_path, damaged):
    folder = tiny_llm(tmp_path / "llm")
    original = DAMAGE[damaged](folder / damaged)
    backend = LocalBackend.from_spec(f"hf:{folder}", Settings(data_dir=tmp_path / "data", device="cpu"))
    request = ChatRequest(messages=[{"role": "user", "content": "hello"}], tool_choice="none", max_tokens=3, purpose="respond")
    with pytest.raises(LLMError, match="the folder exists but its files could not be loaded"):
        asyncio.run(backend.complete(request))
    assert not backend.loaded
    (folder / damaged).write_bytes(original)
    reply = asyncio.run(backend.complete(request))
    assert backend.loaded and isinstance(reply.content, str)


# ------------------------------------------------------------------ image models


@pytest.fixture(scope="module")
def caption_model(tmp_path_factory) -> Path:
    from tests.tiny_models import build_blip

    return build_blip(tmp_path_factory.mktemp("tiny-blip") / "caption", vqa=False)


def test_a_broken_image_model_fails_its_tool_and_the_run_goes_on(caption_model, data_dir, tmp_path, monkeypatch):
    from PIL import Image

    from agent.runner import open_agent
    from multimodal.artifacts import save_upload
    from tools.calculator import calculator_tool
    from tools.images import image_tools, model_manager
    from tools.registry import ToolRegistry

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings(data_dir=data_dir, device="cpu", models={"caption": str(caption_model)}, memory={"long_term": False})
    registry = ToolRegistry([calculator_tool(), *image_tools(settings)])
    image = Image.new("RGB", (40, 30), (200, 40, 40))
    path = tmp_path / "photo.png"
    image.save(path)
    ref = save_upload(settings, path.read_bytes(), "photo.png")["ref"]
    weights = truncate(caption_model / "model.safetensors")
    try:
        script = write_script(
            tmp_path / "s.jsonl",
            say("1. Describe the photo\n2. Add 2+2"),
            calls(call("caption_image", {"image": ref})),
            say("Reflection: the captioning model is broken.\n1. Add 2+2"),
            calls(call("calculator", {"expression": "2+2"})),
            say("I could not describe the photo; 2+2 is 4."),
        )

        async def go():
            async with open_agent(settings, llm=f"scripted:{script}", registry=registry, persist=False) as agent:
                return await agent.arun("Describe the photo, then add 2+2")

        result = asyncio.run(go())
    finally:
        (caption_model / "model.safetensors").write_bytes(weights)
    failed, added = result.steps
    assert not failed["ok"] and "Traceback" not in failed["error"]
    assert failed["error"].startswith(f"The captioning model '{caption_model}' could not be loaded: it failed to load")
    assert "MMAGENT_MODELS__CAPTION" in failed["error"]
    assert added["ok"] and added["result"] == "4" and result.error is None
    assert "Tool problems:\n- caption_image failed: The captioning model" in result.answer
    # The folder is repaired: the same manager loads it on the next call, the failure was not kept.
    again = asyncio.run(registry.ainvoke("caption_image", {"image": ref}))
    assert again.ok and isinstance(again.result["caption"], str)
    assert model_manager(registry).load_count("caption") == 1
