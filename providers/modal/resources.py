"""Python dynamic resources over the Modal client (providers/modal/client.py): a named
secret and the deployed app. They run in the dynamic-provider process the Pulumi engine
starts, which inherits the environment of `glmserve up`."""
from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from providers.dynamic import register_secrets
from providers.modal import client as m
from providers.modal.schedule import apply_after_deploy


# --------------------------------------------------------------------------- secrets

class ModalSecretProvider(ResourceProvider):
    """A named Modal secret whose values come from Pulumi secrets (overwritten on update). Its
    name carries the stack instance's identity, so no other checkout's secret is ever
    overwritten; ``where`` (the workspace and environment) is kept to delete it there only."""

    def _put(self, props: dict[str, Any]) -> dict[str, Any]:
        register_secrets(props["values"].values())
        m.check_where(props.get("where"), props.get("environment"), f"Modal secret {props['name']!r}")
        here = props.get("where") or m.where(props.get("environment"))
        m.put_secret(props["name"], props["values"], props.get("environment"))
        return {**props, "where": here}

    def create(self, props):
        outs = self._put({**props, "where": None})
        return CreateResult(id_=props["name"], outs=outs)

    def diff(self, _id, olds, news):
        replaces = [k for k in ("name", "environment") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces) or olds.get("values") != news.get("values"),
                          replaces=replaces, delete_before_replace=True)

    def update(self, _id, olds, news):
        return UpdateResult(outs=self._put({**news, "where": olds.get("where")}))

    def read(self, id_, props):
        # Gone only when the workspace and environment it was created in say so.
        m.check_where(props.get("where"), props.get("environment"), f"Modal secret {props['name']!r}")
        if not m.secret_exists(props["name"], props.get("environment")):
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id, props):
        m.check_where(props.get("where"), props.get("environment"), f"Modal secret {props['name']!r}")
        m.delete_secret(props["name"], props.get("environment"))


class ModalSecret(Resource):
    def __init__(self, name: str, *, secret_name, values, environment: Optional[str],
                 opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["values"]))
        super().__init__(ModalSecretProvider(), name,
                         {"name": secret_name, "values": values, "environment": environment or "", "where": None},
                         opts)


# --------------------------------------------------------------------------- the app

class ModalAppProvider(ResourceProvider):
    """The deployed app, tagged with the stack instance's identity (tag ``glmserve-owner``).
    A deployed app of the same name with another owner is never deployed over, stopped or
    adopted; ``where`` (workspace, environment) is checked before anything is looked up."""

    def _deploy(self, props: dict[str, Any], known_owner: Optional[str]) -> dict[str, Any]:
        name, env = props["appName"], props.get("environment")
        m.check_where(props.get("where"), env, f"Modal app {name!r}")
        here = props.get("where") or m.where(env)
        existing = m.deployed_app(name, env)
        # On create, a deployed app with this instance's tag is an interrupted earlier run.
        if existing is not None and existing[1] != known_owner:
            raise m.foreign_app(name, existing[1])
        app_id, url = m.deploy_module(props["source"], name, env, props.get("strategy") or "recreate",
                                      props.get("owner") or None)
        # A deploy resets the autoscaler to the decorator's floor: apply the current window now.
        apply_after_deploy(name, env, props.get("schedule"), pulumi.log.info)
        return {**props, "app_id": app_id, "url": url, "where": here}

    def create(self, props):
        outs = self._deploy({**props, "where": None}, props.get("owner") or None)
        return CreateResult(id_=outs["app_id"], outs=outs)

    def diff(self, _id, olds, news):
        replaces = [k for k in ("appName", "environment") if olds.get(k) != news.get(k)]
        changed = replaces or [k for k in ("source", "secretRevision", "strategy", "owner")
                               if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, _id, olds, news):
        # State from before owner tags (no owner in olds): an untagged app of that name is this one.
        return UpdateResult(outs=self._deploy({**news, "where": olds.get("where")}, olds.get("owner") or None))

    def read(self, id_, props):
        name, env = props["appName"], props.get("environment")
        m.check_where(props.get("where"), env, f"Modal app {name!r}")
        existing = m.deployed_app(name, env)
        # Gone only on positive evidence: in the same workspace and environment, no app of
        # that name is deployed, or the one deployed carries another owner's tag.
        if existing is None:
            return ReadResult(id_="", outs={})      # gone or stopped out-of-band: up recreates it
        app, owner = existing
        if (props.get("owner") or None) and owner != props.get("owner"):
            pulumi.log.info(f"Modal app {name!r} is now another stack instance's (owner {owner}): this stack's app "
                            "is gone; that one is left untouched")
            return ReadResult(id_="", outs={})
        return ReadResult(id_=app.app_id, outs={**props, "app_id": app.app_id})

    def delete(self, _id, props):
        name, env = props["appName"], props.get("environment")
        m.check_where(props.get("where"), env, f"Modal app {name!r}")
        existing = m.deployed_app(name, env)
        if existing is None:
            return      # already gone: delete is idempotent
        app, owner = existing
        if (props.get("owner") or None) and owner != props.get("owner"):
            pulumi.log.warn(f"Modal app {name!r} belongs to another stack instance (owner {owner}): left untouched")
            return
        m.stop_app(app, name)


class ModalApp(Resource):
    app_id: pulumi.Output[str]
    url: pulumi.Output[str]
    revision: pulumi.Output[str]

    def __init__(self, name: str, *, app_name: str, environment: Optional[str], source, owner,
                 secret_revision, strategy: str, schedule: Optional[dict] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(ModalAppProvider(), name, {
            "appName": app_name, "environment": environment or "", "source": source, "strategy": strategy,
            "schedule": schedule,
            "revision": pulumi.Output.from_input(source).apply(m.source_revision), "secretRevision": secret_revision,
            "owner": owner, "app_id": None, "url": None, "where": None,
        }, opts)
