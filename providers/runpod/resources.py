"""Python dynamic resources over RunPod's REST API v2: a network volume and the pod.

They run in the dynamic-provider process the Pulumi engine starts, which inherits the
environment of `glmserve up` (RUNPOD_API_KEY, RUNPOD_API_URL, ...; see infra/workspace.py).

Lifecycle of the pod, and the choices behind it:

* **Create** first looks for a pod with the stack's deterministic name (GET /v2/pods has no
  name filter, so it lists and filters). A `pulumi up` killed after RunPod created the pod but
  before the engine wrote state leaves such a pod: it is adopted, never duplicated. The
  "look up by name, then POST" step is what is retried (infra/http.py), so a POST whose answer
  was lost (reset, 5xx after handling) is adopted on the next try instead of sent twice.
  Then it waits for RUNNING; if that fails the pod is terminated before the error is raised,
  because a pod that is not in state would bill (~$700/day for 8x H200) unseen.
* **Update** PATCHes what the API can patch (image, args, env, ports, disk, mount path/size,
  name) and stops/starts the pod for `runpod.state`. GPU type/count, cloud, the mount kind and
  the network volume (hence the data centre) cannot be patched: they force a replace.
* **Replace is delete-before-replace.** Capacity: an 8x H200 machine is the scarcest thing we
  ask for, and a network volume pins the pod to one data centre, so the new pod usually needs
  the very GPUs the old one holds; create-before-delete would need 16 free H200s in one place
  and fail exactly when stock is low. Cost: the new pod's cold start (image pull plus a 704 GiB
  weight load, 30-60 min) would bill two 8x H200 pods (~$60-75/h) for nothing. And the pod
  name is the adoption key, so two pods may not share it. The price is downtime during a
  replace, which changing the GPU shape implies anyway.
* **Read** (refresh) reports a pod terminated out-of-band as gone (`up` recreates it) and a
  pod stopped out-of-band as EXITED (the next `up` starts it again when state is running).
* **Delete** terminates (DELETE /v2/pods/{id}); 404 means already gone.

Secret values (the env: API key, HF token) are registered for redaction in this process and
the `env` output is a Pulumi secret (additional_secret_outputs), so they are ciphertext in state.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from infra.common.http import HttpError, poll
from infra.common.secrets import register

from providers.runpod.client import (
    LIVE,
    Availability,
    Op,
    RunPodClient,
    RunPodError,
    api_url,
    check_availability,
    explain,
    no_availability_message,
    proxy_url,
)

# Template variables of templates/runpod/pod.json.j2 and the pod resource's input keys.
BODY_VARS = {
    "name": "name", "image": "image", "gpu_id": "gpuId", "gpu_count": "gpuCount",
    "allowed_cuda_versions": "allowedCudaVersions", "cloud": "cloud", "data_center_ids": "dataCenterIds",
    "args": "args", "disk": "disk", "env": "env", "ports": "ports", "mount_kind": "mountKind",
    "mount_path": "mountPath", "mount_size": "mountSize", "volume_id": "volumeId",
}
# Fields RunPod cannot change on a pod: a change means a new pod.
REPLACE_KEYS = ("gpuId", "gpuCount", "cloud", "mountKind", "volumeId")
# Fields PATCH /v2/pods/{id} accepts (UpdatePodRequest), as keys of the rendered body.
PATCH_BODY_KEYS = ("name", "image", "args", "disk", "env", "ports", "mounts")
UPDATE_KEYS = ("name", "image", "args", "disk", "env", "ports", "mountPath", "mountSize", "state",
               "proxyUrlTemplate", "port")
OUTPUT_KEYS = ("podId", "status", "costPerHour", "dataCenterId", "url", "revision", "generation",
               "availability", "pricePerGpuHour")
TERMINAL = ("EXITED", "ERROR", "TERMINATED")


def render_pod_body(variables: dict[str, Any]) -> dict[str, Any]:
    """The POST /v2/pods body, from the one template (also what `render --artifact` prints)."""
    from infra.engine.templates import environment

    text = environment().get_template("runpod/pod.json.j2").render(
        **{k: variables.get(k) for k in BODY_VARS})
    return json.loads(text)


INT_VARS = ("gpu_count", "disk", "mount_size")


def _int(v: Any) -> Any:
    # Pulumi carries numbers as doubles: 8 comes back as 8.0, which RunPod's integer fields refuse.
    return int(v) if isinstance(v, float) and v.is_integer() else v


def variables_from_props(props: dict[str, Any]) -> dict[str, Any]:
    out = {var: props.get(key) for var, key in BODY_VARS.items()}
    for k in INT_VARS:
        out[k] = _int(out[k])
    return out


def _unknown(v: Any) -> bool:
    from pulumi.runtime import rpc
    return isinstance(v, pulumi.output.Unknown) or v == rpc.UNKNOWN


def _log(msg: str) -> None:
    pulumi.log.info(msg)


def _warn(msg: str) -> None:
    pulumi.log.warn(msg)


def register_secrets(props: dict[str, Any]) -> None:
    env = props.get("env") or {}
    for key in props.get("secretEnvKeys") or []:
        value = env.get(key) if isinstance(env, dict) else None
        if isinstance(value, str):
            register(value)


def _client(props: dict[str, Any], log: Callable[[str], None] = _log) -> RunPodClient:
    register_secrets(props)
    return RunPodClient(api_url(props.get("apiUrl") or None), props.get("apiKey") or None, log=log)


def gpu_op(props: dict[str, Any], what: str, after: str = "") -> Op:
    dc = None
    if props.get("mountKind") == "network":
        dcs = props.get("dataCenterIds") or []
        dc = dcs[0] if dcs and not _unknown(dcs) else None
    return Op(what, props.get("gpuId"), _int(props.get("gpuCount")), props.get("cloud"), dc, after)


# ============================================================================ decisions

def diff_pod(olds: dict[str, Any], news: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(replaces, updates): which changed inputs force a new pod, which a PATCH or an action."""
    replaces = [k for k in REPLACE_KEYS if _unknown(news.get(k)) or olds.get(k) != news.get(k)]
    if news.get("mountKind") != "network" and not _unknown(news.get("dataCenterIds")):
        # Placement is a preference: only a pod outside the new list has to move. (With a
        # network volume the volume decides the data centre, so volumeId covers it.)
        wanted = news.get("dataCenterIds") or []
        actual = olds.get("dataCenterId")
        if wanted and actual and actual not in wanted:
            replaces.append("dataCenterIds")
    if not _unknown(news.get("allowedCudaVersions")):
        wanted = news.get("allowedCudaVersions") or []
        actual = olds.get("cudaVersion")
        if wanted and actual and actual not in wanted:
            replaces.append("allowedCudaVersions")
    updates = [k for k in UPDATE_KEYS if _unknown(news.get(k)) or olds.get(k) != news.get(k)]
    status = olds.get("status")
    if news.get("state") == "running" and status in ("EXITED", "ERROR"):
        updates.append("status")          # stopped or failed out-of-band: start it again
    if news.get("state") == "stopped" and status in LIVE:
        updates.append("status")
    return replaces, [u for u in updates if u not in replaces]


