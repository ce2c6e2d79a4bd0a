"""The vLLM engine stand-in behaves like vLLM's OpenAI-compatible server, for the real clients."""
from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.helpers import wait_for
from tests.standins.engine import DEFAULT_MODEL, EngineStandin

KEY = "engine-test-key"




@pytest.fixture
def engine():
    with EngineStandin(api_key=KEY) as e:
        yield e
        assert e.errors == []


def test_health_is_503_until_startup_delay_then_200():
    # No clock in the assertions: a delay far longer than the test, then none.
    with EngineStandin(api_key=KEY, startup_delay=600) as e:
        assert httpx.get(e.url + "/health").status_code == 503
        assert httpx.get(e.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 503
        assert not e.is_healthy()
        e.configure(startup_delay=0)
        wait_for(lambda: httpx.get(e.url + "/health").status_code == 200)
        e.configure(startup_delay=600)
        e.reset_clock()
        assert httpx.get(e.url + "/health").status_code == 503
        assert not e.is_healthy()


def test_openai_client_lists_models_and_rejects_a_wrong_key(engine):
    client = openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY, max_retries=0)
    models = client.models.list()
    assert [m.id for m in models.data] == [DEFAULT_MODEL]
    assert models.data[0].owned_by == "vllm" and models.data[0].object == "model"
    assert isinstance(models.data[0].created, int)

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=engine.url + "/v1", api_key="wrong", max_retries=0).models.list()
    r = httpx.get(engine.url + "/v1/models")
    assert r.status_code == 401 and r.json() == {"error": "Unauthorized"}
    # /health needs no key, like vLLM
    assert httpx.get(engine.url + "/health").status_code == 200


def test_chat_completion_with_openai_client_plain_and_streaming(engine):
    client = openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY, max_retries=0)
    out = client.chat.completions.create(model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert out.object == "chat.completion" and out.model == DEFAULT_MODEL
    assert out.choices[0].message.role == "assistant" and out.choices[0].message.content
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens

    short = client.chat.completions.create(model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}],
                                           max_tokens=2)
    assert short.choices[0].finish_reason == "length" and len(short.choices[0].message.content.split()) == 2

    chunks = list(client.chat.completions.create(model=DEFAULT_MODEL, stream=True,
                                                 messages=[{"role": "user", "content": "hi"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == out.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other/model", messages=[{"role": "user", "content": "hi"}])
    comp = client.completions.create(model=DEFAULT_MODEL, prompt="hello")
    assert comp.choices[0].text


def test_no_api_key_configured_means_no_auth():
    with EngineStandin() as e:
        r = httpx.get(e.url + "/v1/models")
        assert r.status_code == 200
        body = r.json()
        assert body["object"] == "list" and body["data"][0]["id"] == DEFAULT_MODEL


def test_never_healthy_mode(engine):
    engine.set_mode("never_healthy")
    for _ in range(5):
        assert httpx.get(engine.url + "/health").status_code == 503
        time.sleep(0.01)
    engine.set_mode("healthy")
    assert httpx.get(engine.url + "/health").status_code == 200


def test_crash_mode_500_reset_and_refused(engine):
    engine.set_mode("crash")
    assert httpx.get(engine.url + "/health").status_code == 500
    r = httpx.get(engine.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 500
    with pytest.raises(openai.InternalServerError):
        openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY, max_retries=0).models.list()

    engine.configure(crash_style="reset")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(engine.url + "/health")

    url = engine.url
    engine.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health")


def test_wrong_model_mode(engine):
    engine.set_mode("wrong_model")
    assert httpx.get(engine.url + "/health").status_code == 200
    ids = [m.id for m in openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY).models.list().data]
    assert ids == ["wrong-org/not-the-served-model"]


def test_requests_are_recorded_without_the_authorization_value(engine):
    openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY).models.list()
    recs = engine.requests("/v1/models")
    assert len(recs) == 1 and recs[0].status == 200 and recs[0].method == "GET" and recs[0].pod_id is None
    assert recs[0].headers["authorization"] == "<redacted>"
    assert all(KEY not in v for r in engine.requests() for v in r.headers.values())


def test_one_engine_serves_several_pods_by_path_prefix_and_host_header(engine):
    engine.configure(pod_id="podslow", startup_delay=0.3)
    engine.configure(pod_id="podwrong", mode="wrong_model")
    fast, slow = engine.proxy_url("podfast"), engine.proxy_url("podslow")
    assert fast == f"{engine.url}/pods/podfast-8000"
    assert engine.proxy_url_template.format(pod_id="podfast", port=8000) == fast
    assert httpx.get(fast + "/health").status_code == 200
    assert httpx.get(slow + "/health").status_code == 503
    wait_for(lambda: httpx.get(slow + "/health").status_code == 200)

    client = openai.OpenAI(base_url=engine.proxy_url("podwrong") + "/v1", api_key=KEY)
    assert [m.id for m in client.models.list().data] == ["wrong-org/not-the-served-model"]
    # the un-prefixed engine is unaffected by per-pod overrides
    assert [m.id for m in openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY).models.list().data] == [DEFAULT_MODEL]

    # Host-header routing, as RunPod's proxy host names look
    r = httpx.get(engine.url + "/health", headers={"Host": "podslow-8000.proxy.runpod.net"})
    assert r.status_code == 200
    assert engine.requests("/health", pod_id="podslow")[-1].headers["host"] == "podslow-8000.proxy.runpod.net"

    # plain /pods/{id} prefix works too
    assert httpx.get(f"{engine.url}/pods/podfast/health").status_code == 200


def test_gate_makes_the_proxy_answer_502_for_a_pod_that_is_not_running(engine):
    started: dict[str, float] = {}
    engine.set_gate(lambda pod_id: started.get(pod_id))
    engine.configure(startup_delay=0.2)
    url = engine.proxy_url("gated")
    assert httpx.get(url + "/health").status_code == 502
    started["gated"] = time.monotonic()
    assert httpx.get(url + "/health").status_code == 503
    wait_for(lambda: httpx.get(url + "/health").status_code == 200)
    del started["gated"]
    assert httpx.get(url + "/health").status_code == 502
    engine.set_gate(None)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city", "days"]}}}


def test_a_request_with_tools_gets_a_well_formed_tool_call(engine):
    client = openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY, max_retries=0)
    out = client.chat.completions.create(model=DEFAULT_MODEL, tools=[WEATHER], tool_choice="auto",
                                         messages=[{"role": "user", "content": "Weather in Paris?"}])
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 1}
    # tool_choice "none" (or no tools) is a plain answer
    plain = client.chat.completions.create(model=DEFAULT_MODEL, tools=[WEATHER], tool_choice="none",
                                           messages=[{"role": "user", "content": "hi"}])
    assert plain.choices[0].message.content and not plain.choices[0].message.tool_calls


