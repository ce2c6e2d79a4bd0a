"""RunPod REST API v2 stand-in (pods, network volumes, GPU catalog) on 127.0.0.1.

Contract: RunPod's published OpenAPI 3.1 document, its machine-readable part in
``tests/data/runpod/openapi-v2.contract.json`` (tests/standins/runpod/contract.py).
Every request is validated against it with openapi-core (path, method, query, body) before it
is handled: unknown body keys, wrong types, bad enum values -> 422 ``application/problem+json``
with ``errors: ["$.path: message", ...]``; unparsable JSON -> 400; unknown path -> 404;
wrong method -> 405. Every response the stand-in sends is validated against the document's
response schemas too; a mismatch is recorded in :attr:`RunPodStandin.contract_violations`, turned
into a 500, and (``strict=True``, the default) raised as ``AssertionError`` by :meth:`stop`.

Server stack: the standard library's ``ThreadingHTTPServer`` in a daemon thread (see
``tests/standins/engine/_http.py``): no extra dependency for CI, keep-alive HTTP/1.1, and the
direct socket access that the connection-reset and delayed-response faults need.

Behaviour beyond the schema (the "handler layer" rules the document describes):

* Pods: ``PROVISIONING`` (``provisioning_delay`` s) -> ``STARTING`` (``starting_delay`` s; the
  container starts here) -> ``RUNNING``. ``runtime`` is null until RUNNING, then lists
  ``{"private": 8000, "type": "http", ...}`` for every ``ports`` entry. ``cost`` = GPU price for
  the pod's cloud x count while the pod holds GPUs, 0.0 when EXITED / ERROR / TERMINATED.
  Actions (``POST /v2/pods/{id}/action``): RUNNING allows stop/restart/terminate, PROVISIONING and
  STARTING allow stop/terminate, EXITED and ERROR allow start/terminate; anything else 409.
  ``start`` goes through PROVISIONING/STARTING again and needs free GPUs in the pod's data centre
  (else 400). ``restart`` goes to STARTING. ``terminate`` / ``DELETE`` -> 204; afterwards the pod
  is gone from ``GET /v2/pods`` and ``GET /v2/pods/{id}`` answers 404 (or, with
  ``deleted_pod_visibility="terminated"``, 200 with status TERMINATED).
  A PATCH that changes the container (image, args, env, ports, disk, registry, mounts) of a
  STARTING/RUNNING pod restarts it (``patch_restarts=True``; set False to apply silently).
* Placement: ``gpu.id`` must be in the catalog and offered in the requested cloud, ``gpu.count``
  at most ``maxCount``; data centres from ``dataCenterIds`` (or all) that host the cloud, match the
  CUDA constraints and have ``count`` free GPUs; none -> 400 "There are no longer any instances
  available with the requested specifications ...". With a ``mounts.network`` volume the pod goes
  to the volume's data centre only: ``cloud`` must be SECURE and ``dataCenterIds`` (if given) must
  include that data centre (400 otherwise); an unknown volume id -> 404. ``cpu`` pods and
  ``templateId`` are not supported (400 / 404).
* Network volumes: only in Secure Cloud data centres (400 otherwise); size may only grow
  (400); a volume mounted by a pod that is not terminated cannot be deleted (400).
* Catalog: ``GET /v2/catalog/gpus[/{id}]?include=AVAILABILITY&product=POD&count=8&cloud=SECURE``
  adds ``availability``, ``dataCenters`` and ``cudaVersions`` from the stock table. ``product`` is
  required with ``include`` and ``count``/``cloud``/``cudaVersions``/``minCudaVersion``/
  ``countryCodes`` are valid only with it (400), as the document says.

Test helpers: inventory (:meth:`pods`, :meth:`live_pods`, :meth:`volumes`), the request log
(:meth:`requests`), fault injection (:meth:`fail`, :meth:`rate_limit`, :meth:`reset_connection`,
:meth:`no_capacity`, :meth:`insufficient_balance`, :meth:`delay`), out-of-band changes
(:meth:`terminate_out_of_band`, :meth:`stop_out_of_band`, :meth:`error_out_of_band`), and the
per-pod proxy URL (:meth:`proxy_url`) that reaches the engine stand-in.
"""
from __future__ import annotations

import copy
import fnmatch
import http
import json
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from ..engine._http import BackgroundHTTPServer, Exchange, HttpStandin, Reply, ResetConnection, json_reply
from . import catalog
from .contract import Contract

__all__ = ["RunPodStandin", "RecordedRequest", "Fault", "NO_CAPACITY_DETAIL"]

PROBLEM = "application/problem+json"
NO_CAPACITY_DETAIL = ("There are no longer any instances available with the requested specifications "
                      "({count} x {gpu} in {cloud} cloud). Please refresh and try again.")
START_NO_GPU_DETAIL = "There are not enough free GPUs on the host machine to start this pod."
BALANCE_DETAIL = "Insufficient balance: your account balance is too low to deploy this pod ({gpu} x {count})."
RATE_LIMIT_POLICY = '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'

ACTIONS = {
    "PROVISIONING": ["stop", "terminate"],
    "STARTING": ["stop", "terminate"],
    "RUNNING": ["stop", "restart", "terminate"],
    "EXITED": ["start", "terminate"],
    "ERROR": ["start", "terminate"],
    "TERMINATED": [],
}
_ALNUM = string.ascii_lowercase + string.digits
_CONTAINER_FIELDS = ("image", "args", "env", "ports", "disk", "registry", "mounts")


