"""Python dynamic resources that talk to Modal through the real, pinned modal client.

They run in the dynamic-provider process the Pulumi engine starts; the client reads its
server URL and token from the environment (MODAL_SERVER_URL, MODAL_TOKEN_ID,
MODAL_TOKEN_SECRET), exactly as the `modal` CLI does.

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

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from infra.common.secrets import redact, register

SERVE_FUNCTION = "serve"


def _modal():
    import modal
    return modal


def _env(environment: Optional[str]) -> Optional[str]:
    return environment or None


class ModalError(Exception):
    pass


def _explain(e: Exception, action: str) -> ModalError:
    modal = _modal()
    if isinstance(e, modal.exception.NotFoundError):
        return ModalError(f"{action}: Modal says not found: {e}. Create the named secret or volume first "
                          f"(e.g. `modal secret create <name> HF_TOKEN=...`), or give its value with "
                          f"`pulumi config set --secret`.")
    if isinstance(e, modal.exception.AuthError):
        return ModalError(f"{action}: Modal rejected the credentials ({e}); check MODAL_TOKEN_ID/MODAL_TOKEN_SECRET.")
    return ModalError(f"{action}: {type(e).__name__}: {redact(str(e))}")


# --------------------------------------------------------------------------- secrets

class ModalSecretProvider(ResourceProvider):
    """A named Modal secret whose values come from Pulumi secrets (overwritten on update)."""

    def _put(self, props: dict[str, Any]) -> None:
        modal = _modal()
        for v in props["values"].values():
            register(v)
        try:
            modal.Secret._create_deployed(props["name"], dict(props["values"]),
                                          environment_name=_env(props.get("environment")), overwrite=True)
        except Exception as e:  # noqa: BLE001 - reported with context, never with the values
            raise _explain(e, f"creating Modal secret {props['name']!r}") from None

    def create(self, props):
        self._put(props)
        return CreateResult(id_=props["name"], outs=props)

    def diff(self, _id, olds, news):
        replaces = [k for k in ("name", "environment") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces) or olds.get("values") != news.get("values"),
                          replaces=replaces, delete_before_replace=True)

    def update(self, _id, _olds, news):
        self._put(news)
        return UpdateResult(outs=news)

    def delete(self, _id, props):
        modal = _modal()
        try:
            modal.Secret.objects.delete(props["name"], environment_name=_env(props.get("environment")),
                                        allow_missing=True)
        except Exception as e:  # noqa: BLE001
            raise _explain(e, f"deleting Modal secret {props['name']!r}") from None


class ModalSecret(Resource):
    def __init__(self, name: str, *, secret_name: str, values, environment: Optional[str],
                 opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["values"]))
        super().__init__(ModalSecretProvider(), name,
                         {"name": secret_name, "values": values, "environment": environment or ""}, opts)


# --------------------------------------------------------------------------- the app

def source_revision(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def deploy_module(source: str, app_name: str, environment: Optional[str], strategy: str) -> tuple[str, str]:
    """Deploy the generated module; return (app id, web URL of the serve function)."""
    modal = _modal()
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
            app.deploy(name=app_name, environment_name=_env(environment), strategy=strategy)
            url = getattr(module, SERVE_FUNCTION).get_web_url()
            return app.app_id, url
        except Exception as e:  # noqa: BLE001
            raise _explain(e, f"deploying Modal app {app_name!r}") from None
        finally:
            sys.modules.pop(module_name, None)


def deployed_app_id(app_name: str, environment: Optional[str]) -> Optional[str]:
    """The id of the deployed app with this name, or None when it is gone or stopped."""
    modal = _modal()
    try:
        app = modal.App.lookup(app_name, environment_name=_env(environment))
    except modal.exception.NotFoundError:
        return None
    except Exception as e:  # noqa: BLE001
        raise _explain(e, f"looking up Modal app {app_name!r}") from None
    return app.app_id


def stop_app(app_name: str, environment: Optional[str]) -> None:
    modal = _modal()
    try:
        app = modal.App.lookup(app_name, environment_name=_env(environment))
    except modal.exception.NotFoundError:
        return      # already gone: delete is idempotent
    try:
        app.stop()
    except modal.exception.NotFoundError:
        return
    except Exception as e:  # noqa: BLE001
        raise _explain(e, f"stopping Modal app {app_name!r}") from None


class ModalAppProvider(ResourceProvider):
    def _deploy(self, props: dict[str, Any]) -> dict[str, Any]:
        app_id, url = deploy_module(props["source"], props["appName"], props.get("environment"),
                                    props.get("strategy") or "recreate")
        return {**props, "app_id": app_id, "url": url}

    def create(self, props):
        outs = self._deploy(props)
        return CreateResult(id_=outs["app_id"], outs=outs)

    def diff(self, _id, olds, news):
        replaces = [k for k in ("appName", "environment") if olds.get(k) != news.get(k)]
        changed = replaces or [k for k in ("source", "secretRevision", "strategy") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, _id, _olds, news):
        return UpdateResult(outs=self._deploy(news))

    def read(self, id_, props):
        app_id = deployed_app_id(props["appName"], props.get("environment"))
        if app_id is None:
            return ReadResult(id_="", outs={})      # gone or stopped out-of-band: up recreates it
        return ReadResult(id_=app_id, outs={**props, "app_id": app_id})

    def delete(self, _id, props):
        stop_app(props["appName"], props.get("environment"))


class ModalApp(Resource):
    app_id: pulumi.Output[str]
    url: pulumi.Output[str]
    revision: pulumi.Output[str]

    def __init__(self, name: str, *, app_name: str, environment: Optional[str], source: str,
                 secret_revision, strategy: str, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(ModalAppProvider(), name, {
            "appName": app_name, "environment": environment or "", "source": source, "strategy": strategy,
            "revision": source_revision(source), "secretRevision": secret_revision,
            "app_id": None, "url": None,
        }, opts)
