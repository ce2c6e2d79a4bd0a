"""The serving node, described once: a typed, validated spec.

A node file (``stacks/node.yaml``) holds the full description; each stack's
``stacks/Pulumi.<stack>.yaml`` carries only what differs, as ``glmserve:<section>`` keys
that are deep-merged over it. The result is validated here, before anything is created.
"""
from __future__ import annotations

import datetime
import difflib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake

from . import secrets as secret_registry
from .errors import GlmserveError, Problem

DATA = Path(__file__).parent / "data"

GPU_COUNTS = (1, 2, 4, 8)
SPECULATIVE_METHODS = ("mtp", "eagle", "eagle3", "ngram", "draft_model")


@lru_cache(maxsize=1)
def gpu_catalog() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((DATA / "gpus.yaml").read_text())


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


class SecretRef(_Model):
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


class ModelSection(_Model):
    id: str = Field(min_length=3, pattern=r"^[\w.-]+/[\w.-]+$")
    # Neither may start with '-': the engines' argparse would read the value as a flag.
    revision: Optional[str] = Field(default=None, min_length=1, pattern=r"^[\w.][\w./-]*$")
    served_name: str = Field(min_length=1, pattern=r"^[\w.:][\w.:-]*$")
    trust_remote_code: bool = False
    # The planner profile under infra/data/models/ that describes this checkpoint.
    profile: Optional[str] = None


class EngineSection(_Model):
    name: Literal["vllm", "sglang"] = "vllm"
    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$")
    image: str = Field(min_length=3)
    # Docker commands run on top of the registry image (the seed's typing_extensions fix-up).
    setup_commands: list[str] = Field(default_factory=list)
    pip_packages: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    # Escape hatch: extra engine flags, validated against the engine's known flags.
    extra_args: list[str] = Field(default_factory=list)

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                raise ValueError(f"environment variable name {k!r} is not a valid name")
        return v


class GpuSection(_Model):
    type: str
    count: int

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


class Speculative(_Model):
    method: str
    num_speculative_tokens: int = Field(ge=1, le=16)

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v not in SPECULATIVE_METHODS:
            raise ValueError(f"unknown speculative method {v!r}; allowed: {', '.join(SPECULATIVE_METHODS)}")
        return v

    def as_engine_json(self) -> str:
        return json.dumps({"method": self.method, "num_speculative_tokens": self.num_speculative_tokens})


class ServingSection(_Model):
    tensor_parallel_size: int = Field(ge=1, le=64)
    # Pipeline stages. tensorParallelSize x pipelineParallelSize above gpu.count spans several
    # nodes of gpu.count GPUs each (the kubernetes provider's LeaderWorkerSet).
    pipeline_parallel_size: int = Field(default=1, ge=1, le=16)
    max_model_len: int = Field(ge=256, le=10_485_760)
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16"] = "auto"
    gpu_memory_utilization: float = Field(gt=0, le=1)
    speculative: Optional[Speculative] = None
    prefix_caching: bool = True
    enforce_eager: bool = False
    load_strategy: Optional[Literal["lazy", "eager", "prefetch", "torchao"]] = None
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("speculative", mode="before")
    @classmethod
    def _speculative_json(cls, v: Any) -> Any:
        # Accept the engine's own JSON form too, so a value pasted from a vLLM command works.
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError as e:
                raise ValueError(f"speculative config is not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(v, dict):
                raise ValueError("speculative config must be a JSON object")
        return v


class CacheSection(_Model):
    volume: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    mount_path: str = Field(pattern=r"^/")
    size_gib: int = Field(default=1000, ge=10, le=4096)


class SecretsSection(_Model):
    hf_token: Optional[SecretRef] = None
    api_key: Optional[SecretRef] = None


class ScalingSection(_Model):
    # min_replicas is the keep-warm count: replicas that never scale to zero.
    min_replicas: int = Field(default=0, ge=0, le=64)
    max_replicas: int = Field(default=1, ge=1, le=64)
    scaledown_window: int = Field(default=900, ge=1, le=86_400)

    @model_validator(mode="after")
    def _order(self) -> "ScalingSection":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) exceeds maxReplicas ({self.max_replicas})")
        return self


class TimeoutsSection(_Model):
    startup_seconds: int = Field(default=3600, ge=10, le=24 * 3600)


