"""Weights per GPU: the checkpoint's tensors, which of them tensor parallelism shards, what
every rank holds whole, and how pipeline parallelism splits the layers into stages."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from infra.planning.model_config import Arch
from infra.planning.sources import GIB, Assumption, gib, rounded


@dataclass
class WeightPart:
    group: str
    ckpt: float        # bytes in the checkpoint
    rank: float        # bytes on each rank once loaded (0 if vLLM does not load it)
    sharded: bool      # divided by TP (rescaled when the checkpoint size is known)
    # Where the part lives with pipeline parallelism: a decoder layer index, or "first"
    # (embeddings) / "last" (lm_head, final norm, MTP layers) for the edge stages.
    where: Any = "last"


def _layer_parts(a: Arch, i: int, tp: int, mtp: bool, loaded: bool) -> list[WeightPart]:
    q, bf = a.weight_bytes, 2.0
    h = a.hidden_size
    parts: list[WeightPart] = []
    on = 1.0 if loaded else 0.0
    tag = "MTP layer" if mtp else None

    def add(group: str, params: float, bpp: float, sharded: bool, rank_params: Optional[float] = None,
            rank_bpp: Optional[float] = None) -> None:
        ckpt = params * bpp
        if rank_params is None:
            rank_params = params / tp if sharded else params
        rank = rank_params * (rank_bpp if rank_bpp is not None else bpp) * on
        parts.append(WeightPart(tag or group, ckpt, rank, sharded))

    if a.is_mla:
        H = a.num_heads
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        if a.q_lora_rank:
            add("attention, replicated (MLA down-projections)", h * a.q_lora_rank, q, False)
            add("attention, sharded", a.q_lora_rank * H * qk, q, True)
        else:
            add("attention, sharded", h * H * qk, q, True)
        add("attention, replicated (MLA down-projections)", h * (a.kv_lora_rank + a.qk_rope_head_dim), q, False)
        add("attention, sharded", a.kv_lora_rank * H * (a.qk_nope_head_dim + a.v_head_dim), q, True)
        add("attention, sharded", H * a.v_head_dim * h, q, True)
        add("norms", (a.q_lora_rank or 0) + a.kv_lora_rank, bf, False)
        if a.is_dsa and (mtp or i in a.indexer_layers):
            add("DSA indexer, replicated", (a.q_lora_rank or h) * a.index_n_heads * a.index_head_dim, q, False)
            # wk (fp8 in the checkpoint) is upcast to bf16 and fused with weights_proj (bf16).
            parts.append(WeightPart(tag or "DSA indexer, replicated",
                               h * a.index_head_dim * q + h * a.index_n_heads * bf,
                               h * (a.index_head_dim + a.index_n_heads) * bf * on, False))
        # Load time: vLLM's MLA backends keep bf16 copies of kv_b_proj split into W_UK_T and W_UV.
        parts.append(WeightPart(tag or "MLA absorbed kv_b copies (load time)", 0.0,
                           a.kv_lora_rank * (H // max(1, tp) or 1) * (a.qk_nope_head_dim + a.v_head_dim) * bf * on,
                           False))
    else:
        hd, H, KV = a.head_dim, a.num_heads, a.num_kv_heads
        add("attention, sharded", h * H * hd, q, True)
        add("attention, sharded", 2 * h * KV * hd, q, True,
            rank_params=2 * h * max(1, math.ceil(KV / tp)) * hd)
        add("attention, sharded", H * hd * h, q, True)
    if a.is_moe and (mtp or i in a.moe_layers):
        add("experts, sharded", a.n_routed_experts * 3 * h * a.moe_intermediate_size, q, True)
        if a.shared_expert_intermediate:
            add("experts, sharded", 3 * h * a.shared_expert_intermediate, q, True)
        add("router gates, replicated", h * a.n_routed_experts, bf, False)
    else:
        add("dense MLP, sharded", 3 * h * a.intermediate_size, q, True)
    add("norms", 2 * h, bf, False)
    if mtp:
        # eh_proj (2h -> h, a plain nn.Linear in vLLM) and the MTP norms; embedding and lm_head
        # are the target's (vLLM vllm/model_executor/models/deepseek_mtp.py: the drafter reuses them).
        add("MTP layer", 2 * h * h, bf, False)
        add("MTP layer", 3 * h, bf, False)
    return parts


def weight_parts(a: Arch, tp: int, load_mtp: bool) -> list[WeightPart]:
    bf = 2.0
    vocab_h = a.vocab_size * a.hidden_size
    parts = [WeightPart("embeddings and lm_head, sharded", vocab_h * bf, vocab_h * bf / tp, True, "first")]
    if not a.tie_word_embeddings:
        parts.append(WeightPart("embeddings and lm_head, sharded", vocab_h * bf, vocab_h * bf / tp, True, "last"))
    parts.append(WeightPart("norms", a.hidden_size * bf, a.hidden_size * bf, False, "last"))
    for i in range(a.num_layers):
        for p in _layer_parts(a, i, tp, mtp=False, loaded=True):
            p.where = i
            parts.append(p)
    for j in range(a.mtp_layers):
        parts += _layer_parts(a, a.num_layers + j, tp, mtp=True, loaded=load_mtp)
    return parts


def pp_partition(num_layers: int, pp: int) -> list[range]:
    """The decoder layers of each pipeline stage, as vLLM splits them (``get_pp_indices``
    without VLLM_PP_LAYER_PARTITION): equal shares, the remainder going to the stages before
    the last one (the last stage also holds the lm_head)."""
    pp = max(1, int(pp))
    sizes = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        sizes[-i] += 1
    out, start = [], 0
    for n in sizes:
        out.append(range(start, start + n))
        start += n
    return out


def _stage_of(where: Any, stages: list[range]) -> int:
    if where == "first":
        return 0
    if where == "last":
        return len(stages) - 1
    return next(s for s, r in enumerate(stages) if where in r)


@dataclass
class WeightsEstimate:
    per_rank_gib: float
    source: str                        # "override" | "profile" | "config"
    checkpoint_gib: float              # total checkpoint size (given, or estimated from the config)
    estimated_checkpoint_gib: float    # from the config's parameter count
    loaded_gib: float                  # checkpoint bytes vLLM reads (MTP layer skipped when unused)
    bottom_up_per_rank_gib: float      # before the profile's per-rank adjustment
    adjust_gib: float
    breakdown: dict[str, float]
    assumptions: list[Assumption] = field(default_factory=list)
    # Per-rank weights of each pipeline stage (one entry without pipeline parallelism);
    # per_rank_gib is the largest.
    stages_gib: tuple[float, ...] = ()


def estimate_weights(a: Arch, profile: dict, tp: int, load_mtp: bool,
                     override_gib: Optional[float] = None, pp: int = 1) -> WeightsEstimate:
    """Per-GPU weights: the sharded part of the checkpoint divided by TP, plus what every
    rank holds whole (MLA down-projections, DSA indexers, router gates, MTP eh_proj), plus
    load-time copies. With a known checkpoint size, the sharded part is rescaled so that the
    parts add up to it. A profile may add a measured per-rank adjustment (with its source)."""
    parts = weight_parts(a, tp, load_mtp)
    est_ckpt = sum(p.ckpt for p in parts)
    ck = (profile or {}).get("checkpoint") or {}
    wcfg = (profile or {}).get("weights") or {}
    assumptions: list[Assumption] = []
    scale = 1.0
    given = ck.get("total_gib")
    if given:
        sharded = sum(p.ckpt for p in parts if p.sharded)
        fixed = sum(p.ckpt for p in parts if not p.sharded)
        scale = (float(given) * GIB - fixed) / sharded if sharded else 1.0
        assumptions.append(Assumption(
            "checkpoint size (GiB)", float(given),
            str(ck.get("source") or "model profile checkpoint.total_gib")))
        assumptions.append(Assumption(
            "config-derived parameter bytes vs the checkpoint size (sharded parts rescaled by)",
            rounded(scale, 4), "glmserve capacity model: parameter count from config.json x bytes per parameter"))
    else:
        assumptions.append(Assumption(
            "checkpoint size estimated from the config's parameter count (GiB)", rounded(gib(est_ckpt)),
            f"config.json shapes x {a.weight_bytes:.4g} B per quantized-linear parameter ({a.weight_format}); "
            "embeddings, norms and router gates in bf16"))
    pp = max(1, int(pp))
    stages = pp_partition(a.num_layers, pp)
    if pp > 1 and a.tie_word_embeddings:
        # Tied embeddings: the last stage loads its own copy for the lm_head.
        first = parts[0]
        parts.append(WeightPart(first.group, 0.0, first.rank, True, "last"))
    breakdowns: list[dict[str, float]] = [{} for _ in stages]
    totals = [0.0] * pp
    loaded = 0.0
    for p in parts:
        b = p.rank * scale if p.sharded else p.rank
        st = _stage_of(p.where, stages) if pp > 1 else 0
        totals[st] += b
        breakdowns[st][p.group] = breakdowns[st].get(p.group, 0.0) + b
        if p.rank > 0:
            loaded += p.ckpt * (scale if p.sharded else 1.0)
    worst = max(range(pp), key=lambda i: totals[i])
    total, breakdown = totals[worst], breakdowns[worst]
    adjust = float(wcfg.get("per_rank_unattributed_gib") or 0.0)
    if adjust:
        if pp > 1:
            adjust /= pp
            assumptions.append(Assumption(
                "measured unattributed per-rank weights divided by the pipeline stages (GiB per rank)",
                rounded(adjust, 3), "glmserve capacity model: taken as proportional to the weights a rank holds"))
        breakdown["unattributed (measured)"] = adjust * GIB
        assumptions.append(Assumption(
            "per-rank weights not attributed to any tensor (GiB)", adjust,
            str(wcfg.get("source") or "model profile weights.per_rank_unattributed_gib")))
    if pp > 1:
        assumptions.append(Assumption(
            "decoder layers per pipeline stage", [len(r) for r in stages],
            "vLLM get_pp_indices (remainder to the stages before the last; embeddings on the first stage, "
            "lm_head and MTP layers on the last)"))
    bottom_up = gib(total)
    stages_gib = tuple(gib(t) + adjust for t in totals)
    ckpt_gib = float(given) if given else gib(est_ckpt)
    if override_gib is not None:
        assumptions.append(Assumption("weights per GPU (GiB)", float(override_gib), "user override (weights_gib)"))
        return WeightsEstimate(float(override_gib), "override", ckpt_gib, gib(est_ckpt), gib(loaded),
                               bottom_up, 0.0, {"override": float(override_gib)}, assumptions,
                               tuple(float(override_gib) for _ in stages))
    return WeightsEstimate(
        stages_gib=stages_gib,
        per_rank_gib=bottom_up + adjust,
        source="profile" if given else "config",
        checkpoint_gib=ckpt_gib,
        estimated_checkpoint_gib=gib(est_ckpt),
        loaded_gib=gib(loaded),
        bottom_up_per_rank_gib=bottom_up,
        adjust_gib=adjust,
        breakdown={k: rounded(gib(v), 3) for k, v in breakdown.items()},
        assumptions=assumptions,
    )

