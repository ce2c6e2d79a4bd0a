"""Model profiles: the architecture facts of a checkpoint, as data.

A profile is a YAML file under ``infra/data/models/`` whose ``config`` block uses the
field names of a Hugging Face ``config.json``, so a user's own ``config.json`` can stand
in for it. No config can be downloaded on these machines, so the shipped profiles carry
their sources.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROFILES = Path(__file__).resolve().parents[1] / "data" / "models"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_file(path: Path) -> Any:
    """A YAML profile file given by the user (C loader when present: plan must stay fast)."""
    return yaml.load(Path(path).read_text(), Loader=_LOADER)


def available() -> list[str]:
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


@lru_cache(maxsize=None)
def load_profile(name: str) -> dict[str, Any]:
    path = PROFILES / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"unknown model profile {name!r}; available: {', '.join(available())}")
    return load_yaml_file(path)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A Hugging Face config.json given by the user, wrapped as a profile."""
    cfg = json.loads(Path(path).read_text())
    return {"name": Path(path).stem, "config": cfg, "sources": [str(path)]}


def attention_heads(profile: dict[str, Any]) -> int:
    cfg = profile["config"]
    return int(cfg.get("num_attention_heads") or cfg["n_head"])
