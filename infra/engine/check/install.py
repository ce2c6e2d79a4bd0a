"""Creating (or reusing) the cached engine-check venv: what scripts/install-engine-check runs."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from infra.engine.check.client import DEFAULT_TIMEOUT, Checker
from infra.engine.check.venv import MARKER, cache_root, requirement_paths, venv_dir

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

