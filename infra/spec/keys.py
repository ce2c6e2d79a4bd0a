"""What counts as a credential, and when an API key is strong enough.

An API key given by value guards an endpoint on the internet: vLLM treats an empty key as no
key at all, and a short or repetitive one is guessed. So a given key needs a minimum length
and an estimated entropy (characters x bits per character of the classes it uses, which
overrates structured keys and never underrates random ones); the generated key
(infra/deploy/apikey.py: 43 url-safe characters, 256 bits) always passes.
"""
from __future__ import annotations

import math
import string

MIN_API_KEY_LENGTH = 24
MIN_API_KEY_BITS = 96
MIN_DISTINCT = 8


def entropy_bits(value: str) -> float:
    classes = [string.ascii_lowercase, string.ascii_uppercase, string.digits]
    alphabet = sum(len(c) for c in classes if any(ch in c for ch in value))
    if any(not any(ch in c for c in classes) for ch in value):
        alphabet += 32
    return len(value) * math.log2(alphabet) if alphabet > 1 else 0.0


def check_api_key(value: str) -> None:
    """ValueError (without the value) when ``value`` is too weak to be an API key."""
    if len(value) < MIN_API_KEY_LENGTH:
        raise ValueError(f"the API key is {len(value)} characters; at least {MIN_API_KEY_LENGTH} are needed "
                         "(or leave secrets.apiKey unset and glmserve generates one)")
    if len(set(value)) < MIN_DISTINCT or entropy_bits(value) < MIN_API_KEY_BITS:
        raise ValueError(f"the API key is too predictable (fewer than {MIN_API_KEY_BITS} bits estimated); use a "
                         "random one, e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("the API key contains whitespace or unprintable characters")