def patch_body(old_vars: dict[str, Any], new_vars: dict[str, Any]) -> dict[str, Any]:
    """The PATCH /v2/pods/{id} body: the patchable fields whose rendered value changed."""
    old, new = render_pod_body(old_vars), render_pod_body(new_vars)
    return {k: new[k] for k in PATCH_BODY_KEYS if k in new and old.get(k) != new.get(k)}


def compatible(pod: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """Why an existing pod cannot stand for ``body`` (empty: it can be adopted)."""
    why = []
    gpu = pod.get("gpu") or {}
    if gpu.get("id") != body["gpu"]["id"] or int(gpu.get("count") or 0) != int(body["gpu"]["count"]):
        why.append(f"gpu {gpu.get('count')} x {gpu.get('id')}")
    if pod.get("cloud") != body.get("cloud"):
        why.append(f"cloud {pod.get('cloud')}")
    mounts, want = pod.get("mounts") or {}, body.get("mounts") or {}
    if set(k for k, v in mounts.items() if v) != set(k for k, v in want.items() if v):
        why.append(f"mounts {sorted(k for k, v in mounts.items() if v)}")
    elif want.get("network"):
        if (mounts.get("network") or [{}])[0].get("volumeId") != want["network"][0]["volumeId"]:
            why.append(f"network volume {(mounts.get('network') or [{}])[0].get('volumeId')}")
    dcs = body.get("dataCenterIds") or []
    if dcs and pod.get("dataCenterId") and pod.get("dataCenterId") not in dcs:
        why.append(f"data centre {pod.get('dataCenterId')}")
    return why


def drift(pod: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """What to PATCH so that an adopted pod matches the body."""
    return {k: body[k] for k in ("image", "args", "disk", "env", "ports") if k in body and pod.get(k) != body[k]}


def outputs_for(props: dict[str, Any], pod: dict[str, Any], generation: int,
                availability: Optional[Availability] = None) -> dict[str, Any]:
    outs = {k: v for k, v in props.items() if k not in OUTPUT_KEYS}
    outs.update({
        "podId": pod["id"],
        "status": pod.get("status"),
        "costPerHour": float(pod.get("cost") or 0.0),
        "dataCenterId": pod.get("dataCenterId"),
        "cudaVersion": pod.get("cudaVersion"),
        "url": proxy_url(props["proxyUrlTemplate"], pod["id"], int(props["port"])),
        "generation": generation,
        # What the readiness gate guards: a new pod, a PATCH (container restart) or a start.
        "revision": f"{pod['id']}-{generation}",
    })
    if availability is not None:
        outs["availability"] = availability.level
        outs["pricePerGpuHour"] = availability.price_per_gpu_hour
    else:
        outs["availability"] = props.get("availability")
        outs["pricePerGpuHour"] = props.get("pricePerGpuHour")
    return outs


# ============================================================================ lifecycle

def preflight(client: RunPodClient, props: dict[str, Any], log: Callable[[str], None] = _log,
              warn: Callable[[str], None] = _warn) -> Optional[Availability]:
    """Stock and price for the requested count, before creating: warn, or fail if asked to."""
    try:
        a = check_availability(client, props["gpuId"], int(props["gpuCount"]), props["cloud"])
    except HttpError as e:
        warn(f"could not read RunPod's GPU catalog ({e}); creating the pod anyway")
        return None
    log(a.describe())
    if a.level == "NONE":
        fail = bool(props.get("failOnNoAvailability"))
        if fail:
            raise RunPodError(no_availability_message(a, True))
        warn(no_availability_message(a, False))
    return a


def wait_running(client: RunPodClient, pod_id: str, timeout: float, interval: float,
                 log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Poll GET /v2/pods/{id} until RUNNING. `runtime.ports` is not required to list the HTTP
    port (RunPod's proxy serves it without a public mapping); the readiness gate checks it."""
    seen: list[str] = []

    def on_value(pod: Optional[dict], elapsed: float) -> None:
        status = pod.get("status") if pod else "GONE"
        if not seen or seen[-1] != status:
            seen.append(status)
            log(f"pod {pod_id}: {status} after {elapsed:.0f}s")

    pod, done = poll(lambda: client.get_pod(pod_id),
                     until=lambda p: p is None or p.get("status") in ("RUNNING", *TERMINAL),
                     interval=interval, timeout=timeout, on_value=on_value)
    if pod is None:
        raise RunPodError(f"pod {pod_id} disappeared while starting (terminated out of band?)")
    status = pod.get("status")
    if not done:
        raise RunPodError(f"pod {pod_id} is not RUNNING after {timeout:.0f}s (status {status}; "
                          f"timeouts.startupSeconds)")
    if status != "RUNNING":
        raise RunPodError(f"pod {pod_id} went to {status} while starting; see its logs "
                          f"(GET /v2/pods/{pod_id}/logs, or the RunPod console)")
    return pod


def ensure_state(client: RunPodClient, pod_id: str, action: str, op: Op) -> dict[str, Any]:
    """Start or stop a pod, idempotently: look at the pod, act only if needed; retried as a whole
    (a repeated action would be answered 409 once the first one took effect)."""
    def attempt() -> dict[str, Any]:
        pod = client.get_pod(pod_id)
        if pod is None:
            raise RunPodError(f"{op.what}: pod {pod_id} no longer exists (terminated out of band). "
                              f"Next: run `glmserve refresh`, then up recreates it.")
        status = pod.get("status")
        if (action == "stop" and status not in LIVE) or (action == "start" and status in LIVE):
            return pod
        answer = client.pod_action_once(pod_id, action)
        return answer if answer else (client.get_pod(pod_id) or pod)

    try:
        return client.policy.call(attempt, log=client.log, what=op.what)
    except HttpError as e:
        if action == "start" and e.status == 400:
            raise RunPodError(f"{op.what}: RunPod cannot start the stopped pod (HTTP 400: {e.detail}). A stopped "
                              f"pod resumes on its own machine, which has no free {op.gpu_id} now. Next: run up "
                              f"again later, or replace the pod on another machine (`pulumi up --replace <pod urn>`; "
                              f"a persistent volume is lost, a network volume is kept).") from None
        raise explain(e, op) from None


def terminate_quietly(client: RunPodClient, pod_id: str) -> Optional[str]:
    """Terminate; None when done, else why it failed (for the error message)."""
    try:
        client.delete_pod(pod_id)
        return None
    except HttpError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - reported to the user with the original error
        return f"{type(e).__name__}: {e}"


def create_pod(client: RunPodClient, props: dict[str, Any], log: Callable[[str], None] = _log,
               warn: Callable[[str], None] = _warn) -> tuple[dict[str, Any], Optional[Availability], bool]:
    """Create (or adopt) the pod and bring it to the desired state; (pod, availability, adopted)."""
    name = props["name"]
    body = render_pod_body(variables_from_props(props))
    op = gpu_op(props, f"creating pod {name!r}", "Nothing billable was left behind.")

    availability: Optional[Availability] = None
    try:
        existing = client.pods_named(name)
    except HttpError as e:
        raise explain(e, op) from None
    if not existing:
        availability = preflight(client, props, log, warn)

    adopted: list[bool] = []

    def attempt() -> dict[str, Any]:
        adopted.clear()
        found = client.pods_named(name)
        keep = None
        for pod in found:
            why = compatible(pod, body)
            if keep is None and not why:
                keep = pod
                continue
            # Same name: a pod of this stack that glmserve created (a killed run, or an
            # earlier configuration). Not in state, so nobody else would ever stop its bill.
            warn(f"terminating pod {pod['id']} named {name!r}: " +
                 (f"it differs from the spec ({', '.join(why)})" if why else "a duplicate of the adopted pod"))
            client.delete_pod(pod["id"])
        if keep is not None:
            adopted.append(True)
            log(f"adopting pod {keep['id']} named {name!r} (created by an earlier, interrupted run)")
            return keep
        return client.create_pod_once(body)

    try:
        pod = client.policy.call(attempt, log=client.log, what=op.what)
    except HttpError as e:
        err = explain(e, op)
        if e.retryable:
            # The last POST may have been handled even though its answer was lost.
            leftover = _sweep(client, name)
            if leftover:
                raise RunPodError(f"{err} However pod(s) {', '.join(leftover)} named {name!r} may still exist and "
                                  f"bill. Next: run up again (it adopts the pod by name) or terminate them in the "
                                  f"RunPod console.") from None
        raise err from None

    pod_id = pod["id"]
    if not adopted:
        log(f"created pod {pod_id} named {name!r} ({body['gpu']['count']} x {body['gpu']['id']}, {body['cloud']})")
    try:
        if adopted:
            fix = drift(pod, body)
            if fix:
                client.patch_pod(pod_id, fix)
        pod = settle(client, pod_id, props, op, log, may_start=bool(adopted))
    except Exception as e:  # noqa: BLE001 - whatever failed, the pod must not outlive the error
        cause = str(explain(e, op) if isinstance(e, HttpError) else e).removesuffix(op.after).rstrip()
        if not cause.startswith(op.what):
            cause = f"{op.what}: {cause}"
        failed = terminate_quietly(client, pod_id)
        if failed is None:
            raise RunPodError(f"{cause} Pod {pod_id} was terminated, so nothing bills; fix the cause and run "
                              f"up again.") from None
        raise RunPodError(f"{cause} Terminating pod {pod_id} failed too ({failed}): it may still bill. Next: run "
                          f"up again (it adopts the pod by name), or terminate it in the RunPod console.") from None
    return pod, availability, bool(adopted)


def _sweep(client: RunPodClient, name: str) -> list[str]:
    """After a failed create: terminate any pod the lost POSTs created; ids that could not be."""
    try:
        found = client.pods_named(name)
    except Exception:  # noqa: BLE001 - we cannot know; say so
        return [f"(unknown: listing pods failed; look for {name!r})"]
    return [p["id"] for p in found if terminate_quietly(client, p["id"]) is not None]


def settle(client: RunPodClient, pod_id: str, props: dict[str, Any], op: Op,
           log: Callable[[str], None] = _log, may_start: bool = True) -> dict[str, Any]:
    """Bring a pod to ``props.state``: RUNNING (started if needed) or stopped. A pod that was
    just created and fails on its own is not started again (``may_start=False``)."""
    timeout, interval = float(props["startupSeconds"]), float(props["pollSeconds"])
    if props.get("state") == "stopped":
        pod = ensure_state(client, pod_id, "stop", op)
        log(f"pod {pod_id} is stopped (runpod.state: stopped): GPUs released, its volume kept")
        return client.get_pod(pod_id) or pod
    pod = client.get_pod(pod_id)
    if may_start and pod is not None and pod.get("status") in ("EXITED", "ERROR"):
        ensure_state(client, pod_id, "start", op)
    pod = wait_running(client, pod_id, timeout, interval, log)
    log(f"pod {pod_id} is RUNNING in {pod.get('dataCenterId')}, cost ${float(pod.get('cost') or 0):.2f}/hour")
    return pod


def update_pod(client: RunPodClient, pod_id: str, olds: dict[str, Any], news: dict[str, Any],
               log: Callable[[str], None] = _log) -> tuple[dict[str, Any], int]:
    """PATCH what changed, then start/stop as asked; (pod, generation). A failure keeps the pod
    in state (destroy removes it) and says so."""
    op = gpu_op(news, f"updating pod {pod_id} ({news['name']!r})",
                "The pod is kept in state: fix the cause and run up again, or destroy it.")
    generation = int(olds.get("generation") or 1)
    try:
        pod = client.get_pod(pod_id)
        if pod is None:
            raise RunPodError(f"{op.what}: the pod no longer exists (terminated out of band). Next: run "
                              f"`glmserve refresh --stack <stack>`; the next up creates a new one.")
        patch = patch_body(variables_from_props(olds), variables_from_props(news))
        if patch:
            client.patch_pod(pod_id, patch)
            generation += 1
            log(f"patched pod {pod_id}: {', '.join(sorted(patch))}")
        was_live = pod.get("status") in LIVE
        if news.get("state") == "running" and not was_live:
            generation += 1
        if news.get("state") == "running" and not patch and was_live and pod.get("status") == "RUNNING":
            return pod, generation
        return settle(client, pod_id, news, op, log), generation
    except HttpError as e:
        raise explain(e, op) from None
    except RunPodError as e:
        msg = str(e)
        if not msg.startswith(op.what):
            msg = f"{op.what}: {msg}"
        if op.after not in msg:
            msg = f"{msg} {op.after}"
        raise RunPodError(msg, e.status) from None


# ============================================================================ the pod

class PodProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        with _client(props) as client:
            pod, availability, _ = create_pod(client, props)
        return CreateResult(id_=pod["id"], outs=outputs_for(props, pod, 1, availability))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces, updates = diff_pod(olds, news)
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        register_secrets(olds)
        with _client(news) as client:
            pod, generation = update_pod(client, id_, olds, news)
        return UpdateResult(outs=outputs_for(news, pod, generation))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _client(props) as client:
            try:
                pod = client.get_pod(id_)
            except HttpError as e:
                raise explain(e, Op(f"reading pod {id_}")) from None
        if pod is None:
            pulumi.log.warn(f"pod {id_} ({props.get('name')!r}) no longer exists on RunPod (terminated "
                            f"out of band); it is removed from state and the next up creates a new one")
            return ReadResult(id_="", outs={})
        if pod.get("status") != props.get("status") and pod.get("status") in ("EXITED", "ERROR"):
            pulumi.log.warn(f"pod {id_} is {pod.get('status')} on RunPod (stopped out of band?); "
                            f"with runpod.state: running the next up starts it again")
        outs = outputs_for(props, pod, int(props.get("generation") or 1))
        # Out-of-band edits of what glmserve sets show up as drift; the next up PATCHes them back.
        for key in ("image", "args", "disk", "ports"):
            if key in pod:
                outs[key] = pod[key]
        return ReadResult(id_=id_, outs=outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        with _client(props) as client:
            try:
                gone = not client.delete_pod(id_)
            except HttpError as e:
                raise explain(e, Op(f"terminating pod {id_} ({props.get('name')!r})",
                                    after="The pod is still in state and may bill: run destroy again.")) from None
        pulumi.log.info(f"pod {id_} was already gone" if gone else f"terminated pod {id_}")


class Pod(Resource):
    # Outputs keep the props' camelCase names (dict props get no name translation).
    podId: pulumi.Output[str]
    url: pulumi.Output[str]
    revision: pulumi.Output[str]
    costPerHour: pulumi.Output[float]
    status: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["env", "apiKey"], delete_before_replace=True))
        super().__init__(PodProvider(), name, {**props, **{k: None for k in OUTPUT_KEYS},
                                               "cudaVersion": None}, opts)


# ============================================================================ the network volume

def choose_data_center(client: RunPodClient, gpu_id: str, count: int, fail: bool,
                       log: Callable[[str], None] = _log) -> str:
    """The Secure Cloud data centre with the most stock for the pod that will use the volume."""
    try:
        a = check_availability(client, gpu_id, count, "SECURE")
    except HttpError as e:
        raise explain(e, Op("choosing a data centre for the network volume", gpu_id, count, "SECURE")) from None
    log(a.describe())
    usable = [dc for dc, level in a.data_centers if level != "NONE"]
    if not usable:
        raise RunPodError(f"choosing a data centre for the network volume: RunPod reports no stock for {count} x "
                          f"{gpu_id} in any Secure Cloud data centre (availability {a.level}), so there is no data "
                          f"centre to put the volume in. Next: set runpod.volumeDataCenter (or runpod.dataCenterIds) "
                          f"to a Secure Cloud data centre, use runpod.volume: persistent, or try later. "
                          f"Nothing was created.")
    return usable[0]


class NetworkVolumeProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        name = props["name"]
        op = Op(f"creating network volume {name!r}", props.get("gpuId"), _int(props.get("gpuCount")), "SECURE",
                after="Nothing was created.")
        with _client(props) as client:
            try:
                wanted = props.get("requestedDataCenter") or ""
                found = [v for v in client.volumes_named(name) if not wanted or v.get("dataCenter") == wanted]
                if found:
                    vol = found[0]
                    pulumi.log.info(f"adopting network volume {vol['id']} named {name!r} in {vol.get('dataCenter')}")
                else:
                    dc = wanted or choose_data_center(client, props["gpuId"], int(props["gpuCount"]),
                                                      bool(props.get("failOnNoAvailability")))
                    body = {"name": name, "size": int(props["size"]), "dataCenter": dc}
                    if props.get("volumeType"):
                        body["type"] = props["volumeType"]

                    def attempt() -> dict[str, Any]:
                        again = [v for v in client.volumes_named(name) if v.get("dataCenter") == dc]
                        return again[0] if again else client.create_volume_once(body)

                    vol = client.policy.call(attempt, log=client.log, what=op.what)
                    pulumi.log.info(f"network volume {vol['id']} ({vol.get('size')} GB) in {vol.get('dataCenter')}")
            except HttpError as e:
                raise explain(e, op) from None
        return CreateResult(id_=vol["id"], outs=_volume_outs(props, vol))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces, updates = diff_volume(olds, news)
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        op = Op(f"updating network volume {id_}", after="The volume is unchanged.")
        body = {}
        if news.get("name") != olds.get("name"):
            body["name"] = news["name"]
        if int(news["size"]) != int(olds.get("sizeGb") or olds["size"]):
            if int(news["size"]) < int(olds.get("sizeGb") or olds["size"]):
                raise RunPodError(f"{op.what}: a network volume can only grow (it has {olds.get('sizeGb')} GB, "
                                  f"cache.sizeGib asks for {news['size']}). Next: set cache.sizeGib back to at least "
                                  f"{olds.get('sizeGb')}.")
            body["size"] = int(news["size"])
        with _client(news) as client:
            try:
                vol = client.patch_volume(id_, body) if body else client.get_volume(id_)
            except HttpError as e:
                raise explain(e, op) from None
        if vol is None:
            raise RunPodError(f"{op.what}: the volume no longer exists. Next: run `glmserve refresh`, then up.")
        return UpdateResult(outs=_volume_outs(news, vol))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _client(props) as client:
            try:
                vol = client.get_volume(id_)
            except HttpError as e:
                raise explain(e, Op(f"reading network volume {id_}")) from None
        if vol is None:
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=_volume_outs(props, vol))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        with _client(props) as client:
            try:
                client.delete_volume(id_)
            except HttpError as e:
                raise explain(e, Op(f"deleting network volume {id_}",
                                    after="The volume is still in state (it bills per GB-month): run destroy again.")) from None


def diff_volume(olds: dict[str, Any], news: dict[str, Any]) -> tuple[list[str], list[str]]:
    replaces = []
    wanted = news.get("requestedDataCenter")
    if _unknown(wanted) or (wanted and wanted != olds.get("dataCenter")):
        replaces.append("requestedDataCenter")
    vtype = news.get("volumeType")
    if _unknown(vtype) or (vtype and vtype != olds.get("type")):
        replaces.append("volumeType")
    updates = [k for k in ("name", "size") if _unknown(news.get(k)) or olds.get(k) != news.get(k)]
    return replaces, updates


def _volume_outs(props: dict[str, Any], vol: dict[str, Any]) -> dict[str, Any]:
    return {**props, "volumeId": vol["id"], "dataCenter": vol.get("dataCenter"), "type": vol.get("type"),
            "sizeGb": vol.get("size")}


class NetworkVolume(Resource):
    volumeId: pulumi.Output[str]
    dataCenter: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["apiKey"], delete_before_replace=True))
        super().__init__(NetworkVolumeProvider(), name,
                         {**props, "volumeId": None, "dataCenter": None, "type": None, "sizeGb": None}, opts)
