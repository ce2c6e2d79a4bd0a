"""Rollout waits of the workloads glmserve applies (Deployment, StatefulSet, LeaderWorkerSet):
when a change has rolled out, what it waits on, and why pods do not come up."""
from __future__ import annotations

from typing import Any, Callable, Optional

from infra.common.http import poll
from providers.kubernetes.client import Cluster, KubeError, describe, get, list_objects

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "LeaderWorkerSet")


def rollout_state(live: dict[str, Any]) -> tuple[bool, str]:
    """(done, progress text) for a workload's status."""
    kind = live.get("kind")
    spec, status, md = live.get("spec") or {}, live.get("status") or {}, live.get("metadata") or {}
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    observed = status.get("observedGeneration")
    if kind == "Deployment":
        available = int(status.get("availableReplicas") or 0)
        total = int(status.get("replicas") or 0)
        fresh = observed is not None and int(observed) >= int(md.get("generation") or 0)
        done = fresh and updated >= want and available >= want and total <= want
        return done, f"{available}/{want} replicas available, {updated} updated"
    if kind == "StatefulSet":
        fresh = observed is not None and int(observed) >= int(md.get("generation") or 0)
        same_rev = status.get("currentRevision") == status.get("updateRevision") or updated >= want
        done = fresh and ready >= want and updated >= want and same_rev
        return done, f"{ready}/{want} replicas ready, {updated} updated"
    if kind == "LeaderWorkerSet":
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        size = int(((spec.get("leaderWorkerTemplate") or {}).get("size")) or 1)
        done = ready >= want and updated >= want and conds.get("Available") == "True"
        return done, f"{ready}/{want} groups of {size} pods ready, {updated} updated"
    return True, "no rollout"


def _container_view(c: dict[str, Any], template_env: list[dict[str, Any]]) -> tuple:
    env = [e for e in c.get("env") or [] if e in template_env]
    return c.get("image"), c.get("command"), c.get("args"), env


def lws_pods_current(c: Cluster, live: dict[str, Any], selector: str) -> tuple[bool, str]:
    """Whether every pod of a LeaderWorkerSet is ready and runs its current template, by role.

    The LWS status has no observedGeneration: right after a change it still shows the old
    groups as ready and updated until the controller has reconciled. The pods say it directly:
    all ``replicas x size`` of them exist and are Ready, none is being deleted, and each
    container has the image, command, args and env of its role's template (the env LWS's
    webhook adds aside)."""
    spec = live.get("spec") or {}
    tmpl = spec.get("leaderWorkerTemplate") or {}
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1) * int(tmpl.get("size") or 1)
    roles = {"leader": tmpl.get("leaderTemplate") or tmpl.get("workerTemplate") or {},
             "worker": tmpl.get("workerTemplate") or {}}
    pods = list_objects(c, "v1", "Pod", live["metadata"]["namespace"], selector)
    stale = 0
    for p in pods:
        role = "leader" if ((p["metadata"].get("labels") or {}).get("leaderworkerset.sigs.k8s.io/worker-index")
                            == "0") else "worker"
        want_c = ((roles[role].get("spec") or {}).get("containers") or [])
        have_c = ((p.get("spec") or {}).get("containers") or [])
        same = len(want_c) == len(have_c) and all(
            _container_view(h, w.get("env") or []) == _container_view(w, w.get("env") or [])
            for w, h in zip(want_c, have_c))
        ready = any(x.get("type") == "Ready" and x.get("status") == "True"
                    for x in (p.get("status") or {}).get("conditions") or [])
        if p["metadata"].get("deletionTimestamp") or not same or not ready:
            stale += 1
    if len(pods) == want and stale == 0:
        return True, ""
    return False, f"{len(pods) - stale}/{want} pods ready on the current template"


def workload_state(c: Cluster, live: dict[str, Any], selector: str) -> tuple[bool, str]:
    """rollout_state, and for a LeaderWorkerSet also :func:`lws_pods_current`."""
    done, progress = rollout_state(live)
    if done and live.get("kind") == "LeaderWorkerSet":
        current, why = lws_pods_current(c, live, selector)
        if not current:
            return False, f"{progress}; {why}"
    return done, progress


def pod_problems(c: Cluster, namespace: str, selector: str) -> list[str]:
    """Why pods of a workload are not ready: scheduling, image pulls, crashes."""
    out = []
    pods = list_objects(c, "v1", "Pod", namespace, selector)
    if not pods:
        return ["no pods exist yet (is kube-controller-manager running, and for a LeaderWorkerSet the LWS "
                "controller?)"]
    for p in pods:
        name = p["metadata"]["name"]
        st = p.get("status") or {}
        for cond in st.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                out.append(f"pod {name} is not scheduled: {cond.get('reason', '')}: {cond.get('message', '')}".strip())
        for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
            w = (cs.get("state") or {}).get("waiting") or {}
            if w.get("reason") and w["reason"] not in ("ContainerCreating", "PodInitializing"):
                out.append(f"pod {name} container {cs.get('name')}: {w['reason']}: {w.get('message', '')}".strip())
            t = (cs.get("lastState") or {}).get("terminated") or {}
            if t.get("reason") and int(cs.get("restartCount") or 0) > 0:
                out.append(f"pod {name} container {cs.get('name')} restarted {cs['restartCount']}x, last: "
                           f"{t['reason']} (exit {t.get('exitCode')})")
        if not out and st.get("phase") not in ("Running",):
            out.append(f"pod {name} is {st.get('phase', 'unknown')}")
    return out


def wait_rollout(c: Cluster, obj: dict[str, Any], selector: str, timeout: float, poll_seconds: float,
                 log: Callable[[str], None]) -> dict[str, Any]:
    """Wait until the workload's pods are updated and ready; log progress as it changes.
    On timeout, raise with the reasons pods are not ready (e.g. the scheduler's message)."""
    last: list[Optional[str]] = [None]
    reported: set[str] = set()
    problems: list[str] = []

    def observe() -> tuple[dict[str, Any], bool, str]:
        live = get(c, obj)
        if live is None:
            raise KubeError(f"{describe(obj)} disappeared while waiting for its rollout")
        done, progress = workload_state(c, live, selector)
        if not done:
            problems[:] = pod_problems(c, obj["metadata"]["namespace"], selector)
        return live, done, progress

    def report(state: tuple[dict[str, Any], bool, str], elapsed: float) -> None:
        _, done, progress = state
        if done:
            log(f"{describe(obj)} rolled out: {progress} ({elapsed:.0f} s)")
            return
        if progress != last[0]:
            log(f"waiting for {describe(obj)}: {progress}")
            last[0] = progress
        for p in problems:
            if p not in reported:
                log(p)
                reported.add(p)

    (live, _, progress), done = poll(observe, until=lambda s: s[1], interval=poll_seconds, timeout=timeout,
                                     on_value=report)
    if not done:
        conds = [f"{x.get('type')}={x.get('status')} ({x.get('reason', '')}: {x.get('message', '')})"
                 for x in (live.get("status") or {}).get("conditions") or [] if x.get("status") != "True"]
        detail = "; ".join(problems + conds) or "no reason reported"
        raise KubeError(f"{describe(obj)} did not become ready within {timeout:.0f} s "
                        f"(timeouts.startupSeconds): {progress}. {detail}")
    return live
