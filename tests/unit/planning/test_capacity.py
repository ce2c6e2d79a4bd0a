"""Capacity model: KV bytes, weights and the memory split, against published vLLM figures."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.planning import capacity as cap, kv_cache, model_config, sources, weights
from infra.spec.profiles import load_profile

GIB = 1 << 30


@pytest.fixture(scope="module")
def glm():
    p = load_profile("glm-5.2-fp8")
    return p, model_config.arch_from_profile(p)


def seed_inputs(glm, **kw):
    p, a = glm
    base = dict(arch=a, profile=p, gpu_type="H200", gpus=8, tp=8, kv_cache_dtype="fp8", max_model_len=131072,
                gpu_memory_utilization=0.92, enforce_eager=True, speculative_method="mtp", speculative_tokens=5)
    base.update(kw)
    return cap.CapacityInputs(**base)


# ---------------------------------------------------------------- KV bytes per token

def test_glm_indexer_layers_follow_vllm_rule(glm):
    _, a = glm
    assert a.attention == "mla+dsa"
    assert a.indexer_layers == (0, 1, 2, *range(6, 75, 4))
    assert len(a.indexer_layers) == 21


def test_glm_fp8_kv_bytes_without_mtp(glm):
    _, a = glm
    kv = kv_cache.kv_layout(a, tp=8, kv_cache_dtype="fp8", draft_layers=0)
    assert kv.cache_format == "fp8_ds_mla"
    assert kv.bytes_per_token == 53_940 == 78 * 656 + 21 * 132
    assert {(g.name, g.layers, g.bytes_per_token) for g in kv.groups} == {
        ("MLA latent", 78, 656), ("DSA indexer", 21, 132)}
    assert kv.block_size == 64


def test_glm_mtp_adds_one_mla_layer_and_one_indexer(glm):
    _, a = glm
    kv = kv_cache.kv_layout(a, tp=8, kv_cache_dtype="fp8", draft_layers=a.mtp_layers)
    assert kv.bytes_per_token == 53_940 + 656 + 132


def test_glm_bf16_kv_is_latent_times_two_and_indexer_stays_fp8(glm):
    _, a = glm
    for dtype in ("auto", "bfloat16"):
        kv = kv_cache.kv_layout(a, tp=8, kv_cache_dtype=dtype)
        assert kv.bytes_per_token == 78 * (512 + 64) * 2 + 21 * 132


def test_mla_kv_is_not_divided_by_tp(glm):
    _, a = glm
    sizes = {kv_cache.kv_layout(a, tp=tp, kv_cache_dtype="fp8").bytes_per_token for tp in (1, 2, 4, 8)}
    assert sizes == {53_940}


def test_vllm_023_layout_gives_every_layer_an_indexer():
    cfg = dict(load_profile("glm-5.2-fp8")["config"])
    for k in ("index_topk_freq", "index_topk_offset", "index_skip_topk_offset"):
        cfg.pop(k)
    a = model_config.arch_from_config(cfg)
    assert len(a.indexer_layers) == 78
    assert kv_cache.kv_layout(a, 8, "fp8").bytes_per_token == 78 * (656 + 132)


def test_index_topk_pattern_wins():
    cfg = dict(load_profile("glm-5.2-fp8")["config"], index_topk_pattern="F" + "S" * 76 + "F")
    assert model_config.arch_from_config(cfg).indexer_layers == (0, 77)


def test_kimi_k2_published_kv_tokens():
    a = model_config.arch_from_profile(load_profile("kimi-k2"))
    assert a.attention == "mla" and a.num_layers == 61 and a.mtp_layers == 0
    kv = kv_cache.kv_layout(a, tp=8, kv_cache_dtype="auto")
    assert kv.bytes_per_token == 61 * 1152
    assert kv.block_size == 64
    available = 46.80 * GIB
    assert kv_cache.kv_tokens(available, kv.bytes_per_token, kv.block_size) == 715_072
    assert 715_072 == math.floor(available / (61 * 1152 * 64)) * 64


def test_kimi_fp8_mla_kv_is_one_byte_per_element():
    a = model_config.arch_from_profile(load_profile("kimi-k2"))
    assert kv_cache.kv_layout(a, tp=8, kv_cache_dtype="fp8").bytes_per_token == 61 * 576


def test_mla_block_size_on_blackwell_follows_data():
    a = model_config.arch_from_profile(load_profile("kimi-k2"))
    assert kv_cache.kv_layout(a, 8, "auto", gpu_type="B200").block_size == 128
    glm_a = model_config.arch_from_profile(load_profile("glm-5.2-fp8"))
    assert kv_cache.kv_layout(glm_a, 8, "fp8", gpu_type="B200").block_size == 64


def test_gqa_kv_divides_heads_by_tp_at_least_one():
    a = model_config.arch_from_profile(load_profile("llama-3.1-70b"))
    assert a.attention == "gqa" and a.num_kv_heads == 8 and a.head_dim == 128
    per = lambda tp, dt="auto": kv_cache.kv_layout(a, tp, dt).bytes_per_token  # noqa: E731
    assert per(8) == 80 * 2 * 1 * 128 * 2
    assert per(4) == 80 * 2 * 2 * 128 * 2
    assert per(1) == 80 * 2 * 8 * 128 * 2
    assert per(16) == per(8)          # kv_heads < tp: replicated, one head per rank
    assert per(8, "fp8") == per(8) // 2
    assert kv_cache.kv_layout(a, 8, "auto").block_size == 16


def test_gqa_ceil_when_kv_heads_do_not_divide():
    cfg = {"num_hidden_layers": 10, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 4,
           "vocab_size": 32000, "max_position_embeddings": 8192}
    a = model_config.arch_from_config(cfg)
    assert kv_cache.kv_layout(a, 8, "auto").bytes_per_token == 10 * 2 * 1 * 128 * 2
    assert kv_cache.kv_layout(a, 2, "auto").bytes_per_token == 10 * 2 * 2 * 128 * 2


def test_config_json_with_text_config_and_head_dim_for_mla():
    cfg = {"model_type": "kimi_k25", "text_config": dict(load_profile("kimi-k2")["config"], head_dim=192)}
    a = model_config.arch_from_config(cfg)
    assert a.attention == "mla" and kv_cache.kv_layout(a, 8, "auto").bytes_per_token == 61 * 1152


def test_hybrid_models_are_refused():
    with pytest.raises(sources.ConfigError):
        model_config.arch_from_config({"model_type": "qwen3_next", "num_hidden_layers": 4, "hidden_size": 8,
                              "num_attention_heads": 2})


def test_missing_layers_is_a_config_error():
    with pytest.raises(sources.ConfigError) as e:
        model_config.arch_from_config({"hidden_size": 8})
    assert e.value.key == "config.num_hidden_layers"


# ---------------------------------------------------------------- weights

def test_glm_config_reproduces_checkpoint_size(glm):
    p, a = glm
    w = weights.estimate_weights(a, p, tp=8, load_mtp=True)
    assert w.estimated_checkpoint_gib == pytest.approx(703.74, rel=0.01)


def test_glm_weights_proxy_within_2_percent(glm):
    p, a = glm
    for mtp in (True, False):
        w = weights.estimate_weights(a, p, tp=8, load_mtp=mtp)
        assert w.per_rank_gib == pytest.approx(94.46, rel=0.02)
        assert w.per_rank_gib > 703.74 / 8      # the naive checkpoint / TP underestimates
    with_mtp = weights.estimate_weights(a, p, 8, True).per_rank_gib
    without = weights.estimate_weights(a, p, 8, False).per_rank_gib
    assert 0.5 < with_mtp - without < 2.0          # one MoE layer / 8


def test_glm_profile_states_its_weights_assumption(glm):
    p, _ = glm
    assert p["weights"]["per_rank_unattributed_gib"] > 0
    assert "94.46" in p["weights"]["source"]
    assert any("94.46" in a for a in p["assumptions"])


def test_weights_override_wins(glm):
    r = cap.evaluate(seed_inputs(glm, weights_gib=80.0))
    assert r.weights.per_rank_gib == 80.0 and r.weights.source == "override"


def test_bf16_checkpoint_size_from_config():
    p = load_profile("glm-5.2-bf16")
    a = model_config.arch_from_profile(p)
    w = weights.estimate_weights(a, p, 8, True)
    assert w.estimated_checkpoint_gib == pytest.approx(1403, rel=0.01)
    assert w.per_rank_gib > 170


def test_gqa_weights_from_config_only():
    p = load_profile("llama-3.1-70b")
    w = weights.estimate_weights(model_config.arch_from_profile(p), p, 8, False)
    assert w.source == "config"
    assert w.estimated_checkpoint_gib == pytest.approx(70.55e9 * 2 / GIB, rel=0.02)
    assert w.per_rank_gib == pytest.approx(w.estimated_checkpoint_gib / 8, rel=0.05)


def test_quantization_config_formats():
    base = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 100}
    fmt = lambda q: model_config.arch_from_config(dict(base, quantization_config=q)).weight_format  # noqa: E731
    assert fmt({"quant_method": "fp8"}) == "fp8"
    assert fmt({"quant_method": "awq", "bits": 4, "group_size": 128}) == "int4"
    assert fmt({"quant_method": "mxfp4"}) == "mxfp4"
    assert model_config.arch_from_config(base).weight_bytes == 2.0


# ---------------------------------------------------------------- the memory split

def test_requested_memory_h200_at_092(glm):
    r = cap.evaluate(seed_inputs(glm))
    assert r.requested_gib == pytest.approx(129.17, abs=0.01)


def test_seed_flags_on_8x_h200(glm):
    r = cap.evaluate(seed_inputs(glm))
    assert r.fits, r.errors
    assert 27 <= r.available_kv_gib <= 32
    assert 540_000 <= r.kv_cache_tokens <= 620_000
    assert 4.1 <= r.max_concurrency <= 4.7
    assert r.kv.bytes_per_token == 54_728
    assert r.kv_cache_tokens == r.num_blocks * 64
    assert r.max_concurrency == r.num_blocks / (131_072 // 64)
    assert r.kv_gib_per_request == pytest.approx(6.7, abs=0.1)
    assert r.cudagraph_gib == 0


def test_cuda_graphs_reserve_memory_unless_eager(glm):
    eager = cap.evaluate(seed_inputs(glm))
    graphs = cap.evaluate(seed_inputs(glm, enforce_eager=False))
    assert graphs.cudagraph_gib > 0
    assert graphs.kv_cache_tokens < eager.kv_cache_tokens


def test_bf16_kv_warns_and_halves_tokens(glm):
    fp8 = cap.evaluate(seed_inputs(glm))
    bf16 = cap.evaluate(seed_inputs(glm, kv_cache_dtype="auto"))
    assert bf16.kv_cache_tokens < fp8.kv_cache_tokens * 0.65
    assert any("--kv-cache-dtype fp8" in w for w in bf16.warnings)


def test_bf16_glm_on_8x_h200_does_not_fit():
    p = load_profile("glm-5.2-bf16")
    r = cap.evaluate(cap.CapacityInputs(arch=model_config.arch_from_profile(p), profile=p, gpu_type="H200", gpus=8, tp=8,
                                        kv_cache_dtype="fp8", max_model_len=131072, gpu_memory_utilization=0.92,
                                        enforce_eager=True, speculative_method="mtp", speculative_tokens=5))
    assert not r.fits
    assert r.available_kv_gib < 0 and r.kv_cache_tokens == 0
    assert "does not fit" in r.errors[0] and "129.17" in r.errors[0]
    assert [k.value for k in r.knobs] == ["glm-5.2-fp8"]
    assert "glm-5.2-fp8" in r.errors[0]


def test_tp_that_leaves_no_kv_room(glm):
    r = cap.evaluate(seed_inputs(glm, gpus=4, tp=4))
    assert not r.fits
    assert any(k.key == "serving.tensorParallelSize" and k.value == 8 for k in r.knobs)


def test_concurrency_below_one_fails_with_knobs(glm):
    r = cap.evaluate(seed_inputs(glm, max_model_len=1_048_576))
    assert not r.fits and r.max_concurrency < 1
    keys = {k.key for k in r.knobs}
    assert "serving.maxModelLen" in keys
    fit_len = next(k.value for k in r.knobs if k.key == "serving.maxModelLen")
    assert cap.evaluate(seed_inputs(glm, max_model_len=fit_len)).fits


def test_low_headroom_is_a_warning(glm):
    r = cap.evaluate(seed_inputs(glm, max_model_len=393_216))
    assert r.fits and 1 <= r.max_concurrency < 2
    assert any("low headroom" in w for w in r.warnings)


def test_tp_must_divide_heads(glm):
    r = cap.evaluate(seed_inputs(glm, gpus=3, tp=3))
    assert not r.fits
    assert any("attention heads" in e for e in r.errors)


def test_max_model_len_above_model_limit():
    p = load_profile("kimi-k2")
    r = cap.evaluate(cap.CapacityInputs(arch=model_config.arch_from_profile(p), profile=p, gpu_type="H200", gpus=8, tp=8,
                                        max_model_len=262_144))
    assert any("max_position_embeddings" in e for e in r.errors)


def test_idle_gpus_warning(glm):
    p = load_profile("llama-3.1-70b")
    r = cap.evaluate(cap.CapacityInputs(arch=model_config.arch_from_profile(p), profile=p, gpu_type="H200", gpus=8, tp=4,
                                        max_model_len=32768))
    assert r.fits and r.engines == 2
    assert any("idle" in w for w in r.warnings)


def test_every_assumption_has_a_source(glm):
    r = cap.evaluate(seed_inputs(glm))
    assert r.assumptions
    for a in r.assumptions:
        assert a.what and a.source
        json.dumps(a.to_json())


def test_constants_are_data_with_sources():
    m = sources.memory_constants()
    for section in ("activation", "non_torch", "cudagraph", "block_size", "scheduler_defaults"):
        assert m[section]["source"]


# ---------------------------------------------------------------- properties

@settings(max_examples=60, deadline=None)
@given(util=st.floats(0.5, 0.98), max_len=st.integers(256, 400_000))
def test_kv_tokens_fit_in_available_memory(util, max_len):
    p = load_profile("glm-5.2-fp8")
    r = cap.evaluate(cap.CapacityInputs(arch=model_config.arch_from_profile(p), profile=p, gpu_type="H200", gpus=8, tp=8,
                                        kv_cache_dtype="fp8", max_model_len=max_len, gpu_memory_utilization=util,
                                        enforce_eager=True), search=False)
    assert r.kv_cache_tokens % r.kv.block_size == 0
    assert r.kv_cache_tokens * r.kv.bytes_per_token <= max(0.0, r.available_kv_gib) * GIB
    assert (r.num_blocks + 1) * r.kv.bytes_per_block > r.available_kv_gib * GIB
    assert r.fits == (r.max_concurrency >= 1)


@settings(max_examples=40, deadline=None)
@given(u1=st.floats(0.5, 0.97), du=st.floats(0.0, 0.03))
def test_more_utilization_never_means_fewer_tokens(u1, du):
    p = load_profile("glm-5.2-fp8")
    a = model_config.arch_from_profile(p)
    inp = cap.CapacityInputs(arch=a, profile=p, gpu_type="H200", gpus=8, tp=8, kv_cache_dtype="fp8",
                             max_model_len=131072, gpu_memory_utilization=u1)
    lo = cap.evaluate(inp, search=False)
    hi = cap.evaluate(replace(inp, gpu_memory_utilization=min(1.0, u1 + du)), search=False)
    assert hi.kv_cache_tokens >= lo.kv_cache_tokens
