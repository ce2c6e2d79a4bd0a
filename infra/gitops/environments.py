"""Environments (dev, staging, prod) and the order stacks deploy in: every dev stack before any
staging stack, staging before prod, by name within one environment."""
from __future__ import annotations

import typing
from pathlib import Path
from typing import Iterable

import yaml

from infra.config.project import stack_file
from infra.spec.model import PolicySection

# The values glmserve:policy.environment allows, in deployment order.
ENVIRONMENTS: tuple[str, ...] = typing.get_args(PolicySection.model_fields["environment"].annotation)
DEFAULT = PolicySection.model_fields["environment"].default


def rank(env: str) -> int:
    return ENVIRONMENTS.index(env) if env in ENVIRONMENTS else len(ENVIRONMENTS)


def raw_environment(root: Path, stack: str) -> str:
    """The stack's glmserve:policy.environment as written (the default when unset or unreadable)."""
    try:
        doc = yaml.safe_load(stack_file(stack, root).read_text()) or {}
        env = ((doc.get("config") or {}).get("glmserve:policy") or {}).get("environment")
    except (OSError, yaml.YAMLError, AttributeError):
        env = None
    return env if env in ENVIRONMENTS else DEFAULT


def environment_of(root: Path, stack: str) -> str:
    """The environment from the validated spec; the raw value when the spec does not validate
    (the stack still gets its place in the order, and fails at its turn with the reason)."""
    from infra.common.errors import GlmserveError
    from infra.spec.load import spec_for_stack

    try:
        return spec_for_stack(stack, root).policy.environment
    except (GlmserveError, OSError):    # reported by glmserve itself when the stack's turn comes
        return raw_environment(root, stack)


def in_environment_order(root: Path, stacks: Iterable[str]) -> list[tuple[str, str]]:
    """[(stack, environment)], dev before staging before prod, by name within one."""
    pairs = [(s, environment_of(root, s)) for s in stacks]
    return sorted(pairs, key=lambda p: (rank(p[1]), p[0]))
