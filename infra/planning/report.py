"""The plan of a node as a report: the verdict, the stable JSON schema (docs/plan-schema.md),
the compact stack output ``capacity`` and the text `glmserve plan` prints."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from infra.planning.capacity import Capacity
from infra.planning.coldstart import ColdStart
from infra.planning.sources import Assumption
from infra.spec.gpus import gpu_catalog

SCHEMA_VERSION = 1

# The top-level keys of Plan.to_json(), in order. Changing this set is a schema change:
# bump SCHEMA_VERSION and docs/plan-schema.md.
JSON_KEYS = (
    "schema_version", "fits", "reasons", "errors", "warnings", "knobs",
    "model", "gpu", "serving", "provider",
    "weights_gib_per_gpu", "weights",
    "gpu_memory_gib", "requested_gib_per_gpu", "activation_peak_gib_per_gpu", "non_torch_gib_per_gpu",
    "cudagraph_gib_per_gpu", "available_kv_gib_per_gpu",
    "kv_cache_dtype", "kv_bytes_per_token_per_gpu", "kv_layers", "block_size",
    "kv_cache_blocks", "kv_cache_tokens", "max_model_len", "max_concurrency", "kv_gib_per_max_len_request",
    "engines",
    "cost_per_hour_usd", "cost",
    "cold_start_seconds_estimate", "cold_start",
    "assumptions",
)

SUMMARY_KEYS = (
    "fits", "weights_gib_per_gpu", "available_kv_gib_per_gpu", "kv_bytes_per_token_per_gpu", "block_size",
    "kv_cache_tokens", "max_model_len", "max_concurrency", "cost_per_hour_usd", "cold_start_seconds_estimate",
    "errors", "warnings",
)


def _r(x: Optional[float], n: int = 3) -> Optional[float]:
    return None if x is None else round(float(x), n)


@dataclass
class Plan:
    capacity: Capacity
    cost: dict[str, Any]
    cold_start: ColdStart
    model: dict[str, Any]
    provider: str
    source: dict[str, Any]
    extra_warnings: list[str] = field(default_factory=list)
    extra_assumptions: list[Assumption] = field(default_factory=list)

    # ---- verdicts
    @property
    def fits(self) -> bool:
        return self.capacity.fits

    def errors(self) -> list[str]:
        """Why the node does not fit (empty if it does), each with the numbers and the knobs."""
        return list(self.capacity.errors)

    def warnings(self) -> list[str]:
        return list(self.capacity.warnings) + list(self.extra_warnings)

    def reasons(self) -> list[str]:
        c = self.capacity
        if not c.fits:
            return self.errors()
        return [
            f"weights {c.weights.per_rank_gib:.2f} GiB + activations, non-torch and CUDA graphs "
            f"{c.overhead_gib:.2f} GiB leave {c.available_kv_gib:.2f} GiB of the {c.requested_gib:.2f} GiB "
            f"requested per GPU for the KV cache",
            f"{c.kv_cache_tokens:,} KV tokens hold {c.max_concurrency:.2f} concurrent {c.max_model_len:,}-token "
            f"requests ({c.kv_gib_per_request:.2f} GiB each)",
        ]

    @property
    def cost_per_hour_usd(self) -> Optional[float]:
        return self.cost.get("cost_per_hour_usd")

    @property
    def cold_start_seconds_estimate(self) -> int:
        return int(round(self.cold_start.total_s))

    def assumptions(self) -> list[Assumption]:
        seen: set[tuple] = set()
        out = []
        for a in [*self.capacity.assumptions, *self.extra_assumptions, *self.cold_start.assumptions]:
            key = (a.what, json.dumps(a.value, default=str))
            if key not in seen:
                seen.add(key)
                out.append(a)
        return out

    # ---- outputs
    def to_json(self) -> dict[str, Any]:
        c = self.capacity
        inp = c.inputs
        gpu_row = gpu_catalog()[inp.gpu_type]
        out = {
            "schema_version": SCHEMA_VERSION,
            "fits": c.fits,
            "reasons": self.reasons(),
            "errors": self.errors(),
            "warnings": self.warnings(),
            "knobs": [k.to_json() for k in c.knobs],
            "model": self.model,
            "gpu": {"type": inp.gpu_type, "count": inp.gpus, "memory_mib": gpu_row["memory_mib"], "nodes": inp.nodes},
            "serving": {
                "tensor_parallel_size": inp.tp,
                "pipeline_parallel_size": inp.pp,
                "kv_cache_dtype": inp.kv_cache_dtype,
                "max_model_len": c.max_model_len,
                "gpu_memory_utilization": inp.gpu_memory_utilization,
                "enforce_eager": inp.enforce_eager,
                "speculative_method": inp.speculative_method if inp.speculative_tokens else None,
                "speculative_tokens": inp.speculative_tokens,
                "max_num_seqs": c.max_num_seqs,
                "max_num_batched_tokens": c.max_num_batched_tokens,
                "load_strategy": self.cold_start.load_strategy,
            },
            "provider": self.provider,
            "weights_gib_per_gpu": _r(c.weights.per_rank_gib),
            "weights": {
                "source": c.weights.source,
                "checkpoint_gib": _r(c.weights.checkpoint_gib, 2),
                "estimated_checkpoint_gib": _r(c.weights.estimated_checkpoint_gib, 2),
                "loaded_checkpoint_gib": _r(c.weights.loaded_gib, 2),
                "bottom_up_gib_per_gpu": _r(c.weights.bottom_up_per_rank_gib),
                "unattributed_gib_per_gpu": _r(c.weights.adjust_gib),
                "breakdown_gib_per_gpu": c.weights.breakdown,
            },
            "gpu_memory_gib": _r(c.gpu_memory_gib),
            "requested_gib_per_gpu": _r(c.requested_gib),
            "activation_peak_gib_per_gpu": _r(c.activation_gib),
            "non_torch_gib_per_gpu": _r(c.non_torch_gib),
            "cudagraph_gib_per_gpu": _r(c.cudagraph_gib),
            "available_kv_gib_per_gpu": _r(c.available_kv_gib),
            "kv_cache_dtype": c.kv.cache_format,
            "kv_bytes_per_token_per_gpu": c.kv.bytes_per_token,
            "kv_layers": c.kv.to_json(),
            "block_size": c.kv.block_size,
            "kv_cache_blocks": c.num_blocks,
            "kv_cache_tokens": c.kv_cache_tokens,
            "max_model_len": c.max_model_len,
            "max_concurrency": _r(c.max_concurrency, 2),
            "kv_gib_per_max_len_request": _r(c.kv_gib_per_request),
            "engines": c.engines,
            "cost_per_hour_usd": self.cost_per_hour_usd,
            "cost": {k: v for k, v in self.cost.items() if k != "assumptions"},
            "cold_start_seconds_estimate": self.cold_start_seconds_estimate,
            "cold_start": self.cold_start.to_json(),
            "assumptions": [a.to_json() for a in self.assumptions()] + list(self.cost.get("assumptions", [])),
        }
        assert tuple(out) == JSON_KEYS
        return out

    def summary(self) -> dict[str, Any]:
        """Compact, JSON-ready: the stack output `capacity`."""
        c = self.capacity
        return {
            "fits": c.fits,
            "weights_gib_per_gpu": _r(c.weights.per_rank_gib, 2),
            "available_kv_gib_per_gpu": _r(c.available_kv_gib, 2),
            "kv_bytes_per_token_per_gpu": c.kv.bytes_per_token,
            "block_size": c.kv.block_size,
            "kv_cache_tokens": c.kv_cache_tokens,
            "max_model_len": c.max_model_len,
            "max_concurrency": _r(c.max_concurrency, 2),
            "cost_per_hour_usd": self.cost_per_hour_usd,
            "cold_start_seconds_estimate": self.cold_start_seconds_estimate,
            "errors": self.errors(),
            "warnings": self.warnings(),
        }

    def format_text(self) -> str:
        c = self.capacity
        inp = c.inputs
        w = c.weights
        lines: list[str] = []
        where = f" [stack {self.source['stack']}]" if self.source.get("stack") else ""
        nodes = f"{inp.nodes} nodes of " if inp.nodes > 1 else ""
        pp = f", PP {inp.pp}" if inp.pp > 1 else ""
        lines.append(f"glmserve plan: {self.model['name']} on {nodes}{inp.gpus}x {inp.gpu_type}, TP {inp.tp}{pp}, "
                     f"provider {self.provider}{where}")
        lines.append(f"verdict: {'FITS' if c.fits else 'DOES NOT FIT'}")
        lines.append("")
        lines.append("Memory per GPU (GiB)")

        def row(label: str, value: float, note: str = "") -> None:
            lines.append(f"  {label:<34}{value:>9.2f}" + (f"   {note}" if note else ""))

        row(f"{inp.gpu_type} memory (driver)", c.gpu_memory_gib)
        row(f"requested (x {inp.gpu_memory_utilization})", c.requested_gib)
        wnote = {"override": "user override", "profile": f"checkpoint {w.checkpoint_gib:.2f} GiB",
                 "config": f"estimated from config ({w.checkpoint_gib:.1f} GiB checkpoint)"}[w.source]
        if w.adjust_gib:
            wnote += f", incl. {w.adjust_gib:.2f} measured unattributed"
        row("- weights", w.per_rank_gib, wnote)
        row("- activation peak", c.activation_gib,
            ", ".join(f"{k} {v:.2f}" for k, v in c.activation_breakdown.items() if v))
        row("- non-torch", c.non_torch_gib)
        row("- CUDA graphs", c.cudagraph_gib, "eager" if inp.enforce_eager else "estimate")
        row("= available for the KV cache", c.available_kv_gib)
        lines.append("")
        lines.append(f"KV cache: {c.kv.cache_format}, block {c.kv.block_size} tokens")
        parts = " + ".join(f"{g.layers}x{g.bytes_per_token} ({g.name})" for g in c.kv.groups)
        lines.append(f"  {c.kv.bytes_per_token:,} B per token per GPU = {parts}")
        lines.append(f"  {c.num_blocks:,} blocks = {c.kv_cache_tokens:,} tokens for the engine")
        lines.append(f"  max concurrency at {c.max_model_len:,} tokens: {c.max_concurrency:.2f} "
                     f"({c.kv_gib_per_request:.2f} GiB per request)")
        lines.append("")
        cost = self.cost
        price = cost.get("price")
        if price:
            lines.append(f"Cost ({self.provider}, {cost['billing']}: ${price['per_gpu_hour_usd']:.4f} per "
                         f"{inp.gpu_type}-hour, {price['date'] or 'override'})")
            lines.append(f"  serving: ${cost['cost_per_hour_usd']:,.2f}/h for {inp.gpus} GPUs")
            lines.append(f"  idle: ${cost['idle_cost_per_hour_usd']:,.2f}/h, "
                         f"${cost['idle_cost_per_month_usd']:,.2f}/month"
                         + (f" (keep-warm {cost['scaling']['min_replicas']})" if cost['billing'] == 'serverless'
                            else " (a pod bills while it exists)"))
            if cost["billing"] == "serverless":
                lines.append(f"  each scale-up from zero: ${cost['cost_per_cold_start_usd']:,.2f} cold start + "
                             f"${cost['scaledown_tail_cost_usd']:,.2f} scale-down window "
                             f"({cost['scaling']['scaledown_window_s']:.0f} s)")
            if cost.get("usage"):
                lines.append(f"  usage: {cost['billed_hours_per_day']:.2f} billed h/day -> "
                             f"${cost['cost_per_day_usd']:,.2f}/day, ${cost['cost_per_month_usd']:,.2f}/month")
        else:
            lines.append(f"Cost: no price for {inp.gpu_type} on provider {self.provider} "
                         "(pass --price-per-gpu-hour)")
        sched = cost.get("schedule")
        if sched:
            lines.append(f"  warm schedule ({sched['time_zone']}: {'; '.join(sched['windows'])}): "
                         f"{sched['warm_replicas']} replica(s) for {sched['warm_hours_per_month']:.0f} h/month, "
                         f"{sched['replicas_outside']} outside")
            if sched["schedule_per_month_usd"] is not None:
                stz = sched["scale_to_zero_per_month_usd"]
                lines.append(f"    per month: this schedule ${sched['schedule_per_month_usd']:,.2f} | always-on "
                             f"${sched['always_on_per_month_usd']:,.2f} | scale to zero "
                             + (f"${stz:,.2f}" if stz is not None else "n/a (a pod bills while it exists)"))
            lines.append(f"    outside the windows: {sched['outside_windows']}")
        cmpn = cost.get("comparison")
        if cmpn:
            sv, dd = cmpn["serverless"], cmpn["dedicated"]
            lines.append(f"  serverless {sv['provider']} ${sv['cost_per_hour_usd']:,.2f}/h vs dedicated "
                         f"{dd['provider']} ${dd['cost_per_hour_usd']:,.2f}/h: {cmpn['note']}")
        lines.append("")
        cs = self.cold_start
        lines.append(f"Cold start ({cs.provider}, {cs.storage}, load strategy {cs.load_strategy}"
                     f"{', eager' if cs.enforce_eager else ''}): ~{cs.total_s:.0f} s "
                     f"({cs.total_s / 60:.1f} min; ready after {cs.ready_s:.0f} s)")
        lines.append("  " + " + ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.0f}"
                                        for k, v in cs.terms.items()))
        lines.append(f"  first deploy (download from Hugging Face first): ~{cs.first_deploy_s / 60:.0f} min")
        if self.errors():
            lines.append("")
            lines.append("Errors:")
            lines += [f"  - {e}" for e in self.errors()]
        if self.warnings():
            lines.append("")
            lines.append("Warnings:")
            lines += [f"  - {x}" for x in self.warnings()]
        lines.append("")
        lines.append("Assumptions:")
        for a in self.assumptions():
            lines.append(f"  - {a.what}: {a.value}  [{a.source}]")
        for a in self.cost.get("assumptions", []):
            lines.append(f"  - {a['what']}: {a['value']}  [{a['source']}]")
        return "\n".join(lines) + "\n"

