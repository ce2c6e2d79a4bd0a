"""What a pod is, as data: the POST /v2/pods body rendered from the one template, and what a
change of the pod resource's inputs means (PATCH, start/stop, or a new pod).

Pure functions (no network): the lifecycle in providers/runpod/pod.py acts on their answers.
"""
from __future__ import annotations

import json
from typing import Any

from providers.dynamic import is_unknown, whole_numbers
from providers.runpod.client import LIVE, Op
from providers.runpod.ownership import OWNER_ENV

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
               "proxyUrlTemplate", "port", "owner")


def render_pod_body(variables: dict[str, Any]) -> dict[str, Any]:
    """The POST /v2/pods body, from the one template (also what `render --artifact` prints)."""
    from infra.engine.templates import environment

    text = environment().get_template("runpod/pod.json.j2").render(
        **{k: variables.get(k) for k in BODY_VARS})
    return json.loads(text)


# Pulumi carries numbers as doubles; RunPod's integer fields refuse 8.0.
INT_VARS = ("gpu_count", "disk", "mount_size")


def variables_from_props(props: dict[str, Any]) -> dict[str, Any]:
    out = {var: props.get(key) for var, key in BODY_VARS.items()}
    for k in INT_VARS:
        out[k] = whole_numbers(out[k])
    owner = props.get("owner")
    if owner and isinstance(out.get("env"), dict):
        # The stack instance's identity rides in the pod's env: the only field of a RunPod pod
        # that is free-form, kept as given and returned by GET /v2/pods (adoption reads it).
        out["env"] = {**out["env"], OWNER_ENV: owner}
    return out


def gpu_op(props: dict[str, Any], what: str, after: str = "") -> Op:
    dc = None
    if props.get("mountKind") == "network":
        dcs = props.get("dataCenterIds") or []
        dc = dcs[0] if dcs and not is_unknown(dcs) else None
    return Op(what, props.get("gpuId"), whole_numbers(props.get("gpuCount")), props.get("cloud"), dc, after)


# ============================================================================ decisions

def diff_pod(olds: dict[str, Any], news: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(replaces, updates): which changed inputs force a new pod, which a PATCH or an action."""
    replaces = [k for k in REPLACE_KEYS if is_unknown(news.get(k)) or olds.get(k) != news.get(k)]
    if news.get("mountKind") != "network" and not is_unknown(news.get("dataCenterIds")):
        # Placement is a preference: only a pod outside the new list has to move. (With a
        # network volume the volume decides the data centre, so volumeId covers it.)
        wanted = news.get("dataCenterIds") or []
        actual = olds.get("dataCenterId")
        if wanted and actual and actual not in wanted:
            replaces.append("dataCenterIds")
    if not is_unknown(news.get("allowedCudaVersions")):
        wanted = news.get("allowedCudaVersions") or []
        actual = olds.get("cudaVersion")
        if wanted and actual and actual not in wanted:
            replaces.append("allowedCudaVersions")
    updates = [k for k in UPDATE_KEYS if is_unknown(news.get(k)) or olds.get(k) != news.get(k)]
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

