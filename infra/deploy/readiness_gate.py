"""The readiness gate as a resource of its own.

Deploying and becoming ready are two steps: if the gate fails, the deployment already
exists and is in state, so `pulumi destroy` removes it (no billable leak). The gate runs
again whenever what it guards changes (`revision`).
"""
from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from infra.common.secrets import register
from infra.deploy.readiness_check import Gate, ReadinessError, wait_ready


class ReadinessProvider(ResourceProvider):
    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        register(props.get("apiKey"))
        gate = Gate(base_url=props["url"], api_key=props.get("apiKey") or None, model_name=props["modelName"],
                    timeout_seconds=float(props["timeoutSeconds"]), poll_seconds=float(props["pollSeconds"]),
                    request_timeout=float(props["requestTimeout"]), smoke_test=bool(props.get("smokeTest")),
                    tool_call_check=bool(props.get("toolCallCheck")))
        try:
            wait_ready(gate, log=lambda m: pulumi.log.info(m))
        except ReadinessError as e:
            raise Exception(f"{e}. The deployment is kept in state: fix it and run up again, or destroy it.") from None
        return {**props, "ready": True}

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"ready-{props['revision']}", outs=self._run(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("url", "revision", "modelName", "apiKey", "smokeTest", "toolCallCheck")
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys), replaces=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._run(news))


class Readiness(Resource):
    ready: pulumi.Output[bool]

    def __init__(self, name: str, *, url, revision, model_name: str, api_key, timeout_seconds: float,
                 poll_seconds: float, request_timeout: float, smoke_test: bool, tool_call_check: bool,
                 opts: Optional[pulumi.ResourceOptions] = None):
        props = {"url": url, "revision": revision, "modelName": model_name, "apiKey": api_key,
                 "timeoutSeconds": timeout_seconds, "pollSeconds": poll_seconds,
                 "requestTimeout": request_timeout, "smokeTest": smoke_test, "toolCallCheck": tool_call_check,
                 "ready": None}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["apiKey"]))
        super().__init__(ReadinessProvider(), name, props, opts)
