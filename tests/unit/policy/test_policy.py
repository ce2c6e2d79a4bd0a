"""Policy rules (infra/policy/): each fails a violating stack with its message and passes a
compliant one, offline (`glmserve policy`) and at preview, through the real engine (the
program raises before any resource is registered)."""
from __future__ import annotations

import copy
import datetime
import json

import pytest
import yaml

from infra.common.errors import GlmserveError
from infra.planning.plan import plan_for_spec
from infra.policy.check import evaluate
from infra.policy.facts import policy_facts
from infra.policy.rules import RULES, enabled_rules
from infra.spec.build import build_spec

from tests.helpers import ROOT, run_glmserve, run_pulumi

NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())
COMMIT = "0123456789abcdef0123456789abcdef01234567"          # test data, not a real revision
DIGEST = "vllm/vllm-openai:v0.33.0@sha256:" + "ab" * 32     # test data, not a real digest
PINS = {"model": {"revision": COMMIT}, "engine": {"image": DIGEST}}
HAS_RUNPOD = (ROOT / "providers" / "runpod" / "__init__.py").is_file()
needs_runpod = pytest.mark.skipif(not HAS_RUNPOD, reason="providers/runpod is not there yet (written concurrently)")


def merged(*parts: dict) -> dict:
    out: dict = {}
    for p in parts:
        for k, v in p.items():
            out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def spec_of(overrides: dict):
    return build_spec(copy.deepcopy(NODE), overrides, "stacks/node.yaml", "stacks/Pulumi.t.yaml")


def report_of(overrides: dict, today=None, plan="auto"):
    spec = spec_of(overrides)
    p = plan_for_spec(spec) if plan == "auto" else plan
    return evaluate(spec, p, stack="t", file="stacks/Pulumi.t.yaml", today=today)


def enabled_of(overrides: dict) -> dict[str, bool]:
    return enabled_rules(policy_facts(spec_of(overrides)))


def rules_failed(report) -> list[str]:
    return report.failed_rules()


# ----------------------------------------------------------------------------- settings

def test_defaults_follow_the_environment():
    dev = enabled_of({})
    prod = enabled_of({"policy": {"environment": "prod"}})
    assert dev == {"pinned-revision": False, "image-digest": False, "api-key": True, "max-cost": False,
                   "stop-plan": True, "feasible-plan": True}
    assert prod["pinned-revision"] and prod["image-digest"] and not prod["max-cost"]
    explicit = enabled_of({"policy": {"environment": "prod", "requireImageDigest": False, "maxCostPerHour": 50}})
    assert not explicit["image-digest"] and explicit["max-cost"]


def test_policy_section_is_validated_like_every_section():
    with pytest.raises(GlmserveError) as e:
        spec_of({"policy": {"environment": "production"}})
    assert "policy.environment in stacks/Pulumi.t.yaml" in str(e.value) and "'dev', 'staging' or 'prod'" in str(e.value)
    with pytest.raises(GlmserveError) as e:
        spec_of({"policy": {"maxCostPerHour": -1}})
    assert "policy.maxCostPerHour" in str(e.value)
    with pytest.raises(GlmserveError) as e:
        spec_of({"policy": {"requirePinnedRevison": True}})
    assert "did you mean 'requirePinnedRevision'" in str(e.value)


# ----------------------------------------------------------------------------- each rule, offline

def test_pinned_revision():
    prod = {"policy": {"environment": "prod"}, "engine": {"image": DIGEST}}
    for rev, what in (("main", "is a branch, a tag or a short hash"), ("abc1234", "short hash"),
                      (COMMIT.upper(), "is a branch"), (None, "is not set")):
        r = report_of(merged(prod, {"model": {"revision": rev}} if rev else {}))
        assert rules_failed(r) == ["pinned-revision"], r.format_text()
        assert what in r.violations[0].message and r.violations[0].key == "model.revision"
    assert report_of(merged(prod, {"model": {"revision": COMMIT}})).ok
    # off in dev unless asked for
    assert report_of({"model": {"revision": "main"}}).ok
    assert not report_of({"model": {"revision": "main"}, "policy": {"requirePinnedRevision": True}}).ok


