"""Client-side tools with sloppy schemas: does every `/v1/chat/completions` reply hold up?

Sends the cases of `bench/client_tools.jsonl` (BFCL-style: simple, multiple, parallel,
parallel_multiple, relevance; English and Chinese; schemas with `"type": "dict"`, Python type
names, draft-3 `required: true`, dotted names, nested objects, arrays, enums, defaults) one after
the other to a real `mmagent serve` (a subprocess on a free loopback port, its own temporary
data folder) through the official `openai` client, with client tools and `tool_choice` auto,
required or a named function. For every reply it records the HTTP status, the latency and the
returned tool calls, and checks each call:
  * parses:   `arguments` is JSON;
  * validates: the arguments fit the tool's parameters after the normalisation the server
    applies (`apps.api.client_tools.normalise_tools`, jsonschema draft 2020-12), looked up by
    the client's own name (the server maps its safe aliases back);
  * exact match: the returned calls equal the expected ones as a multiset (order free): same
    names and arguments, numbers compared numerically, strings case-insensitively after strip.
    An optional argument left out, or given with the default the schema declares (`default`, or
    "(default X)" in its description), counts as equal. Expected `[]` means a plain answer.

Prints requests, 2xx share, the non-2xx replies, calls returned, parse and validate rates,
exact match overall and per category (the id's prefix before the first "-"), p50/p95 latency.

`--llm oracle` runs a stub OpenAI-compatible model inside this process that answers every case
with its expected calls (by the client name's safe alias), behind `mmagent serve --llm
openai:oracle`: a fast end-to-end check of the server's plumbing and of this bench's checks
(everything must come out 100%). The scripted model cannot do that: every conversation starts
its script at the first line, so all cases would get the same reply.

    .venv/bin/python bench/client_tools.py [--llm bundled] [--limit N] [--cases PATH] [--json-out PATH]
    .venv/bin/python bench/client_tools.py --llm oracle
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.processes import free_port, server_env, stop, wait_until_up  # noqa: E402
from tests.ui_server import mmagent_command  # noqa: E402

CASES = ROOT / "bench" / "client_tools.jsonl"
CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "relevance")
_DEFAULT_IN_TEXT = re.compile(
    r"\(defaults?(?: to| is|:)?\s*['\"]?([^'\")]+?)['\"]?(?: if not specified)?\)|\bdefault is\s+['\"]?([^'\".,;)]+)",
    re.IGNORECASE,
)


# ---------------------------------------------------------------- cases


def load_cases(path: Path, limit: int | None) -> list[dict[str, Any]]:
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        case = json.loads(line)
        missing = {"id", "messages", "tools", "expected"} - case.keys()
        if missing:
            raise SystemExit(f"{path}:{number}: case lacks {sorted(missing)}")
        cases.append(case)
    ids = [c["id"] for c in cases]
    if len(ids) != len(set(ids)):
        raise SystemExit(f"{path}: duplicate ids {sorted(i for i, n in Counter(ids).items() if n > 1)}")
    return cases[:limit] if limit else cases


def category(case_id: str) -> str:
    return case_id.split("-", 1)[0]


def client_schemas(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The client's tool name -> its parameters schema as the server normalises it."""
    from apps.api.client_tools import normalise_tools

    normalised = normalise_tools(tools)
    return {normalised.client_name(s["function"]["name"]): s["function"]["parameters"] for s in normalised.schemas}


# ---------------------------------------------------------------- checks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same_value(expected: Any, got: Any) -> bool:
    """Numbers numerically, strings case-insensitively after strip, lists in order, dicts by key."""
    if _is_number(expected) and _is_number(got):
        return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, str) and isinstance(got, str):
        return expected.strip().casefold() == got.strip().casefold()
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(same_value(e, g) for e, g in zip(expected, got))
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(same_value(v, got[k]) for k, v in expected.items())
    return type(expected) is type(got) and expected == got


