"""The policy facts of a stack: the plain, JSON-ready dict the rules read (infra/policy/rules.py).

Built from the validated spec, its capacity plan and the provider's own hooks (``billing``,
``stop_option``), so that the rules never name a provider. The dict holds no secret value
(only which engine variables and arguments are set), which is why the ServingNode component
can carry it for a CrossGuard policy pack (policy/) to evaluate the same rules."""
from __future__ import annotations

from typing import Any, Optional

from infra.config import providers
from infra.engine.flags import ENGINES, flag_table
from infra.spec.model import NodeSpec


def api_key_env_names() -> list[str]:
    """The variables any engine reads its API key from (its flag table's api_key.env)."""
    return sorted({flag_table(engine).api_key_env for engine in ENGINES})


def _stop_option(spec: NodeSpec, provider: Any) -> Optional[dict[str, Any]]:
    if provider.stop_option is None:
        return None
    key, stop_value = provider.stop_option
    return {"key": key, "stopValue": stop_value, "value": spec.options_for(spec.provider).get(key)}


def _plan(plan: Any) -> Optional[dict[str, Any]]:
    if plan is None:
        return None
    cost = plan.cost or {}
    return {"errors": list(plan.errors()), "costPerHour": cost.get("cost_per_hour_usd"),
            "maxCostPerHour": cost.get("max_cost_per_hour_usd")}


def policy_facts(spec: NodeSpec, plan: Any = None, *, stack: Optional[str] = None,
                 file: Optional[str] = None) -> dict[str, Any]:
    """The facts of ``spec`` and its ``plan`` (None when model.profile is unset)."""
    provider = providers.get(spec.provider)
    p = spec.policy
    return {
        "stack": stack,
        "file": file,
        "environment": p.environment,
        "policy": {
            "requirePinnedRevision": p.require_pinned_revision, "requireImageDigest": p.require_image_digest,
            "requireApiKey": p.require_api_key, "requireStopPlan": p.require_stop_plan,
            "maxCostPerHour": p.max_cost_per_hour,
            "expiresAt": p.expires_at.isoformat() if p.expires_at is not None else None,
        },
        "model": {"id": spec.model.id, "revision": spec.model.revision},
        "engine": {"image": spec.engine.image, "env": list(spec.engine.env), "extraArgs": list(spec.engine.extra_args),
                   "apiKeyEnvNames": api_key_env_names()},
        "provider": {"name": spec.provider, "billing": provider.billing, "stopOption": _stop_option(spec, provider)},
        "gpu": {"type": spec.gpu.type},
        "scaling": {"maxReplicas": spec.scaling.max_replicas,
                    "warmSchedule": spec.scaling.warm_schedule is not None},
        "plan": _plan(plan),
    }
