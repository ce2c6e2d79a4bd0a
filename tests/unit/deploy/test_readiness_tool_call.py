"""The readiness gate's tool-call check, against scripted engine answers."""
from __future__ import annotations

import json

import httpx
import pytest

from infra.deploy.readiness_check import Gate, ReadinessError, wait_ready

MODEL = "glm-5.2-fp8"


def engine(message: dict, seen: list):
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(200)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": MODEL}]})
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": message}]})
    return httpx.MockTransport(handle)


def gate() -> Gate:
    return Gate(base_url="http://node", api_key="k" * 30, model_name=MODEL, timeout_seconds=5, poll_seconds=0.01,
                tool_call_check=True)


def call(name="get_weather", arguments='{"city": "Paris"}') -> dict:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}]}


def test_a_well_formed_tool_call_passes_and_the_request_leaves_the_choice_to_the_parser():
    seen: list = []
    wait_ready(gate(), log=lambda m: None, transport=engine(call(), seen))
    [body] = seen
    assert body["tool_choice"] == "auto" and body["tools"][0]["function"]["name"] == "get_weather"


def test_a_tool_call_returned_as_text_fails_naming_the_parser():
    text = {"role": "assistant", "content": '<tool_call>get_weather\n{"city": "Paris"}</tool_call>'}
    with pytest.raises(ReadinessError, match="came back as plain text.*tool-call parser") as e:
        wait_ready(gate(), log=lambda m: None, transport=engine(text, []))
    assert e.value.step == "tool-call"


@pytest.mark.parametrize("bad", [call(arguments="{city: Paris"), call(name="other"), call(arguments='["Paris"]')])
def test_a_malformed_tool_call_fails(bad):
    with pytest.raises(ReadinessError, match="malformed tool call"):
        wait_ready(gate(), log=lambda m: None, transport=engine(bad, []))


# ------------------------------------------------------------- through the engine stand-in over HTTP

def standin_gate(url: str) -> Gate:
    return Gate(base_url=url, api_key="k" * 30, model_name=MODEL, timeout_seconds=10, poll_seconds=0.05,
                tool_call_check=True)


def test_gate_passes_when_the_engine_parses_the_tool_call():
    from tests.standins.engine import EngineStandin

    logs: list = []
    with EngineStandin(served_model_name=MODEL, api_key="k" * 30) as e:
        wait_ready(standin_gate(e.url), log=logs.append)
        [req] = [r for r in e.requests("/v1/chat/completions")]
        assert req.json["tools"][0]["function"]["name"] == "get_weather"
    assert "tool call answered as a well-formed tool_calls entry" in logs


def test_gate_fails_when_the_engine_returns_the_tool_call_as_text():
    from tests.standins.engine import EngineStandin

    with EngineStandin(served_model_name=MODEL, api_key="k" * 30, tool_parser="broken") as e:
        with pytest.raises(ReadinessError, match="came back as plain text") as err:
            wait_ready(standin_gate(e.url), log=lambda m: None)
    assert err.value.step == "tool-call" and "<tool_call>get_weather" in str(err.value)