def declared_default(prop: Any) -> tuple[bool, Any]:
    """(has one, value): the property's `default`, else a "(default X)" in its description."""
    if not isinstance(prop, dict):
        return False, None
    if "default" in prop:
        return True, prop["default"]
    found = _DEFAULT_IN_TEXT.search(prop.get("description") or "")
    if not found:
        return False, None
    text = (found.group(1) or found.group(2)).strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return True, lowered == "true"
    try:
        return True, json.loads(text)
    except json.JSONDecodeError:
        return True, text


def same_arguments(expected: dict[str, Any], got: Any, schema: dict[str, Any] | None) -> bool:
    if not isinstance(got, dict):
        return False
    properties = (schema or {}).get("properties") or {}
    for key in expected.keys() | got.keys():
        if key in expected and key in got:
            if not same_value(expected[key], got[key]):
                return False
            continue
        # One side left an optional argument out: fine when the other side gave its default.
        has_default, default = declared_default(properties.get(key))
        present = expected[key] if key in expected else got[key]
        if not (has_default and same_value(default, present)):
            return False
    return True


def calls_match(expected: list[dict[str, Any]], got: list[dict[str, Any]], schemas: dict[str, dict[str, Any]]) -> bool:
    """The returned calls (name, parsed arguments) equal the expected ones, in any order."""
    if len(expected) != len(got):
        return False
    if not expected:
        return True

    def fits(e: dict[str, Any], g: dict[str, Any]) -> bool:
        return e["name"] == g["name"] and g["parses"] and same_arguments(e["arguments"], g["arguments"], schemas.get(e["name"]))

    # A handful of calls at most: trying every pairing is cheap and never misses one.
    return any(all(fits(e, g) for e, g in zip(expected, order)) for order in itertools.permutations(got))


def check_call(call: Any, schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from jsonschema import Draft202012Validator

    name, raw = call.function.name, call.function.arguments
    record: dict[str, Any] = {"name": name, "raw_arguments": raw, "arguments": None, "parses": False, "valid": False, "problem": None}
    try:
        record["arguments"] = json.loads(raw) if isinstance(raw, str) else raw
        record["parses"] = True
    except (json.JSONDecodeError, TypeError) as exc:
        record["problem"] = f"arguments are not JSON: {exc}"
        return record
    if name not in schemas:
        record["problem"] = f"unknown tool {name!r} (offered: {sorted(schemas)})"
        return record
    errors = sorted(Draft202012Validator(schemas[name]).iter_errors(record["arguments"]), key=lambda e: list(e.path))
    record["valid"] = not errors
    if errors:
        record["problem"] = "; ".join(f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:3])[:300]
    return record


def choice_honoured(tool_choice: Any, calls: list[dict[str, Any]]) -> bool | None:
    """Whether a `required` or named tool_choice was kept (None for auto)."""
    if tool_choice == "required":
        return bool(calls)
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        return bool(calls) and all(c["name"] == name for c in calls)
    return None


# ---------------------------------------------------------------- one case


def run_case(api, case: dict[str, Any]) -> dict[str, Any]:
    import openai

    record: dict[str, Any] = {
        "id": case["id"], "category": category(case["id"]), "tool_choice": case.get("tool_choice", "auto"),
        "status": None, "error": None, "latency_s": None, "content": None, "finish_reason": None,
        "calls": [], "expected": case["expected"], "exact": False, "choice_honoured": None,
    }
    try:
        schemas = client_schemas(case["tools"])
    except ValueError as exc:  # ToolSchemaError: the server will say 400 as well
        schemas, record["schema_problem"] = {}, str(exc)
    start = time.perf_counter()
    try:
        reply = api.chat.completions.create(
            model="mmagent", messages=case["messages"], tools=case["tools"], tool_choice=case.get("tool_choice", "auto"),
        )
        record["status"] = 200
    except openai.APIStatusError as exc:
        record["status"] = exc.status_code
        body = exc.body if exc.body is not None else exc.response.text
        record["error"] = json.dumps(body, ensure_ascii=False) if not isinstance(body, str) else body
        return _timed(record, start)
    except openai.APIError as exc:  # connection refused, timeout: no HTTP status at all
        record["error"] = f"{type(exc).__name__}: {exc}"
        return _timed(record, start)
    _timed(record, start)
    choice = reply.choices[0]
    record["content"], record["finish_reason"] = choice.message.content, choice.finish_reason
    record["calls"] = [check_call(c, schemas) for c in choice.message.tool_calls or []]
    record["exact"] = calls_match(case["expected"], record["calls"], schemas)
    record["choice_honoured"] = choice_honoured(record["tool_choice"], record["calls"])
    return record


