"""Python dynamic resources that apply Kubernetes objects with the official client.

* ``KubeObject`` (one Pulumi type per kind, ``pulumi-python:dynamic/kubernetes:<Kind>``):
  create and update are server-side applies (field manager ``glmserve``); diff compares the
  manifest and asks the API server for a dry-run to decide update or replace (a field the
  server will not change in place, e.g. a StatefulSet's volumeClaimTemplates, means replace);
  read (refresh) reads the live object back in the manifest's shape; delete is a foreground
  delete that waits until the object and its finalizers are gone.
* ``Rollout``: waits until a workload's pods are updated and ready, logging progress, and
  fails with the pods' reasons (e.g. the scheduler's "Insufficient nvidia.com/gpu") when
  ``timeouts.startupSeconds`` runs out. It is a resource of its own, like the readiness gate:
  a workload that does not become ready is still in state, so `destroy` removes it. Refresh
  reads whether the pods are ready now; when not, the next `up` waits for them again.

Secret values travel only in ``secretData``, a Pulumi secret input and output (encrypted in
state), and reach the API server as the Secret's base64 ``data``.
"""
from __future__ import annotations

import types
from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from infra.common.secrets import redact, register

from providers.kubernetes import client as k


def _log(msg: str) -> None:
    pulumi.log.info(redact(msg))


def object_id(obj: dict[str, Any]) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{obj['kind']}/{md['name']}" if ns else f"{obj['kind']}/{md['name']}"


def _fail(e: BaseException, action: str) -> Exception:
    err = k.explain(e, action)
    return Exception(redact(str(err)))


class KubeObjectProvider(ResourceProvider):
    def _secrets(self, props: dict[str, Any]) -> dict[str, str]:
        values = dict(props.get("secretData") or {})
        for v in values.values():
            register(str(v))
        return values

    def _outs(self, props: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
        md = live.get("metadata") or {}
        # No resourceVersion: it moves with every status write, and refresh would see churn.
        return {**props, "manifest": k.normalize(props["manifest"]), "uid": md.get("uid"),
                "generation": md.get("generation") or 0}

    def _apply(self, props: dict[str, Any], creating: bool) -> dict[str, Any]:
        obj = k.normalize(props["manifest"])
        values = self._secrets(props)
        try:
            c = k.connect(props.get("cluster"))
            if creating:
                live = k.get(c, obj)
                if live is not None:
                    self._check_ownership(obj, live)
                    _log(f"{k.describe(obj)} exists with this stack's labels (an interrupted earlier run): applying over it")
            out = k.apply(c, k.with_secret_data(obj, values))
        except Exception as e:  # noqa: BLE001
            raise _fail(e, f"applying {k.describe(obj)}") from None
        return self._outs(props, out)

    @staticmethod
    def _check_ownership(obj: dict[str, Any], live: dict[str, Any]) -> None:
        want = ((obj.get("metadata") or {}).get("labels") or {}).get(k.STACK_LABEL)
        have = ((live.get("metadata") or {}).get("labels") or {}).get(k.STACK_LABEL)
        if want != have:
            owner = f"glmserve stack {have!r}" if have else "something other than glmserve"
            raise k.KubeError(
                f"{k.describe(obj)} already exists and belongs to {owner}; glmserve will not take it over. "
                "Choose another kubernetes.name or kubernetes.namespace (for a namespace you manage yourself, set "
                "kubernetes.createNamespace false), or delete the object.")

    def create(self, props):
        outs = self._apply(props, creating=True)
        return CreateResult(id_=object_id(outs["manifest"]), outs=outs)

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self._apply(news, creating=False))

    def diff(self, _id, olds, news):
        old = k.normalize(olds.get("manifest") or {})
        new = k.normalize(news.get("manifest") or {})
        if k.identity(old) != k.identity(new):
            same_name = k.identity(old)[1:] == k.identity(new)[1:]
            return DiffResult(changes=True, replaces=["manifest"], delete_before_replace=same_name)
        secrets_changed = (olds.get("secretData") or {}) != (news.get("secretData") or {})
        if old == new and not secrets_changed:
            return DiffResult(changes=False)
        if old == new:
            return DiffResult(changes=True, replaces=[])
        if k.has_unknowns(new):
            immutable = k.static_immutable(old, new)
            return DiffResult(changes=True, replaces=["manifest"] if immutable else [],
                              delete_before_replace=bool(immutable))
        try:
            c = k.connect(news.get("cluster"))
            verdict, why = k.dry_run_change(c, k.with_secret_data(new, self._secrets(news)))
        except k.KubeError as e:
            text = str(e)
            if "cannot reach" not in text and "no Kubernetes credentials" not in text and "kubeconfig" not in text:
                raise Exception(redact(text)) from None
            # Offline preview: the table of fields Kubernetes documents as immutable.
            immutable = k.static_immutable(old, new)
            pulumi.log.warn(redact(f"{k.describe(new)}: no server dry-run ({text}); "
                                   f"deciding update or replace from glmserve's table of immutable fields"))
            return DiffResult(changes=True, replaces=["manifest"] if immutable else [],
                              delete_before_replace=bool(immutable))
        if verdict == "replace":
            _log(f"{k.describe(new)} must be replaced: the API server will not change it in place ({why})")
            return DiffResult(changes=True, replaces=["manifest"], delete_before_replace=True)
        return DiffResult(changes=True, replaces=[])

    def read(self, id_, props):
        obj = k.normalize(props["manifest"])
        try:
            c = k.connect(props.get("cluster"))
            live = k.get(c, obj)
        except Exception as e:  # noqa: BLE001
            raise _fail(e, f"reading {k.describe(obj)}") from None
        if live is None:
            return ReadResult(id_="", outs={})      # deleted out of band: up creates it again
        outs = self._outs(props, live)
        outs["manifest"] = k.project(live, obj)
        if obj.get("kind") == "Secret":
            # Values stay outputs only (secret); inputs would keep them in plain text.
            outs["secretData"] = k.secret_values(live, list((props.get("secretData") or {}).keys()))
            return ReadResult(id_=id_, outs=outs)
        # The live object as the inputs too, so that preview shows drift field by field.
        inputs = {"manifest": outs["manifest"], "cluster": props.get("cluster"),
                  "deleteTimeoutSeconds": props.get("deleteTimeoutSeconds"), "uid": None, "generation": None}
        return ReadResult(id_=id_, outs=outs, inputs=inputs)

    def delete(self, _id, props):
        obj = k.normalize(props["manifest"])
        try:
            c = k.connect(props.get("cluster"))
            k.delete(c, obj, timeout=float(props.get("deleteTimeoutSeconds") or 600), log=_log)
        except Exception as e:  # noqa: BLE001
            raise _fail(e, f"deleting {k.describe(obj)}") from None


