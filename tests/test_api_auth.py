"""The optional API key: every /v1 call but /v1/health needs it; the UI at / does not."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.api_support import scripted_server
from tests.conftest import say

KEY = "s3cret-key"


def test_api_key_guards_v1_but_not_health(tmp_path):
    with scripted_server(tmp_path, say("1. Answer"), say("Hello."), api_key=KEY) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/v1/health").json() == {"status": "ok"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer \u043a\u043b\u044e\u0447".encode()}):
            for method, path in (("GET", "/v1/models"), ("GET", "/v1/tools"), ("POST", "/v1/tools/calculator/invoke"),
                                 ("POST", "/v1/chat/completions"), ("GET", "/v1/threads/x"), ("POST", "/v1/threads/x/runs")):
                response = http.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
                body = response.json()
                if path.startswith("/v1/tools"):  # the tool endpoints answer in their own shape
                    assert body["ok"] is False and "API key" in body["error"]
                else:
                    assert body["error"]["type"] == "authentication_error" and body["error"]["code"] == "invalid_api_key"
        good = {"Authorization": f"Bearer {KEY}"}
        assert http.get("/v1/models", headers=good).status_code == 200
        assert http.post("/v1/tools/calculator/invoke", headers=good, json={"expression": "1+1"}).json()["result"] == "2"

        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
        api = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        reply = api.chat.completions.create(model="mmagent", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello."


def test_empty_key_means_no_auth(tmp_path):
    with scripted_server(tmp_path, say("unused"), api_key="  ") as url:
        assert httpx.get(url + "/v1/models", timeout=30).status_code == 200


def test_ui_stays_open_and_api_works_with_ui_mounted(tmp_path):
    pytest.importorskip("gradio")
    ui = pytest.importorskip("apps.ui")
    if not hasattr(ui, "build_ui"):
        pytest.skip("the UI is not there yet")
    with scripted_server(tmp_path, say("1. Answer"), say("Hello."), ui=True, api_key=KEY) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/").status_code == 200  # no key: the UI serves the person at the machine
        assert http.get("/v1/models").status_code == 401
        assert http.get("/v1/no-such-thing", headers={"Authorization": f"Bearer {KEY}"}).json()["error"]["code"] == "unknown_endpoint"
        reply = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0).chat.completions.create(
            model="mmagent", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello."
