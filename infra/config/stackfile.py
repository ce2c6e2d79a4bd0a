"""Reading a stack's configuration offline, from the YAML files.

``glmserve validate/render/plan`` read the files directly, with no Pulumi login and no
passphrase: a ``secure:`` value is present but not decryptable here, so it reads as
``ENCRYPTED``. Inside the Pulumi program the engine hands over the decrypted config instead
(``infra.config.pulumi_config``). Both produce the same overrides dict.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra.common.errors import fail
from infra.config.project import DEFAULT_NODE_FILE, NAMESPACE, list_stacks, relative, stack_file, stacks_dir

# Placeholder for a `secure:` value read offline: present, but not decryptable here.
ENCRYPTED = "[encrypted]"


def _read_yaml(path: Path, key: str) -> Any:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise fail(key, f"is not valid YAML ({e.__class__.__name__}: {getattr(e, 'problem', e)})",
                   file=str(path)) from None


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
        raise fail("--stack", f"no stack file {relative(path)}", value=stack, allowed=known)
    doc = _read_yaml(path, "config")
    if not isinstance(doc, dict):
        raise fail("(file)", "must be a mapping with a 'config' key", file=relative(path))
    cfg = doc.get("config") or {}
    out = {}
    for k, v in cfg.items():
        ns, _, key = str(k).partition(":")
        if ns == NAMESPACE and key:
            out[key] = _decode_offline(v)
    return out, relative(path)


def load_node(overrides: dict, root: Path | None = None) -> tuple[dict, str]:
    name = overrides.get("node", DEFAULT_NODE_FILE)
    path = stacks_dir(root) / name
    if not path.is_file():
        raise fail("glmserve:node", f"node file {relative(path)} does not exist", value=name)
    node = _read_yaml(path, "node")
    if not isinstance(node, dict):
        raise fail("(file)", "a node file must be a mapping", file=relative(path))
    return node, relative(path)
