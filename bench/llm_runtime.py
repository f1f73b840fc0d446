"""The bundled model on its two runtimes, side by side: llama.cpp (what `bundled` uses) and
transformers (the dequantised copy, what `bundled` used before).

Each runtime runs in its own process, so peak RSS is its own. Printed per runtime: load seconds
(model ready, cache warm), greedy tokens/s on a fixed prompt, seconds for one grammar-constrained
calculator call after worked examples, and peak RSS. The transformers side writes its 1.1 GB
fp32 cache under MMAGENT_CACHE_DIR on its first run (about a minute, not counted as load).

    .venv/bin/python bench/llm_runtime.py [--tokens 64] [--calls 5] [--only llama.cpp|transformers]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, json, resource, sys, time
sys.path.insert(0, {root!r})
from agent.config import load_settings
from agent.llm.base import ChatRequest
from agent.prompts import call_prompt
from tools.demonstrations import CALCULATOR
runtime, tokens, calls = {runtime!r}, {tokens}, {calls}
settings = load_settings()
CALC = {{"type": "function", "function": {{"name": "calculator", "description": "Evaluate arithmetic.",
        "parameters": {{"type": "object", "properties": {{"expression": {{"type": "string"}}}}, "required": ["expression"]}}}}}}
if runtime == "llama.cpp":
    from agent.llm.gguf import GGUFBackend
    backend = GGUFBackend.from_spec("bundled", settings)
else:
    from agent.llm.local import LocalBackend
    backend = LocalBackend.from_spec("bundled", settings)
    backend._ensure_runtime()  # the first run converts the GGUF (not counted: later loads read the cache)
    backend = LocalBackend.from_spec("bundled", settings)
start = time.perf_counter()
backend._ensure_runtime()
load = time.perf_counter() - start

async def main():
    text = "The history of the city begins in the year"
    request = ChatRequest(messages=[], completion_prompt=text, max_tokens=tokens) if runtime == "llama.cpp" else \
        ChatRequest(messages=[{{"role": "user", "content": text}}], max_tokens=tokens, tool_choice="none")
    await backend.complete(request)  # warm
    t = time.perf_counter(); reply = await backend.complete(request); gen = time.perf_counter() - t
    # Generation may stop early (end of text, a repetition cut): count what was generated.
    rt = backend._runtime
    n = len(rt.model.tokenize(reply.content, add_bos=False)) if runtime == "llama.cpp" else len(rt.lm.tokenizer(reply.content)["input_ids"])
    prompts = ["A mug costs 4 dollars. How much do 6 mugs cost?", "What is 30% of 90?", "一本书 20 元，买 3 本多少钱？",
               "A bus drives 150 km in 3 hours. How fast is it?", "I have 40 dollars and spend 12.5. How much is left?"]
    seconds, out = [], []
    for i in range(calls):
        p = prompts[i % len(prompts)]
        req = ChatRequest(messages=[{{"role": "user", "content": p}}], tools=[CALC], tool_choice="calculator",
                          completion_prompt=call_prompt("calculator", CALCULATOR[:6], p, []) if runtime == "llama.cpp" else None)
        t = time.perf_counter(); r = await backend.complete(req); seconds.append(time.perf_counter() - t)
        out.append(r.tool_calls[0].arguments.get("expression"))
    return gen, n, seconds, out

gen, n, seconds, out = asyncio.run(main())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"runtime": runtime, "load_s": round(load, 2), "tokens_per_s": round(n / gen, 1),
                  "call_s_median": round(sorted(seconds)[len(seconds) // 2], 2), "peak_rss_mb": round(rss),
                  "expressions": out}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated for the tokens/s figure")
    parser.add_argument("--calls", type=int, default=5, help="constrained calculator calls")
    parser.add_argument("--only", choices=["llama.cpp", "transformers"])
    args = parser.parse_args()
    rows = []
    for runtime in [args.only] if args.only else ["llama.cpp", "transformers"]:
        code = CHILD.format(root=str(ROOT), runtime=runtime, tokens=args.tokens, calls=args.calls)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            print(f"{runtime}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'runtime':<13} {'load s':>7} {'tokens/s':>9} {'call s (median)':>16} {'peak RSS MB':>12}  expressions")
    for r in rows:
        print(f"{r['runtime']:<13} {r['load_s']:>7} {r['tokens_per_s']:>9} {r['call_s_median']:>16} {r['peak_rss_mb']:>12}  {r['expressions']}")
    if len(rows) == 2:
        a, b = rows
        print(f"llama.cpp / transformers: load {a['load_s'] / b['load_s']:.2f}x, tokens/s {a['tokens_per_s'] / b['tokens_per_s']:.2f}x, "
              f"call {a['call_s_median'] / b['call_s_median']:.2f}x, RSS {a['peak_rss_mb'] / b['peak_rss_mb']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
