"""The official `kubernetes` client, as the dynamic providers use it: server-side apply,
dry-run, reads, deletes that wait for finalizers, and rollout waits.

Everything here runs in the dynamic-provider process that the Pulumi engine starts, and in
tests. Errors become :class:`KubeError` with a message a user can act on (which server, which
object, what the API server said), with secret values scrubbed.
"""
from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from infra.common.http import RetryPolicy, poll
from infra.common.secrets import redact

FIELD_MANAGER = "glmserve"
MANAGED_BY = "app.kubernetes.io/managed-by"
STACK_LABEL = "glmserve.io/stack"
# The stack instance's identity (infra/deploy/identity.py) on every object glmserve creates:
# only objects that carry it are adopted, changed or deleted.
OWNER_LABEL = "glmserve.dev/owner"
INSTANCE_LABEL = "app.kubernetes.io/instance"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"   # pulumi.runtime.rpc.UNKNOWN

# Fields the API server refuses to change in place; a change replaces the object. The
# server's own dry-run is asked first when it can be reached (it knows its version's rules);
# this table is the fallback for an unreachable server or unknown values in preview.
IMMUTABLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "Deployment": (("spec", "selector"),),
    "StatefulSet": (("spec", "selector"), ("spec", "serviceName"), ("spec", "volumeClaimTemplates"),
                    ("spec", "podManagementPolicy")),
    "PersistentVolumeClaim": (("spec", "storageClassName"), ("spec", "accessModes"), ("spec", "volumeMode"),
                              ("spec", "volumeName"), ("spec", "selector")),
    "Secret": (("type",),),
    "Service": (("spec", "clusterIP"),),
}


class KubeError(Exception):
    pass


# --------------------------------------------------------------------------- connecting

@dataclass
class Cluster:
    api: Any          # kubernetes.client.ApiClient
    dyn: Any          # kubernetes.dynamic.DynamicClient or None until first use
    host: str         # the API server's URL
    context: str      # the kubeconfig context it came from (resolved: never "whatever is current")

    def dynamic(self):
        if self.dyn is None:
            from kubernetes.dynamic import DynamicClient

            self.dyn = _retry(lambda: DynamicClient(self.api), self.host, "discovering the API")
        return self.dyn


_clusters: dict[tuple, Cluster] = {}
_lock = threading.Lock()


def kubeconfig_path(kubeconfig: Optional[str]) -> Optional[str]:
    """The kubeconfig file the client would read, or None for in-cluster credentials."""
    if kubeconfig and Path(kubeconfig).expanduser().exists():
        return str(Path(kubeconfig).expanduser())
    if kubeconfig and not (os.environ.get("KUBECONFIG") or (Path.home() / ".kube" / "config").exists()):
        return str(Path(kubeconfig).expanduser())      # let loading say that it is missing
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return str(default)
    return None


def connect(cluster: dict[str, Any] | None) -> Cluster:
    """A client for the cluster named by ``{"kubeconfig": path, "context": name}`` (either
    may be empty: KUBECONFIG, ~/.kube/config, then in-cluster credentials)."""
    cluster = cluster or {}
    path = kubeconfig_path(cluster.get("kubeconfig") or None)
    context = cluster.get("context") or None
    key = (path, context)
    with _lock:
        if key in _clusters:
            return _clusters[key]
        from kubernetes import client, config

        cfg = client.Configuration()
        try:
            if path is not None:
                if context is None:
                    context = config.list_kube_config_contexts(config_file=path)[1]["name"]
                config.load_kube_config(config_file=path, context=context, client_configuration=cfg,
                                        persist_config=False)
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=cfg)
                context = IN_CLUSTER
            else:
                raise KubeError("no Kubernetes credentials: set kubernetes.kubeconfig, KUBECONFIG, or create "
                                "~/.kube/config (or run inside a cluster)")
        except KubeError:
            raise
        except Exception as e:  # noqa: BLE001 - config errors come in many types
            raise KubeError(f"cannot load the kubeconfig {path or '(in-cluster)'}"
                            f"{' context ' + context if context else ''}: {e}") from None
        # glmserve retries itself (below), with messages; the client should fail fast.
        cfg.retries = 0
        api = client.ApiClient(configuration=cfg)
        _bound_every_request(api)
        c = Cluster(api=api, dyn=None, host=cfg.host, context=context or "")
        _clusters[key] = c
        return c


