"""Which environment variables of a pipeline hold secrets, so that their values never reach a
log, a summary or a pull request comment.

The names come from their owners, not from a list here: the state backend's and every
installed provider's declared credentials (infra.deploy.workspace.credential_env_names), the
CI system's own tokens, and any name that reads as a credential (infra.common.secrets). The
values are registered with the process's redaction registry (infra.common.secrets.redact)."""
from __future__ import annotations

import os
from typing import Mapping, Optional

from infra.common.secrets import looks_like_credential, register
from infra.deploy.workspace import credential_env_names

# The tokens a CI system hands a job to talk to its own API (GitHub Actions: GITHUB_TOKEN;
# the gh CLI: GH_TOKEN).
CI_TOKENS = ("GITHUB_TOKEN", "GH_TOKEN")


def is_secret_name(name: str) -> bool:
    return name in CI_TOKENS or name in credential_env_names() or looks_like_credential(name)


def register_pipeline_secrets(env: Optional[Mapping[str, str]] = None) -> None:
    """Register the value of every secret-holding variable of ``env`` (default: this process's)."""
    env = os.environ if env is None else env
    known = {*CI_TOKENS, *credential_env_names()}
    for name, value in env.items():
        if name in known or looks_like_credential(name):
            register(value)
