"""RunPod: the node as one dedicated pod with 8x NVIDIA H200, over RunPod's REST API v2.

The pod runs the registry image (`engine.image`, e.g. vllm/vllm-openai, whose ENTRYPOINT is
`vllm serve`) with `args` = the shared engine argv minus that entrypoint, shell-quoted: the
pod runs `vllm serve zai-org/GLM-5.2-FP8 ...`, never `vllm serve vllm serve ...`. The API key
and the HF token reach the container as environment variables (VLLM_API_KEY, HF_TOKEN), never
in argv. The weight cache is a network volume (default; survives the pod) or the pod's
persistent volume, mounted at `cache.mountPath`.

The endpoint is RunPod's proxy, https://{podId}-8000.proxy.runpod.net, OpenAI-compatible
under /v1. `pulumi up` waits for RUNNING, then for the shared readiness gate.

`engine.setupCommands` and `engine.pipPackages` are image build steps for providers that build
an image (Modal); RunPod runs `engine.image` as it is (a warning says so when they are set).
"""
from __future__ import annotations

import json
import os
import shlex
from typing import Any, Optional

from infra.common.errors import GlmserveError, Problem
from infra.common.secrets import REDACTED
from infra.config.stackfile import ENCRYPTED
from infra.deploy.target import DeployContext, Endpoint
from infra.engine.render import EngineCommand
from infra.spec.model import NodeSpec
from providers.base import Credential, Feature, Provider
from providers.dynamic import HF_TOKEN_ENV
from providers.runpod.client import API_KEY_ENV, api_url, proxy_url_template
from providers.runpod.options import RunPodOptions
from providers.runpod.schedule import pod_state


def runpod_secret_ref(name: str) -> str:
    """RunPod substitutes `{{ RUNPOD_SECRET_<name> }}` in env values with a stored secret."""
    return "{{ RUNPOD_SECRET_" + name + " }}"


