"""`glmserve plan`: capacity, cost and cold start of a node, offline.

Library API (the CLI and the Pulumi component use these)::

    plan_for_spec(spec, provider_price_override=None) -> Plan
    plan_adhoc(profile_or_config, gpu, gpus, tp, kv_cache_dtype, max_model_len,
               gpu_memory_utilization, weights_gib=None, enforce_eager=False,
               speculative_tokens=0, provider=None, ...) -> Plan
    Plan.to_json()      the stable schema (docs/plan-schema.md)
    Plan.format_text()  the human report
    Plan.errors()       why the node does not fit, with the numbers and the knobs that would fix it
    Plan.warnings()     low headroom and other things worth knowing
    Plan.summary()      a compact dict for the stack output `capacity`

CLI::

    add_arguments(parser)   adds the plan flags to an argparse (sub)parser
    run(args) -> int        prints the plan; 0 if the node fits, 1 if it does not.
                            User errors raise infra.errors.GlmserveError.

Imports stay light (yaml and the standard library; pydantic only through --stack): the
whole command runs well under 0.3 s.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from infra.planning import capacity as cap_mod
from infra.planning import coldstart as cs_mod
from infra.planning import cost as cost_mod
from infra.planning.capacity import Assumption, Capacity, CapacityInputs, ConfigError
from infra.common.errors import GlmserveError, Problem
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

PROVIDERS = ("modal", "runpod", "kubernetes", "none")


def _r(x: Optional[float], n: int = 3) -> Optional[float]:
    return None if x is None else round(float(x), n)


def _user_error(e: ConfigError, file: Optional[str] = None) -> GlmserveError:
    return GlmserveError([Problem(key=e.key, message=e.message, file=file, value=e.value, allowed=e.allowed)],
                         headline="cannot plan")


# --------------------------------------------------------------------------- the plan

@dataclass
class Plan:
    capacity: Capacity
    cost: dict[str, Any]
    cold_start: cs_mod.ColdStart
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


# --------------------------------------------------------------------------- building plans

def _as_profile(profile_or_config: dict, name: Optional[str] = None) -> dict:
    if not isinstance(profile_or_config, dict):
        raise ConfigError("--model-config", "must be a JSON object (a config.json) or a model profile")
    if isinstance(profile_or_config.get("config"), dict):
        return profile_or_config
    return {"name": name or str(profile_or_config.get("_name_or_path") or "model"), "config": profile_or_config,
            "sources": []}


def _profile_assumptions(profile: dict) -> list[Assumption]:
    name = str(profile.get("name") or "model")
    out = [Assumption(f"profile {name}", str(text), "model profile assumptions")
           for text in (profile.get("assumptions") or [])]
    srcs = profile.get("sources") or []
    if srcs:
        out.append(Assumption(f"architecture of {name}", "model profile config", "; ".join(map(str, srcs))))
    return out


def _build(profile: dict, *, gpu: str, gpus: int, tp: Optional[int], kv_cache_dtype: str,
           max_model_len: Optional[int], gpu_memory_utilization: float, weights_gib: Optional[float],
           enforce_eager: bool, speculative_tokens: int, speculative_method: Optional[str],
           provider: Optional[str], load_strategy: Optional[str], storage: Optional[str],
           runpod_volume: Optional[str], min_replicas: int, max_replicas: int, scaledown_window: float,
           startup_timeout_s: Optional[float], usage: cost_mod.Usage, price_override: Any,
           max_num_seqs: Optional[int], max_num_batched_tokens: Optional[int], block_size: Optional[int],
           source: dict[str, Any], extra_warnings: list[str], pp: int = 1, nodes: Optional[int] = None) -> Plan:
    provider = provider or "none"
    if provider not in PROVIDERS:
        raise ConfigError("provider", "unknown provider", value=provider, allowed=", ".join(PROVIDERS))
    if weights_gib is not None and weights_gib <= 0:
        raise ConfigError("--weights-gib", "must be positive", value=weights_gib)
    if speculative_tokens < 0:
        raise ConfigError("--speculative-tokens", "must not be negative", value=speculative_tokens)
    arch = cap_mod.arch_from_profile(profile)
    tp = int(tp or gpus)
    pp = int(pp or 1)
    if nodes is None:
        nodes = max(1, -(-tp * pp // int(gpus)))
    nodes = int(nodes)
    inputs = CapacityInputs(
        arch=arch, profile=profile, gpu_type=gpu, gpus=int(gpus), tp=tp, kv_cache_dtype=kv_cache_dtype,
        max_model_len=max_model_len, gpu_memory_utilization=float(gpu_memory_utilization),
        weights_gib=weights_gib, enforce_eager=bool(enforce_eager),
        speculative_method=(speculative_method or "mtp") if speculative_tokens else None,
        speculative_tokens=int(speculative_tokens), max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens, block_size=block_size, pp=pp, nodes=nodes)
    capacity = cap_mod.evaluate(inputs)
    read_gib = capacity.weights.loaded_gib if capacity.weights.source != "override" \
        else capacity.weights.per_rank_gib * tp * pp
    if nodes > 1:
        # Every node of a multi-node engine reads its own share of the checkpoint, in parallel.
        read_gib /= nodes
    cold = cs_mod.estimate(provider, read_gib, load_strategy=load_strategy, enforce_eager=bool(enforce_eager),
                           moe=arch.is_moe, storage=storage, runpod_volume=runpod_volume)
    serverless_cold = None
    if provider != "modal":
        serverless_cold = cs_mod.estimate("modal", read_gib, load_strategy=load_strategy,
                                          enforce_eager=bool(enforce_eager), moe=arch.is_moe).total_s
    cost = cost_mod.cost_report(
        provider, gpu, int(gpus) * nodes, min_replicas=min_replicas, max_replicas=max_replicas,
        scaledown_window_s=float(scaledown_window), cold_start_s=cold.total_s,
        serverless_cold_start_s=serverless_cold, usage=usage, price_override=price_override)
    warnings = list(extra_warnings)
    read_s = cold.terms["weights_read_s"]
    if read_s > 600:
        faster = []
        if provider == "runpod" and storage is None:
            for vol in ("persistent", "network"):
                alt = cs_mod.estimate(provider, read_gib, load_strategy=load_strategy, enforce_eager=enforce_eager,
                                      moe=arch.is_moe, runpod_volume=vol)
                if alt.terms["weights_read_s"] < read_s * 0.8:
                    faster.append(f"runpod.volume {vol} ({alt.storage}): ~{alt.terms['weights_read_s'] / 60:.0f} min")
        if load_strategy != "prefetch":
            alt = cs_mod.estimate(provider, read_gib, load_strategy="prefetch", enforce_eager=enforce_eager,
                                  moe=arch.is_moe, storage=cold.storage)
            if alt.terms["weights_read_s"] < read_s * 0.8:
                faster.append(f"serving.loadStrategy prefetch: ~{alt.terms['weights_read_s'] / 60:.0f} min")
        warnings.append(f"reading {read_gib:.0f} GiB of weights from {cold.storage} takes ~{read_s / 60:.0f} min "
                        f"at every start" + (f"; faster: {', '.join(faster)}" if faster else ""))
    if cost["price"] is None and provider != "none":
        warnings.append(f"no price for {gpu} on {provider}: cost_per_hour_usd is null; pass a price "
                        "(--price-per-gpu-hour or provider_price_override)")
    if startup_timeout_s:
        if cold.ready_s > startup_timeout_s:
            warnings.append(f"estimated start {cold.ready_s:.0f} s exceeds timeouts.startupSeconds "
                            f"{startup_timeout_s:.0f}: the provider may kill the replica before it is ready")
        elif cold.ready_s + cold.first_deploy_download_s > startup_timeout_s:
            warnings.append(f"the first deploy downloads the weights (~{cold.first_deploy_download_s / 60:.0f} min) "
                            f"and would take ~{(cold.ready_s + cold.first_deploy_download_s) / 60:.0f} min, more "
                            f"than timeouts.startupSeconds {startup_timeout_s:.0f} s; pre-fill the cache volume "
                            "or raise the timeout")
    model = {
        "name": str(profile.get("name") or "model"),
        "hf_model_id": profile.get("hf_model_id"),
        "architecture": arch.attention,
        "model_type": arch.model_type,
        "num_layers": arch.num_layers,
        "mtp_layers": arch.mtp_layers,
        "indexer_layers": len(arch.indexer_layers) if arch.is_dsa else None,
        "weight_format": arch.weight_format,
        "max_position_embeddings": arch.max_position_embeddings,
    }
    return Plan(capacity=capacity, cost=cost, cold_start=cold, model=model, provider=provider, source=source,
                extra_warnings=warnings, extra_assumptions=_profile_assumptions(profile))


def plan_adhoc(profile_or_config: dict, gpu: str = "H200", gpus: int = 8, tp: Optional[int] = None,
               kv_cache_dtype: str = "auto", max_model_len: Optional[int] = None,
               gpu_memory_utilization: float = 0.9, weights_gib: Optional[float] = None,
               enforce_eager: bool = False, speculative_tokens: int = 0, provider: Optional[str] = None, *,
               speculative_method: Optional[str] = "mtp", load_strategy: Optional[str] = None,
               storage: Optional[str] = None, runpod_volume: Optional[str] = None, min_replicas: int = 0,
               max_replicas: int = 1, scaledown_window: float = 900, startup_timeout_s: Optional[float] = None,
               hours_per_day: Optional[float] = None, requests_per_day: Optional[float] = None,
               busy_seconds_per_request: Optional[float] = None, price_per_gpu_hour: Any = None,
               max_num_seqs: Optional[int] = None, max_num_batched_tokens: Optional[int] = None,
               block_size: Optional[int] = None, name: Optional[str] = None, pp: int = 1,
               nodes: Optional[int] = None) -> Plan:
    """A plan from a model profile (a dict with a ``config`` block) or a bare config.json dict.

    Defaults follow vLLM: TP = all GPUs, --kv-cache-dtype auto, --max-model-len from the
    config, --gpu-memory-utilization 0.9. Raises GlmserveError for inputs a user can fix."""
    try:
        profile = _as_profile(profile_or_config, name)
        usage = cost_mod.Usage(hours_per_day, requests_per_day, busy_seconds_per_request)
        return _build(profile, gpu=gpu, gpus=gpus, tp=tp, kv_cache_dtype=kv_cache_dtype,
                      max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                      weights_gib=weights_gib, enforce_eager=enforce_eager, speculative_tokens=speculative_tokens,
                      speculative_method=speculative_method, provider=provider, load_strategy=load_strategy,
                      storage=storage, runpod_volume=runpod_volume, min_replicas=min_replicas,
                      max_replicas=max_replicas, scaledown_window=scaledown_window,
                      startup_timeout_s=startup_timeout_s, usage=usage, price_override=price_per_gpu_hour,
                      max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                      block_size=block_size, source={"stack": None, "model": profile.get("name")},
                      extra_warnings=[], pp=pp, nodes=nodes)
    except ConfigError as e:
        raise _user_error(e) from None


_EXTRA_INT_FLAGS = {"--max-num-seqs": "max_num_seqs", "--max-num-batched-tokens": "max_num_batched_tokens",
                    "--block-size": "block_size", "--data-parallel-size": "data_parallel_size"}


def _extra_args(extra: list[str]) -> dict[str, int]:
    """The few engine.extraArgs that change capacity."""
    from infra.common.argv import tokenize

    out: dict[str, int] = {}
    for t in tokenize(extra, lambda flag: True if flag in _EXTRA_INT_FLAGS else None):
        if t.flag in _EXTRA_INT_FLAGS:
            try:
                out[_EXTRA_INT_FLAGS[t.flag]] = int(t.value or "")
            except ValueError:
                raise ConfigError("engine.extraArgs", f"{t.flag} needs an integer", value=t.value or "") from None
    return out


def plan_for_spec(spec: Any, provider_price_override: Any = None, *, overrides: Optional[dict] = None,
                  hours_per_day: Optional[float] = None, requests_per_day: Optional[float] = None,
                  busy_seconds_per_request: Optional[float] = None, stack: Optional[str] = None,
                  profile: Optional[dict] = None) -> Plan:
    """The plan of a validated NodeSpec. ``provider_price_override`` (USD per GPU-hour, or a
    dict with per_gpu_hour/source/date) wins over the price table. ``overrides`` takes the
    keyword names of plan_adhoc (e.g. max_model_len) and wins over the spec."""
    from infra.spec.profiles import load_profile

    ov = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        if profile is None:
            if not spec.model.profile:
                from infra.spec.profiles import available
                raise GlmserveError([Problem(key="model.profile", message="is required to plan capacity "
                                             "(or give --model-config)", allowed=", ".join(available()))],
                                    headline="cannot plan")
            try:
                profile = load_profile(spec.model.profile)
            except KeyError as e:
                raise ConfigError("model.profile", str(e.args[0]), value=spec.model.profile) from None
        s = spec.serving
        extra = _extra_args(list(spec.engine.extra_args))
        warnings = []
        if spec.engine.name != "vllm":
            warnings.append(f"the capacity model follows vLLM's memory accounting; {spec.engine.name} divides "
                            "memory differently")
        if extra.get("data_parallel_size", 1) > 1:
            warnings.append("--data-parallel-size in engine.extraArgs: figures are per engine")
        spec_tokens = s.speculative.num_speculative_tokens if s.speculative else 0
        spec_method = s.speculative.method if s.speculative else None
        if "speculative_tokens" in ov:
            spec_tokens = int(ov["speculative_tokens"])
            spec_method = spec_method or "mtp"
        usage = cost_mod.Usage(hours_per_day, requests_per_day, busy_seconds_per_request)
        provider = ov.get("provider", spec.provider)
        runpod_volume = spec.options_for("runpod").get("volume") if provider == "runpod" else None
        return _build(
            profile,
            gpu=ov.get("gpu", spec.gpu.type),
            gpus=int(ov.get("gpus", spec.gpu.count)),
            tp=int(ov.get("tp", s.tensor_parallel_size if "gpus" not in ov else ov.get("gpus"))),
            kv_cache_dtype=ov.get("kv_cache_dtype", s.kv_cache_dtype),
            max_model_len=int(ov.get("max_model_len", s.max_model_len)),
            gpu_memory_utilization=float(ov.get("gpu_memory_utilization", s.gpu_memory_utilization)),
            weights_gib=ov.get("weights_gib"),
            enforce_eager=bool(ov.get("enforce_eager", s.enforce_eager)),
            speculative_tokens=spec_tokens,
            speculative_method=spec_method,
            provider=provider,
            load_strategy=ov.get("load_strategy", s.load_strategy),
            storage=ov.get("storage"),
            runpod_volume=runpod_volume,
            min_replicas=int(ov.get("min_replicas", spec.scaling.min_replicas)),
            max_replicas=int(ov.get("max_replicas", spec.scaling.max_replicas)),
            scaledown_window=float(ov.get("scaledown_window", spec.scaling.scaledown_window)),
            startup_timeout_s=float(spec.timeouts.startup_seconds),
            usage=usage,
            price_override=ov.get("price_per_gpu_hour", provider_price_override),
            max_num_seqs=ov.get("max_num_seqs", extra.get("max_num_seqs")),
            max_num_batched_tokens=ov.get("max_num_batched_tokens", extra.get("max_num_batched_tokens")),
            block_size=ov.get("block_size", extra.get("block_size")),
            source={"stack": stack, "model": profile.get("name")},
            extra_warnings=warnings,
            pp=int(ov.get("pp", s.pipeline_parallel_size)),
            # Derived again (TP x PP / GPUs per node) when the node shape is overridden.
            nodes=ov.get("nodes", None if {"gpus", "tp", "pp"} & set(ov) else spec.nodes),
        )
    except ConfigError as e:
        raise _user_error(e) from None


# --------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `glmserve plan` flags to ``parser`` (a subparser)."""
    g = parser.add_argument_group("what to plan")
    g.add_argument("--stack", help="plan a stack (stacks/Pulumi.<stack>.yaml over stacks/node.yaml)")
    g.add_argument("--model-config", metavar="FILE",
                   help="a Hugging Face config.json, a model profile .yaml, or a shipped profile name; "
                        "with --stack it replaces the stack's model profile")
    g.add_argument("--json", action="store_true", help="print the plan as JSON (docs/plan-schema.md)")
    n = parser.add_argument_group("node (ad hoc, or overriding the stack)")
    n.add_argument("--gpu", help="GPU type (infra/data/gpus.yaml); default H200")
    n.add_argument("--gpus", type=int, help="GPUs on the node; default 8")
    n.add_argument("--tp", type=int, help="tensor parallel size; default: all GPUs")
    n.add_argument("--pp", type=int, help="pipeline parallel size; default 1 (TP x PP > --gpus spans nodes)")
    n.add_argument("--nodes", type=int, help="nodes of --gpus GPUs one engine spans; default TP x PP / --gpus")
    n.add_argument("--kv-cache-dtype", choices=cap_mod.KV_CACHE_DTYPES, help="default auto")
    n.add_argument("--max-model-len", type=int, help="default: the model's max_position_embeddings")
    n.add_argument("--gpu-memory-utilization", type=float, help="default 0.9 (vLLM's)")
    n.add_argument("--weights-gib", type=float, help="override the weights per GPU (GiB)")
    n.add_argument("--enforce-eager", action=argparse.BooleanOptionalAction, default=None,
                   help="no CUDA graphs (no graph memory, no capture time)")
    n.add_argument("--speculative-tokens", type=int, help="MTP speculative tokens; 0 disables the drafter")
    n.add_argument("--max-num-seqs", type=int, help="default: vLLM's (1024 on >= 70 GiB GPUs)")
    n.add_argument("--max-num-batched-tokens", type=int, help="default: vLLM's (8192 on >= 70 GiB GPUs)")
    n.add_argument("--block-size", type=int, help="KV block size in tokens; default 64 for MLA, 16 for GQA")
    n.add_argument("--load-strategy", choices=cs_mod.LOAD_STRATEGIES, help="--safetensors-load-strategy")
    c = parser.add_argument_group("cost and cold start")
    c.add_argument("--provider", choices=PROVIDERS, help="default: the stack's, or none")
    c.add_argument("--storage", choices=cs_mod.STORAGES, help="where the weights are read from at start")
    c.add_argument("--price-per-gpu-hour", type=float, help="override the price table (USD per GPU-hour)")
    c.add_argument("--min-replicas", type=int, help="keep-warm replicas (serverless)")
    c.add_argument("--scaledown-window", type=float, help="seconds a serverless replica stays up after a request")
    c.add_argument("--hours-per-day", type=float, help="usage: busy hours per day")
    c.add_argument("--requests-per-day", type=float, help="usage: requests per day (with --busy-seconds-per-request)")
    c.add_argument("--busy-seconds-per-request", type=float, help="usage: busy seconds per request")


