"""`glmserve diff`: what a change does to the deployed node, in words a reviewer reads.

Compares a stack at a base git revision with the working tree (infra/gitops/snapshots.py takes
each side's snapshot with that side's own code, infra/gitops/compare.py compares them,
infra/gitops/diff_format.py shows the result)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

from infra.common.errors import GlmserveError, Problem
from infra.gitops.compare import diff_snapshots
from infra.gitops.repo import GitopsError, is_commit, resolve, toplevel
from infra.gitops.snapshots import SnapshotError, export_tree, snapshot_tree, stacks_in_tree


def _user_error(key: str, message: str, value: Any = None, allowed: Optional[str] = None) -> GlmserveError:
    return GlmserveError([Problem(key=key, message=message, value=value, allowed=allowed)], headline="cannot diff")


def diff_stacks(project: Path, base_rev: str, stacks: Optional[list[str]] = None) -> dict[str, Any]:
    """Diff ``stacks`` (default: every stack on either side) between ``base_rev`` and the
    working tree of ``project``. Returns {"base": sha, "stacks": [diff, ...], "notes": [...]}."""
    project = Path(project).resolve()
    try:
        top = toplevel(project)
    except GitopsError:
        raise _user_error("--base", f"{project} is not inside a git repository") from None
    if not is_commit(top, base_rev):
        raise _user_error("--base", "is not a commit of the repository", value=base_rev,
                          allowed="a commit, branch or tag (e.g. origin/main, HEAD~1)")
    sha = resolve(top, base_rev)
    notes = []
    with tempfile.TemporaryDirectory(prefix="glmserve-base-") as tmp:
        base_root = export_tree(project, sha, Path(tmp))
        wanted = stacks or sorted(set(stacks_in_tree(base_root)) | set(stacks_in_tree(project)))
        if not wanted:
            return {"base": sha, "base_rev": base_rev, "stacks": [], "notes": []}
        try:
            base_snaps, note = snapshot_tree(base_root, wanted)
        except SnapshotError as e:
            raise _user_error("--base", f"cannot evaluate the stacks at this revision ({e})", value=base_rev) from None
        if note:
            notes.append(f"base {sha[:12]}: {note}")
    try:
        head_snaps, note = snapshot_tree(project, wanted)
    except SnapshotError as e:
        raise _user_error("--stack", f"cannot evaluate the working tree ({e})") from None
    if note:
        notes.append(f"working tree: {note}")
    return {"base": sha, "base_rev": base_rev,
            "stacks": [diff_snapshots(s, base_snaps.get(s), head_snaps.get(s)) for s in wanted],
            "notes": notes}


