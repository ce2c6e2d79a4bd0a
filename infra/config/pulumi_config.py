"""Reading a stack's configuration inside the Pulumi program.

The program reads the stack file the way ``glmserve validate`` does (the same strict reader,
so both agree on every type: the engine hands config values over as strings, where "8" and 8
look the same), then fills each ``secure:`` value in with the decrypted value the engine
passes. Keys the engine has that the file lacks (e.g. from a Pulumi ESC environment) are taken
from the engine.

Engine environment variables set with ``pulumi config set --secret --path
'glmserve:engine.env.X'`` are the exception: the spec keeps them as ENCRYPTED, exactly as
offline, so their values never reach a rendered argv, module or manifest; the program takes
them from ``secret_env_from_pulumi`` as Pulumi secrets and each provider hands them to the
container through its own secret mechanism.
"""
from __future__ import annotations

import json
from typing import Any

from infra.config.project import NAMESPACE
from infra.config.stackfile import ENCRYPTED, overrides_from_file


def _parse_config_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, TypeError, RecursionError):
        return raw


def _fill_secrets(from_file: Any, from_engine: Any) -> Any:
    """``from_file`` with every ENCRYPTED placeholder replaced by the engine's value there."""
    if from_file == ENCRYPTED:
        return from_engine
    if isinstance(from_file, dict) and isinstance(from_engine, dict):
        return {k: _fill_secrets(v, from_engine.get(k)) for k, v in from_file.items()}
    if isinstance(from_file, list) and isinstance(from_engine, list) and len(from_file) == len(from_engine):
        return [_fill_secrets(a, b) for a, b in zip(from_file, from_engine)]
    return from_file


def _engine_config() -> dict[str, Any]:
    from pulumi.runtime import config as rc

    values = {**rc.get_config_env(), **rc.CONFIG.get()}
    engine = {}
    for k, raw in values.items():
        ns, _, key = k.partition(":")
        if ns == NAMESPACE and key:
            engine[key] = _parse_config_value(raw)
    return engine


def _secret_env_names(overrides: dict) -> list[str]:
    env = (overrides.get("engine") or {}).get("env") if isinstance(overrides.get("engine"), dict) else None
    return [k for k, v in env.items() if v == ENCRYPTED] if isinstance(env, dict) else []


def overrides_from_pulumi() -> tuple[dict, str]:
    import pulumi

    engine = _engine_config()
    overrides, file = overrides_from_file(pulumi.get_stack())
    held = _secret_env_names(overrides)
    out = {k: _fill_secrets(v, engine.get(k)) for k, v in overrides.items()}
    if held:
        # Kept as placeholders in the spec (see the module's doc): values come as secrets.
        out["engine"] = {**out["engine"], "env": {**out["engine"]["env"], **{k: ENCRYPTED for k in held}}}
    out.update({k: v for k, v in engine.items() if k not in overrides})
    return out, file


def secret_env_from_pulumi() -> dict[str, str]:
    """The decrypted values of the engine environment variables the stack file holds as
    Pulumi secrets (``engine.env.X: {secure: ...}``), by name."""
    import pulumi

    overrides, _ = overrides_from_file(pulumi.get_stack())
    env = (_engine_config().get("engine") or {}).get("env") or {}
    return {k: str(env[k]) for k in _secret_env_names(overrides) if env.get(k) is not None}
