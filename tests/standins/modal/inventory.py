"""What the stand-in knows about: environments, apps, functions, secrets, volumes, images, mounts, blobs.

The inventory is the stand-in's only state. RPC handlers translate requests into calls on it, and
tests read it back through ModalStandin's helpers. Lookups that fail raise GRPCError with the
status and wording the real control plane uses, because the client turns those into the
exceptions (NotFoundError, AlreadyExistsError, ...) that glmserve has to handle.

Every method takes the inventory lock: RPCs mutate it on the server thread while tests read it
on their own thread.
"""
from __future__ import annotations

import hashlib
import random
import string
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Optional

from grpclib import GRPCError, Status
from modal_proto import api_pb2

DEFAULT_ENVIRONMENT = "main"
_ID_ALPHABET = string.ascii_letters + string.digits

# The CLI only treats an argument as an App id if it matches ^ap-[a-zA-Z0-9]{22}$
# (modal/cli/app.py), so every id follows that shape: prefix, dash, 22 alphanumerics.
ID_SUFFIX_LENGTH = 22

# Maps a function name to the URL its web endpoint is served on.
WebUrlFactory = Callable[[str, str], str]


def default_web_url(app_name: str, function_name: str) -> str:
    """Modal's URL shape, unreachable on purpose: tests that need a live URL pass their own."""
    return f"https://standin--{app_name}-{function_name}.modal.run".lower().replace("_", "-")


class AppState(str, Enum):
    INITIALIZING = "initializing"
    EPHEMERAL = "ephemeral"
    DETACHED = "detached"
    DEPLOYED = "deployed"
    STOPPED = "stopped"

    @property
    def proto(self) -> int:
        return {
            AppState.INITIALIZING: api_pb2.APP_STATE_INITIALIZING,
            AppState.EPHEMERAL: api_pb2.APP_STATE_EPHEMERAL,
            AppState.DETACHED: api_pb2.APP_STATE_DETACHED,
            AppState.DEPLOYED: api_pb2.APP_STATE_DEPLOYED,
            AppState.STOPPED: api_pb2.APP_STATE_STOPPED,
        }[self]

    @classmethod
    def from_proto(cls, value: int) -> "AppState":
        for state in cls:
            if state.proto == value:
                return state
        return cls.INITIALIZING


@dataclass
class FunctionRecord:
    function_id: str
    app_id: str
    name: str
    web_url: str = ""
    # The last FunctionCreate definition; None while only precreated.
    definition: Optional[api_pb2.Function] = field(default=None, repr=False)
    # The autoscaler as it stands: the definition's settings at each deploy (a deploy resets
    # them, as on Modal), then each update_autoscaler call's fields on top.
    autoscaler: api_pb2.AutoscalerSettings = field(default_factory=api_pb2.AutoscalerSettings, repr=False)


@dataclass
class AppRecord:
    app_id: str
    name: str
    environment: str
    state: AppState
    created_at: float
    deployed_at: float = 0.0
    stopped_at: float = 0.0
    # Counts publishes, like the deployment version `modal app history` shows.
    version: int = 0
    deployment_tag: str = ""
    # tag -> function id, as published by the last AppPublish.
    function_ids: dict[str, str] = field(default_factory=dict)
    # class name -> class id (a @app.cls), as published by the last AppPublish.
    class_ids: dict[str, str] = field(default_factory=dict)
    # The App's own tags (App(tags=...), AppPublish, AppSetTags): key -> value.
    tags: dict[str, str] = field(default_factory=dict)

    def lifecycle(self) -> api_pb2.AppLifecycle:
        return api_pb2.AppLifecycle(
            app_state=self.state.proto,  # type: ignore[arg-type]
            created_at=self.created_at,
            deployed_at=self.deployed_at,
            stopped_at=self.stopped_at,
            version=self.version,
        )


@dataclass(repr=False)
class SecretRecord:
    secret_id: str
    name: str  # "" for anonymous (Secret.from_dict) secrets
    environment: str
    values: dict[str, str]
    created_at: float

    @property
    def keys(self) -> list[str]:
        return sorted(self.values)

    def __repr__(self) -> str:
        # Values never leave the record through repr: test output and logs only see key names.
        return f"SecretRecord(secret_id={self.secret_id!r}, name={self.name!r}, keys={self.keys!r})"

    def metadata(self) -> api_pb2.SecretMetadata:
        return api_pb2.SecretMetadata(
            name=self.name, keys=self.keys, environment_name=self.environment,
            creation_info=api_pb2.CreationInfo(created_at=self.created_at),
        )


