"""Building a spec: merge a stack's overrides over the node description, validate, and
report each problem with the key, the file that set it, the value and what is allowed."""
from __future__ import annotations

import difflib
import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from infra.common.errors import GlmserveError, Problem
from infra.config import providers as provider_registry
from infra.spec.image import image_version_problems
from infra.spec.model import CAMEL_SECTIONS, SECTIONS, NodeSpec

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


class Origins:
    """Which file set each key: the stack file wins over the node file it overrides."""

    def __init__(self, node: dict, overrides: dict, node_file: str, stack_file: str):
        self._origin: dict[str, str] = {}
        self.node_file = node_file
        _mark_origin(overrides, self._origin, stack_file)
        _mark_origin(node, self._origin, node_file)

    def file_of(self, key: str) -> str:
        return _origin_of(key, self._origin, self.node_file)


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
        # Provider blocks are written as `glmserve:<provider>`, not under a section.
        loc = tuple(str(p) for p in err["loc"])
        if loc[:1] == ("provider_options",):
            loc = loc[1:]
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
    namespace) to values; a section named after an installed provider is that provider's
    raw option block. Raises GlmserveError naming key, file, value and what is allowed.
    """
    origin: dict[str, str] = {}
    _mark_origin(overrides, origin, stack_file)
    _mark_origin(node, origin, node_file)
    providers = provider_registry.names()
    problems: list[Problem] = []
    for k in list(overrides):
        if k not in SECTIONS and k not in CAMEL_SECTIONS and k not in providers and k != "node":
            hint = _suggest(k, [*CAMEL_SECTIONS, *providers])
            problems.append(
                Problem(
                    key=f"glmserve:{k}",
                    message="unknown key" + (f" ({hint})" if hint else ""),
                    file=stack_file,
                    allowed=", ".join(f"glmserve:{s}" for s in [*CAMEL_SECTIONS, *providers]),
                )
            )
    if problems:
        raise GlmserveError(problems)
    merged = _deep_merge(node, {k: v for k, v in overrides.items() if k != "node"}, origin, stack_file)
    merged["provider_options"] = {p: merged.pop(p) for p in providers if p in merged}
    try:
        spec = NodeSpec.model_validate(merged)
    except ValidationError as e:
        raise GlmserveError(_problems_from(e, origin, node_file)) from None
    _check_model_heads(spec, origin, node_file)
    _check_extra_args(spec, origin, node_file)
    _check_image_version(spec, origin, node_file)
    return spec


def _check_image_version(spec: NodeSpec, origin: dict, node_file: str) -> None:
    problems = [
        Problem(key=p.key, message=p.message, value=p.value, allowed=p.allowed,
                file=_origin_of(p.key, origin, node_file))
        for p in image_version_problems(spec)
    ]
    if problems:
        raise GlmserveError(problems)


def _check_model_heads(spec: NodeSpec, origin: dict, node_file: str) -> None:
    from infra.spec.profiles import attention_heads, load_profile

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
