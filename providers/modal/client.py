"""Talking to Modal through the real, pinned modal client.

The client reads its server URL and token from the environment (MODAL_SERVER_URL,
MODAL_TOKEN_ID, MODAL_TOKEN_SECRET), exactly as the `modal` CLI does.

Deploys use the client's Python deploy API (``App.deploy``) rather than the `modal deploy`
CLI: errors arrive as typed exceptions (NotFoundError for a missing named secret, gRPC
status for transport faults) instead of text to scrape, the client's own retry policy
applies, and the app id comes back without parsing output. The module deployed is the
generated file itself, imported from disk, so what runs is what `render --artifact` shows.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from infra.common.secrets import redact

SERVE_FUNCTION = "serve"
# The class that holds the engine in a GPU-snapshot app (providers/modal/snapshot.py).
SNAPSHOT_CLASS = "Engine"


def modal_module():
    import modal
    return modal


def environment_name(environment: Optional[str]) -> Optional[str]:
    return environment or None


class ModalError(Exception):
    pass


def explain(e: Exception, action: str) -> ModalError:
    modal = modal_module()
    if isinstance(e, modal.exception.NotFoundError):
        return ModalError(f"{action}: Modal says not found: {e}. Create the named secret or volume first "
                          f"(e.g. `modal secret create <name> HF_TOKEN=...`), or give its value with "
                          f"`pulumi config set --secret`.")
    if isinstance(e, modal.exception.AuthError):
        return ModalError(f"{action}: Modal rejected the credentials ({e}); check MODAL_TOKEN_ID/MODAL_TOKEN_SECRET.")
    return ModalError(f"{action}: {type(e).__name__}: {redact(str(e))}")




# --------------------------------------------------------------------------- secrets

def put_secret(name: str, values: dict[str, str], environment: Optional[str]) -> None:
    """Create or overwrite a named Modal secret."""
    modal = modal_module()
    try:
        modal.Secret._create_deployed(name, dict(values), environment_name=environment_name(environment),
                                      overwrite=True)
    except Exception as e:  # noqa: BLE001 - reported with context, never with the values
        raise explain(e, f"creating Modal secret {name!r}") from None


def delete_secret(name: str, environment: Optional[str]) -> None:
    modal = modal_module()
    try:
        modal.Secret.objects.delete(name, environment_name=environment_name(environment), allow_missing=True)
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"deleting Modal secret {name!r}") from None


# --------------------------------------------------------------------------- apps

def source_revision(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def deploy_module(source: str, app_name: str, environment: Optional[str], strategy: str) -> tuple[str, str]:
    """Deploy the generated module; return (app id, web URL of the serve function)."""
    modal = modal_module()
    with tempfile.TemporaryDirectory(prefix="glmserve-modal-") as tmp:
        module_name = f"glmserve_app_{source_revision(source)}"
        path = Path(tmp) / f"{module_name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
            app = module.app
            app.deploy(name=app_name, environment_name=environment_name(environment), strategy=strategy)
            serve = getattr(module, SERVE_FUNCTION, None)
            if serve is None:       # the GPU-snapshot app: serve is a method of the engine's class
                serve = getattr(module, SNAPSHOT_CLASS)().serve
            url = serve.get_web_url()
            return app.app_id, url
        except Exception as e:  # noqa: BLE001
            raise explain(e, f"deploying Modal app {app_name!r}") from None
        finally:
            sys.modules.pop(module_name, None)


def deployed_app_id(app_name: str, environment: Optional[str]) -> Optional[str]:
    """The id of the deployed app with this name, or None when it is gone or stopped."""
    modal = modal_module()
    try:
        app = modal.App.lookup(app_name, environment_name=environment_name(environment))
    except modal.exception.NotFoundError:
        return None
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"looking up Modal app {app_name!r}") from None
    return app.app_id


def stop_app(app_name: str, environment: Optional[str]) -> None:
    modal = modal_module()
    try:
        app = modal.App.lookup(app_name, environment_name=environment_name(environment))
    except modal.exception.NotFoundError:
        return      # already gone: delete is idempotent
    try:
        app.stop()
    except modal.exception.NotFoundError:
        return
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"stopping Modal app {app_name!r}") from None


def set_min_containers(app_name: str, environment: Optional[str], replicas: int, in_class: bool = False) -> None:
    """Move the deployed serve function's autoscaler floor (until the next deploy resets it);
    ``in_class``: the GPU-snapshot app, whose autoscaler is the engine class's."""
    modal = modal_module()
    env = environment_name(environment)
    try:
        if in_class:
            modal.Cls.from_name(app_name, SNAPSHOT_CLASS, environment_name=env)().update_autoscaler(
                min_containers=replicas)
        else:
            modal.Function.from_name(app_name, SERVE_FUNCTION, environment_name=env).autoscaler.update(
                min_containers=replicas)
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"setting min_containers of Modal app {app_name!r}") from None
