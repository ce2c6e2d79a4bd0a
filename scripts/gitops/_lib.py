"""Shared by the GitOps scripts (pr_preview, merge_up, drift_report): the project and its git
repository, which stacks a change touches, environment order, running `glmserve`, keeping
secrets out of logs and writing summaries.

The scripts run the same way on a laptop and in CI (docs/gitops.md). They import the
project's own `infra` package from the project root they operate on, and run its CLI as
`python -m infra.cli` from that root (override with GLMSERVE="<command>").
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable, Optional

import yaml

NULL_SHA = "0" * 40
ENVIRONMENTS = ("dev", "staging", "prod")
# Paths (relative to the project root) whose change touches every stack: shared code and data.
SHARED_PREFIXES = ("infra/", "templates/", "providers/")
SHARED_FILES = ("Pulumi.yaml", "__main__.py", "requirements.lock", "pyproject.toml")
DEFAULT_NODE_FILE = "node.yaml"
# Environment variables whose values never reach a log or a summary.
SECRET_ENV = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_ACCESS_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
              "AWS_ACCESS_KEY_ID", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "RUNPOD_API_KEY", "GITHUB_TOKEN",
              "GH_TOKEN", "HF_TOKEN", "ARM_CLIENT_SECRET", "GOOGLE_CREDENTIALS")
SECRET_NAME_RE = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSPHRASE|API_KEY|ACCESS_KEY)", re.I)
REDACTED = "[secret]"


class GitopsError(Exception):
    """A problem the user fixes (bad revision, not a git repository, ...): printed, exit 2."""


# ----------------------------------------------------------------------------- project

def project_root(explicit: Optional[str] = None) -> Path:
    if explicit:
        root = Path(explicit).resolve()
    elif os.environ.get("GLMSERVE_PROJECT_DIR"):
        root = Path(os.environ["GLMSERVE_PROJECT_DIR"]).resolve()
    else:
        here = Path.cwd().resolve()
        root = next((d for d in (here, *here.parents) if (d / "Pulumi.yaml").is_file() and (d / "stacks").is_dir()),
                    Path(__file__).resolve().parents[2])
    if not (root / "Pulumi.yaml").is_file():
        raise GitopsError(f"{root} is not a glmserve project (no Pulumi.yaml)")
    return root


def use_project(root: Path) -> None:
    """Make this process read the project at ``root``, with that tree's own code."""
    os.environ["GLMSERVE_PROJECT_DIR"] = str(root)
    if (root / "infra" / "__init__.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))


def stack_config_dir(root: Path) -> str:
    doc = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    return str(doc.get("stackConfigDir", "stacks")).strip("/")


def stacks_at_head(root: Path) -> list[str]:
    d = root / stack_config_dir(root)
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in d.glob("Pulumi.*.yaml"))


# ----------------------------------------------------------------------------- git

def git(root: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise GitopsError(f"git {' '.join(args)}: {proc.stderr.strip() or 'exit ' + str(proc.returncode)}")
    return proc.stdout


def toplevel(root: Path) -> Path:
    try:
        return Path(git(root, "rev-parse", "--show-toplevel").strip())
    except GitopsError:
        raise GitopsError(f"{root} is not inside a git repository") from None


def resolve(root: Path, rev: str) -> str:
    out = git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False).strip()
    if not out:
        raise GitopsError(f"--base {rev!r} is not a commit of the repository (fetch it: actions/checkout "
                          "with fetch-depth: 0)")
    return out


def merge_base(root: Path, base: str) -> str:
    sha = resolve(root, base)
    mb = git(root, "merge-base", sha, "HEAD", check=False).strip()
    return mb or sha


def changed_files(root: Path, base_sha: str) -> list[str]:
    """Files changed between ``base_sha`` and the working tree (committed, staged, unstaged,
    untracked), relative to the project root; files outside the project are left out."""
    top = toplevel(root)
    prefix = os.path.relpath(root.resolve(), top.resolve())
    prefix = "" if prefix == "." else prefix.rstrip("/") + "/"
    names = git(top, "diff", "--name-only", "--no-renames", base_sha, "--").splitlines()
    names += git(top, "ls-files", "--others", "--exclude-standard").splitlines()
    out = []
    for n in names:
        n = n.strip()
        if n and n.startswith(prefix):
            out.append(n[len(prefix):])
    return sorted(set(out))


