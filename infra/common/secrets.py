"""Keeping secret values out of logs, errors and rendered files.

One registry per process holds every secret value the process learns (the generated API key,
provider credentials, the Hugging Face token, values set with `pulumi config set --secret`,
credentials in the environment); every text that leaves the process (an error, a log line, a
rendered artifact) goes through ``redact``. A value is also caught in the forms it takes on the
way: JSON-escaped, URL-encoded, base64 (a Kubernetes Secret's data).
"""
from __future__ import annotations

import base64
import json
import os
import re
import threading
from typing import Iterable
from urllib.parse import quote

REDACTED = "[secret]"
# Shorter values would redact ordinary words; every credential glmserve accepts is longer.
MIN_LENGTH = 6

# Names (environment variables, option keys) that hold credentials by convention: HF_TOKEN,
# VLLM_API_KEY, apiKey, ...PASSWORD (but not tlsSecretName or imagePullSecrets).
CREDENTIAL_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)$",
                             re.I)

_lock = threading.Lock()
_known: set[str] = set()


def _forms(value: str) -> set[str]:
    raw = value.encode("utf-8", "surrogatepass")
    forms = {value, json.dumps(value)[1:-1], quote(value, safe="")}
    for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = b64.decode("ascii")
        forms.add(text)
        forms.add(text.rstrip("="))
    return {f for f in forms if len(f) >= MIN_LENGTH}


def looks_like_credential(name: str) -> bool:
    return bool(CREDENTIAL_NAME.search(name))


def register(value: str | None) -> None:
    if not isinstance(value, str) or len(value) < MIN_LENGTH:
        return
    forms = _forms(value)
    with _lock:
        _known.update(forms)


def register_environment(names: Iterable[str]) -> None:
    """Register the values of these environment variables (credentials handed to the process)."""
    for name in names:
        register(os.environ.get(name))


def redact(text: str) -> str:
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    return text
