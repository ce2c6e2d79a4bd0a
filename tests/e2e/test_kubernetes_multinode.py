"""The `k8s-multinode` stack end to end: one vLLM engine across nodes (TP 8 x PP 2 on two
8-GPU nodes) as a LeaderWorkerSet, with the real LWS controller (sigs.k8s.io/lws v0.8.0, built
by scripts/install-k8s-test-cluster) running in the local control plane next to
kube-controller-manager and kube-scheduler, its admission webhooks reached over TLS on
127.0.0.1 (tests/standins/kubernetes/cluster.py says how).

What is real: the controller's groups (a leader StatefulSet, a worker StatefulSet per group),
the pod webhook's labels and LWS_* environment, scheduling onto fake GPU nodes, the group
restart policy, rolling updates, garbage collection on destroy. What is faked: the kubelet (the
pods are marked Running, nothing runs; a "killed" container is a status the fake kubelet
reports) and the network (the readiness gate reaches the leader's Service through
ServiceForward, which picks the Service's ready endpoints and relays to the engine stand-in).
"""
from __future__ import annotations

import json
import time

import pytest

from tests.e2e.test_kubernetes import cluster, container, make_stack, namespaces  # noqa: F401 - fixtures
from tests.helpers import run_glmserve, skip_unless_ci
from tests.standins.engine import EngineStandin
from tests.standins.kubernetes.cluster import INSTALL_HINT, ServiceForward

pytestmark = pytest.mark.e2e

NAME = "glmserve-k8s-multinode"          # the client Service (leaders only)
LWS = f"{NAME}-lws"                       # the LeaderWorkerSet and LWS's headless Service
LWS_API = "leaderworkerset.x-k8s.io/v1"
SELECTOR = f"app.kubernetes.io/instance={NAME}"


def needs_lws_controller(cluster) -> None:  # noqa: F811
    if not cluster.lws_controller:
        skip_unless_ci("needs the LeaderWorkerSet controller (lws-controller) and the LWS CRD: " + INSTALL_HINT,
                       opt_out_env="GLMSERVE_SKIP_K8S_BUILD")


@pytest.fixture
def engine():
    with EngineStandin("glm-5.2") as e:
        yield e


def multinode_stack(project, pulumi_env, cluster, namespace, forward, **kube):  # noqa: F811
    s = make_stack("k8s-multinode", project, pulumi_env, cluster, namespace, gateUrl=forward.url, **kube)
    s.edit({"glmserve:readiness": {"pollIntervalSeconds": 1}})
    return s


def pods(cluster, namespace) -> dict[str, dict]:  # noqa: F811
    items = cluster.dynamic().resources.get(api_version="v1", kind="Pod").get(
        namespace=namespace, label_selector=SELECTOR).to_dict()["items"]
    return {p["metadata"]["name"]: p for p in items if not p["metadata"].get("deletionTimestamp")}


