"""The keep-warm window in the Kubernetes manifests (providers/kubernetes/schedule.py): a KEDA
ScaledObject with cron triggers, or CronJobs with the RBAC to scale the one workload; the core
objects validated against Kubernetes 1.37's schemas (strict)."""
from __future__ import annotations

from tests.unit.providers.test_kubernetes_manifests import K8S, by_kind, docs_of, kv, spec_of

OFFICE = {"timeZone": "Europe/Berlin", "minReplicas": 1,
          "windows": [{"days": ["mon-fri"], "start": "08:00", "end": "19:00"},
                      {"days": ["sat"], "start": "10:00", "end": "14:00"}]}
SCALING = {"minReplicas": 0, "maxReplicas": 1, "warmSchedule": OFFICE}


def cronjobs(docs):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "CronJob"}


def test_without_keda_each_window_edge_is_a_cronjob_that_scales_the_workload():
    docs = docs_of(spec_of(scaling=SCALING))
    for d in docs:
        if d["kind"] in ("CronJob", "ServiceAccount", "Role", "RoleBinding", "Deployment"):
            kv.validate(d, K8S, strict=True)
    jobs = cronjobs(docs)
    assert sorted(jobs) == ["glmserve-k8s-prod-warm-0-end", "glmserve-k8s-prod-warm-0-start",
                            "glmserve-k8s-prod-warm-1-end", "glmserve-k8s-prod-warm-1-start"]
    start = jobs["glmserve-k8s-prod-warm-0-start"]["spec"]
    assert (start["schedule"], start["timeZone"]) == ("0 8 * * 1,2,3,4,5", "Europe/Berlin")
    pod = start["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "glmserve-k8s-prod-warm"
    assert pod["containers"][0]["image"].startswith("registry.k8s.io/kubectl:")
    assert pod["containers"][0]["args"] == ["scale", "deployments/glmserve-k8s-prod", "--replicas=1",
                                            "--namespace=glmserve-prod"]
    end = jobs["glmserve-k8s-prod-warm-1-end"]["spec"]
    assert end["schedule"] == "0 14 * * 6"
    assert end["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][2] == "--replicas=0"


def test_the_cronjobs_may_scale_only_this_workload():
    kinds = by_kind(docs_of(spec_of(scaling=SCALING)))
    rules = kinds["Role"]["rules"]
    assert {(tuple(r["resources"]), tuple(r["resourceNames"]), tuple(r["verbs"])) for r in rules} == {
        (("deployments",), ("glmserve-k8s-prod",), ("get",)),
        (("deployments/scale",), ("glmserve-k8s-prod",), ("get", "patch", "update"))}
    binding = kinds["RoleBinding"]
    assert binding["roleRef"]["name"] == kinds["Role"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "glmserve-k8s-prod-warm",
                                    "namespace": "glmserve-prod"}]


def test_the_scaler_owns_the_replica_count_and_its_pods_are_not_behind_the_service():
    docs = docs_of(spec_of(scaling=SCALING))
    kinds = by_kind(docs)
    assert "replicas" not in kinds["Deployment"]["spec"]
    selector = kinds["Service"]["spec"]["selector"]
    for job in cronjobs(docs).values():
        labels = job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert not all(labels.get(k) == v for k, v in selector.items())
    # Without a schedule the workload keeps its count and nothing is added.
    plain = docs_of(spec_of())
    assert by_kind(plain)["Deployment"]["spec"]["replicas"] == 1
    assert not {"CronJob", "ScaledObject", "Role"} & {d["kind"] for d in plain}


def test_with_keda_one_scaled_object_with_a_cron_trigger_per_window():
    docs = docs_of(spec_of(scaling=SCALING, kubernetes={"keda": True}))
    kinds = by_kind(docs)
    assert "CronJob" not in kinds and "Role" not in kinds
    so = kinds["ScaledObject"]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "glmserve-k8s-prod"}
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (0, 1)
    assert so["spec"]["triggers"] == [
        {"type": "cron", "metadata": {"timezone": "Europe/Berlin", "start": "0 8 * * 1,2,3,4,5",
                                      "end": "0 19 * * 1,2,3,4,5", "desiredReplicas": "1"}},
        {"type": "cron", "metadata": {"timezone": "Europe/Berlin", "start": "0 10 * * 6", "end": "0 14 * * 6",
                                      "desiredReplicas": "1"}}]
    assert "replicas" not in kinds["Deployment"]["spec"]


def test_a_statefulset_is_scaled_through_its_own_resource():
    docs = docs_of(spec_of(scaling={**SCALING, "maxReplicas": 3, "warmSchedule": {**OFFICE, "minReplicas": 2}},
                           kubernetes={"replicas": 3}))
    job = cronjobs(docs)["glmserve-k8s-prod-warm-0-start"]
    assert job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][1:3] == [
        "statefulsets/glmserve-k8s-prod", "--replicas=2"]
    kv.validate(by_kind(docs)["StatefulSet"], K8S, strict=True)


def test_kubernetes_schedule_apply_leaves_it_to_the_cluster():
    from infra.config import providers
    spec = spec_of(scaling=SCALING, kubernetes={"keda": True})
    assert "KEDA" in providers.get("kubernetes").apply_schedule(spec, "k8s-prod", "glmserve", 1)
