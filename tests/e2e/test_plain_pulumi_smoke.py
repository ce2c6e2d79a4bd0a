"""Plain `pulumi` is a first-class way to run a stack: the commands a user types, in the project
folder, with the Python language host starting `__main__.py` in the `.venv` that Pulumi.yaml
names; and `glmserve up` (a thin wrapper over the same CLI) reaches the same state."""
from __future__ import annotations

import json

import pytest

from tests.helpers import run_glmserve, run_pulumi

pytestmark = pytest.mark.e2e


def outputs(env, project, stack="dev", secrets=False) -> dict:
    args = ["stack", "output", "--stack", stack, "--json"] + (["--show-secrets"] if secrets else [])
    return json.loads(run_pulumi(*args, env=env, project=project).stdout)


def resources(env, project, stack="dev") -> list[tuple[str, str]]:
    state = json.loads(run_pulumi("stack", "export", "--stack", stack, env=env, project=project).stdout)
    return sorted((r["type"], r["urn"].rsplit("::", 1)[1]) for r in state["deployment"].get("resources") or [])


def test_plain_pulumi_up_preview_diff_refresh_destroy_on_dev(pulumi_env, project):
    env = pulumi_env
    run_pulumi("stack", "init", "dev", "--secrets-provider", "passphrase", env=env, project=project)

    up = run_pulumi("up", "--yes", "--stack", "dev", env=env, project=project)
    assert "+ 4 created" in up.stdout, up.stdout
    out = outputs(env, project)
    assert out["engineCommand"][:3] == ["vllm", "serve", "zai-org/GLM-5.2-FP8"]
    assert out["apiKey"] == "[secret]" and out["owner"]
    key = outputs(env, project, secrets=True)["apiKey"]
    assert key.startswith("sk-glm-") and key not in up.stdout + up.stderr

    run_pulumi("config", "set", "--path", "glmserve:serving.maxModelLen", "65536", "--stack", "dev",
               env=env, project=project)
    pre = run_pulumi("preview", "--diff", "--stack", "dev", env=env, project=project)
    changed = [ln.strip() for ln in pre.stdout.splitlines() if "=>" in ln]
    assert '~ [14]: "131072" => "65536"' in changed, pre.stdout
    assert "replace" not in pre.stdout and "to delete" not in pre.stdout

    refreshed = run_pulumi("refresh", "--yes", "--stack", "dev", env=env, project=project)
    assert "4 unchanged" in refreshed.stdout, refreshed.stdout

    down = run_pulumi("destroy", "--yes", "--stack", "dev", env=env, project=project)
    assert "4 deleted" in down.stdout
    assert outputs(env, project) == {} and resources(env, project) == []


def test_glmserve_and_plain_pulumi_share_one_program_and_state(pulumi_env, project):
    """`glmserve up` then plain `pulumi up`: the same stack, nothing to change, the same outputs."""
    env = pulumi_env
    run_glmserve("up", "--stack", "dev", env=env, check=True)
    by_glmserve, made = outputs(env, project, secrets=True), resources(env, project)
    assert ("glmserve:index:ServingNode", "glmserve-dev") in made

    again = run_pulumi("up", "--yes", "--stack", "dev", env=env, project=project)
    assert "4 unchanged" in again.stdout, again.stdout
    assert outputs(env, project, secrets=True) == by_glmserve
    assert resources(env, project) == made

    run_pulumi("destroy", "--yes", "--stack", "dev", env=env, project=project)
