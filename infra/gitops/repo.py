"""The project's git repository, as the GitOps steps read it: revisions, the files a change
touches, a file or the stack files at another revision.

Paths are relative to the project root, which may sit below the repository's top level."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional

# What GitHub sends as the "before" commit of a push that created the branch.
NULL_SHA = "0" * 40


class GitopsError(Exception):
    """A problem the user fixes (bad revision, not a git repository, ...): printed, exit 2."""


def git(root: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise GitopsError(f"git {' '.join(args)}: {proc.stderr.strip() or 'exit ' + str(proc.returncode)}")
    return proc.stdout


def toplevel(root: Path) -> Path:
    try:
        return Path(git(root, "rev-parse", "--show-toplevel").strip())
    except GitopsError:
        raise GitopsError(f"{root} is not inside a git repository") from None


def _in_repo(root: Path, rel: str) -> tuple[Path, str]:
    """The repository's top level and ``rel`` (relative to the project root) relative to it."""
    top = toplevel(root)
    prefix = os.path.relpath(root.resolve(), top.resolve())
    return top, rel if prefix == "." else f"{prefix}/{rel}".rstrip("/")


def is_commit(root: Path, rev: str) -> bool:
    return bool(git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False).strip())


def resolve(root: Path, rev: str) -> str:
    out = git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False).strip()
    if not out:
        raise GitopsError(f"--base {rev!r} is not a commit of the repository (fetch it: actions/checkout "
                          "with fetch-depth: 0)")
    return out


def merge_base(root: Path, base: str) -> str:
    sha = resolve(root, base)
    mb = git(root, "merge-base", sha, "HEAD", check=False).strip()
    return mb or sha


def changed_files(root: Path, base_sha: str) -> list[str]:
    """Files changed between ``base_sha`` and the working tree (committed, staged, unstaged,
    untracked), relative to the project root; files outside the project are left out."""
    top, prefix = _in_repo(root, "")
    prefix = prefix + "/" if prefix else ""
    names = git(top, "diff", "--name-only", "--no-renames", base_sha, "--").splitlines()
    names += git(top, "ls-files", "--others", "--exclude-standard").splitlines()
    return sorted({n.strip()[len(prefix):] for n in names if n.strip() and n.strip().startswith(prefix)})


def file_at(root: Path, rev: str, rel: str) -> Optional[str]:
    top, path = _in_repo(root, rel)
    proc = subprocess.run(["git", "-C", str(top), "show", f"{rev}:{path}"], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def stacks_at(root: Path, rev: str, stacks_folder: str) -> list[str]:
    """The stacks whose files ``stacks_folder`` (relative to the project root) held at ``rev``."""
    top, path = _in_repo(root, stacks_folder)
    names = git(top, "ls-tree", "--name-only", f"{rev}:{path}", check=False).splitlines()
    return sorted(n[len("Pulumi."):-len(".yaml")] for n in names if n.startswith("Pulumi.") and n.endswith(".yaml"))
