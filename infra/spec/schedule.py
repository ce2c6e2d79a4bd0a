"""Keep-warm windows (`scaling.warmSchedule`): the spec's shape and the arithmetic on it.

A window is a set of week days with a start and an end wall-clock time in one IANA time zone
(`zoneinfo`). Inside a window the node keeps ``warmSchedule.minReplicas`` replicas running;
outside it falls back to ``scaling.minReplicas`` (usually 0: scale to zero).

Windows are judged on the local wall clock, so "08:00-19:00 Europe/Berlin" stays 08:00-19:00
across daylight-saving changes. A window whose end is not after its start runs overnight into
the next day (22:00-06:00), and equal start and end mean the whole day from that time. A window
may also be written as two cron expressions of the form ``M H * * DOW`` (what Modal's
`modal.Cron` and Kubernetes CronJobs take), e.g. ``{start: "0 8 * * 1-5", end: "0 19 * * 1-5"}``.

Providers realise the windows their own way (Modal: scheduled functions calling
``update_autoscaler``; RunPod: pod state applied by ``glmserve schedule apply``; Kubernetes: a
KEDA cron trigger or CronJobs); each uses :meth:`WarmSchedule.cron_edges` and :meth:`WarmSchedule.replicas_at`
(the planner :meth:`WarmSchedule.weekly_warm_hours`).
"""
from __future__ import annotations

import datetime as dt
import os
import re
from functools import cached_property
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from infra.spec.shapes import WholeNumber

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")     # datetime.weekday() order
# Set by `glmserve schedule apply --at` (and tests): the instant the program judges windows at.
AT_ENV = "GLMSERVE_SCHEDULE_AT"

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_CRON = re.compile(r"^(\d{1,2}) (\d{1,2}) \* \* ([0-7*][0-7,*-]*)$")


def _days(field: str) -> tuple[int, ...]:
    """A cron day-of-week field (0 or 7 = Sunday, lists and ranges) as weekday() numbers."""
    if field == "*":
        return tuple(range(7))
    days: set[int] = set()
    for part in field.split(","):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ValueError(f"day-of-week field {field!r} must be numbers 0-7, lists and ranges")
        a, b = int(lo), int(hi or lo)
        if not (0 <= a <= 7 and 0 <= b <= 7 and a <= b):
            raise ValueError(f"day-of-week range {part!r} must run from 0 to 7 upwards")
        days.update((d - 1) % 7 for d in range(a, b + 1))       # cron 1 = Monday = weekday 0
    return tuple(sorted(days))


def _cron(expr: str, key: str) -> tuple[dt.time, tuple[int, ...]]:
    m = _CRON.match(expr.strip())
    if not m or int(m.group(1)) > 59 or int(m.group(2)) > 23:
        raise ValueError(f"{key} cron {expr!r} must be 'MINUTE HOUR * * DAYS' (e.g. '0 8 * * 1-5'): "
                         f"windows repeat weekly")
    return dt.time(int(m.group(2)), int(m.group(1))), _days(m.group(3))


