"""RunPod: the node as one dedicated pod with 8x NVIDIA H200, over RunPod's REST API v2."""
from providers.runpod.provider import PROVIDER

__all__ = ["PROVIDER"]
