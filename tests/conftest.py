"""Shared fixtures: a throw-away copy of the project (stack init writes into stack files),
and an isolated Pulumi environment (local file backend, passphrase, PULUMI_HOME).
Helpers that are not fixtures live in tests/helpers.py."""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.helpers import PASSPHRASE, ROOT


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of Pulumi.yaml, __main__.py and stacks/ that tests may edit freely, with the
    project's .venv linked in (Pulumi.yaml's runtime.options.virtualenv names it)."""
    dst = tmp_path / "project"
    dst.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "stacks", dst / "stacks")
    (dst / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    return dst


@pytest.fixture
def pulumi_env(project, tmp_path, monkeypatch) -> dict[str, str]:
    home = tmp_path / "glmserve-home"
    env = {
        "GLMSERVE_PROJECT_DIR": str(project),
        "GLMSERVE_HOME": str(home),
        "PULUMI_HOME": str(tmp_path / "pulumi-home"),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
    }
    (tmp_path / "state").mkdir()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def fresh_event_loop():
    """Pulumi's mocks run their resource registrations on the thread's current event loop; an
    earlier test in the same worker may have closed or cleared it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()
