"""The ServingNode component carries the stack's policy facts as its one input, which is what a
CrossGuard policy pack (policy/) reads: checked with Pulumi's mocks, in milliseconds."""
from __future__ import annotations

import copy

import pulumi
import pytest
import yaml

from infra.deploy.component import SERVING_NODE_TYPE, ServingNode, ServingNodeArgs
from infra.engine.render import render
from infra.planning.plan import plan_for_spec
from infra.policy import rules
from infra.policy.check import evaluate
from infra.spec.build import build_spec

from tests.helpers import ROOT
from tests.pulumi_mocks import Recorder


# Pulumi's mocks need a live event loop of their own (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("fresh_event_loop")

def test_serving_node_inputs_are_the_policy_facts():
    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, project="glmserve", stack="t", preview=True)
    node = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())
    spec = build_spec(copy.deepcopy(node), {"policy": {"environment": "prod"}}, "stacks/node.yaml",
                      "stacks/Pulumi.t.yaml")
    plan = plan_for_spec(spec)
    report = evaluate(spec, plan, stack="t", file="stacks/Pulumi.t.yaml")

    @pulumi.runtime.test
    def deploy():
        serving = ServingNode("glmserve-t", ServingNodeArgs(spec=spec, command=render(spec), stack="t",
                                                            project="glmserve", plan=plan,
                                                            policy_facts=report.facts))

        def check(_):
            [component] = [r for r in mocks.registered if r.typ == SERVING_NODE_TYPE]
            assert not component.custom and list(component.inputs) == ["policyFacts"]
            facts = component.inputs["policyFacts"]
            # As a policy pack sees them: nulls dropped, numbers as floats; the rules read them alike.
            assert facts["environment"] == "prod" and facts["model"].get("revision") == spec.model.revision
            assert "requirePinnedRevision" not in facts["policy"] and facts["scaling"]["maxReplicas"] == 1.0
            assert rules.evaluate(facts).violations == report.evaluation.violations
            assert rules.evaluate(facts).failed_rules() == ["pinned-revision", "image-digest"]

        return serving.urn.apply(check)          # resolved once the component is registered

    deploy()
