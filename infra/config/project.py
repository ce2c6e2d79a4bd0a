"""Where the project's files are: the project root, its stacks folder and stack files."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

NAMESPACE = "glmserve"
DEFAULT_NODE_FILE = "node.yaml"


def project_root() -> Path:
    env = os.environ.get("GLMSERVE_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "Pulumi.yaml").is_file() and (d / "stacks").is_dir():
            return d
    return Path(__file__).resolve().parents[2]


def stacks_dir(root: Path | None = None) -> Path:
    root = root or project_root()
    proj = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    return root / proj.get("stackConfigDir", "stacks")


def stack_file(stack: str, root: Path | None = None) -> Path:
    return stacks_dir(root) / f"Pulumi.{stack}.yaml"


def list_stacks(root: Path | None = None) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir(root).glob("Pulumi.*.yaml"))


def relative(path: Path) -> str:
    """A path as users see it in messages: relative to the project root when inside it."""
    try:
        return str(path.relative_to(project_root()))
    except ValueError:
        return str(path)
