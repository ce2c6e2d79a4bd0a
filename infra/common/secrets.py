"""Keeping secret values out of logs, errors and rendered files.

Every secret value that the process learns is registered here, so that any text
leaving the process (an error, a log line, a rendered artifact) can be scrubbed.
"""
from __future__ import annotations

import threading

REDACTED = "[secret]"

_lock = threading.Lock()
_known: set[str] = set()


def register(value: str | None) -> None:
    # Very short values would redact ordinary words; real tokens are long.
    if value and len(value) >= 6:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        text = text.replace(value, REDACTED)
    return text