def _timed(record: dict[str, Any], start: float) -> dict[str, Any]:
    record["latency_s"] = round(time.perf_counter() - start, 3)
    return record


# ---------------------------------------------------------------- report


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    from apps.tasks import percentile  # nearest rank, as in `mmagent run` and bench/api.py

    ok = [r for r in records if r["status"] is not None and 200 <= r["status"] < 300]
    calls = [c for r in ok for c in r["calls"]]
    latencies = [r["latency_s"] for r in records if r["status"] is not None]
    per_category: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        per_category[r["category"]].append(r["exact"])
    honoured = [r["choice_honoured"] for r in ok if r["choice_honoured"] is not None]
    return {
        "requests": len(records),
        "ok_2xx": len(ok),
        "failures": [
            {"id": r["id"], "status": r["status"], "message": _message(r["error"])[:120]} for r in records if r not in ok
        ],
        "calls": len(calls),
        "parse": sum(c["parses"] for c in calls),
        "valid": sum(c["valid"] for c in calls),
        "exact": sum(r["exact"] for r in records),
        "per_category": {k: (sum(v), len(v)) for k, v in sorted(per_category.items(), key=lambda kv: _order(kv[0]))},
        "choice_honoured": (sum(honoured), len(honoured)),
        "p50_s": percentile(latencies, 50) if latencies else None,
        "p95_s": percentile(latencies, 95) if latencies else None,
    }


def _order(name: str) -> tuple[int, str]:
    return (CATEGORIES.index(name) if name in CATEGORIES else len(CATEGORIES), name)


def _message(error: str | None) -> str:
    """The `message` of an OpenAI-style error body, else the text itself."""
    try:
        body = json.loads(error or "")
    except json.JSONDecodeError:
        return error or ""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return error or ""


def case_line(r: dict[str, Any]) -> str:
    calls = ", ".join(f"{c['name']}({'ok' if c['valid'] else 'INVALID' if c['parses'] else 'NOT JSON'})" for c in r["calls"])
    outcome = "exact" if r["exact"] else "miss"
    return f"  {r['id']:28} {r['status'] or '---'} {r['latency_s']:7.2f} s {outcome:5} {calls or '(no calls)'}"


def print_summary(s: dict[str, Any], llm: str) -> None:
    print(f"model: {llm}")
    print(f"requests            {s['requests']}")
    print(f"2xx                 {s['ok_2xx']} ({pct(s['ok_2xx'], s['requests'])})")
    if s["failures"]:
        print("non-2xx / no answer:")
        for f in s["failures"]:
            print(f"  {f['id']:28} {f['status'] if f['status'] is not None else '---'}  {f['message']}")
    print(f"tool calls returned {s['calls']}")
    print(f"  arguments parse   {s['parse']} ({pct(s['parse'], s['calls'])})")
    print(f"  validate          {s['valid']} ({pct(s['valid'], s['calls'])})")
    honoured, asked = s["choice_honoured"]
    print(f"tool_choice kept    {honoured}/{asked} (required or named)")
    print(f"exact match         {s['exact']}/{s['requests']} ({pct(s['exact'], s['requests'])})")
    for name, (hit, n) in s["per_category"].items():
        print(f"  {name:18}{hit}/{n} ({pct(hit, n)})")
    if s["p50_s"] is not None:
        print(f"latency             p50 {s['p50_s'] * 1000:.0f} ms, p95 {s['p95_s'] * 1000:.0f} ms")


