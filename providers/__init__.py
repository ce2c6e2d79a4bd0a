"""Provider registry: one module per target, imported only when a stack selects it."""
from __future__ import annotations

import importlib

from infra.errors import GlmserveError, Problem

# name -> module path; each module defines PROVIDER, an instance of providers.base.Provider.
REGISTRY = {
    "none": "providers.none",
    "modal": "providers.modal",
    "runpod": "providers.runpod",
    "kubernetes": "providers.kubernetes",
}


def get(name: str):
    if name not in REGISTRY:
        import difflib
        near = difflib.get_close_matches(name, list(REGISTRY), n=1)
        raise GlmserveError([Problem(
            key="provider", value=name,
            message="unknown provider" + (f" (did you mean '{near[0]}'?)" if near else ""),
            allowed=", ".join(REGISTRY))])
    try:
        module = importlib.import_module(REGISTRY[name])
    except ModuleNotFoundError as e:
        raise GlmserveError([Problem(key="provider", value=name,
                                     message=f"the {name} provider is not available here ({e.name} is not installed)")]) from None
    return module.PROVIDER
