"""The kubernetes provider end to end: the real Pulumi CLI (`glmserve up/preview/refresh/
destroy`) applies the stack's objects to a real kube-apiserver on 127.0.0.1, through the
official client's server-side apply (tests/standins/kubernetes/cluster.py starts it for this module).

With kube-controller-manager, kube-scheduler and kwok also built, Deployments and
StatefulSets roll out onto fake 8-GPU nodes, deletes wait for real finalizers, and a stack
without GPU nodes fails its rollout wait with the scheduler's reason. Without them, the
tests that need rollouts skip and the rest run with `kubernetes.wait: false`.
"""
from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import edit_stack, run_glmserve, run_pulumi, skip_unless_ci
from tests.standins.kubernetes.cluster import INSTALL_HINT, CuttingProxy, LocalCluster, kubeconfig, missing

pytestmark = pytest.mark.e2e

API_KEY = "sk-k8s-PLANTED-api-key-0123456789abcdef"
HF_TOKEN = "hf_K8sPLANTEDtokenValue0123456789abcdef"
REVISION = "0123456789abcdef0123456789abcdef01234567"
IMAGE = "vllm/vllm-openai:v0.33.0@sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    absent = missing(with_controllers=False)
    if absent:
        skip_unless_ci(f"no local Kubernetes control plane: missing {', '.join(absent)}; {INSTALL_HINT}",
                       opt_out_env="GLMSERVE_SKIP_K8S_BUILD")
    c = LocalCluster(tmp_path_factory.mktemp("k8s"), with_controllers=not missing(with_controllers=True))
    try:
        c.start()
    except Exception as e:
        logs = c.logs()
        c.stop()
        raise RuntimeError(f"the local Kubernetes control plane did not start: {e}\n{logs}") from None
    yield c
    c.stop()


def needs_controllers(cluster: LocalCluster) -> None:
    if not cluster.with_controllers:
        skip_unless_ci("needs kube-controller-manager and kube-scheduler: " + INSTALL_HINT,
                       opt_out_env="GLMSERVE_SKIP_K8S_BUILD")


# ----------------------------------------------------------------------------- helpers