def _iso(t: Optional[float]) -> Optional[str]:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _cuda_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    json: Any                                  # parsed body, raw text if not JSON, None if empty
    headers: dict[str, str]                    # lower-case; the Authorization value is redacted
    status: Optional[int] = None               # None: connection reset / no response sent
    fault: Optional[str] = None                # kind of injected fault that hit this request
    time: float = field(default_factory=time.time)


@dataclass
class Fault:
    method: str
    path: str                                  # fnmatch pattern, e.g. "/v2/pods/*/action"
    kind: str                                  # "status" | "reset" | "delay"
    times: Optional[int] = 1                   # None = every matching call
    status: int = 503
    detail: Optional[str] = None
    retry_after: Optional[int] = None
    seconds: float = 0.0
    after: bool = False                        # True: handle the request first, then apply
    html: bool = False                         # status fault with an HTML body (gateway page)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and fnmatch.fnmatchcase(path, self.path)


@dataclass
class _Pod:
    id: str
    name: str
    image: str
    args: str
    disk: int
    ports: list[str]
    env: dict[str, str]
    registry: Optional[str]
    mounts: dict[str, Any]
    gpu_id: str
    gpu_count: int
    cloud: str
    dc: str
    cuda: str
    locked: bool
    global_networking: bool
    created_at: float
    provisioning_delay: float
    starting_delay: float
    boot_at: Optional[float] = None            # monotonic time the current boot began
    state: Optional[str] = None                # EXITED | ERROR | TERMINATED overrides the boot clock
    holds_gpus: bool = True
    ssh_user: str = ""
    tcp_ports: dict[int, int] = field(default_factory=dict)
    ip: str = ""
    gn_ip: str = ""
    started_wall: Optional[float] = None
    logs: list[tuple[str, str, str]] = field(default_factory=list)   # (ts, source, line)
    terminated_at: Optional[float] = None


