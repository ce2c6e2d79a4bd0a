"""What every provider is: capabilities and catalogue as data, and a few small hooks.

The core finds a provider through the registry (infra/config/providers.py) and asks it:

* ``validate(spec)``: one generic check of the spec against what the provider declares it
  cannot do (``unsupported``: a Feature and why) and offers (its catalogue's GPU types), its
  own option block (``options_model``), then the provider's own ``check`` for the rest;
* ``warnings(spec)``: settings it accepts but does not apply (``ignored``);
* ``billing`` and ``gpu_id``: catalogue facts (``catalog.yaml`` beside the provider module);
* ``planning_facts(spec)``: what the planner needs (prices, provisioning, image pull, where
  the weights are read from with the node's options), from the same catalogue;
* ``missing_credentials``, ``deploy_variables``, ``artifact`` and ``create_resources``.

A provider package (``providers/<name>/``) declares all of it; the core never names one.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from pydantic.alias_generators import to_camel

from infra.common.errors import GlmserveError, Problem
from infra.common.secrets import register
from infra.config import providers as registry
from infra.deploy.target import DeployContext, Endpoint
from infra.engine.render import EngineCommand
from infra.planning.provider_facts import ProviderFacts, facts_from_catalog
from infra.spec.model import NodeSpec


class Feature(str, Enum):
    """Capabilities a spec may need that not every provider has."""

    MULTI_NODE = "multi-node"                  # one engine across several nodes (TP x PP > gpu.count)
    REPLICAS = "replicas"                      # more than one engine behind the endpoint
    IMAGE_BUILD_STEPS = "image build steps"    # engine.setupCommands / pipPackages on top of the image


@dataclass(frozen=True)
class Need:
    """How a spec asks for a feature: the key users set, and what they set it to (None: not asked)."""

    key: str
    asked: Callable[[NodeSpec], Optional[str]]


def _multi_node(spec: NodeSpec) -> Optional[str]:
    s = spec.serving
    if spec.nodes <= 1:
        return None
    return (f"tensorParallelSize x pipelineParallelSize = {s.tensor_parallel_size * s.pipeline_parallel_size} "
            f"GPUs spans {spec.nodes} nodes of {spec.gpu.count}")


NEEDS: dict[Feature, Need] = {
    Feature.MULTI_NODE: Need("serving.pipelineParallelSize", _multi_node),
    Feature.REPLICAS: Need("scaling.maxReplicas",
                           lambda s: f"{s.scaling.max_replicas} replicas" if s.scaling.max_replicas > 1 else None),
    Feature.IMAGE_BUILD_STEPS: Need("engine.setupCommands",
                                    lambda s: "image build steps" if s.engine.setup_commands or s.engine.pip_packages
                                    else None),
}


class ProviderOptions(BaseModel):
    """Base of each provider's ``glmserve:<provider>`` block."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


@dataclass(frozen=True)
class Credential:
    env: str
    what: str
    config_key: Optional[str] = None


