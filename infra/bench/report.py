"""The terminal view of a run (and of a comparison): rich tables, plain text when piped."""
from __future__ import annotations

from typing import Any, Optional

from rich.console import Console
from rich.table import Table


def _num(x: Optional[float], fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def _ms(x: Optional[float]) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


def run_table(run: dict[str, Any]) -> Table:
    hourly = run.get("cost_per_hour")
    t = Table(title=f"glmserve bench {run['stack']} · {run['model']} · run {run['id']}", title_justify="left")
    for name in ("conc.", "req", "err %", "TTFT p50 ms", "TTFT p95 ms", "TPOT ms", "e2e p50 s", "e2e p95 s",
                 "out tok/s", "req/s", "$/Mtok", "KV %", "queue", "spec acc."):
        t.add_column(name, justify="right")
    for r in run["levels"]:
        eng = r.get("engine") or {}
        t.add_row(
            f"{r['concurrency']}{' *' if r.get('best') else ''}", str(r["requests"]),
            f"{100 * r['error_rate']:.1f}", _ms(r["ttft_s"]["p50"]), _ms(r["ttft_s"]["p95"]), _ms(r["tpot_s"]["p50"]),
            _num(r["e2e_s"]["p50"]), _num(r["e2e_s"]["p95"]), _num(r["output_tokens_per_s"], "{:.1f}"),
            _num(r["requests_per_s"]), _num(r.get("usd_per_million_output_tokens")),
            _num(eng.get("kv_cache_usage_max") and 100 * eng["kv_cache_usage_max"], "{:.0f}"),
            _num(eng.get("requests_waiting_max"), "{:.0f}"), _num(eng.get("spec_decode_acceptance")))
    planned = run.get("planner_max_concurrency")
    t.caption = (f"* best level = the knee: the lowest concurrency reaching 90% of the best throughput "
                 f"(measured knee {run.get('knee_concurrency') or '-'}, planner max_concurrency "
                 f"{'-' if planned is None else f'{planned:g}'})\n"
                 + (f"cost ${hourly['usd_per_hour']:.2f}/h ({hourly['source']})" if hourly
                    else "no cost per hour known: give --cost-per-hour for $/Mtok"))
    failed = [f"c={r['concurrency']}: " + ", ".join(f"{k} x{n}" for k, n in r.get("error_kinds", {}).items())
              for r in run["levels"] if r["errors"]]
    if failed:
        t.caption += "\nerrors: " + "; ".join(failed)
    t.caption_justify = "left"
    return t


def compare_table(cmp: dict[str, Any]) -> Table:
    knee = cmp["knee"]
    t = Table(title=f"compared with run {cmp['before']} (knee {knee['before'] or '-'} -> {knee['after'] or '-'})",
              title_justify="left")
    t.add_column("conc.", justify="right")
    labels = list(cmp["levels"][0]["figures"]) if cmp["levels"] else []
    for label in labels:
        t.add_column(label, justify="right")
    for lv in cmp["levels"]:
        cells = []
        for label in labels:
            f = lv["figures"][label]
            change = "" if f["change"] is None else f" ({100 * f['change']:+.0f}%{'' if f['better'] is None else (' better' if f['better'] else ' worse')})"
            cells.append(f"{_num(f['before'])} -> {_num(f['after'])}{change}")
        t.add_row(str(lv["concurrency"]), *cells)
    return t


def show(console: Console, run: dict[str, Any], cmp: Optional[dict[str, Any]] = None) -> None:
    console.print(run_table(run))
    if cmp is not None:
        console.print(compare_table(cmp))