def test_image_digest():
    prod = {"policy": {"environment": "prod"}, "model": {"revision": COMMIT}}
    r = report_of(prod)
    assert rules_failed(r) == ["image-digest"]
    v = r.violations[0]
    assert v.key == "engine.image" and v.value == "vllm/vllm-openai:v0.33.0" and "@sha256:<64 hex>" in v.fix
    with pytest.raises(GlmserveError):      # a malformed digest is refused by spec validation already
        report_of(merged(prod, {"engine": {"image": "vllm/vllm-openai@sha256:abc"}}))
    assert report_of(merged(prod, {"engine": {"image": DIGEST}})).ok
    assert report_of(merged(prod, {"engine": {"image": "vllm/vllm-openai@sha256:" + "0" * 64}})).ok


def test_api_key_definition():
    # generated (secrets.apiKey unset), by secure value, by provider-side name: all count as set
    assert report_of({}).ok
    assert report_of({"secrets": {"apiKey": {"value": "[encrypted]"}}}).ok
    assert report_of({"secrets": {"apiKey": {"name": "team-api-key"}}}).ok
    cases = [
        ({"engine": {"env": {"VLLM_API_KEY": ""}}}, "engine.env.VLLM_API_KEY", "plain configuration"),
        # every engine's key variable counts, whichever engine the stack runs (sglang's here)
        ({"engine": {"env": {"GLMSERVE_API_KEY": ""}}}, "engine.env.GLMSERVE_API_KEY", "plain configuration"),
        ({"engine": {"extraArgs": ["--api-key", "k"]}}, "engine.extraArgs", "passes --api-key"),
    ]
    for overrides, key, text in cases:
        r = report_of(overrides)
        assert rules_failed(r) == ["api-key"], (overrides, r.format_text())
        assert r.violations[0].key == key and text in r.violations[0].message
    # configurable: a stack may turn it off explicitly
    assert report_of({"engine": {"env": {"VLLM_API_KEY": ""}}, "policy": {"requireApiKey": False}}).ok


def test_a_key_in_clear_or_a_weak_key_is_refused_before_the_rules():
    """The cases the api-key rule no longer carries: the stack file reader and the spec refuse them."""
    with pytest.raises(GlmserveError) as e:
        spec_of({"secrets": {"apiKey": {"value": "short"}}})
    assert "secrets.apiKey" in str(e.value) and "short" not in str(e.value).replace("shorter", "")


def test_max_cost():
    r = report_of({"provider": "modal", "scaling": {"maxReplicas": 2}, "policy": {"maxCostPerHour": 40}})
    assert rules_failed(r) == ["max-cost"]
    msg = r.violations[0].message
    assert "$72.63/h ($36.32/h x 2 replicas)" in msg and "over the limit $40.00/h" in msg
    assert report_of({"provider": "modal", "policy": {"maxCostPerHour": 40}}).ok
    # the none provider bills nothing; no plan cannot be checked
    assert report_of({"policy": {"maxCostPerHour": 1}}).ok
    no_plan = report_of({"provider": "modal", "policy": {"maxCostPerHour": 40}}, plan=None)
    assert rules_failed(no_plan) == ["max-cost"] and "no capacity and cost plan" in no_plan.violations[0].message