def file_at(root: Path, rev: str, rel: str) -> Optional[str]:
    top = toplevel(root)
    prefix = os.path.relpath(root.resolve(), top.resolve())
    path = rel if prefix == "." else f"{prefix}/{rel}"
    proc = subprocess.run(["git", "-C", str(top), "show", f"{rev}:{path}"], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def stacks_at(root: Path, rev: str) -> list[str]:
    cfg = stack_config_dir(root)
    top = toplevel(root)
    prefix = os.path.relpath(root.resolve(), top.resolve())
    path = cfg if prefix == "." else f"{prefix}/{cfg}"
    names = git(top, "ls-tree", "--name-only", f"{rev}:{path}", check=False).splitlines()
    return sorted(n[len("Pulumi."):-len(".yaml")] for n in names if n.startswith("Pulumi.") and n.endswith(".yaml"))


# ----------------------------------------------------------------------------- touched stacks

def _node_file_of(text: Optional[str]) -> str:
    try:
        doc = yaml.safe_load(text or "") or {}
    except yaml.YAMLError:
        return DEFAULT_NODE_FILE
    cfg = doc.get("config") or {} if isinstance(doc, dict) else {}
    value = cfg.get("glmserve:node") if isinstance(cfg, dict) else None
    return str(value) if isinstance(value, str) and value else DEFAULT_NODE_FILE


@dataclasses.dataclass
class Selection:
    """Which stacks a change touches, and why; stacks whose file was deleted are not
    deployed by the scripts (a destroy is a decision for a person)."""

    stacks: dict[str, list[str]]            # stack -> reasons, stacks that exist in the working tree
    removed: list[str]
    changed: list[str]

    def names(self) -> list[str]:
        return list(self.stacks)


def touched_stacks(root: Path, base_sha: str, changed: Optional[list[str]] = None) -> Selection:
    """The stack-to-file mapping: stacks/Pulumi.X.yaml touches X; a stack's node file
    (stacks/node.yaml, or its glmserve:node) touches the stacks that use it; infra/, templates/,
    providers/, Pulumi.yaml, __main__.py, requirements.lock and pyproject.toml touch every stack.
    Anything else (docs, tests, workflows) touches none."""
    changed = changed_files(root, base_sha) if changed is None else changed
    cfg = stack_config_dir(root)
    head = stacks_at_head(root)
    base = stacks_at(root, base_sha)
    node_head = {s: _node_file_of((root / cfg / f"Pulumi.{s}.yaml").read_text()) for s in head}
    node_base = {s: _node_file_of(file_at(root, base_sha, f"{cfg}/Pulumi.{s}.yaml")) for s in base}
    reasons: dict[str, list[str]] = {}

    def add(stack: str, why: str) -> None:
        reasons.setdefault(stack, [])
        if why not in reasons[stack]:
            reasons[stack].append(why)

    for path in changed:
        if path.startswith(cfg + "/"):
            name = path[len(cfg) + 1:]
            m = re.fullmatch(r"Pulumi\.(.+)\.yaml", name)
            if m:
                add(m.group(1), f"{path} changed")
                continue
            for s in sorted(set(head) | set(base)):
                if node_head.get(s) == name or node_base.get(s) == name:
                    add(s, f"{path} (its node file) changed")
        elif path.startswith(SHARED_PREFIXES) or path in SHARED_FILES:
            for s in sorted(set(head) | set(base)):
                add(s, f"{path.split('/')[0] + '/' if '/' in path else path} changed")
    removed = sorted(s for s in reasons if s not in head)
    kept = {s: r for s, r in reasons.items() if s in head}
    return Selection(stacks=kept, removed=removed, changed=changed)


# ----------------------------------------------------------------------------- environments

def raw_environment(root: Path, stack: str) -> str:
    """The stack's glmserve:policy.environment as written (dev when unset or unreadable)."""
    path = root / stack_config_dir(root) / f"Pulumi.{stack}.yaml"
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        env = ((doc.get("config") or {}).get("glmserve:policy") or {}).get("environment")
    except (OSError, yaml.YAMLError, AttributeError):
        env = None
    return env if env in ENVIRONMENTS else "dev"


def environment_of(root: Path, stack: str) -> str:
    """The environment from the validated spec; the raw value when the spec does not validate
    (the stack still gets its place in the order, and fails at its turn with the reason)."""
    try:
        from infra.spec.load import spec_for_stack
        spec = spec_for_stack(stack, root)
        env = getattr(getattr(spec, "policy", None), "environment", None)
        if env in ENVIRONMENTS:
            return env
    except Exception:  # noqa: BLE001 - any validation problem is reported by glmserve itself
        pass
    return raw_environment(root, stack)


def rank(env: str) -> int:
    return ENVIRONMENTS.index(env) if env in ENVIRONMENTS else len(ENVIRONMENTS)


def in_environment_order(root: Path, stacks: Iterable[str]) -> list[tuple[str, str]]:
    """[(stack, environment)], dev before staging before prod, by name within one."""
    pairs = [(s, environment_of(root, s)) for s in stacks]
    return sorted(pairs, key=lambda p: (rank(p[1]), p[0]))


# ----------------------------------------------------------------------------- secrets

def secret_values(env: Optional[dict] = None) -> list[str]:
    env = os.environ if env is None else env
    values = set()
    for k, v in env.items():
        if not v or len(v) < 6 or k.endswith(("_FILE", "_PATH", "_DIR", "_URL")):
            continue
        if k in SECRET_ENV or SECRET_NAME_RE.search(k):
            values.add(v)
    return sorted(values, key=len, reverse=True)


def redact(text: str, env: Optional[dict] = None) -> str:
    for v in secret_values(env):
        text = text.replace(v, REDACTED)
    return text


# ----------------------------------------------------------------------------- backend

def require_pipeline_backend() -> None:
    """In a pipeline (CI set), state must live in the shared backend from the secret store: a
    runner's local file backend disappears with the runner and orphans what `up` created."""
    if os.environ.get("CI", "").lower() in ("", "0", "false"):
        return
    if not os.environ.get("PULUMI_BACKEND_URL"):
        raise GitopsError("PULUMI_BACKEND_URL is not set: pipelines take the state backend from their secret "
                          "store (docs/gitops.md); a runner's local state would be lost with the runner")
    if os.environ.get("PULUMI_BACKEND_URL", "").startswith("file://") and not os.environ.get("GLMSERVE_ALLOW_FILE_BACKEND"):
        raise GitopsError("PULUMI_BACKEND_URL is a file:// backend on a CI runner: use an S3-compatible bucket or "
                          "Pulumi Cloud (docs/gitops.md), or set GLMSERVE_ALLOW_FILE_BACKEND=1 for a runner "
                          "with persistent disk")


# ----------------------------------------------------------------------------- glmserve

@dataclasses.dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def glmserve_command(root: Path) -> list[str]:
    override = os.environ.get("GLMSERVE")
    if override:
        return shlex.split(override)
    return [sys.executable, "-m", "infra.cli"]


def glmserve_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["GLMSERVE_PROJECT_DIR"] = str(root)
    if (root / "infra" / "__init__.py").is_file():
        env["PYTHONPATH"] = os.pathsep.join([str(root), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


def run_glmserve(root: Path, args: list[str], echo: Optional[Callable[[str], None]] = None,
                 timeout: float = 3 * 3600) -> Run:
    """Run `glmserve ARGS` for the project at ``root``; with ``echo``, stream every (redacted)
    line as it comes, so a long `up` shows progress in the pipeline's log."""
    cmd = glmserve_command(root) + args
    env = glmserve_env(root)
    if echo is None:
        proc = subprocess.run(cmd, cwd=str(root), env=env, capture_output=True, text=True, timeout=timeout)
        return Run(args, proc.returncode, redact(proc.stdout), redact(proc.stderr))
    out: list[str] = []
    proc = subprocess.Popen(cmd, cwd=str(root), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = redact(line)
        out.append(line)
        echo(line.rstrip("\n"))
    rc = proc.wait(timeout=timeout)
    text = "".join(out)
    return Run(args, rc, text, "")


# ----------------------------------------------------------------------------- engine output

OP_LINE = re.compile(r"^\s*(?P<sym>[-+~]{1,2}|\+-|-\+)?\s*(?P<type>[\w.-]+:[\w.-]*:[\w./-]+)\s+(?P<name>\S+)\s+"
                     r"(?P<op>create|update|delete|replace|create-replacement|delete-replaced|import|read|"
                     r"discard|same)(?:\s+\[diff:\s*(?P<diff>[^\]]*)\])?\s*$")
OP_DIFF_LINE = re.compile(r"^\s*(?P<sym>[-+~]{1,2}|\+-|-\+)\s+(?P<type>[\w.-]+:[\w.-]*:[\w./-]+):\s+\((?P<op>[\w-]+)\)\s*$")
URN_LINE = re.compile(r"^\s*\[urn=(?P<urn>[^\]]+)\]\s*$")


def resource_changes(output: str) -> list[dict[str, str]]:
    """The resources an engine preview/refresh would change: [{op, type, name, diff}]."""
    changes: list[dict[str, str]] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        m = OP_LINE.match(line)
        if m and m.group("op") != "same":
            changes.append({"op": m.group("op"), "type": m.group("type"), "name": m.group("name"),
                            "diff": (m.group("diff") or "").strip()})
            continue
        m = OP_DIFF_LINE.match(line)
        if m and m.group("op") not in ("same", "read", "refresh"):
            name = ""
            if i + 1 < len(lines):
                u = URN_LINE.match(lines[i + 1])
                if u:
                    name = u.group("urn").rsplit("::", 1)[-1]
            changes.append({"op": m.group("op"), "type": m.group("type"), "name": name, "diff": ""})
    seen = set()
    unique = []
    for c in changes:
        key = (c["op"], c["type"], c["name"])
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique


def resource_summary(output: str) -> list[str]:
    """The engine's `Resources:` block, e.g. ['~ 1 to update', '3 unchanged']."""
    lines = output.splitlines()
    idx = [i for i, ln in enumerate(lines) if ln.strip() == "Resources:"]
    if not idx:
        return []
    out = []
    for ln in lines[idx[-1] + 1:]:
        s = ln.strip()
        if not s:
            break
        if re.match(r"^([-+~]{1,2}\s+)?\d+ ", s) or re.match(r"^\+-\s+\d+ ", s):
            out.append(s)
        else:
            break
    return out


def failure_detail(run: Run, limit: int = 40) -> str:
    text = (run.stderr or run.stdout).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # The engine repeats its stdout inside the error; the glmserve/policy lines are what matter.
    marks = [i for i, ln in enumerate(lines) if ln.startswith("glmserve:") or "policy check failed" in ln]
    if marks:
        lines = lines[marks[-1]:] if len(lines) - marks[-1] > 1 else lines[marks[0]:]
    return "\n".join(lines[-limit:])


# ----------------------------------------------------------------------------- output

def write_summary(markdown: str, path: Optional[str]) -> None:
    """Append to ``path`` (e.g. $GITHUB_STEP_SUMMARY), never with a secret value."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(redact(markdown).rstrip("\n") + "\n")


def write_json(data: dict, path: Optional[str]) -> None:
    if path:
        Path(path).write_text(redact(json.dumps(data, indent=2)) + "\n")


def say(line: str = "") -> None:
    print(redact(line), flush=True)


def group(title: Optional[str]) -> None:
    """A collapsible group in the GitHub Actions log (a plain heading elsewhere); None ends it."""
    actions = os.environ.get("GITHUB_ACTIONS") == "true"
    if title is None:
        if actions:
            say("::endgroup::")
    else:
        say(f"::group::{title}" if actions else f"--- {title}")


def money(v: Optional[float]) -> str:
    return "n/a" if v is None else f"${v:,.2f}"


def main_wrapper(fn: Callable[[list[str]], int], argv: Optional[list[str]] = None) -> int:
    try:
        return fn(sys.argv[1:] if argv is None else argv)
    except GitopsError as e:
        print(redact(f"{Path(sys.argv[0]).name}: {e}"), file=sys.stderr)
        return 2
    except BrokenPipeError:                       # e.g. `pr-preview ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:  # noqa: BLE001 - glmserve's own user errors, without a traceback
        if type(e).__name__ != "GlmserveError":
            raise
        print(redact(e.render()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
