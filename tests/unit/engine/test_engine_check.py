"""Engine fidelity: rendered commands go through vLLM's and SGLang's real parsers.

Two kinds of tests:
- pure ones (image/version tie, flag -> spec-key mapping, availability) run anywhere;
- engine ones need the cached engine venv (``scripts/install-engine-check``). One
  long-lived checker process per engine serves the whole session, so the ~10 s import of
  vLLM (~5 s for SGLang) is paid once. Without the venv they are skipped with the install
  hint, or fail when the engine check is required (CI=true or
  GLMSERVE_ENGINE_CHECK_REQUIRED=1), so a CI run never passes without having checked.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ROOT  # noqa: E402

from infra.spec import shapes
from infra.spec.image import image_version_problems
from infra.engine import check as ec  # noqa: E402
from infra.engine.check import venv  # noqa: E402
from infra.common.errors import GlmserveError  # noqa: E402
from infra.common.versions import version_tuple  # noqa: E402
from infra.engine.flags import flag_table  # noqa: E402
from infra.engine.render import SGLANG_KV, render  # noqa: E402
from infra.spec.model import SPECULATIVE_METHODS  # noqa: E402
from infra.spec.build import build_spec
from infra.config.project import list_stacks, stacks_dir  # noqa: E402
from infra.spec.load import spec_for_stack

REQUIRED = os.environ.get("GLMSERVE_ENGINE_CHECK_REQUIRED") == "1" or os.environ.get("CI") == "true"
NODE_FILE = stacks_dir(ROOT) / "node.yaml"

# Flags that the tables in templates/engines/*.flags.yaml list but the pinned engines'
# real parsers do not have (found by test_flag_table_matches_real_parser). The tables are
# wrong: remove these flags there (or give them an upper bound), then empty these sets.
# The test fails if the set is not exactly what the real parser reports, both ways.
STALE_TABLE_FLAGS: dict[str, set[str]] = {"vllm": set(), "sglang": set()}
# Speculative methods that infra.spec allows but vLLM 0.33.0's SpeculativeConfig.method
# does not (see test_spec_speculative_methods_known_to_vllm).
SPEC_METHODS_UNKNOWN_TO_VLLM: set[str] = set()


def node() -> dict:
    return yaml.safe_load(NODE_FILE.read_text())


def make_spec(**sections):
    """node.yaml with sections deep-merged over it (as a stack file would)."""
    return build_spec(node(), sections, "stacks/node.yaml", "test")


def without_load_strategy(spec):
    return spec.model_copy(update={"serving": spec.serving.model_copy(update={"load_strategy": None})})


# ============================================================ checker (one per session)

@pytest.fixture(scope="session")
def checker():
    a = ec.available()
    if not a:
        if REQUIRED:
            pytest.fail(f"the engine check is required here but {a.reason}")
        pytest.skip(a.reason)
    c = ec.Checker(python=a.python)
    c.warmup("vllm", "sglang")
    yield c
    c.close()


def vllm_check(checker, argv, version="0.33.0"):
    return checker.check(argv, "vllm", version)


def sglang_check(checker, argv, version=None):
    return checker.check(argv, "sglang", version)


# ============================================================ expected values

def expected_vllm(spec) -> dict:
    s, m = spec.serving, spec.model
    exp = {
        "model": m.id,
        "revision": m.revision,
        "served_model_name": [m.served_name],
        "trust_remote_code": m.trust_remote_code,
        "host": s.host,
        "port": s.port,
        "tensor_parallel_size": s.tensor_parallel_size,
        "kv_cache_dtype": s.kv_cache_dtype,
        "max_model_len": s.max_model_len,
        "gpu_memory_utilization": s.gpu_memory_utilization,
        "speculative_config": (
            {"method": s.speculative.method, "num_speculative_tokens": s.speculative.num_speculative_tokens}
            if s.speculative else None),
        "enable_prefix_caching": s.prefix_caching,
        "enforce_eager": s.enforce_eager,
    }
    if s.load_strategy is not None:
        exp["safetensors_load_strategy"] = s.load_strategy
    pp = getattr(s, "pipeline_parallel_size", 1)
    exp["pipeline_parallel_size"] = pp
    return exp


def expected_sglang(spec) -> dict:
    s, m = spec.serving, spec.model
    exp = {
        "model_path": m.id,
        "revision": m.revision,
        "served_model_name": m.served_name,
        "trust_remote_code": m.trust_remote_code,
        "host": s.host,
        "port": s.port,
        "tp_size": s.tensor_parallel_size,
        "kv_cache_dtype": SGLANG_KV[s.kv_cache_dtype],
        "context_length": s.max_model_len,
        "mem_fraction_static": s.gpu_memory_utilization,
        "disable_radix_cache": not s.prefix_caching,
        "disable_cuda_graph": s.enforce_eager,
    }
    if s.speculative:
        n = s.speculative.num_speculative_tokens
        exp.update(speculative_algorithm="EAGLE", speculative_num_steps=n,
                   speculative_eagle_topk=1, speculative_num_draft_tokens=n + 1)
    else:
        exp["speculative_algorithm"] = None
    return exp


def assert_values(verdict, expected: dict) -> None:
    assert verdict.ok, verdict.message
    got = {k: verdict.values.get(k, "<absent>") for k in expected}
    assert got == expected


# ============================================================ every stack, both engines

@pytest.mark.parametrize("stack", list_stacks(ROOT))
def test_stack_renders_argv_that_vllm_accepts_with_spec_values(checker, stack):
    spec = spec_for_stack(stack, ROOT)
    cmd = render(spec, "vllm")
    verdict = vllm_check(checker, cmd.argv, spec.engine.version)
    assert_values(verdict, expected_vllm(spec))
    assert ec.check_spec(spec, cmd, checker=checker).ok


def test_node_values_are_the_seed_values(checker):
    """The node itself, spelled out: TP 8, fp8, 131072, 0.92, MTP x5, prefix caching on,
    eager on, prefetch."""
    spec = spec_for_stack("dev", ROOT)
    v = vllm_check(checker, render(spec).argv)
    assert v.ok, v.message
    assert v.version == "0.33.0"
    vals = v.values
    assert vals["tensor_parallel_size"] == 8
    assert vals["kv_cache_dtype"] == "fp8"
    assert vals["max_model_len"] == 131072
    assert vals["gpu_memory_utilization"] == 0.92
    assert vals["speculative_config"] == {"method": "mtp", "num_speculative_tokens": 5}
    assert vals["enable_prefix_caching"] is True
    assert vals["enforce_eager"] is True
    assert vals["safetensors_load_strategy"] == "prefetch"
    assert vals["model"] == "zai-org/GLM-5.2-FP8"


@pytest.mark.parametrize("stack", list_stacks(ROOT))
def test_stack_as_sglang_argv_is_accepted_by_sglang_with_spec_values(checker, stack):
    spec = without_load_strategy(spec_for_stack(stack, ROOT))
    if getattr(spec.serving, "pipeline_parallel_size", 1) > 1:
        with pytest.raises(GlmserveError):  # glmserve renders PP for vLLM only
            render(spec, "sglang")
        return
    cmd = render(spec, "sglang")
    verdict = sglang_check(checker, cmd.argv)
    assert verdict.version == ec.pinned_versions()["sglang"]
    assert_values(verdict, expected_sglang(spec))


def test_sglang_node_values(checker):
    spec = without_load_strategy(spec_for_stack("dev", ROOT))
    v = sglang_check(checker, render(spec, "sglang").argv)
    assert v.ok, v.message
    assert (v.values["tp_size"], v.values["kv_cache_dtype"], v.values["context_length"],
            v.values["mem_fraction_static"]) == (8, "fp8_e4m3", 131072, 0.92)
    assert (v.values["speculative_algorithm"], v.values["speculative_num_steps"],
            v.values["speculative_num_draft_tokens"]) == ("EAGLE", 5, 6)


def test_sglang_refuses_load_strategy_in_glmserve_before_the_engine():
    with pytest.raises(GlmserveError, match="serving.loadStrategy"):
        render(spec_for_stack("dev", ROOT), "sglang")


# ============================================================ negative cases, vLLM

def _dev_argv() -> list[str]:
    return list(render(spec_for_stack("dev", ROOT)).argv)


def test_tool_calling_and_reasoning_flags_are_accepted_by_both_engines(checker):
    """The node's parsers (glm47, glm45) exist in the pinned engines: vLLM validates the tool
    parser's name at validate_parsed_serve_args, SGLang's parser has the names as choices."""
    v = vllm_check(checker, _dev_argv())
    assert v.ok, v.message
    assert (v.values["tool_call_parser"], v.values["reasoning_parser"]) == ("glm47", "glm45")
    assert v.values["enable_auto_tool_choice"] is True
    v = checker.check(_sglang_argv(), "sglang")
    assert v.ok, v.message
    assert (v.values["tool_call_parser"], v.values["reasoning_parser"]) == ("glm47", "glm45")
    for flag, key in (("--tool-call-parser", "engine.toolCallParser"), ("--reasoning-parser", "engine.reasoningParser")):
        v = vllm_check(checker, _replace_value(_dev_argv(), flag, "glm99"))
        assert not v.ok and "no such parser in this vLLM" in v.message
        [p] = ec.problems_for(v)
        assert (p.key, p.value) == (key, "glm99")
    v = checker.check(_replace_value(_sglang_argv(), "--tool-call-parser", "glm99"), "sglang")
    assert not v.ok
    assert ec.problems_for(v)[0].key == "engine.toolCallParser"


def _replace_value(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


def test_unknown_flag_through_extra_args_is_refused_and_keyed_to_extra_args(checker):
    # An extraArgs flag that glmserve's table knows but the engine does not is the case
    # the table cannot catch; an unknown one is refused by the renderer already.
    argv = _dev_argv() + ["--no-such-flag", "1"]
    v = vllm_check(checker, argv)
    assert not v.ok
    assert v.errors[0].stage == "parse"
    assert v.errors[0].message == "unrecognized arguments: --no-such-flag 1"
    [p] = ec.problems_for(v, n_extra=2)
    assert p.key == "engine.extraArgs"
    assert "vLLM 0.33.0 refuses it: unrecognized arguments: --no-such-flag 1" in p.message


def test_unknown_flag_in_extra_args_spec_end_to_end(checker):
    """Through a spec: the renderer refuses a flag absent from its table; a flag the table
    lists but vLLM 0.33.0 lacks reaches the engine, which refuses it (engine.extraArgs)."""
    with pytest.raises(GlmserveError, match="vllm has no flag --no-such-flag"):
        render(make_spec(engine={"extraArgs": ["--no-such-flag", "1"]}))
    spec = make_spec(engine={"extraArgs": ["--swap-space", "4"]})
    try:
        cmd = render(spec)
    except GlmserveError as e:  # the table has been fixed: the renderer refuses it first
        assert "--swap-space" in str(e)
        return
    result = ec.check_spec(spec, cmd, checker=checker)
    assert not result.ok
    [p] = result.problems
    assert p.key == "engine.extraArgs"
    assert "unrecognized arguments: --swap-space 4" in p.message


def test_kv_cache_dtype_fp9_is_refused_with_cache_config_values(checker):
    v = vllm_check(checker, _replace_value(_dev_argv(), "--kv-cache-dtype", "fp9"))
    assert not v.ok
    [e] = v.errors
    assert e.stage == "config"
    assert "Invalid kv_cache_dtype: 'fp9'" in e.message
    assert "CacheConfig.cache_dtype" in e.message
    assert "'fp8_e4m3'" in e.message  # vLLM's own list of valid values
    [p] = ec.problems_for(v)
    assert p.key == "serving.kvCacheDtype" and p.value == "fp9"


def test_kv_cache_dtype_fp9_through_extra_args(checker):
    # kvCacheDtype auto renders no --kv-cache-dtype, so extraArgs may carry one.
    spec = make_spec(serving={"kvCacheDtype": "auto"}, engine={"extraArgs": ["--kv-cache-dtype", "fp9"]})
    result = ec.check_spec(spec, checker=checker)
    assert not result.ok
    [p] = result.problems
    assert p.key == "engine.extraArgs"
    assert "Invalid kv_cache_dtype: 'fp9'" in p.message


def test_tensor_parallel_size_eight(checker):
    v = vllm_check(checker, _replace_value(_dev_argv(), "--tensor-parallel-size", "eight"))
    assert not v.ok
    assert v.errors[0].message == "argument --tensor-parallel-size/-tp: invalid int value: 'eight'"
    [p] = ec.problems_for(v)
    assert p.key == "serving.tensorParallelSize" and p.value == "eight"


def test_gpu_memory_utilization_percent(checker):
    v = vllm_check(checker, _replace_value(_dev_argv(), "--gpu-memory-utilization", "92%"))
    assert not v.ok
    assert "invalid float value: '92%'" in v.errors[0].message
    assert v.errors[0].message.startswith("argument --gpu-memory-utilization")
    [p] = ec.problems_for(v)
    assert p.key == "serving.gpuMemoryUtilization"


def test_gpu_memory_utilization_out_of_range_closed_by_cache_config(checker):
    v = vllm_check(checker, _replace_value(_dev_argv(), "--gpu-memory-utilization", "1.5"))
    assert not v.ok
    assert "CacheConfig.gpu_memory_utilization: Input should be less than or equal to 1" in v.message


def test_speculative_config_misspelt_key(checker):
    bad = json.dumps({"method": "mtp", "num_speculative_token": 5})
    v = vllm_check(checker, _replace_value(_dev_argv(), "--speculative-config", bad))
    assert not v.ok
    [e] = v.errors
    assert e.stage == "config"
    assert e.message == ("--speculative-config: SpeculativeConfig has no field 'num_speculative_token' "
                         "(did you mean 'num_speculative_tokens'?)")
    [p] = ec.problems_for(v)
    assert p.key == "serving.speculative"


def test_speculative_config_bad_value_closed_by_speculative_config(checker):
    bad = json.dumps({"method": "mtp", "num_speculative_tokens": 0})
    v = vllm_check(checker, _replace_value(_dev_argv(), "--speculative-config", bad))
    assert "SpeculativeConfig.num_speculative_tokens: Input should be greater than 0" in v.message


def test_speculative_config_escaped_braces_from_the_seed(checker):
    seed = '\\{"method": "mtp", "num_speculative_tokens": 5\\}'
    v = vllm_check(checker, _replace_value(_dev_argv(), "--speculative-config", seed))
    assert not v.ok
    [e] = v.errors
    assert e.stage == "parse"
    assert e.message.startswith("argument --speculative-config/-sc: Value \\{")
    assert "cannot be converted to <function loads>" in e.message
    [p] = ec.problems_for(v)
    assert p.key == "serving.speculative"


def test_abbreviated_flags_are_refused(checker):
    argv = _dev_argv()
    argv[argv.index("--max-model-len")] = "--max-model"   # argparse would expand this
    v = vllm_check(checker, argv)
    assert not v.ok
    assert v.errors[0].message.startswith("unrecognized arguments: --max-model")


def test_flag_absent_from_the_pinned_version_refused_by_renderer():
    """--safetensors-load-strategy exists since vLLM 0.18 (templates/engines/vllm.flags.yaml)."""
    spec = make_spec(engine={"version": "0.17.0", "image": "vllm/vllm-openai:v0.17.0"})
    with pytest.raises(GlmserveError, match=r"--safetensors-load-strategy needs vllm >= 0.18"):
        render(spec)


def test_flag_absent_from_the_pinned_version_refused_by_engine(checker):
    """--swap-space: in glmserve's table, not in vLLM 0.33.0's parser."""
    v = vllm_check(checker, _dev_argv() + ["--swap-space", "4"])
    assert not v.ok
    assert v.errors[0].message == "unrecognized arguments: --swap-space 4"


def test_version_mismatch_is_refused_not_checked_with_another_version(checker):
    v = vllm_check(checker, _dev_argv(), version="0.34.0")
    assert not v.ok
    [e] = v.errors
    assert e.stage == "version"
    assert "has vllm 0.33.0 but engine.version is 0.34.0" in e.message
    [p] = ec.problems_for(v)
    assert p.key == "engine.version"


def test_validate_parsed_serve_args_runs(checker):
    argv = [a for a in _dev_argv() if a != "--enable-auto-tool-choice"]
    i = argv.index("--tool-call-parser")
    v = vllm_check(checker, argv[:i] + argv[i + 2:] + ["--enable-auto-tool-choice"])
    assert not v.ok
    assert v.errors[0].stage == "validate"
    assert v.errors[0].message == "--enable-auto-tool-choice requires --tool-call-parser"
    [p] = ec.problems_for(v, n_extra=1)
    assert p.key == "engine.extraArgs"


# ============================================================ negative cases, SGLang

def _sglang_argv() -> list[str]:
    return list(render(without_load_strategy(spec_for_stack("dev", ROOT)), "sglang").argv)


def test_sglang_has_no_tp_flag(checker):
    argv = ["--tp" if a == "--tp-size" else a for a in _sglang_argv()]
    v = sglang_check(checker, argv)
    assert not v.ok
    assert v.errors[0].message == "unrecognized arguments: --tp 8"


def test_sglang_bad_values(checker):
    argv = _sglang_argv()
    v = sglang_check(checker, _replace_value(argv, "--tp-size", "eight"))
    assert v.errors[0].message == "argument --tp-size/--tensor-parallel-size: invalid int value: 'eight'"
    assert ec.problems_for(v)[0].key == "serving.tensorParallelSize"
    v = sglang_check(checker, _replace_value(argv, "--kv-cache-dtype", "fp9"))
    assert v.errors[0].message.startswith("argument --kv-cache-dtype: invalid choice: 'fp9'")
    assert ec.problems_for(v)[0].key == "serving.kvCacheDtype"
    v = sglang_check(checker, _replace_value(argv, "--mem-fraction-static", "92%"))
    assert v.errors[0].message == "argument --mem-fraction-static: invalid float value: '92%'"
    assert ec.problems_for(v)[0].key == "serving.gpuMemoryUtilization"


def test_sglang_abbreviations_refused(checker):
    v = sglang_check(checker, _sglang_argv() + ["--max-running-req", "4"])
    assert v.errors[0].message == "unrecognized arguments: --max-running-req 4"


def test_sglang_reports_deprecations_as_warnings(checker):
    v = sglang_check(checker, _sglang_argv())
    assert v.ok
    assert any("--disable-cuda-graph" in w and "deprecated" in w for w in v.warnings)


# ============================================================ flag tables vs real parsers

@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_flag_table_matches_real_parser(checker, engine):
    """Every flag in templates/engines/<engine>.flags.yaml exists in the pinned engine's
    real parser (aliases too), with the same arity (kind switch = takes no value)."""
    real = checker.flags(engine)
    table = flag_table(engine).flags
    missing = {f for f in table if f not in real}
    assert missing == STALE_TABLE_FLAGS[engine], (
        f"flags in templates/engines/{engine}.flags.yaml that {engine} "
        f"{ec.pinned_versions()[engine]} does not have: {sorted(missing)} (expected stale: "
        f"{sorted(STALE_TABLE_FLAGS[engine])}; update the table or STALE_TABLE_FLAGS)")
    aliases = {a for f in table.values() for a in f.aliases if a not in real}
    assert not aliases, f"aliases in the table that {engine}'s parser does not have: {sorted(aliases)}"
    arity = {f: (info.kind, real[f]["takes_value"]) for f, info in table.items()
             if f in real and info.takes_value != real[f]["takes_value"]}
    assert not arity, f"kind disagrees with the real parser's arity: {arity}"
    pinned = version_tuple(ec.pinned_versions()[engine])
    late = {f: info.since for f, info in table.items() if version_tuple(info.since) > pinned}
    assert not late, f"flags whose `since` is after the pinned {engine}, yet its parser has them: {late}"


def test_every_flag_the_templates_can_render_maps_to_a_spec_key():
    spec = make_spec(model={"revision": "main"}, serving={"prefixCaching": False})
    argv = render(spec).argv
    table = flag_table("vllm")
    for a in argv:
        if a.startswith("--"):
            assert ec.spec_key_for_flag("vllm", a, argv) == table.lookup(a).spec
    spec = without_load_strategy(make_spec(serving={"prefixCaching": False}))
    argv = render(spec, "sglang").argv
    table = flag_table("sglang")
    for a in argv:
        if a.startswith("--"):
            assert table.lookup(a).spec, a


# ============================================================ property-based

GPU_TP = [(c, tp) for c in (1, 2, 4, 8) for tp in (1, 2, 4, 8) if c % tp == 0]
VLLM_EXTRA = [[], ["--max-num-seqs", "64"], ["--seed", "0"], ["--max-num-batched-tokens", "8192"],
              ["--enable-expert-parallel"], ["--max-log-len", "100"], ["--uvicorn-log-level", "info"],
              ["--generation-config", "vllm"], ["--data-parallel-size", "1"]]
SGLANG_EXTRA = [[], ["--max-running-requests", "64"], ["--chunked-prefill-size", "8192"], ["--dp-size", "1"]]
# ASCII only: Python's \w (hypothesis) and pydantic's (Rust regex) disagree on some symbols.
NAME = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,30}", fullmatch=True)
# A git revision: a branch, tag or commit (no ':'; infra.spec's pattern).
REVISION = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,30}", fullmatch=True).filter(lambda v: _valid(shapes.revision, v))
MODEL_ID = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}/[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}",
                         fullmatch=True).filter(lambda v: _valid(shapes.model_id, v))


def _valid(check, value: str) -> bool:
    """Generated values keep to the spec's own shapes (infra/spec/shapes.py)."""
    try:
        check(value)
        return True
    except ValueError:
        return False


