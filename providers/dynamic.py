"""Helpers every provider's Python dynamic resources share.

Dynamic resources receive their inputs as Pulumi serialises them: unknown values during a
preview, numbers as doubles, and secret values in clear inside the provider process.
"""
from __future__ import annotations

from typing import Any, Iterable

from infra.common.secrets import register

# The environment variable through which every engine image reads the Hugging Face token.
HF_TOKEN_ENV = "HF_TOKEN"


def is_unknown(value: Any) -> bool:
    """True for a value Pulumi does not know yet (a preview of something computed at up),
    anywhere inside dicts and lists."""
    import pulumi
    from pulumi.runtime import rpc

    if isinstance(value, pulumi.output.Unknown) or value == rpc.UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(is_unknown(v) for v in value)
    return False


def whole_numbers(value: Any) -> Any:
    """Pulumi carries numbers as doubles: 8 comes back as 8.0, which integer API fields refuse.
    Turns every whole float inside ``value`` back into an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def register_secrets(values: Iterable[Any]) -> None:
    """Secret values a dynamic resource holds in clear are registered for redaction in this
    process, so that no error or log line it writes can carry them."""
    for v in values:
        if isinstance(v, str):
            register(v)
