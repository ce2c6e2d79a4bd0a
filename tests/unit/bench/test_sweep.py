"""A sweep against the engine stand-in, untimed: what it counts (requests, tokens, errors) and
the record's shape. Timing figures are checked end to end (tests/e2e/test_bench.py)."""
from __future__ import annotations

import pytest

from infra.bench import sweep, target
from infra.bench.cost import HourlyCost
from infra.bench.workload import Workload
from infra.common.errors import GlmserveError
from tests.standins.engine import EngineStandin

KEY = "sk-glm-unit-test-key-0123456789"
MODEL = "glm-5.2-fp8"


def _target(url: str, key: str = KEY):
    return target.resolve("dev", {"modelName": MODEL, "provider": "none", "capacity": {"max_concurrency": 4.4}},
                          {"apiKey": key}, url + "/v1")


@pytest.fixture
def engine():
    with EngineStandin(MODEL, api_key=KEY) as e:
        yield e
        assert e.errors == []


def test_every_request_is_counted_errors_included(engine):
    engine.configure(fail_every=4)          # every 4th completion request answers 500
    wl = Workload(levels=(1, 2), input_tokens=50, shared_prefix_tokens=20, output_tokens=7, output_spread=0,
                  requests_per_level=8)
    run = sweep.run(_target(engine.url), wl, HourlyCost(36.0, "command line"))
    for row in run["levels"]:
        assert row["requests"] == 8 and row["errors"] == 2 and row["error_rate"] == 0.25
        assert row["error_kinds"] == {"InternalServerError (500)": 2}
        assert row["output_tokens"] == 6 * 7            # ignore_eos: exactly max_tokens per request
        assert row["engine"]["spec_decode_acceptance"] == pytest.approx(0.7)
    sent = [r.json for r in engine.requests("/v1/chat/completions")]
    assert all(b["stream"] and b["max_tokens"] == 7 and b["ignore_eos"] for b in sent)
    prefixes = {b["messages"][0]["content"] for b in sent}
    tails = {b["messages"][1]["content"] for b in sent}
    assert len(prefixes) == 1 and len(next(iter(prefixes)).split()) == 20     # one shared prefix
    assert len(tails) == len(sent)                                           # a unique tail each
    assert run["planner_max_concurrency"] == 4.4 and run["cost_per_hour"]["usd_per_hour"] == 36.0
    assert KEY not in str(run)


def test_answer_lengths_vary_around_the_mean_and_are_counted_exactly(engine):
    wl = Workload(levels=(4,), input_tokens=20, shared_prefix_tokens=10, output_tokens=10, requests_per_level=40)
    assert wl.output_range() == (5, 15)
    run = sweep.run(_target(engine.url), wl, None)
    asked = [r.json["max_tokens"] for r in engine.requests("/v1/chat/completions")]
    assert min(asked) >= 5 and max(asked) <= 15 and len(set(asked)) > 3
    assert run["levels"][0]["output_tokens"] == sum(asked)      # ignore_eos: every answer is max_tokens long


def test_a_level_stops_at_its_request_budget(engine):
    wl = Workload(levels=(3,), input_tokens=20, shared_prefix_tokens=10, output_tokens=2, requests_per_level=5)
    run = sweep.run(_target(engine.url), wl, None)
    assert run["levels"][0]["requests"] == 5 and run["levels"][0]["usd_per_million_output_tokens"] is None
    assert len(engine.requests("/v1/chat/completions")) == 5


def test_a_level_sends_no_new_request_once_its_time_is_spent(engine):
    # Each request takes at least 0.5 s; the level's time (0.1 s) is spent by the time the first
    # ones finish, so each worker sends exactly one request of the budget of 100.
    engine.configure(first_token_delay=0.5)
    wl = Workload(levels=(2,), input_tokens=20, shared_prefix_tokens=10, output_tokens=2, requests_per_level=100,
                  seconds_per_level=0.1)
    run = sweep.run(_target(engine.url), wl, None)
    assert run["levels"][0]["requests"] == 2 and run["levels"][0]["errors"] == 0


def test_wrong_key_and_unreachable_endpoint_fail_before_any_load(engine):
    wrong = "sk-glm-not-the-right-key-987654"
    with pytest.raises(GlmserveError) as e:
        target.preflight(_target(engine.url, wrong))
    assert "refused the API key (401)" in str(e.value) and wrong not in str(e.value)
    assert engine.requests("/v1/chat/completions") == []
    url = engine.url
    engine.stop()
    with pytest.raises(GlmserveError) as e:
        target.preflight(_target(url))
    assert "the endpoint is not reachable" in str(e.value)


def test_a_stack_without_endpoint_or_key_names_what_is_missing(monkeypatch):
    monkeypatch.delenv(target.API_KEY_ENV, raising=False)
    with pytest.raises(GlmserveError) as e:
        target.resolve("dev", {"provider": "none", "modelName": MODEL}, {})
    text = str(e.value)
    assert "baseUrl: stack dev has no endpoint in its outputs" in text and "--base-url" in text
    assert "apiKey: stack dev exports no API key" in text


def test_a_request_past_its_timeout_is_an_error(engine):
    engine.configure(first_token_delay=30.0)       # far beyond the request timeout
    wl = Workload(levels=(2,), input_tokens=20, shared_prefix_tokens=10, output_tokens=2, requests_per_level=2,
                  request_timeout=0.3)
    row = sweep.run(_target(engine.url), wl, None)["levels"][0]
    assert row["requests"] == 2 and row["error_kinds"] == {"Timeout": 2} and row["error_rate"] == 1.0
