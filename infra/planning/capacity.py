"""Capacity: how vLLM divides each GPU's memory, and whether a node fits.

The model follows vLLM's own accounting (shared/REFERENCE.md section 3)::

    requested    = GPU memory (as the driver reports it) x gpu_memory_utilization
    available_kv = requested - weights - activation peak - non-torch - CUDA-graph estimate
    num_blocks   = available_kv // (bytes per token per GPU x block_size)
    KV tokens    = num_blocks x block_size            (whole TP engine, as vLLM logs it)
    concurrency  = num_blocks / ceil(max_model_len / block_size)

It reads any Hugging Face ``config.json`` (GQA, MLA, MLA+DSA) or a shipped profile under
``infra/data/models/``. Every constant lives in ``infra/data/vllm-memory.yaml`` with its
source; every estimate the result depends on is returned as an :class:`Assumption`.
No GPU, no network, no heavy imports: this runs inside ``glmserve plan`` in milliseconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import yaml

from infra.spec.gpus import GPU_COUNTS, gpu_catalog

DATA = Path(__file__).resolve().parents[1] / "data"
GIB = 1 << 30
MIB = 1 << 20
FP8_KV = ("fp8", "fp8_e4m3", "fp8_e5m2")
KV_CACHE_DTYPES = ("auto", "bfloat16", "float16", *FP8_KV)

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=None)
def load_data(name: str) -> dict[str, Any]:
    with open(DATA / name, encoding="utf-8") as f:
        return yaml.load(f, Loader=_LOADER) or {}


def memory_constants() -> dict[str, Any]:
    return load_data("vllm-memory.yaml")


class ConfigError(ValueError):
    """A model config or planner input the planner cannot use; names the key at fault."""

    def __init__(self, key: str, message: str, value: Any = None, allowed: str | None = None):
        super().__init__(f"{key}: {message}")
        self.key, self.message, self.value, self.allowed = key, message, value, allowed


@dataclass(frozen=True)
class Assumption:
    """One number the result depends on that glmserve did not measure, with its source."""

    what: str
    value: Any
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "value": self.value, "source": self.source}


def _gib(b: float) -> float:
    return b / GIB


def _r(x: float, n: int = 2) -> float:
    return round(float(x), n)


# --------------------------------------------------------------------------- architecture

@dataclass(frozen=True)
class Arch:
    """The architecture facts the planner needs, read from a config.json."""

    name: str
    model_type: str
    attention: str                    # "gqa" | "mla" | "mla+dsa"
    num_layers: int
    mtp_layers: int                   # num_nextn_predict_layers
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    q_lora_rank: Optional[int]
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    index_head_dim: int
    index_n_heads: int
    indexer_layers: tuple[int, ...]   # main-model layers that own a DSA indexer (MTP layers always do)
    vocab_size: int
    max_position_embeddings: Optional[int]
    intermediate_size: int
    moe_intermediate_size: int
    n_routed_experts: int
    shared_expert_intermediate: int
    experts_per_tok: int
    moe_layers: frozenset[int]
    tie_word_embeddings: bool
    weight_format: str                # "fp8", "bf16", "int4", ...
    weight_bytes: float               # bytes per quantized-linear parameter, scales included
    sliding_window: bool
    notes: tuple[Assumption, ...] = ()

    @property
    def is_mla(self) -> bool:
        return self.attention in ("mla", "mla+dsa")

    @property
    def is_dsa(self) -> bool:
        return self.attention == "mla+dsa"

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts > 0


def _first(cfg: dict, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


def _need_int(cfg: dict, *keys: str) -> int:
    v = _first(cfg, *keys)
    if v is None:
        raise ConfigError(f"config.{keys[0]}", "is required to plan capacity", allowed=" or ".join(keys))
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ConfigError(f"config.{keys[0]}", "must be an integer", value=v) from None


_DTYPE_BYTES = {"bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "half": 2, "float32": 2, "fp32": 2, "float": 2}


def _weight_format(cfg: dict, checkpoint_dtype: Optional[str]) -> tuple[str, float, Optional[Assumption]]:
    """Bytes per parameter of the quantized linear layers as vLLM holds them on the GPU."""
    fp8_block = 1 + 4 / (128 * 128)  # fp8 value plus one fp32 scale per 128x128 block
    if checkpoint_dtype:
        d = str(checkpoint_dtype).lower()
        if d in ("fp8", "float8", "fp8_e4m3"):
            return "fp8", fp8_block, None
        if d in _DTYPE_BYTES:
            return "bf16", 2.0, None
        if d in ("int4", "w4a16", "nvfp4", "mxfp4", "fp4"):
            return d, 0.5 + 1 / 16, None
        raise ConfigError("checkpoint.dtype", "unknown checkpoint dtype", value=checkpoint_dtype,
                          allowed="fp8, bf16, fp16, int4, nvfp4, mxfp4")
    q = cfg.get("quantization_config") or {}
    method = str(q.get("quant_method") or "").lower()
    if method:
        if method in ("fp8", "fbgemm_fp8", "ptpc_fp8"):
            blk = q.get("weight_block_size")
            if isinstance(blk, (list, tuple)) and len(blk) == 2 and all(blk):
                return "fp8", 1 + 4 / (int(blk[0]) * int(blk[1])), None
            return "fp8", 1.0, None
        if method == "compressed-tensors":
            groups = q.get("config_groups") or {}
            w = next(iter(groups.values()), {}).get("weights", {}) if groups else {}
            bits = int(w.get("num_bits", 8))
            gsize = w.get("group_size") or 0
            if bits == 8:
                return "fp8" if w.get("type") == "float" else "int8", 1.0 + (2 / gsize if gsize else 0), None
            return f"int{bits}", bits / 8 + (2 / gsize if gsize else 0), None
        if method in ("awq", "gptq", "awq_marlin", "gptq_marlin"):
            bits = int(q.get("bits") or q.get("w_bit") or 4)
            gsize = int(q.get("group_size") or q.get("q_group_size") or 128)
            if gsize <= 0:
                gsize = 128
            return f"int{bits}", bits / 8 + (2 + bits / 8) / gsize, None
        if method == "mxfp4":
            return "mxfp4", 0.5 + 1 / 32, None
        if method == "modelopt":
            algo = str(q.get("quant_algo") or "").upper()
            if "FP4" in algo:
                return "nvfp4", 0.5 + 1 / 16, None
            return "fp8", 1.0, None
        note = Assumption(
            "quantization method not modelled; weights taken at the config's torch_dtype",
            method, "glmserve capacity model")
        return "bf16", 2.0, note
    dtype = str(_first(cfg, "torch_dtype", "dtype", default="bfloat16")).lower()
    return "bf16" if dtype != "float16" else "fp16", 2.0, None


def _indexer_layers(cfg: dict, num_layers: int) -> tuple[int, ...]:
    """vLLM's rule (deepseek_v2.py, IndexCache): a layer skips its own indexer when
    ``max(layer - index_skip_topk_offset + 1, 0) % index_topk_freq != 0``, or when
    ``index_topk_pattern[layer] == "S"``. MTP layers always build one."""
    pattern = cfg.get("index_topk_pattern")
    if pattern:
        return tuple(i for i in range(num_layers) if not (i < len(pattern) and pattern[i] == "S"))
    freq = int(cfg.get("index_topk_freq") or 1)
    if "index_topk_freq" not in cfg and isinstance(cfg.get("indexer_types"), list):
        types = cfg["indexer_types"]
        return tuple(i for i in range(num_layers) if not (i < len(types) and types[i] == "shared"))
    offset = int(_first(cfg, "index_skip_topk_offset", "index_topk_offset", default=2))
    if freq <= 1:
        return tuple(range(num_layers))
    return tuple(i for i in range(num_layers) if max(i - offset + 1, 0) % freq == 0)


def _moe_layers(cfg: dict, num_layers: int, n_experts: int) -> frozenset[int]:
    if not n_experts:
        return frozenset()
    if "first_k_dense_replace" in cfg or "moe_layer_freq" in cfg:
        k = int(cfg.get("first_k_dense_replace") or 0)
        freq = int(cfg.get("moe_layer_freq") or 1)
        return frozenset(i for i in range(num_layers) if i >= k and i % freq == 0)
    if "decoder_sparse_step" in cfg or "mlp_only_layers" in cfg:
        step = int(cfg.get("decoder_sparse_step") or 1)
        only = set(cfg.get("mlp_only_layers") or [])
        return frozenset(i for i in range(num_layers) if i not in only and (i + 1) % step == 0)
    return frozenset(range(num_layers))


_UNSUPPORTED_LAYER_TYPES = ("linear_attention", "mamba", "conv", "recurrent")


def arch_from_config(cfg: dict, name: str = "model", checkpoint_dtype: Optional[str] = None) -> Arch:
    """Read the planner's view of a Hugging Face config.json (GQA, MLA or MLA+DSA)."""
    if not isinstance(cfg, dict):
        raise ConfigError("config", "must be a JSON object")
    if "num_hidden_layers" not in cfg and isinstance(cfg.get("text_config"), dict):
        inner = dict(cfg["text_config"])
        inner.setdefault("quantization_config", cfg.get("quantization_config"))
        cfg = inner
    model_type = str(cfg.get("model_type") or "")
    layer_types = cfg.get("layer_types") or []
    if any(any(u in str(t) for u in _UNSUPPORTED_LAYER_TYPES) for t in layer_types) or any(
            u in model_type for u in ("mamba", "jamba", "qwen3_next", "rwkv")):
        raise ConfigError("config.model_type", "hybrid (linear-attention or state-space) models are not modelled",
                          value=model_type, allowed="GQA, MLA and MLA+DSA decoder models")
    L = _need_int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _need_int(cfg, "hidden_size", "n_embd", "d_model")
    heads = _need_int(cfg, "num_attention_heads", "n_head")
    if L <= 0 or hidden <= 0 or heads <= 0:
        raise ConfigError("config.num_hidden_layers", "layers, hidden size and heads must be positive")
    kv_heads = int(_first(cfg, "num_key_value_heads", "n_head_kv", default=heads))
    if cfg.get("multi_query"):
        kv_heads = 1
    kv_lora = cfg.get("kv_lora_rank")
    is_mla = kv_lora is not None
    is_dsa = is_mla and "index_topk" in cfg
    attention = "mla+dsa" if is_dsa else ("mla" if is_mla else "gqa")
    rope = int(cfg.get("qk_rope_head_dim") or 64) if is_mla else 0
    nope = int(cfg.get("qk_nope_head_dim") or 128) if is_mla else 0
    vdim = int(cfg.get("v_head_dim") or 128) if is_mla else 0
    # GLM-5.2's config sets head_dim to the full QK head (192); for MLA it is not a KV dimension.
    head_dim = int(cfg.get("head_dim") or hidden // heads) if not is_mla else nope + rope
    n_experts = int(_first(cfg, "n_routed_experts", "num_experts", "num_local_experts", default=0) or 0)
    inter = int(_first(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", default=4 * hidden))
    moe_inter = int(_first(cfg, "moe_intermediate_size", default=inter) or inter)
    if cfg.get("shared_expert_intermediate_size"):
        shared_inter = int(cfg["shared_expert_intermediate_size"])
    else:
        shared_inter = int(cfg.get("n_shared_experts") or 0) * moe_inter
    fmt, wbytes, note = _weight_format(cfg, checkpoint_dtype)
    mtp = int(cfg.get("num_nextn_predict_layers") or 0)
    max_pos = _first(cfg, "max_position_embeddings", "max_sequence_length", "n_positions", "seq_length")
    sliding = bool(cfg.get("sliding_window")) and bool(cfg.get("use_sliding_window", True)) or any(
        "sliding" in str(t) for t in layer_types)
    notes: list[Assumption] = [note] if note else []
    if not is_mla and kv_heads <= 0:
        raise ConfigError("config.num_key_value_heads", "must be positive", value=kv_heads)
    return Arch(
        name=name,
        model_type=model_type,
        attention=attention,
        num_layers=L,
        mtp_layers=mtp,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        q_lora_rank=int(cfg["q_lora_rank"]) if is_mla and cfg.get("q_lora_rank") else None,
        kv_lora_rank=int(kv_lora) if is_mla else 0,
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        v_head_dim=vdim,
        index_head_dim=int(cfg.get("index_head_dim") or 128) if is_dsa else 0,
        index_n_heads=int(cfg.get("index_n_heads") or 64) if is_dsa else 0,
        indexer_layers=_indexer_layers(cfg, L) if is_dsa else (),
        vocab_size=int(_first(cfg, "vocab_size", "padded_vocab_size", default=32000)),
        max_position_embeddings=int(max_pos) if max_pos else None,
        intermediate_size=inter,
        moe_intermediate_size=moe_inter,
        n_routed_experts=n_experts,
        shared_expert_intermediate=shared_inter,
        experts_per_tok=int(cfg.get("num_experts_per_tok") or (2 if n_experts else 0)),
        moe_layers=_moe_layers(cfg, L, n_experts),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        weight_format=fmt,
        weight_bytes=wbytes,
        sliding_window=sliding,
        notes=tuple(notes),
    )


def arch_from_profile(profile: dict) -> Arch:
    if not isinstance(profile, dict) or not isinstance(profile.get("config"), dict):
        raise ConfigError("profile.config", "a model profile needs a 'config' block (config.json field names)")
    ck = profile.get("checkpoint") or {}
    return arch_from_config(profile["config"], name=str(profile.get("name") or "model"),
                            checkpoint_dtype=ck.get("dtype"))


# --------------------------------------------------------------------------- KV cache

@dataclass(frozen=True)
class KvGroup:
    name: str
    layers: int
    bytes_per_token: int       # per layer, per GPU

    @property
    def total(self) -> int:
        return self.layers * self.bytes_per_token


@dataclass(frozen=True)
class KvLayout:
    groups: tuple[KvGroup, ...]
    cache_format: str          # what vLLM stores: "fp8_ds_mla", "bfloat16", "fp8_e4m3", ...
    block_size: int

    @property
    def bytes_per_token(self) -> int:
        return sum(g.total for g in self.groups)

    @property
    def bytes_per_block(self) -> int:
        return self.bytes_per_token * self.block_size

    def to_json(self) -> list[dict[str, Any]]:
        return [{"name": g.name, "layers": g.layers, "bytes_per_token": g.bytes_per_token} for g in self.groups]


def default_block_size(arch: Arch, gpu_type: str) -> int:
    bs = memory_constants()["block_size"]
    if arch.attention == "mla":
        return int((bs.get("mla_by_gpu") or {}).get(gpu_type, bs["mla"]))
    return int(bs[arch.attention])


def kv_layout(arch: Arch, tp: int, kv_cache_dtype: str = "auto", draft_layers: int = 0,
              gpu_type: str = "H200", block_size: Optional[int] = None) -> KvLayout:
    """Bytes of KV cache per token on each GPU.

    GQA: K and V for ceil(kv_heads / tp) heads (at least 1) per layer. MLA: the latent
    (kv_lora_rank + qk_rope_head_dim), the same on every rank. DSA: fp8 becomes fp8_ds_mla,
    and each layer that owns an indexer adds its fp8 K cache. ``draft_layers`` MTP layers
    add one attention layer (and one indexer) each.
    """
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ConfigError("serving.kvCacheDtype", "unknown KV cache dtype", value=kv_cache_dtype,
                          allowed=", ".join(KV_CACHE_DTYPES))
    m = memory_constants()["kv"]
    eb = int(m["dtype_bytes"][kv_cache_dtype])
    fp8 = kv_cache_dtype in FP8_KV
    groups: list[KvGroup] = []
    if arch.attention == "gqa":
        per_rank_heads = max(1, math.ceil(arch.num_kv_heads / tp))
        per_layer = 2 * per_rank_heads * arch.head_dim * eb
        fmt = ("fp8_e4m3" if kv_cache_dtype == "fp8" else kv_cache_dtype) if fp8 else "bfloat16"
        groups.append(KvGroup("attention (K+V)", arch.num_layers, per_layer))
        if draft_layers:
            groups.append(KvGroup("MTP draft attention (K+V)", draft_layers, per_layer))
    else:
        latent = arch.kv_lora_rank + arch.qk_rope_head_dim
        if arch.is_dsa and fp8:
            d = m["fp8_ds_mla"]
            per_layer = (arch.kv_lora_rank + arch.kv_lora_rank // int(d["quant_block"]) * int(d["scale_bytes"])
                         + arch.qk_rope_head_dim * int(d["rope_bytes"]))
            fmt = "fp8_ds_mla"
        else:
            per_layer = latent * eb
            fmt = ("fp8_e4m3" if kv_cache_dtype == "fp8" else kv_cache_dtype) if fp8 else "bfloat16"
        groups.append(KvGroup("MLA latent", arch.num_layers, per_layer))
        if draft_layers:
            groups.append(KvGroup("MTP draft MLA latent", draft_layers, per_layer))
        if arch.is_dsa:
            ix = m["indexer"]
            per_ix = arch.index_head_dim + arch.index_head_dim // int(ix["quant_block"]) * int(ix["scale_bytes"])
            groups.append(KvGroup("DSA indexer", len(arch.indexer_layers), per_ix))
            if draft_layers:
                groups.append(KvGroup("MTP draft DSA indexer", draft_layers, per_ix))
    bs = int(block_size) if block_size else default_block_size(arch, gpu_type)
    return KvLayout(tuple(g for g in groups if g.layers), fmt, bs)


def kv_blocks(available_bytes: float, bytes_per_token: int, block_size: int) -> int:
    """vLLM: num_blocks = available // (bytes per token x block size); never negative."""
    if available_bytes <= 0 or bytes_per_token <= 0:
        return 0
    return int(available_bytes // (bytes_per_token * block_size))


def kv_tokens(available_bytes: float, bytes_per_token: int, block_size: int) -> int:
    return kv_blocks(available_bytes, bytes_per_token, block_size) * block_size


def max_concurrency(num_blocks: int, max_model_len: int, block_size: int) -> float:
    return num_blocks / math.ceil(max_model_len / block_size)


# --------------------------------------------------------------------------- weights

@dataclass
class _Part:
    group: str
    ckpt: float        # bytes in the checkpoint
    rank: float        # bytes on each rank once loaded (0 if vLLM does not load it)
    sharded: bool      # divided by TP (rescaled when the checkpoint size is known)
    # Where the part lives with pipeline parallelism: a decoder layer index, or "first"
    # (embeddings) / "last" (lm_head, final norm, MTP layers) for the edge stages.
    where: Any = "last"


def _layer_parts(a: Arch, i: int, tp: int, mtp: bool, loaded: bool) -> list[_Part]:
    q, bf = a.weight_bytes, 2.0
    h = a.hidden_size
    parts: list[_Part] = []
    on = 1.0 if loaded else 0.0
    tag = "MTP layer" if mtp else None

    def add(group: str, params: float, bpp: float, sharded: bool, rank_params: Optional[float] = None,
            rank_bpp: Optional[float] = None) -> None:
        ckpt = params * bpp
        if rank_params is None:
            rank_params = params / tp if sharded else params
        rank = rank_params * (rank_bpp if rank_bpp is not None else bpp) * on
        parts.append(_Part(tag or group, ckpt, rank, sharded))

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
            parts.append(_Part(tag or "DSA indexer, replicated",
                               h * a.index_head_dim * q + h * a.index_n_heads * bf,
                               h * (a.index_head_dim + a.index_n_heads) * bf * on, False))
        # Load time: vLLM's MLA backends keep bf16 copies of kv_b_proj split into W_UK_T and W_UV.
        parts.append(_Part(tag or "MLA absorbed kv_b copies (load time)", 0.0,
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
        # are the target's (REFERENCE section 3: the drafter reuses them).
        add("MTP layer", 2 * h * h, bf, False)
        add("MTP layer", 3 * h, bf, False)
    return parts


def weight_parts(a: Arch, tp: int, load_mtp: bool) -> list[_Part]:
    bf = 2.0
    vocab_h = a.vocab_size * a.hidden_size
    parts = [_Part("embeddings and lm_head, sharded", vocab_h * bf, vocab_h * bf / tp, True, "first")]
    if not a.tie_word_embeddings:
        parts.append(_Part("embeddings and lm_head, sharded", vocab_h * bf, vocab_h * bf / tp, True, "last"))
    parts.append(_Part("norms", a.hidden_size * bf, a.hidden_size * bf, False, "last"))
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
            _r(scale, 4), "glmserve capacity model: parameter count from config.json x bytes per parameter"))
    else:
        assumptions.append(Assumption(
            "checkpoint size estimated from the config's parameter count (GiB)", _r(_gib(est_ckpt)),
            f"config.json shapes x {a.weight_bytes:.4g} B per quantized-linear parameter ({a.weight_format}); "
            "embeddings, norms and router gates in bf16"))
    pp = max(1, int(pp))
    stages = pp_partition(a.num_layers, pp)
    if pp > 1 and a.tie_word_embeddings:
        # Tied embeddings: the last stage loads its own copy for the lm_head.
        first = parts[0]
        parts.append(_Part(first.group, 0.0, first.rank, True, "last"))
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
                _r(adjust, 3), "glmserve capacity model: taken as proportional to the weights a rank holds"))
        breakdown["unattributed (measured)"] = adjust * GIB
        assumptions.append(Assumption(
            "per-rank weights not attributed to any tensor (GiB)", adjust,
            str(wcfg.get("source") or "model profile weights.per_rank_unattributed_gib")))
    if pp > 1:
        assumptions.append(Assumption(
            "decoder layers per pipeline stage", [len(r) for r in stages],
            "vLLM get_pp_indices (remainder to the stages before the last; embeddings on the first stage, "
            "lm_head and MTP layers on the last)"))
    bottom_up = _gib(total)
    stages_gib = tuple(_gib(t) + adjust for t in totals)
    ckpt_gib = float(given) if given else _gib(est_ckpt)
    if override_gib is not None:
        assumptions.append(Assumption("weights per GPU (GiB)", float(override_gib), "user override (weights_gib)"))
        return WeightsEstimate(float(override_gib), "override", ckpt_gib, _gib(est_ckpt), _gib(loaded),
                               bottom_up, 0.0, {"override": float(override_gib)}, assumptions,
                               tuple(float(override_gib) for _ in stages))
    return WeightsEstimate(
        stages_gib=stages_gib,
        per_rank_gib=bottom_up + adjust,
        source="profile" if given else "config",
        checkpoint_gib=ckpt_gib,
        estimated_checkpoint_gib=_gib(est_ckpt),
        loaded_gib=_gib(loaded),
        bottom_up_per_rank_gib=bottom_up,
        adjust_gib=adjust,
        breakdown={k: _r(_gib(v), 3) for k, v in breakdown.items()},
        assumptions=assumptions,
    )


# --------------------------------------------------------------------------- capacity

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
                "kv_cache_tokens": self.kv_cache_tokens, "max_concurrency": _r(self.max_concurrency),
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
    return {"fixed": float(c["fixed_gib"]), "forward": _gib(fwd), "sampler": _gib(sampler), "draft": _gib(draft)}


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
    per_req = _gib(math.ceil(max_len / kv.block_size) * kv.bytes_per_block)

    assumptions = list(a.notes) + list(weights.assumptions)
    assumptions += [
        Assumption(f"{inp.gpu_type} memory as the driver reports it (MiB)", gpu["memory_mib"],
                   "infra/data/gpus.yaml (nvidia-smi)"),
        Assumption("activation peak per GPU (GiB)", _r(act_gib), mc["activation"]["source"]),
        Assumption("non-torch memory per GPU (GiB)", _r(non_torch), nt["source"]),
        Assumption("CUDA-graph memory estimate per GPU (GiB)", _r(cudagraph),
                   "0 with --enforce-eager (REFERENCE section 3)" if inp.enforce_eager else cg["source"]),
        Assumption("KV block size (tokens)", kv.block_size,
                   "--block-size" if inp.block_size else mc["block_size"]["source"]),
        Assumption("max_num_seqs / max_num_batched_tokens", [seqs, batched],
                   "engine.extraArgs" if inp.max_num_seqs or inp.max_num_batched_tokens
                   else mc["scheduler_defaults"]["source"]),
    ]
    if a.is_dsa:
        assumptions.append(Assumption(
            "layers with a DSA indexer (main model; MTP layers always have one)", len(a.indexer_layers),
            "vLLM 0.33 deepseek_v2.py: index_topk_freq / index_skip_topk_offset (REFERENCE section 3; "
            "vLLM 0.23 gave every layer one)"))
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
        activation_gib=act_gib, activation_breakdown={k: _r(v, 3) for k, v in act.items()},
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
