"""The monthly bill of a keep-warm schedule (`scaling.warmSchedule`) beside always-on and
scale-to-zero, and the cold starts a user meets outside the windows.

* always-on: the window's replicas kept running all month;
* scale to zero: nothing kept running (serverless: only the usage, when given, is billed; a
  dedicated pod cannot scale to zero by itself: it bills while it exists);
* the schedule: the window's replicas during the windows, ``scaling.minReplicas`` outside
  them; on a serverless provider each window start also bills the cold start of the replica
  it brings up and each window end the scale-down window of the replica it lets go.

Usage on top of the floor is assumed to fall inside the windows (said in the assumptions).
"""
from __future__ import annotations

from typing import Any, Optional

from infra.planning.sources import Assumption


def _money(x: Optional[float]) -> Optional[float]:
    return None if x is None else round(float(x), 2)


def describe_windows(warm: Any) -> list[str]:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    out = []
    for w in warm.windows:
        d, start, end = w.bounds
        out.append(f"{','.join(days[i] for i in d)} {start:%H:%M}-{end:%H:%M}")
    return out


def schedule_report(warm: Any, *, node_per_hour: Optional[float], billing: Optional[str], min_replicas: int,
                    hours_per_month: float, cold_start_s: float, scaledown_window_s: float,
                    usage_billed_hours_per_day: Optional[float]) -> tuple[dict[str, Any], list[Assumption]]:
    """The `schedule` section of a plan's cost, and its assumptions."""
    inside = max(min_replicas, warm.min_replicas)
    share = warm.weekly_warm_hours() / (7 * 24)
    warm_h = share * hours_per_month
    starts_per_month = sum(len(w.bounds[0]) for w in warm.windows) * hours_per_month / (7 * 24)
    out: dict[str, Any] = {
        "time_zone": warm.time_zone,
        "windows": describe_windows(warm),
        "warm_replicas": inside,
        "replicas_outside": min_replicas,
        "warm_hours_per_week": round(warm.weekly_warm_hours(), 2),
        "warm_hours_per_month": round(warm_h, 1),
        "window_starts_per_month": round(starts_per_month, 1),
        "always_on_per_month_usd": None,
        "scale_to_zero_per_month_usd": None,
        "schedule_per_month_usd": None,
        "cold_start_outside_windows_s": round(cold_start_s) if min_replicas == 0 else 0,
    }
    notes = [Assumption("warm schedule: usage above the kept replicas falls inside the windows", True,
                        "glmserve cost model")]
    serverless = billing == "serverless"
    if node_per_hour is not None:
        out["always_on_per_month_usd"] = _money(node_per_hour * inside * hours_per_month)
        floor = inside * warm_h + min_replicas * (hours_per_month - warm_h)
        if serverless:
            # Each window start brings a replica up (its cold start bills) and each end lets one go
            # after the scale-down window.
            added = max(0, inside - min_replicas)
            floor += added * starts_per_month * (cold_start_s + scaledown_window_s) / 3600
            usage = (usage_billed_hours_per_day or 0.0) * hours_per_month / 24
            out["scale_to_zero_per_month_usd"] = _money(node_per_hour * usage)
            notes.append(Assumption("scale to zero: only the usage is billed (0 without --hours-per-day or "
                                    "--requests-per-day)", True, "glmserve cost model"))
        out["schedule_per_month_usd"] = _money(node_per_hour * floor)
    if min_replicas == 0:
        out["outside_windows"] = (
            f"the first request after a scale-down waits a cold start (~{cold_start_s / 60:.0f} min)" if serverless
            else "the node is stopped: requests fail until the next window opens (it is ready "
                 f"~{cold_start_s / 60:.0f} min after the window starts)")
    else:
        out["outside_windows"] = f"{min_replicas} replica(s) stay warm: no cold start"
    return out, notes
