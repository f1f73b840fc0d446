"""`POST /v1/threads/{id}/runs` as server-sent events, thread history and ownership, tools."""

from __future__ import annotations

import base64

import httpx

from tests.api_support import scripted_server, sse_events
from tests.conftest import call, calls, say

def _png_1px() -> str:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (255, 0, 0)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


PNG_1PX = _png_1px()


def test_run_streams_events_and_history_is_per_user(tmp_path):
    script = (
        say("1. Compute with the calculator\n2. Answer"),
        calls(call("calculator", {"expression": "17% * 2340"})),
        say("17% of 2340 is 397.8."),
    )
    with scripted_server(tmp_path, *script) as url, httpx.Client(base_url=url, timeout=60) as http:
        with http.stream("POST", "/v1/threads/t-1/runs", json={"input": "What is 17% of 2340?"}, headers={"X-MMAGENT-User": "ada"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
        names = [name for name, _ in events]
        assert names[0] == "plan" and names[-1] == "final"
        assert names.index("tool_call") < names.index("tool_result") < names.index("token")
        assert all(name == data["type"] for name, data in events)
        final = events[-1][1]
        assert final["answer"] == "17% of 2340 is 397.8." and final["thread_id"] == "t-1"
        assert "397.8" in events[names.index("tool_result")][1]["result"]
        assert "".join(d["text"] for n, d in events if n == "token") == "17% of 2340 is 397.8."

        history = http.get("/v1/threads/t-1", headers={"X-MMAGENT-User": "ada"})
        assert history.status_code == 200
        assert [m["role"] for m in history.json()["messages"]][0] == "user"
        assert history.json()["messages"][-1]["content"] == "17% of 2340 is 397.8."
        # Another user (or the default "api" user) cannot read it, nor run on it: 404, not 403.
        for headers in ({"X-MMAGENT-User": "bob"}, {}):
            assert http.get("/v1/threads/t-1", headers=headers).status_code == 404
        other = http.post("/v1/threads/t-1/runs", json={"input": "hi"}, headers={"X-MMAGENT-User": "bob"})
        assert other.status_code == 404 and other.json()["error"]["code"] == "thread_not_found"
        assert http.get("/v1/threads/never-used").status_code == 404
        listed = http.get("/v1/threads", headers={"X-MMAGENT-User": "ada"}).json()["data"]
        assert [t["id"] for t in listed] == ["t-1"]


def test_run_reports_model_failure_as_error_event(tmp_path):
    with scripted_server(tmp_path, say("1. Answer")) as url:
        response = httpx.post(url + "/v1/threads/t-2/runs", json={"input": "hi"}, timeout=60)
        events = sse_events(response)
        assert [n for n, _ in events][-2:] == ["final", "error"]
        assert events[-1][1]["code"] == "model_error" and "ran out of replies" in events[-1][1]["message"]


def test_run_input_checks(tmp_path):
    with scripted_server(tmp_path, say("1. Look"), say("A tiny image.")) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.post("/v1/threads/bad id!/runs", json={"input": "hi"}).status_code == 400
        assert http.post("/v1/threads/t/runs", json={"input": "  "}).status_code == 400
        assert http.post("/v1/threads/t/runs", json={"input": "hi", "tools": ["nope"]}).json()["error"]["param"] == "tools"
        outside = http.post("/v1/threads/t/runs", json={"input": "hi", "images": ["/etc/passwd"]})
        assert outside.status_code == 400 and "outside the folders" in outside.json()["error"]["message"]
        assert http.post("/v1/threads/t/runs", json={"input": "hi", "images": ["data:image/png;base64,@@@"]}).status_code == 400
        not_an_image = http.post("/v1/threads/t/runs", json={"input": "hi", "images": ["data:image/png;base64,aGVsbG8gd29ybGQ="]})
        assert not_an_image.status_code == 400 and "not an image" in not_an_image.json()["error"]["message"]
        ok = http.post("/v1/threads/t/runs", json={"input": "What is this?", "images": [f"data:image/png;base64,{PNG_1PX}"]})
        assert ok.status_code == 200 and sse_events(ok)[-1][1]["answer"] == "A tiny image."
        assert list((tmp_path / "data" / "uploads").glob("*.png"))


def test_tools_list_and_invoke(tmp_path):
    with scripted_server(tmp_path, say("unused")) as url, httpx.Client(base_url=url, timeout=60) as http:
        tools = http.get("/v1/tools").json()["data"]
        calc = next(t for t in tools if t["function"]["name"] == "calculator")
        assert calc["type"] == "function" and calc["function"]["parameters"]["required"] == ["expression"]
        assert http.get("/v1/tools/calculator").json() == calc

        ok = http.post("/v1/tools/calculator/invoke", json={"expression": "2**100"})
        assert ok.status_code == 200 and ok.json() == {"ok": True, "result": str(2**100), "data": {"value": float(2**100), "exact": str(2**100)}, "artifacts": []}
        failed = http.post("/v1/tools/calculator/invoke", json={"expression": "1/0"})  # the tool ran and failed
        assert failed.status_code == 200 and failed.json()["ok"] is False and "division by zero" in failed.json()["error"]
        invalid = http.post("/v1/tools/calculator/invoke", json={"expr": "1"})  # nothing ran
        assert invalid.status_code == 422 and invalid.json()["ok"] is False and "expression" in invalid.json()["error"]
        for body in (b"{", b"[1, 2]", b'"text"'):
            bad = http.post("/v1/tools/calculator/invoke", content=body, headers={"content-type": "application/json"})
            assert bad.status_code == 400 and bad.json()["ok"] is False
        unknown = http.post("/v1/tools/nope/invoke", json={})
        assert unknown.status_code == 404 and unknown.json() == {"ok": False, "error": unknown.json()["error"]}
        assert "calculator" in unknown.json()["error"]



def test_a_lone_surrogate_in_a_body_and_dot_user_ids_are_refused_with_400(tmp_path):
    with scripted_server(tmp_path, say("1. Answer"), say("Hello.")) as url, httpx.Client(base_url=url, timeout=60) as http:
        # A broken "\ud800" escape is valid JSON but cannot be encoded as UTF-8.
        body = b'{"input": "hi \\ud800 there"}'
        refused = http.post("/v1/threads/t-s/runs", content=body, headers={"content-type": "application/json"})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "input"
        for user in ("..", ".", "..."):
            refused = http.get("/v1/threads", headers={"X-MMAGENT-User": user})
            assert refused.status_code == 400 and "not dots alone" in refused.json()["error"]["message"]
        assert http.get("/v1/threads", headers={"X-MMAGENT-User": "a..b"}).status_code == 200
