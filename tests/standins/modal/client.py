"""Pointing the real modal client at a stand-in from inside the test process, and deploying with it.

Three pieces of modal's process-wide state outlive a single test and have to be reset:
  * `modal.client._Client._client_from_env`: the cached client, still connected to the previous
    stand-in's port;
  * `modal._environments.ENVIRONMENT_CACHE`: environment handles bound to that closed client;
  * `modal.config._user_config`: the profile read from ~/.modal.toml (or MODAL_CONFIG_PATH) once,
    at import time. Env vars override it key by key, but anything they do not set would leak in.
A subprocess (`modal deploy`) needs none of this: it gets `ModalStandin.client_env(...)`.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Iterator, Optional, Union

from .server import ModalStandin


def reset_modal_client() -> None:
    """Close and forget the cached modal client and the environments resolved through it."""
    import modal
    import modal._environments
    from modal.client import _Client

    if _Client._client_from_env is not None:
        # from_env() hands back the cached client wrapped for sync use; closing it also unsets it.
        modal.Client.from_env().close()
        _Client._client_from_env = None
    modal._environments.ENVIRONMENT_CACHE.clear()


@contextlib.contextmanager
def modal_client_env(
    standin: ModalStandin, config_path: Union[str, Path], environment: Optional[str] = None
) -> Iterator[dict[str, str]]:
    """Within the block, `modal.*` calls in this process talk to `standin`."""
    import modal.config

    env = standin.client_env(config_path, environment)
    saved_env = {key: os.environ.get(key) for key in (*env, "MODAL_ENVIRONMENT")}
    saved_user_config = modal.config._user_config
    reset_modal_client()
    os.environ.update(env)
    modal.config._user_config = {}
    try:
        yield env
    finally:
        reset_modal_client()
        modal.config._user_config = saved_user_config
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def import_module_from_path(path: Union[str, Path]) -> ModuleType:
    """Import an app module file under a unique name, so two tests' modules never collide.

    It is registered in sys.modules because the modal client resolves the function's module by
    name (FunctionInfo) to decide what source file to mount into the container.
    """
    path = Path(path).resolve()
    name = f"_standin_app_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def deploy_file(
    path: Union[str, Path], *, name: str, environment: str = "", strategy: str = "rolling", app_attr: str = "app"
) -> str:
    """`modal deploy path.py` from Python: import the file, then App.deploy. Returns the app id."""
    module = import_module_from_path(path)
    app = getattr(module, app_attr)
    app.deploy(name=name, environment_name=environment, strategy=strategy)
    return app.app_id
