"""Kubernetes: the node on any GPU cluster, one replica, several, or one engine across nodes."""
from providers.kubernetes.provider import PROVIDER

__all__ = ["PROVIDER"]
