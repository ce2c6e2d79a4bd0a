"""Which stacks a change touches (docs/gitops.md, "Which stacks a change touches").

stacks/Pulumi.X.yaml touches X; a stack's node file (stacks/node.yaml, or its glmserve:node)
touches the stacks that use it; shared code and data (infra/, templates/, providers/,
Pulumi.yaml, __main__.py, requirements.lock, pyproject.toml) touch every stack. Anything else
(docs, tests, workflows) touches none."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Optional

import yaml

from infra.config.project import DEFAULT_NODE_FILE, NAMESPACE, list_stacks, stacks_dir
from infra.gitops.repo import changed_files, file_at, stacks_at

SHARED_PREFIXES = ("infra/", "templates/", "providers/")
SHARED_FILES = ("Pulumi.yaml", "__main__.py", "requirements.lock", "pyproject.toml")


@dataclasses.dataclass
class Selection:
    """Which stacks a change touches, and why; stacks whose file was deleted are not
    deployed by the scripts (a destroy is a decision for a person)."""

    stacks: dict[str, list[str]]            # stack -> reasons, stacks that exist in the working tree
    removed: list[str]
    changed: list[str]

    def names(self) -> list[str]:
        return list(self.stacks)


def stacks_folder(root: Path) -> str:
    """The stacks folder relative to the project root (Pulumi.yaml's stackConfigDir)."""
    return stacks_dir(root).relative_to(root).as_posix().strip("/")


def _node_file_of(text: Optional[str]) -> str:
    try:
        doc = yaml.safe_load(text or "") or {}
    except yaml.YAMLError:
        return DEFAULT_NODE_FILE
    cfg = doc.get("config") or {} if isinstance(doc, dict) else {}
    value = cfg.get(f"{NAMESPACE}:node") if isinstance(cfg, dict) else None
    return str(value) if isinstance(value, str) and value else DEFAULT_NODE_FILE


def touched_stacks(root: Path, base_sha: str, changed: Optional[list[str]] = None) -> Selection:
    changed = changed_files(root, base_sha) if changed is None else changed
    cfg = stacks_folder(root)
    head = list_stacks(root)
    base = stacks_at(root, base_sha, cfg)
    node_head = {s: _node_file_of((root / cfg / f"Pulumi.{s}.yaml").read_text()) for s in head}
    node_base = {s: _node_file_of(file_at(root, base_sha, f"{cfg}/Pulumi.{s}.yaml")) for s in base}
    every = sorted(set(head) | set(base))
    reasons: dict[str, list[str]] = {}

    def add(stack: str, why: str) -> None:
        reasons.setdefault(stack, [])
        if why not in reasons[stack]:
            reasons[stack].append(why)

    for path in changed:
        if path.startswith(cfg + "/"):
            name = path[len(cfg) + 1:]
            m = re.fullmatch(r"Pulumi\.(.+)\.yaml", name)
            if m:
                add(m.group(1), f"{path} changed")
                continue
            for s in every:
                if name in (node_head.get(s), node_base.get(s)):
                    add(s, f"{path} (its node file) changed")
        elif path.startswith(SHARED_PREFIXES) or path in SHARED_FILES:
            for s in every:
                add(s, f"{path.split('/')[0] + '/' if '/' in path else path} changed")
    removed = sorted(s for s in reasons if s not in head)
    kept = {s: r for s, r in reasons.items() if s in head}
    return Selection(stacks=kept, removed=removed, changed=changed)
