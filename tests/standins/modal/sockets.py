"""Listening sockets for the stand-in's servers."""
from __future__ import annotations

import socket


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound before serving, so port 0 can be read back without server internals.

    proto must be IPPROTO_TCP, not the default 0: asyncio only sets TCP_NODELAY on accepted
    sockets whose proto says TCP, and with Nagle on every small gRPC reply waits for the
    client's delayed ACK (~40 ms per RPC; a deploy makes ~20 of them).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock
