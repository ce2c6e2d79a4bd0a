"""Per-level statistics of a load run, and the knee of the throughput curve.

Percentiles come from numpy (linear interpolation, numpy's default), means from the standard
library's ``statistics``; nothing here is hand-rolled arithmetic on samples.
"""
from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy

from infra.bench.load import LevelRun

# The knee: the lowest concurrency whose throughput reaches this share of the best measured
# throughput. Above it more concurrency buys little throughput and costs latency.
KNEE_SHARE = 0.9
# A level with more errors than this is not a candidate for the knee.
MAX_ERROR_RATE = 0.05


@dataclass(frozen=True)
class Spread:
    p50: Optional[float]
    p95: Optional[float]
    mean: Optional[float]

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Spread":
        if not samples:
            return cls(None, None, None)
        p50, p95 = numpy.percentile(samples, [50, 95])
        return cls(float(p50), float(p95), statistics.fmean(samples))


@dataclass(frozen=True)
class LevelStats:
    concurrency: int
    requests: int
    errors: int
    error_rate: float
    duration_s: float
    ttft_s: Spread            # time to first token
    tpot_s: Spread            # time per output token after the first
    e2e_s: Spread             # end-to-end latency
    error_kinds: dict[str, int]   # e.g. {"InternalServerError (500)": 2, "Timeout": 1}
    output_tokens: int
    output_tokens_per_s: float    # while the concurrency was held (see held_window)
    requests_per_s: float

    def to_json(self) -> dict:
        return asdict(self)


def held_window(run: LevelRun) -> tuple[float, float]:
    """The part of a level during which its concurrency was held: from the start to the last
    request sent, when that is at least half the level; else the whole level. The drain after
    it runs at a falling concurrency and would count a lower level's throughput as this one's."""
    if run.last_sent is not None and run.last_sent - run.started >= 0.5 * (run.finished - run.started):
        return run.started, run.last_sent
    return run.started, run.finished


def _tokens_within(r, start: float, end: float) -> float:
    """A request's output tokens inside [start, end], its tokens spread evenly from the first
    token to its end."""
    if r.first_token is None or r.output_tokens == 0:
        return 0.0
    span = r.end - r.first_token
    if span <= 0:
        return float(r.output_tokens) if start <= r.end <= end else 0.0
    inside = max(0.0, min(r.end, end) - max(r.first_token, start))
    return r.output_tokens * inside / span


def level_stats(run: LevelRun) -> LevelStats:
    ok = [r for r in run.results if r.ok]
    ttft = [r.first_token - r.start for r in ok if r.first_token is not None]
    tpot = [(r.end - r.first_token) / (r.output_tokens - 1) for r in ok
            if r.first_token is not None and r.output_tokens > 1]
    duration = max(run.finished - run.started, 1e-9)
    tokens = sum(r.output_tokens for r in ok)
    start, end = held_window(run)
    tokens_per_s = sum(_tokens_within(r, start, end) for r in ok) / max(end - start, 1e-9)
    n = len(run.results)
    errors = n - len(ok)
    return LevelStats(concurrency=run.concurrency, requests=n, errors=errors, error_rate=errors / n if n else 0.0,
                      duration_s=duration, ttft_s=Spread.of(ttft), tpot_s=Spread.of(tpot),
                      e2e_s=Spread.of([r.end - r.start for r in ok]),
                      error_kinds=dict(Counter(r.error for r in run.results if not r.ok)), output_tokens=tokens,
                      output_tokens_per_s=tokens_per_s,
                      requests_per_s=tokens_per_s / (tokens / len(ok)) if tokens else 0.0)


def knee(levels: Sequence[LevelStats]) -> Optional[int]:
    """The concurrency of the knee (see KNEE_SHARE), None when no level served well."""
    good = [lv for lv in levels if lv.error_rate <= MAX_ERROR_RATE and lv.output_tokens_per_s > 0]
    if not good:
        return None
    best = max(lv.output_tokens_per_s for lv in good)
    return min(lv.concurrency for lv in good if lv.output_tokens_per_s >= KNEE_SHARE * best)
