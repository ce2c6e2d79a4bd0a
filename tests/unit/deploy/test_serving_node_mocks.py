"""The ServingNode of the shipped none, Modal and RunPod stacks under Pulumi's mocks, in
milliseconds: the children each provider creates, the identity and the generated API key, the
readiness gate exactly where something serves, and the outputs the component registers.
(Kubernetes resolves its cluster when it creates resources: tests/unit/providers and e2e.)"""
from __future__ import annotations

import pulumi
import pytest

from infra.deploy.component import SERVING_NODE_TYPE, ServingNode, ServingNodeArgs
from infra.engine.render import render
from infra.spec.load import spec_for_stack
from tests.pulumi_mocks import Recorder

# Pulumi's mocks need a live event loop of their own (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("fresh_event_loop")

DYNAMIC = "pulumi-python:dynamic:Resource"
KEY = "generated-key-Zq8rT2mVx4Lp9sKd"
# stack -> the children's names after "glmserve-<stack>-", beside identity and api-key
CHILDREN = {
    "dev": {"identity", "api-key"},
    "modal-dev": {"identity", "api-key", "secret-api-key", "ready"},
    "runpod-prod": {"identity", "api-key", "volume", "pod", "ready"},
}


@pytest.mark.parametrize("stack", sorted(CHILDREN))
def test_children_secrets_and_outputs(stack, monkeypatch):
    for var in ("RUNPOD_API_KEY", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        monkeypatch.delenv(var, raising=False)
    spec = spec_for_stack(stack)
    mocks = Recorder(extra={"url": "https://endpoint.example", "value": KEY, "owner": "gs" + "0" * 20})
    pulumi.runtime.set_mocks(mocks, project="glmserve", stack=stack, preview=False)
    name = f"glmserve-{stack}"

    @pulumi.runtime.test
    def deploy():
        node = ServingNode(name, ServingNodeArgs(spec=spec, command=render(spec), stack=stack, project="glmserve"))

        def check(_):
            component = next(r for r in mocks.registered if r.typ == SERVING_NODE_TYPE)
            assert component.name == name
            children = [r for r in mocks.registered if r.typ != SERVING_NODE_TYPE]
            assert all(r.typ == DYNAMIC for r in children), [r.typ for r in children]
            short = {r.name.removeprefix(f"{name}-") for r in children}
            assert CHILDREN[stack] <= short, short
            # something serves exactly where the gate guards it, and only then are there url/baseUrl
            assert ("ready" in short) == ("url" in node.outputs) == ("baseUrl" in node.outputs)
            assert "apiKey" in node.outputs and "owner" in node.outputs and node.outputs["provider"] == spec.provider

        return pulumi.Output.all(node.urn, *node.outputs.values()).apply(check)

    deploy()
