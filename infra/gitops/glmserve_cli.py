"""Running `glmserve` for the project a GitOps step operates on, with its output redacted.

The CLI runs as `python -m infra.cli` from the project root, with that tree's own code first on
the import path (GLMSERVE="<command>" replaces it, as the tests do with a recording fake)."""
from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

from infra.common.secrets import redact


@dataclasses.dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def glmserve_command() -> list[str]:
    override = os.environ.get("GLMSERVE")
    return shlex.split(override) if override else [sys.executable, "-m", "infra.cli"]


def glmserve_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["GLMSERVE_PROJECT_DIR"] = str(root)
    if (root / "infra" / "__init__.py").is_file():
        env["PYTHONPATH"] = os.pathsep.join([str(root), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


def run_glmserve(root: Path, args: list[str], echo: Optional[Callable[[str], None]] = None,
                 timeout: float = 3 * 3600) -> Run:
    """Run `glmserve ARGS` for the project at ``root``; with ``echo``, stream every (redacted)
    line as it comes, so a long `up` shows progress in the pipeline's log."""
    cmd = glmserve_command() + args
    env = glmserve_env(root)
    if echo is None:
        proc = subprocess.run(cmd, cwd=str(root), env=env, capture_output=True, text=True, timeout=timeout)
        return Run(args, proc.returncode, redact(proc.stdout), redact(proc.stderr))
    out: list[str] = []
    with subprocess.Popen(cmd, cwd=str(root), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = redact(line)
            out.append(line)
            echo(line.rstrip("\n"))
        rc = proc.wait(timeout=timeout)
    return Run(args, rc, "".join(out), "")


def failure_detail(run: Run, limit: int = 40) -> str:
    """The lines of a failed run that say why: from glmserve's own error on."""
    text = (run.stderr or run.stdout).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # The engine repeats its stdout inside the error; the glmserve/policy lines are what matter.
    marks = [i for i, ln in enumerate(lines) if ln.startswith("glmserve:") or "policy check failed" in ln]
    if marks:
        lines = lines[marks[-1]:] if len(lines) - marks[-1] > 1 else lines[marks[0]:]
    return "\n".join(lines[-limit:])
