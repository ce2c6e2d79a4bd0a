"""Engine fidelity: run a rendered engine command through the real engine's parser.

glmserve's own checks (the spec model, the flag tables in ``templates/engines``) know
what glmserve expects of vLLM and SGLang. This module asks the engines themselves: the
rendered argv goes through vLLM's ``vllm serve`` parser (a root FlexibleArgumentParser
with a ``serve`` sub-parser filled by ``make_arg_parser``, then
``validate_parsed_serve_args`` and ``AsyncEngineArgs.from_cli_args``) or SGLang's
(``ServerArgs.add_cli_args``, then ``prepare_server_args``). No engine, model config or
GPU is ever created, and nothing reaches the network.

The engines are heavy (torch alone is ~2.5 GB installed), so they live in a separate,
cached virtualenv made by ``scripts/install-engine-check`` (see ``docs/engine-check.md``)
and run in a subprocess of that venv's interpreter. The two sides speak JSON lines:

    request   {"op": "check", "engine": "vllm", "version": "0.33.0", "argv": [...]}
    response  {"ok": false, "errors": [{"stage": "parse", "message": "...",
               "flags": ["--kv-cache-dtype"]}], "values": {...}, "warnings": [...]}

This file is both sides. Imported as ``infra.engine_check`` (the main venv) it offers
``available()``, ``check()``, ``Checker``, ``check_spec()``, ``problems_for()``,
and ``install()``. Run by the engine venv's interpreter
(``python -I infra/engine_check.py serve``) it is the checker process: ``main()``.
Only the standard library is imported at module level, so both sides can load it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import io
import json
import logging
import os
import re
import select
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

ENGINES = ("vllm", "sglang")
REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS_DIR = REPO / "requirements"
# Installed together, in this order, into one venv: the pins in base satisfy both engines.
REQUIREMENT_FILES = ("engine-check-base.txt", "engine-check-vllm.txt", "engine-check-sglang.txt")
# Bump when the layout of the cached venv or the install steps change.
INSTALL_SCHEMA = "1"
INSTALL_SCRIPT = "scripts/install-engine-check"
MARKER = "install.json"

# How each engine's command starts (the rest is what its parser sees).
HEADS = {
    "vllm": (["vllm", "serve"],),
    "sglang": (["python3", "-m", "sglang.launch_server"], ["python", "-m", "sglang.launch_server"],
               ["sglang", "serve"]),
}

DEFAULT_TIMEOUT = float(os.environ.get("GLMSERVE_ENGINE_CHECK_TIMEOUT", "600"))


# =========================================================================== client side

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


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether the engine check can run here; falsy with the reason and how to fix it."""

    ok: bool
    reason: str
    python: str | None = None
    home: str | None = None
    versions: dict = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok


class EngineCheckError(RuntimeError):
    """The checker process itself failed (not: the engine refused an argv)."""