class _KubeObjectBase(Resource):
    uid: pulumi.Output[str]
    generation: pulumi.Output[float]
    manifest: pulumi.Output[dict]

    def __init__(self, name: str, *, manifest: dict[str, Any], cluster: dict[str, str],
                 secret_data: Any = None, delete_timeout_seconds: int = 600,
                 opts: Optional[pulumi.ResourceOptions] = None):
        props: dict[str, Any] = {"manifest": manifest, "cluster": cluster,
                                 "deleteTimeoutSeconds": delete_timeout_seconds, "uid": None, "generation": None}
        if secret_data is not None:
            props["secretData"] = secret_data
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["secretData"]))
        # `cluster` (kubeconfig path, context) says where the object lives; diff ignores it, so a
        # kubeconfig at another path on another machine is not a change to the object.
        super().__init__(KubeObjectProvider(), name, props, opts)


_TYPES: dict[str, type] = {}


def KubeObject(kind: str) -> type:
    """The resource class for one kind: type token pulumi-python:dynamic/kubernetes:<Kind>."""
    if kind not in _TYPES:
        _TYPES[kind] = types.new_class(f"Kube{kind}", (_KubeObjectBase,), {"module": "kubernetes", "name": kind})
    return _TYPES[kind]


# --------------------------------------------------------------------------- rollout wait

class RolloutProvider(ResourceProvider):
    def _wait(self, props: dict[str, Any]) -> dict[str, Any]:
        ref = k.normalize(props["workload"])
        try:
            c = k.connect(props.get("cluster"))
            live = k.wait_rollout(c, ref, props["selector"], timeout=float(props["timeoutSeconds"]),
                                  poll_seconds=float(props.get("pollSeconds") or 5), log=_log)
        except Exception as e:  # noqa: BLE001
            err = k.explain(e, f"waiting for {k.describe(ref)}")
            raise Exception(redact(f"{err}. The workload is kept in state: fix it and run up again, "
                                   f"or destroy it.")) from None
        _, progress = k.rollout_state(live)
        return {**props, "ready": True, "status": progress}

    def create(self, props):
        outs = self._wait(props)
        return CreateResult(id_=f"rollout-{object_id(props['workload'])}", outs=outs)

    def diff(self, _id, olds, news):
        keys = ("workload", "generation", "uid", "selector")
        # ready False: a refresh found the pods not ready (e.g. a LeaderWorkerSet group being
        # recreated after a pod failed): up waits for them again.
        changed = any(olds.get(x) != news.get(x) for x in keys) or olds.get("ready") is False
        return DiffResult(changes=changed, replaces=[])

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self._wait(news))

    def read(self, id_, props):
        """Refresh: the workload's pods as they are now (not waiting)."""
        ref = k.normalize(props["workload"])
        try:
            c = k.connect(props.get("cluster"))
            live = k.get(c, ref)
            done, progress = k.workload_state(c, live, props["selector"]) if live else (False, "missing")
        except Exception as e:  # noqa: BLE001
            raise _fail(e, f"reading {k.describe(ref)}") from None
        if done:    # unchanged: the status of the last wait stands
            return ReadResult(id_=id_, outs=props)
        _log(f"{k.describe(ref)} is not ready: {progress}")
        return ReadResult(id_=id_, outs={**props, "ready": False, "status": progress})

    def delete(self, _id, _props):
        return None


class Rollout(Resource, module="kubernetes", name="Rollout"):
    ready: pulumi.Output[bool]
    status: pulumi.Output[str]

    def __init__(self, name: str, *, workload: dict[str, Any], selector: str, cluster: dict[str, str],
                 generation, uid, timeout_seconds: float, poll_seconds: float = 5,
                 opts: Optional[pulumi.ResourceOptions] = None):
        props = {"workload": workload, "selector": selector, "cluster": cluster, "generation": generation,
                 "uid": uid, "timeoutSeconds": timeout_seconds, "pollSeconds": poll_seconds,
                 "ready": None, "status": None}
        super().__init__(RolloutProvider(), name, props, opts)
