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


# --------------------------------------------------------------------------- where and whose

# The App tag that carries the stack instance's identity (infra/deploy/identity.py). Modal
# tags Apps (``App(tags=...)``, sent with the deploy itself); it has no tags for Secrets, whose
# names carry the identity instead (providers/modal/provider.py).
OWNER_TAG = "glmserve-owner"


def where(environment: Optional[str]) -> dict[str, str]:
    """The Modal workspace the credentials lead to and the environment (resolved: "" is the
    workspace's default), as kept in state beside every resource."""
    modal = modal_module()
    try:
        ws = modal.Workspace.from_context()
        ws.hydrate()
        env = modal.Environment.from_name(environment) if environment else modal.Environment.from_context()
        env.hydrate()
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"finding the Modal workspace and environment {environment or '(default)'!r}") from None
    return {"workspace": ws.name or "", "environment": env.name or "", "environmentId": env.object_id}


def check_where(recorded: Optional[dict[str, str]], environment: Optional[str], what: str) -> None:
    """Refuse to read, change or delete ``what`` through another workspace or environment than
    the one it was created in: there, "not found" would say nothing about it."""
    if not recorded:
        return      # state from before glmserve recorded it
    now = where(environment)
    if (now["workspace"], now["environmentId"]) != (recorded.get("workspace"), recorded.get("environmentId")):
        raise ModalError(
            f"{what} was created in Modal workspace {recorded.get('workspace')!r}, environment "
            f"{recorded.get('environment')!r}, but the credentials and modal.environment now lead to workspace "
            f"{now['workspace']!r}, environment {now['environment']!r}. glmserve does not look for it, change or "
            "delete it there: use that workspace's token (MODAL_TOKEN_ID/MODAL_TOKEN_SECRET) and environment; if "
            "it is gone for good, remove it from state (`pulumi state delete`).")


# --------------------------------------------------------------------------- secrets

def put_secret(name: str, values: dict[str, str], environment: Optional[str]) -> None:
    """Create or overwrite a named Modal secret."""
    modal = modal_module()
    try:
        modal.Secret._create_deployed(name, dict(values), environment_name=environment_name(environment),
                                      overwrite=True)
    except Exception as e:  # noqa: BLE001 - reported with context, never with the values
        raise explain(e, f"creating Modal secret {name!r}") from None


def secret_exists(name: str, environment: Optional[str]) -> bool:
    modal = modal_module()
    try:
        modal.Secret.from_name(name, environment_name=environment_name(environment)).hydrate()
    except modal.exception.NotFoundError:
        return False
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"looking up Modal secret {name!r}") from None
    return True


def delete_secret(name: str, environment: Optional[str]) -> None:
    modal = modal_module()
    try:
        modal.Secret.objects.delete(name, environment_name=environment_name(environment), allow_missing=True)
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"deleting Modal secret {name!r}") from None


# --------------------------------------------------------------------------- apps

def source_revision(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def deploy_module(source: str, app_name: str, environment: Optional[str], strategy: str,
                  owner: Optional[str]) -> tuple[str, str]:
    """Deploy the generated module, tagged with ``owner``; return (app id, web URL of the serve
    function). If the deploy went through but its URL cannot be had, the app is stopped before
    raising: it is not in state, and nothing billable may run outside state."""
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
            if owner:
                # The tag travels with the deploy (AppPublish): no moment with an untagged app.
                app.include(modal.App(tags={OWNER_TAG: owner}), inherit_tags=True)
            app.deploy(name=app_name, environment_name=environment_name(environment), strategy=strategy)
        except Exception as e:  # noqa: BLE001
            raise explain(e, f"deploying Modal app {app_name!r}") from None
        finally:
            sys.modules.pop(module_name, None)
        try:
            serve = getattr(module, SERVE_FUNCTION, None)
            if serve is None:       # the GPU-snapshot app: serve is a method of the engine's class
                serve = getattr(module, SNAPSHOT_CLASS)().serve
            url = serve.get_web_url()
            if url:
                return app.app_id, url
            err = ModalError(f"Modal app {app_name!r} was deployed, but Modal gave its {SERVE_FUNCTION!r} function no "
                             "web URL")
        except Exception as e:  # noqa: BLE001
            err = explain(e, f"reading the web URL of Modal app {app_name!r} after its deploy")
        try:
            app.stop()
            undo = "the app was stopped again, nothing runs outside state"
        except Exception as e:  # noqa: BLE001
            undo = (f"stopping it failed too ({type(e).__name__}); it carries this stack's owner tag, so the next "
                    "`up` takes it over and `destroy` then removes it")
        raise ModalError(f"{err}; {undo}") from None


def deployed_app(app_name: str, environment: Optional[str]) -> Optional[tuple[Any, Optional[str]]]:
    """(the deployed app, its owner tag) for this name, or None when no app of that name is
    deployed (gone or stopped)."""
    modal = modal_module()
    try:
        app = modal.App.lookup(app_name, environment_name=environment_name(environment))
    except modal.exception.NotFoundError:
        return None
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"looking up Modal app {app_name!r}") from None
    try:
        return app, app.get_tags().get(OWNER_TAG)
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"reading the tags of Modal app {app_name!r}") from None


def foreign_app(app_name: str, owner: Optional[str]) -> ModalError:
    whose = f"another glmserve stack instance (owner {owner})" if owner else "someone else (no glmserve owner tag)"
    return ModalError(
        f"Modal app {app_name!r} is already deployed and belongs to {whose}; glmserve will not deploy over it, "
        "stop or adopt it. Choose another modal.appName (or modal.environment), or stop that app if it is yours.")


def stop_app(app: Any, app_name: str) -> None:
    modal = modal_module()
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
