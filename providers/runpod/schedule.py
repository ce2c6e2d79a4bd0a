"""Keep-warm windows on RunPod: a pod has no autoscaler, so a window is the pod's state.

Inside a window of ``scaling.warmSchedule`` the pod runs; outside it is stopped (GPUs
released, billing for them stops, the volume kept) unless ``scaling.minReplicas`` keeps it
running. ``runpod.state: stopped`` still wins: a stopped stack stays stopped.

Every ``up`` deploys the state that is current, and ``glmserve schedule apply --stack S``
(idempotent; the `schedule` GitOps workflow runs it every few minutes) runs ``up`` only when
the window's state differs from the one the stack last deployed, so the pod is started and
stopped through the same resource, identity checks and readiness gate as any other change.
"""
from __future__ import annotations

import datetime as dt
from typing import Optional

from infra.spec.model import NodeSpec
from providers.runpod.options import RunPodOptions


def pod_state(spec: NodeSpec, opts: RunPodOptions, at: Optional[dt.datetime] = None) -> str:
    """``running`` or ``stopped`` for the pod at the instant ``at`` (now by default)."""
    if opts.state == "stopped" or spec.scaling.warm_schedule is None:
        return opts.state
    if at is None:
        from infra.spec.schedule import now
        at = now()
    return "running" if spec.scaling.replicas_at(at) >= 1 else "stopped"
