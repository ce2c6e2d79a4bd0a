"""Cost per million output tokens, exactly, and where the cost per hour comes from."""
from __future__ import annotations

import pytest

from infra.bench.cost import HourlyCost, hourly_cost, per_million_tokens


def test_cost_per_million_tokens_is_exact_from_a_known_hourly_cost():
    # $36/h at 1000 output tokens/s: 3.6 M tokens an hour, so $10 per million.
    assert per_million_tokens(36.0, 1000.0) == pytest.approx(10.0, rel=1e-12)
    assert per_million_tokens(36.32, 250.0) == pytest.approx(36.32 / (250 * 3600) * 1e6, rel=1e-12)
    assert per_million_tokens(36.0, 0.0) is None


def test_hourly_cost_prefers_the_command_line_then_the_live_price_then_the_plan():
    outputs = {"costPerHour": 36.72, "estimatedCostPerHour": 36.32}
    assert hourly_cost(outputs, 20.0) == HourlyCost(20.0, "command line")
    assert hourly_cost(outputs) == HourlyCost(36.72, "provider (live)")
    assert hourly_cost({"costPerHour": 0.0, "estimatedCostPerHour": 36.32}) == HourlyCost(36.32, "planner estimate")
    assert hourly_cost({"provider": "none"}) is None