class Stack:
    """A stack of the temporary project, its engine environment, and the cluster."""

    def __init__(self, name: str, project: Path, env: dict, cluster: LocalCluster, namespace: str):
        self.name, self.project, self.env, self.cluster, self.namespace = name, project, env, cluster, namespace

    def edit(self, config: dict) -> None:
        edit_stack(self.project, self.name, config)

    def kube(self, **options) -> None:
        self.edit({"glmserve:kubernetes": options})

    def run(self, op: str, *args: str, check: bool = True, timeout: float = 600):
        return run_glmserve(op, "--stack", self.name, *args, env=self.env, check=check, timeout=timeout)

    def outputs(self, secrets: bool = False) -> dict:
        args = ["stack", "output", "--stack", self.name, "--json"] + (["--show-secrets"] if secrets else [])
        return json.loads(run_pulumi(*args, env=self.env, project=self.project).stdout)

    def state(self) -> dict:
        return json.loads(run_pulumi("stack", "export", "--stack", self.name, env=self.env,
                                     project=self.project).stdout)

    def spec(self):
        from infra.spec.load import spec_for_stack
        return spec_for_stack(self.name, self.project)

    def live(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        dyn = self.cluster.dynamic()
        res = dyn.resources.get(api_version=api_version, kind=kind)
        try:
            return res.get(name=name, namespace=namespace or self.namespace).to_dict()
        except Exception as e:  # noqa: BLE001
            if getattr(e, "status", None) == 404:
                return None
            raise


@pytest.fixture
def namespaces(cluster):
    """Namespaces a test uses; deleted afterwards whatever happened, so that the fake GPU nodes
    are free for the next test."""
    used: list[str] = []
    yield used
    api = cluster.dynamic().resources.get(api_version="v1", kind="Namespace")
    for ns in used:
        try:
            api.delete(name=ns)
        except Exception:  # noqa: BLE001 - already gone
            pass
    deadline = time.monotonic() + 120
    while used and time.monotonic() < deadline:
        left = [ns for ns in used if _exists(api, ns)]
        if not left:
            return
        time.sleep(0.5)


def _exists(api, name: str) -> bool:
    try:
        api.get(name=name)
        return True
    except Exception:  # noqa: BLE001
        return False


def make_stack(name: str, project: Path, pulumi_env: dict, cluster: LocalCluster, namespace: str,
               **kube) -> Stack:
    env = {**pulumi_env, "KUBECONFIG": str(cluster.kubeconfig_path)}
    s = Stack(name, project, env, cluster, namespace)
    # Prod policy pins (revision, image digest) filled with stand-in values; the cache is not
    # retained, so destroy removes everything; a short startup budget and quick polls.
    s.edit({"glmserve:model": {"revision": REVISION}, "glmserve:engine": {"image": IMAGE},
            "glmserve:timeouts": {"startupSeconds": 60}})
    s.kube(namespace=namespace, retainCache=False, rolloutPollSeconds=1,
           wait=cluster.with_controllers, **kube)
    run_pulumi("stack", "init", name, "--secrets-provider", "passphrase", env=env, project=project)
    return s


def container(workload: dict, role: str = "template") -> dict:
    if role == "template":
        return workload["spec"]["template"]["spec"]["containers"][0]
    return workload["spec"]["leaderWorkerTemplate"][role]["spec"]["containers"][0]


# ----------------------------------------------------------------------------- tests

def test_up_creates_the_node_with_gpus_shm_probes_and_the_shared_argv(cluster, project, pulumi_env, namespaces):
    namespaces.append("glm-e2e-up")
    s = make_stack("k8s-prod", project, pulumi_env, cluster, "glm-e2e-up")
    up = s.run("up")
    spec = s.spec()
    from infra.engine.render import render

    argv = render(spec).argv
    dep = s.live("apps/v1", "Deployment", "glmserve-k8s-prod")
    assert dep is not None, up.stdout
    c = container(dep)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert c["resources"]["requests"]["nvidia.com/gpu"] == "8"
    # The shared renderer's argv, verbatim, after the container's setup script.
    assert c["args"] == argv
    assert c["command"][:2] == ["/bin/sh", "-c"] and c["command"][2].rstrip().endswith('exec "$@"')
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["dshm"]["emptyDir"]["medium"] == "Memory"
    assert {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["dshm"] == "/dev/shm"
    claim = vols["cache"]["persistentVolumeClaim"]["claimName"]
    assert s.live("v1", "PersistentVolumeClaim", claim)["spec"]["resources"]["requests"]["storage"] == "1000Gi"
    sp = c["startupProbe"]
    assert sp["httpGet"]["path"] == "/health" and sp["periodSeconds"] * sp["failureThreshold"] >= 60
    assert c["readinessProbe"]["httpGet"]["path"] == "/health" and c["livenessProbe"]["httpGet"]["path"] == "/health"
    env = {e["name"]: e for e in c["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "glmserve-k8s-prod-secrets",
                                                                "key": "VLLM_API_KEY"}
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        dep["spec"]["template"]["spec"]["tolerations"]
    svc = s.live("v1", "Service", "glmserve-k8s-prod")
    assert svc["spec"]["ports"][0]["port"] == 8000

    out = s.outputs()
    assert out["namespace"] == "glm-e2e-up" and out["workload"] == "Deployment/glmserve-k8s-prod"
    assert out["baseUrl"] == "http://glmserve-k8s-prod.glm-e2e-up.svc.cluster.local:8000/v1"
    if cluster.with_controllers:
        assert "rolled out: 1/1 replicas available" in up.stdout, up.stdout
        assert out["rollout"].startswith("1/1 replicas available")
        pods = [o for o in cluster.objects("glm-e2e-up") if o[0] == "Pod"]
        assert len(pods) == 1

    # Refresh reads the live objects: nothing changed, then an out-of-band scale to 0 is drift
    # that up puts back.
    ref = s.run("refresh")
    assert "update" not in ref.stdout.split("Resources:")[-1], ref.stdout
    cluster.dynamic().resources.get(api_version="apps/v1", kind="Deployment").patch(
        name="glmserve-k8s-prod", namespace="glm-e2e-up", body={"spec": {"replicas": 0}},
        content_type="application/merge-patch+json")
    ref = s.run("refresh")
    assert "1 updated" in ref.stdout or "~ 1 updated" in ref.stdout, ref.stdout
    pre = s.run("preview", "--diff")
    # The workload is patched (and with a rollout wait, the wait runs again); nothing is replaced.
    assert re.search(r"~ [12] to update", pre.stdout) and "to replace" not in pre.stdout, pre.stdout
    assert re.search(r"replicas\s*: 0 => 1", pre.stdout), pre.stdout
    s.run("up")
    assert s.live("apps/v1", "Deployment", "glmserve-k8s-prod")["spec"]["replicas"] == 1

    down = s.run("destroy")
    assert "deleted" in down.stdout
    # The namespace was glmserve's: destroy waited for its finalizer, so it is gone.
    assert s.live("v1", "Namespace", "glm-e2e-up", namespace=None) is None


def test_config_edit_updates_in_place_and_an_immutable_change_replaces(cluster, project, pulumi_env, namespaces):
    # Two replicas with a ReadWriteOnce cache: a StatefulSet with a claim per replica.
    namespaces.append("glm-e2e-update")
    s = make_stack("k8s-prod", project, pulumi_env, cluster, "glm-e2e-update", replicas=2)
    s.run("up")
    sts = s.live("apps/v1", "StatefulSet", "glmserve-k8s-prod")
    uid = sts["metadata"]["uid"]
    assert sts["spec"]["replicas"] == 2 and "--max-model-len" in container(sts)["args"]

    s.edit({"glmserve:serving": {"maxModelLen": 65536}})
    pre = s.run("preview", "--diff")
    assert re.search(r"~ [12] to update", pre.stdout), pre.stdout
    assert "to replace" not in pre.stdout and "+-" not in pre.stdout, pre.stdout
    assert '"131072" => "65536"' in pre.stdout, pre.stdout
    s.run("up")
    sts = s.live("apps/v1", "StatefulSet", "glmserve-k8s-prod")
    args = container(sts)["args"]
    assert sts["metadata"]["uid"] == uid, "patched in place, not recreated"
    assert args[args.index("--max-model-len") + 1] == "65536"

    # A storage class is part of the StatefulSet's volumeClaimTemplates, which the API server
    # will not change in place: its dry-run says so, and preview shows a replace.
    s.kube(storageClass="fast-nvme")
    pre = s.run("preview", "--diff")
    assert "+-" in pre.stdout and "1 to replace" in pre.stdout, pre.stdout
    assert re.search(r"\+-pulumi-python:dynamic/kubernetes:StatefulSet: \(replace\)", pre.stdout), pre.stdout
    assert re.search(r"storageClassName\s*: \"fast-nvme\"", pre.stdout), pre.stdout
    s.run("up")
    sts = s.live("apps/v1", "StatefulSet", "glmserve-k8s-prod")
    assert sts["metadata"]["uid"] != uid
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast-nvme"
    s.run("destroy")



def test_plain_pulumi_up_update_refresh_destroy(cluster, project, pulumi_env, namespaces, monkeypatch):
    """The commands a user types in the project folder, with no glmserve wrapper and no
    GLMSERVE_PROJECT_DIR: the program finds the project from its working directory."""
    namespaces.append("glm-e2e-plain")
    s = make_stack("k8s-prod", project, pulumi_env, cluster, "glm-e2e-plain")
    monkeypatch.delenv("GLMSERVE_PROJECT_DIR")
    user = {k: v for k, v in s.env.items() if k != "GLMSERVE_PROJECT_DIR"}

    def pulumi(*args):
        return run_pulumi(*args, "--stack", s.name, env=user, project=project)

    # up: the objects are applied and (with controllers) up waited for the rollout.
    made = pulumi("up", "--yes")
    dep = s.live("apps/v1", "Deployment", "glmserve-k8s-prod")
    assert dep is not None, made.stdout
    uid = dep["metadata"]["uid"]
    if cluster.with_controllers:
        assert "rolled out: 1/1 replicas available" in made.stdout, made.stdout
        assert s.outputs()["rollout"].startswith("1/1 replicas available")

    # A config change patches the Deployment in place: preview --diff shows it, up applies it.
    pulumi("config", "set", "--path", "glmserve:serving.maxModelLen", "65536")
    pre = pulumi("preview", "--diff")
    assert '"131072" => "65536"' in pre.stdout, pre.stdout
    assert re.search(r"~ [12] to update", pre.stdout) and "to replace" not in pre.stdout, pre.stdout
    pulumi("up", "--yes")
    dep = s.live("apps/v1", "Deployment", "glmserve-k8s-prod")
    args = container(dep)["args"]
    assert dep["metadata"]["uid"] == uid and args[args.index("--max-model-len") + 1] == "65536"

    # Scaled to 0 out of band: refresh records the drift, up puts the replica back.
    cluster.dynamic().resources.get(api_version="apps/v1", kind="Deployment").patch(
        name="glmserve-k8s-prod", namespace="glm-e2e-plain", body={"spec": {"replicas": 0}},
        content_type="application/merge-patch+json")
    ref = pulumi("refresh", "--yes")
    assert "1 updated" in ref.stdout, ref.stdout
    pulumi("up", "--yes")
    assert s.live("apps/v1", "Deployment", "glmserve-k8s-prod")["spec"]["replicas"] == 1

    down = pulumi("destroy", "--yes")
    assert "deleted" in down.stdout
    assert cluster.objects("glm-e2e-plain") == []
    assert s.live("v1", "Namespace", "glm-e2e-plain", namespace=None) is None
    assert json.loads(pulumi("stack", "output", "--json").stdout) == {}


# The k8s-multinode stack (LeaderWorkerSet, with the LWS controller): test_kubernetes_multinode.py.


def test_destroy_leaves_nothing_glmserve_created_in_the_namespace(cluster, project, pulumi_env, namespaces):
    ns_api = cluster.dynamic().resources.get(api_version="v1", kind="Namespace")
    ns_api.create(body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "glm-e2e-shared"}})
    namespaces.append("glm-e2e-shared")
    s = make_stack("k8s-prod", project, pulumi_env, cluster, "glm-e2e-shared", createNamespace=False)
    s.run("up")
    before = cluster.objects("glm-e2e-shared")
    kinds = {k for k, _ in before}
    assert {"Secret", "PersistentVolumeClaim", "Deployment", "Service"} <= kinds, before
    if cluster.with_controllers:
        assert {"ReplicaSet", "Pod"} <= kinds, before
    s.run("destroy")
    assert cluster.objects("glm-e2e-shared") == []
    assert cluster.objects("glm-e2e-shared", selector="app.kubernetes.io/instance=glmserve-k8s-prod") == []
    # The namespace was not glmserve's: it stays.
    assert ns_api.get(name="glm-e2e-shared").metadata.name == "glm-e2e-shared"


def test_secret_values_never_appear_in_state_logs_or_the_artifact(cluster, project, pulumi_env, namespaces, tmp_path):
    namespaces.append("glm-e2e-secrets")
    s = make_stack("k8s-prod", project, pulumi_env, cluster, "glm-e2e-secrets")
    for path, value in (("secrets.apiKey.value", API_KEY), ("secrets.hfToken.value", HF_TOKEN)):
        run_pulumi("config", "set", "--secret", "--path", f"glmserve:{path}", value, "--stack", s.name,
                   env=s.env, project=project)
    texts = [s.run("preview", "--diff"), s.run("up"), s.run("refresh"),
             run_glmserve("render", "--stack", s.name, "--artifact", env=s.env, check=True)]
    # The values did reach the cluster.
    import base64
    sec = s.live("v1", "Secret", "glmserve-k8s-prod-secrets")
    assert base64.b64decode(sec["data"]["VLLM_API_KEY"]).decode() == API_KEY
    assert base64.b64decode(sec["data"]["HF_TOKEN"]).decode() == HF_TOKEN
    assert s.outputs(secrets=True)["apiKey"] == API_KEY
    dep = s.live("apps/v1", "Deployment", "glmserve-k8s-prod")
    assert API_KEY not in json.dumps(dep) and HF_TOKEN not in json.dumps(dep)
    texts.append(s.run("destroy"))
    state = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.json"))
    assert state, "the state folder holds the stack"
    artifact = texts[3].stdout
    assert "[secret]" in artifact and len(list(yaml.safe_load_all(artifact))) == 5
    for planted in (API_KEY, HF_TOKEN):
        assert planted not in state
        for proc in texts:
            assert planted not in proc.stdout + proc.stderr


def test_api_server_unreachable_mid_up_fails_clearly_and_state_knows_every_object(cluster, project, pulumi_env,
                                                                                  namespaces, tmp_path):
    # The API server "dies" just as glmserve applies the Deployment: the Namespace, Secret, PVC
    # (and maybe the Service) are in the cluster by then.
    proxy = CuttingProxy(cluster, lambda method, path: method == "PATCH" and "/deployments/" in path)
    kc = tmp_path / "proxied-kubeconfig.yaml"
    kc.write_text(yaml.safe_dump(kubeconfig(cluster.pki, f"https://127.0.0.1:{proxy.port}")))
    namespaces.append("glm-e2e-cut")
    s = make_stack("k8s-prod", project, pulumi_env, cluster, "glm-e2e-cut")
    s.env["KUBECONFIG"] = str(kc)
    up = s.run("up", check=False)
    proxy.close()
    assert proxy.cut.is_set() and up.returncode == 1, up.stdout
    text = up.stdout + up.stderr
    assert f"cannot reach the Kubernetes API server at https://127.0.0.1:{proxy.port}" in text, text
    assert "applying Deployment glm-e2e-cut/glmserve-k8s-prod" in text, text
    assert "Traceback" not in up.stderr

    # Every glmserve object the cluster has is one the state knows (nothing half-created), and
    # the Deployment, whose apply never reached the server, is in neither.
    live = {(k, n) for k, n in cluster.objects("glm-e2e-cut")}
    if s.live("v1", "Namespace", "glm-e2e-cut", namespace=None) is not None:
        live.add(("Namespace", "glm-e2e-cut"))
    known = set()
    for r in s.state()["deployment"].get("resources") or []:
        m = (r.get("outputs") or {}).get("manifest")
        if isinstance(m, dict):
            known.add((m["kind"], m["metadata"]["name"]))
    assert {("Namespace", "glm-e2e-cut"), ("Secret", "glmserve-k8s-prod-secrets")} <= live, live
    assert live <= known, (live, known)
    assert ("Deployment", "glmserve-k8s-prod") not in live | known

    # With the server back at the same address (the objects in state record which API server
    # they live in), up finishes the job and destroy cleans up.
    back = CuttingProxy(cluster, port=proxy.port)
    try:
        s.run("up")
        assert s.live("apps/v1", "Deployment", "glmserve-k8s-prod") is not None
        s.run("destroy")
    finally:
        back.close()


def test_objects_of_another_owner_and_another_cluster_are_never_touched(cluster, project, pulumi_env, namespaces,
                                                                      tmp_path):
    """Issue 12: a same-named object of another stack instance stops `up` untouched; refresh and
    destroy through a kubeconfig that now leads elsewhere refuse instead of dropping state."""
    namespaces.append("glm-e2e-owner")
    s = make_stack("k8s-prod", project, pulumi_env, cluster, "glm-e2e-owner")
    dyn = cluster.dynamic()
    dyn.resources.get(api_version="v1", kind="Namespace").create(body={
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "glm-e2e-owner", "labels": {"glmserve.dev/owner": "gs" + "e" * 20}}})
    up = s.run("up", check=False)
    text = up.stdout + up.stderr
    assert up.returncode == 1 and "Namespace glm-e2e-owner already exists and belongs to another glmserve stack " \
        f"instance (owner gs{'e' * 20})" in text, text
    ns = s.live("v1", "Namespace", "glm-e2e-owner", namespace=None)
    assert ns["metadata"]["labels"]["glmserve.dev/owner"] == "gs" + "e" * 20
    assert cluster.objects("glm-e2e-owner") == [], "nothing was created beside a foreign namespace"

    # Its owner removes it; then the stack deploys, and every object carries the stack's owner.
    dyn.resources.get(api_version="v1", kind="Namespace").delete(name="glm-e2e-owner")
    while s.live("v1", "Namespace", "glm-e2e-owner", namespace=None) is not None:
        time.sleep(0.5)
    s.run("up")
    owner = s.outputs()["owner"]
    dep = s.live("apps/v1", "Deployment", "glmserve-k8s-prod")
    assert dep["metadata"]["labels"]["glmserve.dev/owner"] == owner

    # The kubeconfig now leads to another API server (a proxy: same cluster, another URL, which
    # glmserve cannot tell from a different cluster): refresh and destroy refuse, state is kept.
    proxy = CuttingProxy(cluster)
    kc = tmp_path / "elsewhere.yaml"
    kc.write_text(yaml.safe_dump(kubeconfig(cluster.pki, f"https://127.0.0.1:{proxy.port}")))
    direct = s.env["KUBECONFIG"]
    s.env["KUBECONFIG"] = str(kc)
    try:
        for op in ("refresh", "destroy"):
            proc = s.run(op, check=False)
            text = proc.stdout + proc.stderr
            assert proc.returncode != 0, text
            assert f"lives in the cluster at {cluster.server}" in text, text
        assert s.live("apps/v1", "Deployment", "glmserve-k8s-prod") is not None
    finally:
        proxy.close()
        s.env["KUBECONFIG"] = direct
    s.run("refresh")
    assert any((r.get("outputs") or {}).get("manifest", {}).get("kind") == "Deployment"
               for r in s.state()["deployment"]["resources"])
    s.run("destroy")
    assert cluster.objects("glm-e2e-owner") == []


