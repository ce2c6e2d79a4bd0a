"""The engine's /metrics: vLLM's text format parsed with prometheus_client, summarised per level."""
from __future__ import annotations

import pytest

from infra.bench.metrics import metrics_url, parse, summarise

VLLM_TEXT = """\
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="glm-5.2-fp8"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="glm-5.2-fp8"} 0.25
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="glm-5.2-fp8"} 3.0
# HELP vllm:spec_decode_num_accepted_tokens Number of accepted tokens.
# TYPE vllm:spec_decode_num_accepted_tokens counter
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="glm-5.2-fp8"} 140.0
# HELP vllm:spec_decode_num_draft_tokens Number of draft tokens.
# TYPE vllm:spec_decode_num_draft_tokens counter
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="glm-5.2-fp8"} 200.0
"""


def test_parse_sums_label_sets_and_keeps_counter_sample_names():
    values = parse(VLLM_TEXT)
    assert values["vllm:kv_cache_usage_perc"] == 0.5
    assert values["vllm:num_requests_waiting"] == 3.0
    assert values["vllm:spec_decode_num_accepted_tokens_total"] == 140.0


def test_summary_of_a_level_gauges_sampled_and_acceptance_from_counter_increase():
    before = {"vllm:spec_decode_num_accepted_tokens_total": 100.0, "vllm:spec_decode_num_draft_tokens_total": 200.0}
    after = {"vllm:spec_decode_num_accepted_tokens_total": 400.0, "vllm:spec_decode_num_draft_tokens_total": 600.0}
    samples = [{"vllm:kv_cache_usage_perc": 0.2, "vllm:num_requests_waiting": 0.0},
               {"vllm:gpu_cache_usage_perc": 0.6, "vllm:num_requests_waiting": 4.0}]   # V0's name is read too
    m = summarise(before, samples, after)
    assert m.spec_decode_acceptance == pytest.approx(0.75)
    assert m.kv_cache_usage_mean == pytest.approx(0.4) and m.kv_cache_usage_max == pytest.approx(0.6)
    assert m.requests_waiting_max == 4.0 and m.samples == 2


def test_no_speculative_decoding_means_no_acceptance():
    m = summarise({}, [{"vllm:kv_cache_usage_perc": 0.1}], {})
    assert m.spec_decode_acceptance is None and m.requests_waiting_mean is None


def test_metrics_live_at_the_server_root():
    assert metrics_url("https://x.modal.run/v1") == "https://x.modal.run/metrics"
    assert metrics_url("http://127.0.0.1:8000/pods/abc-8000/v1/") == "http://127.0.0.1:8000/pods/abc-8000/metrics"
