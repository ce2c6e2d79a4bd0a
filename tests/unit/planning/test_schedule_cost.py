"""The plan prices a keep-warm schedule beside always-on and scale to zero, and says what a
user meets outside the windows (infra/planning/schedule_cost.py)."""
from __future__ import annotations

import copy

import pytest
import yaml

from infra.planning.plan import plan_for_spec
from infra.spec.build import build_spec
from tests.helpers import ROOT

NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())
OFFICE = {"timeZone": "Europe/Berlin", "minReplicas": 1,
          "windows": [{"days": ["mon-fri"], "start": "08:00", "end": "19:00"}]}


@pytest.fixture(autouse=True)
def project_dir(monkeypatch):
    monkeypatch.setenv("GLMSERVE_PROJECT_DIR", str(ROOT))


def plan(provider: str, **kw):
    over = {"provider": provider, "scaling": {"minReplicas": 0, "maxReplicas": 1, "warmSchedule": OFFICE}}
    spec = build_spec(copy.deepcopy(NODE), over, "stacks/node.yaml", "stacks/Pulumi.test.yaml")
    return plan_for_spec(spec, stack="test", **kw)


def test_modal_schedule_costs_the_window_hours_plus_the_edges():
    p = plan("modal")
    s = p.cost["schedule"]
    node_h = p.cost["price"]["per_gpu_hour_usd"] * p.cost["gpus"]
    hpm = p.cost["hours_per_month"]
    assert s["warm_hours_per_week"] == 55
    assert s["warm_hours_per_month"] == pytest.approx(55 / 168 * hpm, abs=0.1)
    assert s["always_on_per_month_usd"] == pytest.approx(node_h * hpm, abs=0.05)
    assert s["scale_to_zero_per_month_usd"] == 0
    # The window hours, plus per window start one cold start and one scale-down window.
    starts = 5 * hpm / 168
    edges_h = starts * (p.cold_start.total_s + 900) / 3600
    assert s["schedule_per_month_usd"] == pytest.approx(node_h * (s["warm_hours_per_month"] + edges_h), rel=1e-3)
    assert s["scale_to_zero_per_month_usd"] < s["schedule_per_month_usd"] < s["always_on_per_month_usd"]
    assert s["cold_start_outside_windows_s"] == round(p.cold_start.total_s)
    assert "cold start" in s["outside_windows"]


def test_usage_is_what_scale_to_zero_bills():
    p = plan("modal", hours_per_day=2)
    s = p.cost["schedule"]
    assert s["scale_to_zero_per_month_usd"] == pytest.approx(p.cost["cost_per_month_usd"], abs=0.05)


def test_a_dedicated_pod_is_stopped_outside_the_windows():
    p = plan("runpod")
    s = p.cost["schedule"]
    assert s["scale_to_zero_per_month_usd"] is None
    assert s["schedule_per_month_usd"] == pytest.approx(p.cost["price"]["per_gpu_hour_usd"] * 8 * 55 / 168 * 730,
                                                       abs=0.05)
    assert "stopped" in s["outside_windows"] and "requests fail" in s["outside_windows"]


def test_the_text_report_shows_the_three_bills_side_by_side():
    text = plan("modal").format_text()
    line = next(ln for ln in text.splitlines() if "per month: this schedule" in ln)
    assert "always-on $26," in line and "scale to zero $0.00" in line
    assert "warm schedule (Europe/Berlin: mon,tue,wed,thu,fri 08:00-19:00)" in text
    assert "outside the windows: the first request after a scale-down waits a cold start" in text


def test_no_schedule_no_section():
    spec = build_spec(copy.deepcopy(NODE), {"provider": "modal"}, "stacks/node.yaml", "stacks/Pulumi.test.yaml")
    assert "schedule" not in plan_for_spec(spec, stack="test").cost
