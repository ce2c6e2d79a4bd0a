"""ServingNode: the one Pulumi component that realises a validated spec.

stack config → spec (validated) → plan → engine command → provider resources → outputs.
The component owns the steps that are the same for every target (the API key, the readiness
gate in front of the endpoint, the outputs); the provider named in the stack creates the
child resources and returns its endpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi

from infra.common.secrets import register
from infra.config import providers
from infra.deploy.apikey import ApiKey
from infra.deploy.identity import StackIdentity
from infra.deploy.readiness_gate import Readiness
from infra.deploy.target import DeployContext, Endpoint
from infra.spec.schedule import now as schedule_now
from infra.engine.render import EngineCommand
from infra.spec.model import NodeSpec


SERVING_NODE_TYPE = "glmserve:index:ServingNode"


@dataclass(frozen=True)
class ServingNodeArgs:
    spec: NodeSpec
    command: EngineCommand
    stack: str
    project: str
    plan: Any = None
    # The stack's policy facts (infra/policy/facts.py): the component's one input property, so
    # that a CrossGuard policy pack (policy/) evaluates the same rules as the program.
    policy_facts: Optional[dict[str, Any]] = None
    # engine.env variables set with `pulumi config set --secret`: name -> secret Output.
    secret_env: dict[str, Any] = field(default_factory=dict)


class ServingNode(pulumi.ComponentResource):
    engine_command: pulumi.Output[list]
    model_name: pulumi.Output[str]
    api_key: Optional[pulumi.Output[str]]
    url: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: ServingNodeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        props = {"policyFacts": args.policy_facts} if args.policy_facts is not None else None
        super().__init__(SERVING_NODE_TYPE, name, props, opts)
        spec = args.spec
        provider = providers.get(spec.provider)
        provider.validate(spec)
        for warning in provider.warnings(spec):
            pulumi.log.warn(warning, resource=self)
        child = pulumi.ResourceOptions(parent=self)

        key = spec.secrets.api_key
        if key is not None and key.value is not None:
            api_key = pulumi.Output.secret(key.value.get_secret_value())
        elif key is not None:
            api_key = None      # a provider-side named secret: its value is never known here
        else:
            api_key = ApiKey(f"{name}-api-key", purpose=f"{args.project}/{args.stack}", opts=child).value
        hf = spec.secrets.hf_token
        hf_token = pulumi.Output.secret(hf.value.get_secret_value()) if hf is not None and hf.value is not None else None

        if api_key is not None:
            # Known in this process once generated or decrypted: never printed from here on.
            api_key.apply(register)
        identity = StackIdentity(f"{name}-identity", stack=args.stack, project=args.project, opts=child)
        ctx = DeployContext(spec=spec, command=args.command, stack=args.stack, project=args.project,
                            parent=self, api_key=api_key, hf_token=hf_token, owner=identity.owner,
                            secret_env=dict(args.secret_env))
        endpoint: Endpoint = provider.create_resources(ctx)

        self.engine_command = pulumi.Output.from_input(args.command.argv)
        self.model_name = pulumi.Output.from_input(spec.model.served_name)
        self.api_key = api_key
        self.url = self._gated_url(name, spec, endpoint, api_key)
        outputs: dict[str, Any] = {
            "engineCommand": self.engine_command,
            "modelName": self.model_name,
            "provider": spec.provider,
            "owner": identity.owner,
            **endpoint.outputs,
        }
        if self.url is not None:
            outputs["url"] = self.url
            outputs["baseUrl"] = self.url.apply(lambda u: u.rstrip("/") + "/v1")
        if api_key is not None:
            outputs["apiKey"] = api_key
        if spec.scaling.warm_schedule is not None:
            # What the warm window asked for at this up: `glmserve schedule apply` compares with it.
            outputs["scheduledReplicas"] = spec.scaling.replicas_at(schedule_now())
        if args.plan is not None:
            outputs["capacity"] = args.plan.summary()
            outputs["estimatedCostPerHour"] = args.plan.to_json().get("cost_per_hour_usd")
        self.outputs = outputs
        self.register_outputs(outputs)

    def _gated_url(self, name: str, spec: NodeSpec, endpoint: Endpoint, api_key) -> Optional[pulumi.Output[str]]:
        """The endpoint's URL, known only once the readiness gate has passed (when there is one)."""
        if endpoint.url is None:
            return None
        url = pulumi.Output.from_input(endpoint.url)
        if endpoint.revision is None:
            return url
        gate = Readiness(
            f"{name}-ready", url=url, revision=endpoint.revision, model_name=spec.model.served_name,
            api_key=api_key, timeout_seconds=spec.timeouts.startup_seconds,
            poll_seconds=spec.readiness.poll_interval_seconds,
            request_timeout=spec.readiness.request_timeout_seconds, smoke_test=spec.readiness.smoke_test,
            tool_call_check=spec.readiness.tool_call_check,
            opts=pulumi.ResourceOptions(parent=self))
        return pulumi.Output.all(url, gate.ready).apply(lambda a: a[0])
