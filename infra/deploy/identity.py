"""The identity of one stack instance, as a Python dynamic resource.

Names are not ownership: two checkouts, or two stacks of the same name on different state
backends, render the same pod, app and object names. So every cloud resource glmserve creates
carries this id (a label, an environment variable, a name suffix: each provider says how), and
glmserve adopts, changes or deletes only what carries its own. The id is random, made once
when the stack instance first deploys, kept in state, and never changes on update; it is
created before any cloud resource (they depend on it), so a run killed later always finds it
in state.
"""
from __future__ import annotations

import secrets
from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

PREFIX = "gs"
# 80 random bits as 20 hex characters: fits a Kubernetes label value and a RunPod name.
ID_BYTES = 10


def new_owner_id() -> str:
    return PREFIX + secrets.token_hex(ID_BYTES)


class StackIdentityProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        owner = new_owner_id()
        return CreateResult(id_=owner, outs={**props, "owner": owner})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Nothing about a stack's later changes makes it another instance.
        return DiffResult(changes=False, replaces=[], delete_before_replace=False)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class StackIdentity(Resource):
    owner: pulumi.Output[str]

    def __init__(self, name: str, stack: str, project: str, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(StackIdentityProvider(), name, {"stack": stack, "project": project, "owner": None}, opts)
