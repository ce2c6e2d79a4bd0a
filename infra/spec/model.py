"""The serving node, described once: the typed spec and its sections.

A node file (``stacks/node.yaml``) holds the full description; each stack's
``stacks/Pulumi.<stack>.yaml`` carries only what differs, as ``glmserve:<section>`` keys
that are deep-merged over it (``infra.spec.build``). Provider-specific blocks
(``glmserve:<provider>``) are kept raw here and validated by the provider that owns them.
"""
from __future__ import annotations

import datetime
import json
import re
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_serializer, model_validator
from pydantic.alias_generators import to_camel, to_snake

from infra.common import secrets as secret_registry
from infra.config.stackfile import ENCRYPTED
from infra.spec.gpus import GPU_COUNTS, gpu_catalog
from infra.spec.keys import check_api_key
from infra.spec.schedule import WarmSchedule
from infra.spec.shapes import (
    Boolean,
    DockerfileCommand,
    Host,
    ModelId,
    MountPath,
    Number,
    PipRequirement,
    PlainText,
    Revision,
    WholeNumber,
)

SPECULATIVE_METHODS = ("mtp", "eagle", "eagle3", "ngram", "draft_model")


class SpecModel(BaseModel):
    # Numbers, flags and whole numbers are typed strictly (infra/spec/shapes.py: `true` is not
    # 1, 8.0 is not 8, NaN is no number); a number where text belongs becomes text, as
    # `pulumi config set --path` writes `64` for the extra argument "64".
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        coerce_numbers_to_str=True,
        allow_inf_nan=False,
    )


