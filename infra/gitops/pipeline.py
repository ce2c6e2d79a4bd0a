"""What every GitOps step does around its own work: find the project, register the pipeline's
secrets, insist on a shared state backend in CI, and turn errors into a message and an exit code."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Optional

from infra.common.errors import GlmserveError
from infra.common.secrets import redact
from infra.config.project import project_root
from infra.deploy.workspace import in_ci
from infra.gitops.repo import GitopsError
from infra.gitops.secret_env import register_pipeline_secrets

EXIT_USAGE = 2


def select_project(explicit: Optional[str]) -> Path:
    """The project root (--project, else GLMSERVE_PROJECT_DIR, else found from the current
    directory), which every later step and `glmserve` run reads."""
    if explicit:
        os.environ["GLMSERVE_PROJECT_DIR"] = str(Path(explicit).resolve())
    root = project_root()
    if not (root / "Pulumi.yaml").is_file():
        raise GitopsError(f"{root} is not a glmserve project (no Pulumi.yaml)")
    os.environ["GLMSERVE_PROJECT_DIR"] = str(root)
    return root


def require_pipeline_backend() -> None:
    """In a pipeline (CI set), state must live in the shared backend from the secret store: a
    runner's local file backend disappears with the runner and orphans what `up` created."""
    if not in_ci():
        return
    url = os.environ.get("PULUMI_BACKEND_URL")
    if not url:
        raise GitopsError("PULUMI_BACKEND_URL is not set: pipelines take the state backend from their secret "
                          "store (docs/gitops.md); a runner's local state would be lost with the runner")
    if url.startswith("file://") and not os.environ.get("GLMSERVE_ALLOW_FILE_BACKEND"):
        raise GitopsError("PULUMI_BACKEND_URL is a file:// backend on a CI runner: use an S3-compatible bucket or "
                          "Pulumi Cloud (docs/gitops.md), or set GLMSERVE_ALLOW_FILE_BACKEND=1 for a runner "
                          "with persistent disk")


def run_step(prog: str, main: Callable[[list[str]], int], argv: Optional[list[str]] = None) -> int:
    """Run a step's ``main`` with the pipeline's secrets registered for redaction; a user error
    is one line on stderr and exit 2, never a traceback."""
    register_pipeline_secrets()
    try:
        return main(sys.argv[1:] if argv is None else argv)
    except GitopsError as e:
        print(redact(f"{prog}: {e}"), file=sys.stderr)
        return EXIT_USAGE
    except GlmserveError as e:
        print(redact(e.render()), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:                       # e.g. `pr-preview ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
