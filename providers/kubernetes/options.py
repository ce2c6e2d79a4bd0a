"""The `glmserve:kubernetes` block: what only Kubernetes understands, validated by this model."""
from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, field_validator

from infra.spec.shapes import CredentialUrl
from providers.base import ProviderOptions

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
MAX_NAME = 40        # room for the suffixes controllers add (pods, claims, revisions)


class Toleration(ProviderOptions):
    key: Optional[str] = None
    operator: Literal["Exists", "Equal"] = "Exists"
    value: Optional[str] = None
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None
    toleration_seconds: Optional[int] = Field(default=None, ge=0)


class IngressOptions(ProviderOptions):
    host: str = Field(pattern=r"^[a-z0-9*]([-a-z0-9.]*[a-z0-9])?$")
    class_name: Optional[str] = None
    path: str = Field(default="/", pattern=r"^/")
    tls_secret_name: Optional[str] = Field(default=None, pattern=DNS_LABEL)
    annotations: dict[str, str] = Field(default_factory=dict)


class GatewayOptions(ProviderOptions):
    """A Gateway API HTTPRoute to the Service, attached to an existing Gateway."""

    gateway: str = Field(pattern=DNS_LABEL)
    gateway_namespace: Optional[str] = Field(default=None, pattern=DNS_LABEL)
    section_name: Optional[str] = None
    hostnames: list[str] = Field(default_factory=list)
    path: str = Field(default="/", pattern=r"^/")


class KubernetesOptions(ProviderOptions):
    # Which cluster: a kubeconfig file and context (default: KUBECONFIG, ~/.kube/config, in-cluster).
    kubeconfig: Optional[str] = None
    context: Optional[str] = None
    namespace: Optional[str] = Field(default=None, pattern=DNS_LABEL, max_length=63)
    # Create (and on destroy delete) the namespace. Off for a namespace someone else manages.
    create_namespace: bool = True
    # Base name of every object (default: <project>-<stack>).
    name: Optional[str] = Field(default=None, pattern=DNS_LABEL, max_length=MAX_NAME)
    workload: Literal["auto", "Deployment", "StatefulSet", "LeaderWorkerSet"] = "auto"
    # Replicas behind the Service (default: scaling.maxReplicas). Each is a whole engine.
    replicas: Optional[int] = Field(default=None, ge=0, le=64)
    # A prebuilt image (engine.setupCommands and pipPackages baked in). Without it the
    # container runs them at start on top of engine.image.
    image: Optional[str] = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = Field(default_factory=list)
    service_account_name: Optional[str] = None
    priority_class_name: Optional[str] = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    # Default: tolerate the usual taint of GPU nodes (nvidia.com/gpu, NoSchedule).
    tolerations: Optional[list[Toleration]] = None
    cpu: str = Field(default="32", pattern=QUANTITY)
    memory: str = Field(default="256Gi", pattern=QUANTITY)
    memory_limit: Optional[str] = Field(default=None, pattern=QUANTITY)
    # /dev/shm (memory-backed emptyDir) for NCCL between the tensor-parallel workers.
    shm_size_gib: int = Field(default=64, ge=1, le=4096)
    storage_class: Optional[str] = None
    cache_access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = "ReadWriteOnce"
    # Keep the weight cache on destroy (re-downloading ~700 GiB takes an hour): the claim, and
    # the namespace when glmserve created it (deleting a namespace deletes its claims).
    retain_cache: bool = False
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    ingress: Optional[IngressOptions] = None
    gateway: Optional[GatewayOptions] = None
    labels: dict[str, str] = Field(default_factory=dict)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    # scaling.warmSchedule on this cluster (providers/kubernetes/schedule.py): a KEDA ScaledObject
    # with cron triggers when the cluster runs KEDA, else CronJobs running `kubectl scale` in
    # this image (kubernetes/kubernetes#116672 publishes it at registry.k8s.io/kubectl).
    keda: bool = False
    schedule_image: str = Field(default="registry.k8s.io/kubectl:v1.37.2", min_length=3, max_length=512,
                                pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
    # Wait for the rollout at `up` (bounded by timeouts.startupSeconds).
    wait: bool = True
    rollout_poll_seconds: float = Field(default=5.0, gt=0, le=300)
    # Also run the shared readiness gate (/health, /v1/models) against this URL (e.g. the
    # Ingress) once the rollout is done.
    # The gate sends the endpoint's API key there: https, or http to this machine only.
    gate_url: Optional[CredentialUrl] = None

    @field_validator("labels", "node_selector")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        # Kubernetes' label syntax (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set):
        # an optional DNS-subdomain prefix and a name of at most 63 characters; the value at
        # most 63 characters of the same set, or empty.
        for key, val in v.items():
            prefix, _, name = key.rpartition("/")
            if (not LABEL_NAME.fullmatch(name) or len(name) > 63 or len(prefix) > 253
                    or (prefix and not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", prefix))):
                raise ValueError(f"label key {key!r} is not a Kubernetes label key (letters, digits, '-', '_', '.', "
                                 "at most 63, optionally after a DNS prefix and '/')")
            if not isinstance(val, str) or len(val) > 63 or (val and not LABEL_NAME.fullmatch(val)):
                raise ValueError(f"label value {val!r} of {key!r} is not a Kubernetes label value (letters, digits, "
                                 "'-', '_', '.', at most 63, starting and ending with a letter or digit)")
        return v