def print_misses(records: list[dict[str, Any]], limit: int = 10) -> None:
    """The first few replies that were not an exact match, to see what went wrong."""
    misses = [r for r in records if not r["exact"] and r["status"] == 200]
    if not misses:
        return
    print(f"first {min(limit, len(misses))} of {len(misses)} 2xx replies that did not match:")
    for r in misses[:limit]:
        got = [{"name": c["name"], "arguments": c["arguments"] if c["parses"] else c["raw_arguments"]} for c in r["calls"]]
        problems = [c["problem"] for c in r["calls"] if c["problem"]]
        text = f" content={r['content'][:80]!r}" if r["content"] and not got else ""
        print(f"  {r['id']}: got {json.dumps(got, ensure_ascii=False)[:200]}{text}")
        print(f"  {'':{len(r['id'])}}  expected {json.dumps(r['expected'], ensure_ascii=False)[:200]}")
        for p in problems:
            print(f"  {'':{len(r['id'])}}  problem: {p[:200]}")


def log_problems(log_path: Path) -> list[str]:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return [ln for ln in text.splitlines() if re.search(r"ERROR|Traceback|Exception|CRITICAL", ln)]


# ---------------------------------------------------------------- oracle model


def oracle_app(cases: list[dict[str, Any]]):
    """An OpenAI-compatible stub answering each case (found by its messages) with its expected calls."""
    from fastapi import FastAPI
    from sse_starlette import EventSourceResponse

    from apps.api.client_tools import normalise_tools

    def key(messages: list[dict[str, Any]]) -> str:
        return json.dumps([[m.get("role"), m.get("content")] for m in messages], ensure_ascii=False, sort_keys=True)

    answers = {}
    for case in cases:
        safe = normalise_tools(case["tools"])
        answers[key(case["messages"])] = [(safe.safe_name(e["name"]), e["arguments"]) for e in case["expected"]]
    app = FastAPI(title="oracle model")

    async def chat(request):  # a plain Starlette route: no FastAPI parameter parsing
        body = await request.json()
        expected = answers.get(key(body.get("messages") or []))
        if expected is None:
            delta = {"content": "oracle: unknown case"}
        elif expected:
            delta = {"tool_calls": [
                {"index": i, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}}
                for i, (name, args) in enumerate(expected)
            ]}
        else:
            delta = {"content": "No tool fits; here is a plain answer."}
        base = {"id": "chatcmpl-oracle", "object": "chat.completion.chunk", "created": int(time.time()), "model": "oracle"}

        def chunk(d: dict[str, Any], reason: str | None = None) -> str:
            return json.dumps({**base, "choices": [{"index": 0, "delta": d, "finish_reason": reason}]}, ensure_ascii=False)

        async def events():
            yield chunk({"role": "assistant", "content": ""})
            yield chunk(delta)
            yield chunk({}, "tool_calls" if "tool_calls" in delta else "stop")
            yield "[DONE]"

        return EventSourceResponse(events())

    app.add_route("/v1/chat/completions", chat, methods=["POST"])
    return app


