"""The contract between the ServingNode component and a provider at `pulumi up`.

The component hands a provider a ``DeployContext`` (plain data plus secret Outputs); the
provider creates its child resources and hands back an ``Endpoint``. The component owns what
is the same for every target: the readiness gate in front of the endpoint, and the ``url`` /
``baseUrl`` outputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from infra.engine.render import EngineCommand
from infra.spec.model import NodeSpec


@dataclass(frozen=True)
class DeployContext:
    spec: NodeSpec
    command: EngineCommand
    stack: str
    project: str
    parent: Any                      # the ServingNode ComponentResource: parent of every child
    api_key: Any                     # pulumi.Output[str] (secret), or None for a provider-side named secret
    hf_token: Any = None             # pulumi.Output[str] (secret), or None
    # This stack instance's identity (infra/deploy/identity.py), pulumi.Output[str]: every cloud
    # resource carries it, and only resources that carry it are adopted, changed or deleted.
    owner: Any = None
    # engine.env variables set with `pulumi config set --secret` (their names are
    # spec.engine.secret_env_names): name -> pulumi.Output[str] (secret). A provider hands
    # them to the container only through its secret mechanism, never in what it renders.
    secret_env: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    """Where the deployed engine answers, and what the readiness gate guards.

    ``url`` is the server root (OpenAI-compatible under ``/v1``), a str or an Output, or None
    when nothing serves (the ``none`` provider). ``revision`` changes whenever what serves
    behind ``url`` is replaced or restarted; the gate runs again then. None: no gate (nothing
    runs, e.g. a stopped pod, or the URL is not reachable from where `up` runs)."""

    url: Any = None
    revision: Optional[Any] = None
    outputs: dict[str, Any] = field(default_factory=dict)
