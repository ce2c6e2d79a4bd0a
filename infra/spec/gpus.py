"""The GPU types a node can ask for, and how many GPUs a node can have.

Provider-neutral facts only (memory as the driver reports it). What each provider calls a
GPU type, and what it charges for it, lives in that provider's own catalogue.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parents[1] / "data"

# GPUs per node: what one machine of every supported provider offers.
GPU_COUNTS = (1, 2, 4, 8)


@lru_cache(maxsize=1)
def gpu_catalog() -> dict[str, dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((DATA / "gpus.yaml").read_text(), Loader=loader)
