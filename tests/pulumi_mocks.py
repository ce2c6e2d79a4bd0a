"""Pulumi's mocks as the unit tests use them: every registered resource recorded, its inputs
(plus any fixed ``extra`` outputs a provider would answer with) handed back as its state."""
from __future__ import annotations

from typing import Any, Optional

import pulumi


class Recorder(pulumi.runtime.Mocks):
    def __init__(self, extra: Optional[dict[str, Any]] = None):
        self.registered: list[pulumi.runtime.MockResourceArgs] = []
        self.extra = dict(extra or {})

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.registered.append(args)
        return f"{args.name}-id", {**self.extra, **dict(args.inputs)}

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}
