"""The grpclib servicer: modal_proto's ModalClientBase with every RPC routed through one dispatcher.

ModalClientBase declares ~285 abstract RPC methods and a `__mapping__` that binds each to its
request/response types. Rather than hand-write 285 stubs, the subclass below fills every abstract
method with a dispatcher that, for each call:
  1. records the decoded request (RequestLog),
  2. applies any armed fault (FaultPlan) before touching state,
  3. runs the ControlPlane method of the same name, or answers UNIMPLEMENTED and notes the name.
The inherited `__mapping__` then serves all of them with the right message types.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Optional

from grpclib import GRPCError, Status
from grpclib.server import Stream
from modal_proto import api_grpc

from .faults import FaultPlan
from .recorder import RequestLog

log = logging.getLogger("standins.modal")


class ModalService(api_grpc.ModalClientBase):
    def __init__(
        self,
        control_plane: Any,
        requests: RequestLog,
        faults: FaultPlan,
        credentials: Optional[tuple[str, str]] = None,
        switch: Any = None,
    ):
        self._impl = control_plane
        self._requests = requests
        self._faults = faults
        self._credentials = credentials
        # A KillSwitch (tests/standins/killswitch.py): told of every RPC carried out, before
        # its answer is sent, so a test can kill the caller at that very moment.
        self._switch = switch

    def _check_credentials(self, metadata: Any) -> None:
        if self._credentials is None:
            return
        token_id, token_secret = self._credentials
        if metadata.get("x-modal-token-id") != token_id or metadata.get("x-modal-token-secret") != token_secret:
            raise GRPCError(Status.UNAUTHENTICATED, "Invalid token id or secret")

    async def _dispatch(self, rpc: str, stream: Stream) -> None:
        request = await stream.recv_message()
        call = self._requests.add(rpc, request, dict(stream.metadata or {}))
        try:
            self._check_credentials(stream.metadata or {})
            await self._faults.apply(rpc)
            method = getattr(self._impl, rpc, None)
            if method is None:
                self._requests.note_unimplemented(rpc)
                log.warning("Modal stand-in: unimplemented RPC %s", rpc)
                raise GRPCError(Status.UNIMPLEMENTED, f"the Modal stand-in does not implement {rpc}")
            if inspect.isasyncgenfunction(method):
                async for reply in method(request):
                    await stream.send_message(reply)
            else:
                reply = await method(request)
                if self._switch is not None:
                    self._switch.record(rpc)
                await stream.send_message(reply)
        except GRPCError as exc:
            call.status, call.error = exc.status, exc.message or ""
            raise
        except Exception as exc:
            # A bug in the stand-in: surface it to the client as INTERNAL with the cause attached,
            # instead of grpclib's bare UNKNOWN, and keep the traceback in the test log.
            log.exception("Modal stand-in: %s handler failed", rpc)
            call.status, call.error = Status.INTERNAL, repr(exc)
            raise GRPCError(Status.INTERNAL, f"stand-in {rpc} handler failed: {exc!r}") from exc
        call.status = Status.OK


def _dispatcher(rpc: str):
    async def method(self: ModalService, stream: Stream) -> None:
        await self._dispatch(rpc, stream)

    method.__name__ = method.__qualname__ = rpc
    return method


for _rpc in api_grpc.ModalClientBase.__abstractmethods__:
    setattr(ModalService, _rpc, _dispatcher(_rpc))
ModalService.__abstractmethods__ = frozenset()
