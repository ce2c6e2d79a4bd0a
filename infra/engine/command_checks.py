"""What glmserve checks in a rendered engine command before any engine sees it, against the
engine's flag table (``infra/engine/flags.py``): every flag exists in the pinned version, and
engine.extraArgs neither repeats a flag the spec renders already nor carries a stray value."""
from __future__ import annotations

import difflib

from infra.common.argv import Token
from infra.common.errors import GlmserveError, Problem
from infra.engine.flags import FlagTable

EXTRA = "engine.extraArgs"


def check_command(table: FlagTable, version: str | None, argv: list[str], n_extra: int) -> None:
    """Raise GlmserveError naming the spec key when ``argv`` (whose last ``n_extra`` items
    come from engine.extraArgs) cannot be handed to the engine. ``version`` None: the
    engine version is not known (render --engine for the other engine), so only existence
    is checked."""
    tokens = table.tokenize(argv)
    start = len(argv) - n_extra
    problems = _unknown_or_too_new(table, version, tokens, start)
    if problems:
        raise GlmserveError(problems, headline="the engine command cannot be rendered")
    _check_repeats(table, tokens, start)


def _unknown_or_too_new(table: FlagTable, version: str | None, tokens: list[Token], start: int) -> list[Problem]:
    problems = []
    engine = table.engine
    for t in tokens:
        if t.positional or not t.flag.startswith("--"):
            continue
        key = EXTRA if t.index >= start else "engine.version"
        flag = table.lookup(t.flag)
        if flag is None:
            near = difflib.get_close_matches(t.flag, list(table.flags), n=1)
            problems.append(Problem(
                key=key, value=t.flag,
                message=f"{engine} has no flag {t.flag}" + (f" (did you mean {near[0]}?)" if near else ""),
                allowed=f"flags listed in templates/engines/{engine}.flags.yaml"))
        elif version is not None and not flag.available_in(version):
            span = f">= {flag.since}" + (f" and < {flag.removed}" if flag.removed else "")
            problems.append(Problem(
                key="engine.version", value=version,
                message=f"{flag.name} needs {engine} {span}",
                allowed=f"{engine} {span}, or remove the setting that renders {flag.name}"))
    return problems


def _check_repeats(table: FlagTable, tokens: list[Token], start: int) -> None:
    rendered = {table.canonical(t.flag) for t in tokens if not t.positional and t.index < start}
    for t in tokens:
        if t.positional or t.index < start:
            continue
        name = table.canonical(t.flag)
        if name in rendered:
            raise GlmserveError([Problem(
                key=EXTRA, value=t.flag,
                message=f"{t.flag} is rendered from the spec already; set the spec field instead of passing it again")])
