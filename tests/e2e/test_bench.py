"""`glmserve bench` end to end: the real Pulumi engine deploys the `dev` stack (none provider),
bench reads its outputs (API key, model, the planner's max_concurrency) and drives the engine
stand-in, whose scripted timing it must recover: the knee at the stand-in's capacity, the
single-stream rate, the cost per million tokens from a known $/h.

Timing figures are asserted with wide bounds (a loaded 2-core machine only makes things
slower, never faster than scripted) and no test waits on a clock of its own."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_none import outputs
from tests.helpers import run_glmserve
from tests.standins.engine import EngineStandin

pytestmark = pytest.mark.e2e

# A capacity between two swept levels: at 4 streams one stream's gap between requests is
# taken up by the other three, so the knee is the first level at or above the capacity.
CAPACITY, TPS, FIRST_TOKEN_DELAY = 3, 100.0, 0.01
KNEE = 4
SMALL = ("--input-tokens", "200", "--shared-prefix-tokens", "100", "--output-tokens", "50")


def test_bench_recovers_the_scripted_engine_and_compares_runs(pulumi_env, project, tmp_path):
    env = pulumi_env
    run_glmserve("up", "--stack", "dev", env=env, check=True)
    key = outputs(env, project, "dev", secrets=True)["apiKey"]

    # The none provider serves nothing: bench says so and how to point it at an endpoint.
    proc = run_glmserve("bench", "--stack", "dev", env=env)
    assert proc.returncode == 2 and "baseUrl: stack dev has no endpoint in its outputs" in proc.stderr
    assert "--base-url" in proc.stderr and "Traceback" not in proc.stderr

    with EngineStandin("glm-5.2-fp8", api_key=key, first_token_delay=FIRST_TOKEN_DELAY, tokens_per_second=TPS,
                       capacity=CAPACITY) as engine:
        base = engine.url + "/v1"
        proc = run_glmserve("bench", "--stack", "dev", "--base-url", base, "--levels", "1,4,16", *SMALL,
                            "--cost-per-hour", "36", "--json", env=env, check=True)
        assert key not in proc.stdout + proc.stderr
        run = json.loads(proc.stdout)
        assert set(run) >= {"id", "stack", "model", "workload", "cost_per_hour", "planner_max_concurrency",
                            "knee_concurrency", "levels", "saved", "chart"}
        levels = {r["concurrency"]: r for r in run["levels"]}
        assert list(levels) == [1, 4, 16]
        # The knee is the first swept level at the stand-in's capacity; the planner's figure sits beside it.
        assert run["knee_concurrency"] == KNEE and levels[KNEE]["best"]
        assert run["planner_max_concurrency"] == pytest.approx(4.40, abs=0.01)
        # One stream gets the scripted rate; the plateau is capacity x rate (each answer's tokens are
        # counted as spread evenly from its first token, hence a few % of slack above).
        assert 0.5 * TPS <= levels[1]["output_tokens_per_s"] <= 1.1 * TPS
        assert 0.5 * CAPACITY * TPS <= levels[16]["output_tokens_per_s"] <= 1.1 * CAPACITY * TPS
        assert levels[1]["ttft_s"]["p50"] >= FIRST_TOKEN_DELAY
        assert levels[16]["tpot_s"]["p50"] >= 3 / TPS     # 16 streams share 3 streams' rate
        for r in run["levels"]:
            assert r["requests"] == max(8, 4 * r["concurrency"]) and r["errors"] == 0
            # $/Mtok exactly from $36/h and the measured rate.
            assert r["usd_per_million_output_tokens"] == pytest.approx(36 / (r["output_tokens_per_s"] * 3600) * 1e6,
                                                                       rel=1e-9)
            assert r["engine"]["spec_decode_acceptance"] == pytest.approx(0.7)
        # Answers vary around 50 tokens; each is exactly as long as asked (ignore_eos), all counted.
        asked = [q.json["max_tokens"] for q in engine.requests("/v1/chat/completions")]
        assert sum(r["output_tokens"] for r in run["levels"]) == sum(asked) and 25 <= min(asked) <= max(asked) <= 75
        assert levels[16]["engine"]["requests_waiting_max"] > 0 and levels[1]["engine"]["requests_waiting_max"] == 0
        saved = Path(run["saved"])
        assert saved.parent == Path(env["GLMSERVE_HOME"]) / "bench" / "dev"
        assert json.loads(saved.read_text())["knee_concurrency"] == KNEE
        assert Path(run["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # A second run with injected faults, in the terminal format, compared with the first.
        engine.configure(fail_every=4)
        chart = tmp_path / "cmp.png"
        proc = run_glmserve("bench", "--stack", "dev", "--base-url", base, "--levels", "4", "--requests", "8",
                            *SMALL, "--compare", "--chart", str(chart), env=env, check=True)
        assert key not in proc.stdout + proc.stderr
        assert f"compared with run {run['id']}" in proc.stdout and "25.0" in proc.stdout   # error %
        assert "errors: c=4: InternalServerError (500) x2" in proc.stdout
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        second = json.loads(sorted(saved.parent.glob("*.json"))[-1].read_text())
        assert second["levels"][0]["errors"] == 2 and second["levels"][0]["error_rate"] == 0.25
        assert second["cost_per_hour"] is None             # the none provider has no price: $/Mtok needs one
        assert "no cost per hour known" in proc.stdout

        # A wrong key is refused before any load, and neither key is printed.
        engine.configure(api_key="sk-glm-some-other-key-0123456789abcdef")
        engine.clear_requests()
        proc = run_glmserve("bench", "--stack", "dev", "--base-url", base, env=env)
        assert proc.returncode == 2 and "refused the API key (401)" in proc.stderr
        assert key not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
        assert engine.requests("/v1/chat/completions") == []

    # The endpoint is gone: a clear error naming it.
    proc = run_glmserve("bench", "--stack", "dev", "--base-url", base, env=env)
    assert proc.returncode == 2 and f"baseUrl: the endpoint is not reachable; got '{base}'" in proc.stderr
