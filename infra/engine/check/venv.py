"""Where the engine-check virtualenv lives and whether it is there: one cached venv per
set of requirement files (``requirements/engine-check-*.txt``), outside the repository.
Standard library only: the checker process imports this package too."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

ENGINES = ("vllm", "sglang")
REPO = Path(__file__).resolve().parents[3]
REQUIREMENTS_DIR = REPO / "requirements"
# Installed together, in this order, into one venv: the pins in base satisfy both engines.
REQUIREMENT_FILES = ("engine-check-base.txt", "engine-check-vllm.txt", "engine-check-sglang.txt")
# Bump when the layout of the cached venv or the install steps change.
INSTALL_SCHEMA = "1"
INSTALL_SCRIPT = "scripts/install-engine-check"
MARKER = "install.json"


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

