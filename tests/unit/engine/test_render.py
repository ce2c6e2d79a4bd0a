"""The engine command: one renderer from jinja2 templates, argv not shell strings."""
from __future__ import annotations

import copy
import json
import shlex

import pytest
import yaml

from infra.common.errors import GlmserveError
from infra.engine.render import render
from infra.spec.build import build_spec

from tests.helpers import ROOT, run_glmserve

NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())

# The seed article's command, with its one bug fixed: --speculative-config is real JSON.
SEED_ARGV = [
    "vllm", "serve", "zai-org/GLM-5.2-FP8",
    "--served-model-name", "glm-5.2-fp8",
    "--host", "0.0.0.0",
    "--port", "8000",
    "--tensor-parallel-size", "8",
    "--kv-cache-dtype", "fp8",
    "--max-model-len", "131072",
    "--gpu-memory-utilization", "0.92",
    "--trust-remote-code",
    "--speculative-config", '{"method": "mtp", "num_speculative_tokens": 5}',
    "--safetensors-load-strategy", "prefetch",
    "--enable-prefix-caching",
    "--enforce-eager",
]
# The node adds tool calling and reasoning as vLLM's GLM-5.2 recipe serves it
# (vllm-project/recipes, models/zai-org/GLM-5.2.yaml).
NODE_ARGV = SEED_ARGV + ["--tool-call-parser", "glm47", "--reasoning-parser", "glm45", "--enable-auto-tool-choice"]


def spec_with(overrides: dict):
    return build_spec(copy.deepcopy(NODE), overrides, "stacks/node.yaml", "stacks/Pulumi.t.yaml")


def test_node_renders_the_seed_command_fixed_with_tool_calling():
    cmd = render(spec_with({}))
    assert cmd.argv == NODE_ARGV
    assert json.loads(cmd.argv[cmd.argv.index("--speculative-config") + 1]) == {
        "method": "mtp", "num_speculative_tokens": 5}


def test_revision_is_pinned_when_set():
    argv = render(spec_with({"model": {"revision": "a1b2c3"}})).argv
    assert argv[3:5] == ["--revision", "a1b2c3"]


def test_entrypoint_split_for_images_that_run_the_server():
    cmd = render(spec_with({}))
    assert cmd.image_entrypoint == ["vllm", "serve"]
    args = cmd.args_after_entrypoint()
    assert args[0] == "zai-org/GLM-5.2-FP8" and "serve" not in args[:1]


def test_api_key_never_in_argv():
    cmd = render(spec_with({"secrets": {"apiKey": {"value": "sk-PLANTED-0123456789-abcdefXYZ"}}}))
    assert not any("sk-PLANTED" in a for a in cmd.argv)
    assert cmd.api_key_env == "VLLM_API_KEY"


def test_prefix_caching_off_is_explicit():
    argv = render(spec_with({"serving": {"prefixCaching": False}})).argv
    assert "--no-enable-prefix-caching" in argv and "--enable-prefix-caching" not in argv


def test_sglang_expresses_the_same_node():
    spec = spec_with({"serving": {"loadStrategy": None}})
    argv = render(spec, "sglang").argv
    assert argv[:3] == ["python3", "-m", "sglang.launch_server"]
    pairs = dict(zip(argv, argv[1:]))
    assert pairs["--model-path"] == "zai-org/GLM-5.2-FP8"
    assert pairs["--tp-size"] == "8"
    assert pairs["--context-length"] == "131072"
    assert pairs["--kv-cache-dtype"] == "fp8_e4m3"
    assert pairs["--mem-fraction-static"] == "0.92"
    assert pairs["--speculative-algorithm"] == "EAGLE"
    assert pairs["--speculative-num-steps"] == "5"
    assert pairs["--served-model-name"] == "glm-5.2-fp8"
    assert "--disable-cuda-graph" in argv and "--trust-remote-code" in argv
    assert "--disable-radix-cache" not in argv


def test_flag_unsupported_by_engine_is_an_error_not_dropped():
    with pytest.raises(GlmserveError) as e:
        render(spec_with({}), "sglang")
    assert "serving.loadStrategy" in str(e.value) and "SGLang has no --safetensors-load-strategy" in str(e.value)


def test_flag_absent_from_pinned_version_is_refused():
    with pytest.raises(GlmserveError) as e:
        render(spec_with({"engine": {"version": "0.17.0", "image": "vllm/vllm-openai:v0.17.0"}}))
    assert "--safetensors-load-strategy needs vllm >= 0.18" in str(e.value)


def test_extra_args_unknown_flag_refused_with_suggestion():
    with pytest.raises(GlmserveError) as e:
        render(spec_with({"engine": {"extraArgs": ["--max-num-seq", "64"]}}))
    assert "vllm has no flag --max-num-seq" in str(e.value) and "--max-num-seqs" in str(e.value)