def test_stop_plan():
    base = {"provider": "runpod", "runpod": {"cloud": "SECURE"}}
    r = report_of(base)
    assert rules_failed(r) == ["stop-plan"] and "no stop or destroy plan" in r.violations[0].message
    assert report_of(merged(base, {"runpod": {"state": "running"}})).ok
    assert report_of(merged(base, {"runpod": {"state": "stopped"}})).ok
    # A keep-warm window stops the pod outside it: a stop plan.
    assert report_of(merged(base, {"scaling": {"warmSchedule": {
        "timeZone": "UTC", "windows": [{"days": ["mon-fri"], "start": "08:00", "end": "19:00"}]}}})).ok
    today = datetime.date(2026, 6, 1)
    assert report_of(merged(base, {"policy": {"expiresAt": "2026-06-30"}}), today=today).ok
    expired = report_of(merged(base, {"runpod": {"state": "running"}, "policy": {"expiresAt": "2026-05-31"}}),
                        today=today)
    assert rules_failed(expired) == ["stop-plan"] and "expired on 2026-05-31" in expired.violations[0].message
    assert report_of(merged(base, {"runpod": {"state": "stopped"}, "policy": {"expiresAt": "2026-05-31"}}),
                     today=today).ok
    # serverless providers scale to zero: the rule does not apply
    assert report_of({"provider": "modal"}).ok
    assert report_of(merged(base, {"policy": {"requireStopPlan": False}})).ok


def test_infeasible_plan_never_passes_whatever_the_settings():
    off = {"requirePinnedRevision": False, "requireImageDigest": False, "requireApiKey": False,
           "requireStopPlan": False}
    r = report_of({"gpu": {"count": 4}, "serving": {"tensorParallelSize": 4}, "policy": off})
    assert rules_failed(r) == ["feasible-plan"]
    assert "does not fit" in r.violations[0].message


def test_report_json_lists_every_rule():
    r = report_of({"policy": {"environment": "prod"}})
    j = r.to_json()
    assert list(j["rules"]) == list(RULES)
    assert j["rules"]["pinned-revision"] == "fail" and j["rules"]["max-cost"] == "off"
    assert j["ok"] is False and {v["rule"] for v in j["violations"]} == {"pinned-revision", "image-digest"}


# ----------------------------------------------------------------------------- shipped stacks

def test_shipped_prod_stacks_fail_until_the_pins_are_filled_in(tmp_path):
    """The decision documented in docs/gitops.md: prod stacks ship with the prod rules on and
    the two pins left for the team; everything else about them passes."""
    for stack in ("modal-prod", "runpod-prod"):
        proc = run_glmserve("policy", "--stack", stack, "--json", env={"GLMSERVE_PROJECT_DIR": str(ROOT)})
        assert proc.returncode == 1, proc.stderr
        report = json.loads(proc.stdout)
        assert report["environment"] == "prod"
        assert [v["rule"] for v in report["violations"]] == ["pinned-revision", "image-digest"]
        assert report["rules"]["max-cost"] == "pass" and report["rules"]["stop-plan"] == "pass"
    for stack in ("dev", "modal-dev"):
        proc = run_glmserve("policy", "--stack", stack, env={"GLMSERVE_PROJECT_DIR": str(ROOT)})
        assert proc.returncode == 0 and "environment dev: PASS" in proc.stdout