@contextmanager
def oracle(cases: list[dict[str, Any]]):
    """The stub model on a free port in a thread of this process; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(oracle_app(cases), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("the oracle model did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


# ---------------------------------------------------------------- server


@contextmanager
def mmagent_server(llm: str, data_dir: Path, log_path: Path, timeout_s: float, extra_env: dict[str, str]):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*mmagent_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--llm", llm]
    with open(log_path, "w") as log:
        env = server_env(data_dir, extra_env, keep_openai=llm.startswith("openai:"))
        proc = subprocess.Popen(command, cwd=data_dir.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            try:
                wait_until_up(proc, url + "/v1/health", timeout_s, log_path, what="mmagent serve")
            except RuntimeError as exc:
                raise SystemExit(f"the server did not start: {exc}") from None
            yield url, proc
        finally:
            stop(proc)


def warm_up(api) -> float:
    """One short request first (lazy backends load their model on the first call), not counted."""
    import openai

    start = time.perf_counter()
    tool = {"type": "function", "function": {"name": "noop", "parameters": {"type": "dict", "properties": {}}}}
    try:
        api.chat.completions.create(
            model="mmagent", messages=[{"role": "user", "content": "Say hi."}], tools=[tool], tool_choice="none", max_tokens=8,
        )
    except openai.APIError as exc:
        print(f"warm-up request failed: {type(exc).__name__}: {exc}"[:300])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="bundled",
                        help="the server's --llm SPEC (default bundled), or 'oracle': a stub model that answers every case right")
    parser.add_argument("--limit", type=int, default=None, help="only the first N cases")
    parser.add_argument("--cases", type=Path, default=CASES)
    parser.add_argument("--json-out", type=Path, default=None, help="write per-case records and the summary here")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the server's data folder (default: a temporary one); a kept one keeps the bundled model's cache")
    parser.add_argument("--timeout-s", type=float, default=600, help="per request (default 600)")
    parser.add_argument("--start-timeout-s", type=float, default=300, help="until /v1/health answers (default 300)")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the uncounted first request that loads the model")
    parser.add_argument("--quiet", action="store_true", help="no line per case")
    args = parser.parse_args()

    from openai import OpenAI

    cases = load_cases(args.cases, args.limit)
    print(f"{len(cases)} cases from {args.cases}: " + ", ".join(f"{k} {v}" for k, v in sorted(
        Counter(category(c["id"]) for c in cases).items(), key=lambda kv: _order(kv[0]))))
    with tempfile.TemporaryDirectory(prefix="mmagent-client-tools-") as tmp, \
            (oracle(cases) if args.llm == "oracle" else _nothing()) as oracle_url:
        data_dir = (args.data_dir or Path(tmp) / "data").resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = Path(tmp) / "server.log"
        llm, extra = (("openai:oracle", {"OPENAI_BASE_URL": oracle_url, "OPENAI_API_KEY": "oracle"}) if oracle_url else (args.llm, {}))
        started = time.perf_counter()
        with mmagent_server(llm, data_dir, log_path, args.start_timeout_s, extra) as (url, proc):
            print(f"server up in {time.perf_counter() - started:.1f} s at {url} (--llm {llm}, data {data_dir})")
            api = OpenAI(base_url=url + "/v1", api_key="bench", timeout=args.timeout_s, max_retries=0)
            if not args.no_warm_up:
                print(f"warm-up request: {warm_up(api):.1f} s (not counted)")
            records = []
            for case in cases:
                record = run_case(api, case)
                records.append(record)
                if not args.quiet:
                    print(case_line(record), flush=True)
                if record["status"] is None and proc.poll() is not None:
                    print(f"the server exited with {proc.returncode}; stopping")
                    break
        problems = log_problems(log_path)
    s = summary(records)
    print()
    print_summary(s, args.llm)
    print_misses(records)
    if problems:
        print(f"server log: {len(problems)} error lines, first ones:")
        for line in problems[:8]:
            print("  " + line[:200])
    if args.json_out:
        args.json_out.write_text(json.dumps({"llm": args.llm, "summary": s, "records": records, "server_log_errors": problems},
                                            ensure_ascii=False, indent=1) + "\n")
        print(f"per-case records: {args.json_out}")


@contextmanager
def _nothing():
    yield None


if __name__ == "__main__":
    main()
