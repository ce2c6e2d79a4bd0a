"""Helpers shared by tests (fixtures live in conftest.py): running glmserve and the plain
Pulumi CLI, editing a temporary project's stack files, waiting on loaded machines."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GLMSERVE = str(Path(sys.executable).parent / "glmserve")
PASSPHRASE = "glmserve-test-passphrase"


def run_glmserve(*args: str, env: dict | None = None, check: bool = False, timeout: float = 600,
                 cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([GLMSERVE, *args], env=full_env, text=True, capture_output=True,
                          timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"glmserve {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_pulumi(*args: str, env: dict, project: Path, check: bool = True) -> subprocess.CompletedProcess:
    from infra.deploy.workspace import pulumi_bin_dir
    full_env = {**os.environ, **env, "PATH": f"{pulumi_bin_dir()}:{os.environ['PATH']}"}
    proc = subprocess.run([str(pulumi_bin_dir() / "pulumi"), *args, "--non-interactive"], env=full_env,
                          text=True, capture_output=True, cwd=project, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"pulumi {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def edit_stack(project: Path, stack: str, config: dict) -> None:
    """Merge `glmserve:<section>` values into a temporary project's stack file, one level
    deep (a section's keys are merged, everything else replaced), as a user's edit would."""
    import yaml

    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text()) or {}
    cfg = doc.setdefault("config", {})
    for k, v in config.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.02):
    """Poll until predicate() is truthy; the timeout is a bound for loaded machines, not a target."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def skip_unless_ci(reason: str, opt_out_env: str | None = None) -> None:
    """Skip a test whose tooling is missing on a developer's machine; in CI (where `make test`
    installs everything) a missing tool is a failure, unless explicitly opted out."""
    from infra.deploy.workspace import in_ci

    if in_ci() and not (opt_out_env and os.environ.get(opt_out_env)):
        pytest.fail(f"{reason} (CI installs it through `make test`)")
    pytest.skip(reason)
