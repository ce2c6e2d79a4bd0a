"""The flag table of each engine (``templates/engines/<engine>.flags.yaml``), loaded once.

One row per flag: its kind (switch, value, count, json), the version that introduced it and,
where known, the one that removed it, the spec key that renders it, the flag it negates and
its aliases. The renderer, the real-parser check (which spec key to blame) and the GitOps
diff (which items are a flag's value) all read it here.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Optional

import yaml

from infra.common.argv import Token, tokenize
from infra.common.versions import version_tuple
from infra.engine.templates import TEMPLATES

ENGINE_DIR = TEMPLATES / "engines"
ENGINES = ("vllm", "sglang")
KINDS = ("switch", "value", "count", "json")


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    kind: str
    since: str
    removed: Optional[str] = None
    spec: Optional[str] = None
    negates: Optional[str] = None
    aliases: tuple[str, ...] = ()

    @property
    def takes_value(self) -> bool:
        return self.kind != "switch"

    def available_in(self, version: str) -> bool:
        v = version_tuple(version)
        if v < version_tuple(self.since):
            return False
        return self.removed is None or v < version_tuple(self.removed)


@dataclasses.dataclass(frozen=True)
class FlagTable:
    engine: str
    flags: dict[str, Flag]
    image_entrypoint: tuple[str, ...]
    api_key_env: str
    api_key_file_flag: Optional[str]    # the flag naming a config file that holds the key
    positional_spec: Optional[str]      # the spec key of the engine's positional (vLLM's model)
    positional_names: tuple[str, ...]   # how the engine names that positional in its messages
    aliases: dict[str, str]             # alias -> the flag's name in the table

    def canonical(self, name: str) -> str:
        """A flag as the table spells it: "--tp" -> "--tp-size", "--max_num_seqs" -> "--max-num-seqs"."""
        name = name.split("=", 1)[0]
        if name.startswith("--"):
            name = "--" + name[2:].replace("_", "-")
        return self.aliases.get(name, name)

    def lookup(self, name: str) -> Optional[Flag]:
        return self.flags.get(self.canonical(name))

    def takes_value(self, name: str) -> Optional[bool]:
        f = self.lookup(name)
        return None if f is None else f.takes_value

    def tokenize(self, argv) -> list[Token]:
        return tokenize(argv, self.takes_value)

    def spec_key(self, name: str) -> Optional[str]:
        """The spec key that renders ``name`` (None for flags only extraArgs can pass)."""
        if name in self.positional_names:
            return self.positional_spec
        f = self.lookup(name)
        return f.spec if f else None

    def partner(self, name: str) -> Optional[str]:
        """The other half of a negatable pair (--enable-x <-> --no-enable-x), if the table has it."""
        f = self.lookup(name)
        if f is None:
            return None
        if f.negates:
            return f.negates
        return next((g.name for g in self.flags.values() if g.negates == f.name), None)


def _flag(name: str, row: dict) -> Flag:
    unknown = set(row) - {"kind", "since", "removed", "spec", "negates", "aliases"}
    if unknown or row.get("kind") not in KINDS or "since" not in row:
        raise ValueError(f"flag table row {name}: needs kind ({', '.join(KINDS)}) and since; "
                         f"unknown keys {sorted(unknown)}")
    return Flag(name=name, kind=row["kind"], since=str(row["since"]),
                removed=str(row["removed"]) if row.get("removed") else None, spec=row.get("spec"),
                negates=row.get("negates"), aliases=tuple(row.get("aliases") or ()))


@lru_cache(maxsize=None)
def flag_table(engine: str) -> FlagTable:
    raw = yaml.safe_load((ENGINE_DIR / f"{engine}.flags.yaml").read_text())
    positional = raw.get("positional") or {}
    flags = {name: _flag(name, row) for name, row in raw["flags"].items()}
    return FlagTable(
        engine=engine, flags=flags,
        image_entrypoint=tuple(raw["image_entrypoint"]),
        api_key_env=raw["api_key"]["env"], api_key_file_flag=raw["api_key"].get("config_file_flag"),
        positional_spec=positional.get("spec"),
        positional_names=(positional["name"], *positional.get("aliases", ())) if positional else (),
        aliases={a: f.name for f in flags.values() for a in f.aliases},
    )
