"""Cost arithmetic: prices as data, idle cost under a scaling policy, monthly usage, break-even."""
from __future__ import annotations

import pytest

from infra.config import providers
from infra.planning import cost
from infra.planning.plan import provider_facts
from infra.planning.sources import ConfigError

MODAL, RUNPOD, NONE = (provider_facts(name) for name in ("modal", "runpod", "none"))


def report(facts, gpu, gpus, **kw):
    """A cost report weighed against Modal (serverless) and RunPod (dedicated)."""
    return cost.cost_report(facts, gpu, gpus, serverless=MODAL, dedicated=RUNPOD, **kw)


def test_prices_have_source_and_date():
    for facts in (MODAL, RUNPOD):
        assert facts.billing in ("serverless", "dedicated")
        assert facts.prices
        for gpu, row in facts.prices.items():
            assert row.per_gpu_hour > 0 and row.source and row.date, (facts.provider, gpu)


def test_modal_8x_h200_per_hour():
    p = cost.price_for(MODAL, "H200")
    assert p.per_gpu_second == pytest.approx(0.001261)
    r = report(MODAL, "H200", 8)
    assert r["cost_per_hour_usd"] == pytest.approx(36.32, abs=0.01)
    assert r["billing"] == "serverless"


def test_runpod_h200_price_and_history():
    p = cost.price_for(RUNPOD, "H200")
    assert p.per_gpu_hour == 4.59 and p.billing == "dedicated"
    assert report(RUNPOD, "H200", 8)["cost_per_hour_usd"] == pytest.approx(36.72)
    hist = providers.get("runpod").catalog["gpus"]["H200"]["history"]
    assert {h["price"] for h in hist} == {3.59}


def test_override_wins_number_and_dict():
    assert cost.price_for(RUNPOD, "H200", 3.59).per_gpu_hour == 3.59
    p = cost.price_for(RUNPOD, "H200", {"per_gpu_hour": 3.99, "source": "RunPod catalog", "date": "2026-11-02"})
    assert (p.per_gpu_hour, p.source, p.overridden) == (3.99, "RunPod catalog", True)
    assert cost.price_for(MODAL, "H200", {"per_gpu_second": 0.001}).per_gpu_hour == pytest.approx(3.6)
    assert report(RUNPOD, "H200", 8, price_override=3.59)["cost_per_hour_usd"] == pytest.approx(28.72)
    # A price for a GPU the table lacks.
    assert cost.price_for(RUNPOD, "B200", 6.0).per_gpu_hour == 6.0
    with pytest.raises(ConfigError):
        cost.price_for(RUNPOD, "H200", -1)


def test_missing_price_is_none():
    assert cost.price_for(RUNPOD, "L40S") is None
    assert cost.price_for(NONE, "H200") is None
    r = report(NONE, "H200", 8)
    assert r["cost_per_hour_usd"] is None and r["price"] is None
    assert r["comparison"]["break_even_hours_per_day"] > 0      # the comparison still holds


def test_serverless_idle_cost_follows_keep_warm():
    zero = report(MODAL, "H200", 8, min_replicas=0, scaledown_window_s=900, cold_start_s=300)
    assert zero["idle_cost_per_hour_usd"] == 0 and zero["idle_cost_per_month_usd"] == 0
    assert zero["scaledown_tail_cost_usd"] == pytest.approx(36.3168 * 900 / 3600, abs=0.01)
    assert zero["cost_per_cold_start_usd"] == pytest.approx(36.3168 * 300 / 3600, abs=0.01)
    warm = report(MODAL, "H200", 8, min_replicas=1)
    assert warm["idle_cost_per_month_usd"] == pytest.approx(36.3168 * 730, abs=0.01)


def test_dedicated_bills_all_day():
    r = report(RUNPOD, "H200", 8, usage=cost.Usage(hours_per_day=2))
    assert r["billed_hours_per_day"] == 24
    assert r["cost_per_month_usd"] == pytest.approx(36.72 * 730, abs=0.01)
    assert r["idle_cost_per_hour_usd"] == pytest.approx(36.72)


def test_hours_per_day_on_serverless():
    r = report(MODAL, "H200", 8, scaledown_window_s=900, cold_start_s=300,
                         usage=cost.Usage(hours_per_day=4))
    assert r["billed_hours_per_day"] == pytest.approx(4 + 1200 / 3600, abs=1e-3)
    assert r["cost_per_month_usd"] == pytest.approx(36.3168 * (4 + 1 / 3) * 730 / 24, abs=0.01)


def test_requests_per_day_sparse_and_dense():
    # 24 requests a day, an hour apart: each one scales up from zero.
    sparse = cost.serverless_billed_hours_per_day(cost.Usage(requests_per_day=24, busy_seconds_per_request=60),
                                                  0, 900, 300)
    assert sparse == pytest.approx(24 * (60 + 900 + 300) / 3600)
    # A request every 10 minutes never lets a 15-minute window expire.
    dense = cost.serverless_billed_hours_per_day(cost.Usage(requests_per_day=144, busy_seconds_per_request=30),
                                                 0, 900, 300)
    assert dense == 24
    # Keep-warm replicas bill all day whatever the traffic.
    assert cost.serverless_billed_hours_per_day(cost.Usage(hours_per_day=1), 1, 900, 300) == 24


def test_usage_validation():
    for bad in (cost.Usage(hours_per_day=25), cost.Usage(requests_per_day=10),
                cost.Usage(hours_per_day=1, requests_per_day=1, busy_seconds_per_request=1),
                cost.Usage(requests_per_day=100_000, busy_seconds_per_request=10)):
        with pytest.raises(ConfigError):
            bad.validate()


def test_break_even_hours_per_day():
    # RunPod at $3.59 (March 2026) vs Modal: 24 x 28.72 / 36.3168 - tail.
    r = report(RUNPOD, "H200", 8, price_override=3.59, scaledown_window_s=900,
                         serverless_cold_start_s=300)
    be = r["comparison"]["break_even_hours_per_day"]
    assert be == pytest.approx(24 * 28.72 / 36.3168 - 1200 / 3600, abs=0.01)
    assert 18 < be < 19
    # At $4.59 the dedicated node costs more per hour than Modal: near 24 h.
    r2 = report(RUNPOD, "H200", 8, scaledown_window_s=900, serverless_cold_start_s=300)
    assert 23 < r2["comparison"]["break_even_hours_per_day"] <= 24
    assert cost.break_even_hours_per_day(10, 20, 0.5) == 24
    assert cost.break_even_hours_per_day(100, 1, 0.5) == 0


def test_comparison_monthly_for_usage():
    r = report(MODAL, "H200", 8, scaledown_window_s=900, cold_start_s=300,
                         usage=cost.Usage(hours_per_day=2))
    c = r["comparison"]
    assert c["cheaper"] == "modal"
    assert c["serverless"]["cost_per_month_usd"] < c["dedicated"]["cost_per_month_usd"]
