"""Modal: the node as a serverless web function on 8x H200 that scales to zero."""
from providers.modal.provider import PROVIDER

__all__ = ["PROVIDER"]
