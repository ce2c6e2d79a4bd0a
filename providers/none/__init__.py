"""The `none` provider: no cloud resources, only the component, its API key and outputs."""
from providers.none.provider import PROVIDER

__all__ = ["PROVIDER"]
