"""The RPC implementations: one coroutine per RPC, request message in, response message out.

Methods are named exactly like the RPCs in modal_proto/api_grpc.py; service.py routes each call to
the method of the same name, or answers UNIMPLEMENTED (and logs the name) when there is none.
Streaming RPCs are async generators. Only what modal 1.6.4 calls for `modal deploy` /
App.deploy, App.lookup, Function.from_name, Secret and Volume lookup, creation and deletion,
and `modal app stop` / App.stop is implemented (the tests exercise each); run the real client against
the stand-in and read `ModalStandin.unimplemented()` to find what else a new flow needs.
"""
from __future__ import annotations

import hashlib
from typing import AsyncIterator, Callable

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from .inventory import AppRecord, AppState, FunctionRecord, Inventory

# The newest image builder version modal 1.6.4 accepts (modal/_image.py: ImageBuilderVersion).
DEFAULT_IMAGE_BUILDER_VERSION = "2026.10"
APP_PAGE_URL = "https://modal.com/apps/standin/{environment}/{app_id}"


def _is_web(definition: api_pb2.Function) -> bool:
    return definition.webhook_config.type != api_pb2.WEBHOOK_TYPE_UNSPECIFIED


def function_data_from_definition(definition: api_pb2.Function) -> api_pb2.FunctionData:
    """What the server derives from a Function: shared fields copied by name, plus the rank-0 copy.

    The client reads FunctionCreateResponse.function_data back (FunctionInfo._from_function_proto)
    and fails with "no functions provided" unless ranked_functions has at least one entry.
    """
    data = api_pb2.FunctionData()
    source_fields = api_pb2.Function.DESCRIPTOR.fields_by_name
    for field in api_pb2.FunctionData.DESCRIPTOR.fields:
        src = source_fields.get(field.name)
        if src is None or src.type != field.type or src.is_repeated != field.is_repeated:
            continue
        if field.message_type is not None and src.message_type.full_name != field.message_type.full_name:
            continue
        value, target = getattr(definition, field.name), getattr(data, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if hasattr(item, "CopyFrom"):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            target.extend(value)
        elif field.message_type is not None:
            if definition.HasField(field.name):
                target.CopyFrom(value)
        else:
            setattr(data, field.name, value)
    data.ranked_functions.append(api_pb2.FunctionData.RankedFunction(rank=0, function=definition))
    return data


class ControlPlane:
    def __init__(
        self,
        inventory: Inventory,
        blob_url: Callable[[str], str],
        *,
        image_builder_version: str = DEFAULT_IMAGE_BUILDER_VERSION,
        workspace: str = "standin",
    ):
        self.inv = inventory
        self._blob_url = blob_url
        self.image_builder_version = image_builder_version
        self.workspace = workspace

    # -- session -------------------------------------------------------------------------------

    async def ClientHello(self, req: empty_pb2.Empty) -> api_pb2.ClientHelloResponse:
        return api_pb2.ClientHelloResponse(image_builder_version=self.image_builder_version)

    async def WorkspaceNameLookup(self, req: empty_pb2.Empty) -> api_pb2.WorkspaceNameLookupResponse:
        """Workspace.from_context(): the workspace the token belongs to."""
        return api_pb2.WorkspaceNameLookupResponse(workspace_name=self.workspace, username=self.workspace)

    async def EnvironmentGetOrCreate(
        self, req: api_pb2.EnvironmentGetOrCreateRequest
    ) -> api_pb2.EnvironmentGetOrCreateResponse:
        if req.object_creation_type == api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING:
            name, env_id = self.inv.ensure_environment(req.deployment_name)
        else:
            name, env_id = self.inv.environment(req.deployment_name)
        settings = api_pb2.EnvironmentSettings(
            image_builder_version=self.image_builder_version, webhook_suffix=self.workspace
        )
        return api_pb2.EnvironmentGetOrCreateResponse(
            environment_id=env_id, metadata=api_pb2.EnvironmentMetadata(name=name, settings=settings)
        )

    # -- apps ----------------------------------------------------------------------------------

    def _page_url(self, app: AppRecord) -> str:
        return APP_PAGE_URL.format(environment=app.environment, app_id=app.app_id)

    async def AppGetByDeploymentName(
        self, req: api_pb2.AppGetByDeploymentNameRequest
    ) -> api_pb2.AppGetByDeploymentNameResponse:
        environment, _ = self.inv.environment(req.environment_name)
        app = self.inv.deployed_app(req.name, environment)
        if app is not None:
            return api_pb2.AppGetByDeploymentNameResponse(
                app_id=app.app_id, environment_name=environment, lifecycle=app.lifecycle()
            )
        # Not deployed: the CLI's `app stop NAME` still wants the recently stopped app.
        previous = self.inv.last_app_named(req.name, environment)
        return api_pb2.AppGetByDeploymentNameResponse(
            previous_app_id=previous.app_id if previous else "",
            environment_name=environment,
            lifecycle=previous.lifecycle() if previous else None,
        )

    async def AppCreate(self, req: api_pb2.AppCreateRequest) -> api_pb2.AppCreateResponse:
        state = AppState.from_proto(req.app_state) if req.app_state else AppState.INITIALIZING
        app = self.inv.create_app(req.description, req.environment_name, state, dict(req.tags))
        page = self._page_url(app)
        return api_pb2.AppCreateResponse(app_id=app.app_id, app_page_url=page, app_logs_url=page + "/logs")

    async def AppGetOrCreate(self, req: api_pb2.AppGetOrCreateRequest) -> api_pb2.AppGetOrCreateResponse:
        """App.lookup(name): the deployed app, or a new detached one with create_if_missing."""
        environment, _ = self.inv.environment(req.environment_name)
        if req.app_name.startswith("ap-"):
            app = self.inv.app(req.app_name)
        else:
            app = self.inv.deployed_app(req.app_name, environment)
        if app is None:
            if req.object_creation_type != api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING:
                raise GRPCError(Status.NOT_FOUND, f"App '{req.app_name}' not found in environment '{environment}'")
            app = self.inv.create_app(req.app_name, environment, AppState.DEPLOYED)
        return api_pb2.AppGetOrCreateResponse(app_id=app.app_id, handle_metadata=self._app_metadata(app))

    def _app_metadata(self, app: AppRecord) -> api_pb2.AppHandleMetadata:
        meta = api_pb2.AppHandleMetadata(
            description=app.name, app_id=app.app_id, environment_name=app.environment, lifecycle=app.lifecycle()
        )
        for tag, function_id in app.function_ids.items():
            meta.functions[tag] = function_id
        return meta

    async def AppGetLayout(self, req: api_pb2.AppGetLayoutRequest) -> api_pb2.AppGetLayoutResponse:
        """A redeploy starts here: the existing function ids let FunctionCreate update in place."""
        app = self.inv.app(req.app_id)
        layout = api_pb2.AppLayout()
        for tag, function_id in app.function_ids.items():
            layout.function_ids[tag] = function_id
            handle = self._handle(self.inv.function(function_id))
            layout.objects.append(api_pb2.Object(object_id=function_id, function_handle_metadata=handle))
        return api_pb2.AppGetLayoutResponse(app_layout=layout)

    async def AppGetLifecycle(self, req: api_pb2.AppGetLifecycleRequest) -> api_pb2.AppGetLifecycleResponse:
        return api_pb2.AppGetLifecycleResponse(lifecycle=self.inv.app(req.app_id).lifecycle())

    async def AppList(self, req: api_pb2.AppListRequest) -> api_pb2.AppListResponse:
        environment, _ = self.inv.environment(req.environment_name)
        items = [
            api_pb2.AppListResponse.AppListItem(
                app_id=app.app_id, description=app.name, name=app.name, state=app.state.proto,  # type: ignore[arg-type]
                created_at=app.created_at, stopped_at=app.stopped_at, metadata=self._app_metadata(app),
            )
            for app in self.inv.apps_in(environment)
        ]
        return api_pb2.AppListResponse(apps=items)

    async def AppHeartbeat(self, req: api_pb2.AppHeartbeatRequest) -> empty_pb2.Empty:
        self.inv.app(req.app_id)
        return empty_pb2.Empty()

    async def AppPublish(self, req: api_pb2.AppPublishRequest) -> api_pb2.AppPublishResponse:
        missing = [fid for fid in req.function_ids.values() if self.inv.function(fid).definition is None]
        if missing:
            raise GRPCError(Status.FAILED_PRECONDITION, f"Functions were never created: {missing}")
        state = AppState.from_proto(req.app_state) if req.app_state else AppState.DEPLOYED
        app = self.inv.publish_app(
            req.app_id, name=req.name, state=state, function_ids=dict(req.function_ids), tag=req.deployment_tag,
            class_ids=dict(req.class_ids),
            tags=dict(req.tags),
        )
        return api_pb2.AppPublishResponse(url=self._page_url(app), deployed_at=app.deployed_at)

    async def AppClientDisconnect(self, req: api_pb2.AppClientDisconnectRequest) -> empty_pb2.Empty:
        self.inv.disconnect_app(req.app_id)
        return empty_pb2.Empty()

    async def AppGetTags(self, req: api_pb2.AppGetTagsRequest) -> api_pb2.AppGetTagsResponse:
        return api_pb2.AppGetTagsResponse(tags=self.inv.app(req.app_id).tags)

    async def AppSetTags(self, req: api_pb2.AppSetTagsRequest) -> empty_pb2.Empty:
        self.inv.app(req.app_id).tags = dict(req.tags)
        return empty_pb2.Empty()

    async def AppStop(self, req: api_pb2.AppStopRequest) -> empty_pb2.Empty:
        self.inv.stop_app(req.app_id)
        return empty_pb2.Empty()

    async def TaskList(self, req: api_pb2.TaskListRequest) -> api_pb2.TaskListResponse:
        # Nothing ever runs here: no containers to list or stop.
        return api_pb2.TaskListResponse()

    # -- functions -----------------------------------------------------------------------------

    def _handle(self, fn: FunctionRecord) -> api_pb2.FunctionHandleMetadata:
        definition = fn.definition or api_pb2.Function(function_name=fn.name)
        web = _is_web(definition)
        handle = api_pb2.FunctionHandleMetadata(
            function_name=fn.name,
            function_type=definition.function_type,
            web_url=fn.web_url if web else "",
            is_method=definition.is_method,
            definition_id="de-" + hashlib.sha256(definition.SerializeToString(deterministic=True)).hexdigest()[:22],
            function_schema=definition.function_schema,
            supported_input_formats=definition.supported_input_formats,
            supported_output_formats=definition.supported_output_formats,
            app_id=fn.app_id,
        )
        # A class's service function ("Cls.*"): each method's metadata, with its own web URL.
        app = self.inv.app(fn.app_id)
        for name, method in definition.method_definitions.items():
            method_web = method.webhook_config.type != api_pb2.WEBHOOK_TYPE_UNSPECIFIED
            handle.method_handle_metadata[name].CopyFrom(api_pb2.FunctionHandleMetadata(
                function_name=method.function_name or name, function_type=method.function_type,
                web_url=self.inv.web_url(app.name, f"{fn.name.removesuffix('.*')}-{name}") if method_web else "",
                is_method=True, use_method_name=name, app_id=fn.app_id,
                function_schema=method.function_schema,
                supported_input_formats=method.supported_input_formats,
                supported_output_formats=method.supported_output_formats,
            ))
        return handle

    async def FunctionPrecreate(self, req: api_pb2.FunctionPrecreateRequest) -> api_pb2.FunctionPrecreateResponse:
        fn = self.inv.precreate_function(req.app_id, req.function_name, req.existing_function_id)
        handle = self._handle(fn)
        handle.function_type = req.function_type
        if req.webhook_config.type != api_pb2.WEBHOOK_TYPE_UNSPECIFIED:
            handle.web_url = fn.web_url
        return api_pb2.FunctionPrecreateResponse(function_id=fn.function_id, handle_metadata=handle)

    async def FunctionCreate(self, req: api_pb2.FunctionCreateRequest) -> api_pb2.FunctionCreateResponse:
        if req.HasField("function_data"):
            # Several GPU ranks (gpu=[...]): the definitions travel inside function_data.
            data = api_pb2.FunctionData()
            data.CopyFrom(req.function_data)
            definition = api_pb2.Function()
            definition.CopyFrom(data.ranked_functions[0].function)
        else:
            definition = api_pb2.Function()
            definition.CopyFrom(req.function)
            data = None
        fn = self.inv.create_function(req.app_id, definition, req.existing_function_id)
        if _is_web(definition):
            definition.web_url = fn.web_url
        if data is None:
            data = function_data_from_definition(definition)
        if _is_web(definition):
            data.web_url = fn.web_url
        return api_pb2.FunctionCreateResponse(
            function_id=fn.function_id, function=definition, function_data=data, handle_metadata=self._handle(fn)
        )

    async def FunctionGet(self, req: api_pb2.FunctionGetRequest) -> api_pb2.FunctionGetResponse:
        """Function.from_name(app, name): resolves through the deployed app's published layout."""
        environment, _ = self.inv.environment(req.environment_name)
        app = self.inv.deployed_app(req.app_name, environment)
        if app is None:
            raise GRPCError(Status.NOT_FOUND, f"Lookup failed for Function '{req.object_tag}' from the "
                            f"'{req.app_name}' app: App '{req.app_name}' not found in environment '{environment}'.")
        function_id = app.function_ids.get(req.object_tag)
        if function_id is None:
            raise GRPCError(Status.NOT_FOUND, f"Lookup failed for Function '{req.object_tag}' from the "
                            f"'{req.app_name}' app: Function not found.")
        fn = self.inv.function(function_id)
        assert fn.definition is not None
        return api_pb2.FunctionGetResponse(
            function_id=function_id, handle_metadata=self._handle(fn),
            function=function_data_from_definition(fn.definition),
        )

    # -- classes (@app.cls): a class id over its service function "Cls.*" --------------------

    async def ClassCreate(self, req: api_pb2.ClassCreateRequest) -> api_pb2.ClassCreateResponse:
        self.inv.app(req.app_id)
        class_id = req.existing_class_id or self.inv.new_class_id()
        return api_pb2.ClassCreateResponse(class_id=class_id, handle_metadata=api_pb2.ClassHandleMetadata())

    async def ClassGet(self, req: api_pb2.ClassGetRequest) -> api_pb2.ClassGetResponse:
        """Cls.from_name(app, name): the class and its service function, from the deployed app."""
        environment, _ = self.inv.environment(req.environment_name)
        app = self.inv.deployed_app(req.app_name, environment)
        class_id = app.class_ids.get(req.object_tag) if app is not None else None
        function_id = app.function_ids.get(f"{req.object_tag}.*") if app is not None else None
        if class_id is None or function_id is None:
            raise GRPCError(Status.NOT_FOUND, f"Lookup failed for Cls '{req.object_tag}' from the '{req.app_name}' "
                            f"app in environment '{environment}'")
        fn = self.inv.function(function_id)
        return api_pb2.ClassGetResponse(class_id=class_id, handle_metadata=api_pb2.ClassHandleMetadata(
            class_function_id=function_id, class_function_metadata=self._handle(fn)))

    async def FunctionUpdateSchedulingParams(
        self, req: api_pb2.FunctionUpdateSchedulingParamsRequest
    ) -> api_pb2.FunctionUpdateSchedulingParamsResponse:
        """Function.update_autoscaler(min_containers=...): changes the live autoscaler until the next deploy."""
        return api_pb2.FunctionUpdateSchedulingParamsResponse(
            current_settings=self.inv.update_autoscaler(req.function_id, req.settings))

    # -- secrets and volumes -------------------------------------------------------------------

    async def SecretGetOrCreate(self, req: api_pb2.SecretGetOrCreateRequest) -> api_pb2.SecretGetOrCreateResponse:
        secret = self.inv.secret_get_or_create(req)
        return api_pb2.SecretGetOrCreateResponse(secret_id=secret.secret_id, metadata=secret.metadata())

    async def SecretGetInfo(self, req: api_pb2.SecretGetInfoRequest) -> api_pb2.SecretGetInfoResponse:
        secret = self.inv.secret(req.secret_id)
        return api_pb2.SecretGetInfoResponse(metadata=secret.metadata())

    async def SecretDelete(self, req: api_pb2.SecretDeleteRequest) -> empty_pb2.Empty:
        # Secret.objects.delete(name) resolves the name with SecretGetOrCreate, then deletes by id.
        self.inv.delete_secret(req.secret_id)
        return empty_pb2.Empty()

    async def VolumeGetOrCreate(self, req: api_pb2.VolumeGetOrCreateRequest) -> api_pb2.VolumeGetOrCreateResponse:
        volume = self.inv.volume_get_or_create(req)
        return api_pb2.VolumeGetOrCreateResponse(
            volume_id=volume.volume_id, version=volume.version, metadata=volume.metadata()  # type: ignore[arg-type]
        )

    async def VolumeDelete(self, req: api_pb2.VolumeDeleteRequest) -> empty_pb2.Empty:
        self.inv.delete_volume(req.volume_id)
        return empty_pb2.Empty()

    # -- images --------------------------------------------------------------------------------

    def _image_metadata(self, builder_version: str) -> api_pb2.ImageMetadata:
        return api_pb2.ImageMetadata(
            image_builder_version=builder_version or self.image_builder_version,
            python_version_info="Python 3.12.3",
        )

    async def ImageGetOrCreate(self, req: api_pb2.ImageGetOrCreateRequest) -> api_pb2.ImageGetOrCreateResponse:
        image = self.inv.image_get_or_create(req.image, req.builder_version, req.force_build)
        if not image.built:
            # An empty result sends the client to ImageJoinStreaming, as for a real first build.
            return api_pb2.ImageGetOrCreateResponse(image_id=image.image_id)
        return api_pb2.ImageGetOrCreateResponse(
            image_id=image.image_id,
            result=api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS),
            metadata=self._image_metadata(image.builder_version),
        )

    async def ImageJoinStreaming(
        self, req: api_pb2.ImageJoinStreamingRequest
    ) -> AsyncIterator[api_pb2.ImageJoinStreamingResponse]:
        image = self.inv.image(req.image_id)
        if image.build_error:
            result = api_pb2.GenericResult(
                status=api_pb2.GenericResult.GENERIC_STATUS_FAILURE, exception=image.build_error
            )
        else:
            self.inv.mark_built(image.image_id)
            result = api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS)
        log = api_pb2.TaskLogs(
            data=f"[stand-in] built {image.image_id}\n", file_descriptor=api_pb2.FILE_DESCRIPTOR_STDOUT
        )
        yield api_pb2.ImageJoinStreamingResponse(task_logs=[log], entry_id="1")
        yield api_pb2.ImageJoinStreamingResponse(
            result=result, entry_id="2", eof=True, metadata=self._image_metadata(image.builder_version)
        )

    # -- mounts and blobs ----------------------------------------------------------------------

    async def MountBatchedCheckExistence(
        self, req: api_pb2.MountBatchedCheckExistenceRequest
    ) -> api_pb2.MountBatchedCheckExistenceResponse:
        return api_pb2.MountBatchedCheckExistenceResponse(
            missing_sha256_hex_hashes=self.inv.missing_files(list(req.sha256_hex_hashes))
        )

    async def MountPutFile(self, req: api_pb2.MountPutFileRequest) -> api_pb2.MountPutFileResponse:
        if req.WhichOneof("data_oneof") == "data_blob_id":
            data = self.inv.blob(req.data_blob_id)
            if data is None:
                raise GRPCError(Status.NOT_FOUND, f"Blob '{req.data_blob_id}' not found")
            self.inv.put_file(req.sha256_hex, data)
        elif req.WhichOneof("data_oneof") == "data":
            self.inv.put_file(req.sha256_hex, req.data)
        return api_pb2.MountPutFileResponse(exists=not self.inv.missing_files([req.sha256_hex]))

    async def MountGetOrCreate(self, req: api_pb2.MountGetOrCreateRequest) -> api_pb2.MountGetOrCreateResponse:
        mount = self.inv.create_mount(req)
        return api_pb2.MountGetOrCreateResponse(mount_id=mount.mount_id)

    async def BlobCreate(self, req: api_pb2.BlobCreateRequest) -> api_pb2.BlobCreateResponse:
        # Always a single-part upload; the client only goes multipart when the server asks.
        blob_id = self.inv.create_blob()
        return api_pb2.BlobCreateResponse(
            blob_ids=[blob_id], upload_urls=api_pb2.UploadUrlList(items=[self._blob_url(blob_id)])
        )
