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
from providers.kubernetes import rollout


def _log(msg: str) -> None:
    pulumi.log.info(redact(msg))


def object_id(obj: dict[str, Any]) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{obj['kind']}/{md['name']}" if ns else f"{obj['kind']}/{md['name']}"


def _fail(e: BaseException, action: str) -> Exception:
    err = k.explain(e, action)
    return Exception(redact(str(err)))


def _terminating(live: dict[str, Any]) -> bool:
    return bool((live.get("metadata") or {}).get("deletionTimestamp"))


def _stack_label(obj: dict[str, Any]) -> Optional[str]:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(k.STACK_LABEL)


class KubeObjectProvider(ResourceProvider):
    """One object, owned by one stack instance in one cluster.

    Ownership: the object carries the stack instance's identity (label ``glmserve.dev/owner``,
    input ``owner``); an object of the same name with another identity (or none) is never
    adopted, changed or deleted. Place: ``where`` (output) is the API server and kubeconfig
    context the object was created through; refresh, update and delete connect through that
    context and refuse when it now leads to another server, so a wrong kubeconfig never looks
    like "deleted out of band"."""

    def _secrets(self, props: dict[str, Any]) -> dict[str, str]:
        values = dict(props.get("secretData") or {})
        for v in values.values():
            register(str(v))
        return values

    def _outs(self, props: dict[str, Any], live: dict[str, Any], c: k.Cluster) -> dict[str, Any]:
        md = live.get("metadata") or {}
        # No resourceVersion: it moves with every status write, and refresh would see churn.
        return {**props, "manifest": k.normalize(props["manifest"]), "uid": md.get("uid"),
                "generation": md.get("generation") or 0, "where": {"server": c.host, "context": c.context}}

    @staticmethod
    def _connect(obj: dict[str, Any], props: dict[str, Any]) -> k.Cluster:
        where = props.get("where") or {}
        cluster = dict(props.get("cluster") or {})
        if where.get("context") and where["context"] != k.IN_CLUSTER:
            cluster["context"] = where["context"]
        c = k.connect(cluster)
        server = where.get("server") or cluster.get("server")
        if server and c.host != server:
            raise k.KubeError(
                f"{k.describe(obj)} lives in the cluster at {server} (kubeconfig context "
                f"{where.get('context') or cluster.get('context') or '(current)'}), but that context now leads to "
                f"{c.host}. glmserve does not read, change or delete objects through another cluster: point "
                f"kubernetes.kubeconfig/context back at {server}; if that cluster is gone for good, remove the "
                "stack's resources from state (`pulumi state delete`).")
        return c

    @staticmethod
    def _check_owner(obj: dict[str, Any], live: dict[str, Any], owner: Optional[str]) -> None:
        have = k.owner_of(live)
        if owner is None:
            # State from before owner labels: the stack label is all there is to go by.
            if _stack_label(live) == _stack_label(obj):
                return
        elif have == owner:
            return
        whose = (f"another glmserve stack instance (owner {have})" if have
                 else f"glmserve stack {_stack_label(live)!r} without an owner label" if _stack_label(live)
                 else "something other than glmserve")
        raise k.KubeError(
            f"{k.describe(obj)} already exists and belongs to {whose}; glmserve will not take it over, change or "
            f"delete it. Choose another kubernetes.name or kubernetes.namespace (for a namespace you manage "
            f"yourself, set kubernetes.createNamespace false), or remove that object if it is yours"
            + (f" (or label it {k.OWNER_LABEL}={owner} to hand it to this stack)" if owner else "") + ".")

    @staticmethod
    def _labelled(obj: dict[str, Any], owner: Optional[str]) -> dict[str, Any]:
        if not owner:
            return obj
        md = dict(obj.get("metadata") or {})
        md["labels"] = {**(md.get("labels") or {}), k.OWNER_LABEL: owner}
        return {**obj, "metadata": md}

    def _apply(self, props: dict[str, Any], known_owner: Optional[str]) -> dict[str, Any]:
        """Apply with the owner label. A live object of that name must carry ``known_owner``
        (the one in state; on create, this stack instance's)."""
        obj = k.normalize(props["manifest"])
        owner = props.get("owner") or None
        values = self._secrets(props)
        try:
            c = self._connect(obj, props)
            live = k.get(c, obj)
            if live is not None:
                # On create: an interrupted earlier run of this stack instance, or someone else's.
                self._check_owner(obj, live, known_owner)
                if _terminating(live):
                    # Its deletion (a destroy that was interrupted) finishes first: applying now
                    # would only change an object that is about to go.
                    _log(f"{k.describe(obj)} is still being deleted: waiting for it to go before applying")
                    k.delete(c, obj, timeout=float(props.get("deleteTimeoutSeconds") or 600), log=_log,
                             uid=(live.get("metadata") or {}).get("uid"))
                    live = None
            out = k.apply(c, k.with_secret_data(self._labelled(obj, owner), values))
        except Exception as e:  # noqa: BLE001
            raise _fail(e, f"applying {k.describe(obj)}") from None
        if live is not None and not props.get("where"):
            _log(f"{k.describe(obj)} exists with this stack instance's owner label (an interrupted earlier run): "
                 "applied over it")
        return self._outs(props, out, c)

    def create(self, props):
        outs = self._apply({**props, "where": None}, props.get("owner") or None)
        return CreateResult(id_=object_id(outs["manifest"]), outs=outs)

    def update(self, _id, olds, news):
        # State from before owner labels (no owner in olds): the stack label decides, once.
        return UpdateResult(outs=self._apply({**news, "where": olds.get("where")}, olds.get("owner") or None))

    def diff(self, _id, olds, news):
        old = k.normalize(olds.get("manifest") or {})
        new = k.normalize(news.get("manifest") or {})
        where, target = olds.get("where") or {}, (news.get("cluster") or {}).get("server")
        if where.get("server") and target and not k.has_unknowns(target) and target != where["server"]:
            raise Exception(redact(
                f"{k.describe(old)} lives in the cluster at {where['server']} (context {where.get('context')}); "
                f"the stack now points at {target}. glmserve does not move a node between clusters in place: "
                f"set kubernetes.context: {where.get('context')} (and kubernetes.kubeconfig) back, destroy, then "
                "change the cluster."))
        if k.identity(old) != k.identity(new):
            same_name = k.identity(old)[1:] == k.identity(new)[1:]
            return DiffResult(changes=True, replaces=["manifest"], delete_before_replace=same_name)
        secrets_changed = (olds.get("secretData") or {}) != (news.get("secretData") or {})
        owner_changed = olds.get("owner") != news.get("owner")
        if old == new and not secrets_changed and not owner_changed:
            return DiffResult(changes=False)
        if old == new:
            return DiffResult(changes=True, replaces=[])
        if k.has_unknowns(new):
            immutable = k.static_immutable(old, new)
            return DiffResult(changes=True, replaces=["manifest"] if immutable else [],
                              delete_before_replace=bool(immutable))
        try:
            c = self._connect(new, {**news, "where": where or None})
            verdict, why = k.dry_run_change(c, k.with_secret_data(self._labelled(new, news.get("owner") or None),
                                                                  self._secrets(news)))
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
            c = self._connect(obj, props)
            live = k.get(c, obj)
        except Exception as e:  # noqa: BLE001
            raise _fail(e, f"reading {k.describe(obj)}") from None
        # Gone only on positive evidence: a 404 from the very server (and context) it was
        # created in, or the name now held by an object of another owner (ours cannot exist
        # beside it). Any other answer, or another server, raised above.
        if live is None or _terminating(live):
            return ReadResult(id_="", outs={})      # deleted (or being deleted): up creates it again
        owner = props.get("owner") or None
        if owner and k.owner_of(live) != owner:
            _log(f"{k.describe(obj)} now belongs to someone else (owner {k.owner_of(live)}): this stack's object "
                 "is gone; the other one is left untouched")
            return ReadResult(id_="", outs={})
        outs = self._outs(props, live, c)
        outs["manifest"] = k.project(live, obj)
        if obj.get("kind") == "Secret":
            # Values stay outputs only (secret); inputs would keep them in plain text.
            outs["secretData"] = k.secret_values(live, list((props.get("secretData") or {}).keys()))
            return ReadResult(id_=id_, outs=outs)
        # The live object as the inputs too, so that preview shows drift field by field.
        inputs = {"manifest": outs["manifest"], "cluster": props.get("cluster"), "owner": props.get("owner"),
                  "deleteTimeoutSeconds": props.get("deleteTimeoutSeconds"), "uid": None, "generation": None}
        return ReadResult(id_=id_, outs=outs, inputs=inputs)

    def delete(self, _id, props):
        obj = k.normalize(props["manifest"])
        owner = props.get("owner") or None
        try:
            c = self._connect(obj, props)
            live = k.get(c, obj)
            if live is None:
                return
            if owner and k.owner_of(live) != owner:
                _log(f"{k.describe(obj)} belongs to someone else (owner {k.owner_of(live)}): left untouched; "
                     "this stack's object of that name is already gone")
                return
            uid = (live.get("metadata") or {}).get("uid")
            k.delete(c, obj, timeout=float(props.get("deleteTimeoutSeconds") or 600), log=_log, uid=uid)
        except Exception as e:  # noqa: BLE001
            raise _fail(e, f"deleting {k.describe(obj)}") from None