def cache_root() -> Path:
    env = os.environ.get("GLMSERVE_ENGINE_CHECK_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "glmserve" / "engine-check"


def requirement_paths() -> list[Path]:
    return [REQUIREMENTS_DIR / n for n in REQUIREMENT_FILES]


def requirements_hash() -> str:
    """Names the cached venv: the requirement files, the install schema and the platform."""
    h = hashlib.sha256()
    h.update(f"schema={INSTALL_SCHEMA};machine={os.uname().machine};".encode())
    for p in requirement_paths():
        h.update(p.name.encode() + b"\0")
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()[:16]


def venv_dir() -> Path:
    return cache_root() / requirements_hash()


def pinned_versions() -> dict[str, str]:
    """What the requirement files pin for each engine (e.g. {'vllm': '0.33.0'})."""
    out = {}
    for p in requirement_paths():
        if not p.is_file():
            continue
        for line in p.read_text().splitlines():
            m = re.match(r"^\s*(vllm|sglang|torch)\s*==\s*([^\s;#]+)", line)
            if m:
                out[m.group(1)] = m.group(2)
    return out


def install_hint() -> str:
    return (f"run {INSTALL_SCRIPT} (a separate cached venv with vLLM and SGLang's parsers, "
            f"~3 min and ~6.5 GB the first time, under {cache_root()}/<hash>/)")


def available(engine: str | None = None) -> Availability:
    """Cheap (no engine import): is the cached engine venv for the current requirements here?"""
    override = os.environ.get("GLMSERVE_ENGINE_CHECK_PYTHON")
    if override:
        ok = Path(override).is_file() and os.access(override, os.X_OK)
        return Availability(ok, "" if ok else f"GLMSERVE_ENGINE_CHECK_PYTHON={override} is not an executable",
                            python=override if ok else None)
    home = venv_dir()
    py = home / "venv" / "bin" / "python"
    marker = home / MARKER
    if not marker.is_file() or not py.is_file():
        return Availability(False, f"the engine check is not installed for the current requirements; {install_hint()}",
                            home=str(home))
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return Availability(False, f"{marker} is unreadable; {install_hint()}", home=str(home))
    versions = info.get("versions") or {}
    if engine is not None and not versions.get(engine):
        return Availability(False, f"{engine} is not in the engine-check venv at {home}; {install_hint()}",
                            python=str(py), home=str(home), versions=versions)
    return Availability(True, "", python=str(py), home=str(home), versions=versions)


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
            [python, "-I", str(Path(__file__).resolve()), "serve", "--engine", engine],
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


# --------------------------------------------------------------------------- problems

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
                return t.value
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


def _pad(t: tuple) -> tuple:
    return tuple(t) + (0,) * (3 - len(t))


def _vtuple(v: str) -> tuple:
    parts = []
    for x in str(v).split("."):
        m = re.match(r"\d+", x)
        parts.append(int(m.group(0)) if m else 0)
    return _pad(tuple(parts[:3]))


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


# --------------------------------------------------------------------------- install

def _dir_size(p: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(p):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def _say(msg: str) -> None:
    print(f"[install-engine-check] {msg}", flush=True)


def install(*, force: bool = False, python: str | None = None, keep_others: bool = False,
            pip_cache: bool = False, verbose: bool = False) -> Path:
    """Create (or reuse) the cached engine venv for the current requirement files.

    Returns the venv's directory. Reuse is instant; a cold install downloads ~3.2 GB of
    wheels (torch, the CUDA libraries it links, triton, vllm, sglang and ~60 small pure
    Python packages), all with --no-deps, then imports both parsers once as a smoke test.
    """
    import fcntl

    t0 = time.monotonic()
    home = venv_dir()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = home / MARKER
        py = home / "venv" / "bin" / "python"
        if marker.is_file() and py.is_file() and not force:
            info = json.loads(marker.read_text())
            _say(f"reusing {home} ({', '.join(f'{k} {v}' for k, v in info.get('versions', {}).items())}; "
                 f"installed {info.get('installed_at', '?')} in {info.get('seconds', 0):.0f} s, "
                 f"{info.get('size_bytes', 0) / 2**30:.1f} GiB)")
            _prune_others(root, home, keep_others)
            _say(f"done in {time.monotonic() - t0:.1f} s")
            return home
        if home.exists():
            _say(f"removing {home} ({'--force' if force else 'an interrupted install'})")
            shutil.rmtree(home)
        home.mkdir(parents=True)
        base_py = python or os.environ.get("GLMSERVE_ENGINE_CHECK_BASE_PYTHON") or sys.executable
        steps: dict[str, float] = {}

        def run(label: str, cmd: list[str]) -> None:
            _say(f"{label}: {' '.join(cmd)}")
            s = time.monotonic()
            r = subprocess.run(cmd, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
            steps[label] = round(time.monotonic() - s, 1)
            if r.returncode:
                raise SystemExit(f"[install-engine-check] {label} failed (exit {r.returncode}); "
                                 f"{home} is left incomplete and will be redone next time")
            _say(f"{label}: {steps[label]:.1f} s")

        run("venv", [base_py, "-m", "venv", str(home / "venv")])
        reqs = [str(p) for p in requirement_paths()]
        pip = [str(py), "-m", "pip", "install", "--no-deps", "--only-binary=:all:", "--no-compile",
               "--progress-bar", "off", "--disable-pip-version-check"]
        if not verbose:
            pip.append("--quiet")
        if not pip_cache:
            pip.append("--no-cache-dir")
        for r in reqs:
            pip += ["-r", r]
        run("pip install", pip)
        # Smoke test: import both parser chains (also compiles just the modules they use).
        s = time.monotonic()
        _say("smoke test: both parsers accept a minimal argv")
        versions = {}
        with Checker(python=str(py), timeout=DEFAULT_TIMEOUT) as c:
            for engine, argv in (("vllm", ["vllm", "serve", "m/m"]),
                                 ("sglang", ["python3", "-m", "sglang.launch_server", "--model-path", "m/m"])):
                v = c.check(argv, engine)
                if not v.ok:
                    raise SystemExit(f"[install-engine-check] smoke test failed for {engine}: {v.message}")
                versions.update(c.versions(engine))
        steps["smoke test"] = round(time.monotonic() - s, 1)
        _say(f"smoke test: {steps['smoke test']:.1f} s ({', '.join(f'{k} {v}' for k, v in versions.items())})")
        size = _dir_size(home)
        info = {
            "versions": versions, "seconds": round(time.monotonic() - t0, 1), "steps": steps,
            "size_bytes": size, "python": subprocess.run([str(py), "-c", "import sys; print(sys.version.split()[0])"],
                                                          capture_output=True, text=True).stdout.strip(),
            "requirements": [p.name for p in requirement_paths()], "hash": home.name,
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        marker.write_text(json.dumps(info, indent=2) + "\n")
        _say(f"installed {home} in {info['seconds']:.0f} s ({size / 2**30:.1f} GiB)")
        _prune_others(root, home, keep_others)
        return home


def _prune_others(root: Path, keep: Path, keep_others: bool) -> None:
    if keep_others:
        return
    for d in root.iterdir():
        if d.is_dir() and d != keep and re.fullmatch(r"[0-9a-f]{16}", d.name):
            _say(f"removing the venv of other requirements: {d}")
            shutil.rmtree(d, ignore_errors=True)


# =========================================================================== checker side
# Everything below runs inside the engine venv. It imports vllm / sglang lazily.

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_FLAG_RE = re.compile(r"(?<![\w-])(--?[A-Za-z][\w.-]*)")
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
_network_attempts: list[str] = []


def _guard_network() -> None:
    """Refuse any connection or name lookup beyond loopback, for the checker's lifetime."""

    def hook(event: str, args: tuple) -> None:
        if event == "socket.getaddrinfo":
            host = args[0]
            if isinstance(host, bytes):
                host = host.decode(errors="replace")
            if host not in _LOOPBACK and not str(host).startswith("127."):
                _network_attempts.append(f"name lookup of {host}")
                raise OSError(f"glmserve engine check: network access refused ({host})")
        elif event == "socket.connect":
            addr = args[1]
            if isinstance(addr, tuple) and addr:
                host = addr[0]
                if host not in _LOOPBACK and not str(host).startswith("127."):
                    _network_attempts.append(f"connection to {host}")
                    raise OSError(f"glmserve engine check: network access refused ({host})")

    sys.addaudithook(hook)


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.records.append(record.getMessage())


@contextlib.contextmanager
def _captured(logger_names: Iterable[str]):
    """Capture stdout/stderr text and WARNING+ log records of the engine during a check."""
    import warnings

    out, err = io.StringIO(), io.StringIO()
    handler = _Capture()
    loggers = [logging.getLogger(n) for n in logger_names]
    for lg in loggers:
        lg.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield out, err, handler, caught
        finally:
            for lg in loggers:
                lg.removeHandler(handler)


def _collect_warnings(out: io.StringIO, err: io.StringIO, handler: _Capture, caught) -> list[str]:
    lines = []
    for text in (out.getvalue(), err.getvalue()):
        for line in text.splitlines():
            line = _ANSI.sub("", line).strip()
            if line and not line.startswith("usage:") and ": error: " not in line:
                lines.append(line)
    lines += [_ANSI.sub("", m).strip() for m in handler.records]
    lines += [f"{w.category.__name__}: {w.message}" for w in caught
              if not issubclass(w.category, (ResourceWarning, ImportWarning))]
    seen, uniq = set(), []
    for l in lines:
        if l not in seen:
            seen.add(l)
            uniq.append(l)
    return uniq[:50]


def _clean(text: str) -> str:
    # Drop colour codes and object addresses ("<function loads at 0x7f...>") so messages are stable.
    return re.sub(r" at 0x[0-9a-f]+>", ">", _ANSI.sub("", text))


def _argparse_error(err_text: str) -> str:
    text = _clean(err_text)
    m = re.search(r"^(?:\S.*?): error: (.*)", text, re.M | re.S)
    return (m.group(1) if m else text).strip() or "the parser exited without a message"


def _flags_in(message: str, known: Iterable[str] = ()) -> list[str]:
    found = []
    m = re.match(r"argument ([^:]+):", message)
    if m:  # "argument --tensor-parallel-size/-tp: invalid int value: 'eight'"
        found += [f for f in m.group(1).split("/") if f.startswith("-")]
    m = re.match(r"unrecognized arguments?: (.*)", message)
    if m:
        found += [t for t in m.group(1).split() if t.startswith("-")]
    m = re.search(r"ambiguous option: (\S+?)(?: could match|=)", message)
    if m:
        found.append(m.group(1))
    found += _FLAG_RE.findall(message)
    found += [k for k in known if k]
    out = []
    for f in found:
        f = f.rstrip(".,;:'\")")
        if f not in out:
            out.append(f)
    return out


def _jsonable(v: Any, depth: int = 0) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
    if depth > 6:
        return repr(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x, depth + 1) for x in v]
    if hasattr(v, "value") and type(v).__class__.__name__ == "EnumMeta":
        return _jsonable(v.value, depth + 1)
    return repr(v)


def _record_values(obj: Any) -> dict:
    """The fields of a config record: a dataclass (vLLM's EngineArgs) or a msgspec Struct
    (SGLang's ServerArgs)."""
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj)]
    else:
        names = list(getattr(type(obj), "__struct_fields__", ()) or
                     [k for k in vars(obj) if not k.startswith("_")])
    out = {}
    for name in names:
        with contextlib.suppress(Exception):
            out[name] = _jsonable(getattr(obj, name))
    return out


def _installed_version(dist: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


class _VllmParser:
    """vLLM's `vllm serve` parser, built the way vllm/entrypoints/cli/main.py builds it,
    with abbreviations turned off."""

    # Where make_arg_parser / validate_parsed_serve_args live, newest first.
    CLI_ARGS_MODULES = ("vllm.entrypoints.common.cli_args", "vllm.entrypoints.launchers.cli_args",
                        "vllm.entrypoints.openai.cli_args")

    def __init__(self):
        import importlib

        import importlib.util

        os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            os.environ["HF_HUB_OFFLINE"] = "0"
        if importlib.util.find_spec("vllm") is None:
            raise ImportError(f"vllm is not installed in {sys.executable}")
        mod = None
        for name in self.CLI_ARGS_MODULES:
            try:
                mod = importlib.import_module(name)
                break
            except ModuleNotFoundError as e:
                if not (e.name and name.startswith(e.name)):
                    raise
        if mod is None:
            raise ImportError(f"none of {', '.join(self.CLI_ARGS_MODULES)} exists in this vllm")
        try:
            from vllm.utils.argparse_utils import FlexibleArgumentParser
        except ImportError:  # vLLM < 0.11
            from vllm.utils import FlexibleArgumentParser
        from vllm.engine.arg_utils import AsyncEngineArgs

        self.module = mod.__name__
        self.make_arg_parser = mod.make_arg_parser
        self.validate = mod.validate_parsed_serve_args
        self.AsyncEngineArgs = AsyncEngineArgs
        self.version = _installed_version("vllm")
        self.root = FlexibleArgumentParser(prog="vllm", description="vLLM CLI", allow_abbrev=False)
        subparsers = self.root.add_subparsers(required=False, dest="subparser")
        serve = subparsers.add_parser("serve", usage="vllm serve [model_tag] [options]", allow_abbrev=False)
        self.serve = self.make_arg_parser(serve)
        self._config_checks = self._config_field_checks()

    # -- the gaps of the parser, closed with vLLM's own config classes
    def _config_field_checks(self) -> list[tuple[str, str, Callable[[Any], None]]]:
        """(EngineArgs attribute, flag, validator) for values the parser passes unchecked
        and only the engine's config classes (built at engine start) would refuse. Only
        pure value checks: e.g. ParallelConfig.distributed_executor_backend is left out,
        its validator imports Ray (a property of the image, not of the command)."""
        import copy

        checks = []
        try:
            from vllm.config import CacheConfig, LoadConfig, ParallelConfig
        except ImportError:
            return checks

        def assign(cls, field_name):
            try:
                proto = cls()
            except Exception:
                return None
            validator = getattr(cls, "__pydantic_validator__", None)
            if validator is None or field_name not in getattr(cls, "__pydantic_fields__", {}):
                return None

            def run(value):
                validator.validate_assignment(copy.copy(proto), field_name, value)
            return run

        for attr, flag, cls, field_name in (
            ("kv_cache_dtype", "--kv-cache-dtype", CacheConfig, "cache_dtype"),
            ("gpu_memory_utilization", "--gpu-memory-utilization", CacheConfig, "gpu_memory_utilization"),
            ("tensor_parallel_size", "--tensor-parallel-size", ParallelConfig, "tensor_parallel_size"),
            ("pipeline_parallel_size", "--pipeline-parallel-size", ParallelConfig, "pipeline_parallel_size"),
            ("safetensors_load_strategy", "--safetensors-load-strategy", LoadConfig, "safetensors_load_strategy"),
        ):
            fn = assign(cls, field_name)
            if fn is not None:
                checks.append((attr, flag, fn, f"{cls.__name__}.{field_name}"))
        return checks

    @staticmethod
    def _pydantic_message(e: Exception) -> str:
        errs = getattr(e, "errors", None)
        if callable(errs):
            with contextlib.suppress(Exception):
                parts = []
                for x in errs():
                    msg = str(x.get("msg", "")).removeprefix("Value error, ")
                    parts.append(msg)
                return "; ".join(parts)
        return str(e)

    def speculative_errors(self, spec_cfg: Any) -> list[str]:
        """Keys and values of --speculative-config, checked against SpeculativeConfig."""
        if spec_cfg is None:
            return []
        if not isinstance(spec_cfg, dict):
            return [f"--speculative-config must be a JSON object, got {type(spec_cfg).__name__}"]
        try:
            from vllm.config import SpeculativeConfig
        except ImportError:
            return []
        from typing import Annotated

        from pydantic import TypeAdapter

        fields = getattr(SpeculativeConfig, "__pydantic_fields__", None) or {
            f.name: None for f in dataclasses.fields(SpeculativeConfig)}
        init_fields = {f.name for f in dataclasses.fields(SpeculativeConfig) if f.init}
        errors = []
        for raw_key, value in spec_cfg.items():
            key = str(raw_key).replace("-", "_")  # EngineArgs.create_speculative_config does the same
            if key not in init_fields:
                near = difflib.get_close_matches(key, sorted(init_fields), n=1)
                errors.append(f"SpeculativeConfig has no field {raw_key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
                continue
            fi = fields.get(key)
            if fi is None or value is None:
                continue
            try:
                t = Annotated[(fi.annotation, *fi.metadata)] if fi.metadata else fi.annotation
                TypeAdapter(t).validate_python(value)
            except Exception as e:
                if type(e).__name__ == "ValidationError":
                    errors.append(f"SpeculativeConfig.{key}: {self._pydantic_message(e)} (got {value!r})")
        return errors

    def check(self, argv: list[str], resp: dict) -> None:
        if argv[:2] != ["vllm", "serve"]:
            resp["errors"].append({"stage": "head", "message": f"a vLLM command starts with 'vllm serve', got {argv[:2]}",
                                   "flags": []})
            return
        # vLLM logs deprecations "once" per process; each check should see its own.
        for name in ("_print_debug_once", "_print_info_once", "_print_warning_once"):
            with contextlib.suppress(Exception):
                getattr(sys.modules["vllm.logger"], name).cache_clear()
        with _captured(("vllm", "py.warnings")) as cap:
            try:
                args = self.root.parse_args(argv[1:])
            except SystemExit:
                msg = _argparse_error(cap[1].getvalue())
                resp["errors"].append({"stage": "parse", "message": msg, "flags": _flags_in(msg)})
                return
            except (ValueError, TypeError) as e:
                resp["errors"].append({"stage": "parse", "message": str(e), "flags": _flags_in(str(e))})
                return
            finally:
                resp["warnings"] += _collect_warnings(*cap)
        with _captured(("vllm", "py.warnings")) as cap:
            try:
                if getattr(args, "subparser", None) != "serve":
                    resp["errors"].append({"stage": "parse", "message": "no 'serve' subcommand", "flags": []})
                    return
                try:
                    self.validate(args)
                except Exception as e:
                    msg = str(e).removeprefix("Error: ")
                    resp["errors"].append({"stage": "validate", "message": msg, "flags": _flags_in(msg)})
                    return
                # ServeSubcommand.cmd: the positional model wins over --model.
                if getattr(args, "model_tag", None) is not None:
                    args.model = args.model_tag
                try:
                    engine_args = self.AsyncEngineArgs.from_cli_args(args)
                except Exception as e:
                    msg = self._pydantic_message(e)
                    resp["errors"].append({"stage": "engine-args", "message": msg, "flags": _flags_in(msg)})
                    return
                for attr, flag, fn, where in self._config_checks:
                    value = getattr(engine_args, attr, None)
                    if value is None:
                        continue
                    try:
                        fn(value)
                    except Exception as e:
                        resp["errors"].append({"stage": "config", "flags": [flag],
                                               "message": f"{flag} {value!r}: {where}: {self._pydantic_message(e)}"})
                for msg in self.speculative_errors(getattr(engine_args, "speculative_config", None)):
                    resp["errors"].append({"stage": "config", "flags": ["--speculative-config"],
                                           "message": f"--speculative-config: {msg}"})
                values = {k: _jsonable(v) for k, v in vars(args).items()}
                values.update(_record_values(engine_args))
                resp["values"] = values
            finally:
                resp["warnings"] += _collect_warnings(*cap)

    def flags(self) -> dict:
        return _parser_flags(self.serve, getattr(self.serve, "_deprecated", ()))


class _SglangParser:
    """SGLang's launcher parser: ServerArgs.add_cli_args (abbreviations off) for the parse,
    then prepare_server_args as `python -m sglang.launch_server` calls it."""

    def __init__(self):
        import argparse

        import importlib.util

        if importlib.util.find_spec("sglang") is None:
            raise ImportError(f"sglang is not installed in {sys.executable}")
        from sglang.srt.server_args import ServerArgs, prepare_server_args

        self.ServerArgs = ServerArgs
        self.prepare = prepare_server_args
        self.version = _installed_version("sglang")
        self.parser = argparse.ArgumentParser(prog="sglang serve", allow_abbrev=False)
        ServerArgs.add_cli_args(self.parser)

    def check(self, argv: list[str], resp: dict) -> None:
        rest = None
        for head in HEADS["sglang"]:
            if argv[:len(head)] == head:
                rest = argv[len(head):]
                break
        if rest is None:
            resp["errors"].append({"stage": "head", "flags": [],
                                   "message": f"an SGLang command starts with 'python3 -m sglang.launch_server', got {argv[:3]}"})
            return
        with _captured(("sglang", "py.warnings")) as cap:
            try:
                try:
                    self.parser.parse_args(rest)
                except SystemExit:
                    msg = _argparse_error(cap[1].getvalue())
                    resp["errors"].append({"stage": "parse", "message": msg, "flags": _flags_in(msg)})
                    return
                cap[1].seek(0)
                cap[1].truncate()
                try:
                    server_args = self.prepare(rest)
                except SystemExit:
                    msg = _argparse_error(cap[1].getvalue())
                    resp["errors"].append({"stage": "parse", "message": msg, "flags": _flags_in(msg)})
                    return
                except Exception as e:
                    msg = str(e)
                    resp["errors"].append({"stage": "engine-args", "message": msg, "flags": _flags_in(msg)})
                    return
                resp["values"] = _record_values(server_args)
            finally:
                resp["warnings"] += _collect_warnings(*cap)
                # prepare_server_args re-configures root logging (basicConfig(force=True)).
                logging.getLogger().handlers[:] = [logging.StreamHandler(sys.stderr)]

    def flags(self) -> dict:
        return _parser_flags(self.parser)


def _parser_flags(parser, deprecated: Iterable = ()) -> dict:
    deprecated = set(deprecated)
    out = {}
    for opt, action in parser._option_string_actions.items():
        out[opt] = {
            "dest": action.dest,
            "takes_value": action.nargs != 0,
            "choices": _jsonable(list(action.choices)) if action.choices else None,
            "deprecated": action in deprecated or bool(getattr(action, "deprecated", False)),
            "help": _clean(str(action.help or ""))[:300],
        }
    return out


_PARSERS: dict[str, Any] = {}


def _parser(engine: str):
    if engine not in _PARSERS:
        with contextlib.redirect_stdout(sys.stderr):
            _PARSERS[engine] = {"vllm": _VllmParser, "sglang": _SglangParser}[engine]()
    return _PARSERS[engine]


def _handle(req: dict, default_engine: str | None) -> dict:
    op = req.get("op", "check")
    engine = req.get("engine") or default_engine
    t0 = time.monotonic()
    if op == "ping":
        return {"ok": True}
    if op == "versions":
        return {"ok": True, "versions": {d: v for d in ("vllm", "sglang", "torch")
                                         if (v := _installed_version(d))}}
    if engine not in ENGINES:
        return {"ok": False, "op_error": f"unknown engine {engine!r}"}
    try:
        parser = _parser(engine)
    except Exception as e:
        tb = traceback.format_exc(limit=4)
        return {"ok": False, "op_error": f"cannot import the {engine} parser: {type(e).__name__}: {e}\n{tb}"}
    if op == "warmup":
        return {"ok": True, "engine": engine, "version": parser.version, "seconds": round(time.monotonic() - t0, 3)}
    if op == "flags":
        return {"ok": True, "engine": engine, "version": parser.version, "flags": parser.flags()}
    if op != "check":
        return {"ok": False, "op_error": f"unknown op {op!r}"}
    argv = [str(a) for a in req.get("argv") or []]
    resp: dict[str, Any] = {"engine": engine, "version": parser.version, "argv": argv,
                            "errors": [], "warnings": [], "values": {}}
    want = req.get("version")
    if want and parser.version and _vtuple(want) != _vtuple(parser.version):
        resp["errors"].append({
            "stage": "version", "flags": [],
            "message": (f"the engine-check venv has {engine} {parser.version} but engine.version is {want}; "
                        f"pin {engine}=={want} in requirements/engine-check-{engine}.txt and rerun {INSTALL_SCRIPT}")})
    else:
        n_before = len(_network_attempts)
        try:
            parser.check(argv, resp)
        except Exception as e:
            resp["errors"].append({"stage": "internal", "flags": [],
                                   "message": f"{type(e).__name__}: {e} ({traceback.format_exc(limit=3)})"})
        if len(_network_attempts) > n_before:
            resp["errors"].append({"stage": "network", "flags": [],
                                   "message": "tried to reach the network: " + ", ".join(_network_attempts[n_before:])})
    for e in resp["errors"]:
        e["message"] = _clean(e["message"])
    resp["warnings"] = [_clean(w) for w in resp["warnings"]]
    resp["ok"] = not resp["errors"]
    resp["seconds"] = round(time.monotonic() - t0, 3)
    return resp


def main(argv: list[str] | None = None) -> int:
    """The checker process (runs in the engine venv).

    ``serve``: answer JSON-line requests on stdin until EOF (what Checker starts).
    ``check ENGINE ARG...``: check one argv and print the verdict (for a person).
    ``install``: create or reuse the cached venv (what scripts/install-engine-check runs).
    """
    import argparse

    ap = argparse.ArgumentParser(prog="engine_check", allow_abbrev=False)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", allow_abbrev=False)
    s.add_argument("--engine", choices=ENGINES)
    c = sub.add_parser("check", allow_abbrev=False)
    c.add_argument("engine", choices=ENGINES)
    c.add_argument("--version")
    c.add_argument("argv", nargs=argparse.REMAINDER)
    i = sub.add_parser("install", allow_abbrev=False)
    i.add_argument("--force", action="store_true", help="reinstall even if the cached venv exists")
    i.add_argument("--python", help="the interpreter to base the venv on (default: this one)")
    i.add_argument("--keep-others", action="store_true", help="keep venvs of other requirement hashes")
    i.add_argument("--pip-cache", action="store_true", help="let pip cache the wheels (~3.2 GB more disk)")
    i.add_argument("--print-dir", action="store_true", help="print the venv directory and exit")
    i.add_argument("--verbose", action="store_true", help="show pip's own output")
    a = ap.parse_args(argv)

    if a.cmd == "install":
        if a.print_dir:
            print(venv_dir())
            return 0
        install(force=a.force, python=a.python, keep_others=a.keep_others, pip_cache=a.pip_cache,
                verbose=a.verbose)
        return 0

    if a.cmd == "check":
        v = check(a.argv, a.engine, a.version)
        print(json.dumps({"ok": v.ok, "version": v.version,
                          "errors": [dataclasses.asdict(e) for e in v.errors], "warnings": list(v.warnings)}, indent=2))
        return 0 if v.ok else 1

    # serve: the protocol goes to the real stdout; everything else printed (by the engines,
    # at the C level too) goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _guard_network()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            resp = _handle(req, a.engine)
        except Exception as e:  # never leave the client waiting
            resp = {"ok": False, "op_error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(resp) + "\n")
        proto.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
