"""Dollars per million output tokens at each level, from the node's cost per hour.

A node bills by the hour whatever it serves, so at a measured output rate of R tokens/s one
million output tokens cost ``cost_per_hour / (R x 3600) x 10^6``. The cost per hour is, in
order: the one given on the command line, the provider's live figure in the stack outputs
(RunPod's ``costPerHour``), the planner's estimate (``estimatedCostPerHour``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

TOKENS = 1_000_000
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class HourlyCost:
    usd_per_hour: float
    source: str           # "command line" | "provider (live)" | "planner estimate"


def per_million_tokens(usd_per_hour: float, output_tokens_per_s: float) -> Optional[float]:
    """None when nothing was produced (an infinite cost is not a number to print or store)."""
    if output_tokens_per_s <= 0:
        return None
    return usd_per_hour / (output_tokens_per_s * SECONDS_PER_HOUR) * TOKENS


def hourly_cost(outputs: dict[str, Any], override: Optional[float] = None) -> Optional[HourlyCost]:
    if override is not None:
        return HourlyCost(float(override), "command line")
    live = outputs.get("costPerHour")
    if isinstance(live, (int, float)) and live > 0:
        return HourlyCost(float(live), "provider (live)")
    planned = outputs.get("estimatedCostPerHour")
    if isinstance(planned, (int, float)) and planned > 0:
        return HourlyCost(float(planned), "planner estimate")
    return None