def test_filling_in_the_pins_makes_a_prod_stack_pass(project):
    path = project / "stacks" / "Pulumi.modal-prod.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["glmserve:model"]["revision"] = COMMIT
    doc["config"]["glmserve:engine"] = {"image": DIGEST}
    path.write_text(yaml.safe_dump(doc))
    proc = run_glmserve("policy", "--stack", "modal-prod", env={"GLMSERVE_PROJECT_DIR": str(project)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "environment prod: PASS" in proc.stdout


# ----------------------------------------------------------------------------- at preview (real engine)

def write_stack(project, name: str, config: dict) -> None:
    doc = {"config": {f"glmserve:{k}": v for k, v in config.items()}}
    (project / "stacks" / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


PLAIN_KEY = "sk-plain-text-in-git-0123456789"
MODAL_NAMED_KEY = {"secrets": {"hfToken": {"name": "huggingface"}, "apiKey": {"name": "team-api-key"}}}

VIOLATING = {
    "pinned-revision": ({"provider": "none", "policy": {"environment": "prod"}, "engine": {"image": DIGEST},
                         "model": {"revision": "main"}},
                        "model.revision in stacks/Pulumi.pol-pinned-revision.yaml: [pinned-revision] is a branch"),
    "image-digest": ({"provider": "none", "policy": {"environment": "prod"}, "model": {"revision": COMMIT}},
                     "engine.image in stacks/Pulumi.pol-image-digest.yaml: [image-digest] is not pinned by digest"),
    "api-key": ({"provider": "none", "engine": {"env": {"VLLM_API_KEY": ""}}},
                "engine.env.VLLM_API_KEY in stacks/Pulumi.pol-api-key.yaml: [api-key] sets the engine's API key"),
    "max-cost": ({"provider": "modal", **MODAL_NAMED_KEY, "scaling": {"maxReplicas": 2},
                  "policy": {"maxCostPerHour": 40}},
                 "[max-cost] the node costs $72.63/h ($36.32/h x 2 replicas) with every replica busy, over the "
                 "limit $40.00/h"),
    "stop-plan": ({"provider": "runpod", "runpod": {"cloud": "SECURE", "volume": "network"}},
                  "runpod in stacks/Pulumi.pol-stop-plan.yaml: [stop-plan] a dedicated pod bills while it exists"),
    "feasible-plan": ({"provider": "none", "gpu": {"count": 4}, "serving": {"tensorParallelSize": 4}},
                      "[feasible-plan]"),
}
COMPLIANT = {
    "none-prod": {"provider": "none", "policy": {"environment": "prod", "maxCostPerHour": 10}, **PINS},
    "modal-prod": {"provider": "modal", **MODAL_NAMED_KEY, "policy": {"environment": "prod", "maxCostPerHour": 40},
                   **PINS},
    "runpod-prod": {"provider": "runpod", "policy": {"environment": "prod", "maxCostPerHour": 40}, **PINS,
                    "runpod": {"cloud": "SECURE", "volume": "network", "state": "running"}},
}


def _needs(provider: str):
    if provider == "runpod" and not HAS_RUNPOD:
        pytest.skip("providers/runpod is not there yet (written concurrently); this case runs once it is")


@pytest.mark.e2e
@pytest.mark.parametrize("rule", list(VIOLATING))
def test_each_rule_fails_a_violating_stack_at_preview(rule, pulumi_env, project):
    config, message = VIOLATING[rule]
    _needs(config["provider"])
    stack = f"pol-{rule}"
    write_stack(project, stack, config)
    offline = run_glmserve("policy", "--stack", stack, env=pulumi_env)
    assert offline.returncode == 1 and f"FAIL  {rule}" in offline.stdout, offline.stdout + offline.stderr

    proc = run_glmserve("preview", "--stack", stack, env={**pulumi_env, "RUNPOD_API_KEY": ""})
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert f"policy check failed for stack {stack}" in text, text
    assert message in text, text
    assert "Traceback" not in text
    assert PLAIN_KEY not in text, "the policy message must not print the key it complains about"
    # nothing was registered: the stack holds no resources
    out = run_pulumi("stack", "export", "--stack", stack, env=pulumi_env, project=project)
    assert not json.loads(out.stdout)["deployment"].get("resources")


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(COMPLIANT))
def test_a_compliant_stack_passes_at_preview(name, pulumi_env, project):
    config = COMPLIANT[name]
    _needs(config["provider"])
    stack = f"ok-{name}"
    write_stack(project, stack, config)
    offline = run_glmserve("policy", "--stack", stack, env=pulumi_env)
    assert offline.returncode == 0 and "PASS" in offline.stdout, offline.stdout + offline.stderr
    proc = run_glmserve("preview", "--stack", stack, env={**pulumi_env, "RUNPOD_API_KEY": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "to create" in proc.stdout and "policy check failed" not in proc.stdout + proc.stderr
