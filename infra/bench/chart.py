"""The chart a person looks at: throughput against latency, one point per concurrency level,
each labelled with its concurrency and cost per million output tokens (PNG, matplotlib's Agg
backend: no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def _points(run: dict[str, Any]) -> list[tuple[float, float, dict]]:
    return [(r["output_tokens_per_s"], r["e2e_s"]["p50"], r) for r in run["levels"] if r["e2e_s"]["p50"] is not None]


def write(run: dict[str, Any], path: Path, earlier: Optional[dict[str, Any]] = None) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    try:
        if earlier:
            pts = _points(earlier)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o--", color="0.6", label=f"run {earlier['id']}")
        pts = _points(run)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="tab:blue", label=f"run {run['id']}")
        for x, y, row in pts:
            usd = row.get("usd_per_million_output_tokens")
            label = f"c={row['concurrency']}" + (f"\n${usd:,.2f}/Mtok" if usd is not None else "")
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
            if row.get("best"):
                ax.plot([x], [y], marker="*", markersize=16, color="tab:orange", label="knee (best)", linestyle="")
        ax.set_xlabel("output tokens/s (all requests)")
        ax.set_ylabel("end-to-end latency p50 (s)")
        planned = run.get("planner_max_concurrency")
        title = f"glmserve bench: {run['stack']} ({run.get('model')})"
        if planned is not None:
            title += f"\nplanner max_concurrency {planned:g}, measured knee {run.get('knee_concurrency')}"
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
