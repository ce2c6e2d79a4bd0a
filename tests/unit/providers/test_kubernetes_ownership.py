"""Kubernetes objects are owned by a stack instance in one cluster (providers/kubernetes/resources.py):
adoption, change and deletion only on an owner-label match, refresh drops only on a 404 from the
cluster the object was created in, and no API call waits for ever.

The provider's calls to the API server are replaced by an in-memory cluster here; the real
API server path is tests/e2e/test_kubernetes.py and the kill points."""
from __future__ import annotations

import copy
import socket
import threading

import pytest
import yaml

from providers.kubernetes import client as k
from providers.kubernetes.resources import KubeObjectProvider

OURS, THEIRS = "gs" + "a" * 20, "gs" + "b" * 20
SERVER, OTHER_SERVER = "https://10.0.0.1:6443", "https://10.9.9.9:6443"
SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "glm", "namespace": "ns",
                                                           "labels": {k.STACK_LABEL: "glmserve-prod"}},
       "spec": {"ports": [{"port": 8000}]}}


class FakeCluster:
    """The API server as the provider sees it through providers.kubernetes.client."""

    def __init__(self, monkeypatch, host: str = SERVER):
        self.host, self.objects, self.deleted, self.applied = host, {}, [], []
        monkeypatch.setattr(k, "connect", lambda cluster: k.Cluster(api=None, dyn=None, host=self.host,
                                                                   context=(cluster or {}).get("context") or "prod"))
        monkeypatch.setattr(k, "get", lambda c, obj: copy.deepcopy(self.objects.get(obj["metadata"]["name"])))
        monkeypatch.setattr(k, "apply", self.apply)
        monkeypatch.setattr(k, "delete", self.delete)

    def apply(self, c, obj, dry_run=False):
        live = {**copy.deepcopy(obj), "metadata": {**obj["metadata"], "uid": "u-" + obj["metadata"]["name"]}}
        self.applied.append(live)
        self.objects[obj["metadata"]["name"]] = live
        return live

    def delete(self, c, obj, timeout, log, uid=None):
        self.deleted.append((obj["metadata"]["name"], uid))
        self.objects.pop(obj["metadata"]["name"], None)

    def seed(self, owner):
        labels = {**SVC["metadata"]["labels"], **({k.OWNER_LABEL: owner} if owner else {})}
        self.objects["glm"] = {**copy.deepcopy(SVC), "metadata": {**SVC["metadata"], "labels": labels, "uid": "u-x"}}


def props(owner=OURS, where=None):
    return {"manifest": copy.deepcopy(SVC), "cluster": {"kubeconfig": "", "context": "prod", "server": SERVER},
            "owner": owner, "where": where, "deleteTimeoutSeconds": 5}


def test_create_labels_the_object_with_the_owner_and_records_where_it_lives(monkeypatch):
    kube = FakeCluster(monkeypatch)
    outs = KubeObjectProvider().create(props()).outs
    assert kube.objects["glm"]["metadata"]["labels"][k.OWNER_LABEL] == OURS
    assert outs["where"] == {"server": SERVER, "context": "prod"}
    # The label is applied, not part of the manifest kept in state (no drift on refresh).
    assert k.OWNER_LABEL not in outs["manifest"]["metadata"]["labels"]


def test_create_adopts_an_object_with_its_own_owner_label(monkeypatch):
    kube = FakeCluster(monkeypatch)
    kube.seed(OURS)            # an interrupted earlier run of this stack instance
    KubeObjectProvider().create(props())
    assert len(kube.applied) == 1


@pytest.mark.parametrize("owner", [THEIRS, None])
def test_a_same_named_object_of_someone_else_stops_create_untouched(monkeypatch, owner):
    kube = FakeCluster(monkeypatch)
    kube.seed(owner)           # another checkout of the same stack (same stack label), or no owner at all
    before = copy.deepcopy(kube.objects)
    with pytest.raises(Exception) as e:
        KubeObjectProvider().create(props())
    text = str(e.value)
    assert "Service ns/glm already exists and belongs to" in text and "will not take it over" in text
    assert (THEIRS in text) if owner else ("without an owner label" in text)
    assert kube.objects == before and kube.applied == []


def test_update_refuses_an_object_that_now_belongs_to_someone_else(monkeypatch):
    kube = FakeCluster(monkeypatch)
    kube.seed(THEIRS)
    with pytest.raises(Exception, match="belongs to another glmserve stack instance"):
        KubeObjectProvider().update("id", props(where={"server": SERVER, "context": "prod"}), props())
    assert kube.applied == []


