"""Kill points on Kubernetes: `glmserve up` / `destroy` killed (SIGKILL, the whole process group)
right after the API server carried out a mutating request (server-side apply, delete) and before
the answer reached glmserve, then recovered as a user would (tests/e2e/killpoints/harness.py).

The requests go through a proxy in front of the real kube-apiserver of the local test cluster
(tests/standins/kubernetes/cluster.py, CuttingProxy with a KillSwitch). After every scenario:
exactly the objects the state knows exist (none outside), then after `destroy` none at all;
never two engine pods; the seeded same-named Deployment of another owner is untouched; no
secret value in any output.
"""
from __future__ import annotations

import pytest
import yaml

from tests.e2e.killpoints.harness import Journal, assert_no_secrets, glmserve, kill_points, kill_then_recover
from tests.e2e.test_kubernetes import cluster, make_stack, namespaces  # noqa: F401 - fixtures
from tests.helpers import run_pulumi
from tests.standins.killswitch import KillSwitch
from tests.standins.kubernetes.cluster import CuttingProxy, kubeconfig

pytestmark = pytest.mark.e2e

STACK = "k8s-prod"
NAME = "glmserve-k8s-prod"
NS = "glm-kp"
FOREIGN_NS = "glm-kp-foreign"
API_KEY = "sk-k8s-KILLPOINT-api-key-0123456789abcdef"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
NAMESPACE = f"/api/v1/namespaces/{NS}"
SECRET = f"/api/v1/namespaces/{NS}/secrets/{NAME}-secrets"


def mutating(call: str) -> bool:
    return call.split(" ", 1)[0] in CuttingProxy.MUTATING


# The first mutating request for each object, in the order a clean run makes them: server-side
# applies (PATCH) at up, deletes at destroy. The scenarios below kill after a subset of them
# that covers the first object, the secret and the workload (run time).
UP_POINTS = [("PATCH " + NAMESPACE, 1), ("PATCH " + SECRET, 1), ("PATCH " + DEPLOYMENTS, 1)]
# Not after the namespace's delete: a namespace being terminated takes no new objects, so the
# recovering `up` can only wait for it to go (Kubernetes' own rule, not a state problem).
DESTROY_POINTS = [("DELETE " + DEPLOYMENTS, 1), ("DELETE " + SECRET, 1)]


class Scenario:
    def __init__(self, cluster, project, pulumi_env, tmp_path, used):  # noqa: F811
        self.cluster, self.project = cluster, project
        self.switch = KillSwitch()
        self.proxy = CuttingProxy(cluster, switch=self.switch)
        kc = tmp_path / "proxied-kubeconfig.yaml"
        kc.write_text(yaml.safe_dump(kubeconfig(cluster.pki, f"https://127.0.0.1:{self.proxy.port}")))
        used += [NS, FOREIGN_NS]
        self.stack = make_stack(STACK, project, pulumi_env, cluster, NS)
        self.stack.env["KUBECONFIG"] = str(kc)
        run_pulumi("config", "set", "--secret", "--path", "glmserve:secrets.apiKey.value", API_KEY, "--stack", STACK,
                   env=self.stack.env, project=project)
        self.env = self.stack.env
        self.journal = Journal()
        # Another owner's Deployment of the same name, in its own namespace.
        dyn = cluster.dynamic()
        dyn.resources.get(api_version="v1", kind="Namespace").create(
            body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FOREIGN_NS}})
        self.foreign = dyn.resources.get(api_version="apps/v1", kind="Deployment").create(namespace=FOREIGN_NS, body={
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": NAME, "labels": {"glmserve.dev/owner": "gs" + "f" * 20,
                                                  "app.kubernetes.io/managed-by": "glmserve"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "theirs"}},
                     "template": {"metadata": {"labels": {"app": "theirs"}},
                                  "spec": {"containers": [{"name": "c", "image": "theirs"}]}}}}).to_dict()

    def close(self):
        self.proxy.close()

    def run(self, *args, **kw):
        return glmserve(self.journal, self.env, *args, "--stack", STACK, **kw)

    def live(self) -> set[tuple[str, str]]:
        objs = {(k, n) for k, n in self.cluster.objects(NS) if k not in ("Pod", "ReplicaSet")}
        if self.stack.live("v1", "Namespace", NS, namespace=None) is not None:
            objs.add(("Namespace", NS))
        return objs

    def pods(self) -> int:
        return len([1 for k, _ in self.cluster.objects(NS) if k == "Pod"])

    def known(self) -> set[tuple[str, str]]:
        out = set()
        for r in self.stack.state()["deployment"].get("resources") or []:
            m = (r.get("outputs") or {}).get("manifest")
            if isinstance(m, dict) and "kind" in m:
                out.add((m["kind"], m["metadata"]["name"]))
        return out

    def check_matches_state(self):
        assert self.live() == self.known(), (self.live(), self.known())
        assert self.pods() <= 1

    def check_clean(self):
        assert self.cluster.objects(NS) == [], self.cluster.objects(NS)
        theirs = self.stack.live("apps/v1", "Deployment", NAME, namespace=FOREIGN_NS)
        assert theirs["metadata"]["uid"] == self.foreign["metadata"]["uid"]
        assert theirs["metadata"]["generation"] == self.foreign["metadata"]["generation"]
        assert_no_secrets(self.journal, [API_KEY])


@pytest.fixture
def scenario(cluster, project, pulumi_env, tmp_path, namespaces):  # noqa: F811
    s = Scenario(cluster, project, pulumi_env, tmp_path, namespaces)
    yield s
    s.close()


def test_the_kill_points_are_the_mutating_requests_of_up_and_destroy(scenario):
    s = scenario
    start = len(s.switch.calls)
    assert s.run("up").returncode == 0
    up_points = [p for p in kill_points(s.switch.calls[start:], mutating) if p[1] == 1]
    start = len(s.switch.calls)
    assert s.run("destroy").returncode == 0
    down_points = [p for p in kill_points(s.switch.calls[start:], mutating) if p[1] == 1]
    for p in UP_POINTS:
        assert p in up_points, up_points
    for p in DESTROY_POINTS:
        assert p in down_points, down_points
    # Every object is applied once at up and deleted once at destroy.
    assert len(up_points) == len(down_points) == 5, (up_points, down_points)
    s.check_clean()


@pytest.mark.parametrize("call,occurrence", UP_POINTS, ids=[c.split("/")[-2] for c, _ in UP_POINTS])
def test_up_killed_after(scenario, call, occurrence):
    kill_then_recover(scenario, "up", call, occurrence, STACK)


@pytest.mark.parametrize("call,occurrence", DESTROY_POINTS, ids=[c.split("/")[-2] for c, _ in DESTROY_POINTS])
def test_destroy_killed_after(scenario, call, occurrence):
    kill_then_recover(scenario, "destroy", call, occurrence, STACK)
