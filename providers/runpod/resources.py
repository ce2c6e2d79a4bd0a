"""Python dynamic resources over RunPod's REST API v2: the network volume and the pod.

They run in the dynamic-provider process the Pulumi engine starts, which inherits the
environment of `glmserve up` (RUNPOD_API_KEY, RUNPOD_API_URL, ...; see infra/deploy/workspace.py).
The lifecycles live in providers/runpod/pod.py and volume.py, ownership and account checks in
ownership.py, the outputs in outputs.py; this module is the Pulumi face of them.

Secret values (the env: API key, HF token) are registered for redaction in this process and
the `env` output is a Pulumi secret (additional_secret_outputs), so they are ciphertext in state.
"""
from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from infra.common.secrets import register

from providers.runpod.client import RunPodClient, RunPodError, api_url
from providers.runpod.outputs import OUTPUT_KEYS, VOLUME_OUTPUT_KEYS, pod_outputs, volume_outputs
from providers.runpod.pod import create_pod, delete_pod, read_pod, terminate_quietly, update_pod
from providers.runpod.podbody import diff_pod
from providers.runpod.volume import create_volume, delete_volume, diff_volume, read_volume, update_volume


def register_secrets(props: dict[str, Any]) -> None:
    env = props.get("env") or {}
    for key in props.get("secretEnvKeys") or []:
        value = env.get(key) if isinstance(env, dict) else None
        if isinstance(value, str):
            register(value)


def _client(props: dict[str, Any]) -> RunPodClient:
    register_secrets(props)
    return RunPodClient(api_url(props.get("apiUrl") or None), props.get("apiKey") or None, log=pulumi.log.info)


# ============================================================================ the pod

class PodProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        with _client(props) as client:
            pod, availability, _ = create_pod(client, props)
            try:
                outs = pod_outputs(props, pod, 1, client, availability)
            except Exception as e:  # noqa: BLE001 - the pod is not in state yet: it must not outlive the error
                failed = terminate_quietly(client, pod["id"])
                raise RunPodError(f"creating pod {props['name']!r}: building its outputs failed ({e}); pod "
                                  f"{pod['id']} " + ("was terminated." if failed is None else
                                                     f"could not be terminated ({failed}) and may bill.")) from None
        return CreateResult(id_=pod["id"], outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces, updates = diff_pod(olds, news)
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        register_secrets(olds)
        with _client(news) as client:
            pod, generation = update_pod(client, id_, olds, news)
            return UpdateResult(outs=pod_outputs(news, pod, generation, client))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _client(props) as client:
            pod = read_pod(client, id_, props)
            if pod is None:
                pulumi.log.warn(f"pod {id_} ({props.get('name')!r}) no longer exists on RunPod (terminated "
                                f"out of band); it is removed from state and the next up creates a new one")
                return ReadResult(id_="", outs={})
            if pod.get("status") != props.get("status") and pod.get("status") in ("EXITED", "ERROR"):
                pulumi.log.warn(f"pod {id_} is {pod.get('status')} on RunPod (stopped out of band?); "
                                f"with runpod.state: running the next up starts it again")
            outs = pod_outputs(props, pod, int(props.get("generation") or 1), client)
        # Out-of-band edits of what glmserve sets show up as drift; the next up PATCHes them back.
        for key in ("image", "args", "disk", "ports"):
            if key in pod:
                outs[key] = pod[key]
        return ReadResult(id_=id_, outs=outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        with _client(props) as client:
            gone = not delete_pod(client, id_, props)
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
        super().__init__(PodProvider(), name, {**props, **{k: None for k in OUTPUT_KEYS}}, opts)


# ============================================================================ the network volume

class NetworkVolumeProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        with _client(props) as client:
            vol = create_volume(client, props)
            return CreateResult(id_=vol["id"], outs=volume_outputs(props, vol, client))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces, updates = diff_volume(olds, news)
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with _client(news) as client:
            vol = update_volume(client, id_, olds, news)
            return UpdateResult(outs=volume_outputs(news, vol, client))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _client(props) as client:
            vol = read_volume(client, id_, props)
            if vol is None:
                pulumi.log.warn(f"network volume {id_} no longer exists on RunPod; it is removed from state")
                return ReadResult(id_="", outs={})
            return ReadResult(id_=id_, outs=volume_outputs(props, vol, client))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        with _client(props) as client:
            delete_volume(client, id_, props)


class NetworkVolume(Resource):
    volumeId: pulumi.Output[str]
    dataCenter: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["apiKey"], delete_before_replace=True))
        super().__init__(NetworkVolumeProvider(), name, {**props, **{k: None for k in VOLUME_OUTPUT_KEYS}}, opts)
