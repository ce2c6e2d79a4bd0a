"""Which providers are installed: a plugin registry over Python entry points.

Each provider package registers itself with one line in ``pyproject.toml``::

    [project.entry-points."glmserve.providers"]
    modal = "providers.modal:PROVIDER"

The core never imports a provider package: it asks this registry for a provider by name and
talks to it through the hooks of ``providers.base.Provider``. ``register`` adds a provider at
run time (tests, or a program that embeds glmserve).
"""
from __future__ import annotations

import difflib
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from infra.common.errors import GlmserveError, Problem

ENTRY_POINT_GROUP = "glmserve.providers"

_runtime: dict[str, Any] = {}


@lru_cache(maxsize=1)
def _installed() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Every provider name a stack may select, sorted."""
    return sorted({*_installed(), *_runtime})


def register(name: str, provider: Any) -> None:
    """Make ``provider`` selectable as ``glmserve:provider: <name>`` in this process."""
    _runtime[name] = provider


def unregister(name: str) -> None:
    _runtime.pop(name, None)


def get(name: str) -> Any:
    """The provider object named ``name``; a clear error when there is none."""
    if name in _runtime:
        return _runtime[name]
    ep = _installed().get(name)
    if ep is None:
        near = difflib.get_close_matches(name, names(), n=1)
        raise GlmserveError([Problem(
            key="provider", value=name,
            message="unknown provider" + (f" (did you mean '{near[0]}'?)" if near else ""),
            allowed=", ".join(names()))])
    try:
        return ep.load()
    except ModuleNotFoundError as e:
        raise GlmserveError([Problem(key="provider", value=name,
                                     message=f"the {name} provider is not available here ({e.name} is not installed)")]) from None
