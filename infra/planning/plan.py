"""Plans of a node: capacity, cost and cold start, offline.

Library API (the CLI, the policy, the diff and the Pulumi program use these)::

    plan_for_spec(spec, provider_price_override=None, overrides=...) -> Plan
    plan_adhoc(profile_or_config, gpu, gpus, tp, kv_cache_dtype, max_model_len,
               gpu_memory_utilization, weights_gib=None, enforce_eager=False,
               speculative_tokens=0, provider=None, ...) -> Plan

The Plan (infra/planning/report.py) gives the JSON schema, the text report, the errors (why a
node does not fit, with the knobs that would fix it) and the warnings. User errors raise
infra.common.errors.GlmserveError.

The provider is asked for its facts (prices, provisioning, image pull, storage) through the
registry (``Provider.planning_facts``); the planner never names one. The planning modules
themselves import only yaml and the standard library (no Pulumi), so a plan stays fast
(bench/plan_bench.py times it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from infra.common.errors import GlmserveError, Problem
from infra.planning import coldstart as cs_mod
from infra.planning import cost as cost_mod
from infra.planning.capacity import CapacityInputs, evaluate
from infra.planning.model_config import arch_from_profile
from infra.planning.provider_facts import ProviderFacts
from infra.planning.report import Plan
from infra.planning.sources import Assumption, ConfigError


@dataclass(frozen=True)
class PlanOptions:
    """What a plan needs beyond the node's capacity: the provider, where the weights are read
    from, the scaling policy, the usage and the price."""

    provider: ProviderFacts
    load_strategy: Optional[str] = None
    storage: Optional[str] = None
    min_replicas: int = 0
    max_replicas: int = 1
    scaledown_window: float = 900
    startup_timeout_s: Optional[float] = None
    usage: cost_mod.Usage = field(default_factory=cost_mod.Usage)
    price_override: Any = None
    # scaling.warmSchedule (infra/spec/schedule.py): the plan prices it beside always-on and scale to zero.
    warm_schedule: Any = None


def provider_facts(name: str, spec: Any = None, options: Optional[dict] = None) -> ProviderFacts:
    """Ask the provider named ``name`` (through the registry) for its planning facts, for the
    node ``spec`` or, ad hoc, for its option block ``options`` (its defaults when None)."""
    from infra.config import providers as registry

    provider = registry.get(name)
    if not callable(getattr(provider, "planning_facts", None)):
        raise ConfigError("provider", "gives the planner no facts (it has no planning_facts hook)", value=name)
    if spec is not None:
        return provider.planning_facts(spec)
    return provider.planning_facts(None, provider.options_model.model_validate(options) if options else None)


def _comparison(facts: ProviderFacts, gpu: str) -> tuple[Optional[ProviderFacts], Optional[ProviderFacts]]:
    """The serverless and the dedicated provider the cost comparison weighs: the node's own
    provider for its billing model, and for the other the installed provider with the lowest
    catalogue price for the GPU."""
    from infra.config import providers as registry

    best: dict[str, ProviderFacts] = {facts.billing: facts} if facts.bills else {}
    for name in registry.names():
        try:
            other = provider_facts(name)
        except (GlmserveError, ConfigError):
            continue                # not installed here, or not a planning provider
        if not other.bills or gpu not in other.prices or best.get(other.billing) is facts:
            continue                # bills nothing, has no price, or the node's own provider bills this way
        now = best.get(other.billing)
        if now is None or other.prices[gpu].per_gpu_hour < now.prices[gpu].per_gpu_hour:
            best[other.billing] = other
    return best.get("serverless"), best.get("dedicated")


def _user_error(e: ConfigError, file: Optional[str] = None) -> GlmserveError:
    return GlmserveError([Problem(key=e.key, message=e.message, file=file, value=e.value, allowed=e.allowed)],
                         headline="cannot plan")


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


def _inputs(profile: dict, *, gpu: str, gpus: int, tp: Optional[int], pp: Optional[int], nodes: Optional[int],
            speculative_tokens: int, speculative_method: Optional[str], weights_gib: Optional[float],
            **serving: Any) -> CapacityInputs:
    """The capacity inputs of a node: TP defaults to all GPUs, the nodes to TP x PP / GPUs."""
    if weights_gib is not None and weights_gib <= 0:
        raise ConfigError("--weights-gib", "must be positive", value=weights_gib)
    if speculative_tokens < 0:
        raise ConfigError("--speculative-tokens", "must not be negative", value=speculative_tokens)
    tp = int(tp or gpus)
    pp = int(pp or 1)
    if nodes is None:
        nodes = max(1, -(-tp * pp // int(gpus)))
    return CapacityInputs(
        arch=arch_from_profile(profile), profile=profile, gpu_type=gpu, gpus=int(gpus), tp=tp, pp=pp,
        nodes=int(nodes), weights_gib=weights_gib, speculative_tokens=int(speculative_tokens),
        speculative_method=(speculative_method or "mtp") if speculative_tokens else None, **serving)


def _build(inputs: CapacityInputs, opts: PlanOptions, source: dict[str, Any], extra_warnings: list[str]) -> Plan:
    facts = opts.provider
    provider = facts.provider
    arch, profile = inputs.arch, inputs.profile
    gpu, gpus, tp, pp, nodes = inputs.gpu_type, inputs.gpus, inputs.tp, inputs.pp, inputs.nodes
    load_strategy, storage, enforce_eager = opts.load_strategy, opts.storage, inputs.enforce_eager
    capacity = evaluate(inputs)
    read_gib = capacity.weights.loaded_gib if capacity.weights.source != "override" \
        else capacity.weights.per_rank_gib * tp * pp
    if nodes > 1:
        # Every node of a multi-node engine reads its own share of the checkpoint, in parallel.
        read_gib /= nodes
    cold = cs_mod.estimate(facts, read_gib, load_strategy=load_strategy, enforce_eager=bool(enforce_eager),
                           moe=arch.is_moe, storage=storage)
    serverless, dedicated = _comparison(facts, gpu)
    serverless_cold = None
    if serverless is not None and serverless is not facts:
        serverless_cold = cs_mod.estimate(serverless, read_gib, load_strategy=load_strategy,
                                          enforce_eager=bool(enforce_eager), moe=arch.is_moe).total_s
    cost = cost_mod.cost_report(
        facts, gpu, int(gpus) * nodes, min_replicas=opts.min_replicas, max_replicas=opts.max_replicas,
        scaledown_window_s=float(opts.scaledown_window), cold_start_s=cold.total_s,
        serverless_cold_start_s=serverless_cold, usage=opts.usage, price_override=opts.price_override,
        serverless=serverless, dedicated=dedicated, warm_schedule=opts.warm_schedule)
    warnings = list(extra_warnings)
    read_s = cold.terms["weights_read_s"]
    if read_s > 600:
        faster = []
        if storage is None:
            # The other storages the provider's option block can choose.
            for choice in facts.choices:
                alt = cs_mod.estimate(facts, read_gib, load_strategy=load_strategy, enforce_eager=enforce_eager,
                                      moe=arch.is_moe, storage=choice.storage)
                if alt.terms["weights_read_s"] < read_s * 0.8:
                    faster.append(f"{choice.setting} ({alt.storage}): ~{alt.terms['weights_read_s'] / 60:.0f} min")
        if load_strategy != "prefetch":
            alt = cs_mod.estimate(facts, read_gib, load_strategy="prefetch", enforce_eager=enforce_eager,
                                  moe=arch.is_moe, storage=cold.storage)
            if alt.terms["weights_read_s"] < read_s * 0.8:
                faster.append(f"serving.loadStrategy prefetch: ~{alt.terms['weights_read_s'] / 60:.0f} min")
        warnings.append(f"reading {read_gib:.0f} GiB of weights from {cold.storage} takes ~{read_s / 60:.0f} min "
                        f"at every start" + (f"; faster: {', '.join(faster)}" if faster else ""))
    if facts.unknown():
        warnings.append(f"the {provider} provider's catalogue gives no {', '.join(facts.unknown())}: the cold start "
                        "counts them as 0 (unknown)")
    if cost["price"] is None and not facts.free:
        warnings.append(f"no price for {gpu} on {provider}: cost_per_hour_usd is null; pass a price "
                        "(--price-per-gpu-hour or provider_price_override)")
    startup_timeout_s = opts.startup_timeout_s
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
               storage: Optional[str] = None, provider_options: Optional[dict] = None, min_replicas: int = 0,
               max_replicas: int = 1, scaledown_window: float = 900, startup_timeout_s: Optional[float] = None,
               hours_per_day: Optional[float] = None, requests_per_day: Optional[float] = None,
               busy_seconds_per_request: Optional[float] = None, price_per_gpu_hour: Any = None,
               max_num_seqs: Optional[int] = None, max_num_batched_tokens: Optional[int] = None,
               block_size: Optional[int] = None, name: Optional[str] = None, pp: int = 1,
               nodes: Optional[int] = None) -> Plan:
    """A plan from a model profile (a dict with a ``config`` block) or a bare config.json dict.

    Defaults follow vLLM: TP = all GPUs, --kv-cache-dtype auto, --max-model-len from the
    config, --gpu-memory-utilization 0.9. ``provider_options`` is the provider's option block
    (``glmserve:<provider>``; its defaults when None). Raises GlmserveError for inputs a user can fix."""
    try:
        profile = _as_profile(profile_or_config, name)
        inputs = _inputs(profile, gpu=gpu, gpus=gpus, tp=tp, pp=pp, nodes=nodes, weights_gib=weights_gib,
                         speculative_tokens=speculative_tokens, speculative_method=speculative_method,
                         kv_cache_dtype=kv_cache_dtype, max_model_len=max_model_len,
                         gpu_memory_utilization=float(gpu_memory_utilization), enforce_eager=bool(enforce_eager),
                         max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                         block_size=block_size)
        opts = PlanOptions(provider=provider_facts(provider or "none", options=provider_options),
                           load_strategy=load_strategy, storage=storage,
                           min_replicas=min_replicas, max_replicas=max_replicas,
                           scaledown_window=scaledown_window, startup_timeout_s=startup_timeout_s,
                           usage=cost_mod.Usage(hours_per_day, requests_per_day, busy_seconds_per_request),
                           price_override=price_per_gpu_hour)
        return _build(inputs, opts, {"stack": None, "model": profile.get("name")}, [])
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
        inputs = _inputs(
            profile,
            gpu=ov.get("gpu", spec.gpu.type),
            gpus=int(ov.get("gpus", spec.gpu.count)),
            tp=int(ov.get("tp", s.tensor_parallel_size if "gpus" not in ov else ov.get("gpus"))),
            pp=int(ov.get("pp", s.pipeline_parallel_size)),
            # Derived again (TP x PP / GPUs per node) when the node shape is overridden.
            nodes=ov.get("nodes", None if {"gpus", "tp", "pp"} & set(ov) else spec.nodes),
            kv_cache_dtype=ov.get("kv_cache_dtype", s.kv_cache_dtype),
            max_model_len=int(ov.get("max_model_len", s.max_model_len)),
            gpu_memory_utilization=float(ov.get("gpu_memory_utilization", s.gpu_memory_utilization)),
            weights_gib=ov.get("weights_gib"),
            enforce_eager=bool(ov.get("enforce_eager", s.enforce_eager)),
            speculative_tokens=spec_tokens,
            speculative_method=spec_method,
            max_num_seqs=ov.get("max_num_seqs", extra.get("max_num_seqs")),
            max_num_batched_tokens=ov.get("max_num_batched_tokens", extra.get("max_num_batched_tokens")),
            block_size=ov.get("block_size", extra.get("block_size")),
        )
        opts = PlanOptions(
            provider=provider_facts(ov.get("provider", spec.provider), spec),
            load_strategy=ov.get("load_strategy", s.load_strategy),
            storage=ov.get("storage"),
            min_replicas=int(ov.get("min_replicas", spec.scaling.min_replicas)),
            max_replicas=int(ov.get("max_replicas", spec.scaling.max_replicas)),
            scaledown_window=float(ov.get("scaledown_window", spec.scaling.scaledown_window)),
            startup_timeout_s=float(spec.timeouts.startup_seconds),
            usage=cost_mod.Usage(hours_per_day, requests_per_day, busy_seconds_per_request),
            price_override=ov.get("price_per_gpu_hour", provider_price_override),
            warm_schedule=spec.scaling.warm_schedule,
        )
        return _build(inputs, opts, {"stack": stack, "model": profile.get("name")}, warnings)
    except ConfigError as e:
        raise _user_error(e) from None

