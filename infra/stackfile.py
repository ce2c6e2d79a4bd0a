"""Where a stack's configuration comes from.

Two readers of the same files: offline (``glmserve validate/render/plan`` read the YAML
directly, with no Pulumi login and no passphrase) and inside the Pulumi program (the
engine hands the decrypted config to the program). Both produce the same overrides dict
and go through ``spec.build_spec``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from .errors import GlmserveError, Problem, fail
from .spec import NodeSpec, build_spec

NAMESPACE = "glmserve"
DEFAULT_NODE_FILE = "node.yaml"
# Placeholder for a `secure:` value read offline: present, but not decryptable here.
ENCRYPTED = "[encrypted]"


def project_root() -> Path:
    env = os.environ.get("GLMSERVE_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "Pulumi.yaml").is_file() and (d / "stacks").is_dir():
            return d
    return Path(__file__).resolve().parent.parent


def stacks_dir(root: Path | None = None) -> Path:
    root = root or project_root()
    proj = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    return root / proj.get("stackConfigDir", "stacks")


def stack_file(stack: str, root: Path | None = None) -> Path:
    return stacks_dir(root) / f"Pulumi.{stack}.yaml"


def list_stacks(root: Path | None = None) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir(root).glob("Pulumi.*.yaml"))


def _read_yaml(path: Path, key: str) -> Any:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise fail(key, f"is not valid YAML ({e.__class__.__name__}: {getattr(e, 'problem', e)})", file=str(path)) from None


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(project_root()))
    except ValueError:
        return str(path)


def _decode_offline(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"secure"}:
            return ENCRYPTED
        return {k: _decode_offline(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode_offline(x) for x in v]
    return v


def overrides_from_file(stack: str, root: Path | None = None) -> tuple[dict, str]:
    path = stack_file(stack, root)
    if not path.is_file():
        known = ", ".join(list_stacks(root)) or "none"
        raise fail("--stack", f"no stack file {_rel(path)}", value=stack, allowed=known)
    doc = _read_yaml(path, "config")
    if not isinstance(doc, dict):
        raise fail("(file)", "must be a mapping with a 'config' key", file=_rel(path))
    cfg = doc.get("config") or {}
    out = {}
    for k, v in cfg.items():
        ns, _, key = str(k).partition(":")
        if ns == NAMESPACE and key:
            out[key] = _decode_offline(v)
    return out, _rel(path)


def _parse_config_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return raw


def overrides_from_pulumi() -> tuple[dict, str]:
    """Inside the program: every ``glmserve:*`` key the engine passed, decrypted."""
    import pulumi
    from pulumi.runtime import config as rc

    values = {**rc.get_config_env(), **rc.CONFIG.get()}
    out = {}
    for k, raw in values.items():
        ns, _, key = k.partition(":")
        if ns == NAMESPACE and key:
            out[key] = _parse_config_value(raw)
    stack = pulumi.get_stack()
    return out, _rel(stack_file(stack))


def load_node(overrides: dict, root: Path | None = None) -> tuple[dict, str]:
    name = overrides.get("node", DEFAULT_NODE_FILE)
    path = stacks_dir(root) / name
    if not path.is_file():
        raise fail("glmserve:node", f"node file {_rel(path)} does not exist", value=name)
    node = _read_yaml(path, "node")
    if not isinstance(node, dict):
        raise fail("(file)", "a node file must be a mapping", file=_rel(path))
    return node, _rel(path)


def spec_for_stack(stack: str, root: Path | None = None) -> NodeSpec:
    overrides, sfile = overrides_from_file(stack, root)
    node, nfile = load_node(overrides, root)
    return build_spec(node, overrides, nfile, sfile)


def spec_in_program() -> NodeSpec:
    overrides, sfile = overrides_from_pulumi()
    node, nfile = load_node(overrides)
    return build_spec(node, overrides, nfile, sfile)


__all__ = [
    "GlmserveError", "Problem", "spec_for_stack", "spec_in_program", "list_stacks",
    "project_root", "stack_file", "ENCRYPTED",
]
