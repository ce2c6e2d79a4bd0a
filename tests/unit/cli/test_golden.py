"""What glmserve prints for every shipped stack, compared with golden files.

The files under tests/data/golden/ were recorded from the commands below; a refactoring must
leave them byte-identical. A deliberate change of output re-records them with
``GLMSERVE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py`` and says why in
its commit.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT  # noqa: E402
GOLDEN = ROOT / "tests" / "data" / "golden"
GLMSERVE = str(Path(sys.executable).parent / "glmserve")
STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
COMMANDS = {
    "render-json": ["render", "--format", "json"],
    "render-shell": ["render", "--format", "shell"],
    "render-artifact": ["render", "--artifact"],
    "render-sglang": ["render", "--engine", "sglang", "--format", "json"],
    "plan-json": ["plan", "--json"],
    "plan-text": ["plan"],
    "validate": ["validate"],
    "policy-json": ["policy", "--json"],
}


def _run(stack: str, args: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "MODAL_", "KUBECONFIG"))}
    env["GLMSERVE_PROJECT_DIR"] = str(ROOT)
    proc = subprocess.run([GLMSERVE, *args, "--stack", stack], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_output_is_unchanged(stack: str, name: str) -> None:
    path = GOLDEN / stack / f"{name}.txt"
    got = _run(stack, COMMANDS[name])
    if os.environ.get("GLMSERVE_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.is_file(), f"no golden file {path.relative_to(ROOT)}; record it with GLMSERVE_UPDATE_GOLDEN=1"
    assert got == path.read_text(), f"`glmserve {' '.join(COMMANDS[name])} --stack {stack}` changed"
