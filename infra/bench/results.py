"""Saved runs: one JSON file (and its chart) per stack and run under the glmserve home,
``<home>/bench/<stack>/<run id>.json``, so a later run can be compared with an earlier one
and the GitOps summary can show the last run's numbers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from infra.common.errors import GlmserveError, Problem
from infra.deploy.workspace import glmserve_home

# What --compare shows per level: (key path in a level row, label, True when higher is better).
COMPARED = (
    (("output_tokens_per_s",), "output tok/s", True),
    (("ttft_s", "p50"), "TTFT p50 s", False),
    (("e2e_s", "p50"), "e2e p50 s", False),
    (("usd_per_million_output_tokens",), "$/Mtok", False),
    (("error_rate",), "error rate", False),
)


def runs_dir(stack: str) -> Path:
    return glmserve_home() / "bench" / stack


def run_ids(stack: str) -> list[str]:
    """Oldest first (ids are UTC timestamps, so names sort by time)."""
    d = runs_dir(stack)
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def claim(run: dict[str, Any]) -> Path:
    """Where the run will be saved; its id gets a suffix when a run of the same second exists."""
    d = runs_dir(run["stack"])
    base, n = run["id"], 1
    while (d / f"{run['id']}.json").exists():
        n += 1
        run["id"] = f"{base}-{n}"
    return d / f"{run['id']}.json"


def save(run: dict[str, Any]) -> Path:
    path = runs_dir(run["stack"]) / f"{run['id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=2) + "\n")
    return path


def load(stack: str, run_id: str = "last", before: Optional[str] = None) -> dict[str, Any]:
    """A saved run: ``last`` is the newest one older than ``before`` (when given)."""
    ids = [i for i in run_ids(stack) if before is None or i < before]
    if run_id == "last":
        if not ids:
            raise GlmserveError([Problem(key="--compare", message=f"no earlier bench run of stack {stack} "
                                         f"in {runs_dir(stack)}", allowed="run `glmserve bench` once first")],
                                headline="nothing to compare with")
        run_id = ids[-1]
    path = runs_dir(stack) / f"{run_id}.json"
    if not path.is_file():
        raise GlmserveError([Problem(key="--compare", value=run_id, message=f"no such run of stack {stack}",
                                     allowed=", ".join(run_ids(stack)[-5:]) or "(no saved runs)")],
                            headline="nothing to compare with")
    return json.loads(path.read_text())


def _at(row: dict[str, Any], path: tuple[str, ...]) -> Optional[float]:
    value: Any = row
    for k in path:
        value = value.get(k) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def compare(current: dict[str, Any], earlier: dict[str, Any]) -> dict[str, Any]:
    """Per concurrency level present in both runs: each compared figure before and after,
    and the relative change (None when the earlier figure is zero or missing)."""
    old = {row["concurrency"]: row for row in earlier["levels"]}
    levels = []
    for row in current["levels"]:
        prev = old.get(row["concurrency"])
        if prev is None:
            continue
        figures = {}
        for path, label, higher_better in COMPARED:
            a, b = _at(prev, path), _at(row, path)
            change = (b - a) / a if a and b is not None else None
            figures[label] = {"before": a, "after": b, "change": change,
                              "better": None if change is None or change == 0 else (change > 0) == higher_better}
        levels.append({"concurrency": row["concurrency"], "figures": figures})
    return {"before": earlier["id"], "after": current["id"],
            "knee": {"before": earlier.get("knee_concurrency"), "after": current.get("knee_concurrency")},
            "levels": levels}


def last_summary(stack: str) -> Optional[dict[str, Any]]:
    """The newest run's headline numbers (for the GitOps summary), None when never benched."""
    ids = run_ids(stack)
    if not ids:
        return None
    run = load(stack, ids[-1])
    best = next((r for r in run["levels"] if r.get("best")), None)
    return {"id": run["id"], "knee_concurrency": run.get("knee_concurrency"),
            "planner_max_concurrency": run.get("planner_max_concurrency"),
            "output_tokens_per_s": best and best["output_tokens_per_s"],
            "ttft_p50_s": best and best["ttft_s"]["p50"],
            "usd_per_million_output_tokens": best and best.get("usd_per_million_output_tokens")}


def summary_markdown(stack: str) -> Optional[str]:
    """One Markdown line with the last run's numbers, None when the stack was never benched."""
    last = last_summary(stack)
    if last is None:
        return None

    def fmt(value, pattern: str) -> str:
        return "-" if value is None else pattern.format(value)

    planned = last["planner_max_concurrency"]
    return (f"**Last bench** (`glmserve bench`, run {last['id']}): knee at concurrency "
            f"{fmt(last['knee_concurrency'], '{}')} (planner max_concurrency {fmt(planned, '{:g}')}), "
            f"{fmt(last['output_tokens_per_s'], '{:.1f}')} output tok/s, TTFT p50 {fmt(last['ttft_p50_s'], '{:.2f}')} s, "
            f"{fmt(last['usd_per_million_output_tokens'], '${:.2f}')}/Mtok")