@dataclass
class VolumeRecord:
    volume_id: str
    name: str  # "" for anonymous volumes
    environment: str
    version: int
    created_at: float

    def metadata(self) -> api_pb2.VolumeMetadata:
        return api_pb2.VolumeMetadata(
            name=self.name, version=self.version,  # type: ignore[arg-type]
            creation_info=api_pb2.CreationInfo(created_at=self.created_at),
        )


@dataclass
class ImageRecord:
    image_id: str
    definition: api_pb2.Image = field(repr=False)
    builder_version: str
    # Unbuilt images make the client wait on ImageJoinStreaming, as a real first build does.
    built: bool = False
    build_error: str = ""


@dataclass
class MountRecord:
    mount_id: str
    app_id: str
    name: str
    files: dict[str, str]  # remote filename -> sha256 hex


class IdMaker:
    def __init__(self, seed: Optional[int] = None):
        self._rng = random.Random(seed)

    def new(self, prefix: str) -> str:
        return f"{prefix}-" + "".join(self._rng.choices(_ID_ALPHABET, k=ID_SUFFIX_LENGTH))


def _not_found(kind: str, name: str, environment: str) -> GRPCError:
    # Real server wording, e.g. "Secret 'huggingface' not found in environment 'main'".
    return GRPCError(Status.NOT_FOUND, f"{kind} '{name}' not found in environment '{environment}'")


def _already_exists(kind: str, name: str, environment: str) -> GRPCError:
    return GRPCError(Status.ALREADY_EXISTS, f"{kind} '{name}' already exists in environment '{environment}'")


_NAMED_CREATE_TYPES = (
    api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING,
    api_pb2.OBJECT_CREATION_TYPE_CREATE_FAIL_IF_EXISTS,
    api_pb2.OBJECT_CREATION_TYPE_CREATE_OVERWRITE_IF_EXISTS,
)