class ReadinessSection(_Model):
    poll_interval_seconds: float = Field(default=10.0, gt=0, le=600)
    request_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    smoke_test: bool = False


class PolicySection(_Model):
    """Per-stack policy settings for the rules in infra/policy.py (docs/gitops.md).

    A rule switch left unset follows ``environment``: prod turns the pinning rules on. The
    environment also orders `up` on merge (dev, then staging, then prod)."""

    environment: Literal["dev", "staging", "prod"] = "dev"
    # USD per hour with every replica busy (the plan's max_cost_per_hour_usd).
    max_cost_per_hour: Optional[float] = Field(default=None, gt=0)
    require_pinned_revision: Optional[bool] = None
    require_image_digest: Optional[bool] = None
    require_api_key: Optional[bool] = None
    require_stop_plan: Optional[bool] = None
    # The date after which a dedicated pod of this stack must be stopped or destroyed.
    expires_at: Optional[datetime.date] = None


class NodeSpec(_Model):
    """Everything that describes the serving node, provider-neutral plus one block per
    provider for what only that provider understands."""

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
    # Provider blocks are validated by the provider named in `provider` (its own model).
    modal: dict[str, Any] = Field(default_factory=dict)
    runpod: dict[str, Any] = Field(default_factory=dict)
    kubernetes: dict[str, Any] = Field(default_factory=dict)

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

    @property
    def nodes(self) -> int:
        """Nodes of gpu.count GPUs one engine spans: TP x PP / gpu.count, at least 1."""
        world = self.serving.tensor_parallel_size * self.serving.pipeline_parallel_size
        return max(1, world // self.gpu.count)


SECTIONS = tuple(NodeSpec.model_fields)
CAMEL_SECTIONS = tuple(to_camel(s) for s in SECTIONS)


# --------------------------------------------------------------------------- loading

def _deep_merge(base: dict, over: dict, origin: dict, over_file: str, prefix: str = "") -> dict:
    out = dict(base)
    for k, v in over.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not _is_secure(v):
            out[k] = _deep_merge(out[k], v, origin, over_file, path + ".")
        else:
            out[k] = v
            origin[path] = over_file
    return out


def _is_secure(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"secure"}


def _mark_origin(d: Any, origin: dict, file: str, prefix: str = "") -> None:
    if isinstance(d, dict) and not _is_secure(d):
        for k, v in d.items():
            origin.setdefault(f"{prefix}{k}", file)
            _mark_origin(v, origin, file, f"{prefix}{k}.")


def _origin_of(path: str, origin: dict, default: str) -> str:
    while path:
        if path in origin:
            return origin[path]
        path = path.rpartition(".")[0]
    return default


def _suggest(word: str, choices) -> str:
    near = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"did you mean '{near[0]}'?" if near else ""


def _known_fields(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _submodel_for(loc: tuple) -> type[BaseModel] | None:
    model: Any = NodeSpec
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias)), None
        )
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), ann)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _allowed_for(loc: tuple, err_type: str, ctx: dict) -> str | None:
    if err_type == "literal_error":
        return ctx.get("expected")
    if err_type in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        model = _submodel_for(loc[:-1])
        if model is not None:
            field = next((f for n, f in model.model_fields.items() if loc[-1] in (n, f.alias)), None)
            if field is not None:
                lo = hi = None
                for m in field.metadata:
                    lo = getattr(m, "gt", None) if getattr(m, "gt", None) is not None else lo
                    lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo
                    hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else hi
                    hi = getattr(m, "lt", None) if getattr(m, "lt", None) is not None else hi
                left = "(" if any(getattr(m, "gt", None) is not None for m in field.metadata) else "["
                right = ")" if any(getattr(m, "lt", None) is not None for m in field.metadata) else "]"
                return f"{left}{lo}, {hi}{right}"
    if err_type == "extra_forbidden":
        model = _submodel_for(loc[:-1])
        if model is not None:
            return ", ".join(_known_fields(model))
    return None


