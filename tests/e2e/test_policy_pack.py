"""The CrossGuard policy pack (policy/) through the plain CLI: `pulumi preview --policy-pack`
fails a stack that breaks a rule, naming it, and passes the same stack once it is fixed.

The `dev` stack of a project copy (the `none` provider, or `runpod` for the two rules about
billing: a preview of a new RunPod stack calls no cloud) is edited per case. GLMSERVE_POLICY_PACK
makes the program leave the verdict to the pack (infra/policy/pack.py), as `glmserve preview`
does when it passes the pack; without it the program's own check would stop first and the pack
would never see the ServingNode."""
from __future__ import annotations

import pytest

from infra.policy.pack import PACK_ENV, PACK_STAMP
from tests.helpers import ROOT, edit_stack, run_pulumi, skip_unless_ci

pytestmark = pytest.mark.e2e

PACK = ROOT / "policy"
COMMIT = "0123456789abcdef0123456789abcdef01234567"          # test data, not a real revision
DIGEST = "vllm/vllm-openai:v0.33.0@sha256:" + "ab" * 32     # test data, not a real digest
RUNPOD = {"glmserve:provider": "runpod", "glmserve:runpod": {"cloud": "SECURE", "volume": "network", "state": "running"}}

# rule -> (the edits that break it, the edits on top that fix it, what the pack reports)
CASES = {
    "pinned-revision": (
        {"glmserve:policy": {"environment": "prod", "requireImageDigest": False}, "glmserve:model": {"revision": "main"}},
        {"glmserve:model": {"revision": COMMIT}},
        "model.revision in stacks/Pulumi.dev.yaml: [pinned-revision] is a branch, a tag or a short hash"),
    "image-digest": (
        {"glmserve:policy": {"environment": "prod", "requirePinnedRevision": False}},
        {"glmserve:engine": {"image": DIGEST}},
        "engine.image in stacks/Pulumi.dev.yaml: [image-digest] is not pinned by digest: a tag can be re-pushed; "
        "got 'vllm/vllm-openai:v0.33.0'"),
    "api-key": (
        {"glmserve:engine": {"env": {"VLLM_API_KEY": ""}}},
        {"glmserve:engine": {"env": {}}},
        "engine.env.VLLM_API_KEY in stacks/Pulumi.dev.yaml: [api-key] sets the engine's API key in plain configuration"),
    "max-cost": (
        {**RUNPOD, "glmserve:policy": {"maxCostPerHour": 10}},
        {"glmserve:policy": {"maxCostPerHour": 40}},
        # RunPod's 8x H200 list price (providers/runpod/catalog.yaml)
        "policy.maxCostPerHour in stacks/Pulumi.dev.yaml: [max-cost] the node costs $36.72/h with every replica "
        "busy, over the limit $10.00/h"),
    "stop-plan": (
        {**RUNPOD, "glmserve:runpod": {"cloud": "SECURE", "volume": "network"}},
        {"glmserve:runpod": {"state": "stopped"}},
        "runpod in stacks/Pulumi.dev.yaml: [stop-plan] a dedicated pod bills while it exists"),
    "feasible-plan": (
        {"glmserve:gpu": {"count": 4}, "glmserve:serving": {"tensorParallelSize": 4}},
        {"glmserve:gpu": {"count": 8}, "glmserve:serving": {"tensorParallelSize": 8}},
        "(capacity plan): [feasible-plan] does not fit: weights 182.48 GiB/GPU"),
}


@pytest.fixture
def pack_env(pulumi_env, project):
    if not PACK_STAMP.is_file():
        skip_unless_ci("the policy pack's virtualenv is not built (make policy-pack)")
    run_pulumi("stack", "init", "dev", "--secrets-provider", "passphrase", env=pulumi_env, project=project)
    return {**pulumi_env, PACK_ENV: str(PACK)}


def preview(env, project):
    proc = run_pulumi("preview", "--stack", "dev", "--policy-pack", str(PACK), "--color", "never",
                      env=env, project=project, check=False)
    return proc, proc.stdout + proc.stderr


@pytest.mark.parametrize("fixed", [False, True], ids=["violating", "fixed"])
@pytest.mark.parametrize("rule", list(CASES))
def test_the_pack_judges_each_rule(rule, fixed, pack_env, project):
    breaks, fix, message = CASES[rule]
    edit_stack(project, "dev", breaks)
    if fixed:
        edit_stack(project, "dev", fix)
    proc, text = preview(pack_env, project)
    assert "glmserve@v0.0.1 (local: " in text, text            # the pack was loaded and ran
    if fixed:
        assert proc.returncode == 0, text
        assert f"[{rule}]" not in text and "[mandatory]" not in text, text
        assert "glmserve:index:ServingNode glmserve-dev create" in text, text
    else:
        assert proc.returncode != 0, text
        # the engine's listing: the mandatory policy, on the ServingNode, with the rule's message
        assert f"- [mandatory]  {rule}  (glmserve:index:ServingNode: glmserve-dev)" in text, text
        assert message in text, text
        # each violation is reported once, by the pack: the program stepped aside
        assert text.count(f"[{rule}]") == 1 and "policy check failed" not in text, text
