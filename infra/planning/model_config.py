"""The planner's view of a model: architecture facts read from a Hugging Face ``config.json``
(GQA, MLA or MLA+DSA) or from a shipped model profile (``infra/data/models/``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from infra.planning.sources import Assumption, ConfigError


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