class _KubeObjectBase(Resource):
    uid: pulumi.Output[str]
    generation: pulumi.Output[float]
    manifest: pulumi.Output[dict]

    def __init__(self, name: str, *, manifest: dict[str, Any], cluster: dict[str, str], owner: Any = None,
                 secret_data: Any = None, delete_timeout_seconds: int = 600,
                 opts: Optional[pulumi.ResourceOptions] = None):
        props: dict[str, Any] = {"manifest": manifest, "cluster": cluster, "owner": owner,
                                 "deleteTimeoutSeconds": delete_timeout_seconds, "uid": None, "generation": None,
                                 "where": None}
        if secret_data is not None:
            props["secretData"] = secret_data
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["secretData"]))
        # `cluster` (kubeconfig path, context, server) says where the object is to live; diff
        # compares only the server with `where` (where it was created), so a kubeconfig at another
        # path on another machine is not a change to the object, and another cluster is refused.
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
            live = rollout.wait_rollout(c, ref, props["selector"], timeout=float(props["timeoutSeconds"]),
                                  poll_seconds=float(props.get("pollSeconds") or 5), log=_log)
        except Exception as e:  # noqa: BLE001
            err = k.explain(e, f"waiting for {k.describe(ref)}")
            raise Exception(redact(f"{err}. The workload is kept in state: fix it and run up again, "
                                   f"or destroy it.")) from None
        _, progress = rollout.rollout_state(live)
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
            done, progress = rollout.workload_state(c, live, props["selector"]) if live else (False, "missing")
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
