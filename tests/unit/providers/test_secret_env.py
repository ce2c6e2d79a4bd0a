"""Engine variables set with `pulumi config set --secret` (``secure:`` in the stack file) are
never written where a provider deploys them: each provider routes them through its own
secret mechanism, by name."""
from __future__ import annotations

import pytest

from infra.common.secrets import REDACTED
from infra.config import providers
from infra.engine.render import render
from infra.spec.load import spec_for_stack
from tests.helpers import edit_stack

VAR = "SOME_SERVICE_TOKEN"
SECURE = {"secure": "v1:AAAAAAAAAAAAAAAA:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"}


def spec_with_secret_env(project, stack):
    edit_stack(project, stack, {"glmserve:engine": {"env": {VAR: SECURE, "PLAIN_SETTING": "1"}}})
    return spec_for_stack(stack, project)


def test_the_spec_names_secret_variables_and_keeps_no_value(project):
    spec = spec_with_secret_env(project, "dev")
    assert spec.engine.secret_env_names == [VAR]
    assert VAR not in spec.engine.plain_env and spec.engine.plain_env["PLAIN_SETTING"] == "1"


def test_modal_mounts_a_secret_instead_of_writing_the_variable(project):
    spec = spec_with_secret_env(project, "modal-dev")
    module = providers.get("modal").artifact(spec, render(spec), "modal-dev", "glmserve")
    assert VAR not in module and "PLAIN_SETTING" in module
    # named like glmserve's other Modal secrets: the stack instance's owner id last (OWNER before a deploy)
    assert 'modal.Secret.from_name("glmserve-modal-dev-engine-env-OWNER")' in module


def test_kubernetes_takes_the_variable_from_its_secret(project):
    spec = spec_with_secret_env(project, "k8s-prod")
    provider = providers.get("kubernetes")
    docs = provider.manifests(spec, render(spec), "k8s-prod", "glmserve")
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["stringData"][VAR] == REDACTED
    env = [e for d in docs if d["kind"] in ("Deployment", "StatefulSet", "LeaderWorkerSet")
           for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])]
    (entry,) = [e for e in env if e["name"] == VAR]
    assert entry == {"name": VAR, "valueFrom": {"secretKeyRef": {"name": secret["metadata"]["name"], "key": VAR}}}


@pytest.mark.parametrize("stack", ["runpod-prod"])
def test_runpod_fills_the_variable_from_pulumi_secrets_at_up(project, stack):
    spec = spec_with_secret_env(project, stack)
    provider = providers.get("runpod")
    command = render(spec)
    assert provider.deploy_variables(spec, command, stack, "glmserve")["env"][VAR] == REDACTED
    assert provider.secret_env(spec, command)[VAR] is None      # filled from ctx.secret_env at up
