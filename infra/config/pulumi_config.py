"""Reading a stack's configuration inside the Pulumi program: every ``glmserve:*`` key the
engine passed, decrypted."""
from __future__ import annotations

import json
from typing import Any

from infra.config.project import NAMESPACE, relative, stack_file


def _parse_config_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return raw


def overrides_from_pulumi() -> tuple[dict, str]:
    import pulumi
    from pulumi.runtime import config as rc

    values = {**rc.get_config_env(), **rc.CONFIG.get()}
    out = {}
    for k, raw in values.items():
        ns, _, key = k.partition(":")
        if ns == NAMESPACE and key:
            out[key] = _parse_config_value(raw)
    return out, relative(stack_file(pulumi.get_stack()))
