"""The engine's refusals as glmserve Problems: each refused flag keyed to the spec key that
rendered it (from the engine's flag table) or to engine.extraArgs, next to the engine's own
message; and the checks ``glmserve validate --engine-check`` runs on a spec or a stack."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

from infra.engine.check.client import Checker, EngineCheckError, Verdict, check
from infra.engine.check.venv import available

def _extra_start(argv: list[str], n_extra: int) -> int:
    return len(argv) - n_extra


def spec_key_for_flag(engine: str, flag: str, argv: list[str], n_extra: int = 0) -> str | None:
    """The spec key that put ``flag`` into ``argv`` (engine.extraArgs for the last
    ``n_extra`` arguments), or None when the flag is not in argv at all."""
    from infra.engine.flags import flag_table

    table = flag_table(engine)
    if flag in table.positional_names:
        return table.positional_spec
    want = table.canonical(flag)
    hits = [t for t in table.tokenize(argv) if t.flag and table.canonical(t.flag) == want]
    if not hits:
        return None
    if any(t.index >= _extra_start(argv, n_extra) for t in hits):
        return "engine.extraArgs"
    # A rendered flag the table maps to no spec key: the rendered command as a whole.
    return table.spec_key(want) or "engine"


def _flag_text(engine: str, argv: list[str], flag: str, n_extra: int) -> str | None:
    """What the user wrote for ``flag``: its value when the spec rendered it, the flag with
    its value when it came from engine.extraArgs."""
    from infra.engine.flags import flag_table

    table = flag_table(engine)
    want = table.canonical(flag)
    for t in table.tokenize(argv):
        if t.flag and table.canonical(t.flag) == want:
            if t.index < _extra_start(argv, n_extra):
                # A rendered value that looks like a flag ("-glm") is what the engine refused.
                nxt = argv[t.index + 1] if t.index + 1 < len(argv) else None
                return t.value if t.value is not None or table.takes_value(t.flag) is False else nxt
            return t.flag if t.value is None else f"{t.flag} {t.value}"
    return None


def problems_for(verdict: Verdict, *, n_extra: int = 0,
                 file_of: Callable[[str], str | None] | None = None) -> list:
    """Turn an engine's refusals into glmserve Problems keyed by the spec key that
    produced the offending flag. ``n_extra``: how many trailing argv items came from
    engine.extraArgs."""
    from infra.common.errors import Problem

    argv = list(verdict.argv)
    name = {"vllm": "vLLM", "sglang": "SGLang"}.get(verdict.engine, verdict.engine)
    who = f"{name} {verdict.version}" if verdict.version else name
    out = []
    for err in verdict.errors:
        key, value = None, None
        for f in err.flags:
            key = spec_key_for_flag(verdict.engine, f, argv, n_extra)
            if key:
                value = _flag_text(verdict.engine, argv, f, n_extra)
                break
        if key is None:
            key = {"version": "engine.version", "head": "engine.name"}.get(err.stage, "engine")
        if err.stage == "network":
            key = "engine"
        out.append(Problem(
            key=key, message=f"{who} refuses it: {err.message}",
            file=file_of(key) if file_of else None, value=value,
        ))
    return out


@dataclasses.dataclass(frozen=True)
class SpecCheck:
    """The engine's verdict on a spec's rendered command, as glmserve Problems."""

    engine: str
    version: str | None
    problems: list
    verdict: Verdict | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok


def check_spec(spec, command=None, *, engine: str | None = None, checker: Checker | None = None,
               file_of: Callable[[str], str | None] | None = None) -> SpecCheck:
    """Check the command rendered for ``spec`` with the real parser of its engine.

    ``command``: the EngineCommand already rendered (``render(spec)``), or None to render
    it here (for ``engine``, default spec.engine.name). Returns a SpecCheck whose
    ``problems`` name the spec key that produced each refused flag, next to the engine's
    own message. Raises GlmserveError when the check cannot run (the engine venv is not
    installed, or the checker failed): it never pretends to have checked.
    """
    from infra.common.errors import GlmserveError, Problem

    if command is None:
        from infra.engine.render import render

        command = render(spec, engine)
    engine = command.engine
    version = spec.engine.version if engine == spec.engine.name else None
    not_run = "the engine check did not run"
    if checker is None:
        a = available(engine)
        if not a:
            raise GlmserveError([Problem(key="--engine-check", message=f"not checked: {a.reason}")], headline=not_run)
    try:
        verdict = check(command.argv, engine, version, checker=checker)
    except EngineCheckError as e:
        raise GlmserveError([Problem(key="--engine-check", message=f"not checked: {e}")], headline=not_run) from None
    problems = problems_for(verdict, n_extra=len(spec.engine.extra_args), file_of=file_of)
    return SpecCheck(engine=engine, version=verdict.version, problems=problems, verdict=verdict)


def engine_check_stack(stack: str, engine: str | None = None, *, checker: Checker | None = None,
                       root: Path | None = None) -> str:
    """What ``glmserve validate --stack S --engine-check`` runs: load the stack, render it,
    check the argv with the real parser. Returns a one-line summary when the engine accepts
    it; raises GlmserveError naming the spec key (and the file that set it) next to the
    engine's own message otherwise, or when the check could not run."""
    from infra.common.errors import GlmserveError
    from infra.spec.load import origins_for_stack, spec_for_stack

    spec = spec_for_stack(stack, root)
    origins = origins_for_stack(stack, root)
    t0 = time.monotonic()
    result = check_spec(spec, engine=engine, checker=checker, file_of=origins.file_of)
    if not result.ok:
        raise GlmserveError(result.problems,
                            headline=f"{result.engine} {result.version} refuses the command rendered for stack {stack}")
    return (f"{result.engine} {result.version}'s own parser accepts the command rendered for stack {stack} "
            f"({time.monotonic() - t0:.1f} s)")

