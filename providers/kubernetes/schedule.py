"""Keep-warm windows on Kubernetes, the ecosystem's way, as more objects in the manifests.

With ``kubernetes.keda: true`` (the cluster runs KEDA, https://keda.sh): one ``ScaledObject``
on the workload with a ``cron`` trigger per window (https://keda.sh/docs/2.17/scalers/cron/:
``timezone``, ``start``, ``end``, ``desiredReplicas``), ``minReplicaCount`` =
``scaling.minReplicas`` outside the windows (0: scale to zero).

Without KEDA: a ``CronJob`` per window edge, in the window's time zone (``spec.timeZone``),
running ``kubectl scale`` (the ``registry.k8s.io/kubectl`` image, kubernetes/kubernetes#116672)
under a ServiceAccount whose Role may only read and scale this one workload.

Either way the scaler owns the workload's replica count: the workload is rendered without
``spec.replicas``, so that an `up` (server-side apply) never resets what the window set. A
new workload starts with one replica; KEDA corrects that at once, the CronJobs at the next
window edge (or run one by hand: ``kubectl create job --from=cronjob/<name>``).
"""
from __future__ import annotations

from typing import Any

from infra.spec.model import NodeSpec

# The objects this module adds; the provider names their resources after the objects.
SCHEDULE_KINDS = ("ScaledObject", "ServiceAccount", "Role", "RoleBinding", "CronJob")
# Workload kind -> (API group, resource) of its scale subresource.
SCALE_RESOURCE = {"Deployment": ("apps", "deployments"), "StatefulSet": ("apps", "statefulsets"),
                  "LeaderWorkerSet": ("leaderworkerset.x-k8s.io", "leaderworkersets")}


def schedule_manifests(spec: NodeSpec, opts: Any, v: dict[str, Any], workload: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects that follow ``scaling.warmSchedule`` for ``workload`` (a rendered manifest);
    ``v`` are the provider's deploy variables (names, labels). None without a schedule."""
    warm = spec.scaling.warm_schedule
    if warm is None:
        return []
    name, namespace, labels = v["name"], v["namespace"], v["labels"]
    inside = max(spec.scaling.min_replicas, warm.min_replicas)
    meta = lambda n: {"name": n, "namespace": namespace, "labels": labels}     # noqa: E731
    # The scaling jobs' pods must not match the Service's or the rollout's selector (name + instance).
    job_labels = {**labels, "app.kubernetes.io/name": "glmserve-warm-schedule",
                  "app.kubernetes.io/component": "warm-schedule"}
    target = {"apiVersion": workload["apiVersion"], "kind": workload["kind"], "name": name}
    if opts.keda:
        return [{
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": meta(f"{name}-warm"),
            "spec": {
                "scaleTargetRef": target,
                "minReplicaCount": spec.scaling.min_replicas,
                "maxReplicaCount": max(inside, v["max_replicas"]),
                "triggers": [{"type": "cron", "metadata": {"timezone": warm.time_zone, "start": start, "end": end,
                                                           "desiredReplicas": str(inside)}}
                             for start, end in warm.cron_edges()],
            },
        }]
    group, resource = SCALE_RESOURCE[workload["kind"]]
    account = f"{name}-warm"
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(account)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(account),
         "rules": [
             {"apiGroups": [group], "resources": [resource], "resourceNames": [name], "verbs": ["get"]},
             {"apiGroups": [group], "resources": [f"{resource}/scale"], "resourceNames": [name],
              "verbs": ["get", "patch", "update"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(account),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]},
    ]
    kind_ref = f"{resource}.{group}" if group != "apps" else resource
    for i, (start, end) in enumerate(warm.cron_edges()):
        for edge, cron, replicas in (("start", start, inside), ("end", end, spec.scaling.min_replicas)):
            docs.append({
                "apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta(f"{name}-warm-{i}-{edge}"),
                "spec": {
                    "schedule": cron, "timeZone": warm.time_zone,
                    "concurrencyPolicy": "Forbid",
                    # A run missed by up to an hour (controller down) still happens.
                    "startingDeadlineSeconds": 3600,
                    "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 3,
                    "jobTemplate": {"spec": {"backoffLimit": 3, "template": {"metadata": {"labels": job_labels}, "spec": {
                        "serviceAccountName": account,
                        "restartPolicy": "OnFailure",
                        "containers": [{
                            "name": "scale", "image": opts.schedule_image,
                            "args": ["scale", f"{kind_ref}/{name}", f"--replicas={replicas}",
                                     f"--namespace={namespace}"],
                        }],
                    }}}},
                },
            })
    return docs
