"""The glmserve side of the engine check: long-lived checker processes in the engine venv,
spoken to in JSON lines, and the verdicts they return. Standard library only."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import subprocess
import time
from typing import Iterable

from infra.engine.check.venv import ENGINES, REPO, available

DEFAULT_TIMEOUT = float(os.environ.get("GLMSERVE_ENGINE_CHECK_TIMEOUT", "600"))
# The checker runs in the engine venv, where glmserve is not installed: isolated (-I: no
# environment, no user site), it finds this repository's standard-library-only checker
# modules through the one path given on its command line.
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from infra.engine.check.command import main; sys.exit(main(sys.argv[2:]))")


@dataclasses.dataclass(frozen=True)
class EngineError:
    """One refusal, in the engine's own words."""

    stage: str            # parse | validate | engine-args | config | version | network | head | internal
    message: str
    flags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the real parser said about one argv."""

    engine: str
    version: str | None                # the engine version that checked it
    argv: tuple[str, ...]
    errors: tuple[EngineError, ...] = ()
    values: dict = dataclasses.field(default_factory=dict)   # parsed values (EngineArgs / ServerArgs)
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def __bool__(self) -> bool:
        return self.ok

    @property
    def message(self) -> str:
        return "; ".join(e.message for e in self.errors)

    @classmethod
    def from_json(cls, d: dict) -> "Verdict":
        return cls(
            engine=d.get("engine", "?"), version=d.get("version"), argv=tuple(d.get("argv") or ()),
            errors=tuple(EngineError(e.get("stage", "?"), e.get("message", ""), tuple(e.get("flags") or ()))
                         for e in d.get("errors") or ()),
            values=d.get("values") or {}, warnings=tuple(d.get("warnings") or ()),
            seconds=float(d.get("seconds") or 0.0),
        )


class EngineCheckError(RuntimeError):
    """The checker process itself failed (not: the engine refused an argv)."""


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update({
        # vLLM picks its CPU platform instead of probing for CUDA.
        "VLLM_TARGET_DEVICE": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
        # With HF_HUB_OFFLINE=1, EngineArgs.__post_init__ resolves the model id to a cached
        # snapshot (and fails without one). The checker makes no hub call either way; any
        # attempt to reach the network is refused inside the checker (see _guard_network).
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    })
    return env


class _Process:
    """One long-lived checker process for one engine. Its stderr (engine logs) goes to a
    temporary file, so a chatty engine can never block on a full pipe."""

    def __init__(self, python: str, engine: str, timeout: float):
        import tempfile

        self.engine = engine
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [python, "-I", "-c", _BOOT, str(REPO), "serve", "--engine", engine],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=_child_env(), cwd=str(REPO), bufsize=0,
        )
        self._buf = b""

    def request(self, payload: dict, timeout: float | None = None) -> dict:
        if self.proc.poll() is not None:
            raise EngineCheckError(f"the {self.engine} checker exited ({self.proc.returncode}): {self.tail()}")
        try:
            self.proc.stdin.write((json.dumps(payload) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise EngineCheckError(f"the {self.engine} checker is gone: {self.tail()}") from None
        line = self._readline(timeout or self.timeout)
        try:
            return json.loads(line)
        except ValueError:
            raise EngineCheckError(f"the {self.engine} checker answered garbage: {line[:200]!r}") from None

    def _readline(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        out = self.proc.stdout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise EngineCheckError(f"the {self.engine} checker did not answer within {timeout:.0f} s: {self.tail()}")
            ready, _, _ = select.select([out], [], [], min(left, 1.0))
            if not ready:
                if self.proc.poll() is not None:
                    raise EngineCheckError(
                        f"the {self.engine} checker exited ({self.proc.returncode}): {self.tail()}")
                continue
            chunk = os.read(out.fileno(), 1 << 20)
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=10)
                raise EngineCheckError(f"the {self.engine} checker exited ({self.proc.returncode}): {self.tail()}")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def tail(self, lines: int = 8) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 20000))
            text = self._stderr.read().decode(errors="replace")
        except (OSError, ValueError):
            return "(no output)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self._stderr):
            with contextlib.suppress(Exception):
                f.close()


class Checker:
    """Long-lived checker processes (one per engine, started on first use) answering many
    requests, so the ~5-10 s import of an engine is paid once.

        with Checker() as c:
            verdict = c.check(argv, "vllm", "0.33.0")
    """

    def __init__(self, python: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        if python is None:
            a = available()
            if not a:
                raise EngineCheckError(a.reason)
            python = a.python
        self.python = python
        self.timeout = timeout
        self._procs: dict[str, _Process] = {}

    def _proc(self, engine: str) -> _Process:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
        p = self._procs.get(engine)
        if p is None or p.proc.poll() is not None:
            p = self._procs[engine] = _Process(self.python, engine, self.timeout)
        return p

    def warmup(self, *engines: str) -> dict:
        """Import the engines now (otherwise the first check pays it)."""
        return {e: self._proc(e).request({"op": "warmup"}) for e in (engines or ENGINES)}

    def check(self, argv: Iterable[str], engine: str, version: str | None = None) -> Verdict:
        argv = [str(a) for a in argv]
        d = self._proc(engine).request({"op": "check", "engine": engine, "version": version, "argv": argv})
        if d.get("op_error"):
            raise EngineCheckError(d["op_error"])
        return Verdict.from_json(d)

    def flags(self, engine: str) -> dict[str, dict]:
        """Every option string of the engine's real parser -> {dest, takes_value, choices}."""
        d = self._proc(engine).request({"op": "flags", "engine": engine})
        if d.get("op_error"):
            raise EngineCheckError(d["op_error"])
        return d["flags"]

    def versions(self, engine: str) -> dict[str, str]:
        return self._proc(engine).request({"op": "versions"})["versions"]

    def close(self) -> None:
        for p in self._procs.values():
            p.close()
        self._procs.clear()

    def __enter__(self) -> "Checker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()


def check(argv: Iterable[str], engine: str, version: str | None = None, *,
          checker: Checker | None = None) -> Verdict:
    """Check one argv with the real parser of ``engine`` (one-shot unless ``checker`` given).

    ``version`` is the engine version the spec pins; the checker refuses when its
    installed engine differs. Raises EngineCheckError when the check cannot run.
    """
    if checker is not None:
        return checker.check(argv, engine, version)
    with Checker() as c:
        return c.check(argv, engine, version)

