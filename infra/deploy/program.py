"""The Pulumi program: one ServingNode per stack, its outputs exported once."""
from __future__ import annotations

import pulumi

from infra.common.errors import GlmserveError


def program() -> None:
    from infra.config.pulumi_config import secret_env_from_pulumi
    from infra.deploy.component import ServingNode, ServingNodeArgs
    from infra.engine.render import render
    from infra.deploy.workspace import register_credentials
    from infra.spec.load import spec_in_program

    register_credentials()
    try:
        spec = spec_in_program()
        secret_env = _secret_env(spec, secret_env_from_pulumi())
        command = render(spec)
        plan = _plan(spec)
    except GlmserveError as e:
        # RunError is reported by the engine as a plain message, without a traceback.
        raise pulumi.RunError(e.render()) from None
    for w in [*command.warnings, *(plan.warnings() if plan is not None else [])]:
        pulumi.log.warn(w)
    try:
        # The policy rules (infra/policy/) gate preview and up: every violation, before any resource.
        from infra.policy.check import enforce
        policy = enforce(spec, plan, pulumi.get_stack())
    except GlmserveError as e:
        raise pulumi.RunError(e.render()) from None
    stack, project = pulumi.get_stack(), pulumi.get_project()
    try:
        node = ServingNode(f"{project}-{stack}", ServingNodeArgs(spec=spec, command=command, stack=stack, project=project, plan=plan,
                                                                  policy_facts=policy.facts, secret_env=secret_env))
    except GlmserveError as e:
        raise pulumi.RunError(e.render()) from None
    for k, v in node.outputs.items():
        pulumi.export(k, v)


def _secret_env(spec, values: dict[str, str]) -> dict[str, pulumi.Output]:
    """The engine variables set with `pulumi config set --secret`, as secret Outputs (and
    known to the redaction registry from here on)."""
    from infra.common.errors import Problem
    from infra.common.secrets import register

    missing = [k for k in spec.engine.secret_env_names if k not in values]
    if missing:
        raise GlmserveError([Problem(key=f"engine.env.{k}", message="is a Pulumi secret the engine did not decrypt",
                                     allowed=f"pulumi config set --secret --path 'glmserve:engine.env.{k}' <value>")
                             for k in missing])
    for v in values.values():
        register(v)
    return {k: pulumi.Output.secret(values[k]) for k in spec.engine.secret_env_names}


def _plan(spec):
    from infra.planning.plan import plan_for_spec

    if not spec.model.profile:
        pulumi.log.warn("model.profile is not set: no capacity or cost plan for this node")
        return None
    return plan_for_spec(spec)