_OVERRIDE_ARGS = ("gpu", "gpus", "tp", "pp", "nodes", "kv_cache_dtype", "max_model_len", "gpu_memory_utilization", "weights_gib",
                  "enforce_eager", "speculative_tokens", "max_num_seqs", "max_num_batched_tokens", "block_size",
                  "load_strategy", "provider", "storage", "price_per_gpu_hour", "min_replicas", "scaledown_window")


def load_model_arg(value: str) -> dict:
    """--model-config: a config.json, a profile .yaml, or a shipped profile name."""
    from infra.spec.profiles import available, load_config_file, load_profile, load_yaml_file

    path = Path(value)
    if path.is_file():
        try:
            if path.suffix in (".yaml", ".yml"):
                prof = load_yaml_file(path)
                if not isinstance(prof, dict) or not isinstance(prof.get("config"), dict):
                    raise GlmserveError([Problem(key="--model-config", message="a profile .yaml needs a "
                                                 "'config' block", file=str(path))], headline="cannot plan")
                prof.setdefault("name", path.stem)
                return prof
            prof = load_config_file(path)
        except (ValueError, OSError) as e:
            raise GlmserveError([Problem(key="--model-config", message=f"cannot read it ({e})", file=str(path))],
                                headline="cannot plan") from None
        if not isinstance(prof.get("config"), dict):
            raise GlmserveError([Problem(key="--model-config", message="must hold a JSON object",
                                         file=str(path))], headline="cannot plan")
        return prof
    if value in available():
        return load_profile(value)
    raise GlmserveError([Problem(key="--model-config", message="no such file or model profile", value=value,
                                 allowed="a config.json path, a profile .yaml, or " + ", ".join(available()))],
                        headline="cannot plan")