IN_CLUSTER = "(in-cluster)"


def request_timeout() -> tuple[float, float]:
    """(connect, read) seconds for one API request: the shared policy's timeout
    (GLMSERVE_HTTP_TIMEOUT), connect at most 15 s."""
    t = RetryPolicy.from_env().timeout
    return min(t, 15.0), t


def _bound_every_request(api: Any) -> None:
    """Give every request of this client a timeout. The official client sends none unless
    each call passes ``_request_timeout``, and the dynamic client's discovery never does:
    a hung API server would hang `up` and `destroy` for ever. Its REST layer is the one place
    every call (discovery included) goes through."""
    rest = api.rest_client
    send = rest.request

    def request(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return send(*args, _request_timeout=_request_timeout or request_timeout(), **kwargs)

    rest.request = request


def _is_connection_error(e: BaseException) -> bool:
    import urllib3

    return isinstance(e, (urllib3.exceptions.HTTPError, ConnectionError, OSError)) and not _api_exception(e)


def _api_exception(e: BaseException) -> bool:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import DynamicApiError

    return isinstance(e, (ApiException, DynamicApiError))


def _transient(e: BaseException) -> bool:
    status = _status(e)
    return status in (429, 500, 502, 503, 504) or (status is None and _is_connection_error(e))


def _retry(fn: Callable[[], Any], host: str, action: str, attempts: int = 4) -> Any:
    """Run ``fn`` under the shared retry policy (infra/http.py) for connection failures and
    429/5xx; an unreachable server is explained in the user's terms."""
    policy = RetryPolicy.from_env(attempts=attempts, initial_wait=0.5, max_wait=4.0, deadline=60.0)
    try:
        return policy.call(fn, retry_if=_transient)
    except Exception as e:  # noqa: BLE001
        if _transient(e) and _status(e) is None:
            raise KubeError(f"{action}: cannot reach the Kubernetes API server at {host} ({_reason(e)}); "
                            "check that the cluster is up and that the kubeconfig/context point at it. "
                            "Objects already applied stay in state; run up again once the server is back.") from None
        raise


def _reason(e: BaseException) -> str:
    text = str(getattr(e, "reason", None) or e)
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host",
                   "Connection reset", "certificate verify failed"):
        if marker in text:
            return marker
    return text.splitlines()[0][:200]


def _status(e: BaseException) -> Optional[int]:
    s = getattr(e, "status", None)
    return int(s) if isinstance(s, int) else None


def _body(e: BaseException) -> dict[str, Any]:
    body = getattr(e, "body", None)
    if body is None:
        return {}
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        return json.loads(body) if isinstance(body, str) else dict(body)
    except (ValueError, TypeError):
        return {"message": str(body)}


def owner_of(live: dict[str, Any]) -> Optional[str]:
    """The stack instance identity a live object carries, or None."""
    return ((live.get("metadata") or {}).get("labels") or {}).get(OWNER_LABEL)


def describe(obj: dict[str, Any]) -> str:
    md = obj.get("metadata") or {}
    ns = f"{md['namespace']}/" if md.get("namespace") else ""
    return f"{obj.get('kind')} {ns}{md.get('name')}"


def explain(e: BaseException, action: str) -> KubeError:
    """A KubeError that says what the API server answered."""
    if isinstance(e, KubeError):
        return e
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    if isinstance(e, ResourceNotFoundError):
        return KubeError(f"{action}: the cluster does not serve this API ({e}); install its CRD first "
                         "(LeaderWorkerSet: https://lws.sigs.k8s.io, Gateway API: https://gateway-api.sigs.k8s.io)")
    status = _status(e)
    if status is None:
        return KubeError(redact(f"{action}: {type(e).__name__}: {_reason(e)}"))
    body = _body(e)
    msg = body.get("message") or getattr(e, "reason", "") or str(e)
    hint = {401: " (the kubeconfig's credentials were rejected)",
            403: " (the kubeconfig's user may not do this; check RBAC)",
            404: " (not found)",
            409: " (conflict)"}.get(status, "")
    return KubeError(redact(f"{action}: the API server answered HTTP {status} {body.get('reason', '')}: {msg}{hint}"))