@st.composite
def specs(draw, engine: str):
    count, tp = draw(st.sampled_from(GPU_TP))
    methods = [m for m in SPECULATIVE_METHODS if engine != "vllm" or m not in SPEC_METHODS_UNKNOWN_TO_VLLM]
    speculative = draw(st.one_of(st.none(), st.fixed_dictionaries({
        "method": st.sampled_from(methods), "numSpeculativeTokens": st.integers(1, 16)})))
    serving = {
        "tensorParallelSize": tp,
        "maxModelLen": draw(st.integers(256, 10_485_760)),
        "kvCacheDtype": draw(st.sampled_from(["auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16"])),
        "gpuMemoryUtilization": draw(st.floats(0, 1, exclude_min=True, allow_nan=False)),
        "speculative": speculative,
        "prefixCaching": draw(st.booleans()),
        "enforceEager": draw(st.booleans()),
        "loadStrategy": draw(st.sampled_from([None, "lazy", "eager", "prefetch", "torchao"]))
        if engine == "vllm" else None,
        "host": draw(st.one_of(st.sampled_from(["0.0.0.0", "127.0.0.1", "::", "localhost"]),
                               st.ip_addresses().map(str))),
        "port": draw(st.integers(1, 65535)),
    }
    model = {
        "id": draw(MODEL_ID),
        "servedName": draw(NAME),
        "revision": draw(st.one_of(st.none(), REVISION)),
        "trustRemoteCode": draw(st.booleans()),
    }
    extra = draw(st.sampled_from(VLLM_EXTRA if engine == "vllm" else SGLANG_EXTRA))
    n = node()
    n["serving"] = {**n["serving"], **serving}
    n["model"] = {**n["model"], **model}
    n["gpu"] = {**n["gpu"], "count": count}
    n["engine"] = {**n["engine"], "extraArgs": extra}
    return build_spec(n, {}, "stacks/node.yaml", "hypothesis")


