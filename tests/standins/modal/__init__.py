"""A local stand-in for Modal's control plane that the real modal client (1.6.4) deploys to.

    from tests.standins.modal import ModalStandin

    with ModalStandin(web_url="http://127.0.0.1:8000", secrets={"huggingface": {"HF_TOKEN": "x"}}) as modal_api:
        env = modal_api.client_env(tmp_path / "modal.toml")   # MODAL_SERVER_URL, tokens, ...
        ...run `modal deploy` or app.deploy() with env...
        modal_api.last("FunctionCreate").function.resources.gpu_config.count
"""
from .client import deploy_file, import_module_from_path, modal_client_env, reset_modal_client
from .fields import (
    autoscaler,
    dockerfile_commands,
    function_definition,
    gpu,
    volume_mounts,
    web_server,
)
from .inventory import AppRecord, AppState, FunctionRecord, SecretRecord, VolumeRecord
from .recorder import Call
from .server import ModalStandin

__all__ = [
    "AppRecord",
    "AppState",
    "Call",
    "FunctionRecord",
    "ModalStandin",
    "SecretRecord",
    "VolumeRecord",
    "autoscaler",
    "dockerfile_commands",
    "function_definition",
    "deploy_file",
    "gpu",
    "import_module_from_path",
    "modal_client_env",
    "reset_modal_client",
    "volume_mounts",
    "web_server",
]
