"""End-to-end with the real Pulumi engine (the CLI built by scripts/install-pulumi) on a
temporary local file backend, with the `none` provider."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.helpers import GLMSERVE, run_glmserve, run_pulumi

pytestmark = pytest.mark.e2e


def outputs(env, project, stack, secrets=False) -> dict:
    args = ["stack", "output", "--stack", stack, "--json"] + (["--show-secrets"] if secrets else [])
    return json.loads(run_pulumi(*args, env=env, project=project).stdout)


def test_lifecycle_preview_up_config_change_destroy(pulumi_env, project, tmp_path):
    env = pulumi_env
    pre = run_glmserve("preview", "--stack", "dev", env=env, check=True)
    assert "+ 4 to create" in pre.stdout
    assert "glmserve:index:ServingNode" in pre.stdout

    up = run_glmserve("up", "--stack", "dev", env=env, check=True)
    assert "+ 4 created" in up.stdout
    out = outputs(env, project, "dev")
    assert out["modelName"] == "glm-5.2-fp8"
    assert out["engineCommand"][:3] == ["vllm", "serve", "zai-org/GLM-5.2-FP8"]
    assert out["apiKey"] == "[secret]"
    key = outputs(env, project, "dev", secrets=True)["apiKey"]
    assert key.startswith("sk-glm-") and len(key) > 40
    assert key not in up.stdout + up.stderr

    # A plain `pulumi config set --path` edit; preview shows exactly that change.
    run_pulumi("config", "set", "--path", "glmserve:serving.maxModelLen", "65536", "--stack", "dev",
               env=env, project=project)
    pre = run_glmserve("preview", "--stack", "dev", "--diff", env=env, check=True)
    lines = pre.stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if "engineCommand: [" in ln)
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "]")
    changed = [ln.strip() for ln in lines[start:end] if "=>" in ln]
    assert changed == ['~ [14]: "131072" => "65536"'], pre.stdout
    assert "- 3 to delete" not in pre.stdout and "replace" not in pre.stdout

    up2 = run_glmserve("up", "--stack", "dev", env=env, check=True)
    out2 = outputs(env, project, "dev", secrets=True)
    assert "65536" in out2["engineCommand"]
    assert out2["apiKey"] == key, "the generated API key must be stable across updates"

    # The key is encrypted in state: the plain value is nowhere in the state files.
    state = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.json"))
    assert key not in state and "ciphertext" in state

    down = run_glmserve("destroy", "--stack", "dev", env=env, check=True)
    assert "4 deleted" in down.stdout
    assert outputs(env, project, "dev") == {}


def test_invalid_config_fails_preview_clearly_and_deploys_nothing(pulumi_env, project, tmp_path):
    env = pulumi_env
    run_pulumi("stack", "init", "dev", "--secrets-provider", "passphrase", env=env, project=project)
    run_pulumi("config", "set", "--path", "glmserve:serving.gpuMemoryUtilization", "1.5", "--stack", "dev",
               env=env, project=project)
    for op in ("preview", "up"):
        proc = run_glmserve(op, "--stack", "dev", env=env)
        assert proc.returncode != 0
        assert "serving.gpuMemoryUtilization in stacks/Pulumi.dev.yaml" in proc.stderr
        assert "allowed: (0, 1]" in proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
    assert outputs(env, project, "dev") == {}
    stack = json.loads(run_pulumi("stack", "export", "--stack", "dev", env=env, project=project).stdout)
    assert not stack["deployment"].get("resources")


def test_program_itself_reports_spec_errors_without_traceback(pulumi_env, project):
    """Plain `pulumi preview` (the program itself, without glmserve's pre-check) fails cleanly too."""
    (project / "stacks" / "Pulumi.dev.yaml").write_text(
        "config:\n  glmserve:provider: none\n  glmserve:gpu:\n    type: H201\n")
    run_pulumi("stack", "init", "dev", "--secrets-provider", "passphrase", env=pulumi_env, project=project)
    proc = run_pulumi("preview", "--stack", "dev", env=pulumi_env, project=project, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "gpu.type in stacks/Pulumi.dev.yaml: unknown GPU type 'H201'" in text
    assert "Traceback" not in text


def test_unknown_provider_is_a_clear_error(pulumi_env, project):
    (project / "stacks" / "Pulumi.dev.yaml").write_text("config:\n  glmserve:provider: modul\n")
    proc = run_glmserve("preview", "--stack", "dev", env=pulumi_env)
    assert proc.returncode == 2
    assert "provider: unknown provider (did you mean 'modal'?)" in proc.stderr
    assert "allowed: kubernetes, modal, none, runpod" in proc.stderr


def test_up_without_provider_credentials_stops_before_creating_anything(pulumi_env, project, tmp_path):
    env = {k: v for k, v in {**os.environ, **pulumi_env}.items() if not k.startswith("MODAL_TOKEN")}
    proc = subprocess.run([GLMSERVE, "up", "--stack", "modal-dev"], env=env, text=True, capture_output=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "the modal provider needs credentials before anything is created" in proc.stderr
    assert "MODAL_TOKEN_ID: is not set" in proc.stderr and "MODAL_TOKEN_SECRET: is not set" in proc.stderr
    assert not list((tmp_path / "state").rglob("*.json")), "no stack, no state, nothing created"


def test_plan_is_enforced_at_preview_and_exported_on_up(pulumi_env, project):
    env = pulumi_env
    (project / "stacks" / "Pulumi.dev.yaml").write_text(
        "config:\n  glmserve:provider: none\n  glmserve:model:\n    profile: glm-5.2-bf16\n")
    pre = run_glmserve("preview", "--stack", "dev", env=env)
    assert pre.returncode == 1
    # The summary on stderr carries the numbers and the knob that would make it fit.
    assert "does not fit: weights 178.38 GiB/GPU" in pre.stderr and "exceed the 129.17 GiB" in pre.stderr
    assert "Would fit with: model.profile=glm-5.2-fp8" in pre.stderr
    assert "Traceback" not in pre.stderr + pre.stdout

    (project / "stacks" / "Pulumi.dev.yaml").write_text("config:\n  glmserve:provider: none\n")
    run_glmserve("up", "--stack", "dev", env=env, check=True)
    out = outputs(env, project, "dev")
    assert out["capacity"]["fits"] is True
    assert out["capacity"]["kv_cache_tokens"] == 576_192
    assert out["capacity"]["max_concurrency"] == pytest.approx(4.40, abs=0.01)
    assert "estimatedCostPerHour" not in out, "the none provider has no price (null is not exported)"
