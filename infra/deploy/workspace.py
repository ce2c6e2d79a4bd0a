"""Driving the real Pulumi engine (the CLI) for a stack.

`glmserve up/preview/refresh/destroy` are thin wrappers over the plain CLI: they run
`pulumi <op> --stack S` in the project folder, exactly what a user types, so the program
(`__main__.py`, started by the Python language host in the `.venv` that `Pulumi.yaml` names),
its state and its outputs are one and the same whichever door is used. The wrapper adds the
offline checks before the engine starts, the local backend and passphrase defaults, and
output without tracebacks or secrets.

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
import json
from typing import Any, Callable, Optional

from infra.common.errors import GlmserveError, Problem
from infra.common.secrets import redact, register, register_environment
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


# What plain `pulumi up` of a Python program needs beside the CLI (scripts/install-pulumi).
PYTHON_PLUGINS = ("pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python")


def pulumi_bin_dir() -> Path:
    """The directory holding `pulumi`, its Python language host and shims."""
    explicit = os.environ.get("GLMSERVE_PULUMI_BIN")
    candidates = [Path(explicit)] if explicit else []
    cache = Path(os.environ.get("GLMSERVE_CACHE", Path.home() / ".cache" / "glmserve"))
    candidates.append(cache / "pulumi" / f"v{PULUMI_VERSION}" / "bin")
    on_path = shutil.which("pulumi")
    if on_path:
        candidates.append(Path(on_path).parent)
    for c in candidates:
        if all((c / f).is_file() for f in ("pulumi", *PYTHON_PLUGINS)):
            return c
    raise GlmserveError([Problem(
        key="pulumi", message="the Pulumi CLI or its Python language host is not installed",
        allowed="run scripts/install-pulumi (make does it), or set GLMSERVE_PULUMI_BIN to a directory with "
                f"pulumi, {', '.join(PYTHON_PLUGINS)}")], headline="missing tool")


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


def pulumi_env() -> dict[str, str]:
    """Environment for the CLI: the language host and dynamic-provider processes it starts
    take the virtualenv from `Pulumi.yaml` (runtime.options.virtualenv), as with plain `pulumi`."""
    bin_dir = pulumi_bin_dir()
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_BACKEND_URL": backend_url(),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        "GLMSERVE_PROJECT_DIR": str(project_root()),
        **_passphrase_env(),
    }


def run_cli(args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    """The plain `pulumi` CLI with glmserve's backend and passphrase settings."""
    env = {**os.environ, **pulumi_env()}
    return subprocess.run([str(pulumi_bin_dir() / "pulumi"), *args, "--non-interactive"], cwd=project_root(),
                          env=env, text=True, capture_output=True, check=check)


def select_stack(stack: str) -> None:
    """Select the stack, creating it (with glmserve's secrets provider) on first use."""
    proc = run_cli(["stack", "select", "--create", "--stack", stack, "--secrets-provider", secrets_provider()],
                   check=False)
    if proc.returncode != 0:
        raise GlmserveError([Problem(key="--stack", value=stack, message=redact(proc.stderr.strip() or proc.stdout.strip()))],
                            headline="the Pulumi stack could not be selected")


def stack_outputs(stack: str) -> Optional[tuple[dict[str, Any], dict[str, Any]]]:
    """(plain outputs, secret outputs) of a stack in the backend, or None when the backend has
    no such stack (never created: reading outputs must not create one). Secret values are
    registered for redaction before anything can print them."""
    plain = run_cli(["stack", "output", "--json", "--stack", stack], check=False)
    if plain.returncode != 0:
        if "no stack named" in (plain.stderr + plain.stdout).lower():
            return None
        raise GlmserveError([Problem(key="--stack", value=stack, message=redact(plain.stderr.strip() or plain.stdout.strip()))],
                            headline="the stack's outputs could not be read")
    shown = run_cli(["stack", "output", "--json", "--show-secrets", "--stack", stack])
    masked, full = json.loads(plain.stdout or "{}"), json.loads(shown.stdout or "{}")
    secret = {k: v for k, v in full.items() if masked.get(k) == "[secret]"}
    for v in secret.values():
        register(v if isinstance(v, str) else json.dumps(v))
    return {k: v for k, v in masked.items() if k not in secret}, secret


def stream_cli(args: list[str], on_line: Callable[[str], None]) -> int:
    """Run `pulumi ARGS` in the project folder, handing each output line (stdout and stderr
    merged, in order) to ``on_line``; the exit status."""
    env = {**os.environ, **pulumi_env()}
    with subprocess.Popen([str(pulumi_bin_dir() / "pulumi"), *args, "--non-interactive", "--color", "never"],
                          cwd=project_root(), env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            on_line(line.rstrip("\n"))
        return proc.wait()
