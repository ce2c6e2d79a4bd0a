"""Modal: the node as a serverless web function on 8x H200 that scales to zero.

One generated module (templates/modal/app.py.j2) carries the seed app's design with its
mistakes fixed: `max_containers` (not `max_replicas`), the function's own startup timeout
equal to the web server's, and real JSON in the engine argv.

Requests reach containers through Modal's web endpoint for the `serve` function; with
`scaling.maxReplicas > 1` Modal starts more containers under load and spreads requests over
them, up to `modal.concurrentInputs` requests in flight per container.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from infra.common.errors import GlmserveError, Problem
from infra.engine.render import EngineCommand
from infra.engine.templates import environment
from infra.spec.model import NodeSpec
from infra.spec.gpus import gpu_catalog
from providers.base import Credential, DeployContext, Provider, ProviderOptions

MAX_GPUS_PER_CONTAINER = 8
SCALEDOWN_RANGE = (2, 3600)
MAX_TIMEOUT = 24 * 3600
HF_TOKEN_ENV = "HF_TOKEN"


class ModalOptions(ProviderOptions):
    app_name: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    environment: Optional[str] = None
    # Experimental: Modal memory snapshots of the CPU-side state after start-up.
    memory_snapshot: bool = False
    concurrent_inputs: int = Field(default=64, ge=1, le=1000)
    # `recreate` stops the running container before the new one starts: a `rolling` deploy
    # briefly runs two 8x H200 containers (twice the cost, and twice the capacity to find).
    deploy_strategy: Literal["recreate", "rolling"] = "recreate"
    # Longest a single request may run before Modal cancels it.
    request_timeout_seconds: int = Field(default=3600, ge=10, le=MAX_TIMEOUT)


class ModalProvider(Provider):
    name = "modal"
    credentials = (
        Credential("MODAL_TOKEN_ID", "Modal token id (modal token new, or the dashboard)"),
        Credential("MODAL_TOKEN_SECRET", "Modal token secret"),
    )
    options_model = ModalOptions

    def validate(self, spec: NodeSpec) -> None:
        super().validate(spec)
        problems = []
        modal_gpu = gpu_catalog()[spec.gpu.type].get("modal")
        if not modal_gpu:
            problems.append(Problem(key="gpu.type", value=spec.gpu.type, message="not offered by Modal",
                                    allowed=", ".join(k for k, v in gpu_catalog().items() if v.get("modal"))))
        if spec.gpu.count > MAX_GPUS_PER_CONTAINER:
            problems.append(Problem(key="gpu.count", value=spec.gpu.count,
                                    message="Modal containers have at most 8 GPUs", allowed="1, 2, 4, 8"))
        lo, hi = SCALEDOWN_RANGE
        if not lo <= spec.scaling.scaledown_window <= hi:
            problems.append(Problem(key="scaling.scaledownWindow", value=spec.scaling.scaledown_window,
                                    message="outside Modal's scale-down window range", allowed=f"[{lo}, {hi}] seconds"))
        if spec.timeouts.startup_seconds > MAX_TIMEOUT:
            problems.append(Problem(key="timeouts.startupSeconds", value=spec.timeouts.startup_seconds,
                                    message="longer than Modal allows", allowed=f"<= {MAX_TIMEOUT}"))
        if problems:
            raise GlmserveError(problems, headline="the node cannot be deployed on Modal")

    # ------------------------------------------------------------------ naming
    def app_name(self, spec: NodeSpec, stack: str, project: str) -> str:
        return self.options(spec).app_name or f"{project}-{stack}"

    def secret_names(self, spec: NodeSpec, stack: str, project: str) -> dict[str, str]:
        """Which Modal secret carries each credential: the user's named one, or one that
        glmserve creates from a Pulumi secret value (or the generated API key)."""
        app = self.app_name(spec, stack, project)
        names = {}
        hf = spec.secrets.hf_token
        if hf is not None:
            names["hf_token"] = hf.name or f"{app}-hf-token"
        key = spec.secrets.api_key
        names["api_key"] = key.name if key is not None and key.name else f"{app}-api-key"
        return names

    # ------------------------------------------------------------------ rendering
    def deploy_variables(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> dict[str, Any]:
        opts = self.options(spec)
        return {
            "stack": stack, "project": project,
            "app_name": self.app_name(spec, stack, project),
            "argv": command.argv,
            "api_key_flag": command.api_key_flag, "api_key_env": command.api_key_env,
            "image": spec.engine.image,
            "setup_commands": spec.engine.setup_commands,
            "pip_packages": spec.engine.pip_packages,
            "env": spec.engine.env,
            "gpu": f"{gpu_catalog()[spec.gpu.type]['modal']}:{spec.gpu.count}",
            "min_containers": spec.scaling.min_replicas,
            "max_containers": spec.scaling.max_replicas,
            "scaledown_window": spec.scaling.scaledown_window,
            "startup_timeout": spec.timeouts.startup_seconds,
            "timeout": opts.request_timeout_seconds,
            "secret_names": list(self.secret_names(spec, stack, project).values()),
            "mount_path": spec.cache.mount_path,
            "volume": spec.cache.volume,
            "memory_snapshot": opts.memory_snapshot,
            "concurrent_inputs": opts.concurrent_inputs,
            "port": spec.serving.port,
        }

    def artifact(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> str:
        variables = self.deploy_variables(spec, command, stack, project)
        return environment().get_template("modal/app.py.j2").render(**variables)

    # ------------------------------------------------------------------ resources
    def create_resources(self, ctx: DeployContext) -> dict[str, Any]:
        import pulumi

        from infra.deploy.readiness_gate import gate_for

        from .resources import ModalApp, ModalSecret

        spec, opts = ctx.spec, self.options(ctx.spec)
        app_name = self.app_name(spec, ctx.stack, ctx.project)
        names = self.secret_names(spec, ctx.stack, ctx.project)
        child = pulumi.ResourceOptions(parent=ctx.parent)
        secrets = []
        if spec.secrets.hf_token is not None and spec.secrets.hf_token.value is not None:
            secrets.append(ModalSecret(f"{app_name}-secret-hf-token", secret_name=names["hf_token"],
                                       values=ctx.hf_token.apply(lambda v: {HF_TOKEN_ENV: v}),
                                       environment=opts.environment, opts=child))
        if ctx.api_key is not None:
            secrets.append(ModalSecret(f"{app_name}-secret-api-key", secret_name=names["api_key"],
                                       values=ctx.api_key.apply(lambda v: {ctx.command.api_key_env: v}),
                                       environment=opts.environment, opts=child))
        source = self.artifact(spec, ctx.command, ctx.stack, ctx.project)
        app = ModalApp(app_name, app_name=app_name, environment=opts.environment, source=source,
                       secret_revision=sorted(names.values()), strategy=opts.deploy_strategy,
                       opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=secrets))
        gate = gate_for(ctx, f"{app_name}-ready", url=app.url, revision=app.revision)
        url = pulumi.Output.all(app.url, gate.ready).apply(lambda a: a[0])
        return {
            "url": url,
            "baseUrl": url.apply(lambda u: u.rstrip("/") + "/v1"),
            "appName": app_name,
            "appId": app.app_id,
        }


PROVIDER = ModalProvider()
