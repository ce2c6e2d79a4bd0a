"""What bench measures: the stack's endpoint, read from its outputs (never printed: the key).

The base URL is the ``baseUrl`` output unless ``--base-url`` names the endpoint as reachable
from here (a port-forward to an in-cluster service, a tunnel); the API key is the ``apiKey``
output, or ``GLMSERVE_API_KEY`` when the key lives only in a provider-side secret. A check
before the sweep turns a wrong key or an unreachable endpoint into one clear error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

import openai

from infra.common.errors import GlmserveError, Problem
from infra.common.secrets import register

API_KEY_ENV = "GLMSERVE_API_KEY"


@dataclass(frozen=True)
class Target:
    stack: str
    base_url: str
    model: str
    api_key: str = field(repr=False)
    outputs: dict[str, Any] = field(default_factory=dict, repr=False)   # the non-secret outputs

    @property
    def planner_max_concurrency(self) -> Optional[float]:
        cap = self.outputs.get("capacity")
        value = cap.get("max_concurrency") if isinstance(cap, dict) else None
        return float(value) if isinstance(value, (int, float)) else None


def stack_outputs(stack: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain outputs, secret outputs) of a deployed stack, through the Pulumi engine."""
    from infra.deploy.workspace import register_credentials
    from infra.deploy.workspace import stack_outputs as read_outputs

    register_credentials()
    found = read_outputs(stack)
    if found is None:
        raise GlmserveError([Problem(key="--stack", value=stack, message="no such stack in the state backend",
                                     allowed="a stack deployed with `glmserve up --stack ...`")],
                            headline="nothing to benchmark")
    return found


def resolve(stack: str, plain: dict[str, Any], secret: dict[str, Any], base_url: Optional[str] = None) -> Target:
    url = base_url or plain.get("baseUrl")
    problems = []
    if not url:
        problems.append(Problem(key="baseUrl", message=f"stack {stack} has no endpoint in its outputs "
                                f"(provider {plain.get('provider', '?')}: nothing serves, or `up` has not run)",
                                allowed="deploy the stack, or give --base-url URL (ending in /v1)"))
    key = secret.get("apiKey") or plain.get("apiKey") or os.environ.get(API_KEY_ENV)
    if not key:
        problems.append(Problem(key="apiKey", message=f"stack {stack} exports no API key",
                                allowed=f"set {API_KEY_ENV} to the key the endpoint expects"))
    model = plain.get("modelName")
    if not model:
        problems.append(Problem(key="modelName", message=f"stack {stack} exports no served model name",
                                allowed="deploy the stack with `glmserve up`"))
    if problems:
        raise GlmserveError(problems, headline="nothing to benchmark")
    register(key)
    return Target(stack=stack, base_url=str(url).rstrip("/"), model=str(model), api_key=str(key), outputs=plain)


def preflight(target: Target, timeout: float = 15.0) -> None:
    """One authenticated request before any load: a wrong key or an unreachable endpoint is
    a clear error, not a sweep of failed requests."""
    client = openai.OpenAI(base_url=target.base_url, api_key=target.api_key, max_retries=0, timeout=timeout)
    try:
        served = [m.id for m in client.models.list().data]
    except openai.AuthenticationError:
        raise GlmserveError([Problem(key="apiKey", message=f"the endpoint {target.base_url} refused the API key (401)",
                                     allowed="the key in the stack outputs, or GLMSERVE_API_KEY")],
                            headline="cannot benchmark") from None
    except openai.APIConnectionError:
        raise GlmserveError([Problem(key="baseUrl", value=target.base_url, message="the endpoint is not reachable",
                                     allowed="a running endpoint: check `glmserve refresh`, or give --base-url")],
                            headline="cannot benchmark") from None
    except openai.APIStatusError as e:
        raise GlmserveError([Problem(key="baseUrl", value=target.base_url,
                                     message=f"GET /models answered {e.status_code}",
                                     allowed="a healthy OpenAI-compatible endpoint")],
                            headline="cannot benchmark") from None
    finally:
        client.close()
    if target.model not in served:
        raise GlmserveError([Problem(key="modelName", value=target.model, message="the endpoint does not serve it",
                                     allowed=", ".join(served) or "(none listed)")], headline="cannot benchmark")
