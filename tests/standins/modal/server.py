"""ModalStandin: the control plane and blob store on 127.0.0.1, served from a background thread.

The stand-in owns its event loop in a thread so the real modal client — which runs its own
synchronicity loop and blocks the caller — can be used from ordinary synchronous tests, in-process
or from a subprocess (`modal deploy`). Everything a test reads (inventory, request log) is guarded
by locks, because the server thread writes it while the test thread reads.
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Optional, Union

from google.protobuf.message import Message
from grpclib import Status
from grpclib.server import Server
from modal_proto import api_pb2

from tests.standins.killswitch import KillSwitch

from .blobs import BlobServer
from .control_plane import DEFAULT_IMAGE_BUILDER_VERSION, ControlPlane
from .faults import Fault, FaultPlan
from .inventory import (
    DEFAULT_ENVIRONMENT,
    AppRecord,
    FunctionRecord,
    Inventory,
    SecretRecord,
    VolumeRecord,
    WebUrlFactory,
    default_web_url,
)
from .recorder import Call, RequestLog
from .service import ModalService
from .sockets import bound_socket

HOST = "127.0.0.1"
DEFAULT_CREDENTIALS = ("ak-test", "as-test")


def _as_factory(web_url: Union[None, str, WebUrlFactory]) -> WebUrlFactory:
    if web_url is None:
        return default_web_url
    if isinstance(web_url, str):
        # One fixed URL for every web function (a single local engine stand-in, typically).
        fixed = web_url
        return lambda app_name, function_name: fixed
    return web_url


class ModalStandin:
    """A local Modal control plane for the real modal client.

    Args:
        web_url: the URL FunctionCreate reports for web functions: a fixed string, or a callable
            (app_name, function_name) -> url. Defaults to an unreachable *.modal.run URL.
        environments: environment names that exist; the first is the default ("" resolves to it).
        secrets: named secrets to seed, name -> env dict (in the default environment).
        credentials: if given, (token_id, token_secret) every call must carry (else UNAUTHENTICATED).
        image_builder_version: what the environment reports; must be one modal 1.6.4 accepts.
        port: gRPC port; 0 picks a free one (read it back from `.url`).
        seed: makes generated ids reproducible.
        switch: a KillSwitch told of every (unary) RPC carried out, before its answer is sent.
    """

    def __init__(
        self,
        *,
        web_url: Union[None, str, WebUrlFactory] = None,
        environments: tuple[str, ...] = (DEFAULT_ENVIRONMENT,),
        secrets: Optional[dict[str, dict[str, str]]] = None,
        credentials: Optional[tuple[str, str]] = None,
        image_builder_version: str = DEFAULT_IMAGE_BUILDER_VERSION,
        port: int = 0,
        seed: Optional[int] = None,
        switch: Optional[KillSwitch] = None,
    ):
        self.inventory = Inventory(environments=environments, web_url=_as_factory(web_url), seed=seed)
        self.request_log = RequestLog()
        self.faults = FaultPlan()
        self._blobs = BlobServer(self.inventory, HOST)
        self._control_plane = ControlPlane(
            self.inventory, self._blobs.url_for, image_builder_version=image_builder_version
        )
        self._credentials = credentials
        self.switch = switch
        self._port = port
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._server: Optional[Server] = None
        self.url = ""
        for name, values in (secrets or {}).items():
            self.add_secret(name, values)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "ModalStandin":
        if self._thread is not None:
            raise RuntimeError("ModalStandin already started")
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start_servers())  # type: ignore[union-attr]
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                started.set()
                return
            started.set()
            self._loop.run_forever()  # type: ignore[union-attr]

        self._thread = threading.Thread(target=run, name="modal-standin", daemon=True)
        self._thread.start()
        started.wait(timeout=10)
        if failure or not self.url:
            self._thread = None
            raise RuntimeError("Modal stand-in failed to start") from (failure[0] if failure else None)
        return self

    async def _start_servers(self) -> None:
        await self._blobs.start()
        service = ModalService(self._control_plane, self.request_log, self.faults, self._credentials, self.switch)
        self._server = Server([service])
        sock = bound_socket(HOST, self._port)
        await self._server.start(sock=sock)
        self.url = f"http://{HOST}:{sock.getsockname()[1]}"

    async def _stop_servers(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self._blobs.stop()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop_servers(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._thread = self._loop = None

    def __enter__(self) -> "ModalStandin":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- client configuration ------------------------------------------------------------------

    def client_env(self, config_path: Union[str, Path], environment: Optional[str] = None) -> dict[str, str]:
        """Environment variables that point the real modal client (in-process or a subprocess) here.

        config_path should name a file that does not exist (or an empty one), so a developer's
        ~/.modal.toml profile cannot leak a real server URL or token into the test.
        """
        token_id, token_secret = self._credentials or DEFAULT_CREDENTIALS
        env = {
            "MODAL_SERVER_URL": self.url,
            "MODAL_TOKEN_ID": token_id,
            "MODAL_TOKEN_SECRET": token_secret,
            "MODAL_CONFIG_PATH": str(config_path),
            # No HTTP(S)_PROXY detour for the gRPC channel (modal/_utils/proxy_support.py).
            "MODAL_DISABLE_API_PROXY": "1",
        }
        if environment is not None:
            env["MODAL_ENVIRONMENT"] = environment
        return env

    # -- faults --------------------------------------------------------------------------------

    def inject(
        self,
        rpc: str,
        status: Optional[Status] = None,
        *,
        times: Optional[int] = 1,
        message: str = "",
        delay: float = 0.0,
    ) -> Fault:
        """Fail (or delay) the next `times` calls of `rpc`; times=None means every call until cleared."""
        return self.faults.inject(rpc, status, times=times, message=message, delay=delay)

    def clear_faults(self, rpc: Optional[str] = None) -> None:
        self.faults.clear(rpc)

    def fail_next_image_build(self, error: str = "stand-in: image build failed") -> None:
        """The next new image's build ends in GENERIC_STATUS_FAILURE with this exception text."""
        self.inventory.fail_next_image_build(error)

    # -- request log ---------------------------------------------------------------------------

    def calls(self, rpc: Optional[str] = None) -> list[Call]:
        """Every call (all of them, or of one RPC), including failed attempts, with their status."""
        return self.request_log.calls(rpc)

    def requests(self, rpc: str, *, ok_only: bool = False) -> list[Message]:
        return [c.request for c in self.request_log.calls(rpc) if c.ok or not ok_only]

    def last(self, rpc: str) -> Message:
        calls = self.request_log.calls(rpc)
        if not calls:
            seen = sorted({c.rpc for c in self.request_log.calls()})
            raise AssertionError(f"no {rpc} request was made; calls seen: {seen}")
        return calls[-1].request

    def rpc_names(self) -> set[str]:
        return {c.rpc for c in self.request_log.calls()}

    def unimplemented(self) -> list[str]:
        """RPCs the client called that the stand-in answered with UNIMPLEMENTED."""
        return self.request_log.unimplemented()

    def clear_requests(self) -> None:
        self.request_log.clear()

    # -- inventory -----------------------------------------------------------------------------

    def add_secret(self, name: str, values: dict[str, str], environment: str = "") -> SecretRecord:
        return self.inventory.add_secret(name, values, environment)

    def secret(self, name: str, environment: str = "") -> Optional[SecretRecord]:
        return self.inventory.named_secret(name, environment)

    def volume(self, name: str, environment: str = "") -> Optional[VolumeRecord]:
        return self.inventory.named_volume(name, environment)

    def app(self, name_or_id: str, environment: str = "") -> Optional[AppRecord]:
        """An app by id; by name, the deployed one, else the latest created (e.g. a failed deploy's)."""
        if name_or_id.startswith("ap-"):
            return self.inventory.apps.get(name_or_id)
        return self.inventory.deployed_app(name_or_id, environment) or self.inventory.latest_app_named(
            name_or_id, environment
        )

    def apps(self, name: Optional[str] = None) -> list[AppRecord]:
        """Every app the stand-in has seen (or those created under `name`), oldest first."""
        return [a for a in self.inventory.all_apps() if name is None or a.name == name]

    def functions(self, app_name_or_id: str) -> dict[str, FunctionRecord]:
        """tag -> function record, as the app's last publish laid them out."""
        app = self.app(app_name_or_id)
        if app is None:
            return {}
        return {tag: self.inventory.function(fid) for tag, fid in app.function_ids.items()}

    def image_chain(self, image_id: str) -> list[api_pb2.Image]:
        """The image's layers from the base (e.g. from_registry) to `image_id` itself."""
        chain: list[api_pb2.Image] = []
        while image_id:
            image = self.inventory.image(image_id).definition
            chain.append(image)
            image_id = image.base_images[0].image_id if image.base_images else ""
        return chain[::-1]

    def uploaded_files(self) -> dict[str, bytes]:
        """Remote path -> bytes of every file the client uploaded into a mount (e.g. /root/app.py)."""
        return self.inventory.uploaded_files()

    def set_workspace(self, workspace: str) -> None:
        """The workspace the token leads to from now on (as if it were another workspace's token)."""
        self._control_plane.workspace = workspace

    def set_web_url(self, web_url: Union[str, WebUrlFactory]) -> None:
        self.inventory.web_url = _as_factory(web_url)

    def __repr__(self) -> str:
        return f"ModalStandin(url={self.url!r}, apps={len(self.inventory.apps)}, secrets={len(self.inventory.secrets)})"
