"""The Pulumi program: one ServingNode per stack, its outputs exported once."""
from __future__ import annotations

import pulumi

from infra.common.errors import GlmserveError


def program() -> None:
    from infra.deploy.component import ServingNode, ServingNodeArgs
    from infra.engine.render import render
    from infra.deploy.workspace import register_credentials
    from infra.spec.load import spec_in_program

    register_credentials()
    try:
        spec = spec_in_program()
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
    if plan is not None and plan.errors():
        raise pulumi.RunError("glmserve: the node does not fit:\n  - " + "\n  - ".join(plan.errors()))
    stack, project = pulumi.get_stack(), pulumi.get_project()
    try:
        node = ServingNode(f"{project}-{stack}", ServingNodeArgs(spec=spec, command=command, stack=stack, project=project, plan=plan,
                                                                  policy_facts=policy.facts))
    except GlmserveError as e:
        raise pulumi.RunError(e.render()) from None
    for k, v in node.outputs.items():
        pulumi.export(k, v)


def _plan(spec):
    from infra.planning.plan import plan_for_spec

    if not spec.model.profile:
        pulumi.log.warn("model.profile is not set: no capacity or cost plan for this node")
        return None
    return plan_for_spec(spec)
