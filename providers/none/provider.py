"""The `none` provider: no cloud resources, only the component, its API key and outputs.

Useful for dry environments and CI, and the way to review what a node would run.
"""
from __future__ import annotations

import json
from typing import Any

from infra.deploy.target import DeployContext, Endpoint
from providers.base import Provider


class NoneProvider(Provider):
    name = "none"
    title = "the none provider"

    def deploy_variables(self, spec, command, stack, project) -> dict[str, Any]:
        return {"argv": command.argv, "model": spec.model.served_name, "stack": stack}

    def artifact(self, spec, command, stack, project) -> str:
        return json.dumps(self.deploy_variables(spec, command, stack, project), indent=2) + "\n"

    def create_resources(self, ctx: DeployContext) -> Endpoint:
        return Endpoint()


PROVIDER = NoneProvider()
