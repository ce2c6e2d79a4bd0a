"""A tiny threaded HTTP/1.1 server for stand-ins (stdlib only).

Why the standard library: the stand-ins must run in CI from a fresh clone with nothing but the
project's own install steps, and the fault injection needs direct control of the socket (close
it with an RST and no response, or hold the response back) which a WSGI/ASGI stack hides.
``http.server.ThreadingHTTPServer`` gives keep-alive HTTP/1.1, one thread per connection, and
that control, with no extra dependency.

An *app* is any callable ``app(exchange) -> Reply``. It may also raise :class:`ResetConnection`
to close the socket without a response (the client sees a reset / "server disconnected").
"""
from __future__ import annotations

import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Exchange", "Reply", "ResetConnection", "BackgroundHTTPServer", "json_reply"]

MAX_BODY = 16 * 1024 * 1024


class ResetConnection(Exception):
    """Raised by an app to drop the connection without sending any response."""


@dataclass
class Exchange:
    """One parsed request, plus the server's stop event (for interruptible sleeps)."""

    method: str
    target: str                       # raw request target, e.g. /v2/pods?x=1
    path: str                         # decoded path without the query
    query: dict[str, list[str]]
    headers: dict[str, str]           # lower-case names -> value (last wins)
    body: bytes
    client: tuple[str, int]
    stopping: threading.Event

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; returns True if the server is stopping."""
        return self.stopping.wait(max(0.0, seconds))


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: Optional[str] = None
    headers: dict[str, str] = field(default_factory=dict)
    # An iterable of byte chunks sent with chunked transfer encoding (for SSE streams).
    stream: Optional[Iterable[bytes]] = None


def json_reply(status: int, obj: Any, content_type: str = "application/json", headers: Optional[dict] = None) -> Reply:
    return Reply(status, json.dumps(obj).encode("utf-8"), content_type, dict(headers or {}))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True      # headers and body go out in separate writes
    server_version = "glmserve-standin/1"
    sys_version = ""

    # --- plumbing -------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        self.server._track(self.connection, True)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass
        self.server._track(self.connection, False)  # type: ignore[attr-defined]

    def handle(self) -> None:
        try:
            super().handle()
        except ResetConnection:
            pass
        except (OSError, ValueError):
            # client went away (timeout, kill) or we closed the socket ourselves
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by design
        pass

    # --- dispatch -------------------------------------------------------------------------
    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)

        ex = Exchange(
            method=self.command.upper(),
            target=self.path,
            path=unquote(parts.path),
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client=self.client_address,
            stopping=self.server.stopping,  # type: ignore[attr-defined]
        )
        try:
            reply = self.server.app(ex)  # type: ignore[attr-defined]
        except ResetConnection:
            self._reset()
            raise
        except Exception as e:  # a bug in the stand-in: answer 500 and keep serving
            self.server.errors.append(repr(e))  # type: ignore[attr-defined]
            reply = json_reply(500, {"title": "Internal Server Error", "status": 500,
                                     "detail": f"stand-in bug: {e!r}"}, "application/problem+json")
        self._write(reply)

    def _reset(self) -> None:
        """Close the socket abortively (RST), without a response."""
        sock = self.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.rfile, self.wfile):
            try:
                f.close()
            except (OSError, ValueError):
                pass
        try:
            sock.close()
        except OSError:
            pass
        self.close_connection = True

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        headers = dict(reply.headers)
        if reply.content_type and reply.status != 204:
            headers.setdefault("Content-Type", reply.content_type)
        for k, v in headers.items():
            self.send_header(k, v)
        if reply.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in reply.stream:
                if not chunk:
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            body = b"" if reply.status in (204, 304) or self.command == "HEAD" else reply.body
            if reply.status not in (204, 304):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], app: Callable[[Exchange], Reply], errors: list[str]):
        self.app = app
        self.stopping = threading.Event()
        self.errors = errors
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(sock)

    def close_all(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class BackgroundHTTPServer:
    """Serve ``app`` on ``host:port`` (port 0 = any free port) in a daemon thread."""

    def __init__(self, app: Callable[[Exchange], Reply], host: str = "127.0.0.1", port: int = 0):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("stand-ins bind to the loopback interface only")
        self._app = app
        self._host = host
        self._port = port
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self.errors: list[str] = []   # exceptions raised by the app (stand-in bugs)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stopping(self) -> threading.Event:
        assert self._server is not None
        return self._server.stopping

    def start(self) -> None:
        if self._server is not None:
            return
        self._server = _Server((self._host, self._port), self._app, self.errors)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"standin-http-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.close_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class HttpStandin:
    """What every HTTP stand-in shares: a BackgroundHTTPServer in ``self._http``, its URL, the
    exceptions raised inside it, and use as a context manager. Subclasses add start/stop work."""

    _http: BackgroundHTTPServer

    def start(self):
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT``."""
        return self._http.url

    @property
    def errors(self) -> list[str]:
        """Exceptions raised inside the stand-in (should stay empty)."""
        return self._http.errors
