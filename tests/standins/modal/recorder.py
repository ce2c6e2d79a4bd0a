"""A log of every RPC the client made: name, decoded request, a little metadata, and the outcome.

Tests assert on fields of recorded requests, never on whole messages or on call order: modal_proto
gains fields on nearly every release and the client reorders concurrent loads freely.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional

from google.protobuf.message import Message
from grpclib import Status
from modal_proto import api_pb2

# Request headers kept per call. Credentials are deliberately not among them.
KEPT_METADATA = ("x-idempotency-key", "x-retry-attempt", "x-modal-client-version", "x-modal-client-type")
REDACTED = "<redacted>"


def redact(request: Message) -> Message:
    """A copy of the request with secret values masked; key names stay visible.

    Recorded requests end up in assertion diffs and test logs. The values themselves are kept in
    the inventory (SecretRecord.values) for the tests that need to check them.
    """
    if isinstance(request, api_pb2.SecretGetOrCreateRequest) and request.env_dict:
        masked = api_pb2.SecretGetOrCreateRequest()
        masked.CopyFrom(request)
        for key in masked.env_dict:
            masked.env_dict[key] = REDACTED
        return masked
    if isinstance(request, api_pb2.SecretUpdateRequest) and request.updates:
        masked = api_pb2.SecretUpdateRequest()
        masked.CopyFrom(request)
        for update in masked.updates:
            update.value = REDACTED
        return masked
    return request


@dataclass
class Call:
    rpc: str
    request: Message
    metadata: dict[str, str] = field(default_factory=dict)
    # Filled in when the call finishes: Status.OK, or the status it failed with.
    status: Optional[Status] = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @property
    def retry_attempt(self) -> int:
        return int(self.metadata.get("x-retry-attempt", "0") or 0)


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._unimplemented: list[str] = []

    def add(self, rpc: str, request: Message, metadata: dict[str, str]) -> Call:
        kept = {k: str(metadata[k]) for k in KEPT_METADATA if k in metadata}
        call = Call(rpc, redact(request), kept)
        with self._lock:
            self._calls.append(call)
        return call

    def note_unimplemented(self, rpc: str) -> None:
        with self._lock:
            if rpc not in self._unimplemented:
                self._unimplemented.append(rpc)

    def calls(self, rpc: Optional[str] = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if rpc is None or c.rpc == rpc]

    def unimplemented(self) -> list[str]:
        with self._lock:
            return list(self._unimplemented)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._unimplemented.clear()
