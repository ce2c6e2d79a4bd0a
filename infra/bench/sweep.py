"""One bench run: every concurrency level in turn, each with its statistics, engine metrics
and cost, gathered into the JSON-ready record that is printed, saved and charted."""
from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from infra.bench import cost, load, stats
from infra.bench.workload import Workload
from infra.bench.metrics import Scraper
from infra.bench.target import Target

SCHEMA = 1
# (concurrency, requests done, requests budgeted) after each request.
Progress = Callable[[int, int, int], None]


async def _sweep(target: Target, workload: Workload, progress: Progress) -> list[dict[str, Any]]:
    client = load.client_for(target.base_url, target.api_key, workload, max(workload.levels))
    scraper = Scraper(target.base_url, target.api_key)
    out = []
    try:
        for c in workload.levels:
            budget, done = workload.requests_for(c), 0

            def tick(_r, c=c, budget=budget) -> None:
                nonlocal done
                done += 1
                progress(c, done, budget)

            progress(c, 0, budget)
            run, engine = await scraper.during(load.run_level(client, target.model, workload, c, tick))
            out.append({"stats": stats.level_stats(run), "engine": engine})
    finally:
        await client.close()
    return out


def run(target: Target, workload: Workload, hourly: Optional[cost.HourlyCost],
        progress: Progress = lambda c, d, b: None) -> dict[str, Any]:
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    measured = asyncio.run(_sweep(target, workload, progress))
    levels = [m["stats"] for m in measured]
    knee = stats.knee(levels)
    rows = []
    for m in measured:
        lv: stats.LevelStats = m["stats"]
        row = lv.to_json()
        row["usd_per_million_output_tokens"] = (cost.per_million_tokens(hourly.usd_per_hour, lv.output_tokens_per_s)
                                                if hourly else None)
        row["engine"] = m["engine"].to_json() if m["engine"] else None
        row["best"] = lv.concurrency == knee
        rows.append(row)
    return {
        "schema": SCHEMA,
        "id": started.strftime("%Y%m%dT%H%M%SZ"),
        "stack": target.stack,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - t0, 3),
        "base_url": target.base_url,
        "model": target.model,
        "provider": target.outputs.get("provider"),
        "workload": {**asdict(workload), "levels": list(workload.levels)},
        "cost_per_hour": asdict(hourly) if hourly else None,
        "planner_max_concurrency": target.planner_max_concurrency,
        "knee_concurrency": knee,
        "levels": rows,
    }
