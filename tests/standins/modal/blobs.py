"""The blob store's HTTP side: where BlobCreate's upload URLs point.

Real Modal hands out presigned S3 URLs. The client PUTs the bytes and then checks the response's
ETag against the MD5 of what it sent (modal/_utils/blob_utils.py: _upload_to_s3_url), so the
ETag here has to be the quoted MD5 hex digest, as S3 returns for single-part uploads.
"""
from __future__ import annotations

import hashlib
from typing import Optional

from aiohttp import web

from .inventory import Inventory
from .sockets import bound_socket


class BlobServer:
    def __init__(self, inventory: Inventory, host: str):
        self._inventory = inventory
        self._host = host
        self._runner: Optional[web.AppRunner] = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application(client_max_size=1024**3)
        app.router.add_put("/blobs/{blob_id}", self._put)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = bound_socket(self._host, 0)
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://{self._host}:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url_for(self, blob_id: str) -> str:
        return f"{self.url}/blobs/{blob_id}"

    async def _put(self, request: web.Request) -> web.Response:
        data = await request.read()
        if not self._inventory.store_blob(request.match_info["blob_id"], data):
            return web.Response(status=404, text="unknown blob id (no BlobCreate for it)")
        return web.Response(status=200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})