def test_rollout_without_gpu_nodes_times_out_naming_the_scheduler_reason(cluster, project, pulumi_env, namespaces):
    needs_controllers(cluster)
    # Only the CPU node matches: the pod can never be scheduled.
    namespaces.append("glm-e2e-nogpu")
    s = make_stack("k8s-prod", project, pulumi_env, cluster, "glm-e2e-nogpu",
                   nodeSelector={"glmserve.test/pool": "cpu"})
    s.edit({"glmserve:timeouts": {"startupSeconds": 10}})
    up = s.run("up", check=False)
    text = up.stdout + up.stderr
    assert up.returncode == 1
    assert "did not become ready within 10 s" in text, text
    assert "Unschedulable" in text and "Insufficient nvidia.com/gpu" in text, text
    assert "Traceback" not in up.stderr
    # The workload is in state: destroy removes it.
    assert s.live("apps/v1", "Deployment", "glmserve-k8s-prod") is not None
    s.run("destroy")
    assert cluster.objects("glm-e2e-nogpu") == []


def test_the_api_servers_dry_run_decides_update_or_replace(cluster, namespaces):
    """The provider's diff asks the API server (server-side apply, dryRun=All) rather than
    guessing: a template change is an update, a volumeClaimTemplates change is refused in place
    (replace), and a change the server rejects outright is an error naming its message."""
    from providers.kubernetes import client as k

    namespaces.append("glm-e2e-dryrun")
    c = k.connect({"kubeconfig": str(cluster.kubeconfig_path)})
    k.apply(c, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "glm-e2e-dryrun"}})
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "glm-e2e-dryrun"},
           "spec": {"replicas": 0, "serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "i", "args": ["1"]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "cache"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}
    k.apply(c, sts)
    import copy
    args = copy.deepcopy(sts)
    args["spec"]["template"]["spec"]["containers"][0]["args"] = ["2"]
    assert k.dry_run_change(c, args) == ("update", "")
    vct = copy.deepcopy(sts)
    vct["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = "fast-nvme"
    verdict, why = k.dry_run_change(c, vct)
    assert verdict == "replace" and "volumeClaimTemplates" in why and "immutable" in why
    # Nothing was changed by the dry runs.
    live = k.get(c, sts)
    assert live["spec"]["template"]["spec"]["containers"][0]["args"] == ["1"]
    bad = copy.deepcopy(sts)
    bad["spec"]["replicas"] = -1
    with pytest.raises(k.KubeError, match="HTTP 422"):
        k.dry_run_change(c, bad)