def env_of(pod: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env") or []}


def wait_for(what: str, fn, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def engine_verdict(argv: list[str], version: str):
    """The real vLLM parser's verdict on the leader's argv (the kubelet's $(VAR) expansion
    stands in for the API key), or a skip when the engine-check venv is not built."""
    from infra.engine import check as ec

    avail = ec.available("vllm")
    if not avail:
        skip_unless_ci(f"the vLLM parser check needs the engine-check venv: {avail.reason}")
    return ec.check([a if not a.startswith("$(") else "sk-placeholder" for a in argv], "vllm", version)


def test_a_group_comes_up_with_roles_env_gpus_and_restarts_as_a_whole(cluster, project, pulumi_env,  # noqa: F811
                                                                      namespaces, engine):  # noqa: F811
    needs_lws_controller(cluster)
    ns = "glm-e2e-mn"
    namespaces.append(ns)
    forward = ServiceForward(cluster, ns, NAME, engine.url)
    try:
        s = multinode_stack(project, pulumi_env, cluster, ns, forward)
        up = s.run("up")
        assert f"LeaderWorkerSet {ns}/{LWS} rolled out: 1/1 groups of 2 pods ready" in up.stdout, up.stdout

        # The controller made one group: a leader and one worker, each on its own 8-GPU node.
        live = pods(cluster, ns)
        assert sorted(live) == [f"{LWS}-0", f"{LWS}-0-1"], live.keys()
        leader, worker = live[f"{LWS}-0"], live[f"{LWS}-0-1"]
        for pod, role, index in ((leader, "leader", "0"), (worker, "worker", "1")):
            labels = pod["metadata"]["labels"]
            assert labels["glmserve.io/role"] == role
            assert labels["leaderworkerset.sigs.k8s.io/name"] == LWS
            assert labels["leaderworkerset.sigs.k8s.io/group-index"] == "0"
            assert labels["leaderworkerset.sigs.k8s.io/worker-index"] == index
            res = pod["spec"]["containers"][0]["resources"]
            assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == "8"
            assert pod["status"]["phase"] == "Running"
            # The pod webhook's environment: where the leader is, how big the group is, which rank.
            env = env_of(pod)
            assert env["LWS_LEADER_ADDRESS"] == f"{LWS}-0.{LWS}.{ns}"
            assert env["LWS_GROUP_SIZE"] == "2" and env["LWS_WORKER_INDEX"] == index
        assert leader["spec"]["nodeName"] != worker["spec"]["nodeName"]
        # The leader address resolves in cluster DNS: the leader's hostname and subdomain, and a
        # headless Service of that name (LWS's own, not glmserve's client Service).
        assert (leader["spec"]["hostname"], leader["spec"]["subdomain"]) == (f"{LWS}-0", LWS)
        headless = s.live("v1", "Service", LWS)
        assert headless["spec"]["clusterIP"] == "None"
        assert s.live("v1", "Service", NAME)["spec"]["selector"]["glmserve.io/role"] == "leader"

        # The readiness gate went through the client Service: only the leader serves.
        assert engine.requests("/health") and engine.requests("/v1/models")
        assert forward.served_by and set(forward.served_by) == {f"{LWS}-0"}, forward.served_by

        # The commands each role runs: the Ray head, then vLLM with the Ray executor on the
        # leader; the worker joins the head at the leader address LWS gives it.
        from infra.engine.render import render

        spec = s.spec()
        argv = render(spec).argv
        lc, wc = leader["spec"]["containers"][0], worker["spec"]["containers"][0]
        assert lc["args"] == argv
        assert argv[argv.index("--distributed-executor-backend") + 1] == "ray"
        assert argv[argv.index("--tensor-parallel-size") + 1] == "8"
        assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
        assert "ray start --head --port=6379" in lc["command"][2]
        assert lc["command"][2].rstrip().endswith('exec "$@"')
        assert 'exec ray start --address="$LWS_LEADER_ADDRESS:6379" --block' in wc["command"][2]
        assert "args" not in wc and "startupProbe" in lc and "startupProbe" not in wc

        # The planner's view of the same stack: nodes x GPUs per node = one group's GPUs = TP x PP.
        plan = json.loads(run_glmserve("plan", "--stack", s.name, "--json", env=s.env, check=False).stdout)
        assert plan["fits"] is True and plan["gpu"]["nodes"] == 2 and plan["gpu"]["count"] == 8
        out = s.outputs()
        assert out["workload"] == f"LeaderWorkerSet/{LWS}" and out["nodesPerReplica"] == 2
        tmpl = s.live(LWS_API, "LeaderWorkerSet", LWS)["spec"]["leaderWorkerTemplate"]
        assert tmpl["size"] == 2 and tmpl["restartPolicy"] == "RecreateGroupOnPodRestart"
        assert tmpl["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1600Gi"

        # A worker's engine process is killed: LWS recreates the whole group (restartPolicy
        # RecreateGroupOnPodRestart), since the Ray cluster cannot take a lost rank back. While
        # the new pods are starting, refresh reports the group not ready, and up waits for it.
        cluster.kubelet.hold.set()
        cluster.kubelet.crash(ns, f"{LWS}-0-1")
        old = {n: p["metadata"]["uid"] for n, p in live.items()}
        wait_for("the group to be recreated", lambda: (
            (now := pods(cluster, ns)).keys() == old.keys()
            and all(now[n]["metadata"]["uid"] != old[n] for n in old)))
        ref = s.run("refresh")
        assert f"LeaderWorkerSet {ns}/{LWS} is not ready: " in ref.stdout, ref.stdout
        cluster.kubelet.hold.clear()
        up = s.run("up")
        assert f"LeaderWorkerSet {ns}/{LWS} rolled out: 1/1 groups" in up.stdout, up.stdout
        assert all(p["status"]["phase"] == "Running" for p in pods(cluster, ns).values())
    finally:
        cluster.kubelet.hold.clear()
        forward.close()
    down = s.run("destroy")
    assert "deleted" in down.stdout
    assert s.live(LWS_API, "LeaderWorkerSet", LWS) is None
    assert s.live("v1", "Namespace", ns, namespace=None) is None

    # The leader's engine command passes the real vLLM parser (the Ray commands are not engine
    # commands, and Ray is not in the engine-check venv).
    verdict = engine_verdict(lc["args"], spec.engine.version)
    assert verdict.ok, verdict.message


def test_two_groups_then_a_config_change_rolls_both_and_destroy_leaves_nothing(cluster, project,  # noqa: F811
                                                                              pulumi_env, namespaces,  # noqa: F811
                                                                              engine):
    needs_lws_controller(cluster)
    ns = "glm-e2e-mn2"
    namespaces.append(ns)
    forward = ServiceForward(cluster, ns, NAME, engine.url)
    try:
        # In a namespace glmserve does not own, so that destroy's leftovers can be listed.
        cluster.dynamic().resources.get(api_version="v1", kind="Namespace").create(
            body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        s = multinode_stack(project, pulumi_env, cluster, ns, forward, createNamespace=False)
        s.edit({"glmserve:scaling": {"maxReplicas": 2}})
        up = s.run("up")
        assert f"rolled out: 2/2 groups of 2 pods ready" in up.stdout, up.stdout
        live = pods(cluster, ns)
        assert sorted(live) == [f"{LWS}-0", f"{LWS}-0-1", f"{LWS}-1", f"{LWS}-1-1"], live.keys()
        assert len({p["spec"]["nodeName"] for p in live.values()}) == 4        # a whole node each
        for g in ("0", "1"):
            assert env_of(live[f"{LWS}-{g}-1"])["LWS_LEADER_ADDRESS"] == f"{LWS}-{g}.{LWS}.{ns}"
            assert live[f"{LWS}-{g}"]["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/group-index"] == g
        assert set(forward.served_by) <= {f"{LWS}-0", f"{LWS}-1"}
        lws_uid = s.live(LWS_API, "LeaderWorkerSet", LWS)["metadata"]["uid"]

        # A config change patches the LeaderWorkerSet in place; LWS rolls every group onto it.
        s.edit({"glmserve:serving": {"maxModelLen": 65536}})
        pre = s.run("preview", "--diff")
        assert "to replace" not in pre.stdout and '"131072" => "65536"' in pre.stdout, pre.stdout
        up = s.run("up")
        assert "rolled out: 2/2 groups of 2 pods ready" in up.stdout, up.stdout
        assert s.live(LWS_API, "LeaderWorkerSet", LWS)["metadata"]["uid"] == lws_uid
        rolled = pods(cluster, ns)
        assert rolled.keys() == live.keys()
        for name, pod in rolled.items():
            assert pod["metadata"]["uid"] != live[name]["metadata"]["uid"], f"{name} was not recreated"
            assert pod["status"]["phase"] == "Running"
        for g in ("0", "1"):
            args = rolled[f"{LWS}-{g}"]["spec"]["containers"][0]["args"]
            assert args[args.index("--max-model-len") + 1] == "65536"
    finally:
        forward.close()
    s.run("destroy")
    # Nothing of glmserve's or of the controller's is left: no LeaderWorkerSet, StatefulSet,
    # pod or Service (LWS's headless Service included), whatever their labels.
    def leftovers() -> list[tuple[str, str]]:
        left = []
        for api_version, kind in ((LWS_API, "LeaderWorkerSet"), ("apps/v1", "StatefulSet"), ("v1", "Pod"),
                                  ("v1", "Service"), ("v1", "PersistentVolumeClaim")):
            res = cluster.dynamic().resources.get(api_version=api_version, kind=kind)
            left += [(kind, i.metadata.name) for i in res.get(namespace=ns).items]
        return left
    # (The claims go after their StatefulSet, through the garbage collector.)
    deadline = time.monotonic() + 30
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert leftovers() == []
