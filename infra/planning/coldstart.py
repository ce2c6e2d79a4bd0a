"""Cold start: the time from `up` (or a request that scales a serverless app up from zero)
to ready, as a sum of terms whose constants are data (``infra/data/coldstart.yaml``)::

    provision + image pull + weight read + engine init + CUDA graphs + first request warm-up

The weight read is the checkpoint size divided by the storage bandwidth, which depends on the
storage (Modal volume, RunPod network volume, local disk, a fresh Hugging Face download) and
on ``--safetensors-load-strategy``. CUDA graphs cost nothing in eager mode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from infra.planning.sources import Assumption, ConfigError, load_data

GB = 1e9
GIB = 1 << 30
STORAGES = ("modal-volume", "runpod-network-volume", "local-disk", "hf-download")
LOAD_STRATEGIES = ("lazy", "eager", "prefetch", "torchao")


def constants() -> dict[str, Any]:
    return load_data("coldstart.yaml")


def storage_for(provider: Optional[str], runpod_volume: Optional[str] = None) -> str:
    """Where a provider reads the weights from once they are cached."""
    ps = constants()["provider_storage"]
    entry = ps.get(provider or "none", ps["none"])
    if isinstance(entry, dict):
        vol = runpod_volume or entry.get("default")
        if vol not in entry or vol == "default":
            raise ConfigError(f"{provider}.volume", "unknown volume kind", value=runpod_volume,
                              allowed=", ".join(k for k in entry if k != "default"))
        return entry[vol]
    return entry


def _provider_value(table: dict, provider: Optional[str]) -> tuple[float, str]:
    row = table.get(provider or "none") or table["none"]
    return float(row["value"]), str(row.get("source", ""))


@dataclass
class ColdStart:
    provider: str
    storage: str
    load_strategy: str
    enforce_eager: bool
    weights_gib: float                       # checkpoint bytes read at start
    terms: dict[str, float]                  # seconds, in order
    first_deploy_download_s: float
    assumptions: list[Assumption] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        """To the first answer, warm-up included."""
        return sum(self.terms.values())

    @property
    def ready_s(self) -> float:
        """To /health answering, before the first request's warm-up."""
        return self.total_s - self.terms.get("first_request_warmup_s", 0.0)

    @property
    def first_deploy_s(self) -> float:
        """The first start, when the weights must first be downloaded from Hugging Face."""
        return self.total_s + self.first_deploy_download_s

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "storage": self.storage,
            "load_strategy": self.load_strategy,
            "enforce_eager": self.enforce_eager,
            "weights_read_gib": round(self.weights_gib, 2),
            "terms_s": {k: round(v, 1) for k, v in self.terms.items()},
            "ready_seconds": round(self.ready_s),
            "total_seconds": round(self.total_s),
            "first_deploy_download_s": round(self.first_deploy_download_s),
            "first_deploy_seconds": round(self.first_deploy_s),
        }


def weight_read_seconds(weights_gib: float, storage: str, load_strategy: Optional[str]) -> float:
    st = constants()["storage"]
    if storage not in st:
        raise ConfigError("storage", "unknown storage", value=storage, allowed=", ".join(st))
    strat = load_strategy or "lazy"
    gbps = float(st[storage]["gbps"].get(strat, st[storage]["gbps"]["lazy"]))
    return weights_gib * GIB / (gbps * GB)


def estimate(provider: Optional[str], weights_gib: float, *, load_strategy: Optional[str] = None,
             enforce_eager: bool = False, moe: bool = True, storage: Optional[str] = None,
             runpod_volume: Optional[str] = None) -> ColdStart:
    """Cold start of one replica. ``weights_gib`` is what the engine reads (the checkpoint,
    less any layer it skips)."""
    c = constants()
    provider = provider or "none"
    if load_strategy is not None and load_strategy not in LOAD_STRATEGIES:
        raise ConfigError("serving.loadStrategy", "unknown load strategy", value=load_strategy,
                          allowed=", ".join(LOAD_STRATEGIES))
    storage = storage or storage_for(provider, runpod_volume)
    if storage not in c["storage"]:
        raise ConfigError("--storage", "unknown storage", value=storage, allowed=", ".join(c["storage"]))
    strat = load_strategy or "lazy"
    provision, provision_src = _provider_value(c["provision_s"], provider)
    pull_gbps, pull_src = _provider_value(c["image"]["pull_gbps"], provider)
    image_s = float(c["image"]["size_gb"]) / pull_gbps if pull_gbps > 0 else 0.0
    read_s = weight_read_seconds(weights_gib, storage, strat)
    init_s = float(c["engine_init_s"]["moe" if moe else "dense"])
    graphs = 0.0 if enforce_eager else float(c["cuda_graphs_s"]["torch_compile"]) + float(c["cuda_graphs_s"]["capture"])
    warm = float(c["first_request_warmup_s"]["eager" if enforce_eager else "graphs"])
    terms = {
        "provision_s": provision,
        "image_pull_s": image_s,
        "weights_read_s": read_s,
        "engine_init_s": init_s,
        "cuda_graphs_s": graphs,
        "first_request_warmup_s": warm,
    }
    download = weight_read_seconds(weights_gib, "hf-download", strat) if storage != "hf-download" else 0.0
    gbps = c["storage"][storage]["gbps"].get(strat, c["storage"][storage]["gbps"]["lazy"])
    notes = [
        Assumption(f"{provider} provisioning (s)", provision, provision_src),
        Assumption(f"image pull: {c['image']['size_gb']} GB at {pull_gbps} GB/s", round(image_s, 1),
                   f"{c['image']['size_source']}; {pull_src}"),
        Assumption(f"weight read bandwidth, {storage} with load strategy {strat} (GB/s)", gbps,
                   c["storage"][storage]["source"]),
        Assumption("engine initialisation (s)", init_s, c["engine_init_s"]["source"]),
        Assumption("CUDA-graph compile and capture (s)", graphs,
                   "none with --enforce-eager" if enforce_eager else c["cuda_graphs_s"]["source"]),
        Assumption("first request warm-up (s)", warm, c["first_request_warmup_s"]["source"]),
        Assumption("first deploy: the weights are downloaded from Hugging Face first (s)", round(download),
                   c["storage"]["hf-download"]["source"]),
    ]
    return ColdStart(provider, storage, strat, enforce_eager, weights_gib, terms, download, notes)
