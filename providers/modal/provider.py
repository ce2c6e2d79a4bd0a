"""Modal: the node as a serverless web function on 8x H200 that scales to zero.

One generated module (templates/modal/app.py.j2) carries the seed app's design with its
mistakes fixed: `max_containers` (not `max_replicas`), the function's own startup timeout
equal to the web server's, and real JSON in the engine argv.

Requests reach containers through Modal's web endpoint for the `serve` function; with
`scaling.maxReplicas > 1` Modal starts more containers under load and spreads requests over
them, up to `modal.concurrentInputs` requests in flight per container.
"""
from __future__ import annotations

from typing import Any, Optional

from infra.common.errors import GlmserveError, Problem
from infra.deploy.target import DeployContext, Endpoint
from infra.engine.render import EngineCommand
from infra.engine.templates import environment
from infra.spec.model import NodeSpec
from providers.base import Credential, Feature, Provider
from providers.dynamic import HF_TOKEN_ENV
from providers.modal.options import MAX_TIMEOUT, ModalOptions
from providers.modal.schedule import cron_functions, schedule_props
from providers.modal.snapshot import snapshot_problems, snapshot_variables

# Modal object names are shorter than 64 characters (modal/_utils/name_utils.py, check_object_name).
MAX_NAME = 63
OWNER_PLACEHOLDER = "OWNER"
# Modal's accepted range for a function's scale-down window, in seconds.
SCALEDOWN_RANGE = (2, 3600)


