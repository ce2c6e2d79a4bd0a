"""Keep-warm window arithmetic (infra/spec/schedule.py), property-based across time zones and
daylight-saving changes."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from infra.spec.schedule import DAY_NAMES, WarmSchedule, Window

UTC = dt.timezone.utc
# Zones with DST changes on different dates and at different hours (southern hemisphere,
# a 30-minute shift, a change at midnight), and two without.
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
         "Pacific/Auckland", "Asia/Kolkata", "UTC", "America/Havana"]

def _not_whole_week(w: dict) -> bool:
    return not (len(w["days"]) == 7 and w["start"] == w["end"])


times = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59]))
windows = st.builds(lambda days, start, end: {"days": days, "start": start, "end": end},
                    st.lists(st.sampled_from(DAY_NAMES), min_size=1, max_size=7, unique=True), times, times
                    ).filter(_not_whole_week)
schedules = st.builds(lambda zone, ws: WarmSchedule.model_validate({"timeZone": zone, "windows": ws}),
                      st.sampled_from(ZONES), st.lists(windows, min_size=1, max_size=3))
# Instants in 2026-2027, seconds resolution: every DST change of both years is in range.
instants = st.integers(int(dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp()),
                       int(dt.datetime(2027, 12, 31, tzinfo=UTC).timestamp())).map(
    lambda s: dt.datetime.fromtimestamp(s, UTC))


def _whole_week(s: WarmSchedule) -> bool:
    return s.weekly_warm_hours() == 7 * 24


@settings(max_examples=150, deadline=None)
@given(schedules, instants, st.floats(0.0, 1.0, exclude_max=True))
def test_nothing_changes_before_the_next_transition_and_something_changes_at_it(s, at, fraction):
    if _whole_week(s):
        with pytest.raises(ValueError):
            s.next_transition(at)
        return
    nxt = s.next_transition(at)
    assert at < nxt <= at + dt.timedelta(days=8)
    assert s.inside(nxt) != s.inside(at)
    between = at + (nxt - at) * fraction
    if between < nxt:           # a fraction next to 1 rounds to the transition itself (microseconds)
        assert s.inside(between) == s.inside(at)
    # Just before the transition the old state still holds.
    assert s.inside(nxt - dt.timedelta(seconds=1)) == s.inside(at) or nxt - at <= dt.timedelta(seconds=1)


@settings(max_examples=100, deadline=None)
@given(schedules, instants)
def test_a_transition_is_a_window_edge_on_the_wall_clock_or_a_clock_change(s, at):
    if _whole_week(s):
        return
    nxt = s.next_transition(at)
    local = nxt.astimezone(s.zone)
    edges = {t for w in s.windows for t in w.bounds[1:]}
    clock_change = (nxt - dt.timedelta(seconds=1)).astimezone(s.zone).utcoffset() != local.utcoffset()
    assert local.time().replace(tzinfo=None) in edges or clock_change


@settings(max_examples=60, deadline=None)
@given(st.lists(windows, min_size=1, max_size=3), st.sampled_from(["UTC", "Asia/Kolkata", "Asia/Tokyo"]), instants)
def test_warm_hours_match_the_integrated_windows_where_clocks_do_not_change(ws, zone, at):
    s = WarmSchedule.model_validate({"timeZone": zone, "windows": ws})
    if _whole_week(s):
        return
    end, t, warm = at + dt.timedelta(weeks=2), at, dt.timedelta()
    while t < end:
        nxt = min(s.next_transition(t), end)
        if s.inside(t):
            warm += nxt - t
        t = nxt
    assert warm.total_seconds() / 3600 == pytest.approx(2 * s.weekly_warm_hours())


@settings(max_examples=100, deadline=None)
@given(schedules, instants)
def test_the_cron_edges_describe_the_same_windows(s, at):
    as_cron = WarmSchedule.model_validate({
        "timeZone": s.time_zone,
        "windows": [{"start": a, "end": b} for a, b in s.cron_edges()]})
    assert as_cron.inside(at) == s.inside(at)


def test_weekday_office_hours_in_berlin_follow_the_wall_clock_across_dst():
    s = WarmSchedule.model_validate({"timeZone": "Europe/Berlin",
                                     "windows": [{"days": ["mon-fri"], "start": "08:00", "end": "19:00"}]})
    # Winter (UTC+1): 07:00-18:00 UTC; summer (UTC+2): 06:00-17:00 UTC.
    assert s.inside(dt.datetime(2026, 3, 27, 7, 0, tzinfo=UTC))
    assert not s.inside(dt.datetime(2026, 3, 27, 6, 59, tzinfo=UTC))
    assert s.inside(dt.datetime(2026, 3, 30, 6, 0, tzinfo=UTC))          # Monday after the change
    assert not s.inside(dt.datetime(2026, 3, 30, 17, 0, tzinfo=UTC))
    assert not s.inside(dt.datetime(2026, 3, 28, 12, 0, tzinfo=UTC))      # Saturday
    assert s.next_transition(dt.datetime(2026, 3, 27, 20, tzinfo=UTC)) == dt.datetime(2026, 3, 30, 6, tzinfo=UTC)
    assert s.weekly_warm_hours() == 55
    assert s.replicas_at(dt.datetime(2026, 3, 30, 9, tzinfo=UTC), base=0) == 1
    assert s.replicas_at(dt.datetime(2026, 3, 29, 9, tzinfo=UTC), base=0) == 0


def test_a_window_starting_in_the_skipped_hour_opens_when_the_clock_jumps():
    s = WarmSchedule.model_validate({"timeZone": "Europe/Berlin", "windows": [{"start": "30 2 * * 0", "end": "0 4 * * 0"}]})
    opens = s.next_transition(dt.datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert opens == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)          # 02:00 CET becomes 03:00 CEST
    assert s.next_transition(opens) == dt.datetime(2026, 3, 29, 2, 0, tzinfo=UTC)


def test_overnight_and_wrapping_day_ranges():
    s = WarmSchedule.model_validate({"timeZone": "UTC", "windows": [{"days": ["fri-mon"], "start": "22:00", "end": "06:00"}]})
    assert s.inside(dt.datetime(2026, 12, 8, 5, tzinfo=UTC))            # Tuesday 05:00: Monday's night
    assert not s.inside(dt.datetime(2026, 12, 9, 5, tzinfo=UTC))        # Wednesday 05:00
    assert s.weekly_warm_hours() == 4 * 8
    assert s.cron_edges() == [("0 22 * * 0,1,5,6", "0 6 * * 0,1,2,6")]


@pytest.mark.parametrize("raw, needle", [
    ({"timeZone": "Europe/Berln", "windows": [{"days": ["mon"], "start": "08:00", "end": "09:00"}]}, "unknown time zone"),
    ({"timeZone": "UTC", "windows": [{"start": "08:00", "end": "09:00"}]}, "needs days"),
    ({"timeZone": "UTC", "windows": [{"days": ["monday"], "start": "08:00", "end": "09:00"}]}, "unknown day 'monday'"),
    ({"timeZone": "UTC", "windows": [{"start": "0 8 1 * *", "end": "0 9 * * *"}]}, "MINUTE HOUR * * DAYS"),
    ({"timeZone": "UTC", "windows": [{"start": "0 8 * * 1", "end": "0 9 * * 3"}]}, "must be the start's days"),
    ({"timeZone": "UTC", "windows": []}, "at least 1"),
    ({"timeZone": "UTC", "windows": [{"days": ["mon"], "start": "8:00", "end": "19:00"}]}, "'8:00' is not a time HH:MM"),
    ({"timeZone": "UTC", "windows": [{"days": ["mon-sun"], "start": "08:00", "end": "08:00"}]}, "whole week"),
])
def test_bad_schedules_say_what_is_wrong(raw, needle):
    with pytest.raises(ValidationError) as e:
        WarmSchedule.model_validate(raw)
    assert needle in str(e.value)


def test_the_spec_refuses_more_warm_replicas_than_max():
    from infra.spec.model import ScalingSection
    with pytest.raises(ValidationError, match="warmSchedule.minReplicas"):
        ScalingSection.model_validate({"maxReplicas": 1, "warmSchedule": {
            "timeZone": "UTC", "minReplicas": 2, "windows": [{"days": ["mon"], "start": "08:00", "end": "09:00"}]}})
    assert Window(days=["mon"], start="08:00", end="09:00").bounds[0] == (0,)