class Provider:
    name: ClassVar[str]
    # What a user would call it in a sentence ("not offered by RunPod").
    title: ClassVar[str]
    # Features this provider cannot honour, with the reason: a spec that needs one is refused.
    unsupported: ClassVar[dict[Feature, str]] = {}
    # Features this provider accepts but does not apply, with the reason: a warning at up.
    ignored: ClassVar[dict[Feature, str]] = {}
    credentials: ClassVar[tuple[Credential, ...]] = ()
    # For a dedicated node: the option of the provider's block that stops it without
    # destroying it, and the value that does (the stop-plan policy asks for one).
    stop_option: ClassVar[Optional[tuple[str, str]]] = None
    # Options of the provider's block (camelCase) naming a URL that glmserve sends a credential
    # to. A pull request that changes one is not previewed with the pipeline's credentials
    # (infra/gitops/pr_preview.py) unless the new URL is trusted.
    credential_urls: ClassVar[tuple[str, ...]] = ()
    options_model: ClassVar[type[ProviderOptions]] = ProviderOptions

    # ------------------------------------------------------------------ catalogue
    @cached_property
    def catalog(self) -> dict[str, Any]:
        """``catalog.yaml`` beside the provider's module: GPU ids, billing, prices, speeds."""
        path = Path(inspect.getfile(type(self))).parent / "catalog.yaml"
        return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}

    @property
    def billing(self) -> str:
        """How the provider charges: serverless (while running), dedicated (while it exists), or none."""
        return self.catalog.get("billing", "none")

    def gpu_id(self, gpu_type: str) -> Optional[str]:
        """The provider's own name for a glmserve GPU type; None when it does not offer it."""
        gpus = self.catalog.get("gpus")
        if gpus is None:
            return gpu_type
        row = gpus.get(gpu_type)
        return row["id"] if row else None

    def planning_facts(self, spec: Optional[NodeSpec] = None, opts: Optional[ProviderOptions] = None) -> ProviderFacts:
        """The planner's facts for a node with these options (the option block's defaults when
        neither ``spec`` nor ``opts`` is given: an ad-hoc plan)."""
        if opts is None:
            opts = self.options(spec) if spec is not None else self.options_model()
        fields = self.options_model.model_fields

        def key(name: str) -> str:
            return fields[name].alias or name if name in fields else name
        return facts_from_catalog(self.name, self.catalog, lambda name: getattr(opts, name, None), key)

    # ------------------------------------------------------------------ checks
    def options(self, spec: NodeSpec) -> ProviderOptions:
        raw = spec.options_for(self.name)
        try:
            opts = self.options_model.model_validate(raw)
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
        for value in opts.model_dump().values():
            if isinstance(value, SecretStr):
                register(value.get_secret_value())
        return opts

    def validate(self, spec: NodeSpec) -> None:
        """Raise GlmserveError for anything this provider cannot deploy."""
        problems = []
        for feature, why in self.unsupported.items():
            need = NEEDS[feature]
            asked = need.asked(spec)
            if asked:
                others = [n for n in registry.names() if n != self.name and feature not in registry.get(n).unsupported]
                problems.append(Problem(
                    key=need.key, value=spec.value_at(need.key),
                    message=f"{asked}; the {self.name} provider does not support {feature.value}: {why}",
                    allowed=f"a provider that does: {', '.join(others)}" if others else None))
        gpus = self.catalog.get("gpus")
        if gpus is not None and spec.gpu.type not in gpus:
            problems.append(Problem(key="gpu.type", value=spec.gpu.type, message=f"not offered by {self.title}",
                                    allowed=", ".join(gpus)))
        if problems:
            raise GlmserveError(problems, headline=f"the node cannot be deployed on {self.title}")
        problems = self.check(spec, self.options(spec))
        if problems:
            raise GlmserveError(problems, headline=f"the node cannot be deployed on {self.title}")

    def check(self, spec: NodeSpec, opts: ProviderOptions) -> list[Problem]:
        """The provider's own rules beyond features and catalogue (none by default)."""
        return []

    def warnings(self, spec: NodeSpec) -> list[str]:
        """Settings this provider accepts but does not apply, said at up."""
        return [f"{NEEDS[f].key}: {why}" for f, why in self.ignored.items() if NEEDS[f].asked(spec)]

    def missing_credentials(self, env: dict[str, str], spec: Optional[NodeSpec] = None) -> list[Credential]:
        """Credentials set neither in the environment nor (where allowed) in stack config."""
        def in_config(c: Credential) -> bool:
            if spec is None or not c.config_key:
                return False
            section, _, key = c.config_key.partition(".")
            return bool(spec.options_for(section).get(key))
        return [c for c in self.credentials if not env.get(c.env) and not in_config(c)]

    # ------------------------------------------------------------------ what is deployed
    def deploy_variables(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> dict[str, Any]:
        """Everything the provider deploys, as plain data without secret values (for templates and diffs)."""
        raise NotImplementedError

    def artifact(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> str:
        """What `glmserve render --artifact` prints: exactly what would be deployed."""
        raise NotImplementedError

    def create_resources(self, ctx: DeployContext) -> Endpoint:
        """Create child resources parented to ctx.parent; return where the engine answers."""
        raise NotImplementedError

    def apply_schedule(self, spec: NodeSpec, stack: str, project: str, replicas: int) -> Optional[str]:
        """`glmserve schedule apply`: keep ``replicas`` running now, as the warm window asks.

        None (the default): the provider has nothing that follows a window by itself, and the
        stack's `up` deploys the window's state (it is run when the state differs from the one
        last deployed). A provider whose cloud follows the window itself says what it did."""
        return None
