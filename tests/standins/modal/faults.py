"""Per-RPC fault injection: fail the next N calls of an RPC with a gRPC status, or slow them down.

Faults fire before the handler runs, so a failed call leaves the inventory untouched — the same
as a real transient error from a load balancer or an overloaded server. That is what the client's
retry loop (modal._utils.grpc_utils._retry_transient_errors) expects: retrying must be safe.
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Optional

from grpclib import GRPCError, Status


@dataclass
class Fault:
    rpc: str
    status: Optional[Status]  # None: only delay, then handle the call normally
    message: str
    delay: float
    remaining: Optional[int]  # None: every call until cleared
    fired: int = 0


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def inject(
        self,
        rpc: str,
        status: Optional[Status] = None,
        *,
        times: Optional[int] = 1,
        message: str = "",
        delay: float = 0.0,
    ) -> Fault:
        if status is None and delay <= 0:
            raise ValueError("a fault needs a status, a delay, or both")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1, or None for every call")
        fault = Fault(rpc, status, message or f"injected {status.name if status else 'delay'} for {rpc}", delay, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self, rpc: Optional[str] = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if rpc is not None and f.rpc != rpc]

    def _take(self, rpc: str) -> Optional[Fault]:
        """The first live fault for this RPC, with its count spent by one (FIFO across injects)."""
        with self._lock:
            for fault in self._faults:
                if fault.rpc != rpc:
                    continue
                fault.fired += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return fault
            return None

    async def apply(self, rpc: str) -> None:
        """Sleep and/or raise for this call, if a fault is armed for its RPC."""
        fault = self._take(rpc)
        if fault is None:
            return
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            raise GRPCError(fault.status, fault.message)
