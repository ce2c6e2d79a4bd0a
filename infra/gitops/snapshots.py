"""Snapshots of a project's stacks at a git revision and in the working tree.

Each side is evaluated by its own tree's code: the base revision's files (Pulumi.yaml,
stacks/, templates/, infra/, providers/) are exported with `git archive` into a temporary
directory, and that tree's snapshot worker (infra/gitops/snapshot_worker.py) runs with the tree
first on PYTHONPATH. A change to a template or to the renderer therefore shows up as the argv
change it causes. When the tree's own code cannot produce a snapshot (too old, or broken), its
files are evaluated with the current code's worker instead, and the snapshot says so.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Optional

from infra.config.project import list_stacks
from infra.gitops import snapshot_worker
from infra.gitops.repo import GitopsError, git, toplevel

TREE_PATHS = ("Pulumi.yaml", "stacks", "templates", "infra", "providers")
CODE_ROOT = Path(__file__).resolve().parents[2]
# Where a tree keeps its snapshot worker (it moved as the package grew): each tree's snapshot
# is taken by that tree's own worker, which imports that tree's own modules.
WORKER_FILES = ("infra/gitops/snapshot_worker.py", "infra/gitops/diff.py", "infra/diffing.py")


class SnapshotError(Exception):
    """A tree whose code could not produce a snapshot."""


def export_tree(project: Path, rev: str, dest: Path) -> Path:
    """The project's files at ``rev`` (TREE_PATHS that exist there) under ``dest``; returns
    the project root inside ``dest`` (the project may sit in a sub-folder of the repository)."""
    top = toplevel(project)
    prefix = os.path.relpath(project.resolve(), top.resolve())
    prefix = "" if prefix == "." else prefix.rstrip("/") + "/"
    paths = [prefix + p for p in TREE_PATHS
             if subprocess.run(["git", "-C", str(top), "cat-file", "-e", f"{rev}:{prefix}{p}"],
                               capture_output=True).returncode == 0]
    root = dest / prefix if prefix else dest
    root.mkdir(parents=True, exist_ok=True)
    if paths:
        proc = subprocess.run(["git", "-C", str(top), "archive", "--format=tar", rev, "--", *paths],
                              capture_output=True)
        if proc.returncode != 0:
            raise GitopsError(f"git archive {rev}: {proc.stderr.decode(errors='replace').strip()}")
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            tar.extractall(dest, filter="data")
    return root


def _worker_file(root: Path) -> Optional[Path]:
    return next((root / f for f in WORKER_FILES if (root / f).is_file()), None)


def _run_worker(root: Path, stacks: list[str], own_code: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["GLMSERVE_PROJECT_DIR"] = str(root)
    env["PYTHONPATH"] = str(root if own_code else CODE_ROOT)
    worker = _worker_file(root) if own_code else Path(snapshot_worker.__file__).resolve()
    proc = subprocess.run([sys.executable, "-P", str(worker), "--snapshot", *stacks],
                          cwd=str(root), env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise SnapshotError(lines[-1] if lines else f"exit {proc.returncode}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise SnapshotError(f"unreadable snapshot ({e.msg})") from None


def snapshot_tree(root: Path, stacks: list[str]) -> tuple[dict[str, Any], Optional[str]]:
    """Snapshots of ``stacks`` in the tree at ``root``, by that tree's own code when it has
    one; returns (snapshots, note) where note says when the current code had to stand in."""
    if _worker_file(root) is not None:
        try:
            return _run_worker(root, stacks, own_code=True), None
        except SnapshotError as e:
            note = f"evaluated with the working tree's code (its own code failed: {e})"
            return _run_worker(root, stacks, own_code=False), note
    return _run_worker(root, stacks, own_code=False), None


def stacks_in_tree(root: Path) -> list[str]:
    try:
        return list_stacks(root)
    except (OSError, ValueError):
        return []
