"""A stack's validated spec, from its files (offline) or from the engine (in the program)."""
from __future__ import annotations

from pathlib import Path

from infra.config.pulumi_config import overrides_from_pulumi
from infra.config.stackfile import load_node, overrides_from_file
from infra.spec.build import Origins, build_spec
from infra.spec.model import NodeSpec


def spec_for_stack(stack: str, root: Path | None = None) -> NodeSpec:
    overrides, sfile = overrides_from_file(stack, root)
    node, nfile = load_node(overrides, root)
    return build_spec(node, overrides, nfile, sfile)


def origins_for_stack(stack: str, root: Path | None = None) -> Origins:
    """Which file of the stack set each key (for messages about a valid spec)."""
    overrides, sfile = overrides_from_file(stack, root)
    node, nfile = load_node(overrides, root)
    return Origins(node, overrides, nfile, sfile)


def spec_in_program() -> NodeSpec:
    overrides, sfile = overrides_from_pulumi()
    node, nfile = load_node(overrides)
    return build_spec(node, overrides, nfile, sfile)
