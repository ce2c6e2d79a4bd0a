"""Driving the real Pulumi engine (the CLI) for a stack.

`glmserve up/preview/refresh/destroy` run the program through Pulumi's Automation API: the
CLI does the planning, diffing, state and secrets, and the Python SDK serves the language
runtime in-process, so no separate Python language-host binary is needed (none can be
fetched here; see scripts/install-pulumi).

Defaults: Pulumi's local file backend under ~/.glmserve/state and the passphrase secrets
provider, so no Pulumi Cloud account is needed. PULUMI_BACKEND_URL and
PULUMI_CONFIG_PASSPHRASE(_FILE) override them, as with the plain CLI.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from infra.common.errors import GlmserveError, Problem
from infra.common.secrets import register_environment
from infra.config.project import project_root

PULUMI_VERSION = "3.260.0"
PROJECT = "glmserve"
# Credentials of the state backend and secrets provider (not of any one provider).
BACKEND_SECRET_ENV = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_ACCESS_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                      "AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET", "AZURE_STORAGE_KEY", "GOOGLE_CREDENTIALS",
                      "VAULT_TOKEN")


def credential_env_names() -> list[str]:
    """Every environment variable that may hold a credential glmserve hands on: the backend's
    and each installed provider's (its declared credentials)."""
    from infra.config import providers

    names = list(BACKEND_SECRET_ENV)
    for name in providers.names():
        names += [c.env for c in providers.get(name).credentials]
    return names


def register_credentials() -> None:
    """Register every credential in the environment for redaction in this process."""
    register_environment(credential_env_names())


def glmserve_home() -> Path:
    return Path(os.environ.get("GLMSERVE_HOME", Path.home() / ".glmserve"))


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can read (state and the passphrase live there)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def in_ci(env: dict[str, str] | None = None) -> bool:
    """Whether a CI system runs us: CI set to a true value, as GitHub Actions, GitLab and others
    set it (CI=false, CI=0 and an empty CI are not CI)."""
    value = (os.environ if env is None else env).get("CI", "")
    return value.strip().lower() in ("true", "1", "yes")


def pulumi_bin_dir() -> Path:
    """The directory holding `pulumi` and its Python shims."""
    explicit = os.environ.get("GLMSERVE_PULUMI_BIN")
    candidates = [Path(explicit)] if explicit else []
    cache = Path(os.environ.get("GLMSERVE_CACHE", Path.home() / ".cache" / "glmserve"))
    candidates.append(cache / "pulumi" / f"v{PULUMI_VERSION}" / "bin")
    on_path = shutil.which("pulumi")
    if on_path:
        candidates.append(Path(on_path).parent)
    for c in candidates:
        if (c / "pulumi").is_file() and (c / "pulumi-resource-pulumi-python").is_file():
            return c
    raise GlmserveError([Problem(
        key="pulumi", message="the Pulumi CLI is not installed",
        allowed="run scripts/install-pulumi (make does it), or set GLMSERVE_PULUMI_BIN to a directory with "
                "pulumi and pulumi-resource-pulumi-python")], headline="missing tool")


def backend_url() -> str:
    url = os.environ.get("PULUMI_BACKEND_URL")
    if url:
        return url
    state = private_dir(glmserve_home()) / "state"
    private_dir(state)
    return f"file://{state}"


def secrets_provider() -> str:
    """`passphrase` unless GLMSERVE_SECRETS_PROVIDER names another (awskms://..., gcpkms://...,
    azurekeyvault://..., hashivault://..., or `default` for Pulumi Cloud's per-stack key)."""
    return os.environ.get("GLMSERVE_SECRETS_PROVIDER", "passphrase")


def _passphrase_file_problem(path: Path) -> str | None:
    if not path.is_file():
        return "does not exist"
    st = path.stat()
    if st.st_mode & 0o077:
        return f"is readable by others (mode {st.st_mode & 0o777:04o}); chmod 600 it"
    if not path.read_text().strip():
        return "is empty"
    return None


def _passphrase_env() -> dict[str, str]:
    """How the CLI gets the state's passphrase. An empty PULUMI_CONFIG_PASSPHRASE (what a
    missing pipeline secret expands to) counts as unset, never as the passphrase."""
    if os.environ.get("PULUMI_CONFIG_PASSPHRASE") == "":
        # The Pulumi CLI would take the empty string as the passphrase.
        del os.environ["PULUMI_CONFIG_PASSPHRASE"]
    if secrets_provider() != "passphrase":
        return {}
    if os.environ.get("PULUMI_CONFIG_PASSPHRASE"):
        return {}
    file = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if file:
        problem = _passphrase_file_problem(Path(file))
        if problem:
            raise GlmserveError([Problem(key="PULUMI_CONFIG_PASSPHRASE_FILE", value=file, message=problem,
                                         allowed="a non-empty file of mode 0600")], headline="unsafe secret")
        return {}
    if in_ci():
        raise GlmserveError([Problem(
            key="PULUMI_CONFIG_PASSPHRASE", message="is not set or empty; pipelines must take it from their secret store",
            allowed="PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE (mode 0600)")], headline="missing secret")
    # A laptop's first run: a random passphrase in a private file, said once where it is.
    path = private_dir(glmserve_home()) / "passphrase"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        print(f"glmserve: created a passphrase for the local state's secrets in {path} (keep it)", file=sys.stderr)
    problem = _passphrase_file_problem(path)
    if problem:
        raise GlmserveError([Problem(key="passphrase file", value=str(path), message=problem,
                                     allowed="a non-empty file of mode 0600")], headline="unsafe secret")
    return {"PULUMI_CONFIG_PASSPHRASE_FILE": str(path)}


def engine_env() -> dict[str, str]:
    """Environment for the CLI and the dynamic-provider processes it starts."""
    bin_dir = pulumi_bin_dir()
    venv = Path(sys.prefix)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_BACKEND_URL": backend_url(),
        # The dynamic-provider shim runs `python -m pulumi.dynamic` from this virtualenv.
        "PULUMI_RUNTIME_VIRTUALENV": str(venv),
        "PULUMI_PYTHON_CMD": sys.executable,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        "GLMSERVE_PROJECT_DIR": str(project_root()),
        **_passphrase_env(),
    }
    return env


def select_stack(stack: str, program, create: bool = True):
    from pulumi import automation as auto

    root = project_root()
    env = engine_env()
    os.environ.update(env)     # the in-process language runtime reads config paths from here
    cmd = auto.PulumiCommand(root=str(pulumi_bin_dir().parent), version=None, skip_version_check=True)
    opts = auto.LocalWorkspaceOptions(work_dir=str(root), env_vars=env, pulumi_command=cmd,
                                      secrets_provider=secrets_provider())
    if create:
        return auto.create_or_select_stack(stack_name=stack, project_name=PROJECT, program=program, opts=opts)
    return auto.select_stack(stack_name=stack, project_name=PROJECT, program=program, opts=opts)


def run_cli(args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    """The plain `pulumi` CLI with glmserve's backend and passphrase settings."""
    env = {**os.environ, **engine_env()}
    return subprocess.run([str(pulumi_bin_dir() / "pulumi"), *args], cwd=project_root(), env=env,
                          text=True, capture_output=True, check=check)
