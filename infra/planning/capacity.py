"""Capacity: how vLLM divides each GPU's memory, and whether a node fits.

The model follows vLLM's own accounting (vLLM 0.33, vllm/v1/worker/gpu_worker.py
determine_available_memory and vllm/v1/core/kv_cache_utils.py; https://pypi.org/project/vllm/0.33.0/)::

    requested    = GPU memory (as the driver reports it) x gpu_memory_utilization
    available_kv = requested - weights - activation peak - non-torch - CUDA-graph estimate
    num_blocks   = available_kv // (bytes per token per GPU x block_size)
    KV tokens    = num_blocks x block_size            (whole TP engine, as vLLM logs it)
    concurrency  = num_blocks / ceil(max_model_len / block_size)

The model (model_config.py), its weights per GPU (weights.py) and its KV cache per token
(kv_cache.py) come together here. Every constant lives in ``infra/data/vllm-memory.yaml``
with its source; every estimate the result depends on is returned as an :class:`Assumption`.
No GPU, no network, no heavy imports: this runs inside ``glmserve plan`` in milliseconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from infra.planning.kv_cache import FP8_KV, KvLayout, kv_blocks, kv_layout, max_concurrency
from infra.planning.model_config import Arch, arch_from_profile
from infra.planning.sources import GIB, MIB, Assumption, ConfigError, gib, memory_constants, rounded
from infra.planning.weights import WeightsEstimate, estimate_weights, pp_partition
from infra.spec.gpus import GPU_COUNTS, gpu_catalog


@dataclass(frozen=True)
class CapacityInputs:
    arch: Arch
    profile: dict
    gpu_type: str
    gpus: int
    tp: int
    kv_cache_dtype: str = "auto"
    max_model_len: Optional[int] = None
    gpu_memory_utilization: float = 0.9
    weights_gib: Optional[float] = None
    enforce_eager: bool = False
    speculative_method: Optional[str] = None
    speculative_tokens: int = 0
    max_num_seqs: Optional[int] = None
    max_num_batched_tokens: Optional[int] = None
    block_size: Optional[int] = None
    # Pipeline stages, and the nodes of `gpus` GPUs each that one engine spans
    # (tp x pp == gpus x nodes when nodes > 1).
    pp: int = 1
    nodes: int = 1

    @property
    def mtp(self) -> bool:
        return bool(self.speculative_tokens) and (self.speculative_method or "mtp") == "mtp" \
            and self.arch.mtp_layers > 0


@dataclass
class Knob:
    """A change that would make an infeasible node fit, with what it gives."""

    key: str                   # spec key, e.g. serving.kvCacheDtype
    flag: Optional[str]        # CLI flag of `glmserve plan`, if one expresses it
    value: Any
    kv_cache_tokens: int
    max_concurrency: float
    note: str = ""

    def describe(self) -> str:
        extra = f" ({self.note})" if self.note else ""
        flag = f" [{self.flag} {self.value}]" if self.flag else ""
        if isinstance(self.value, bool) and self.flag:
            flag = f" [{self.flag}]"
        return (f"{self.key}={self.value}{flag}{extra} -> "
                f"{self.kv_cache_tokens:,} KV tokens, {self.max_concurrency:.2f} concurrent requests")

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "flag": self.flag, "value": self.value,
                "kv_cache_tokens": self.kv_cache_tokens, "max_concurrency": rounded(self.max_concurrency),
                "note": self.note}


@dataclass
class Capacity:
    inputs: CapacityInputs
    gpu_memory_gib: float
    requested_gib: float
    weights: WeightsEstimate
    activation_gib: float
    activation_breakdown: dict[str, float]
    non_torch_gib: float
    cudagraph_gib: float
    available_kv_gib: float
    kv: KvLayout
    num_blocks: int
    kv_cache_tokens: int
    max_concurrency: float
    kv_gib_per_request: float
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    engines: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    knobs: list[Knob] = field(default_factory=list)
    assumptions: list[Assumption] = field(default_factory=list)
    # With pipeline parallelism: the stage whose GPUs hold the fewest KV blocks (vLLM sizes
    # the engine's cache by it); the figures above are that stage's.
    stage: int = 0

    @property
    def fits(self) -> bool:
        return not self.errors

    @property
    def overhead_gib(self) -> float:
        return self.activation_gib + self.non_torch_gib + self.cudagraph_gib


def scheduler_defaults(gpu_type: str) -> tuple[int, int]:
    d = memory_constants()["scheduler_defaults"]
    mem_gib = gpu_catalog()[gpu_type]["memory_mib"] / 1024
    big = mem_gib >= float(d["large_gpu_min_gib"]) and gpu_type not in (d.get("large_gpu_exclude") or [])
    row = d["large" if big else "small"]
    return int(row["max_num_seqs"]), int(row["max_num_batched_tokens"])


def _activation(a: Arch, inp: CapacityInputs, seqs: int, batched: int) -> dict[str, float]:
    c = memory_constants()["activation"]
    fwd = batched * a.hidden_size * 2 * float(c["hidden_copies"])
    if a.is_moe:
        fwd += batched * a.experts_per_tok * a.hidden_size * 2 * float(c["moe_copies_per_expert_slot"])
    sampler = seqs * a.vocab_size * 4 * float(c["sampler_copies"])
    draft = 0.0
    if inp.speculative_tokens and (inp.speculative_method or "mtp") in ("mtp", "eagle", "eagle3", "draft_model"):
        draft = batched * a.hidden_size * 2 * (inp.speculative_tokens + 1) * float(c["draft_hidden_copies_per_step"])
    return {"fixed": float(c["fixed_gib"]), "forward": gib(fwd), "sampler": gib(sampler), "draft": gib(draft)}


def _check_structure(inp: CapacityInputs, max_len: int) -> list[str]:
    a = inp.arch
    errs = []
    if inp.gpu_type not in gpu_catalog():
        raise ConfigError("gpu.type", "unknown GPU type", value=inp.gpu_type, allowed=", ".join(gpu_catalog()))
    if inp.tp < 1 or inp.gpus < 1:
        raise ConfigError("serving.tensorParallelSize", "must be at least 1", value=inp.tp)
    if not 0 < inp.gpu_memory_utilization <= 1:
        raise ConfigError("serving.gpuMemoryUtilization", "must be in (0, 1]", value=inp.gpu_memory_utilization)
    if max_len < 1:
        raise ConfigError("serving.maxModelLen", "must be positive", value=max_len)
    if inp.pp < 1 or inp.nodes < 1:
        raise ConfigError("serving.pipelineParallelSize", "must be at least 1", value=inp.pp)
    world = inp.tp * inp.pp
    if inp.tp > inp.gpus:
        errs.append(f"tensor parallel size {inp.tp} needs {inp.tp} GPUs but the node has {inp.gpus}; "
                    f"set gpu.count to {inp.tp} [--gpus {inp.tp}] or serving.tensorParallelSize to at most {inp.gpus}")
    elif inp.gpus % inp.tp:
        errs.append(f"tensor parallel size {inp.tp} does not divide gpu.count {inp.gpus}")
    elif inp.nodes == 1 and world > inp.gpus:
        errs.append(f"tensor x pipeline parallel size {inp.tp} x {inp.pp} = {world} needs {world} GPUs but the node "
                    f"has {inp.gpus}; span {-(-world // inp.gpus)} nodes [--nodes {-(-world // inp.gpus)}]")
    elif inp.nodes > 1 and world != inp.gpus * inp.nodes:
        errs.append(f"tensor x pipeline parallel size {inp.tp} x {inp.pp} = {world} must equal the GPUs of all "
                    f"nodes ({inp.nodes} x {inp.gpus} = {inp.gpus * inp.nodes})")
    if inp.pp > a.num_layers:
        errs.append(f"pipeline parallel size {inp.pp} exceeds the model's {a.num_layers} layers")
    if a.num_heads % inp.tp:
        ok = [d for d in GPU_COUNTS if a.num_heads % d == 0]
        errs.append(f"tensor parallel size {inp.tp} does not divide the model's {a.num_heads} attention heads; "
                    f"allowed: {', '.join(map(str, ok))}")
    if a.attention == "gqa" and a.num_kv_heads % inp.tp and inp.tp % a.num_kv_heads:
        errs.append(f"tensor parallel size {inp.tp} and the model's {a.num_kv_heads} KV heads must divide one another")
    if a.max_position_embeddings and max_len > a.max_position_embeddings:
        errs.append(f"max model length {max_len:,} exceeds the model's max_position_embeddings "
                    f"{a.max_position_embeddings:,}; set serving.maxModelLen <= {a.max_position_embeddings} "
                    f"[--max-model-len {a.max_position_embeddings}]")
    return errs


def evaluate(inp: CapacityInputs, search: bool = True) -> Capacity:
    """The whole capacity computation for one node; ``search`` also looks for knobs that
    would make an infeasible node fit."""
    a = inp.arch
    mc = memory_constants()
    max_len = int(inp.max_model_len or a.max_position_embeddings or 0)
    if not max_len:
        raise ConfigError("serving.maxModelLen", "is required: the model config has no max_position_embeddings")
    errors = _check_structure(inp, max_len)
    warnings: list[str] = []
    gpu = gpu_catalog()[inp.gpu_type]
    gpu_gib = gpu["memory_mib"] * MIB / GIB
    requested = gpu_gib * inp.gpu_memory_utilization
    tp = inp.tp
    pp = max(1, inp.pp)
    weights = estimate_weights(a, inp.profile, tp, load_mtp=inp.mtp, override_gib=inp.weights_gib, pp=pp)
    d_seqs, d_batched = scheduler_defaults(inp.gpu_type)
    seqs = int(inp.max_num_seqs or d_seqs)
    batched = int(inp.max_num_batched_tokens or d_batched)
    act = _activation(a, inp, seqs, batched)
    act_gib = sum(act.values())
    nt = mc["non_torch"]
    non_torch = float(nt["base_gib"]) + (float(nt["tensor_parallel_extra_gib"]) if tp > 1 else 0.0)
    cg = mc["cudagraph"]
    draft_layers = a.mtp_layers if inp.mtp else 0
    stage_layers = pp_partition(a.num_layers, pp)
    binding = None
    for st, layers in enumerate(stage_layers):
        last = st == pp - 1
        # Each stage caches KV (and captures graphs) for its own layers only; the MTP drafter
        # sits with the lm_head on the last stage.
        sa = a if pp == 1 else replace(a, num_layers=len(layers),
                                       indexer_layers=tuple(i for i in a.indexer_layers if i in layers))
        st_cg = 0.0 if inp.enforce_eager else float(cg["base_gib"]) + float(cg["per_layer_gib"]) * (
            len(layers) + (a.mtp_layers if inp.mtp and last else 0))
        st_w = weights.stages_gib[st] if pp > 1 else weights.per_rank_gib
        st_avail = requested - st_w - act_gib - non_torch - st_cg
        st_kv = kv_layout(sa, tp, inp.kv_cache_dtype, draft_layers if last else 0, inp.gpu_type, inp.block_size)
        st_blocks = kv_blocks(st_avail * GIB, st_kv.bytes_per_token, st_kv.block_size)
        key = (st_blocks, st_avail)
        if binding is None or key < binding[0]:
            binding = (key, st, st_w, st_cg, st_avail, st_kv, st_blocks)
    _, stage, stage_weights, cudagraph, available, kv, blocks = binding
    tokens = blocks * kv.block_size
    conc = max_concurrency(blocks, max_len, kv.block_size)
    per_req = gib(math.ceil(max_len / kv.block_size) * kv.bytes_per_block)

    assumptions = list(a.notes) + list(weights.assumptions)
    assumptions += [
        Assumption(f"{inp.gpu_type} memory as the driver reports it (MiB)", gpu["memory_mib"],
                   "infra/data/gpus.yaml (nvidia-smi)"),
        Assumption("activation peak per GPU (GiB)", rounded(act_gib), mc["activation"]["source"]),
        Assumption("non-torch memory per GPU (GiB)", rounded(non_torch), nt["source"]),
        Assumption("CUDA-graph memory estimate per GPU (GiB)", rounded(cudagraph),
                   "0 with --enforce-eager (vLLM 0.33 vllm/v1/worker/gpu_worker.py: no CUDA graphs are captured)" if inp.enforce_eager else cg["source"]),
        Assumption("KV block size (tokens)", kv.block_size,
                   "--block-size" if inp.block_size else mc["block_size"]["source"]),
        Assumption("max_num_seqs / max_num_batched_tokens", [seqs, batched],
                   "engine.extraArgs" if inp.max_num_seqs or inp.max_num_batched_tokens
                   else mc["scheduler_defaults"]["source"]),
    ]
    if a.is_dsa:
        assumptions.append(Assumption(
            "layers with a DSA indexer (main model; MTP layers always have one)", len(a.indexer_layers),
            "vLLM 0.33 vllm/model_executor/models/deepseek_v2.py: index_topk_freq / index_skip_topk_offset "
            "(vLLM 0.23 gave every layer one)"))
    if inp.speculative_tokens and not inp.mtp:
        if (inp.speculative_method or "mtp") == "mtp":
            warnings.append("speculative method mtp needs MTP layers, but the model config has no "
                            "num_nextn_predict_layers; no draft KV or weights counted")
        elif inp.speculative_method != "ngram":
            assumptions.append(Assumption(
                f"draft model of speculative method {inp.speculative_method}: weights and KV not counted", 0,
                "glmserve capacity model (only MTP drafters are modelled)"))
    if a.sliding_window:
        assumptions.append(Assumption(
            "sliding-window layers counted as full attention (KV tokens are a lower bound)", True,
            "glmserve capacity model"))

    if pp > 1:
        assumptions.append(Assumption(
            "pipeline stage that sizes the KV cache (fewest blocks)", stage,
            "vLLM takes the smallest KV cache of all workers"))
    if stage_weights + act_gib + non_torch + cudagraph >= requested:
        where = f" (pipeline stage {stage} of {pp})" if pp > 1 else ""
        errors.append(
            f"does not fit{where}: weights {stage_weights:.2f} GiB/GPU + activations {act_gib:.2f} + non-torch "
            f"{non_torch:.2f} + CUDA graphs {cudagraph:.2f} = "
            f"{stage_weights + act_gib + non_torch + cudagraph:.2f} GiB exceed the {requested:.2f} GiB "
            f"vLLM may use per GPU ({inp.gpu_type} {gpu['memory_mib']:,} MiB x {inp.gpu_memory_utilization}); "
            f"no room for the KV cache")
    elif conc < 1:
        errors.append(
            f"does not fit: {available:.2f} GiB of KV cache per GPU holds {tokens:,} tokens "
            f"({blocks:,} blocks of {kv.block_size}), less than one {max_len:,}-token request "
            f"({per_req:.2f} GiB); max concurrency {conc:.2f} < 1")
    else:
        low = float(mc["thresholds"]["low_headroom_concurrency"])
        if conc < low:
            warnings.append(
                f"low headroom: only {conc:.2f} concurrent {max_len:,}-token requests fit "
                f"({tokens:,} KV tokens, {available:.2f} GiB/GPU); consider a shorter serving.maxModelLen, "
                f"--kv-cache-dtype fp8 or a higher gpuMemoryUtilization")
    if inp.gpu_memory_utilization > float(mc["thresholds"]["high_utilization"]):
        warnings.append(f"gpuMemoryUtilization {inp.gpu_memory_utilization} leaves under "
                        f"{(1 - inp.gpu_memory_utilization) * gpu_gib:.2f} GiB per GPU for the CUDA context "
                        "and other processes; vLLM may fail at start")
    if inp.nodes > 1 or pp > 1:
        world = tp * pp
        engines = max(1, (inp.gpus * inp.nodes) // world)
    else:
        engines = inp.gpus // tp if tp and inp.gpus >= tp else 1
    if engines > 1 and not errors and pp > 1:
        warnings.append(f"{inp.gpus * inp.nodes} GPUs with tensor x pipeline parallel size {tp} x {pp}: one engine "
                        f"uses {tp * pp} GPUs; the others stay idle unless --data-parallel-size {engines} is passed "
                        "(KV figures are per engine)")
    elif engines > 1 and not errors:
        warnings.append(f"{inp.gpus} GPUs with tensor parallel size {tp}: one engine uses {tp} GPUs; the other "
                        f"{inp.gpus - tp} stay idle unless --data-parallel-size {engines} is passed "
                        "(KV figures are per engine)")
    if a.is_dsa and inp.kv_cache_dtype not in FP8_KV and a.weight_format == "fp8":
        alt = kv_layout(a, tp, "fp8", draft_layers, inp.gpu_type, inp.block_size)
        alt_tokens = kv_blocks(available * GIB, alt.bytes_per_token, alt.block_size) * alt.block_size
        warnings.append(f"KV cache in bf16 ({kv.bytes_per_token:,} B/token/GPU); --kv-cache-dtype fp8 stores "
                        f"fp8_ds_mla ({alt.bytes_per_token:,} B/token/GPU) and would hold {alt_tokens:,} tokens")
    if a.is_dsa and inp.kv_cache_dtype == "fp8_e5m2":
        warnings.append("the sparse FlashMLA backend stores fp8_ds_mla (e4m3); fp8_e5m2 was modelled as fp8_ds_mla "
                        "and vLLM may reject it: use --kv-cache-dtype fp8")

    cap = Capacity(
        inputs=inp, gpu_memory_gib=gpu_gib, requested_gib=requested, weights=weights,
        activation_gib=act_gib, activation_breakdown={k: rounded(v, 3) for k, v in act.items()},
        non_torch_gib=non_torch, cudagraph_gib=cudagraph, available_kv_gib=available, kv=kv,
        num_blocks=blocks, kv_cache_tokens=tokens, max_concurrency=conc, kv_gib_per_request=per_req,
        max_model_len=max_len, max_num_seqs=seqs, max_num_batched_tokens=batched, engines=engines,
        errors=errors, warnings=warnings, assumptions=assumptions, stage=stage)
    memory_fail = any(e.startswith("does not fit") for e in errors)
    if search and memory_fail:
        cap.knobs = find_knobs(cap)
        if cap.knobs:
            hint = "; ".join(k.describe() for k in cap.knobs)
            cap.errors = [e + f". Would fit with: {hint}" if e.startswith("does not fit") else e
                          for e in cap.errors]
        else:
            cap.errors = [e + ". No single knob (KV dtype, max length, utilization, MTP, TP size, GPU type, "
                          "FP8 weights) makes it fit on one node" if e.startswith("does not fit") else e
                          for e in cap.errors]
    return cap


def _try(inp: CapacityInputs, **changes: Any) -> Optional[Capacity]:
    try:
        c = evaluate(replace(inp, **changes), search=False)
    except ConfigError:
        return None
    return c if c.fits else None


def find_knobs(cap: Capacity) -> list[Knob]:
    """Single changes that would make an infeasible node fit, cheapest first."""
    inp, a = cap.inputs, cap.inputs.arch
    t = memory_constants()["thresholds"]
    knobs: list[Knob] = []

    def k(key: str, flag: str, value: Any, c: Capacity, note: str = "") -> None:
        knobs.append(Knob(key, flag, value, c.kv_cache_tokens, c.max_concurrency, note))

    if inp.kv_cache_dtype not in FP8_KV:
        c = _try(inp, kv_cache_dtype="fp8")
        if c:
            k("serving.kvCacheDtype", "--kv-cache-dtype", "fp8", c)
    if cap.num_blocks > 0:
        fit_len = cap.num_blocks * cap.kv.block_size
        nice = fit_len // 1024 * 1024 if fit_len >= 1024 else fit_len
        c = _try(inp, max_model_len=nice) if nice >= 256 else None
        if c:
            k("serving.maxModelLen", "--max-model-len", nice, c)
    fixed = cap.weights.per_rank_gib + cap.overhead_gib
    need = fixed + cap.kv_gib_per_request + 0.01
    util = math.ceil(need / cap.gpu_memory_gib * 100) / 100
    if inp.gpu_memory_utilization < util <= float(t["max_suggested_utilization"]):
        c = _try(inp, gpu_memory_utilization=util)
        if c:
            k("serving.gpuMemoryUtilization", "--gpu-memory-utilization", util, c)
    if inp.mtp:
        c = _try(inp, speculative_tokens=0, speculative_method=None)
        if c:
            k("serving.speculative", "--speculative-tokens", 0, c, "no MTP drafter")
    if not inp.enforce_eager:
        c = _try(inp, enforce_eager=True)
        if c:
            k("serving.enforceEager", "--enforce-eager", True, c, "no CUDA-graph reserve")
    for tp in GPU_COUNTS:
        if tp > inp.tp and a.num_heads % tp == 0:
            c = _try(inp, tp=tp, gpus=max(inp.gpus, tp))
            if c:
                n = max(inp.gpus, tp)
                k("serving.tensorParallelSize", "--tp", tp, c, f"with gpu.count {n} [--gpus {n}]")
                break
    mine = gpu_catalog()[inp.gpu_type]["memory_mib"]
    for g, row in sorted(gpu_catalog().items(), key=lambda kv: kv[1]["memory_mib"]):
        if row["memory_mib"] > mine:
            c = _try(inp, gpu_type=g)
            if c:
                k("gpu.type", "--gpu", g, c)
                break
    if a.weight_bytes >= 2 and inp.weights_gib is None:
        variant = ((inp.profile or {}).get("variants") or {}).get("fp8")
        c = None
        if variant:
            from infra.spec.profiles import load_profile  # light: yaml only

            try:
                vp = load_profile(variant)
                c = _try(inp, arch=arch_from_profile(vp), profile=vp)
            except (KeyError, ConfigError):
                c = None
            if c:
                k("model.profile", "--model-config", variant, c,
                  f"{vp.get('hf_model_id', variant)}: {c.weights.per_rank_gib:.1f} GiB of weights per GPU")
        else:
            fp8 = replace(a, weight_format="fp8", weight_bytes=1 + 4 / (128 * 128))
            prof = {kk: v for kk, v in (inp.profile or {}).items() if kk not in ("checkpoint", "weights")}
            c = _try(inp, arch=fp8, profile=prof)
            if c:
                k("model.id", None, "an FP8-quantized checkpoint", c,
                  f"~{c.weights.per_rank_gib:.1f} GiB of weights per GPU, estimated")
    return knobs