class Inventory:
    def __init__(
        self,
        *,
        environments: tuple[str, ...] = (DEFAULT_ENVIRONMENT,),
        web_url: WebUrlFactory = default_web_url,
        seed: Optional[int] = None,
        clock: Callable[[], float] = time.time,
    ):
        self._lock = threading.RLock()
        self._ids = IdMaker(seed)
        self._clock = clock
        self.web_url = web_url
        self.default_environment = environments[0]
        self.environments: dict[str, str] = {name: self._ids.new("en") for name in environments}
        self.apps: dict[str, AppRecord] = {}
        self.functions: dict[str, FunctionRecord] = {}
        self.secrets: dict[str, SecretRecord] = {}
        self.volumes: dict[str, VolumeRecord] = {}
        self.images: dict[str, ImageRecord] = {}
        self._image_cache: dict[bytes, str] = {}
        self.mounts: dict[str, MountRecord] = {}
        self.file_contents: dict[str, bytes] = {}  # sha256 hex -> bytes, from MountPutFile or blobs
        self.blobs: dict[str, bytes] = {}
        self._pending_build_errors: list[str] = []

    # -- environments --------------------------------------------------------------------------

    def environment(self, name: str) -> tuple[str, str]:
        """Resolve an environment name ("" means the default) to (name, id)."""
        with self._lock:
            name = name or self.default_environment
            if name not in self.environments:
                raise GRPCError(Status.NOT_FOUND, f"Environment '{name}' not found")
            return name, self.environments[name]

    def ensure_environment(self, name: str) -> tuple[str, str]:
        with self._lock:
            if name and name not in self.environments:
                self.environments[name] = self._ids.new("en")
            return self.environment(name)

    # -- apps ----------------------------------------------------------------------------------

    def create_app(self, name: str, environment: str, state: AppState,
                   tags: Optional[dict[str, str]] = None) -> AppRecord:
        with self._lock:
            environment, _ = self.environment(environment)
            app = AppRecord(self._ids.new("ap"), name, environment, state, created_at=self._clock(),
                            tags=dict(tags or {}))
            self.apps[app.app_id] = app
            return app

    def app(self, app_id: str) -> AppRecord:
        with self._lock:
            if app_id not in self.apps:
                raise GRPCError(Status.NOT_FOUND, f"App '{app_id}' not found")
            return self.apps[app_id]

    def deployed_app(self, name: str, environment: str) -> Optional[AppRecord]:
        with self._lock:
            environment, _ = self.environment(environment)
            for app in self.apps.values():
                if app.name == name and app.environment == environment and app.state == AppState.DEPLOYED:
                    return app
            return None

    def last_app_named(self, name: str, environment: str) -> Optional[AppRecord]:
        """The most recent app ever published under this name, stopped or not."""
        with self._lock:
            environment, _ = self.environment(environment)
            named = [a for a in self.apps.values() if a.name == name and a.environment == environment and a.version]
            return max(named, key=lambda a: a.created_at, default=None)

    def all_apps(self) -> list[AppRecord]:
        with self._lock:
            return list(self.apps.values())

    def latest_app_named(self, name: str, environment: str) -> Optional[AppRecord]:
        """The most recently created app under this name, whatever became of it."""
        with self._lock:
            environment, _ = self.environment(environment)
            named = [a for a in self.apps.values() if a.name == name and a.environment == environment]
            return max(named, key=lambda a: a.created_at, default=None)

    def publish_app(
        self, app_id: str, *, name: str, state: AppState, function_ids: dict[str, str], tag: str,
        class_ids: Optional[dict[str, str]] = None,
        tags: Optional[dict[str, str]] = None,
    ) -> AppRecord:
        with self._lock:
            app = self.app(app_id)
            if app.state == AppState.STOPPED:
                raise GRPCError(Status.FAILED_PRECONDITION, f"App '{app_id}' is stopped")
            if name:
                other = self.deployed_app(name, app.environment)
                if other is not None and other.app_id != app_id:
                    # A second deployment under the same name replaces the first.
                    self._stop(other)
                app.name = name
            app.state = state
            app.function_ids = dict(function_ids)
            app.class_ids = dict(class_ids or {})
            app.deployment_tag = tag
            if tags is not None:
                app.tags = dict(tags)
            app.version += 1
            app.deployed_at = self._clock()
            return app

    def apps_in(self, environment: str) -> list[AppRecord]:
        with self._lock:
            environment, _ = self.environment(environment)
            return [a for a in self.apps.values() if a.environment == environment]

    def stop_app(self, app_id: str) -> AppRecord:
        with self._lock:
            app = self.app(app_id)
            self._stop(app)
            return app

    def disconnect_app(self, app_id: str) -> AppRecord:
        """AppClientDisconnect: stops apps that never got published or were only running with the client."""
        with self._lock:
            app = self.app(app_id)
            if app.state in (AppState.INITIALIZING, AppState.EPHEMERAL):
                self._stop(app)
            return app

    def _stop(self, app: AppRecord) -> None:
        if app.state != AppState.STOPPED:
            app.state = AppState.STOPPED
            app.stopped_at = self._clock()

    # -- functions -----------------------------------------------------------------------------

    def precreate_function(self, app_id: str, name: str, existing_id: str) -> FunctionRecord:
        with self._lock:
            app = self.app(app_id)
            if existing_id and existing_id in self.functions:
                fn = self.functions[existing_id]
                fn.app_id = app_id
            else:
                fn = FunctionRecord(self._ids.new("fu"), app_id, name)
                self.functions[fn.function_id] = fn
            fn.name = name
            fn.web_url = self.web_url(app.name, name)
            return fn

    def new_class_id(self) -> str:
        with self._lock:
            return self._ids.new("cs")

    def function(self, function_id: str) -> FunctionRecord:
        with self._lock:
            if function_id not in self.functions:
                raise GRPCError(Status.NOT_FOUND, f"Function '{function_id}' not found")
            return self.functions[function_id]

    def create_function(self, app_id: str, definition: api_pb2.Function, existing_id: str) -> FunctionRecord:
        with self._lock:
            fn = self.precreate_function(app_id, definition.function_name, existing_id)
            fn.definition = definition
            fn.autoscaler = api_pb2.AutoscalerSettings()
            fn.autoscaler.CopyFrom(definition.autoscaler_settings)
            return fn

    def update_autoscaler(self, function_id: str, settings: api_pb2.AutoscalerSettings) -> api_pb2.AutoscalerSettings:
        """update_autoscaler(...): the fields the call sets replace the current ones."""
        with self._lock:
            fn = self.function(function_id)
            for f, value in settings.ListFields():
                setattr(fn.autoscaler, f.name, value)
            current = api_pb2.AutoscalerSettings()
            current.CopyFrom(fn.autoscaler)
            return current

    # -- secrets -------------------------------------------------------------------------------

    def secret_get_or_create(self, req: api_pb2.SecretGetOrCreateRequest) -> SecretRecord:
        with self._lock:
            environment, _ = self.environment(req.environment_name)
            values = dict(req.env_dict)
            if not req.deployment_name:
                # from_dict / from_dotenv: an anonymous secret owned by the app (or ephemeral).
                return self._add_secret("", environment, values)
            existing = self.named_secret(req.deployment_name, environment)
            kind = req.object_creation_type
            if kind == api_pb2.OBJECT_CREATION_TYPE_UNSPECIFIED:
                if existing is None:
                    raise _not_found("Secret", req.deployment_name, environment)
                missing = [k for k in req.required_keys if k not in existing.values]
                if missing:
                    raise GRPCError(
                        Status.NOT_FOUND,
                        f"Secret '{req.deployment_name}' is missing required key(s): {', '.join(missing)}",
                    )
                return existing
            if kind not in _NAMED_CREATE_TYPES:
                raise GRPCError(Status.INVALID_ARGUMENT, f"Unsupported object_creation_type {kind} for a named Secret")
            if existing is None:
                return self._add_secret(req.deployment_name, environment, values)
            if kind == api_pb2.OBJECT_CREATION_TYPE_CREATE_FAIL_IF_EXISTS:
                raise _already_exists("Secret", req.deployment_name, environment)
            if kind == api_pb2.OBJECT_CREATION_TYPE_CREATE_OVERWRITE_IF_EXISTS:
                existing.values = values
            return existing

    def secret(self, secret_id: str) -> SecretRecord:
        with self._lock:
            if secret_id not in self.secrets:
                raise GRPCError(Status.NOT_FOUND, f"Secret '{secret_id}' not found")
            return self.secrets[secret_id]

    def delete_secret(self, secret_id: str) -> SecretRecord:
        with self._lock:
            return self.secrets.pop(self.secret(secret_id).secret_id)

    def named_secret(self, name: str, environment: str = "") -> Optional[SecretRecord]:
        with self._lock:
            environment, _ = self.environment(environment)
            for secret in self.secrets.values():
                if secret.name == name and secret.environment == environment:
                    return secret
            return None

    def add_secret(self, name: str, values: dict[str, str], environment: str = "") -> SecretRecord:
        with self._lock:
            environment, _ = self.environment(environment)
            existing = self.named_secret(name, environment)
            if existing is not None:
                existing.values = dict(values)
                return existing
            return self._add_secret(name, environment, dict(values))

    def _add_secret(self, name: str, environment: str, values: dict[str, str]) -> SecretRecord:
        secret = SecretRecord(self._ids.new("st"), name, environment, values, created_at=self._clock())
        self.secrets[secret.secret_id] = secret
        return secret

    # -- volumes -------------------------------------------------------------------------------

    def volume_get_or_create(self, req: api_pb2.VolumeGetOrCreateRequest) -> VolumeRecord:
        with self._lock:
            environment, _ = self.environment(req.environment_name)
            version = req.version or api_pb2.VOLUME_FS_VERSION_V2
            if not req.deployment_name:
                return self._add_volume("", environment, version)
            existing = self.named_volume(req.deployment_name, environment)
            kind = req.object_creation_type
            if existing is None:
                if kind == api_pb2.OBJECT_CREATION_TYPE_UNSPECIFIED:
                    raise _not_found("Volume", req.deployment_name, environment)
                return self._add_volume(req.deployment_name, environment, version)
            if kind == api_pb2.OBJECT_CREATION_TYPE_CREATE_FAIL_IF_EXISTS:
                raise _already_exists("Volume", req.deployment_name, environment)
            return existing

    def delete_volume(self, volume_id: str) -> VolumeRecord:
        with self._lock:
            if volume_id not in self.volumes:
                raise GRPCError(Status.NOT_FOUND, f"Volume '{volume_id}' not found")
            return self.volumes.pop(volume_id)

    def named_volume(self, name: str, environment: str = "") -> Optional[VolumeRecord]:
        with self._lock:
            environment, _ = self.environment(environment)
            for volume in self.volumes.values():
                if volume.name == name and volume.environment == environment:
                    return volume
            return None

    def _add_volume(self, name: str, environment: str, version: int) -> VolumeRecord:
        volume = VolumeRecord(self._ids.new("vo"), name, environment, version, created_at=self._clock())
        self.volumes[volume.volume_id] = volume
        return volume

    # -- images --------------------------------------------------------------------------------

    def image_get_or_create(self, definition: api_pb2.Image, builder_version: str, force_build: bool) -> ImageRecord:
        """Identical definitions share one id (and one build), like Modal's image cache."""
        with self._lock:
            key = builder_version.encode() + b"\0" + definition.SerializeToString(deterministic=True)
            image_id = self._image_cache.get(key)
            if image_id is not None and not force_build and not self.images[image_id].build_error:
                return self.images[image_id]
            image = ImageRecord(self._ids.new("im"), definition, builder_version)
            if self._pending_build_errors:
                image.build_error = self._pending_build_errors.pop(0)
            self.images[image.image_id] = image
            self._image_cache[key] = image.image_id
            return image

    def fail_next_image_build(self, error: str) -> None:
        with self._lock:
            self._pending_build_errors.append(error)

    def mark_built(self, image_id: str) -> None:
        with self._lock:
            self.image(image_id).built = True

    def image(self, image_id: str) -> ImageRecord:
        with self._lock:
            if image_id not in self.images:
                raise GRPCError(Status.NOT_FOUND, f"Image '{image_id}' not found")
            return self.images[image_id]

    # -- mounts and blobs ----------------------------------------------------------------------

    def missing_files(self, sha256_hexes: list[str]) -> list[str]:
        with self._lock:
            return [h for h in sha256_hexes if h not in self.file_contents]

    def put_file(self, sha256_hex: str, data: bytes) -> None:
        with self._lock:
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha256_hex:
                raise GRPCError(Status.INVALID_ARGUMENT, f"sha256 mismatch: got {actual}, expected {sha256_hex}")
            self.file_contents[sha256_hex] = data

    def create_mount(self, req: api_pb2.MountGetOrCreateRequest) -> MountRecord:
        with self._lock:
            if req.deployment_name and not req.files:
                # Mount.from_name: a lookup of a published mount.
                for mount in self.mounts.values():
                    if mount.name == req.deployment_name:
                        return mount
                if req.namespace != api_pb2.DEPLOYMENT_NAMESPACE_GLOBAL:
                    raise GRPCError(Status.NOT_FOUND, f"Mount '{req.deployment_name}' not found")
                # Modal publishes the client package and Python builds as global mounts
                # (e.g. "modal-client-mount-1.6.4"); every deploy looks one up. They exist here on demand.
                mount = MountRecord(self._ids.new("mo"), "", req.deployment_name, {})
                self.mounts[mount.mount_id] = mount
                return mount
            missing = [f.filename for f in req.files if f.sha256_hex not in self.file_contents]
            if missing:
                raise GRPCError(Status.FAILED_PRECONDITION, f"Mount files were never uploaded: {missing}")
            files = {f.filename: f.sha256_hex for f in req.files}
            mount = MountRecord(self._ids.new("mo"), req.app_id, req.deployment_name, files)
            self.mounts[mount.mount_id] = mount
            return mount

    def create_blob(self) -> str:
        with self._lock:
            blob_id = self._ids.new("bl")
            self.blobs[blob_id] = b""
            return blob_id

    def store_blob(self, blob_id: str, data: bytes) -> bool:
        with self._lock:
            if blob_id not in self.blobs:
                return False
            self.blobs[blob_id] = data
            return True

    def blob(self, blob_id: str) -> Optional[bytes]:
        with self._lock:
            return self.blobs.get(blob_id)

    def uploaded_files(self) -> dict[str, bytes]:
        """Remote path -> contents, over every mount the client created."""
        with self._lock:
            out: dict[str, bytes] = {}
            for mount in self.mounts.values():
                for filename, sha in mount.files.items():
                    out[filename] = self.file_contents[sha]
            return out