# --------------------------------------------------------------------------- objects

def resource_for(c: Cluster, obj: dict[str, Any]):
    dyn = c.dynamic()

    def get():
        try:
            return dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except Exception as e:  # noqa: BLE001
            from kubernetes.dynamic.exceptions import ResourceNotFoundError

            if isinstance(e, ResourceNotFoundError):
                # A CRD installed after discovery was cached: look again once.
                dyn.resources.invalidate_cache()
                return dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            raise
    try:
        return _retry(get, c.host, f"looking up the API of {obj['apiVersion']} {obj['kind']}")
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"applying {describe(obj)}") from None


def get(c: Cluster, obj: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The live object, or None if it does not exist."""
    res = resource_for(c, obj)
    md = obj["metadata"]

    def call():
        try:
            return res.get(name=md["name"], namespace=md.get("namespace")).to_dict()
        except Exception as e:  # noqa: BLE001
            if _status(e) == 404:
                return None
            raise
    try:
        return _retry(call, c.host, f"reading {describe(obj)}")
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"reading {describe(obj)}") from None


def apply(c: Cluster, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    """Server-side apply (field manager glmserve, conflicts forced: glmserve owns these
    fields). Returns the object the server stored (or would store, with ``dry_run``)."""
    res = resource_for(c, obj)
    md = obj["metadata"]
    kwargs = {"field_manager": FIELD_MANAGER, "force_conflicts": True}
    if dry_run:
        kwargs["dry_run"] = "All"
    action = ("dry-run applying " if dry_run else "applying ") + describe(obj)
    try:
        out = _retry(lambda: res.server_side_apply(body=obj, name=md["name"], namespace=md.get("namespace"),
                                                   **kwargs), c.host, action)
    except Exception as e:  # noqa: BLE001
        raise explain(e, action) from None
    return out.to_dict()


def immutable_rejection(e: BaseException) -> Optional[str]:
    """The API server's message when a change touches a field it will not change in place."""
    if _status(e) != 422:
        return None
    body = _body(e)
    texts = [body.get("message") or ""] + [c.get("message", "") for c in (body.get("details") or {}).get("causes", [])]
    for t in texts:
        low = t.lower()
        if "immutable" in low or ("forbidden" in low and "updates to" in low):
            return t
    return None


def dry_run_change(c: Cluster, obj: dict[str, Any]) -> tuple[str, str]:
    """Ask the API server whether applying ``obj`` is an in-place update.

    Returns ("update", "") or ("replace", why). Raises KubeError for a change the server
    rejects for another reason, and for an unreachable server."""
    res = resource_for(c, obj)
    md = obj["metadata"]
    try:
        _retry(lambda: res.server_side_apply(body=obj, name=md["name"], namespace=md.get("namespace"),
                                             field_manager=FIELD_MANAGER, force_conflicts=True, dry_run="All"),
               c.host, f"dry-run applying {describe(obj)}", attempts=2)
    except Exception as e:  # noqa: BLE001
        why = immutable_rejection(e)
        if why:
            return "replace", why
        raise explain(e, f"dry-run applying {describe(obj)}") from None
    return "update", ""


def delete(c: Cluster, obj: dict[str, Any], timeout: float, log: Callable[[str], None],
           uid: Optional[str] = None) -> None:
    """Delete (foreground: dependents first) and wait until the object is gone, finalizers
    included. A missing object is already deleted. With ``uid`` the API server deletes only
    that very object (a precondition), never one re-created under the same name since."""
    res = resource_for(c, obj)
    md = obj["metadata"]
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}
    if uid:
        body["preconditions"] = {"uid": uid}

    def call():
        try:
            res.delete(name=md["name"], namespace=md.get("namespace"), body=body)
        except Exception as e:  # noqa: BLE001
            # 404: already gone; 409 on a uid precondition: that object is gone, another has the name.
            if _status(e) == 404 or (uid and _status(e) == 409):
                return
            raise
    try:
        _retry(call, c.host, f"deleting {describe(obj)}")
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"deleting {describe(obj)}") from None
    said: list[Optional[str]] = [None]

    def report(live: Optional[dict[str, Any]], _elapsed: float) -> None:
        fin = ((live or {}).get("metadata") or {}).get("finalizers") or []
        msg = f"waiting for {describe(obj)} to go" + (f" (finalizers: {', '.join(fin)})" if fin else "")
        if live is not None and msg != said[0]:
            log(msg)
            said[0] = msg

    def still_there() -> Optional[dict[str, Any]]:
        live = get(c, obj)
        same = live is not None and (not uid or (live.get("metadata") or {}).get("uid") == uid)
        return live if same else None

    live, gone = poll(still_there, until=lambda v: v is None, interval=1.0, timeout=timeout, on_value=report)
    if not gone:
        fin = ((live or {}).get("metadata") or {}).get("finalizers") or []
        raise KubeError(f"deleting {describe(obj)}: still present after {timeout:.0f} s"
                        + (f", waiting for finalizers {', '.join(fin)}" if fin else "")
                        + ". Is kube-controller-manager running? Check `kubectl describe` for what holds it.")