class RunPodProvider(Provider):
    name = "runpod"
    title = "RunPod"
    unsupported = {
        Feature.MULTI_NODE: "RunPod's Instant Clusters (multi-node) are in beta; a pod is one machine",
        Feature.REPLICAS: "the runpod provider deploys one dedicated pod per stack",
    }
    ignored = {
        Feature.IMAGE_BUILD_STEPS: "engine.setupCommands and engine.pipPackages are image build steps; RunPod "
                                   "runs engine.image as it is, so they are not applied (publish an image with "
                                   "them if the engine needs them)",
    }
    stop_option = ("state", "stopped")
    credential_urls = ("apiUrl",)
    credentials = (Credential(API_KEY_ENV, "RunPod API key (RunPod console > Settings > API Keys)",
                              config_key="runpod.apiKey"),)
    options_model = RunPodOptions

    # ------------------------------------------------------------------ validation
    def check(self, spec: NodeSpec, opts: RunPodOptions) -> list[Problem]:
        problems = []
        if opts.volume == "network" and opts.cloud != "SECURE":
            problems.append(Problem(key="runpod.volume", value=opts.volume,
                                    message="network volumes exist only in Secure Cloud data centres",
                                    allowed="persistent (with runpod.cloud: COMMUNITY), or runpod.cloud: SECURE"))
        if opts.network_volume_id and opts.volume != "network":
            problems.append(Problem(key="runpod.networkVolumeId", value=opts.network_volume_id,
                                    message="is only used with runpod.volume: network"))
        return problems

    # ------------------------------------------------------------------ naming
    def pod_name(self, spec: NodeSpec, stack: str, project: str) -> str:
        return self.options(spec).pod_name or f"{project}-{stack}"

    def volume_name(self, spec: NodeSpec, stack: str, project: str) -> str:
        return f"{self.pod_name(spec, stack, project)}-{spec.cache.volume}"

    # ------------------------------------------------------------------ rendering
    @staticmethod
    def pod_args(command: EngineCommand) -> str:
        """`args` for the image's entrypoint: one shell-quoted string of the argv after it.

        An engine that takes its API key from a file (SGLang) gets it written from the environment
        at start (EngineCommand.launch_argv), so that the key is never part of the pod's args."""
        if command.api_key_file_flag:
            if command.image_entrypoint:
                raise GlmserveError([Problem(
                    key="engine.name", value=command.engine,
                    message="takes its API key from a file, and its image has an entrypoint that "
                            "glmserve cannot wrap to write it from the environment")])
            return shlex.join(command.launch_argv())
        return shlex.join(command.args_after_entrypoint())

    def secret_env(self, spec: NodeSpec, command: EngineCommand) -> dict[str, Optional[str]]:
        """Env entries that carry secrets: by value (None here; filled from Pulumi secrets at up)
        or a reference to a RunPod-stored secret (`secrets.<x>.name`)."""
        env: dict[str, Optional[str]] = {}
        hf = spec.secrets.hf_token
        if hf is not None:
            env[HF_TOKEN_ENV] = runpod_secret_ref(hf.name) if hf.name else None
        key = spec.secrets.api_key
        env[command.api_key_env] = runpod_secret_ref(key.name) if key is not None and key.name else None
        env.update({k: None for k in spec.engine.secret_env_names})
        return env

    def deploy_variables(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> dict[str, Any]:
        """Everything templates/runpod/pod.json.j2 needs, without secret values ([secret])."""
        opts = self.options(spec)
        env = dict(spec.engine.plain_env)
        env.update({k: (REDACTED if v is None else v) for k, v in self.secret_env(spec, command).items()})
        network = opts.volume == "network"
        creates_volume = network and not opts.network_volume_id
        volume_dc = opts.volume_data_center or (opts.data_center_ids[0] if opts.data_center_ids else None)
        if network and creates_volume:
            volume_id = f"<id of network volume {self.volume_name(spec, stack, project)!r}, created at up>"
            dcs = [volume_dc or f"<the volume's data centre: most {spec.gpu.type} stock in Secure Cloud, chosen at up>"]
        elif network:
            volume_id, dcs = opts.network_volume_id, []        # RunPod places the pod with its volume
        else:
            volume_id, dcs = None, list(opts.data_center_ids)
        return {
            "stack": stack, "project": project,
            "name": self.pod_name(spec, stack, project),
            "image": spec.engine.image,
            "gpu_id": self.gpu_id(spec.gpu.type),
            "gpu_count": spec.gpu.count,
            "allowed_cuda_versions": list(opts.allowed_cuda_versions),
            "cloud": opts.cloud,
            "data_center_ids": dcs,
            "args": self.pod_args(command),
            "disk": opts.container_disk_gib,
            "env": env,
            "ports": [f"{spec.serving.port}/http"],
            "mount_kind": opts.volume,
            "mount_path": spec.cache.mount_path,
            "mount_size": spec.cache.size_gib if not network else None,
            "volume_id": volume_id,
            # Not part of the body: the network volume glmserve creates, and the pod's state.
            "volume": {"name": self.volume_name(spec, stack, project), "size": spec.cache.size_gib,
                       "dataCenter": volume_dc, "type": opts.volume_type} if creates_volume else None,
            "state": opts.state,
        }

    def artifact(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> str:
        from providers.runpod.podbody import render_pod_body

        body = render_pod_body(self.deploy_variables(spec, command, stack, project))
        return json.dumps(body, indent=2) + "\n"

    # ------------------------------------------------------------------ pre-flight
    def preflight(self, spec: NodeSpec, log=None, warn=None) -> Optional[Any]:
        """Stock and list price for the pod, shown in preview. Offline (no RUNPOD_API_KEY) it is
        skipped; a failure to reach the catalog is a warning, never an error."""
        import pulumi

        from infra.common.http import HttpError, RetryPolicy

        from providers.runpod.client import RunPodClient, RunPodError, check_availability, no_availability_message

        log = log or pulumi.log.info
        warn = warn or pulumi.log.warn
        opts = self.options(spec)
        key = opts.api_key.get_secret_value() if opts.api_key is not None else os.environ.get(API_KEY_ENV)
        if not key or key == ENCRYPTED:
            log(f"RunPod pre-flight skipped: no API key ({API_KEY_ENV} or runpod.apiKey); stock and price are checked at up")
            return None
        gpu_id = self.gpu_id(spec.gpu.type)
        policy = RetryPolicy.from_env(attempts=2, deadline=20.0, timeout=10.0)
        try:
            with RunPodClient(api_url(opts.api_url), key, policy=policy) as client:
                a = check_availability(client, gpu_id, spec.gpu.count, opts.cloud)
        except (HttpError, RunPodError) as e:
            warn(f"RunPod pre-flight: could not read the GPU catalog ({e})")
            return None
        log(a.describe())
        if a.level == "NONE":
            warn(no_availability_message(a, opts.fail_on_no_availability))
        return a

    # ------------------------------------------------------------------ resources
    def create_resources(self, ctx: DeployContext) -> Endpoint:
        import pulumi

        from providers.runpod.resources import NetworkVolume, Pod

        spec, opts = ctx.spec, self.options(ctx.spec)
        v = self.deploy_variables(spec, ctx.command, ctx.stack, ctx.project)
        self.preflight(spec)
        state = pod_state(spec, opts)        # runpod.state, or the warm window's (providers/runpod/schedule.py)

        base = f"{ctx.project}-{ctx.stack}"
        child = pulumi.ResourceOptions(parent=ctx.parent)
        # Resolved here (option, else env) and kept in state, so that destroy reaches the same API.
        api = opts.api_url or os.environ.get("RUNPOD_API_URL", "")
        common = {"apiUrl": api, "gpuId": v["gpu_id"], "gpuCount": v["gpu_count"],
                  "failOnNoAvailability": opts.fail_on_no_availability,
                  # The stack instance's identity: on the pod's env, in the volume's name.
                  "owner": ctx.owner}
        if opts.api_key is not None:
            common["apiKey"] = pulumi.Output.secret(opts.api_key.get_secret_value())
        volume = None
        volume_id: Any = v["volume_id"]
        dcs: Any = v["data_center_ids"]
        if v["volume"] is not None:
            vol = v["volume"]
            volume = NetworkVolume(f"{base}-volume", {
                **common, "name": vol["name"], "size": vol["size"], "podName": v["name"],
                "requestedDataCenter": vol["dataCenter"] or "", "volumeType": vol["type"] or "",
            }, opts=child)
            volume_id = volume.id
            dcs = volume.dataCenter.apply(lambda d: [d] if d else [])

        secret_values = {k: v for k, v in self.secret_env(spec, ctx.command).items() if v is None}
        plain_env = {k: val for k, val in v["env"].items() if k not in secret_values}
        sources: dict[str, Any] = {}
        if HF_TOKEN_ENV in secret_values and ctx.hf_token is not None:
            sources[HF_TOKEN_ENV] = ctx.hf_token
        if ctx.command.api_key_env in secret_values and ctx.api_key is not None:
            sources[ctx.command.api_key_env] = ctx.api_key
        sources.update(ctx.secret_env)
        env = pulumi.Output.secret(pulumi.Output.all(**sources).apply(lambda s: {**plain_env, **s})) \
            if sources else pulumi.Output.secret(plain_env)

        props = {
            **common,
            "name": v["name"], "image": v["image"], "allowedCudaVersions": v["allowed_cuda_versions"],
            "cloud": v["cloud"], "dataCenterIds": dcs, "args": v["args"], "disk": v["disk"], "env": env,
            "secretEnvKeys": sorted(sources), "ports": v["ports"], "port": spec.serving.port,
            "mountKind": v["mount_kind"], "mountPath": v["mount_path"], "mountSize": v["mount_size"],
            "volumeId": volume_id, "state": state,
            "proxyUrlTemplate": proxy_url_template(opts.proxy_url_template),
            "startupSeconds": spec.timeouts.startup_seconds,
            "pollSeconds": spec.readiness.poll_interval_seconds,
        }
        pod = Pod(f"{base}-pod", props, opts=pulumi.ResourceOptions(
            parent=ctx.parent, depends_on=[volume] if volume is not None else None))

        out: dict[str, Any] = {"podId": pod.podId, "podName": v["name"], "state": state,
                               "costPerHour": pod.costPerHour}
        if volume is not None:
            out["volumeId"] = volume.id
        elif opts.network_volume_id:
            out["volumeId"] = opts.network_volume_id
        # The gate never runs against a stopped pod: it exists only while the pod should run.
        return Endpoint(url=pod.url, revision=pod.revision if state == "running" else None, outputs=out)


PROVIDER = RunPodProvider()
