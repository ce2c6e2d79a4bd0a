"""One tokenizer for engine command lines: argv -> positionals and flags with their values.

Every reader of an engine argv (the renderer's checks, the real-parser check's error keying,
the GitOps diff, the planner's capacity-relevant extra args) splits it here, so they agree on
what belongs to which flag. What a flag takes is told by the caller (the engine's flag table,
``infra/engine/flags.py``); this module knows no engine.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

# A negative number is a value, not a flag ("--seed -1").
_NUMBER = re.compile(r"-\d+(\.\d+)?")


@dataclass(frozen=True)
class Token:
    """One element of a command: a flag with its value, or a positional argument."""

    flag: Optional[str]     # "--name" as written before any "="; None for a positional
    value: Optional[str]    # the flag's value (inline or the next item), the positional itself
    index: int              # where the flag (or positional) sits in argv
    inline: bool = False    # written as --name=value

    @property
    def positional(self) -> bool:
        return self.flag is None


def is_flag(item: str) -> bool:
    return item.startswith("-") and len(item) > 1 and not _NUMBER.fullmatch(item)


def tokenize(argv: Iterable[str], takes_value: Callable[[str], Optional[bool]] = lambda _f: None) -> list[Token]:
    """Split ``argv`` into tokens. ``takes_value(flag)`` says whether a flag takes a value
    (True), never does (False) or is unknown (None: it takes the next item unless that is a
    flag). A flag that takes a value but is followed by another flag gets value None."""
    items = [str(a) for a in argv]
    out: list[Token] = []
    i = 0
    while i < len(items):
        item = items[i]
        if not is_flag(item):
            out.append(Token(None, item, i))
            i += 1
            continue
        name, eq, val = item.partition("=")
        if eq:
            out.append(Token(name, val, i, inline=True))
            i += 1
            continue
        wants = takes_value(name)
        nxt = items[i + 1] if i + 1 < len(items) else None
        if wants is False or nxt is None or is_flag(nxt):
            out.append(Token(name, None, i))
            i += 1
        else:
            out.append(Token(name, nxt, i))
            i += 2
    return out


def head(tokens: list[Token]) -> list[str]:
    """The positionals before the first flag (e.g. ["vllm", "serve", "org/model"])."""
    out = []
    for t in tokens:
        if not t.positional:
            break
        out.append(t.value or "")
    return out