def test_extra_args_cannot_repeat_a_rendered_flag():
    with pytest.raises(GlmserveError) as e:
        render(spec_with({"engine": {"extraArgs": ["--max-model-len", "4096"]}}))
    assert "--max-model-len is rendered from the spec already" in str(e.value)


def test_extra_args_known_flag_appended():
    argv = render(spec_with({"engine": {"extraArgs": ["--max-num-seqs", "64"]}})).argv
    assert argv[-2:] == ["--max-num-seqs", "64"]


def test_extra_args_abbreviations_refused():
    with pytest.raises(GlmserveError) as e:
        spec_with({"engine": {"extraArgs": ["-tp", "8"]}})
    assert "engine.extraArgs" in str(e.value)


def test_cli_formats(project):
    env = {"GLMSERVE_PROJECT_DIR": str(project)}
    argv = run_glmserve("render", "--stack", "dev", "--format", "argv", env=env, check=True).stdout.splitlines()
    as_json = json.loads(run_glmserve("render", "--stack", "dev", "--format", "json", env=env, check=True).stdout)
    shell = run_glmserve("render", "--stack", "dev", "--format", "shell", env=env, check=True).stdout.strip()
    assert argv == as_json == NODE_ARGV
    assert shlex.split(shell) == NODE_ARGV   # copy-pasteable: the shell gives back the argv


def test_cli_errors_have_no_traceback_and_exit_nonzero(project):
    (project / "stacks" / "Pulumi.bad.yaml").write_text(
        "config:\n  glmserve:serving:\n    gpuMemoryUtilization: 1.7\n  glmserve:gpu:\n    count: 3\n")
    proc = run_glmserve("validate", "--stack", "bad", env={"GLMSERVE_PROJECT_DIR": str(project)})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "serving.gpuMemoryUtilization in stacks/Pulumi.bad.yaml" in proc.stderr
    assert "gpu.count in stacks/Pulumi.bad.yaml" in proc.stderr


def test_cli_broken_yaml_is_a_clear_error(project):
    (project / "stacks" / "Pulumi.broken.yaml").write_text("config:\n  glmserve:serving: {maxModelLen: [\n")
    proc = run_glmserve("validate", "--stack", "broken", env={"GLMSERVE_PROJECT_DIR": str(project)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "stacks/Pulumi.broken.yaml" in proc.stderr and "not valid YAML" in proc.stderr


def test_version_gates_apply_to_the_spec_engine_only():
    """engine.version is vLLM's here; rendering the node for SGLang must not compare it with
    SGLang's flag table (it checks only that the flags exist)."""
    spec = spec_with({"engine": {"version": "0.3.0", "image": "vllm/vllm-openai:v0.3.0"},
                      "serving": {"loadStrategy": None}})
    with pytest.raises(GlmserveError) as e:
        render(spec)
    assert "--speculative-config needs vllm >= 0.8" in str(e.value)
    assert "--speculative-algorithm" in render(spec, "sglang").argv


def test_tool_calling_and_reasoning_render_for_both_engines():
    spec = spec_with({"serving": {"loadStrategy": None}})
    sglang = render(spec, "sglang").argv
    assert sglang[sglang.index("--tool-call-parser") + 1] == "glm47"
    assert sglang[sglang.index("--reasoning-parser") + 1] == "glm45"
    assert "--enable-auto-tool-choice" not in sglang      # SGLang has no such flag
    off = render(spec_with({"engine": {"toolCallParser": None, "autoToolChoice": False, "reasoningParser": None}})).argv
    assert not {"--tool-call-parser", "--reasoning-parser", "--enable-auto-tool-choice"} & set(off)


def test_auto_tool_choice_needs_a_tool_call_parser():
    with pytest.raises(GlmserveError) as e:
        spec_with({"engine": {"toolCallParser": None, "autoToolChoice": True}})
    assert "autoToolChoice needs toolCallParser" in str(e.value)


def test_tool_calling_with_mtp_is_warned_about():
    assert any("vllm#44843" in w for w in render(spec_with({})).warnings)
    assert not render(spec_with({"serving": {"speculative": None}})).warnings
    assert not render(spec_with({"engine": {"toolCallParser": None, "autoToolChoice": False}})).warnings


def test_tool_flags_need_an_engine_that_has_them():
    with pytest.raises(GlmserveError) as e:
        render(spec_with({"serving": {"speculative": None, "loadStrategy": None},
                          "engine": {"version": "0.5.4", "image": "vllm/vllm-openai:v0.5.4"}}))
    assert "--tool-call-parser needs vllm >= 0.6" in str(e.value)
