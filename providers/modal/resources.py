"""Python dynamic resources over the Modal client (providers/modal/client.py): a named
secret and the deployed app. They run in the dynamic-provider process the Pulumi engine
starts, which inherits the environment of `glmserve up`."""
from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from providers.dynamic import register_secrets
from providers.modal.client import delete_secret, deploy_module, deployed_app_id, put_secret, source_revision, stop_app
from providers.modal.schedule import apply_after_deploy


# --------------------------------------------------------------------------- secrets

class ModalSecretProvider(ResourceProvider):
    """A named Modal secret whose values come from Pulumi secrets (overwritten on update)."""

    def _put(self, props: dict[str, Any]) -> None:
        register_secrets(props["values"].values())
        put_secret(props["name"], props["values"], props.get("environment"))

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
        delete_secret(props["name"], props.get("environment"))


class ModalSecret(Resource):
    def __init__(self, name: str, *, secret_name: str, values, environment: Optional[str],
                 opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["values"]))
        super().__init__(ModalSecretProvider(), name,
                         {"name": secret_name, "values": values, "environment": environment or ""}, opts)



# --------------------------------------------------------------------------- the app

class ModalAppProvider(ResourceProvider):
    def _deploy(self, props: dict[str, Any]) -> dict[str, Any]:
        app_id, url = deploy_module(props["source"], props["appName"], props.get("environment"),
                                    props.get("strategy") or "recreate")
        # A deploy resets the autoscaler to the decorator's floor: apply the current window now.
        apply_after_deploy(props["appName"], props.get("environment"), props.get("schedule"), pulumi.log.info)
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
                 secret_revision, strategy: str, schedule: Optional[dict] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(ModalAppProvider(), name, {
            "appName": app_name, "environment": environment or "", "source": source, "strategy": strategy,
            "schedule": schedule,
            "revision": source_revision(source), "secretRevision": secret_revision,
            "app_id": None, "url": None,
        }, opts)
