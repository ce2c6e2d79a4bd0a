"""Small readers for the fields a test asserts on, so tests never compare whole messages.

modal_proto changes on nearly every release; a test that pins `FunctionCreateRequest == ...`
breaks on an upgrade for no reason. These helpers pull out just the values that matter and
return plain Python values (tuples, dicts, lists) that read well in an assertion diff.
"""
from __future__ import annotations

from modal_proto import api_pb2


def function_definition(req: api_pb2.FunctionCreateRequest) -> api_pb2.Function:
    """The Function a FunctionCreate carried; with a GPU list it sits inside function_data."""
    if req.HasField("function_data"):
        return req.function_data.ranked_functions[0].function
    return req.function


def gpu(fn: api_pb2.Function) -> tuple[str, int]:
    config = fn.resources.gpu_config
    return config.gpu_type, config.count


def web_server(fn: api_pb2.Function) -> dict[str, object]:
    hook = fn.webhook_config
    return {
        "type": api_pb2.WebhookType.Name(hook.type),
        "port": hook.web_server_port,
        "startup_timeout": hook.web_server_startup_timeout,
    }


def autoscaler(fn: api_pb2.Function) -> dict[str, int]:
    settings = fn.autoscaler_settings
    return {
        "min_containers": settings.min_containers,
        "max_containers": settings.max_containers,
        "buffer_containers": settings.buffer_containers,
        "scaledown_window": settings.scaledown_window,
    }


def volume_mounts(fn: api_pb2.Function) -> dict[str, str]:
    """mount path -> volume id."""
    return {m.mount_path: m.volume_id for m in fn.volume_mounts}


def dockerfile_commands(chain: list[api_pb2.Image]) -> list[str]:
    """All Dockerfile lines of an image chain (ModalStandin.image_chain), base layer first."""
    return [line for image in chain for line in image.dockerfile_commands]
