"""KV-cache arithmetic as vLLM does it: bytes per token on each GPU, blocks, tokens and
concurrency (vLLM's KV cache spec per attention type; constants in infra/data/vllm-memory.yaml)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from infra.planning.model_config import Arch
from infra.planning.sources import ConfigError, memory_constants

FP8_KV = ("fp8", "fp8_e4m3", "fp8_e5m2")
KV_CACHE_DTYPES = ("auto", "bfloat16", "float16", *FP8_KV)


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

