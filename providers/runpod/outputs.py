"""The outputs of the pod and network volume resources, built from what RunPod answered.

Building them cannot fail once a resource exists: everything they format is validated before
the create (providers/runpod/pod.py check_before_create), and missing fields become None.
"""
from __future__ import annotations

from typing import Any, Optional

from providers.runpod.client import Availability, RunPodClient, proxy_url
from providers.runpod.ownership import volume_name

OUTPUT_KEYS = ("podId", "status", "costPerHour", "dataCenterId", "url", "revision", "generation",
               "availability", "pricePerGpuHour", "cudaVersion", "account")
VOLUME_OUTPUT_KEYS = ("volumeId", "volumeName", "dataCenter", "type", "sizeGb", "account")


def _cost(pod: dict[str, Any]) -> float:
    try:
        return float(pod.get("cost") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def pod_outputs(props: dict[str, Any], pod: dict[str, Any], generation: int, client: RunPodClient,
                availability: Optional[Availability] = None) -> dict[str, Any]:
    outs = {k: v for k, v in props.items() if k not in OUTPUT_KEYS}
    outs.update({
        "podId": pod["id"],
        "status": pod.get("status"),
        "costPerHour": _cost(pod),
        "dataCenterId": pod.get("dataCenterId"),
        "cudaVersion": pod.get("cudaVersion"),
        "url": proxy_url(props["proxyUrlTemplate"], pod["id"], int(props["port"])),
        "generation": generation,
        # What the readiness gate guards: a new pod, a PATCH (container restart) or a start.
        "revision": f"{pod['id']}-{generation}",
        "account": client.account.as_state(),
    })
    if availability is not None:
        outs["availability"] = availability.level
        outs["pricePerGpuHour"] = availability.price_per_gpu_hour
    else:
        outs["availability"] = props.get("availability")
        outs["pricePerGpuHour"] = props.get("pricePerGpuHour")
    return outs


def volume_outputs(props: dict[str, Any], vol: dict[str, Any], client: RunPodClient) -> dict[str, Any]:
    return {**props, "volumeId": vol["id"], "volumeName": volume_name(props["name"], props.get("owner")),
            "dataCenter": vol.get("dataCenter"), "type": vol.get("type"), "sizeGb": vol.get("size"),
            "account": client.account.as_state()}