class SecretRef(SpecModel):
    """A secret given by value (a Pulumi `--secret` config value) or by an existing
    provider-side name (e.g. a named Modal secret)."""

    name: Optional[str] = Field(default=None, min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    value: Optional[SecretStr] = None

    @model_validator(mode="after")
    def _one_of(self) -> "SecretRef":
        if (self.name is None) == (self.value is None):
            raise ValueError("set exactly one of 'name' (an existing secret) or 'value' (set with --secret)")
        if self.value is not None:
            secret_registry.register(self.value.get_secret_value())
        return self


class ApiKeyRef(SecretRef):
    """The endpoint's API key: a value must be strong enough to stand between the internet and a
    $36/h node (an empty key would leave vLLM unauthenticated)."""

    @model_validator(mode="after")
    def _strong(self) -> "ApiKeyRef":
        if self.value is not None and self.value.get_secret_value() != ENCRYPTED:
            check_api_key(self.value.get_secret_value())
        return self


class ModelSection(SpecModel):
    id: ModelId
    # Neither may start with '-': the engines' argparse would read the value as a flag.
    revision: Optional[Revision] = None
    served_name: str = Field(min_length=1, max_length=128, pattern=r"^[\w.:][\w.:-]*$")
    trust_remote_code: Boolean = False
    # The planner profile under infra/data/models/ that describes this checkpoint.
    profile: Optional[str] = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*$", max_length=64)


class EngineSection(SpecModel):
    name: Literal["vllm", "sglang"] = "vllm"
    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$")
    # A registry reference: [registry/]name[:tag][@sha256:digest].
    image: str = Field(min_length=3, max_length=512, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
    # Docker commands run on top of the registry image (the seed's typing_extensions fix-up).
    setup_commands: list[DockerfileCommand] = Field(default_factory=list)
    pip_packages: list[PipRequirement] = Field(default_factory=list)
    env: dict[str, PlainText] = Field(default_factory=dict)
    # Escape hatch: extra engine flags, validated against the engine's known flags.
    extra_args: list[PlainText] = Field(default_factory=list)
    # Tool calling and reasoning, as the engine's parsers for the model's output format name
    # them (vLLM's recipe for GLM-5.2: tool parser glm47, reasoning parser glm45;
    # https://github.com/vllm-project/recipes/blob/main/models/zai-org/GLM-5.2.yaml). Without a
    # tool-call parser an agent's tool calls come back as plain text.
    tool_call_parser: Optional[str] = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    # Let the model decide when to call a tool (tool_choice "auto"); needs toolCallParser.
    auto_tool_choice: Boolean = False
    reasoning_parser: Optional[str] = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")

    @model_validator(mode="after")
    def _auto_tool_choice_needs_a_parser(self) -> "EngineSection":
        if self.auto_tool_choice and not self.tool_call_parser:
            raise ValueError("autoToolChoice needs toolCallParser (the parser that turns the model's "
                             "output into tool_calls)")
        return self

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                raise ValueError(f"environment variable name {k!r} is not a valid name")
        return v

    @property
    def secret_env_names(self) -> list[str]:
        """Variables set with `pulumi config set --secret`: their values are never in the spec
        (ENCRYPTED here), they reach the container through the provider's secret mechanism."""
        return [k for k, v in self.env.items() if v == ENCRYPTED]

    @property
    def plain_env(self) -> dict[str, str]:
        """The variables that may be written where they are deployed (no secrets)."""
        return {k: v for k, v in self.env.items() if v != ENCRYPTED}


class GpuSection(SpecModel):
    type: str
    count: WholeNumber

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in gpu_catalog():
            raise ValueError(f"unknown GPU type {v!r}; allowed: {', '.join(gpu_catalog())}")
        return v

    @field_validator("count")
    @classmethod
    def _count(cls, v: int) -> int:
        if v not in GPU_COUNTS:
            raise ValueError(f"GPU count must be one of {', '.join(map(str, GPU_COUNTS))}")
        return v


class Speculative(SpecModel):
    method: str
    num_speculative_tokens: WholeNumber = Field(ge=1, le=16)

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v not in SPECULATIVE_METHODS:
            raise ValueError(f"unknown speculative method {v!r}; allowed: {', '.join(SPECULATIVE_METHODS)}")
        return v

    def as_engine_json(self) -> str:
        return json.dumps({"method": self.method, "num_speculative_tokens": self.num_speculative_tokens})


class ServingSection(SpecModel):
    tensor_parallel_size: WholeNumber = Field(ge=1, le=64)
    # Pipeline stages. tensorParallelSize x pipelineParallelSize above gpu.count spans several
    # nodes of gpu.count GPUs each (the kubernetes provider's LeaderWorkerSet).
    pipeline_parallel_size: WholeNumber = Field(default=1, ge=1, le=16)
    max_model_len: WholeNumber = Field(ge=256, le=10_485_760)
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16"] = "auto"
    gpu_memory_utilization: Number = Field(gt=0, le=1)
    speculative: Optional[Speculative] = None
    prefix_caching: Boolean = True
    enforce_eager: Boolean = False
    load_strategy: Optional[Literal["lazy", "eager", "prefetch", "torchao"]] = None
    host: Host = "0.0.0.0"
    port: WholeNumber = Field(default=8000, ge=1, le=65535)

    @field_validator("speculative", mode="before")
    @classmethod
    def _speculative_json(cls, v: Any) -> Any:
        # Accept the engine's own JSON form too, so a value pasted from a vLLM command works.
        if isinstance(v, str):
            if len(v) > 4096:
                raise ValueError("speculative config is longer than 4096 characters")
            try:
                v = json.loads(v)
            except json.JSONDecodeError as e:
                raise ValueError(f"speculative config is not valid JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise ValueError("speculative config is nested too deeply") from None
            if not isinstance(v, dict):
                raise ValueError("speculative config must be a JSON object")
        return v


class CacheSection(SpecModel):
    volume: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    mount_path: MountPath
    size_gib: WholeNumber = Field(default=1000, ge=10, le=4096)


class SecretsSection(SpecModel):
    hf_token: Optional[SecretRef] = None
    api_key: Optional[ApiKeyRef] = None


class ScalingSection(SpecModel):
    # min_replicas is the keep-warm count: replicas that never scale to zero.
    min_replicas: WholeNumber = Field(default=0, ge=0, le=64)
    max_replicas: WholeNumber = Field(default=1, ge=1, le=64)
    scaledown_window: WholeNumber = Field(default=900, ge=1, le=86_400)
    # Windows (days and hours, or cron start/end, in a time zone) during which
    # warmSchedule.minReplicas replicas are kept running (infra/spec/schedule.py).
    warm_schedule: Optional[WarmSchedule] = None

    @model_validator(mode="after")
    def _order(self) -> "ScalingSection":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) exceeds maxReplicas ({self.max_replicas})")
        warm = self.warm_schedule
        if warm is not None and warm.min_replicas > self.max_replicas:
            raise ValueError(f"warmSchedule.minReplicas ({warm.min_replicas}) exceeds maxReplicas ({self.max_replicas})")
        return self

    def replicas_at(self, at) -> int:
        """Replicas kept running at the instant ``at``: the warm window's, else minReplicas."""
        return self.min_replicas if self.warm_schedule is None else self.warm_schedule.replicas_at(at, self.min_replicas)


class TimeoutsSection(SpecModel):
    startup_seconds: WholeNumber = Field(default=3600, ge=10, le=24 * 3600)


class ReadinessSection(SpecModel):
    poll_interval_seconds: Number = Field(default=10.0, gt=0, le=600)
    request_timeout_seconds: Number = Field(default=30.0, gt=0, le=600)
    smoke_test: Boolean = False
    # One chat request with a tool that must come back as a tool_calls entry, not as text: a node
    # whose tool-call parser is broken (e.g. with MTP) fails `up` instead of failing agents later.
    tool_call_check: Boolean = False


class PolicySection(SpecModel):
    """Per-stack policy settings for the rules in infra/policy/rules.py (docs/gitops.md).

    A rule switch left unset follows ``environment``: prod turns the pinning rules on. The
    environment also orders `up` on merge (dev, then staging, then prod)."""

    environment: Literal["dev", "staging", "prod"] = "dev"
    # USD per hour with every replica busy (the plan's max_cost_per_hour_usd).
    max_cost_per_hour: Optional[Number] = Field(default=None, gt=0)
    require_pinned_revision: Optional[Boolean] = None
    require_image_digest: Optional[Boolean] = None
    require_api_key: Optional[Boolean] = None
    require_stop_plan: Optional[Boolean] = None
    # The date after which a dedicated pod of this stack must be stopped or destroyed.
    expires_at: Optional[datetime.date] = None


class NodeSpec(SpecModel):
    """Everything that describes the serving node: provider-neutral sections, plus the raw
    ``glmserve:<provider>`` blocks, which the provider that owns each one validates."""

    provider: str = "none"
    model: ModelSection
    engine: EngineSection
    gpu: GpuSection
    serving: ServingSection
    cache: CacheSection
    secrets: SecretsSection = SecretsSection()
    scaling: ScalingSection = ScalingSection()
    timeouts: TimeoutsSection = TimeoutsSection()
    readiness: ReadinessSection = ReadinessSection()
    policy: PolicySection = PolicySection()
    # `glmserve:<provider>` blocks by provider name, as written; not a stack-file section.
    provider_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross(self) -> "NodeSpec":
        tp = self.serving.tensor_parallel_size
        if self.gpu.count % tp != 0:
            raise ValueError(
                f"serving.tensorParallelSize {tp} does not divide gpu.count {self.gpu.count}"
            )
        pp = self.serving.pipeline_parallel_size
        world = tp * pp
        if world <= self.gpu.count and self.gpu.count % world:
            raise ValueError(
                f"serving.tensorParallelSize x pipelineParallelSize ({tp} x {pp} = {world}) does not divide "
                f"gpu.count {self.gpu.count}"
            )
        if world > self.gpu.count and world % self.gpu.count:
            raise ValueError(
                f"serving.tensorParallelSize x pipelineParallelSize ({tp} x {pp} = {world}) spans several nodes "
                f"and must be a multiple of gpu.count {self.gpu.count} (the GPUs of one node)"
            )
        return self

    def value_at(self, key: str) -> Any:
        """The value of a dotted spec key as users write it (e.g. ``serving.loadStrategy``)."""
        value: Any = self
        for part in key.split("."):
            value = getattr(value, to_snake(part))
        return value

    @model_serializer(mode="wrap")
    def _provider_blocks_at_top(self, handler):
        # Dumped the way stack files write them (`runpod: {...}`), so a dump builds again.
        data = handler(self)
        blocks = data.pop("providerOptions", None) or data.pop("provider_options", None) or {}
        data.update({k: v for k, v in blocks.items() if v})
        return data

    def options_for(self, provider: str) -> dict[str, Any]:
        """The raw ``glmserve:<provider>`` block (empty when the stack sets none)."""
        return self.provider_options.get(provider) or {}

    @property
    def nodes(self) -> int:
        """Nodes of gpu.count GPUs one engine spans: TP x PP / gpu.count, at least 1."""
        world = self.serving.tensor_parallel_size * self.serving.pipeline_parallel_size
        return max(1, world // self.gpu.count)


# The `glmserve:<section>` keys a stack file may set (provider blocks come on top).
SECTIONS = tuple(f for f in NodeSpec.model_fields if f != "provider_options")
CAMEL_SECTIONS = tuple(to_camel(s) for s in SECTIONS)


