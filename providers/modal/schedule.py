"""Keep-warm windows on Modal: scheduled functions in the same app move the autoscaler.

For each window of ``scaling.warmSchedule`` the generated app carries two small CPU functions
with a ``modal.Cron`` schedule in the window's time zone: one at the window's start sets the
serve function's ``min_containers`` to ``warmSchedule.minReplicas``, one at its end sets it back
to ``scaling.minReplicas``. They call ``Function.autoscaler.update`` (modal 1.6.4; it replaced
``update_autoscaler``), which changes the live autoscaler without a deploy.

A deploy resets the autoscaler to the values in the function's decorator (Modal's docs for
``autoscaler.update``: "re-deploying the App ... will wipe any overrides"), so the decorator
carries the value outside the windows and every deploy (``up``) applies the window that is
current right after it; so does ``glmserve schedule apply``.
"""
from __future__ import annotations

from typing import Any, Optional

from infra.spec.model import NodeSpec
from infra.spec.schedule import WarmSchedule, now
from providers.dynamic import whole_numbers


def cron_functions(spec: NodeSpec) -> list[dict[str, Any]]:
    """The scheduled functions the app template renders: name, cron, time zone, min_containers."""
    warm = spec.scaling.warm_schedule
    if warm is None:
        return []
    base = spec.scaling.min_replicas
    inside = max(base, warm.min_replicas)
    out = []
    for i, (start, end) in enumerate(warm.cron_edges()):
        out.append({"name": f"warm_window_{i}_start", "cron": start, "time_zone": warm.time_zone,
                    "min_containers": inside})
        out.append({"name": f"warm_window_{i}_end", "cron": end, "time_zone": warm.time_zone,
                    "min_containers": base})
    return out


def schedule_props(spec: NodeSpec) -> Optional[dict[str, Any]]:
    """What the deployed-app resource needs to apply the current window after a deploy."""
    warm = spec.scaling.warm_schedule
    if warm is None:
        return None
    from providers.modal.provider import PROVIDER

    return {"warm": warm.model_dump(mode="json", by_alias=True), "base": spec.scaling.min_replicas,
            "inClass": bool(PROVIDER.options(spec).gpu_snapshot)}


def replicas_now(props: dict[str, Any]) -> int:
    # Pulumi hands numbers to dynamic providers as doubles (1 comes back as 1.0).
    warm = WarmSchedule.model_validate(whole_numbers(props["warm"]))
    return warm.replicas_at(now(), int(props["base"]))


def apply_after_deploy(app_name: str, environment: Optional[str], props: Optional[dict[str, Any]],
                       log=print) -> Optional[int]:
    """Set the serve function's min_containers for the window that is current; None without a schedule."""
    if not props:
        return None
    from providers.modal.client import set_min_containers

    replicas = replicas_now(props)
    set_min_containers(app_name, environment, replicas, bool(props.get("inClass")))
    log(f"warm schedule: min_containers = {replicas} until the next window edge")
    return replicas
