"""What glmserve checks in a rendered engine command before any engine sees it, against the
engine's flag table (``infra/engine/flags.py``): every flag exists in the pinned version and
gets what its kind asks for (a value, no value, a whole number >= 1, JSON); engine.extraArgs
neither repeats nor contradicts what the spec renders; the two halves of a flag pair
(--enable-x / --no-enable-x) never meet in one command."""
from __future__ import annotations

import difflib
import json
from typing import Any, Callable, Optional

from infra.common.argv import Token
from infra.common.errors import GlmserveError, Problem
from infra.engine.flags import Flag, FlagTable

EXTRA = "engine.extraArgs"


def check_command(table: FlagTable, version: Optional[str], argv: list[str], n_extra: int,
                  spec_value: Callable[[str], Any] = lambda _key: None) -> None:
    """Raise GlmserveError naming the spec key when ``argv`` (whose last ``n_extra`` items
    come from engine.extraArgs) cannot be handed to the engine. ``version`` None: the engine
    version is not known (render --engine for the other engine), so only existence is
    checked. ``spec_value(key)`` reads the spec, to tell when an extra flag contradicts it."""
    start = len(argv) - n_extra
    problems = _invalid_text(argv, start)
    if problems:
        raise GlmserveError(problems, headline="the engine command cannot be rendered")
    tokens = table.tokenize(argv)
    problems = _unknown_or_too_new(table, version, tokens, start)
    if not problems:
        problems = _values(table, tokens, start) + _contradictions(table, tokens, start, spec_value)
    if problems:
        raise GlmserveError(problems, headline="the engine command cannot be rendered")


def _key(t: Token, start: int, flag: Optional[Flag]) -> str:
    if t.index >= start:
        return EXTRA
    return (flag.spec if flag else None) or "engine"


def _invalid_text(argv: list[str], start: int) -> list[Problem]:
    # A lone UTF-16 surrogate (from a "\ud83d" escape in a YAML file) cannot be encoded:
    # Pulumi's state, a pod spec and a process's argv would all refuse it later.
    out = []
    for i, a in enumerate(argv):
        try:
            a.encode("utf-8")
        except UnicodeEncodeError:
            out.append(Problem(key=EXTRA if i >= start else "engine", value=a.encode("utf-8", "backslashreplace").decode(),
                               message="contains a lone surrogate (half of a character), which cannot be encoded",
                               allowed="text whose escapes (\\uXXXX) form whole characters"))
    return out


def _unknown_or_too_new(table: FlagTable, version: Optional[str], tokens: list[Token], start: int) -> list[Problem]:
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


def _values(table: FlagTable, tokens: list[Token], start: int) -> list[Problem]:
    """Each flag gets what its kind asks for; no stray value in engine.extraArgs."""
    problems = []
    previous: Optional[Token] = None
    for t in tokens:
        if t.positional:
            if t.index >= start:
                after = f"{previous.flag} takes no value" if previous and previous.flag else "it follows no flag"
                problems.append(Problem(key=EXTRA, value=t.value, message=f"is not a flag and {after}",
                                        allowed="--flag, or --flag value for a flag that takes one"))
            previous = t
            continue
        previous = t
        flag = table.lookup(t.flag)
        if flag is None:  # the launcher's own head ("python3 -m sglang.launch_server")
            continue
        key = _key(t, start, flag)
        if not flag.takes_value:
            if t.inline:
                problems.append(Problem(key=key, value=f"{t.flag}={t.value}", message=f"{t.flag} takes no value",
                                        allowed=t.flag))
            continue
        if t.value is None:
            problems.append(Problem(key=key, value=t.flag, message=f"{t.flag} needs a value; a flag follows it instead",
                                    allowed=f"{t.flag} <value>"))
        elif flag.kind == "count" and not (t.value.isascii() and t.value.isdigit() and int(t.value) >= 1):
            problems.append(Problem(key=key, value=f"{t.flag} {t.value}", message=f"{t.flag} takes a count",
                                    allowed="a whole number >= 1"))
        elif flag.kind == "json" and not _is_json(t.value):
            problems.append(Problem(key=key, value=f"{t.flag} {t.value}", message=f"{t.flag} takes JSON",
                                    allowed="a JSON value, e.g. {\"key\": 1}"))
    return problems


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _contradictions(table: FlagTable, tokens: list[Token], start: int,
                    spec_value: Callable[[str], Any]) -> list[Problem]:
    flags = [(t, f) for t in tokens if not t.positional and (f := table.lookup(t.flag)) is not None]
    rendered = {f.name for t, f in flags if t.index < start}
    rendered_keys = {f.spec: f.name for t, f in flags if t.index < start and f.spec}
    problems, seen_extra = [], set()
    for t, f in flags:
        partner = table.partner(f.name)
        if t.index < start:
            if partner in rendered:
                problems.append(Problem(key=f.spec or "engine", value=f.name,
                                        message=f"{f.name} and {partner} are both rendered"))
            continue
        if f.name in rendered:
            problems.append(Problem(key=EXTRA, value=t.flag, message=(
                f"{t.flag} is rendered from the spec already; set the spec field instead of passing it again")))
        elif partner and partner in rendered:
            problems.append(Problem(key=EXTRA, value=t.flag, message=(
                f"{t.flag} contradicts {partner}, which the spec renders; set {f.spec or 'the spec field'} instead"),
                allowed=f"no {t.flag}"))
        elif f.spec and f.spec in rendered_keys:
            problems.append(Problem(key=EXTRA, value=t.flag, message=(
                f"{t.flag} contradicts {f.spec}, which renders {rendered_keys[f.spec]}; set {f.spec} instead")))
        elif f.spec and not f.takes_value and isinstance(spec_value(f.spec), bool):
            problems.append(Problem(key=EXTRA, value=t.flag, message=(
                f"{t.flag} overrides {f.spec} ({str(spec_value(f.spec)).lower()}); set {f.spec} instead")))
        elif f.name in seen_extra or (partner and partner in seen_extra):
            problems.append(Problem(key=EXTRA, value=t.flag, message=(
                f"{t.flag} is given twice" if f.name in seen_extra else f"{t.flag} contradicts {partner}, given before it"),
                allowed="each flag once"))
        seen_extra.add(f.name)
    return problems
