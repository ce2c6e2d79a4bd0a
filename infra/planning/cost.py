"""Cost: what a node costs while serving, while idle, per month, and serverless vs dedicated.

Prices and billing models are the provider's facts (its ``catalog.yaml``, each price with its
source and date). A price given by the caller (a number in USD per GPU-hour, or a dict with
``per_gpu_hour``, ``source`` and ``date``, e.g. from a provider's live catalogue) wins over them.

Billing models:

* serverless: per second while a container runs. After the last request a container stays
  up for the scale-down window; ``min_replicas`` containers never scale to zero (keep-warm).
  A scale-up from zero also bills its cold start.
* dedicated: per second from creation until the node is stopped or deleted, whatever the
  traffic: a node that exists bills 24 hours a day.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from infra.planning.schedule_cost import schedule_report
from infra.planning.sources import Assumption, ConfigError, load_data

PriceOverride = Union[float, int, dict, None]


def pricing() -> dict[str, Any]:
    return load_data("pricing.yaml")


def hours_per_month() -> float:
    return float(pricing().get("hours_per_month", 730))


@dataclass(frozen=True)
class Price:
    provider: str
    gpu_type: str
    per_gpu_hour: float
    billing: str          # "serverless" | "dedicated"
    source: str
    date: str
    overridden: bool = False

    @property
    def per_gpu_second(self) -> float:
        return self.per_gpu_hour / 3600

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "gpu_type": self.gpu_type,
                "per_gpu_hour_usd": round(self.per_gpu_hour, 6),
                "per_gpu_second_usd": round(self.per_gpu_second, 8), "billing": self.billing,
                "source": self.source, "date": self.date, "overridden": self.overridden}


def price_for(facts: ProviderFacts, gpu_type: str, override: PriceOverride = None) -> Optional[Price]:
    """The price of one GPU-hour on the provider; None when neither its catalogue nor the
    override has one. ``override`` wins: a number (USD per GPU-hour) or a dict with
    ``per_gpu_hour`` (or ``per_gpu_second``) and optional ``source``/``date``."""
    # A provider that does not bill (its cluster is yours) is charged like a dedicated node
    # when the caller gives a price.
    billing = facts.billing if facts.bills else "dedicated"
    if override is not None:
        if isinstance(override, dict):
            if override.get("per_gpu_hour") is not None:
                per_h = float(override["per_gpu_hour"])
            elif override.get("per_gpu_second") is not None:
                per_h = float(override["per_gpu_second"]) * 3600
            else:
                raise ConfigError("price", "an override needs per_gpu_hour or per_gpu_second", value=override)
            src, date = str(override.get("source") or "caller override"), str(override.get("date") or "")
        else:
            per_h, src, date = float(override), "caller override (USD per GPU-hour)", ""
        if per_h < 0:
            raise ConfigError("price", "must not be negative", value=per_h)
        return Price(facts.provider, gpu_type, per_h, billing, src, date, overridden=True)
    row = facts.prices.get(gpu_type)
    if row is None:
        return None
    return Price(facts.provider, gpu_type, row.per_gpu_hour, billing, row.source, row.date)


@dataclass(frozen=True)
class Usage:
    """A usage pattern: busy hours per day, or requests per day x busy seconds each."""

    hours_per_day: Optional[float] = None
    requests_per_day: Optional[float] = None
    busy_seconds_per_request: Optional[float] = None

    def validate(self) -> None:
        if self.hours_per_day is not None and not 0 <= self.hours_per_day <= 24:
            raise ConfigError("--hours-per-day", "must be between 0 and 24", value=self.hours_per_day)
        if self.requests_per_day is not None and self.requests_per_day < 0:
            raise ConfigError("--requests-per-day", "must not be negative", value=self.requests_per_day)
        if self.busy_seconds_per_request is not None and self.busy_seconds_per_request <= 0:
            raise ConfigError("--busy-seconds-per-request", "must be positive", value=self.busy_seconds_per_request)
        if self.hours_per_day is not None and self.requests_per_day is not None:
            raise ConfigError("--hours-per-day", "give either --hours-per-day or --requests-per-day, not both")
        if self.requests_per_day is not None and self.busy_seconds_per_request is None:
            raise ConfigError("--busy-seconds-per-request", "is required with --requests-per-day")
        if self.requests_per_day and self.busy_seconds_per_request and \
                self.requests_per_day * self.busy_seconds_per_request > 86400:
            raise ConfigError("--requests-per-day", "x --busy-seconds-per-request exceeds 24 hours a day of work "
                              "for one replica", value=self.requests_per_day)

    @property
    def given(self) -> bool:
        return self.hours_per_day is not None or self.requests_per_day is not None

    @property
    def busy_hours_per_day(self) -> float:
        if self.hours_per_day is not None:
            return float(self.hours_per_day)
        if self.requests_per_day is not None:
            return float(self.requests_per_day) * float(self.busy_seconds_per_request or 0) / 3600
        return 0.0

    def to_json(self) -> dict[str, Any]:
        return {"hours_per_day": self.hours_per_day, "requests_per_day": self.requests_per_day,
                "busy_seconds_per_request": self.busy_seconds_per_request,
                "busy_hours_per_day": round(self.busy_hours_per_day, 4)}


def serverless_billed_hours_per_day(usage: Usage, min_replicas: int, scaledown_window_s: float,
                                    cold_start_s: float) -> float:
    """Billed container-hours per day on a serverless provider.

    Keep-warm replicas bill all day and serve the traffic. Otherwise: ``hours_per_day`` is one
    busy block a day, plus one cold start and one scale-down window; ``requests_per_day`` are
    spread evenly over the day, and each request that arrives after the container has scaled
    down pays a cold start and a scale-down window of its own."""
    if min_replicas > 0:
        return 24.0 * min_replicas
    busy = usage.busy_hours_per_day
    if busy <= 0:
        return 0.0
    tail_h = (scaledown_window_s + cold_start_s) / 3600
    if usage.hours_per_day is not None:
        return min(24.0, busy + tail_h)
    n = float(usage.requests_per_day or 0)
    s = float(usage.busy_seconds_per_request or 0)
    gap = 86400 / n
    if gap - s <= scaledown_window_s:
        return 24.0          # the container never gets to scale down
    return min(24.0, n * (s + scaledown_window_s + cold_start_s) / 3600)


def break_even_hours_per_day(serverless_node_per_hour: float, dedicated_node_per_hour: float,
                             tail_hours: float) -> float:
    """Busy hours per day at which one busy block a day on serverless costs what a dedicated
    node costs all day: p_s x (H + tail) = p_d x 24. Clamped to [0, 24]."""
    if serverless_node_per_hour <= 0:
        return 24.0
    h = 24.0 * dedicated_node_per_hour / serverless_node_per_hour - tail_hours
    return max(0.0, min(24.0, h))


def _money(x: Optional[float]) -> Optional[float]:
    return None if x is None else round(float(x), 2)


def cost_report(facts: ProviderFacts, gpu_type: str, gpus: int, *, min_replicas: int = 0,
                max_replicas: int = 1, scaledown_window_s: float = 900, cold_start_s: float = 0.0,
                serverless_cold_start_s: Optional[float] = None, usage: Optional[Usage] = None,
                price_override: PriceOverride = None, serverless: Optional[ProviderFacts] = None,
                dedicated: Optional[ProviderFacts] = None, warm_schedule: Any = None) -> dict[str, Any]:
    """The cost section of a plan (a JSON-ready dict) plus the assumptions it rests on.
    ``serverless`` and ``dedicated`` are the providers the break-even comparison weighs
    (``serverless_cold_start_s``: a cold start on the serverless one)."""
    provider = facts.provider
    usage = usage or Usage()
    usage.validate()
    hpm = hours_per_month()
    price = price_for(facts, gpu_type, price_override)
    billing = price.billing if price else (facts.billing if facts.bills else None)
    node_h = price.per_gpu_hour * gpus if price else None
    out: dict[str, Any] = {
        "provider": provider,
        "gpu_type": gpu_type,
        "gpus": gpus,
        "billing": billing,
        "price": price.to_json() if price else None,
        "cost_per_hour_usd": _money(node_h),
        "hours_per_month": hpm,
        "scaling": {"min_replicas": min_replicas, "max_replicas": max_replicas,
                    "scaledown_window_s": scaledown_window_s},
        "idle_cost_per_hour_usd": None,
        "idle_cost_per_month_usd": None,
        "cost_per_cold_start_usd": None,
        "scaledown_tail_cost_usd": None,
        "max_cost_per_hour_usd": None,
        "usage": usage.to_json() if usage.given else None,
        "billed_hours_per_day": None,
        "cost_per_day_usd": None,
        "cost_per_month_usd": None,
        "comparison": None,
        "assumptions": [],
    }
    notes: list[Assumption] = []
    if price:
        notes.append(Assumption(f"{provider} {gpu_type} price (USD per GPU-hour)", round(price.per_gpu_hour, 6),
                                f"{price.source}{', ' + price.date if price.date else ''}"))
    if node_h is not None:
        out["max_cost_per_hour_usd"] = _money(node_h * max(1, max_replicas))
        if billing == "serverless":
            out["idle_cost_per_hour_usd"] = _money(node_h * min_replicas)
            out["idle_cost_per_month_usd"] = _money(node_h * min_replicas * hpm)
            out["cost_per_cold_start_usd"] = _money(node_h * cold_start_s / 3600)
            out["scaledown_tail_cost_usd"] = _money(node_h * scaledown_window_s / 3600)
        else:
            out["idle_cost_per_hour_usd"] = _money(node_h)
            out["idle_cost_per_month_usd"] = _money(node_h * hpm)
        if facts.billing_note:
            notes.append(Assumption(facts.billing_note.what, True, facts.billing_note.source))
        if usage.given:
            if billing == "serverless":
                billed = serverless_billed_hours_per_day(usage, min_replicas, scaledown_window_s, cold_start_s)
            else:
                billed = 24.0
            out["billed_hours_per_day"] = round(billed, 4)
            out["cost_per_day_usd"] = _money(node_h * billed)
            out["cost_per_month_usd"] = _money(node_h * billed * hpm / 24)
            if usage.requests_per_day is not None:
                notes.append(Assumption("requests arrive evenly spread over the day, one at a time", True,
                                        "glmserve cost model"))
            elif billing == "serverless":
                notes.append(Assumption("busy hours form one block a day (one cold start, one scale-down window)",
                                        True, "glmserve cost model"))
    if warm_schedule is not None:
        usage_billed = (serverless_billed_hours_per_day(usage, 0, scaledown_window_s, cold_start_s)
                        if usage.given else None)
        out["schedule"], schedule_notes = schedule_report(
            warm_schedule, node_per_hour=node_h, billing=billing, min_replicas=min_replicas, hours_per_month=hpm,
            cold_start_s=cold_start_s, scaledown_window_s=scaledown_window_s, usage_billed_hours_per_day=usage_billed)
        notes += schedule_notes
    notes.append(Assumption("storage (volumes) and egress are not included", True, "glmserve cost model"))

    # Serverless vs dedicated for the same GPUs.
    s_price = d_price = None
    if serverless and dedicated:
        s_prov, d_prov = serverless.provider, dedicated.provider
        s_price = price if provider == s_prov and price else price_for(serverless, gpu_type)
        d_price = price if provider == d_prov and price else price_for(dedicated, gpu_type)
    if s_price and d_price:
        s_h, d_h = s_price.per_gpu_hour * gpus, d_price.per_gpu_hour * gpus
        s_cold = cold_start_s if serverless_cold_start_s is None else serverless_cold_start_s
        tail_h = (scaledown_window_s + s_cold) / 3600
        be = break_even_hours_per_day(s_h, d_h, tail_h)
        comparison: dict[str, Any] = {
            "serverless": {"provider": s_prov, "cost_per_hour_usd": _money(s_h),
                           "tail_hours_per_busy_block": round(tail_h, 4)},
            "dedicated": {"provider": d_prov, "cost_per_hour_usd": _money(d_h),
                          "cost_per_month_usd": _money(d_h * hpm)},
            "break_even_hours_per_day": round(be, 2),
            "serverless_cheaper_at_any_usage": be >= 24.0,
            "dedicated_cheaper_at_any_usage": be <= 0.0,
        }
        if usage.given:
            billed = serverless_billed_hours_per_day(usage, 0, scaledown_window_s, s_cold)
            comparison["serverless"]["cost_per_month_usd"] = _money(s_h * billed * hpm / 24)
            comparison["cheaper"] = s_prov if s_h * billed < d_h * 24 else d_prov
        if be >= 24.0:
            comparison["note"] = (f"{s_prov} scaled to zero costs less than a {d_prov} node kept all day "
                                  "at any usage")
        else:
            comparison["note"] = (f"below {be:.1f} busy hours a day {s_prov} (scale to zero) is cheaper; "
                                  f"above it a dedicated {d_prov} node is")
        out["comparison"] = comparison
        notes.append(Assumption("break-even: one busy block a day on serverless (scaled to zero otherwise) vs a "
                                "dedicated node all day", True, "glmserve cost model"))
    out["assumptions"] = [a.to_json() for a in notes]
    return out
