"""ServingNode: the one Pulumi component that realises a validated spec.

stack config → spec (validated) → plan → engine command → provider resources → outputs.
The component owns the steps that are the same for every target; the provider named in
the stack creates the child resources.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi

from infra.config import providers
from providers.base import DeployContext

from infra.deploy.apikey import ApiKey
from infra.engine.render import EngineCommand
from infra.spec.model import NodeSpec


@dataclass(frozen=True)
class ServingNodeArgs:
    spec: NodeSpec
    command: EngineCommand
    stack: str
    project: str
    plan: Any = None


class ServingNode(pulumi.ComponentResource):
    engine_command: pulumi.Output[list]
    model_name: pulumi.Output[str]
    api_key: pulumi.Output[str]

    def __init__(self, name: str, args: ServingNodeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("glmserve:index:ServingNode", name, None, opts)
        spec = args.spec
        provider = providers.get(spec.provider)
        provider.validate(spec)
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

        ctx = DeployContext(spec=spec, command=args.command, stack=args.stack, project=args.project,
                            parent=self, api_key=api_key, hf_token=hf_token, plan=args.plan)
        extra = provider.create_resources(ctx) or {}

        self.engine_command = pulumi.Output.from_input(args.command.argv)
        self.model_name = pulumi.Output.from_input(spec.model.served_name)
        self.api_key = api_key
        outputs: dict[str, Any] = {
            "engineCommand": self.engine_command,
            "modelName": self.model_name,
            "provider": spec.provider,
            **extra,
        }
        if api_key is not None:
            outputs["apiKey"] = api_key
        if args.plan is not None:
            outputs["capacity"] = args.plan.summary()
            outputs["estimatedCostPerHour"] = args.plan.to_json().get("cost_per_hour_usd")
        self.outputs = outputs
        self.register_outputs(outputs)
