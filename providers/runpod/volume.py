"""The network volume's lifecycle over RunPod's REST API v2.

A volume carries its stack instance's owner id as a name suffix (``<name>-<owner>``;
providers/runpod/ownership.py), so that a volume whose create answer was lost is found by
identity: adopted by the retried create, or deleted when the create finally fails. A volume
with this stack's name and another (or no) owner id stops `up` before anything is created;
so does a pod with this stack's pod name and another owner (the volume is created first, and a
second checkout of the same stack must fail before it creates anything).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import pulumi

from infra.common.http import HttpError

from providers.dynamic import is_unknown, whole_numbers
from providers.runpod.client import Op, RunPodClient, RunPodError, check_availability, explain
from providers.runpod.ownership import (
    foreign_message,
    foreign_volumes,
    pod_owner,
    volume_name,
    volume_owner,
)


def _log(msg: str) -> None:
    pulumi.log.info(msg)


def choose_data_center(client: RunPodClient, gpu_id: str, count: int, log: Callable[[str], None] = _log) -> str:
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


def refuse_foreign(client: RunPodClient, props: dict[str, Any]) -> None:
    base, owner = props["name"], props.get("owner")
    if not owner:
        return
    foreign = foreign_volumes(client.list_volumes(), base, owner)
    if foreign:
        raise RunPodError(f"creating network volume {volume_name(base, owner)!r}: " + foreign_message(
            "network volume(s)", [v["id"] for v in foreign], base, [volume_owner(v, base) for v in foreign],
            owner, "runpod.podName, which the volume name follows"))
    pod_name = props.get("podName")
    if pod_name:
        pods = [p for p in client.pods_named(pod_name) if pod_owner(p) != owner]
        if pods:
            raise RunPodError(f"creating network volume {volume_name(base, owner)!r}: " + foreign_message(
                "pod(s)", [p["id"] for p in pods], pod_name, [pod_owner(p) for p in pods], owner, "runpod.podName"))


def create_volume(client: RunPodClient, props: dict[str, Any], log: Callable[[str], None] = _log) -> dict[str, Any]:
    name = volume_name(props["name"], props.get("owner"))
    op = Op(f"creating network volume {name!r}", props.get("gpuId"), whole_numbers(props.get("gpuCount")),
            "SECURE", after="Nothing was created.")
    wanted = props.get("requestedDataCenter") or ""
    try:
        refuse_foreign(client, props)
        mine = client.volumes_named(name)
        found = [v for v in mine if not wanted or v.get("dataCenter") == wanted]
        for stray in (v for v in mine if v not in found):
            # Ours (it carries our id), not in state, in a data centre we no longer want.
            log(f"deleting network volume {stray['id']} named {name!r} in {stray.get('dataCenter')}: left by an "
                f"interrupted run, not in the wanted data centre {wanted}")
            client.delete_volume(stray["id"])
        if found:
            vol = found[0]
            log(f"adopting network volume {vol['id']} named {name!r} in {vol.get('dataCenter')} "
                f"(created by an earlier, interrupted run)")
            return vol
        dc = wanted or choose_data_center(client, props["gpuId"], int(props["gpuCount"]), log)
        body = {"name": name, "size": int(props["size"]), "dataCenter": dc}
        if props.get("volumeType"):
            body["type"] = props["volumeType"]

        def attempt() -> dict[str, Any]:
            again = [v for v in client.volumes_named(name) if v.get("dataCenter") == dc]
            return again[0] if again else client.create_volume_once(body)

        try:
            vol = client.policy.call(attempt, log=client.log, what=op.what)
        except HttpError as e:
            if e.retryable:
                _sweep(client, name, log)
            raise
    except HttpError as e:
        raise explain(e, op) from None
    log(f"network volume {vol['id']} ({vol.get('size')} GB) in {vol.get('dataCenter')}")
    return vol


def _sweep(client: RunPodClient, name: str, log: Callable[[str], None]) -> None:
    """A create whose answers were lost may have made the volume: ours by name, not in state."""
    try:
        for vol in client.volumes_named(name):
            client.delete_volume(vol["id"])
            log(f"deleted network volume {vol['id']} named {name!r}: its create answer was lost")
    except HttpError:
        log(f"could not check for a network volume named {name!r} left by the failed create; the next up "
            f"adopts it")


def update_volume(client: RunPodClient, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    op = Op(f"updating network volume {id_}", after="The volume is unchanged.")
    body: dict[str, Any] = {}
    new_name = volume_name(news["name"], news.get("owner"))
    if new_name != (olds.get("volumeName") or olds.get("name")):
        body["name"] = new_name
    have = int(olds.get("sizeGb") or olds["size"])
    if int(news["size"]) != have:
        if int(news["size"]) < have:
            raise RunPodError(f"{op.what}: a network volume can only grow (it has {have} GB, cache.sizeGib asks "
                              f"for {news['size']}). Next: set cache.sizeGib back to at least {have}.")
        body["size"] = int(news["size"])
    vol = read_volume(client, id_, olds)
    if vol is None:
        raise RunPodError(f"{op.what}: the volume no longer exists. Next: run `glmserve refresh`, then up.")
    _check_owner(vol, olds, op.what)
    try:
        return client.patch_volume(id_, body) if body else vol
    except HttpError as e:
        raise explain(e, op) from None


def _check_owner(vol: dict[str, Any], props: dict[str, Any], what: str) -> None:
    owner = props.get("owner")
    if owner and volume_owner(vol, props["name"]) != owner:
        raise RunPodError(f"{what}: volume {vol['id']} is named {vol.get('name')!r}, which does not carry this "
                          f"stack's owner id {owner}; glmserve does not change or delete it. It is kept in state.")


def read_volume(client: RunPodClient, id_: str, props: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The volume, or None only on positive evidence that it is gone from its account."""
    return client.read_in_account("volume", id_, props.get("account"), f"reading network volume {id_}")


def delete_volume(client: RunPodClient, id_: str, props: dict[str, Any]) -> bool:
    what = f"deleting network volume {id_}"
    vol = read_volume(client, id_, props)
    if vol is None:
        return False
    _check_owner(vol, props, what)
    try:
        return client.delete_volume(id_)
    except HttpError as e:
        raise explain(e, Op(what, after="The volume is still in state (it bills per GB-month): run destroy "
                                        "again.")) from None


def diff_volume(olds: dict[str, Any], news: dict[str, Any]) -> tuple[list[str], list[str]]:
    replaces = []
    wanted = news.get("requestedDataCenter")
    if is_unknown(wanted) or (wanted and wanted != olds.get("dataCenter")):
        replaces.append("requestedDataCenter")
    vtype = news.get("volumeType")
    if is_unknown(vtype) or (vtype and vtype != olds.get("type")):
        replaces.append("volumeType")
    updates = [k for k in ("name", "size", "owner") if is_unknown(news.get(k)) or olds.get(k) != news.get(k)]
    return replaces, updates
