"""Per-level statistics and the knee, from synthetic request results (no clock involved)."""
from __future__ import annotations

import pytest

from infra.bench.load import LevelRun, RequestResult
from infra.bench.stats import LevelStats, Spread, knee, level_stats


def _run(concurrency: int, results: list[RequestResult], duration: float) -> LevelRun:
    return LevelRun(concurrency, started=100.0, finished=100.0 + duration, results=results)


def test_level_stats_from_known_requests():
    # Four requests: TTFT 0.1..0.4 s, 11 tokens each, 1 s after the first token; one failure.
    ok = [RequestResult(start=100.0, first_token=100.0 + t, end=101.0 + t, output_tokens=11) for t in (0.1, 0.2, 0.3, 0.4)]
    bad = RequestResult(start=100.0, end=100.5, error="InternalServerError (500)")
    s = level_stats(_run(4, ok + [bad], duration=2.0))
    assert s.requests == 5 and s.errors == 1 and s.error_rate == pytest.approx(0.2)
    assert s.error_kinds == {"InternalServerError (500)": 1}
    assert s.ttft_s.p50 == pytest.approx(0.25) and s.ttft_s.mean == pytest.approx(0.25)
    assert s.ttft_s.p95 == pytest.approx(0.385)              # numpy's linear interpolation
    assert s.tpot_s.p50 == pytest.approx(0.1)                 # 1 s over the 10 tokens after the first
    assert s.e2e_s.p50 == pytest.approx(1.25)
    assert s.output_tokens == 44 and s.output_tokens_per_s == pytest.approx(22.0)
    assert s.requests_per_s == pytest.approx(2.0)             # failed requests are not served requests


def test_a_level_where_everything_failed_has_no_latencies():
    s = level_stats(_run(2, [RequestResult(start=0, end=1, error="APIConnectionError")] * 3, duration=1.0))
    assert s.error_rate == 1.0 and s.ttft_s == Spread(None, None, None) and s.output_tokens_per_s == 0.0


def _level(c: int, tps: float, error_rate: float = 0.0) -> LevelStats:
    none = Spread(None, None, None)
    return LevelStats(c, 10, int(10 * error_rate), error_rate, 1.0, none, none, none, {}, int(tps), tps, 1.0)


def test_knee_is_the_lowest_level_within_ten_percent_of_the_best_throughput():
    levels = [_level(1, 100), _level(4, 370), _level(16, 400), _level(64, 395)]
    assert knee(levels) == 4
    assert knee([_level(1, 100), _level(4, 350), _level(16, 400)]) == 16   # 350 < 90% of 400


def test_knee_skips_levels_with_errors_and_is_none_when_nothing_served():
    assert knee([_level(1, 100), _level(4, 400, error_rate=0.5), _level(16, 380)]) == 16
    assert knee([_level(1, 0.0), _level(4, 0.0)]) is None


def test_throughput_counts_only_the_time_the_concurrency_was_held():
    # Level 100..104 s; the last request was sent at 102 s, then the level drained.
    a = RequestResult(start=100.0, first_token=100.5, end=101.5, output_tokens=10)   # all inside
    b = RequestResult(start=100.0, first_token=101.0, end=104.0, output_tokens=30)   # a third inside
    run = LevelRun(2, started=100.0, finished=104.0, results=[a, b], last_sent=102.0)
    s = level_stats(run)
    assert s.output_tokens == 40 and s.output_tokens_per_s == pytest.approx(20 / 2)
    assert s.requests_per_s == pytest.approx(10 / 20)          # tokens/s over the mean answer length
    # A level sent all at once (budget = concurrency) has no held part: the whole level counts.
    run.last_sent = 100.1
    assert level_stats(run).output_tokens_per_s == pytest.approx(40 / 4)
