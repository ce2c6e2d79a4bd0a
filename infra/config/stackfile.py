"""Reading a stack's configuration offline, from the YAML files.

``glmserve validate/render/plan`` read the files directly, with no Pulumi login and no
passphrase: a ``secure:`` value is present but not decryptable here, so it reads as
``ENCRYPTED``. Inside the Pulumi program the engine hands over the decrypted config instead
(``infra.config.pulumi_config``). Both produce the same overrides dict.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from infra.common.errors import GlmserveError, Problem, fail
from infra.common.secrets import looks_like_credential
from infra.config.project import DEFAULT_NODE_FILE, NAMESPACE, list_stacks, relative, stack_file, stacks_dir
from infra.config.strict_yaml import YamlProblem, load_file

# Placeholder for a `secure:` value read offline: present, but not decryptable here.
ENCRYPTED = "[encrypted]"


# A stack name, as a file name under stacks/ (Pulumi's own charset, no path).
STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# A node file: a YAML file beside the stack files, never a path elsewhere.
NODE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.ya?ml$")


def _read_yaml(path: Path, key: str) -> Any:
    try:
        return load_file(path)
    except YamlProblem as e:
        where = f"{relative(path)}" + (f", line {e.line}" if e.line else "")
        raise fail(key, e.message, file=where) from None


def _decode_offline(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"secure"}:
            return ENCRYPTED
        return {k: _decode_offline(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode_offline(x) for x in v]
    return v


def clear_secrets(overrides: dict, prefix: str = "") -> list[str]:
    """Keys of a stack's overrides that hold a credential in clear text: a secret's value
    (``secrets.<name>.value``), an environment variable or option named like a credential
    (``engine.env.HF_TOKEN``, ``runpod.apiKey``). Such values belong in the stack file only as
    Pulumi secrets (``secure:``), which read as ENCRYPTED here."""
    found = []
    for k, v in overrides.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            found += clear_secrets(v, path + ".")
        elif isinstance(v, str) and v not in (ENCRYPTED, "") and (
                looks_like_credential(str(k)) or (path.startswith("secrets.") and str(k) == "value")):
            found.append(path)
    return found


def overrides_from_file(stack: str, root: Path | None = None) -> tuple[dict, str]:
    known = ", ".join(list_stacks(root)) or "none"
    if not STACK_NAME.fullmatch(stack) or ".." in stack:
        raise fail("--stack", "is not a stack name (letters, digits, '_', '.', '-')", value=stack, allowed=known)
    path = stack_file(stack, root)
    if not path.is_file():
        raise fail("--stack", f"no stack file {relative(path)}", value=stack, allowed=known)
    doc = _read_yaml(path, "(file)")
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise fail("(file)", "must be a mapping with a 'config' key", file=relative(path))
    cfg = doc.get("config")
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise fail("config", f"must be a mapping of 'glmserve:<key>: value' entries, not a {type(cfg).__name__}",
                   file=relative(path))
    out = {}
    for k, v in cfg.items():
        ns, _, key = str(k).partition(":")
        if ns == NAMESPACE and key:
            out[key] = _decode_offline(v)
    clear = clear_secrets(out)
    if clear:
        raise GlmserveError([Problem(
            key=k, file=relative(path), message="holds a credential in clear text in the stack file",
            allowed=f"a Pulumi secret: pulumi config set --secret --path 'glmserve:{k}' <value> --stack {stack}")
            for k in clear], headline="secrets must not be written in clear")
    return out, relative(path)


def load_node(overrides: dict, root: Path | None = None) -> tuple[dict, str]:
    name = overrides.get("node", DEFAULT_NODE_FILE)
    if not isinstance(name, str) or not NODE_FILE.fullmatch(name) or ".." in name:
        raise fail("glmserve:node", "must name a YAML file beside the stack files", value=name,
                   allowed="a file name like node.yaml (no path)")
    path = stacks_dir(root) / name
    if not path.is_file():
        raise fail("glmserve:node", f"node file {relative(path)} does not exist", value=name)
    node = _read_yaml(path, "(file)")
    if not isinstance(node, dict):
        raise fail("(file)", "a node file must be a mapping of sections (model, engine, gpu, ...)",
                   file=relative(path))
    clear = clear_secrets(_decode_offline(node))
    if clear:
        raise GlmserveError([Problem(key=k, file=relative(path), message="holds a credential in clear text",
                                     allowed="a Pulumi secret in the stack file (pulumi config set --secret --path)")
                             for k in clear], headline="secrets must not be written in clear")
    return node, relative(path)
