"""Cold start: the time from `up` (or a request that scales a serverless app up from zero)
to ready, as a sum of terms whose constants are data::

    provision + image pull + weight read + engine init + CUDA graphs + first request warm-up

Provisioning, the image pull speed and where the weights are read from are the provider's
facts (:class:`~infra.planning.provider_facts.ProviderFacts`, from its catalogue); the rest is
the engine's (``infra/data/coldstart.yaml``). The weight read is the checkpoint size divided
by the storage bandwidth, which depends on the storage (a provider's volume, local disk, a
fresh Hugging Face download) and on ``--safetensors-load-strategy``. CUDA graphs cost nothing
in eager mode. A figure the provider does not give counts as 0 and is said to be unknown.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from infra.planning.sources import Assumption, ConfigError, load_data

GB = 1e9
GIB = 1 << 30
LOAD_STRATEGIES = ("lazy", "eager", "prefetch", "torchao")


def constants() -> dict[str, Any]:
    return load_data("coldstart.yaml")


UNKNOWN = "unknown"


def storages(facts: ProviderFacts) -> dict[str, dict[str, Any]]:
    """Every storage a node of this provider can read the weights from: the provider's own
    and the ones every provider has (local disk, a fresh download)."""
    own = {name: {"description": st.description, "gbps": st.gbps, "source": st.source}
           for name, st in facts.storages.items()}
    return {**own, **constants()["storage"]}


def _term(figure: Optional[Figure], provider: str) -> tuple[float, Any, str]:
    """A provider figure, or 0 said to be unknown."""
    if figure is None:
        return 0.0, UNKNOWN, f"the {provider} provider's catalogue gives no figure; counted as 0"
    return figure.value, figure.value, figure.source


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


def weight_read_seconds(weights_gib: float, storage: dict[str, Any], load_strategy: Optional[str]) -> float:
    strat = load_strategy or "lazy"
    gbps = float(storage["gbps"].get(strat, storage["gbps"]["lazy"]))
    return weights_gib * GIB / (gbps * GB)


def estimate(facts: ProviderFacts, weights_gib: float, *, load_strategy: Optional[str] = None,
             enforce_eager: bool = False, moe: bool = True, storage: Optional[str] = None) -> ColdStart:
    """Cold start of one replica on the provider ``facts`` describe. ``weights_gib`` is what
    the engine reads (the checkpoint, less any layer it skips); ``storage`` overrides where
    the provider reads it from."""
    c = constants()
    provider = facts.provider
    if load_strategy is not None and load_strategy not in LOAD_STRATEGIES:
        raise ConfigError("serving.loadStrategy", "unknown load strategy", value=load_strategy,
                          allowed=", ".join(LOAD_STRATEGIES))
    table = storages(facts)
    if storage is not None and storage not in table:
        raise ConfigError("--storage", "unknown storage", value=storage, allowed=", ".join(table))
    storage = storage or facts.storage or UNKNOWN
    strat = load_strategy or "lazy"
    provision, provision_value, provision_src = _term(facts.provision, provider)
    pull_gbps, pull_value, pull_src = _term(facts.image_pull, provider)
    image_s = float(c["image"]["size_gb"]) / pull_gbps if pull_gbps > 0 else 0.0
    read_s = weight_read_seconds(weights_gib, table[storage], strat) if storage in table else 0.0
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
    hf = table["hf-download"]
    download = weight_read_seconds(weights_gib, hf, strat) if storage != "hf-download" else 0.0
    if storage in table:
        gbps: Any = table[storage]["gbps"].get(strat, table[storage]["gbps"]["lazy"])
        read_src = table[storage]["source"]
    else:
        gbps, read_src = UNKNOWN, f"the {provider} provider's catalogue names no storage; the read is counted as 0"
    notes = [
        Assumption(f"{provider} provisioning (s)", provision_value, provision_src),
        Assumption(f"image pull: {c['image']['size_gb']} GB at {pull_value} GB/s",
                   round(image_s, 1) if pull_value != UNKNOWN else UNKNOWN, f"{c['image']['size_source']}; {pull_src}"),
        Assumption(f"weight read bandwidth, {storage} with load strategy {strat} (GB/s)", gbps, read_src),
        Assumption("engine initialisation (s)", init_s, c["engine_init_s"]["source"]),
        Assumption("CUDA-graph compile and capture (s)", graphs,
                   "none with --enforce-eager" if enforce_eager else c["cuda_graphs_s"]["source"]),
        Assumption("first request warm-up (s)", warm, c["first_request_warmup_s"]["source"]),
        Assumption("first deploy: the weights are downloaded from Hugging Face first (s)", round(download),
                   hf["source"]),
    ]
    if facts.snapshot_restore is not None:
        return _restored(ColdStart(provider, storage, strat, enforce_eager, weights_gib, terms, download, notes),
                         facts.snapshot_restore, float(c["first_request_warmup_s"]["graphs"]))
    return ColdStart(provider, storage, strat, enforce_eager, weights_gib, terms, download, notes)


def _restored(full: ColdStart, restore: Figure, warm_s: float) -> ColdStart:
    """A start from a memory snapshot: provisioning and the image as before, then the restore
    and the engine's wake-up in place of the weight read, initialisation and compilation. The
    first start after a deploy takes the full path (it makes the snapshot)."""
    terms = {"provision_s": full.terms["provision_s"], "image_pull_s": full.terms["image_pull_s"],
             "snapshot_restore_s": restore.value, "first_request_warmup_s": warm_s}
    restored = sum(terms.values())
    notes = [*full.assumptions,
             Assumption("snapshot restore and engine wake-up (s), in place of the weight read, initialisation and "
                        "CUDA graphs", restore.value, restore.source),
             Assumption("the first start after each deploy takes the full path and makes the snapshot (s)",
                        round(full.total_s), "glmserve cold-start model")]
    return ColdStart(full.provider, full.storage, full.load_strategy, full.enforce_eager, full.weights_gib, terms,
                     full.first_deploy_download_s + full.total_s - restored, notes)
