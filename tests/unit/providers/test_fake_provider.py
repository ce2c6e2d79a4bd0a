"""Adding a target needs no edit to infra/: a provider defined in this test, registered at run
time, is validated, planned, rendered and deployed (with Pulumi's mocks) through the same
hooks as the shipped ones; the ServingNode gives it the identity and the API key, and owns the
readiness gate and the url/baseUrl outputs."""
from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from infra.cli.main import main
from infra.config import providers
from infra.deploy.target import DeployContext, Endpoint
from infra.spec.model import NodeSpec
from providers.base import Feature, Provider, ProviderOptions

from tests.pulumi_mocks import Recorder

# Pulumi's mocks need a live event loop of their own (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("fresh_event_loop")

class FakeOptions(ProviderOptions):
    region: str = "here-1"


class FakeProvider(Provider):
    name = "fake"
    title = "Fake Cloud"
    options_model = FakeOptions
    unsupported = {Feature.MULTI_NODE: "one machine only"}

    def deploy_variables(self, spec: NodeSpec, command: Any, stack: str, project: str) -> dict[str, Any]:
        return {"argv": command.argv, "region": self.options(spec).region, "stack": stack}

    def artifact(self, spec: NodeSpec, command: Any, stack: str, project: str) -> str:
        return json.dumps(self.deploy_variables(spec, command, stack, project), indent=1) + "\n"

    def create_resources(self, ctx: DeployContext) -> Endpoint:
        box = pulumi.CustomResource("fake:index:Machine", f"{ctx.project}-{ctx.stack}-machine",
                                    {"owner": ctx.owner, "argv": list(ctx.command.argv),
                                     "region": self.options(ctx.spec).region},
                                    opts=pulumi.ResourceOptions(parent=ctx.parent))
        return Endpoint(url="http://127.0.0.1:9/fake", revision=box.id, outputs={"machine": box.id})


@pytest.fixture
def fake(project, monkeypatch):
    monkeypatch.setenv("GLMSERVE_PROJECT_DIR", str(project))
    (project / "stacks" / "Pulumi.fake-dev.yaml").write_text(
        "config:\n  glmserve:provider: fake\n  glmserve:fake:\n    region: there-2\n")
    providers.register("fake", FakeProvider())
    yield project
    providers.unregister("fake")


def test_the_cli_validates_plans_and_renders_a_provider_it_does_not_know(fake, capsys):
    assert main(["validate", "--stack", "fake-dev"]) == 0
    assert capsys.readouterr().out == "fake-dev: OK\n"
    assert main(["plan", "--stack", "fake-dev", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["provider"] == "fake" and plan["fits"] is True
    assert main(["render", "--artifact", "--stack", "fake-dev"]) == 0
    assert json.loads(capsys.readouterr().out)["region"] == "there-2"
    # its option block is its own, and its capabilities are data
    (fake / "stacks" / "Pulumi.fake-dev.yaml").write_text(
        "config:\n  glmserve:provider: fake\n  glmserve:fake:\n    zone: x\n")
    assert main(["validate", "--stack", "fake-dev"]) == 2
    assert "fake.zone" in capsys.readouterr().err


def test_a_pulumi_mock_deployment_gives_the_provider_identity_key_gate_and_outputs(fake):
    from infra.deploy.component import ServingNode, ServingNodeArgs
    from infra.engine.render import render
    from infra.spec.load import spec_for_stack

    spec = spec_for_stack("fake-dev")
    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, project="glmserve", stack="fake-dev", preview=False)

    @pulumi.runtime.test
    def deploy():
        node = ServingNode("glmserve-fake-dev", ServingNodeArgs(spec=spec, command=render(spec), stack="fake-dev",
                                                                project="glmserve"))

        def check(values):
            url, base_url, machine = values
            names = {r.name: r for r in mocks.registered}
            machine_args = names["glmserve-fake-dev-machine"]
            assert machine_args.typ == "fake:index:Machine" and machine_args.inputs["region"] == "there-2"
            assert {"glmserve-fake-dev-identity", "glmserve-fake-dev-api-key", "glmserve-fake-dev-ready"} <= set(names)
            assert url and base_url == url.rstrip("/") + "/v1" and machine == "glmserve-fake-dev-machine-id"

        return pulumi.Output.all(node.outputs["url"], node.outputs["baseUrl"], node.outputs["machine"]).apply(check)

    deploy()
