"""Default catalog of the RunPod stand-in: GPU types, data centres, stock.

Only the H200 Secure Cloud price ($3.59 per GPU-hour, March 2026) comes from REFERENCE.md §1;
the other figures are plausible placeholders. Tests can pass their own tables to
``RunPodStandin(gpu_types=..., data_centers=..., stock=...)`` or change them at run time with
``set_price`` / ``set_stock``.
"""
from __future__ import annotations

import copy
from typing import Any

# GPU type id -> GpuType fields (minus id). ``price`` is USD per GPU-hour.
GPU_TYPES: dict[str, dict[str, Any]] = {
    "NVIDIA H200": {
        "name": "H200 SXM", "pool": "HOPPER_141", "manufacturer": "NVIDIA", "memory": 141,
        "secure": True, "community": True,
        "price": {"secure": 3.59, "community": 3.29, "serverless": 4.46},
        "maxCount": {"secure": 8, "community": 8},
    },
    "NVIDIA H200 NVL": {
        "name": "H200 NVL", "pool": None, "manufacturer": "NVIDIA", "memory": 143,
        "secure": True, "community": False,
        "price": {"secure": 3.39, "community": 0.0},
        "maxCount": {"secure": 8, "community": 0},
    },
    "NVIDIA H100 80GB HBM3": {
        "name": "H100 SXM", "pool": "HOPPER_80", "manufacturer": "NVIDIA", "memory": 80,
        "secure": True, "community": True,
        "price": {"secure": 2.69, "community": 2.39, "serverless": 3.35},
        "maxCount": {"secure": 8, "community": 8},
    },
    "NVIDIA B200": {
        "name": "B200", "pool": None, "manufacturer": "NVIDIA", "memory": 180,
        "secure": True, "community": False,
        "price": {"secure": 5.98, "community": 0.0},
        "maxCount": {"secure": 8, "community": 0},
    },
}

# data centre id -> name, ISO country, clouds it hosts, CUDA version of its machines,
# default network-volume tier.
DATA_CENTERS: dict[str, dict[str, Any]] = {
    "US-KS-2": {"name": "US Kansas 2", "country": "US", "clouds": ["SECURE"], "cuda": "12.8",
                "volumeType": "STANDARD"},
    "EU-RO-1": {"name": "EU Romania 1", "country": "RO", "clouds": ["SECURE"], "cuda": "12.8",
                "volumeType": "STANDARD"},
    "US-TX-3": {"name": "US Texas 3", "country": "US", "clouds": ["SECURE"], "cuda": "12.9",
                "volumeType": "HIGH_PERFORMANCE"},
    "CA-MTL-3": {"name": "CA Montreal 3", "country": "CA", "clouds": ["COMMUNITY"], "cuda": "12.4",
                 "volumeType": "STANDARD"},
}

# (gpu id, data centre, cloud) -> free GPUs now
STOCK: dict[tuple[str, str, str], int] = {
    ("NVIDIA H200", "US-KS-2", "SECURE"): 16,
    ("NVIDIA H200", "EU-RO-1", "SECURE"): 8,
    ("NVIDIA H200", "CA-MTL-3", "COMMUNITY"): 8,
    ("NVIDIA H200 NVL", "EU-RO-1", "SECURE"): 8,
    ("NVIDIA H100 80GB HBM3", "US-TX-3", "SECURE"): 16,
    ("NVIDIA H100 80GB HBM3", "CA-MTL-3", "COMMUNITY"): 8,
    ("NVIDIA B200", "US-TX-3", "SECURE"): 8,
}


def defaults() -> tuple[dict, dict, dict]:
    return copy.deepcopy(GPU_TYPES), copy.deepcopy(DATA_CENTERS), dict(STOCK)
