"""The plain CLI command behind `glmserve OP`: the policy pack (policy/) is passed to preview and
up once its virtualenv is built, never to refresh or destroy (they register no new inputs)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from infra.cli import main

PACK = Path("/repo/policy")


@pytest.mark.parametrize("built", [True, False])
@pytest.mark.parametrize("op", ["preview", "up", "refresh", "destroy"])
def test_the_pack_goes_to_preview_and_up_when_built(op, built, monkeypatch):
    monkeypatch.setattr(main, "available_pack", lambda: PACK if built else None)
    cmd = main._pulumi_args(op, argparse.Namespace(stack="dev"))
    assert cmd[:3] == [op, "--stack", "dev"]
    if built and op in ("preview", "up"):
        assert cmd[-2:] == ["--policy-pack", str(PACK)]
    else:
        assert "--policy-pack" not in cmd