def test_broken_tool_parser_fault_returns_the_call_as_plain_text(engine):
    engine.configure(tool_parser="broken")
    client = openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY, max_retries=0)
    out = client.chat.completions.create(model=DEFAULT_MODEL, tools=[WEATHER],
                                         messages=[{"role": "user", "content": "Weather in Paris?"}])
    message = out.choices[0].message
    assert not message.tool_calls and out.choices[0].finish_reason == "stop"
    assert message.content.startswith("<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris")
    with pytest.raises(ValueError, match="tool_parser must be one of"):
        engine.configure(tool_parser="flaky")


def test_ignore_eos_streams_exactly_max_tokens_and_metrics_count_them(engine):
    from prometheus_client.parser import text_string_to_metric_families

    engine.configure(spec_acceptance=0.6)
    client = openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY, max_retries=0)
    chunks = list(client.chat.completions.create(model=DEFAULT_MODEL, stream=True, max_tokens=25,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "hi"}],
                                                 extra_body={"ignore_eos": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 25 and chunks[-1].usage.completion_tokens == 25
    r = httpx.get(engine.url + "/metrics")        # no key, like vLLM
    assert r.status_code == 200
    samples = {s.name: s.value for f in text_string_to_metric_families(r.text) for s in f.samples}
    assert samples["vllm:generation_tokens_total"] == 25
    assert samples["vllm:spec_decode_num_accepted_tokens_total"] / samples["vllm:spec_decode_num_draft_tokens_total"] \
        == pytest.approx(0.6)
    assert samples["vllm:num_requests_running"] == 0 and samples["vllm:num_requests_waiting"] == 0


def test_fail_every_answers_every_nth_completion_with_a_500(engine):
    engine.configure(fail_every=3)
    client = openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY, max_retries=0)
    outcomes = []
    for _ in range(6):
        try:
            client.chat.completions.create(model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}])
            outcomes.append("ok")
        except openai.InternalServerError:
            outcomes.append("500")
    assert outcomes == ["ok", "ok", "500", "ok", "ok", "500"]


def test_streams_beyond_capacity_are_reported_waiting(engine):
    """Six streams held at their first token against a capacity of two: the gauges say 2 running,
    4 waiting, KV cache full (no clock in the assertion: the streams wait until released)."""
    import threading

    engine.configure(first_token_delay=30.0, capacity=2)
    client = openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY, max_retries=0, timeout=60)

    def one():
        try:
            for _ in client.chat.completions.create(model=DEFAULT_MODEL, stream=True,
                                                    messages=[{"role": "user", "content": "hi"}]):
                pass
        except Exception:
            pass

    threads = [threading.Thread(target=one, daemon=True) for _ in range(6)]
    for t in threads:
        t.start()

    def gauges():
        text = httpx.get(engine.url + "/metrics").text
        values = {ln.split("{")[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if not ln.startswith("#")}
        return values if values["vllm:num_requests_waiting"] == 4 else None

    values = wait_for(gauges)
    assert values["vllm:num_requests_running"] == 2 and values["vllm:kv_cache_usage_perc"] == 1.0
    engine.stop()      # releases the held streams