class ModalProvider(Provider):
    name = "modal"
    title = "Modal"
    unsupported = {
        Feature.MULTI_NODE: "Modal's clustered (multi-node) functions are in beta; glmserve runs one engine "
                            "in one container of up to 8 GPUs",
    }
    credentials = (
        Credential("MODAL_TOKEN_ID", "Modal token id (modal token new, or the dashboard)"),
        Credential("MODAL_TOKEN_SECRET", "Modal token secret"),
    )
    options_model = ModalOptions

    def check(self, spec: NodeSpec, opts: ModalOptions) -> list[Problem]:
        problems = []
        lo, hi = SCALEDOWN_RANGE
        if not lo <= spec.scaling.scaledown_window <= hi:
            problems.append(Problem(key="scaling.scaledownWindow", value=spec.scaling.scaledown_window,
                                    message="outside Modal's scale-down window range", allowed=f"[{lo}, {hi}] seconds"))
        if spec.timeouts.startup_seconds > MAX_TIMEOUT:
            problems.append(Problem(key="timeouts.startupSeconds", value=spec.timeouts.startup_seconds,
                                    message="longer than Modal allows", allowed=f"<= {MAX_TIMEOUT}"))
        problems += snapshot_problems(spec, opts)
        return problems

    def apply_schedule(self, spec: NodeSpec, stack: str, project: str, replicas: int) -> str:
        """`glmserve schedule apply`: the app's cron functions keep the window; this moves the floor
        now (after a failed cron run, or by hand)."""
        from providers.modal.client import ModalError, set_min_containers

        app = self.app_name(spec, stack, project)
        opts = self.options(spec)
        try:
            set_min_containers(app, opts.environment, replicas, opts.gpu_snapshot)
        except ModalError as e:
            raise GlmserveError([Problem(key="--stack", value=stack, message=str(e),
                                         allowed=f"a deployed stack (glmserve up --stack {stack} first)")]) from None
        return f"Modal app {app}: serve keeps min_containers = {replicas}"

    # ------------------------------------------------------------------ naming
    def app_name(self, spec: NodeSpec, stack: str, project: str) -> str:
        return self.options(spec).app_name or f"{project}-{stack}"

    def secret_names(self, spec: NodeSpec, stack: str, project: str, owner: Optional[str] = None) -> dict[str, str]:
        """Which Modal secret carries each credential: the user's named one, or one that
        glmserve creates from a Pulumi secret value (or the generated API key). Modal has no
        tags on secrets, so the names glmserve creates carry the stack instance's identity:
        two checkouts of one stack never write each other's secret. Without a deployed
        instance (render, diff) the identity shows as ``OWNER``."""
        app = self.app_name(spec, stack, project)
        owner = owner or OWNER_PLACEHOLDER

        def own(what: str) -> str:
            suffix = f"-{what}-{owner}"
            return app[: MAX_NAME - len(suffix)] + suffix

        names = {}
        hf = spec.secrets.hf_token
        if hf is not None:
            names["hf_token"] = hf.name or own("hf-token")
        key = spec.secrets.api_key
        names["api_key"] = key.name if key is not None and key.name else own("api-key")
        if spec.engine.secret_env_names:
            names["engine_env"] = own("engine-env")
        return names

    # ------------------------------------------------------------------ rendering
    def deploy_variables(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str,
                         owner: Optional[str] = None) -> dict[str, Any]:
        opts = self.options(spec)
        return {
            "stack": stack, "project": project,
            "app_name": self.app_name(spec, stack, project),
            "argv": command.argv,
            "api_key_file_flag": command.api_key_file_flag, "api_key_env": command.api_key_env,
            "image": spec.engine.image,
            "setup_commands": spec.engine.setup_commands,
            "pip_packages": spec.engine.pip_packages,
            "env": spec.engine.plain_env,
            "gpu": f"{self.gpu_id(spec.gpu.type)}:{spec.gpu.count}",
            "min_containers": spec.scaling.min_replicas,
            "max_containers": spec.scaling.max_replicas,
            "scaledown_window": spec.scaling.scaledown_window,
            "startup_timeout": spec.timeouts.startup_seconds,
            "timeout": opts.request_timeout_seconds,
            "secret_names": list(self.secret_names(spec, stack, project, owner).values()),
            "mount_path": spec.cache.mount_path,
            "volume": spec.cache.volume,
            "warm_crons": cron_functions(spec),
            **snapshot_variables(spec, opts, command.argv),
            "concurrent_inputs": opts.concurrent_inputs,
            "port": spec.serving.port,
        }

    def artifact(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str,
                 owner: Optional[str] = None) -> str:
        variables = self.deploy_variables(spec, command, stack, project, owner)
        return environment().get_template("modal/app.py.j2").render(**variables)

    # ------------------------------------------------------------------ resources
    def create_resources(self, ctx: DeployContext) -> Endpoint:
        import pulumi

        from providers.modal.resources import ModalApp, ModalSecret

        spec, opts = ctx.spec, self.options(ctx.spec)
        app_name = self.app_name(spec, ctx.stack, ctx.project)
        owner = pulumi.Output.from_input(ctx.owner)
        names = owner.apply(lambda o: self.secret_names(spec, ctx.stack, ctx.project, o))
        child = pulumi.ResourceOptions(parent=ctx.parent)
        secrets = []
        if spec.secrets.hf_token is not None and spec.secrets.hf_token.value is not None:
            secrets.append(ModalSecret(f"{app_name}-secret-hf-token", secret_name=names.apply(lambda n: n["hf_token"]),
                                       values=ctx.hf_token.apply(lambda v: {HF_TOKEN_ENV: v}),
                                       environment=opts.environment, opts=child))
        if ctx.api_key is not None:
            secrets.append(ModalSecret(f"{app_name}-secret-api-key", secret_name=names.apply(lambda n: n["api_key"]),
                                       values=ctx.api_key.apply(lambda v: {ctx.command.api_key_env: v}),
                                       environment=opts.environment, opts=child))
        if ctx.secret_env:
            # engine.env values set with `pulumi config set --secret`: a Modal secret, never the module.
            secrets.append(ModalSecret(f"{app_name}-secret-engine-env", secret_name=names.apply(lambda n: n["engine_env"]),
                                       values=pulumi.Output.all(**ctx.secret_env),
                                       environment=opts.environment, opts=child))
        source = owner.apply(lambda o: self.artifact(spec, ctx.command, ctx.stack, ctx.project, o))
        app = ModalApp(app_name, app_name=app_name, environment=opts.environment, source=source, owner=ctx.owner,
                       secret_revision=names.apply(lambda n: sorted(n.values())), strategy=opts.deploy_strategy,
                       schedule=schedule_props(spec),
                       opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=secrets))
        return Endpoint(url=app.url, revision=app.revision,
                        outputs={"appName": app_name, "appId": app.app_id})


PROVIDER = ModalProvider()