def _problems_from(e: ValidationError, origin: dict, default_file: str) -> list[Problem]:
    problems = []
    for err in e.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) if loc else "(node)"
        file = _origin_of(key, origin, default_file)
        value = err.get("input")
        secret = "secrets" in loc
        if err["type"] == "extra_forbidden":
            model = _submodel_for(tuple(err["loc"][:-1]))
            hint = _suggest(str(loc[-1]), _known_fields(model)) if model else ""
            msg = "unknown key" + (f" ({hint})" if hint else "")
            problems.append(Problem(key=key, message=msg, file=file, allowed=_allowed_for(loc, "extra_forbidden", {}), secret=secret))
            continue
        if err["type"] == "missing":
            problems.append(Problem(key=key, message="is required", file=file, secret=secret))
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if isinstance(value, (dict, list)) and not loc:
            value = None
        if isinstance(value, dict) and len(json.dumps(value, default=str)) > 120:
            value = None
        problems.append(
            Problem(
                key=key,
                message=msg,
                file=file,
                value=value,
                allowed=_allowed_for(loc, err["type"], err.get("ctx") or {}),
                secret=secret,
            )
        )
    return problems


def build_spec(node: dict, overrides: dict, node_file: str, stack_file: str) -> NodeSpec:
    """Merge a stack's overrides over the node description and validate the result.

    ``overrides`` maps section names (as in the stack file, without the ``glmserve:``
    namespace) to values. Raises GlmserveError naming key, file, value and what is allowed.
    """
    origin: dict[str, str] = {}
    _mark_origin(overrides, origin, stack_file)
    _mark_origin(node, origin, node_file)
    problems: list[Problem] = []
    for k in list(overrides):
        if k not in SECTIONS and k not in CAMEL_SECTIONS and k != "node":
            hint = _suggest(k, CAMEL_SECTIONS)
            problems.append(
                Problem(
                    key=f"glmserve:{k}",
                    message="unknown key" + (f" ({hint})" if hint else ""),
                    file=stack_file,
                    allowed=", ".join(f"glmserve:{s}" for s in CAMEL_SECTIONS),
                )
            )
    if problems:
        raise GlmserveError(problems)
    merged = _deep_merge(node, {k: v for k, v in overrides.items() if k != "node"}, origin, stack_file)
    try:
        spec = NodeSpec.model_validate(merged)
    except ValidationError as e:
        raise GlmserveError(_problems_from(e, origin, node_file)) from None
    _check_model_heads(spec, origin, node_file)
    _check_extra_args(spec, origin, node_file)
    _check_image_version(spec, origin, node_file)
    return spec


def _check_image_version(spec: NodeSpec, origin: dict, node_file: str) -> None:
    # The image and the engine version it runs must not disagree silently: the renderer and
    # the engine check trust engine.version (docs/engine-check.md).
    from .engine_check import image_version_problems

    problems = [
        Problem(key=p.key, message=p.message, value=p.value, allowed=p.allowed,
                file=_origin_of(p.key, origin, node_file))
        for p in image_version_problems(spec)
    ]
    if problems:
        raise GlmserveError(problems)


def _check_model_heads(spec: NodeSpec, origin: dict, node_file: str) -> None:
    from .models import attention_heads, load_profile

    if not spec.model.profile:
        return
    try:
        profile = load_profile(spec.model.profile)
    except KeyError as e:
        raise GlmserveError([Problem(key="model.profile", message=str(e.args[0]),
                                     file=_origin_of("model.profile", origin, node_file),
                                     value=spec.model.profile)]) from None
    heads = attention_heads(profile)
    tp = spec.serving.tensor_parallel_size
    if heads % tp:
        raise GlmserveError([Problem(
            key="serving.tensorParallelSize",
            message=f"does not divide the model's {heads} attention heads ({spec.model.profile})",
            file=_origin_of("serving.tensorParallelSize", origin, node_file),
            value=tp,
            allowed=", ".join(str(d) for d in range(1, heads + 1) if heads % d == 0 and d <= 64),
        )])


def _check_extra_args(spec: NodeSpec, origin: dict, node_file: str) -> None:
    # Values are checked against the engine's flag table by the renderer; here only shape.
    for i, a in enumerate(spec.engine.extra_args):
        if i == 0 and not a.startswith("--"):
            raise GlmserveError([Problem(
                key="engine.extraArgs", message="must start with a long flag (--name)",
                file=_origin_of("engine.extraArgs", origin, node_file), value=a)])
        if a.startswith("-") and not a.startswith("--") and not re.fullmatch(r"-\d+(\.\d+)?", a):
            raise GlmserveError([Problem(
                key="engine.extraArgs", message="short or abbreviated flags are not accepted; use the full --flag-name",
                file=_origin_of("engine.extraArgs", origin, node_file), value=a)])
