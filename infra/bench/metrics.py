"""The engine's own view of a level, from its Prometheus ``/metrics`` (when reachable).

vLLM serves ``/metrics`` at the server root, beside ``/v1`` and outside its API-key check
(metric names: https://docs.vllm.ai/en/stable/usage/metrics/). Gauges (KV-cache usage, requests
waiting) are sampled while a level runs; the speculative-decoding acceptance is the ratio of
the accepted and drafted token counters' increase over the level. An endpoint without
``/metrics`` (a proxy that hides it, another engine) leaves these figures out; it never fails
the run.
"""
from __future__ import annotations

import asyncio
import statistics
from dataclasses import asdict, dataclass
from typing import Awaitable, Optional, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Current names first; vLLM's V0 engine called the KV-cache gauge gpu_cache_usage_perc.
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
WAITING = ("vllm:num_requests_waiting",)
RUNNING = ("vllm:num_requests_running",)
ACCEPTED = ("vllm:spec_decode_num_accepted_tokens_total",)
DRAFTED = ("vllm:spec_decode_num_draft_tokens_total",)
SAMPLE_EVERY_S = 0.5
T = TypeVar("T")


def parse(text: str) -> dict[str, float]:
    """Sample name -> value, summed over label sets (one per model or engine)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + float(s.value)
    return out


def _first(values: dict[str, float], names: tuple[str, ...]) -> Optional[float]:
    return next((values[n] for n in names if n in values), None)


def metrics_url(base_url: str) -> str:
    """``https://host/v1`` -> ``https://host/metrics``."""
    root = base_url.rstrip("/")
    return (root[: -len("/v1")] if root.endswith("/v1") else root) + "/metrics"


@dataclass(frozen=True)
class EngineMetrics:
    kv_cache_usage_mean: Optional[float]
    kv_cache_usage_max: Optional[float]
    requests_waiting_mean: Optional[float]
    requests_waiting_max: Optional[float]
    requests_running_max: Optional[float]
    spec_decode_acceptance: Optional[float]
    samples: int

    def to_json(self) -> dict:
        return asdict(self)


def summarise(before: dict[str, float], samples: list[dict[str, float]], after: dict[str, float]) -> EngineMetrics:
    def series(names):
        return [v for v in (_first(s, names) for s in samples) if v is not None]

    kv, waiting, running = series(KV_CACHE), series(WAITING), series(RUNNING)
    acc = None
    a0, a1, d0, d1 = (_first(before, ACCEPTED), _first(after, ACCEPTED), _first(before, DRAFTED), _first(after, DRAFTED))
    if None not in (a0, a1, d0, d1) and d1 - d0 > 0:
        acc = (a1 - a0) / (d1 - d0)
    return EngineMetrics(
        kv_cache_usage_mean=statistics.fmean(kv) if kv else None, kv_cache_usage_max=max(kv) if kv else None,
        requests_waiting_mean=statistics.fmean(waiting) if waiting else None,
        requests_waiting_max=max(waiting) if waiting else None,
        requests_running_max=max(running) if running else None,
        spec_decode_acceptance=acc, samples=len(samples))


class Scraper:
    """Scrapes ``/metrics`` before, during (every SAMPLE_EVERY_S) and after a level."""

    def __init__(self, base_url: str, api_key: str):
        self.url = metrics_url(base_url)
        # Sent in case a proxy in front of the engine guards every path.
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.reachable = True

    async def scrape(self, http: httpx.AsyncClient) -> Optional[dict[str, float]]:
        if not self.reachable:
            return None
        try:
            r = await http.get(self.url, headers=self._headers, timeout=5.0)
            if r.status_code != 200:
                self.reachable = False
                return None
            return parse(r.text)
        except (httpx.HTTPError, ValueError):
            self.reachable = False
            return None

    async def during(self, load: Awaitable[T]) -> tuple[T, Optional[EngineMetrics]]:
        """Await ``load`` (a level) while scraping; its result and the level's engine metrics."""
        async with httpx.AsyncClient() as http:
            before = await self.scrape(http)
            task = asyncio.ensure_future(load)
            samples = []
            while not task.done():
                s = await self.scrape(http)
                if s is not None:
                    samples.append(s)
                await asyncio.wait([task], timeout=SAMPLE_EVERY_S)
            after = await self.scrape(http)
        if before is None or after is None:
            return task.result(), None
        return task.result(), summarise(before, samples, after)