def list_objects(c: Cluster, api_version: str, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
    res = resource_for(c, {"apiVersion": api_version, "kind": kind, "metadata": {"name": "-"}})
    try:
        out = _retry(lambda: res.get(namespace=namespace, label_selector=selector), c.host, f"listing {kind}")
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"listing {kind} in {namespace}") from None
    return [i.to_dict() if hasattr(i, "to_dict") else i for i in (out.to_dict().get("items") or [])]


# --------------------------------------------------------------------------- secrets

def with_secret_data(obj: dict[str, Any], values: dict[str, str] | None) -> dict[str, Any]:
    """The Secret to send: values as base64 `data` (not stringData, which server-side apply
    does not track as a field of its own)."""
    if obj.get("kind") != "Secret":
        return obj
    out = {k: v for k, v in obj.items() if k != "stringData"}
    out["data"] = {k: base64.b64encode(str(v).encode()).decode() for k, v in (values or {}).items()}
    return out


def secret_values(live: dict[str, Any], keys) -> dict[str, str]:
    data = live.get("data") or {}
    return {k: base64.b64decode(data[k]).decode("utf-8", "replace") for k in keys if k in data}


# --------------------------------------------------------------------------- shapes

def normalize(v: Any) -> Any:
    """Pulumi carries numbers as doubles: turn 8.0 back into 8 so the API server gets ints."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {k: normalize(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normalize(x) for x in v]
    return v


def has_unknowns(v: Any) -> bool:
    if v == UNKNOWN:
        return True
    if isinstance(v, dict):
        return any(has_unknowns(x) for x in v.values())
    if isinstance(v, list):
        return any(has_unknowns(x) for x in v)
    return False


def project(live: Any, shape: Any) -> Any:
    """The part of a live object that glmserve manages: the keys of ``shape`` (the applied
    manifest) read from ``live``, so that server defaults are not drift."""
    if isinstance(shape, dict):
        if not isinstance(live, dict):
            return live
        return {k: project(live[k], v) for k, v in shape.items() if k in live}
    if isinstance(shape, list):
        if not isinstance(live, list):
            return live
        return [project(lv, shape[i]) if i < len(shape) else lv for i, lv in enumerate(live)]
    return live


def at(obj: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def identity(obj: dict[str, Any]) -> tuple:
    md = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return group, obj.get("kind"), md.get("namespace"), md.get("name")


def static_immutable(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [".".join(p) for p in IMMUTABLE.get(str(new.get("kind")), ()) if at(old, p) != at(new, p)]


# --------------------------------------------------------------------------- rollouts