def _check_args(args: argparse.Namespace) -> None:
    def bad(flag: str, msg: str, value: Any) -> GlmserveError:
        return GlmserveError([Problem(key=flag, message=msg, value=value)], headline="cannot plan")

    for name in ("gpus", "tp", "pp", "nodes", "max_model_len", "max_num_seqs", "max_num_batched_tokens", "block_size"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise bad("--" + name.replace("_", "-"), "must be at least 1", v)
    u = getattr(args, "gpu_memory_utilization", None)
    if u is not None and not 0 < u <= 1:
        raise bad("--gpu-memory-utilization", "must be in (0, 1]", u)
    gpu = getattr(args, "gpu", None)
    if gpu is not None and gpu not in gpu_catalog():
        raise GlmserveError([Problem(key="--gpu", message="unknown GPU type", value=gpu,
                                     allowed=", ".join(gpu_catalog()))], headline="cannot plan")
    for name in ("min_replicas", "speculative_tokens"):
        v = getattr(args, name, None)
        if v is not None and v < 0:
            raise bad("--" + name.replace("_", "-"), "must not be negative", v)
    sw = getattr(args, "scaledown_window", None)
    if sw is not None and sw < 0:
        raise bad("--scaledown-window", "must not be negative", sw)


def plan_from_args(args: argparse.Namespace) -> Plan:
    _check_args(args)
    g = lambda name: getattr(args, name, None)  # noqa: E731
    usage = dict(hours_per_day=g("hours_per_day"), requests_per_day=g("requests_per_day"),
                 busy_seconds_per_request=g("busy_seconds_per_request"))
    profile = load_model_arg(args.model_config) if g("model_config") else None
    if g("stack"):
        from infra.spec.load import spec_for_stack

        spec = spec_for_stack(args.stack)
        overrides = {k: g(k) for k in _OVERRIDE_ARGS}
        return plan_for_spec(spec, overrides=overrides, stack=args.stack, profile=profile, **usage)
    if profile is None:
        raise GlmserveError([Problem(key="--stack", message="give --stack STACK or --model-config FILE")],
                            headline="nothing to plan")
    kw = {k: g(k) for k in _OVERRIDE_ARGS if g(k) is not None}
    kw.setdefault("gpu", "H200")
    kw.setdefault("gpus", 8)
    price = kw.pop("price_per_gpu_hour", None)
    return plan_adhoc(profile, price_per_gpu_hour=price, name=profile.get("name"), **kw, **usage)


def run(args: argparse.Namespace) -> int:
    """Print the plan (text, or JSON with --json). Returns 0 if the node fits and 1 if it does
    not (the report says why and what would fix it). Raises GlmserveError for user errors."""
    plan = plan_from_args(args)
    if getattr(args, "json", False):
        print(json.dumps(plan.to_json(), indent=2))
    else:
        print(plan.format_text(), end="")
    return 0 if plan.fits else 1


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m infra.plan ...` until the glmserve CLI wires the subcommand."""
    import sys

    parser = argparse.ArgumentParser(prog="glmserve plan", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except GlmserveError as e:
        print(str(e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
