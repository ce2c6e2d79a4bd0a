"""The `glmserve:modal` block: what only Modal understands, validated by this model."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from providers.base import ProviderOptions

# Longest a Modal function may run (its `timeout`), in seconds.
MAX_TIMEOUT = 24 * 3600


class ModalOptions(ProviderOptions):
    app_name: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    environment: Optional[str] = None
    # Refused when true (providers/modal/snapshot.py): a CPU memory snapshot holds nothing of
    # an engine that serve() starts as a subprocess. Kept so that the refusal can say why.
    memory_snapshot: bool = False
    # Modal GPU memory snapshot of a warmed, sleeping vLLM (alpha; one GPU only, see
    # providers/modal/snapshot.py): cold starts restore it instead of loading the weights.
    gpu_snapshot: bool = False
    concurrent_inputs: int = Field(default=64, ge=1, le=1000)
    # `recreate` stops the running container before the new one starts: a `rolling` deploy
    # briefly runs two 8x H200 containers (twice the cost, and twice the capacity to find).
    deploy_strategy: Literal["recreate", "rolling"] = "recreate"
    # Longest a single request may run before Modal cancels it.
    request_timeout_seconds: int = Field(default=3600, ge=10, le=MAX_TIMEOUT)
