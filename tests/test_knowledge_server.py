"""The knowledge base against a real Chroma server (`chroma run` on loopback), via config and
via CHROMA_HOST/CHROMA_PORT. The fixture starts the server itself, so this runs on a fresh CI box."""

from __future__ import annotations

import subprocess

import pytest

from agent.config import Knowledge, Settings
from memory.knowledge import KnowledgeBase
from tests.knowledge_helpers import HashEmbedder
from tests.processes import chroma_cli, free_port, stop, wait_until_up


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    cli = chroma_cli()
    if cli is None:
        pytest.skip("the chroma CLI (from the chromadb package) is not installed")
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = open(path / "server.log", "wb")
    proc = subprocess.Popen([cli, "run", "--path", str(path / "db"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(proc, f"http://127.0.0.1:{port}/api/v2/heartbeat", 60, path / "server.log", what="chroma run")
        yield port
    finally:
        stop(proc)
        log.close()


def test_server_store_ingest_and_retrieve(tmp_path, chroma_server):
    settings = Settings(data_dir=tmp_path / "data", knowledge=Knowledge(chroma_host="127.0.0.1", chroma_port=chroma_server))
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    assert kb.store.where == f"chroma server http://127.0.0.1:{chroma_server}"
    doc = tmp_path / "server.md"
    doc.write_text("# Server\nChroma can run as a server for several machines.\n## 中文\n服务器模式让多台机器共享一个向量库。", encoding="utf-8")
    assert kb.ingest([doc], collection="srv").files[0].status == "added"
    assert kb.ingest([doc], collection="srv").files[0].status == "unchanged"
    hits = kb.retrieve("共享向量库", k=2, collection="srv")
    assert hits and hits[0].heading == "Server > 中文"
    assert not (tmp_path / "data" / "chroma").exists()  # nothing embedded locally
    assert kb.delete_source(str(doc.resolve())) == 2
    assert kb.sources("srv") == []


def test_chroma_host_env_switches_to_server(tmp_path, chroma_server, monkeypatch):
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", str(chroma_server))
    settings = Settings(data_dir=tmp_path / "data")
    assert (settings.knowledge.chroma_host, settings.knowledge.chroma_port) == ("127.0.0.1", chroma_server)
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    doc = tmp_path / "env.txt"
    doc.write_text("Environment variables pick the Chroma server.", encoding="utf-8")
    kb.ingest([doc], collection="env")
    assert kb.retrieve("environment variables", k=1, collection="env")[0].source == str(doc.resolve())


def test_unreachable_server_is_one_clear_error(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", knowledge=Knowledge(chroma_host="127.0.0.1", chroma_port=free_port()))
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    with pytest.raises(RuntimeError, match=r"^cannot reach the chroma server http://127\.0\.0\.1:\d+"):
        kb.retrieve("anything")
