"""The CrossGuard policy pack (policy/): the same rules as the program, on the policy facts the
ServingNode component carries. The Pulumi policy SDK lives only in the pack's own virtualenv
(`make policy-pack`), so here the pack's module runs against a recording stand-in of
`pulumi_policy`; `pulumi preview --policy-pack policy` needs the CLI's Python language host."""
from __future__ import annotations

import copy
import datetime
import importlib.util
import json
import re
import runpy
import types

import pytest
import yaml

from infra.deploy.component import SERVING_NODE_TYPE
from infra.planning.plan import plan_for_spec
from infra.policy.check import evaluate
from infra.spec.build import build_spec

from tests.helpers import ROOT

PACK = ROOT / "policy"
NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())
PROD = {"policy": {"environment": "prod"}}


def load_serving_node():
    spec = importlib.util.spec_from_file_location("pack_serving_node", PACK / "serving_node.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report_of(overrides: dict):
    spec = build_spec(copy.deepcopy(NODE), overrides, "stacks/node.yaml", "stacks/Pulumi.t.yaml")
    return evaluate(spec, plan_for_spec(spec), stack="t", file="stacks/Pulumi.t.yaml")


def as_props(facts: dict) -> dict:
    """The facts as a policy pack receives them: through JSON-like resource properties, where
    numbers are floats and a null may be dropped."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v
    return {"policyFacts": strip(json.loads(json.dumps(facts)))}


def test_the_pack_checks_the_component_type_the_program_creates():
    assert load_serving_node().SERVING_NODE_TYPE == SERVING_NODE_TYPE


@pytest.mark.parametrize("overrides", [
    PROD,
    {"provider": "modal", "scaling": {"maxReplicas": 2}, "policy": {"maxCostPerHour": 40}},
    {"provider": "runpod", "runpod": {"cloud": "SECURE"}},
    {"engine": {"env": {"VLLM_API_KEY": ""}, "extraArgs": ["--api-key", "k"]}},
    {"gpu": {"count": 4}, "serving": {"tensorParallelSize": 4}},
])
def test_the_pack_reports_what_the_program_refuses(overrides):
    report = report_of(overrides)
    assert not report.ok
    pack = load_serving_node()
    props = as_props(report.facts)
    for rule in pack.rules.RULES:
        expected = [problem for v, problem in zip(report.violations, report.messages()) if v.rule == rule]
        assert pack.violations(SERVING_NODE_TYPE, props, rule) == expected, rule


def test_the_pack_passes_a_compliant_stack_and_other_resources():
    pins = {"model": {"revision": "0" * 40}, "engine": {"image": "vllm/vllm-openai@sha256:" + "ab" * 32}}
    report = report_of({**PROD, **pins})
    assert report.ok
    pack = load_serving_node()
    assert all(not pack.violations(SERVING_NODE_TYPE, as_props(report.facts), r) for r in pack.rules.RULES)
    bad = as_props(report_of(PROD).facts)
    assert pack.violations("pulumi-python:dynamic:Resource", bad, "pinned-revision") == []
    assert pack.violations(SERVING_NODE_TYPE, {}, "pinned-revision") == []


def test_the_pack_dates_an_expiry_by_today():
    facts = report_of({"provider": "runpod", "runpod": {"cloud": "SECURE", "state": "running"},
                       "policy": {"expiresAt": "2026-05-31"}}).facts
    pack = load_serving_node()
    assert pack.violations(SERVING_NODE_TYPE, as_props(facts), "stop-plan", today=datetime.date(2026, 5, 31)) == []
    late = pack.violations(SERVING_NODE_TYPE, as_props(facts), "stop-plan", today=datetime.date(2026, 6, 1))
    assert len(late) == 1 and "expired on 2026-05-31" in late[0]


class Recorder:
    """Stand-ins of the pulumi_policy classes the pack uses, recording how it calls them."""

    def __init__(self):
        self.packs: list[dict] = []
        module = types.ModuleType("pulumi_policy")
        module.EnforcementLevel = types.SimpleNamespace(MANDATORY="mandatory", ADVISORY="advisory")
        module.ResourceValidationPolicy = lambda **kw: kw
        module.PolicyPack = lambda **kw: self.packs.append(kw)
        self.module = module


def test_the_pack_module_declares_one_mandatory_policy_per_rule(monkeypatch):
    rec = Recorder()
    monkeypatch.setitem(__import__("sys").modules, "pulumi_policy", rec.module)
    runpy.run_path(str(PACK / "__main__.py"), run_name="__main__")
    [pack] = rec.packs
    rules = load_serving_node().rules
    assert pack["name"] == "glmserve" and pack["enforcement_level"] == "mandatory"
    assert [p["name"] for p in pack["policies"]] == list(rules.RULES)
    assert all(p["description"] == rules.DESCRIPTIONS[p["name"]] for p in pack["policies"])
    # each policy's validate reports its own rule's messages through report_violation
    report = report_of(PROD)
    args = types.SimpleNamespace(resource_type=SERVING_NODE_TYPE, props=as_props(report.facts))
    got: dict[str, list[str]] = {}
    for p in pack["policies"]:
        p["validate"](args, lambda message, urn=None, name=p["name"]: got.setdefault(name, []).append(message))
    assert sorted(got) == ["image-digest", "pinned-revision"]
    assert got["pinned-revision"] == [report.messages()[0]]


def test_the_pack_runtime_uses_its_own_virtualenv():
    doc = yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())
    assert doc["runtime"] == {"name": "python", "options": {"virtualenv": ".venv"}}
    def pins_of(path):
        # `name==version`, then hashes or comments on the same or following lines.
        return dict(re.findall(r"(?m)^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", path.read_text()))

    pins = pins_of(PACK / "requirements.txt")
    assert pins["pulumi-policy"] == "1.21.0" and pins["protobuf"].startswith("5.29.")
    lock = pins_of(ROOT / "requirements.lock")
    assert pins["pulumi"] == lock["pulumi"], "the pack's SDK matches the project's (and the CLI's)"
    assert "pulumi-policy" not in lock and "pulumi_policy" not in lock


def test_glmserve_policy_facts_prints_what_the_pack_reads():
    from tests.helpers import run_glmserve

    proc = run_glmserve("policy", "--stack", "runpod-prod", "--facts", env={"GLMSERVE_PROJECT_DIR": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["environment"] == "prod" and facts["provider"]["billing"] == "dedicated"
    assert facts["provider"]["stopOption"]["key"] == "state"
    pack = load_serving_node()
    assert [m.split(": [")[1].split("]")[0] for m in pack.violations(SERVING_NODE_TYPE, {"policyFacts": facts},
                                                                      "pinned-revision")] == ["pinned-revision"]