def test_delete_removes_only_its_own_object_by_uid(monkeypatch):
    kube = FakeCluster(monkeypatch)
    kube.seed(OURS)
    KubeObjectProvider().delete("id", props(where={"server": SERVER, "context": "prod"}))
    assert kube.deleted == [("glm", "u-x")]
    kube.seed(THEIRS)
    KubeObjectProvider().delete("id", props(where={"server": SERVER, "context": "prod"}))
    assert kube.deleted == [("glm", "u-x")] and k.owner_of(kube.objects["glm"]) == THEIRS


def test_refresh_drops_only_on_a_404_from_the_same_cluster(monkeypatch):
    kube = FakeCluster(monkeypatch)
    here = {"server": SERVER, "context": "prod"}
    kube.seed(OURS)
    assert KubeObjectProvider().read("id", props(where=here)).id == "id"
    kube.objects.clear()
    assert KubeObjectProvider().read("id", props(where=here)).id == ""
    # The context now leads to another server: an error, never "gone".
    kube.host = OTHER_SERVER
    for op in (lambda p: KubeObjectProvider().read("id", p), lambda p: KubeObjectProvider().delete("id", p),
               lambda p: KubeObjectProvider().update("id", p, props())):
        with pytest.raises(Exception, match=f"lives in the cluster at {SERVER}.*now leads to {OTHER_SERVER}"):
            op(props(where=here))
    assert kube.deleted == [] and kube.applied == []


def test_a_stack_pointed_at_another_cluster_refuses_the_change(monkeypatch):
    FakeCluster(monkeypatch)
    elsewhere = {**props(), "cluster": {"kubeconfig": "", "context": "dev", "server": OTHER_SERVER}}
    with pytest.raises(Exception, match=f"lives in the cluster at {SERVER}.*now points at {OTHER_SERVER}"):
        KubeObjectProvider().diff("id", props(where={"server": SERVER, "context": "prod"}), elsewhere)


def test_state_from_before_owner_labels_gets_the_label_on_the_next_up(monkeypatch):
    kube = FakeCluster(monkeypatch)
    kube.seed(None)
    legacy = props(owner=None, where={"server": SERVER, "context": "prod"})
    d = KubeObjectProvider().diff("id", legacy, props())
    assert d.changes and not d.replaces
    KubeObjectProvider().update("id", legacy, props())
    assert k.owner_of(kube.objects["glm"]) == OURS


def test_a_hung_api_server_is_an_error_not_a_hang(monkeypatch, tmp_path):
    """A server that accepts connections and never answers: every request has a timeout and the
    retries a deadline, so the call fails (in a thread: a regression shows as a failed join, not a
    hung suite)."""
    monkeypatch.setenv("GLMSERVE_HTTP_TIMEOUT", "0.5")
    monkeypatch.setenv("GLMSERVE_HTTP_ATTEMPTS", "2")
    monkeypatch.setenv("GLMSERVE_HTTP_BACKOFF_INITIAL", "0.1")
    monkeypatch.setenv("GLMSERVE_HTTP_BACKOFF_MAX", "0.1")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)          # the kernel completes the handshakes; nobody ever reads or answers
    port = silent.getsockname()[1]
    kc = tmp_path / "kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "hung",
        "clusters": [{"name": "hung", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "hung", "context": {"cluster": "hung", "user": "u"}}]}))
    outcome: list[BaseException] = []

    def call():
        try:
            c = k.connect({"kubeconfig": str(kc)})
            assert c.context == "hung"        # the current context, resolved to its name
            k.get(c, SVC)
        except BaseException as e:  # noqa: BLE001
            outcome.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(120)
    silent.close()
    assert not t.is_alive(), "a Kubernetes API call hung on a server that never answers"
    assert outcome and isinstance(outcome[0], k.KubeError), outcome
    assert f"cannot reach the Kubernetes API server at http://127.0.0.1:{port} (timed out)" in str(outcome[0])


def test_an_object_left_terminating_by_a_killed_destroy_is_gone_and_recreated_after_it_goes(monkeypatch):
    kube = FakeCluster(monkeypatch)
    kube.seed(OURS)
    kube.objects["glm"]["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    here = {"server": SERVER, "context": "prod"}
    assert KubeObjectProvider().read("id", props(where=here)).id == ""
    KubeObjectProvider().create(props())
    # The earlier deletion finished first (waited for by uid), then the object was applied anew.
    assert kube.deleted == [("glm", "u-x")] and len(kube.applied) == 1
    assert "deletionTimestamp" not in kube.objects["glm"]["metadata"]