class Window(BaseModel):
    """One weekly window: days with start and end times, or a start and an end cron expression."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)

    days: Optional[list[str]] = None
    start: str
    end: str

    @model_validator(mode="after")
    def _shape(self) -> "Window":
        days, start, end = self.bounds      # parses, raising a ValueError that names what is wrong
        if len(days) == 7 and start == end:
            # Its start and end would be the same instant every day (KEDA refuses that too).
            raise ValueError("the window covers the whole week: set scaling.minReplicas instead")
        return self

    @cached_property
    def bounds(self) -> tuple[tuple[int, ...], dt.time, dt.time]:
        """(week days as weekday() numbers, start, end) whichever way the window is written."""
        if _TIME.match(self.start) and _TIME.match(self.end):
            if not self.days:
                raise ValueError("a window with HH:MM times needs days (e.g. [mon, tue, wed, thu, fri] or mon-fri)")
            return _day_names(self.days), dt.time.fromisoformat(self.start), dt.time.fromisoformat(self.end)
        if self.days is not None:
            bad = next(t for t in (self.start, self.end) if not _TIME.match(t))
            raise ValueError(f"{bad!r} is not a time HH:MM (00:00-23:59, e.g. 08:00); with days, start and end are "
                             f"times (cron expressions carry their own days)")
        start, days = _cron(self.start, "start")
        end, end_days = _cron(self.end, "end")
        # The end fires on the window's own days, or on the next day for an overnight window.
        overnight = tuple(sorted((d + 1) % 7 for d in days))
        if end_days not in (days, overnight) and end_days != tuple(range(7)):
            raise ValueError(f"end cron days {self.end!r} must be the start's days (or the next days for an "
                             f"overnight window)")
        return days, start, end


def _day_names(days: list[str]) -> tuple[int, ...]:
    out: set[int] = set()
    for d in days:
        lo, _, hi = d.lower().partition("-")
        if lo not in DAY_NAMES or (hi and hi not in DAY_NAMES):
            raise ValueError(f"unknown day {d!r}; allowed: {', '.join(DAY_NAMES)} or a range like mon-fri")
        a, b = DAY_NAMES.index(lo), DAY_NAMES.index(hi or lo)
        out.update((a + i) % 7 for i in range((b - a) % 7 + 1))       # fri-mon wraps over the weekend
    return tuple(sorted(out))


class WarmSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)

    time_zone: str
    # Replicas kept running inside a window (outside: scaling.minReplicas).
    min_replicas: WholeNumber = Field(default=1, ge=1, le=64)
    windows: list[Window] = Field(min_length=1, max_length=32)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            near = sorted(z for z in available_timezones() if z.lower().endswith(v.lower().split("/")[-1]))[:3]
            raise ValueError(f"unknown time zone {v!r}; use an IANA name like Europe/Berlin or UTC"
                             + (f" (did you mean {', '.join(near)}?)" if near else "")) from None
        return v

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    # ------------------------------------------------------------------ arithmetic
    def inside(self, at: dt.datetime) -> bool:
        """Whether the aware instant ``at`` falls inside a window, judged on the local wall clock."""
        local = at.astimezone(self.zone)
        t, day, yesterday = local.time().replace(tzinfo=None), local.weekday(), (local.weekday() - 1) % 7
        for w in self.windows:
            days, start, end = w.bounds
            if end > start:
                if day in days and start <= t < end:
                    return True
            elif (day in days and t >= start) or (yesterday in days and t < end):
                return True
        return False

    def next_transition(self, at: dt.datetime) -> dt.datetime:
        """The first instant after ``at`` where :meth:`inside` changes (UTC)."""
        now = self.inside(at)
        for c in self._candidates(at):
            if c > at and self.inside(c) != now:
                return c
        raise ValueError("the schedule never changes (a window covers the whole week)")

    def _candidates(self, at: dt.datetime) -> list[dt.datetime]:
        """Instants where the answer can change in the 9 days after ``at``: every window start and
        end on the wall clock, and every UTC-offset change (where the wall clock jumps)."""
        zone, utc = self.zone, dt.timezone.utc
        first = at.astimezone(zone).date() - dt.timedelta(days=1)
        times = {t for w in self.windows for t in w.bounds[1:]}
        out: list[dt.datetime] = []
        for i in range(10):
            day = first + dt.timedelta(days=i)
            for t in times:
                for fold in (0, 1):
                    local = dt.datetime.combine(day, t, tzinfo=zone).replace(fold=fold)
                    instant = local.astimezone(utc)
                    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
                        out.append(instant)      # a wall time that exists (both folds when repeated)
            out.extend(_offset_changes(zone, day))
        return sorted(set(out))

    def weekly_warm_hours(self) -> float:
        """Warm hours in a week of wall-clock time (overlapping windows count once)."""
        minutes = set()
        for w in self.windows:
            days, start, end = w.bounds
            s = start.hour * 60 + start.minute
            length = ((end.hour * 60 + end.minute) - s) % (24 * 60) or 24 * 60
            for d in days:
                minutes.update((d * 1440 + s + k) % (7 * 1440) for k in range(length))
        return len(minutes) / 60

    def replicas_at(self, at: dt.datetime, base: int) -> int:
        """Replicas to keep running at ``at``: the window's, else ``base`` (scaling.minReplicas)."""
        return max(base, self.min_replicas) if self.inside(at) else base

    def cron_edges(self) -> list[tuple[str, str]]:
        """(cron at a window start, cron at its end) per window, both on this schedule's wall clock,
        in the `M H * * DOW` form Modal's Cron and Kubernetes CronJobs take (0 = Sunday)."""
        edges = []
        for w in self.windows:
            days, start, end = w.bounds
            end_days = days if end > start else tuple((d + 1) % 7 for d in days)
            edges.append((_cron_at(start, days), _cron_at(end, end_days)))
        return edges


def _cron_at(t: dt.time, days: tuple[int, ...]) -> str:
    dow = ",".join(str((d + 1) % 7) for d in sorted(days, key=lambda d: (d + 1) % 7))
    return f"{t.minute} {t.hour} * * {'*' if len(days) == 7 else dow}"


def _offset_changes(zone: ZoneInfo, day: dt.date) -> list[dt.datetime]:
    """UTC instants during ``day`` (local) where the zone's UTC offset changes, found by bisection."""
    utc = dt.timezone.utc

    def offset(seconds: int) -> Optional[dt.timedelta]:
        return dt.datetime.fromtimestamp(seconds, utc).astimezone(zone).utcoffset()
    lo = int(dt.datetime.combine(day, dt.time(), tzinfo=zone).timestamp()) - 3 * 3600
    hi = lo + 30 * 3600
    if offset(lo) == offset(hi):
        return []
    while hi - lo > 1:          # offsets change on whole seconds: hi ends on the first new one
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
    return [dt.datetime.fromtimestamp(hi, utc)]


def now() -> dt.datetime:
    """The instant windows are judged at: now, or ``GLMSERVE_SCHEDULE_AT`` (ISO 8601 with offset)."""
    at = os.environ.get(AT_ENV)
    if at:
        parsed = dt.datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError(f"{AT_ENV}={at!r} needs a UTC offset (e.g. 2026-12-02T09:00+01:00)")
        return parsed
    return dt.datetime.now(dt.timezone.utc)