class RunPodStandin(HttpStandin):
    """RunPod REST v2 stand-in. Use as ``with RunPodStandin(api_key="k") as rp: ...``.

    Clients talk to ``f"{rp.url}/v2/pods"`` with ``Authorization: Bearer <api_key>``.
    """

    def __init__(
        self,
        api_key: str = "rp-test-key",
        *,
        engine: Any = None,
        proxy_url_template: Optional[str] = None,
        provisioning_delay: float = 0.2,
        starting_delay: float = 0.2,
        gpu_types: Optional[dict] = None,
        data_centers: Optional[dict] = None,
        stock: Optional[dict] = None,
        patch_restarts: bool = True,
        deleted_pod_visibility: str = "404",
        runtime_lists_http_ports: bool = True,
        strict: bool = True,
        killswitch: Any = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        if deleted_pod_visibility not in ("404", "terminated"):
            raise ValueError("deleted_pod_visibility must be '404' or 'terminated'")
        g, d, s = catalog.defaults()
        self.api_key = api_key
        self.gpu_types: dict[str, dict] = copy.deepcopy(gpu_types) if gpu_types is not None else g
        self.data_centers: dict[str, dict] = copy.deepcopy(data_centers) if data_centers is not None else d
        self.stock: dict[tuple[str, str, str], int] = dict(stock) if stock is not None else s
        self.provisioning_delay = provisioning_delay
        self.starting_delay = starting_delay
        self.patch_restarts = patch_restarts
        self.deleted_pod_visibility = deleted_pod_visibility
        self.runtime_lists_http_ports = runtime_lists_http_ports
        self.strict = strict
        self.contract = Contract()
        self.contract_violations: list[str] = []
        self._engine = engine
        self._proxy_template = proxy_url_template
        self._lock = threading.RLock()
        self._pods: dict[str, _Pod] = {}
        self._volumes: dict[str, dict] = {}
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        # One inventory per API key: another account sees none of this one's pods or volumes
        # (a 404 for their ids), as RunPod does.
        self._accounts: dict[str, tuple[dict[str, _Pod], dict[str, dict]]] = {api_key: (self._pods, self._volumes)}
        # tests/standins/killswitch.py: told of every mutating call carried out, before the answer.
        self.killswitch = killswitch
        self._http = BackgroundHTTPServer(self._app, host, port)

    # ================================================================== lifecycle
    def start(self) -> "RunPodStandin":
        """Serve; the API lives under ``{url}/v2/...``."""
        super().start()
        if self._engine is not None:
            self._engine.set_gate(self.container_started_at)
        return self

    def stop(self) -> None:
        super().stop()
        if self._engine is not None:
            self._engine.set_gate(None)
        if self.strict and self.contract_violations:
            violations, self.contract_violations = self.contract_violations, []
            raise AssertionError("RunPod stand-in sent responses that violate the OpenAPI document:\n  "
                                 + "\n  ".join(violations))

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            self.strict = False     # don't mask the test's own failure
        self.stop()

    # ================================================================== proxy / engine link
    @property
    def proxy_url_template(self) -> str:
        if self._proxy_template:
            return self._proxy_template
        if self._engine is not None:
            return self._engine.proxy_url_template
        return "https://{pod_id}-{port}.proxy.runpod.net"

    def proxy_url(self, pod_id: str, port: int = 8000) -> str:
        """Where pod ``pod_id``'s HTTP port is reachable (the engine stand-in, when linked)."""
        return self.proxy_url_template.format(pod_id=pod_id, port=port)

    def container_started_at(self, pod_id: str) -> Optional[float]:
        """``time.monotonic()`` at which the pod's container started, None if not running."""
        with self._lock:
            pod = self._pods.get(pod_id)
            if pod is None:
                return None
            status = self._status(pod)
            if status not in ("STARTING", "RUNNING"):
                return None
            return pod.boot_at + pod.provisioning_delay

    # ================================================================== inventory helpers
    def pods(self) -> list[dict]:
        """Every pod ever created (API view), terminated ones with status TERMINATED."""
        with self._lock:
            return [self._view(p) for p in self._pods.values()]

    def live_pods(self) -> list[dict]:
        with self._lock:
            return [self._view(p) for p in self._pods.values() if p.state != "TERMINATED"]

    def pod(self, pod_id: str) -> Optional[dict]:
        with self._lock:
            p = self._pods.get(pod_id)
            return self._view(p) if p else None

    def volumes(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._volumes.values()))

    def volume(self, volume_id: str) -> Optional[dict]:
        with self._lock:
            v = self._volumes.get(volume_id)
            return copy.deepcopy(v) if v else None

    def most_live_at_once(self, name: str) -> int:
        """The most pods named ``name`` that were ever live (created, not terminated) at the same time."""
        with self._lock:
            events = [(p.created_at, 1) for p in self._pods.values() if p.name == name]
            events += [(p.terminated_at, -1) for p in self._pods.values() if p.name == name and p.terminated_at]
        live = most = 0
        for _, step in sorted(events):          # at equal times the termination (-1) counts first
            live += step
            most = max(most, live)
        return most

    def add_account(self, api_key: str) -> None:
        """Accept ``api_key`` as the key of another account, with its own (empty) inventory."""
        with self._lock:
            self._accounts.setdefault(api_key, ({}, {}))

    def account_inventory(self, api_key: str) -> tuple[list[dict], list[dict]]:
        """(live pods, volumes) of the account ``api_key`` (API views)."""
        with self._lock:
            pods, vols = self._accounts[api_key]
            return ([self._view(p) for p in pods.values() if p.state != "TERMINATED"],
                    copy.deepcopy(list(vols.values())))

    def set_stock(self, gpu_id: str, data_center: str, free: int, cloud: str = "SECURE") -> None:
        with self._lock:
            self.stock[(gpu_id, data_center, cloud)] = free

    def set_price(self, gpu_id: str, secure: Optional[float] = None, community: Optional[float] = None) -> None:
        with self._lock:
            if secure is not None:
                self.gpu_types[gpu_id]["price"]["secure"] = secure
            if community is not None:
                self.gpu_types[gpu_id]["price"]["community"] = community

    def set_pod_timing(self, pod_id: str, provisioning_delay: Optional[float] = None,
                       starting_delay: Optional[float] = None) -> None:
        """Change one pod's remaining boot timing (e.g. ``starting_delay=float("inf")`` to hang)."""
        with self._lock:
            pod = self._pods[pod_id]
            if provisioning_delay is not None:
                pod.provisioning_delay = provisioning_delay
            if starting_delay is not None:
                pod.starting_delay = starting_delay

    def add_log(self, pod_id: str, line: str, source: str = "container") -> None:
        with self._lock:
            self._log(self._pods[pod_id], line, source)

    def seed_volume(self, name: str, size: int, data_center: str, type: Optional[str] = None) -> dict:
        """Create a network volume out of band (no request recorded)."""
        body = {"name": name, "size": size, "dataCenter": data_center}
        if type:
            body["type"] = type
        with self._lock:
            status, obj = self._create_volume(body)
        if status != 201:
            raise ValueError(obj["detail"])
        return obj

    def seed_pod(self, body: dict) -> dict:
        """Create a pod out of band from a CreatePodRequest body (validated like a request)."""
        chk = self.contract.check_request("POST", "/v2/pods", {}, {"authorization": f"Bearer {self.api_key}"},
                                          json.dumps(body).encode(), "application/json")
        if not chk.ok:
            raise ValueError(f"{chk.detail} {chk.errors}")
        with self._lock:
            status, obj = self._create_pod(body)
        if status != 201:
            raise ValueError(obj["detail"])
        return obj

    # ================================================================== out-of-band events
    def terminate_out_of_band(self, pod_id: str) -> None:
        with self._lock:
            self._terminate(self._pods[pod_id], "terminated out of band")

    def stop_out_of_band(self, pod_id: str) -> None:
        with self._lock:
            self._stop(self._pods[pod_id], "stopped out of band")

    def error_out_of_band(self, pod_id: str) -> None:
        with self._lock:
            pod = self._pods[pod_id]
            self._release(pod)
            pod.state, pod.boot_at = "ERROR", None
            self._log(pod, "container entered an unrecoverable error state", "system")

    # ================================================================== request log
    def requests(self, method: Optional[str] = None, path: Optional[str] = None) -> list[RecordedRequest]:
        """Recorded requests, optionally filtered by method and path (fnmatch pattern)."""
        with self._lock:
            out = list(self._requests)
        if method:
            out = [r for r in out if r.method == method.upper()]
        if path:
            out = [r for r in out if fnmatch.fnmatchcase(r.path, path)]
        return out

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ================================================================== fault injection
    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail(self, method: str, path: str, status: int = 503, *, times: Optional[int] = 1,
             detail: Optional[str] = None, after: bool = False, html: bool = False) -> Fault:
        """Answer ``status`` (problem+json; ``html=True``: an HTML gateway page) instead of handling.

        ``after=True`` handles the request first (state changes happen) and then answers ``status``.
        """
        return self.inject(Fault(method, path, "status", times, status, detail, after=after, html=html))

    def rate_limit(self, method: str, path: str, retry_after: int = 1, *, times: Optional[int] = 1) -> Fault:
        return self.inject(Fault(method, path, "status", times, 429,
                                 "rate limit exceeded for the minute window", retry_after=retry_after))

    def reset_connection(self, method: str, path: str, *, times: Optional[int] = 1, after: bool = False) -> Fault:
        """Close the socket without any response (``after=True``: once the request was handled)."""
        return self.inject(Fault(method, path, "reset", times, after=after))

    def no_capacity(self, method: str = "POST", path: str = "/v2/pods", *, times: Optional[int] = 1,
                    detail: Optional[str] = None) -> Fault:
        """400 with RunPod's no-capacity detail naming the requested GPU."""
        return self.inject(Fault(method, path, "status", times, 400, detail or "__no_capacity__"))

    def insufficient_balance(self, method: str = "POST", path: str = "/v2/pods", *,
                             times: Optional[int] = 1) -> Fault:
        return self.inject(Fault(method, path, "status", times, 402, "__balance__"))

    def delay(self, method: str, path: str, seconds: float, *, times: Optional[int] = 1, after: bool = True) -> Fault:
        """Hold the response back ``seconds`` (``after=True``: the request is handled first)."""
        return self.inject(Fault(method, path, "delay", times, seconds=seconds, after=after))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def _take_faults(self, method: str, path: str) -> list[Fault]:
        taken: list[Fault] = []
        with self._lock:
            have_action = False
            for f in list(self._faults):
                if not f.matches(method, path):
                    continue
                if f.kind != "delay":
                    if have_action:
                        continue
                    have_action = True
                f.hits += 1
                taken.append(f)
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
        return taken

    # ================================================================== HTTP entry point
    def _app(self, ex: Exchange) -> Reply:
        headers = {k: ("<redacted>" if k == "authorization" else v) for k, v in ex.headers.items()}
        try:
            body_json = ex.json()
        except ValueError:
            body_json = ex.body.decode("utf-8", "replace")
        rec = RecordedRequest(ex.method, ex.path, ex.query, body_json, headers)
        with self._lock:
            self._requests.append(rec)

        faults = self._take_faults(ex.method, ex.path)
        action = next((f for f in faults if f.kind != "delay"), None)
        pre = sum(f.seconds for f in faults if f.kind == "delay" and not f.after)
        post = sum(f.seconds for f in faults if f.kind == "delay" and f.after)
        if faults:
            rec.fault = ",".join(f.kind if f.kind != "status" else str(f.status) for f in faults)
        if pre and ex.sleep(pre):
            raise ResetConnection()

        pattern: Optional[str] = None
        if action is not None and not action.after:
            reply = self._fault_reply(action, ex, rec)
        else:
            reply, pattern = self._handle(ex, body_json)
            if action is not None:
                reply = self._fault_reply(action, ex, rec)
        if not (action is not None and action.html and reply.status == action.status):
            reply = self._checked(ex, pattern, reply)
        if post and ex.sleep(post):
            raise ResetConnection()
        rec.status = reply.status
        if self.killswitch is not None and ex.method in ("POST", "PATCH", "DELETE") and reply.status < 400 \
                and pattern is not None:
            action = body_json.get("action") if isinstance(body_json, dict) and pattern.endswith("/action") else None
            self.killswitch.record(f"{ex.method} {pattern}" + (f" {action}" if action else ""))
        return reply

    def _fault_reply(self, f: Fault, ex: Exchange, rec: RecordedRequest) -> Reply:
        if f.kind == "reset":
            rec.status = None
            raise ResetConnection()
        if f.html:
            return Reply(f.status, f"<html><body><h1>{f.status} {http.HTTPStatus(f.status).phrase}</h1>"
                                   f"</body></html>".encode(), "text/html; charset=utf-8")
        detail = f.detail
        gpu, count, cloud = self._requested_gpu(ex)
        if detail == "__no_capacity__":
            detail = NO_CAPACITY_DETAIL.format(count=count, gpu=gpu, cloud=cloud)
        elif detail == "__balance__":
            detail = BALANCE_DETAIL.format(count=count, gpu=gpu)
        headers = {}
        if f.retry_after is not None:
            headers["Retry-After"] = str(int(f.retry_after))
            headers["RateLimit"] = f'"minute";r=0;t={int(f.retry_after)}'
        return self._problem(f.status, detail or {
            500: "internal error", 502: "bad gateway", 503: "upstream temporarily unavailable",
            504: "upstream timed out"}.get(f.status, http.HTTPStatus(f.status).phrase.lower()), headers=headers)

    @staticmethod
    def _requested_gpu(ex: Exchange) -> tuple[str, int, str]:
        try:
            body = ex.json() or {}
            gpu = body.get("gpu") or {}
            return str(gpu.get("id", "the requested GPU")), int(gpu.get("count", 1)), str(body.get("cloud", "SECURE"))
        except (ValueError, AttributeError, TypeError):
            return "the requested GPU", 1, "SECURE"

    def _checked(self, ex: Exchange, pattern: Optional[str], reply: Reply) -> Reply:
        """Validate our own response against the document; a violation becomes a loud 500."""
        errs = self.contract.response_errors(ex.method, ex.path, pattern, ex.query, reply.status,
                                             reply.headers, reply.body, reply.content_type or "")
        if not errs:
            return reply
        msg = f"{ex.method} {ex.path} -> {reply.status}: " + "; ".join(errs)
        with self._lock:
            self.contract_violations.append(msg)
        return self._problem(500, "stand-in response violates the RunPod OpenAPI document: " + msg)

    @staticmethod
    def _problem(status: int, detail: str, errors: Optional[list[str]] = None,
                 headers: Optional[dict] = None, title: Optional[str] = None) -> Reply:
        body: dict[str, Any] = {"title": title or http.HTTPStatus(status).phrase, "status": status, "detail": detail}
        if errors:
            body["errors"] = errors
        return json_reply(status, body, PROBLEM, headers)

    # ================================================================== routing
    def _handle(self, ex: Exchange, body: Any) -> tuple[Reply, Optional[str]]:
        auth = ex.headers.get("authorization")
        if not auth or not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._problem(401, "missing bearer token"), None
        key = auth[7:].strip()
        if key not in self._accounts:
            return self._problem(401, "invalid bearer token"), None
        chk = self.contract.check_request(ex.method, ex.path, ex.query, ex.headers, ex.body,
                                          ex.headers.get("content-type", ""))
        if not chk.ok:
            headers = {"Allow": chk.allow} if chk.allow else None
            return self._problem(chk.status, chk.detail, chk.errors, headers, chk.title), chk.path_pattern
        p = chk.path_params
        route = (ex.method, chk.path_pattern)
        with self._lock:
            self._pods, self._volumes = self._accounts[key]
            try:
                status, obj, found = self._route(route, p, body, ex)
            finally:
                self._pods, self._volumes = self._accounts[self.api_key]
        if not found:
            return self._problem(501, f"{ex.method} {chk.path_pattern} is in the contract but not "
                                      "implemented by the stand-in"), chk.path_pattern
        headers = {"RateLimit-Policy": RATE_LIMIT_POLICY}
        if isinstance(obj, Reply):
            obj.headers.update(headers)
            return obj, chk.path_pattern
        if status == 204:
            return Reply(204, headers=headers), chk.path_pattern
        if status >= 400:
            return self._problem(status, obj["detail"], headers=headers), chk.path_pattern
        return json_reply(status, obj, headers=headers), chk.path_pattern

    def _route(self, route: tuple[str, str], p: dict, body: Any, ex: Exchange) -> tuple[int, Any, bool]:
        """Run the handler of ``route`` in the current account's inventory: (status, obj, found)."""
        handler: Optional[Callable[[], tuple[int, Any]]] = {
            ("GET", "/v2/pods"): lambda: (200, {"pods": [self._view(x) for x in self._pods.values()
                                                         if x.state != "TERMINATED"]}),
            ("POST", "/v2/pods"): lambda: self._create_pod(body),
            ("GET", "/v2/pods/{id}"): lambda: self._get_pod(p["id"]),
            ("PATCH", "/v2/pods/{id}"): lambda: self._patch_pod(p["id"], body),
            ("DELETE", "/v2/pods/{id}"): lambda: self._delete_pod(p["id"]),
            ("POST", "/v2/pods/{id}/action"): lambda: self._action(p["id"], body["action"]),
            ("GET", "/v2/pods/{id}/logs"): lambda: self._logs(p["id"], ex.query),
            ("GET", "/v2/network-volumes"): lambda: (200, {"networkVolumes": copy.deepcopy(list(self._volumes.values()))}),
            ("POST", "/v2/network-volumes"): lambda: self._create_volume(body),
            ("GET", "/v2/network-volumes/{id}"): lambda: self._get_volume(p["id"]),
            ("PATCH", "/v2/network-volumes/{id}"): lambda: self._patch_volume(p["id"], body),
            ("DELETE", "/v2/network-volumes/{id}"): lambda: self._delete_volume(p["id"]),
            ("GET", "/v2/catalog/gpus"): lambda: self._catalog(None, ex.query),
            ("GET", "/v2/catalog/gpus/{id}"): lambda: self._catalog(p["id"], ex.query),
        }.get(route)
        if handler is None:
            return 501, None, False
        status, obj = handler()
        return status, obj, True

    @staticmethod
    def _err(status: int, detail: str) -> tuple[int, dict]:
        return status, {"detail": detail}

    # ================================================================== pods
    def _status(self, pod: _Pod) -> str:
        if pod.state:
            return pod.state
        elapsed = time.monotonic() - (pod.boot_at or 0.0)
        if elapsed < pod.provisioning_delay:
            return "PROVISIONING"
        if elapsed < pod.provisioning_delay + pod.starting_delay:
            return "STARTING"
        return "RUNNING"

    def _log(self, pod: _Pod, line: str, source: str = "system") -> None:
        pod.logs.append((datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), source, line))

    def _view(self, pod: _Pod) -> dict:
        status = self._status(pod)
        gt = self.gpu_types.get(pod.gpu_id, {})
        holds = status in ("PROVISIONING", "STARTING", "RUNNING")
        price = float(gt.get("price", {}).get(pod.cloud.lower(), 0.0))
        runtime = None
        direct = None
        now = time.monotonic()
        if status == "RUNNING":
            running_since = (pod.boot_at or now) + pod.provisioning_delay + pod.starting_delay
            ports = []
            for spec in pod.ports:
                num, _, proto = spec.partition("/")
                if not num.isdigit():
                    continue
                proto = proto or "http"
                if proto == "http":
                    if self.runtime_lists_http_ports:
                        ports.append({"private": int(num), "public": None, "type": "http", "ip": None})
                else:
                    public = pod.tcp_ports.setdefault(int(num), 30000 + secrets.randbelow(30000))
                    ports.append({"private": int(num), "public": public, "type": proto, "ip": pod.ip})
            runtime = {"uptime": int(max(0.0, now - running_since)),
                       "gpus": [{"util": 0, "memoryUtil": 0} for _ in range(pod.gpu_count)],
                       "cpu": {"util": 1}, "memory": {"util": 3}, "ports": ports}
            if "22/tcp" in pod.ports:
                p22 = pod.tcp_ports.get(22)
                direct = {"host": pod.ip, "port": p22, "username": "root",
                          "command": f"ssh root@{pod.ip} -p {p22}"}
        proxy = None if status == "TERMINATED" else {
            "host": "ssh.runpod.io", "port": 22, "username": pod.ssh_user,
            "command": f"ssh {pod.ssh_user}@ssh.runpod.io"}
        gn: dict[str, Any] = {"enabled": pod.global_networking}
        if pod.global_networking:
            gn.update(ip=pod.gn_ip, internalDns=f"{pod.id}.runpod.internal")
        return {
            "id": pod.id, "name": pod.name, "image": pod.image, "args": pod.args, "disk": pod.disk,
            "ports": list(pod.ports), "env": dict(pod.env), "registry": pod.registry,
            "status": status, "actions": list(ACTIONS[status]), "mounts": copy.deepcopy(pod.mounts),
            "gpu": {"id": pod.gpu_id, "count": pod.gpu_count}, "cloud": pod.cloud, "dataCenterId": pod.dc,
            "cudaVersion": pod.cuda, "ssh": {"proxy": proxy, "direct": direct}, "template": None,
            "cost": round(price * pod.gpu_count, 6) if holds else 0.0,
            "locked": pod.locked, "globalNetworking": gn, "runtime": runtime,
            "createdAt": _iso(pod.created_at),
            "startedAt": _iso(pod.started_wall) if status in ("STARTING", "RUNNING") else None,
        }

    def _live(self, pod_id: str) -> Optional[_Pod]:
        pod = self._pods.get(pod_id)
        return pod if pod is not None and pod.state != "TERMINATED" else None

    def _release(self, pod: _Pod) -> None:
        if pod.holds_gpus:
            key = (pod.gpu_id, pod.dc, pod.cloud)
            self.stock[key] = self.stock.get(key, 0) + pod.gpu_count
            pod.holds_gpus = False

    def _boot(self, pod: _Pod, skip_provisioning: bool = False) -> None:
        now = time.monotonic()
        pod.state = None
        pod.boot_at = now - (pod.provisioning_delay if skip_provisioning else 0.0)
        pod.started_wall = time.time() + (0.0 if skip_provisioning else pod.provisioning_delay)
        pod.tcp_ports.clear()

    def _stop(self, pod: _Pod, why: str) -> None:
        if pod.state == "TERMINATED":
            return
        self._release(pod)
        pod.state, pod.boot_at = "EXITED", None
        self._log(pod, why)

    def _terminate(self, pod: _Pod, why: str) -> None:
        if pod.state == "TERMINATED":
            return
        self._release(pod)
        pod.state, pod.boot_at, pod.terminated_at = "TERMINATED", None, time.time()
        self._log(pod, why)

    def _create_pod(self, body: dict) -> tuple[int, Any]:
        gpu, cpu = body.get("gpu"), body.get("cpu")
        if bool(gpu) == bool(cpu):
            return self._err(400, "exactly one of gpu or cpu must be set")
        if cpu:
            return self._err(400, "CPU pods are not offered by this stand-in")
        if body.get("templateId"):
            return self._err(404, f"template {body['templateId']} not found")
        mounts = copy.deepcopy(body.get("mounts") or {})
        if mounts.get("persistent") and mounts.get("network"):
            return self._err(400, "mounts.persistent and mounts.network are mutually exclusive")
        if "network" in mounts and not mounts["network"]:
            mounts.pop("network")
        gpu_id, count = gpu["id"], int(gpu.get("count", 1))
        cloud = body.get("cloud", "SECURE")
        gt = self.gpu_types.get(gpu_id)
        if gt is None:
            return self._err(400, f"unknown GPU type {gpu_id!r}; see GET /v2/catalog/gpus")
        if not gt.get(cloud.lower()):
            return self._err(400, f"GPU type {gpu_id!r} is not offered in {cloud} cloud")
        if count > int(gt["maxCount"][cloud.lower()]):
            return self._err(400, f"gpu.count {count} exceeds the maximum of {gt['maxCount'][cloud.lower()]} "
                                  f"{gpu_id} GPUs per pod in {cloud} cloud")
        allowed = gpu.get("allowedCudaVersions") or []
        min_cuda = gpu.get("minCudaVersion")
        if allowed and min_cuda:
            return self._err(400, "gpu.allowedCudaVersions and gpu.minCudaVersion are mutually exclusive")
        dc_ids = list(body.get("dataCenterIds") or [])
        unknown = [d for d in dc_ids if d not in self.data_centers]
        if unknown:
            return self._err(400, f"unknown data center(s): {', '.join(unknown)}")
        candidates = dc_ids or list(self.data_centers)
        if mounts.get("network"):
            vid = mounts["network"][0]["volumeId"]
            vol = self._volumes.get(vid)
            if vol is None:
                return self._err(404, f"network volume {vid} not found")
            if cloud != "SECURE":
                return self._err(400, "network volumes are only available in Secure Cloud; set cloud to SECURE")
            if dc_ids and vol["dataCenter"] not in dc_ids:
                return self._err(400, f"network volume {vid} is in data center {vol['dataCenter']}, which is not "
                                      f"in dataCenterIds {dc_ids}; a pod must run in its volume's data center")
            candidates = [vol["dataCenter"]]
        chosen = None
        for dc in candidates:
            info = self.data_centers[dc]
            if cloud not in info["clouds"]:
                continue
            if allowed and info["cuda"] not in allowed:
                continue
            if min_cuda and _cuda_key(info["cuda"]) < _cuda_key(min_cuda):
                continue
            if self.stock.get((gpu_id, dc, cloud), 0) >= count:
                chosen = dc
                break
        if chosen is None:
            return self._err(400, NO_CAPACITY_DETAIL.format(count=count, gpu=gpu_id, cloud=cloud))
        self.stock[(gpu_id, chosen, cloud)] -= count
        pod_id = _new_id(14)
        pod = _Pod(
            id=pod_id, name=body["name"], image=body.get("image", ""), args=body.get("args", ""),
            disk=int(body.get("disk", 50)), ports=list(body.get("ports", [])), env=dict(body.get("env", {})),
            registry=body.get("registry"), mounts=mounts, gpu_id=gpu_id, gpu_count=count, cloud=cloud,
            dc=chosen, cuda=self.data_centers[chosen]["cuda"], locked=False,
            global_networking=bool(body.get("globalNetworking", False)), created_at=time.time(),
            provisioning_delay=self.provisioning_delay, starting_delay=self.starting_delay,
            ssh_user=f"{pod_id}-{secrets.token_hex(4)}",
            ip=f"203.0.113.{1 + secrets.randbelow(254)}", gn_ip=f"10.65.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}",
        )
        self._boot(pod)
        self._pods[pod_id] = pod
        self._log(pod, f"pod created in {chosen} ({count} x {gpu_id}, {cloud})")
        return 201, self._view(pod)

    def _get_pod(self, pod_id: str) -> tuple[int, Any]:
        pod = self._pods.get(pod_id)
        if pod is None or (pod.state == "TERMINATED" and self.deleted_pod_visibility == "404"):
            return self._err(404, "pod not found")
        return 200, self._view(pod)

    def _patch_pod(self, pod_id: str, body: dict) -> tuple[int, Any]:
        pod = self._live(pod_id)
        if pod is None:
            return self._err(404, "pod not found")
        if body.get("templateId"):
            return self._err(404, f"template {body['templateId']} not found")
        before = {k: copy.deepcopy(getattr(pod, k)) for k in _CONTAINER_FIELDS}
        mounts = body.get("mounts")
        if mounts:
            if mounts.get("persistent") and mounts.get("network") is not None:
                return self._err(400, "mounts.persistent and mounts.network are mutually exclusive")
            if "network" in mounts:
                if not mounts["network"]:
                    return self._err(400, "clearing mounts is not supported (mounts.network: [])")
                if not pod.mounts.get("network"):
                    return self._err(400, "mount kind is fixed at create: this pod has no network mount")
                if mounts["network"][0]["volumeId"] != pod.mounts["network"][0]["volumeId"]:
                    return self._err(400, "the volumeId of a network mount is immutable")
            if "persistent" in mounts and not pod.mounts.get("persistent"):
                return self._err(400, "mount kind is fixed at create: this pod has no persistent mount")
        for key in ("name", "image", "args", "disk", "registry", "locked"):
            if key in body:
                setattr(pod, key, body[key])
        if "ports" in body:
            pod.ports = list(body["ports"])
        if "env" in body:
            pod.env = dict(body["env"])
        if "globalNetworking" in body:
            pod.global_networking = bool(body["globalNetworking"])
        if mounts:
            pod.mounts = copy.deepcopy(mounts)
        changed = [k for k in _CONTAINER_FIELDS if getattr(pod, k) != before[k]]
        self._log(pod, f"pod updated: {', '.join(sorted(body)) or 'nothing'}")
        if changed and self.patch_restarts and self._status(pod) in ("STARTING", "RUNNING"):
            self._boot(pod, skip_provisioning=True)
            self._log(pod, f"container reset to apply {', '.join(changed)}")
        return 200, self._view(pod)

    def _delete_pod(self, pod_id: str) -> tuple[int, Any]:
        pod = self._live(pod_id)
        if pod is None:
            return self._err(404, "pod not found")
        self._terminate(pod, "pod terminated (DELETE)")
        return 204, None

    def _action(self, pod_id: str, action: str) -> tuple[int, Any]:
        pod = self._live(pod_id)
        if pod is None:
            return self._err(404, "pod not found")
        status = self._status(pod)
        if action not in ACTIONS[status]:
            return self._err(409, f"action {action!r} is not valid for a pod in status {status}; "
                                  f"valid: {', '.join(ACTIONS[status]) or 'none'}")
        if pod.locked and action in ("stop", "restart"):
            return self._err(400, "pod is locked; unlock it (PATCH locked=false) to stop or restart it")
        if action == "terminate":
            self._terminate(pod, "pod terminated (action)")
            return 204, None
        if action == "stop":
            self._stop(pod, "pod stopped (action)")
        elif action == "start":
            key = (pod.gpu_id, pod.dc, pod.cloud)
            if not pod.holds_gpus:
                if self.stock.get(key, 0) < pod.gpu_count:
                    return self._err(400, START_NO_GPU_DETAIL)
                self.stock[key] -= pod.gpu_count
                pod.holds_gpus = True
            self._boot(pod)
            self._log(pod, "pod started (action)")
        elif action == "restart":
            self._boot(pod, skip_provisioning=True)
            self._log(pod, "container restarted (action)")
        return 200, self._view(pod)

    def _logs(self, pod_id: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        pod = self._live(pod_id)
        if pod is None:
            return self._err(404, "pod not found")
        source = (query.get("source") or [None])[0]
        tail = int((query.get("tail") or ["100"])[0])
        since = (query.get("since") or [None])[0]
        lines = [(i, l) for i, l in enumerate(pod.logs) if source in (None, l[1])]
        if since:
            lines = [(i, l) for i, l in lines if l[0] >= since]
        else:
            lines = lines[-tail:] if tail else []
        out = []
        for i, (ts, src, line) in lines:
            out.append(f"id: {ts}/{i + 1:012d}\ndata: " + json.dumps({"ts": ts, "source": src, "line": line}) + "\n\n")
        return 200, Reply(200, "".join(out).encode(), "text/event-stream",
                          {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # ================================================================== network volumes
    def _create_volume(self, body: dict) -> tuple[int, Any]:
        dc = body["dataCenter"]
        info = self.data_centers.get(dc)
        if info is None:
            return self._err(400, f"unknown data center {dc!r}")
        if "SECURE" not in info["clouds"]:
            return self._err(400, f"network volumes can only be created in Secure Cloud data centers; {dc} is not one")
        vol = {"id": _new_id(10), "name": body["name"], "size": int(body["size"]), "dataCenter": dc,
               "type": body.get("type") or info.get("volumeType", "STANDARD")}
        self._volumes[vol["id"]] = vol
        return 201, copy.deepcopy(vol)

    def _get_volume(self, vid: str) -> tuple[int, Any]:
        vol = self._volumes.get(vid)
        return (200, copy.deepcopy(vol)) if vol else self._err(404, "network volume not found")

    def _patch_volume(self, vid: str, body: dict) -> tuple[int, Any]:
        vol = self._volumes.get(vid)
        if vol is None:
            return self._err(404, "network volume not found")
        if "size" in body and int(body["size"]) < vol["size"]:
            return self._err(400, f"network volume size can only grow (current {vol['size']} GB, "
                                  f"requested {body['size']} GB)")
        vol.update({k: body[k] for k in ("name", "size") if k in body})
        return 200, copy.deepcopy(vol)

    def _delete_volume(self, vid: str) -> tuple[int, Any]:
        vol = self._volumes.get(vid)
        if vol is None:
            return self._err(404, "network volume not found")
        users = [p.id for p in self._pods.values() if p.state != "TERMINATED"
                 and any(m.get("volumeId") == vid for m in p.mounts.get("network", []))]
        if users:
            return self._err(400, f"network volume {vid} is attached to pod(s) {', '.join(users)}; "
                                  "terminate them first")
        del self._volumes[vid]
        return 204, None

    # ================================================================== catalog
    def _catalog(self, gpu_id: Optional[str], query: dict[str, list[str]]) -> tuple[int, Any]:
        def csv(name: str) -> list[str]:
            return [x for v in query.get(name, []) for x in v.split(",") if x]

        include = csv("include")
        products = csv("product")
        scoped = [n for n in ("count", "cloud", "countryCodes", "cudaVersions", "minCudaVersion") if n in query]
        if include and not products:
            return self._err(400, "product is required with include=AVAILABILITY")
        if products and not include:
            return self._err(400, "product is valid only with include=AVAILABILITY")
        if scoped and not include:
            return self._err(400, f"{', '.join(scoped)} valid only with include=AVAILABILITY")
        if "cudaVersions" in query and "minCudaVersion" in query:
            return self._err(400, "cudaVersions and minCudaVersion are mutually exclusive")
        count = int((query.get("count") or ["1"])[0])
        cloud = (query.get("cloud") or ["SECURE"])[0]
        countries = set(csv("countryCodes"))
        cuda_exact = set(csv("cudaVersions"))
        min_cuda = (query.get("minCudaVersion") or [None])[0]

        def cuda_ok(v: str) -> bool:
            if cuda_exact:
                return v in cuda_exact
            if min_cuda:
                if "." in min_cuda:
                    return _cuda_key(v) >= _cuda_key(min_cuda)
                return _cuda_key(v)[0] >= int(min_cuda)
            return True

        def entry(gid: str) -> Optional[dict]:
            gt = self.gpu_types[gid]
            out = {"id": gid, **copy.deepcopy(gt)}
            if not include:
                return out
            dcs, cudas = [], {}
            best = 0
            level_rank = ["NONE", "LOW", "MEDIUM", "HIGH"]
            for dc, info in self.data_centers.items():
                if cloud not in info["clouds"] or (countries and info["country"] not in countries):
                    continue
                if ("POD" in products or "CLUSTER" in products) and (gid, dc, cloud) not in self.stock:
                    continue
                if not cuda_ok(info["cuda"]):
                    continue
                free = self.stock.get((gid, dc, cloud), 0)
                level = 0 if free < count else 3 if free >= 4 * count else 2 if free >= 2 * count else 1
                cudas[info["cuda"]] = cudas.get(info["cuda"], False) or level > 0
                if level > 0:
                    dcs.append({"id": dc, "name": info["name"], "availability": level_rank[level]})
                best = max(best, level)
            if countries and not dcs and gpu_id is None:
                return None
            out["availability"] = level_rank[best]
            if dcs:
                out["dataCenters"] = dcs
            if cudas and gt.get("manufacturer") == "NVIDIA":
                out["cudaVersions"] = [{"version": v, "available": a}
                                       for v, a in sorted(cudas.items(), key=lambda kv: _cuda_key(kv[0]), reverse=True)]
            return out

        if gpu_id is not None:
            if gpu_id not in self.gpu_types:
                return self._err(404, f"GPU type {gpu_id!r} not found")
            return 200, entry(gpu_id)
        return 200, {"gpus": [e for e in (entry(g) for g in self.gpu_types) if e is not None]}
