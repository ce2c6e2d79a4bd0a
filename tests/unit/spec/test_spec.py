"""The node spec: the shipped stacks parse, and every class of bad input gets an error
that names the key, the file, the value and what is allowed."""
from __future__ import annotations

import copy

import pytest
import yaml

from infra.common.errors import GlmserveError
from infra.spec.build import build_spec
from infra.spec.load import spec_for_stack
from infra.config.project import list_stacks

from tests.helpers import ROOT

NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())


def build(overrides: dict, node: dict | None = None):
    return build_spec(copy.deepcopy(node or NODE), overrides, "stacks/node.yaml", "stacks/Pulumi.t.yaml")


def error_of(overrides: dict, node: dict | None = None) -> str:
    with pytest.raises(GlmserveError) as e:
        build(overrides, node)
    return str(e.value)


def test_every_shipped_stack_validates():
    stacks = list_stacks(ROOT)
    assert {"modal-dev", "modal-prod", "runpod-prod"} <= set(stacks)
    for s in stacks:
        spec = spec_for_stack(s, ROOT)
        assert spec.gpu.type == "H200" and spec.gpu.count == 8
        assert spec.serving.tensor_parallel_size == 8


def test_stack_file_overrides_only_what_differs():
    spec = build({"serving": {"maxModelLen": 65536}, "scaling": {"minReplicas": 1}})
    assert spec.serving.max_model_len == 65536
    # untouched siblings keep the node's values
    assert spec.serving.gpu_memory_utilization == 0.92
    assert spec.scaling.scaledown_window == 900 and spec.scaling.min_replicas == 1


def test_unknown_top_level_key_suggests_nearest():
    msg = error_of({"servng": {"maxModelLen": 1024}})
    assert "glmserve:servng in stacks/Pulumi.t.yaml: unknown key (did you mean 'serving'?)" in msg
    assert "allowed: glmserve:provider" in msg


def test_unknown_nested_key_suggests_nearest():
    msg = error_of({"serving": {"maxModelLenght": 1024}})
    assert "serving.maxModelLenght in stacks/Pulumi.t.yaml: unknown key (did you mean 'maxModelLen'?)" in msg
    assert "gpuMemoryUtilization" in msg  # the allowed keys are listed


def test_wrong_type():
    msg = error_of({"serving": {"maxModelLen": "lots"}})
    assert "serving.maxModelLen in stacks/Pulumi.t.yaml" in msg and "valid integer" in msg and "'lots'" in msg


@pytest.mark.parametrize("value", [0, 1.5, -0.1])
def test_utilisation_out_of_range(value):
    msg = error_of({"serving": {"gpuMemoryUtilization": value}})
    assert "serving.gpuMemoryUtilization in stacks/Pulumi.t.yaml" in msg
    assert "allowed: (0, 1]" in msg and repr(value) in msg


@pytest.mark.parametrize("value", [0, 65536, 70000])
def test_port_out_of_range(value):
    msg = error_of({"serving": {"port": value}})
    assert "serving.port" in msg and "allowed: [1, 65535]" in msg


def test_unknown_gpu_type():
    msg = error_of({"gpu": {"type": "H201"}})
    assert "gpu.type in stacks/Pulumi.t.yaml: unknown GPU type 'H201'" in msg and "H200" in msg


@pytest.mark.parametrize("count", [3, 9, 16, 0])
def test_gpu_count_outside_allowed(count):
    msg = error_of({"gpu": {"count": count}, "serving": {"tensorParallelSize": 1}})
    assert "gpu.count" in msg and "must be one of 1, 2, 4, 8" in msg


def test_tp_must_divide_gpu_count():
    msg = error_of({"gpu": {"count": 4}, "serving": {"tensorParallelSize": 8}})
    assert "tensorParallelSize 8 does not divide gpu.count 4" in msg


def test_tp_not_dividing_heads_is_named(tmp_path, monkeypatch):
    # A profile with 40 heads: TP 8 divides 8 GPUs but not 40 heads... 40 % 8 == 0, so use 12 heads.
    from infra.spec import profiles as models
    monkeypatch.setattr(models, "load_profile", lambda name: {"config": {"num_attention_heads": 12}})
    msg = error_of({"serving": {"tensorParallelSize": 8}})
    assert "serving.tensorParallelSize" in msg and "does not divide the model's 12 attention heads" in msg
    assert "allowed: 1, 2, 3, 4, 6, 12" in msg


@pytest.mark.parametrize("raw", [
    '\\{"method": "mtp", "num_speculative_tokens": 5\\}',     # the seed's escaped braces
    '{"method": "mtp", "num_speculative_tokens": 5',
    "method=mtp",
])
def test_malformed_speculative_json(raw):
    msg = error_of({"serving": {"speculative": raw}})
    assert "serving.speculative" in msg and "not valid JSON" in msg


def test_speculative_json_string_accepted():
    spec = build({"serving": {"speculative": '{"method": "mtp", "num_speculative_tokens": 3}'}})
    assert spec.serving.speculative.num_speculative_tokens == 3


def test_unknown_engine():
    msg = error_of({"engine": {"name": "tgi"}})
    assert "engine.name" in msg and "'vllm'" in msg and "'sglang'" in msg and "'tgi'" in msg


def test_error_names_node_file_for_node_values():
    node = copy.deepcopy(NODE)
    node["serving"]["port"] = 0
    msg = error_of({}, node)
    assert "serving.port in stacks/node.yaml" in msg


def test_secret_values_never_in_errors():
    planted = "hf_PLANTED_SECRET_1234567890"
    msg = error_of({"secrets": {"hfToken": {"value": planted, "name": "also"}}})
    assert planted not in msg and "secrets.hfToken" in msg


def test_secret_ref_needs_exactly_one_of_name_or_value():
    msg = error_of({"secrets": {"apiKey": {}}})
    assert "secrets.apiKey" in msg and "exactly one of 'name'" in msg


def test_scaling_min_not_above_max():
    msg = error_of({"scaling": {"minReplicas": 3, "maxReplicas": 1}})
    assert "minReplicas (3) exceeds maxReplicas (1)" in msg


@pytest.mark.parametrize("key", ["", "a", "short-key", "a" * 40, "abababababababababababababab"])
def test_weak_api_keys_are_refused_without_echoing_them(key):
    msg = error_of({"secrets": {"apiKey": {"value": key}}})
    assert "secrets.apiKey" in msg and "[secret]" in msg
    assert f"'{key}'" not in msg or not key


@pytest.mark.parametrize("url,ok", [
    ("https://rest.runpod.io/v1", True), ("http://127.0.0.1:8080", True), ("http://[::1]:9/x", True),
    ("http://localhost:1", True), ("http://api.example.com", False), ("ftp://127.0.0.1", False),
    ("https://user:pw@api.example.com", False), ("https://", False), ("https://a.example.com:port", False),
    ("https://a.example.com\n", False), ("http://127.0.0.1.example.com", False),
])
def test_credential_urls_are_https_or_loopback(url, ok):
    from infra.spec.shapes import credential_url
    if ok:
        assert credential_url(url) == url
    else:
        with pytest.raises(ValueError):
            credential_url(url)
