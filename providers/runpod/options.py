"""The `glmserve:runpod` block: what only RunPod understands, validated by this model."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, SecretStr

from infra.spec.shapes import CredentialUrl
from providers.base import ProviderOptions
from providers.runpod.client import proxy_template_problem

DC_PATTERN = r"^[A-Z]{2}-[A-Z0-9]+-\d+$"


class RunPodOptions(ProviderOptions):
    # SECURE: RunPod's own data centres (network volumes live only there); COMMUNITY: hosts
    # run by third parties, cheaper, persistent (host-local) volumes only.
    cloud: Literal["SECURE", "COMMUNITY"] = "SECURE"
    # Where the weight cache lives: a network volume (survives the pod, pins it to the
    # volume's data centre) or the pod's persistent host-local volume (faster reads; lost
    # when the pod is terminated).
    volume: Literal["network", "persistent"] = "network"
    # running: the pod runs and the readiness gate guards it; stopped: the pod is stopped
    # (GPUs released, billing for GPUs stops) but keeps its volume; `running` starts it again.
    state: Literal["running", "stopped"] = "running"
    # Preferred data centres for the pod (empty: RunPod chooses). With a network volume the
    # pod goes to the volume's data centre; the first entry is where the volume is created.
    data_center_ids: list[str] = Field(default_factory=list)
    # Where glmserve creates the network volume. Default: dataCenterIds[0], else the Secure
    # Cloud data centre with the most stock for the GPU and count (live catalog, at create).
    volume_data_center: Optional[str] = Field(default=None, pattern=DC_PATTERN)
    volume_type: Optional[Literal["STANDARD", "HIGH_PERFORMANCE"]] = None
    # Use an existing network volume (not created or deleted by glmserve).
    network_volume_id: Optional[str] = Field(default=None, min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    # The pod's name, the key for adopting a pod that a killed `up` created. Default:
    # "<project>-<stack>" (e.g. glmserve-runpod-prod).
    pod_name: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    # Container disk (GB): the image and scratch space; the weights live on the volume.
    container_disk_gib: int = Field(default=100, ge=10, le=2000)
    allowed_cuda_versions: list[str] = Field(default_factory=list)
    # Fail `up` before creating anything when the catalog reports no stock (default: warn).
    fail_on_no_availability: bool = False
    # REST API base (the OpenAPI document's server). Also env RUNPOD_API_URL. The API key is
    # sent there: https, or http to this machine only (infra/spec/shapes.py).
    api_url: Optional[CredentialUrl] = None
    # The RunPod API key from stack config (`pulumi config set --secret --path
    # glmserve:runpod.apiKey ...`); else env RUNPOD_API_KEY. Kept in state as a secret so that
    # refresh and destroy reach the API with the same key.
    api_key: Optional[SecretStr] = None
    # How a pod's HTTP port is reached. Also env RUNPOD_PROXY_URL_TEMPLATE.
    proxy_url_template: Optional[str] = None

    @field_validator("data_center_ids")
    @classmethod
    def _dcs(cls, v: list[str]) -> list[str]:
        import re
        for d in v:
            if not re.fullmatch(DC_PATTERN, d):
                raise ValueError(f"{d!r} is not a RunPod data centre id (like US-KS-2)")
        if len(set(v)) != len(v):
            raise ValueError("data centre ids must not repeat")
        return v

    @field_validator("allowed_cuda_versions")
    @classmethod
    def _cuda(cls, v: list[str]) -> list[str]:
        import re
        for c in v:
            if not re.fullmatch(r"\d+\.\d+", c):
                raise ValueError(f"{c!r} is not a CUDA version like 12.8")
        return v

    @field_validator("proxy_url_template")
    @classmethod
    def _proxy(cls, v: Optional[str]) -> Optional[str]:
        problem = proxy_template_problem(v) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v