PROPERTY = settings(max_examples=int(os.environ.get("GLMSERVE_ENGINE_CHECK_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(spec=specs("vllm"))
def test_property_vllm_accepts_every_valid_spec(checker, spec):
    v = vllm_check(checker, render(spec).argv, spec.engine.version)
    assert_values(v, expected_vllm(spec))


@PROPERTY
@given(spec=specs("sglang"))
def test_property_sglang_accepts_every_valid_spec(checker, spec):
    v = sglang_check(checker, render(spec, "sglang").argv)
    assert_values(v, expected_sglang(spec))


# ============================================================ known gaps, spelled out

def test_spec_speculative_methods_known_to_vllm(checker):
    """Every speculative method infra.spec allows is one vLLM 0.33.0's SpeculativeConfig
    accepts (SPEC_METHODS_UNKNOWN_TO_VLLM lists deliberate exceptions: none today)."""
    refused = set()
    for m in SPECULATIVE_METHODS:
        cfg = json.dumps({"method": m, "num_speculative_tokens": 3})
        v = vllm_check(checker, _replace_value(_dev_argv(), "--speculative-config", cfg))
        if not v.ok:
            assert "SpeculativeConfig.method" in v.message
            refused.add(m)
    assert refused == SPEC_METHODS_UNKNOWN_TO_VLLM


def test_leading_dash_value_is_refused_by_vllm_and_keyed(checker):
    """argparse reads a value starting with '-' as a flag: the spec allows such a
    servedName today, vLLM refuses the command."""
    argv = _replace_value(_dev_argv(), "--served-model-name", "-glm")
    v = vllm_check(checker, argv)
    assert v.errors[0].message == "argument --served-model-name: expected at least one argument"
    [p] = ec.problems_for(v)
    assert (p.key, p.value) == ("model.servedName", "-glm")


def test_spec_refuses_values_starting_with_a_dash():
    """argparse would read such a value as a flag, so the spec refuses it up front."""
    for model in ({"servedName": "-glm"}, {"revision": "-x"}):
        with pytest.raises(GlmserveError):
            make_spec(model=model)


# ============================================================ pure: image <-> version tie

@pytest.mark.parametrize("image, version, ok", [
    ("vllm/vllm-openai:v0.33.0", "0.33.0", True),
    ("vllm/vllm-openai:0.33.0", "0.33.0", True),
    ("vllm/vllm-openai:v0.33.0-cu130", "0.33.0", True),
    ("docker.io/vllm/vllm-openai:v0.33", "0.33.0", True),
    ("vllm/vllm-openai:v0.32.1", "0.33.0", False),
    ("vllm/vllm-openai@sha256:" + "a" * 64, "0.33.0", True),
    ("vllm/vllm-openai:v0.33.0@sha256:" + "b" * 64, "0.33.0", True),
    ("vllm/vllm-openai:v0.32.0@sha256:" + "b" * 64, "0.33.0", False),
    ("vllm/vllm-openai@sha256:abc", "0.33.0", False),
    ("vllm/vllm-openai:latest", "0.33.0", False),
    ("vllm/vllm-openai:latest@sha256:" + "c" * 64, "0.33.0", True),
    ("vllm/vllm-openai", "0.33.0", False),
    ("registry.example:5000/team/vllm-openai:v0.33.0", "0.33.0", True),
    ("lmsysorg/sglang:v0.33.0", "0.33.0", False),
])
def test_image_tag_and_engine_version_are_tied(image, version, ok):
    """Spec validation refuses an image that disagrees with engine.version, naming the key."""
    if ok:
        assert image_version_problems(make_spec(engine={"image": image, "version": version})) == []
        return
    with pytest.raises(GlmserveError) as e:
        make_spec(engine={"image": image, "version": version})
    assert {p.key for p in e.value.problems} == {"engine.image"}
    assert all(p.file == "test" for p in e.value.problems)


def test_image_mismatch_message():
    with pytest.raises(GlmserveError) as e:
        make_spec(engine={"image": "vllm/vllm-openai:v0.32.1"})
    [p] = e.value.problems
    assert p.message == "the image tag v0.32.1 names vllm 0.32.1 but engine.version is 0.33.0; change them together"


@pytest.mark.parametrize("stack", list_stacks(ROOT))
def test_every_stack_image_agrees_with_its_version(stack):
    assert image_version_problems(spec_for_stack(stack, ROOT)) == []


def test_requirements_pin_the_spec_engine_version():
    """requirements/engine-check-vllm.txt pins the vLLM of node.yaml's engine.version:
    bump them together (the checker refuses a mismatch rather than check with another)."""
    for stack in list_stacks(ROOT):
        spec = spec_for_stack(stack, ROOT)
        assert ec.pinned_versions()[spec.engine.name] == spec.engine.version, stack


# ============================================================ pure: availability, protocol

def test_unavailable_says_how_to_install_and_does_not_pretend(tmp_path, monkeypatch):
    monkeypatch.setenv("GLMSERVE_ENGINE_CHECK_HOME", str(tmp_path))
    monkeypatch.delenv("GLMSERVE_ENGINE_CHECK_PYTHON", raising=False)
    a = ec.available()
    assert not a
    assert "scripts/install-engine-check" in a.reason
    with pytest.raises(GlmserveError) as e:
        ec.check_spec(spec_for_stack("dev", ROOT))
    assert e.value.headline == "the engine check did not run"
    assert "scripts/install-engine-check" in str(e.value)


def test_checker_without_engines_fails_loudly():
    """An interpreter without vLLM answers with an error, not a verdict."""
    with ec.Checker(python=sys.executable, timeout=120) as c:
        with pytest.raises(ec.EngineCheckError, match="vllm is not installed"):
            c.check(["vllm", "serve", "a/b"], "vllm")


def test_requirements_hash_follows_the_requirement_files(tmp_path, monkeypatch):
    for name in ec.REQUIREMENT_FILES:
        (tmp_path / name).write_text((venv.REQUIREMENTS_DIR / name).read_text())
    monkeypatch.setattr(venv, "REQUIREMENTS_DIR", tmp_path)
    h1 = ec.requirements_hash()
    (tmp_path / "engine-check-vllm.txt").write_text("vllm==0.34.0\n")
    assert ec.requirements_hash() != h1


def test_network_is_refused_inside_the_checker():
    code = ("import socket\nfrom infra.engine.check.server import guard_network; guard_network()\n"
            "try:\n    socket.getaddrinfo('huggingface.co', 443)\nexcept OSError as x:\n    print(x)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "network access refused (huggingface.co)" in out.stdout


def test_problems_for_maps_flags_and_extra_args():
    argv = ["vllm", "serve", "m/x", "--max-model-len", "abc", "--seed", "x"]
    v = ec.Verdict(engine="vllm", version="0.33.0", argv=tuple(argv), errors=(
        ec.EngineError("parse", "argument --max-model-len: invalid value", ("--max-model-len",)),
        ec.EngineError("parse", "argument --seed: invalid int value: 'x'", ("--seed",)),
        ec.EngineError("network", "tried to reach the network: name lookup of huggingface.co"),
    ))
    p1, p2, p3 = ec.problems_for(v, n_extra=2, file_of=lambda k: "stacks/node.yaml")
    assert (p1.key, p1.value, p1.file) == ("serving.maxModelLen", "abc", "stacks/node.yaml")
    assert (p2.key, p2.value) == ("engine.extraArgs", "--seed x")
    assert p3.key == "engine"
    assert p1.message.startswith("vLLM 0.33.0 refuses it: ")
