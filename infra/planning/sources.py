"""The planner's data files and the two types every planning module shares.

Every figure the planner does not compute lives in ``infra/data/*.yaml`` with its public
source; an :class:`Assumption` carries such a figure into the plan with that source, and a
:class:`ConfigError` names the input key the planner cannot use.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parents[1] / "data"
GIB = 1 << 30
MIB = 1 << 20

# The C loader when PyYAML has it: the planner runs inside every `glmserve plan`.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=None)
def load_data(name: str) -> dict[str, Any]:
    """One of the planner's data files under infra/data/, parsed once per process."""
    with open(DATA / name, encoding="utf-8") as f:
        return yaml.load(f, Loader=YAML_LOADER) or {}


def memory_constants() -> dict[str, Any]:
    return load_data("vllm-memory.yaml")


class ConfigError(ValueError):
    """A model config or planner input the planner cannot use; names the key at fault."""

    def __init__(self, key: str, message: str, value: Any = None, allowed: str | None = None):
        super().__init__(f"{key}: {message}")
        self.key, self.message, self.value, self.allowed = key, message, value, allowed


@dataclass(frozen=True)
class Assumption:
    """One number the result depends on that glmserve did not measure, with its source."""

    what: str
    value: Any
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "value": self.value, "source": self.source}



def gib(b: float) -> float:
    return b / GIB


def rounded(x: float, n: int = 2) -> float:
    return round(float(x), n)
