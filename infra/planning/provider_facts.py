"""What the planner asks a provider: its billing, its GPU prices, how long it takes to get the
GPUs and the image, and where it reads the weights from.

A provider answers with a :class:`ProviderFacts` (``Provider.planning_facts`` in
providers/base.py), read from the ``catalog.yaml`` of its own package by
:func:`facts_from_catalog`. The planner never names a provider: a figure a provider does not
give is ``None``, which the plan reports as "unknown" with a warning.

The catalogue's planning keys::

    billing: serverless | dedicated | none
    free: true                                    # deploys nothing: no price is missing
    billing_note: {what: ..., source: URL}        # how it bills, said in the plan's assumptions
    price_unit: gpu_hour | gpu_second
    gpus: {H200: {id: ..., price: ..., source: URL, date: ...}, ...}
    planning:
      provision_s: {value: ..., source: ...}      # getting the GPUs, up to the image starting
      image_pull_gbps: {value: ..., source: ...}
      storage: local-disk                         # where the weights are read from, or chosen
                                                  # by an option: {option: volume, values: {...}}
      storages: {name: {description, gbps: {lazy, eager, prefetch, torchao}, source}}
      snapshot_restore_s: {option: ..., value: ..., source: ...}   # when that option is on
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

BILLINGS = ("serverless", "dedicated", "none")


@dataclass(frozen=True)
class Figure:
    """A number a provider publishes (or glmserve estimates for it), with its source."""

    value: float
    source: str


@dataclass(frozen=True)
class Note:
    """A statement the plan lists among its assumptions, with its source."""

    what: str
    source: str


@dataclass(frozen=True)
class GpuPrice:
    per_gpu_hour: float
    source: str
    date: str


@dataclass(frozen=True)
class Storage:
    """Where weights are read from at start, and how fast per load strategy (GB/s)."""

    name: str
    description: str
    gbps: dict[str, float]
    source: str


@dataclass(frozen=True)
class StorageChoice:
    """A setting of the provider's option block and the storage it makes the node read from."""

    setting: str          # e.g. "runpod.volume persistent"
    storage: str


@dataclass(frozen=True)
class ProviderFacts:
    provider: str
    billing: str                                   # one of BILLINGS
    billing_note: Optional[Note] = None            # what the billing means, and where it is said
    prices: dict[str, GpuPrice] = field(default_factory=dict)
    provision: Optional[Figure] = None             # seconds
    image_pull: Optional[Figure] = None            # GB/s
    storage: Optional[str] = None                  # with the node's options
    storages: dict[str, Storage] = field(default_factory=dict)
    choices: tuple[StorageChoice, ...] = ()        # every storage setting of the option block
    # Seconds to restore a memory snapshot of the started engine, when the node's options ask
    # for one (catalogue planning.snapshot_restore_s: {option, value, source}); None: no snapshot.
    snapshot_restore: Optional[Figure] = None
    # Deploys nothing, so there is nothing to price (a missing price is then no gap).
    free: bool = False

    @property
    def bills(self) -> bool:
        return self.billing in ("serverless", "dedicated")

    def unknown(self) -> list[str]:
        """The catalogue keys of the figures this provider does not give."""
        missing = [("planning.provision_s", self.provision), ("planning.image_pull_gbps", self.image_pull),
                   ("planning.storage", self.storage)]
        return [key for key, v in missing if v is None]


def _figure(row: Any, where: str) -> Optional[Figure]:
    if row is None:
        return None
    if not isinstance(row, dict) or "value" not in row or not row.get("source"):
        raise ValueError(f"{where}: needs a value and its source")
    return Figure(float(row["value"]), str(row["source"]))


def _snapshot(row: Any, option: Callable[[str], Any], provider: str) -> Optional[Figure]:
    """The restore figure when the option that turns snapshots on is set for this node."""
    if row is None or not option(str(row.get("option", ""))):
        return None
    return _figure(row, f"{provider} catalog.yaml planning.snapshot_restore_s")


def facts_from_catalog(provider: str, catalog: dict[str, Any],
                       option: Callable[[str], Any], option_key: Callable[[str], str]) -> ProviderFacts:
    """The planning facts in a provider's catalogue. ``option(name)`` gives the value of an
    option of the node's ``glmserve:<provider>`` block, ``option_key(name)`` how users spell it."""
    billing = str(catalog.get("billing", "none"))
    if billing not in BILLINGS:
        raise ValueError(f"{provider} catalog.yaml billing: {billing!r}; allowed: {', '.join(BILLINGS)}")
    note = catalog.get("billing_note")
    per_second = catalog.get("price_unit", "gpu_hour") == "gpu_second"
    prices = {}
    for gpu, row in (catalog.get("gpus") or {}).items():
        if row and row.get("price") is not None:
            p = float(row["price"])
            prices[gpu] = GpuPrice(p * 3600 if per_second else p, str(row.get("source", "")), str(row.get("date", "")))
    plan = catalog.get("planning") or {}
    storages = {name: Storage(name, str(row.get("description", "")), {k: float(v) for k, v in row["gbps"].items()},
                              str(row["source"]))
                for name, row in (plan.get("storages") or {}).items()}
    chosen = plan.get("storage")
    choices: tuple[StorageChoice, ...] = ()
    if isinstance(chosen, dict):
        name, values = str(chosen["option"]), dict(chosen["values"])
        choices = tuple(StorageChoice(f"{provider}.{option_key(name)} {v}", str(s)) for v, s in values.items())
        chosen = values.get(option(name))
    return ProviderFacts(
        provider=provider, billing=billing,
        billing_note=Note(str(note["what"]), str(note["source"])) if note else None,
        prices=prices,
        provision=_figure(plan.get("provision_s"), f"{provider} catalog.yaml planning.provision_s"),
        image_pull=_figure(plan.get("image_pull_gbps"), f"{provider} catalog.yaml planning.image_pull_gbps"),
        storage=str(chosen) if chosen else None, storages=storages, choices=choices,
        snapshot_restore=_snapshot(plan.get("snapshot_restore_s"), option, provider),
        free=bool(catalog.get("free", False)))
