"""The small interface every target implements (SkyPilot's clouds/<cloud>.py pattern).

A provider turns one validated NodeSpec plus the shared engine command into child
resources of the ServingNode component. What it cannot honour is declared as data in
``unsupported``; its own spec block (``glmserve:<name>``) is validated by ``options_model``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from infra.common.errors import GlmserveError, Problem
from infra.engine.render import EngineCommand
from infra.spec.model import NodeSpec


class ProviderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


@dataclass(frozen=True)
class Credential:
    env: str
    what: str
    config_key: Optional[str] = None


@dataclass
class DeployContext:
    """What a provider gets at `pulumi up`: plain data plus secret Outputs."""

    spec: NodeSpec
    command: EngineCommand
    stack: str
    project: str
    parent: Any                      # the ServingNode ComponentResource
    api_key: Any                     # pulumi.Output[str], secret
    hf_token: Any = None             # pulumi.Output[str] | None, secret
    plan: Any = None                 # capacity/cost plan, when the planner has landed
    outputs: dict[str, Any] = field(default_factory=dict)


class Provider:
    name: ClassVar[str]
    unsupported: ClassVar[dict[str, str]] = {}
    credentials: ClassVar[tuple[Credential, ...]] = ()
    options_model: ClassVar[type[ProviderOptions]] = ProviderOptions
    # Whether one engine may span several nodes (serving TP x PP > gpu.count).
    multi_node: ClassVar[bool] = False

    def options(self, spec: NodeSpec) -> ProviderOptions:
        raw = spec.options_for(self.name)
        try:
            return self.options_model.model_validate(raw)
        except ValidationError as e:
            problems = []
            for err in e.errors():
                key = ".".join([self.name, *map(str, err["loc"])])
                msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
                allowed = ", ".join(f.alias or n for n, f in self.options_model.model_fields.items()) \
                    if err["type"] == "extra_forbidden" else None
                # Option values that hold credentials are never echoed back.
                secret = any(w in key.lower() for w in ("key", "token", "secret", "password"))
                problems.append(Problem(key=key, message=msg, allowed=allowed, secret=secret,
                                        value=err.get("input") if err["type"] != "extra_forbidden" else None))
            raise GlmserveError(problems) from None

    def validate(self, spec: NodeSpec) -> None:
        """Raise GlmserveError for anything this provider cannot deploy."""
        problems = []
        for key, why in self.unsupported.items():
            value = spec.value_at(key)
            if value:
                problems.append(Problem(key=key, message=f"not supported by the {self.name} provider: {why}", value=value))
        if spec.nodes > 1 and not self.multi_node:
            s = spec.serving
            problems.append(Problem(
                key="serving.pipelineParallelSize", value=s.pipeline_parallel_size,
                message=f"tensorParallelSize x pipelineParallelSize = {s.tensor_parallel_size * s.pipeline_parallel_size} "
                        f"GPUs spans {spec.nodes} nodes of {spec.gpu.count}; the {self.name} provider runs one node",
                allowed=f"TP x PP <= gpu.count ({spec.gpu.count}), or provider kubernetes (LeaderWorkerSet)"))
        if problems:
            raise GlmserveError(problems)
        self.options(spec)

    def missing_credentials(self, env: dict[str, str], spec: Optional[NodeSpec] = None) -> list[Credential]:
        """Credentials set neither in the environment nor (where allowed) in stack config."""
        def in_config(c: Credential) -> bool:
            if spec is None or not c.config_key:
                return False
            section, _, key = c.config_key.partition(".")
            return bool(spec.options_for(section).get(key))
        return [c for c in self.credentials if not env.get(c.env) and not in_config(c)]

    def deploy_variables(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> dict[str, Any]:
        """Everything the provider's template needs, as plain data without secret values."""
        raise NotImplementedError

    def artifact(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> str:
        """What `glmserve render --artifact` prints: exactly what would be deployed."""
        raise NotImplementedError

    def create_resources(self, ctx: DeployContext) -> dict[str, Any]:
        """Create child resources parented to ctx.parent; return extra stack outputs."""
        raise NotImplementedError
