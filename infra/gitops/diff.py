"""`glmserve diff`: what a change does to the deployed node, in words a reviewer reads.

Compares a stack at a base git revision with the working tree: the engine flags added,
removed or changed, the provider's deploy fields, the capacity plan, the cost per hour, the
policy verdict and the configuration keys that changed.

Each side is evaluated by its own tree's code: the base revision's files (Pulumi.yaml,
stacks/, templates/, infra/, providers/) are exported with `git archive` into a temporary
directory, and a worker process (this file run as a script, with that tree first on
PYTHONPATH) prints a JSON snapshot of every requested stack. A change to a template or to the
renderer therefore shows up as the argv change it causes. When the base revision's code
cannot produce a snapshot (too old, or broken), its files are evaluated with the working
tree's code instead, and the diff says so.

This module uses absolute imports only, and only the standard library at module level,
because it also runs as the worker script inside another tree.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Optional

TREE_PATHS = ("Pulumi.yaml", "stacks", "templates", "infra", "providers")
PLAN_FIELDS = (
    ("fits", "fits"),
    ("weights_gib_per_gpu", "weights per GPU (GiB)"),
    ("available_kv_gib_per_gpu", "KV cache per GPU (GiB)"),
    ("kv_cache_tokens", "KV cache tokens"),
    ("max_model_len", "max model length"),
    ("max_concurrency", "max concurrency at max length"),
    ("cold_start_seconds_estimate", "cold start (s, estimate)"),
)
COST_FIELDS = (
    ("cost_per_hour_usd", "serving (one replica)"),
    ("max_cost_per_hour_usd", "every replica busy"),
    ("idle_cost_per_hour_usd", "idle"),
)
WORKING_TREE = "working tree"


# =========================================================================== the worker
# Runs inside the tree being snapshotted: only APIs that every revision of glmserve has are
# required (spec_for_stack, render); the rest is optional and guarded.

def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    out[prefix.rstrip(".")] = value
    return out


def _parse_argv(argv: list[str], table: Any) -> dict[str, Any]:
    """argv -> the positional head and the flags in order: [[flag, value or None], ...]."""
    from infra.common.argv import head, tokenize

    tokens = table.tokenize(argv) if table is not None else tokenize(argv)
    lead = head(tokens)
    flags = [[t.flag, t.value] if t.flag else ["(argument)", t.value] for t in tokens[len(lead):]]
    return {"head": lead, "flags": flags}


def _spec_view(spec) -> dict[str, Any]:
    data = spec.model_dump(mode="json", by_alias=True)
    secrets = {}
    for name, ref in (data.get("secrets") or {}).items():
        if ref is None:
            secrets[name] = "generated" if name == "apiKey" else None
        else:
            secrets[name] = f"name:{ref['name']}" if ref.get("name") else "value (secret)"
    data["secrets"] = secrets
    return _flatten(data)


def _snapshot_one(stack: str) -> dict[str, Any]:
    from infra.common.errors import GlmserveError
    from infra.config.project import list_stacks
    from infra.spec.load import spec_for_stack

    snap: dict[str, Any] = {"stack": stack, "exists": stack in list_stacks()}
    if not snap["exists"]:
        return snap
    try:
        spec = spec_for_stack(stack)
    except GlmserveError as e:
        snap["error"] = e.render()
        return snap
    snap["provider"] = spec.provider
    policy = getattr(spec, "policy", None)
    snap["environment"] = getattr(policy, "environment", None)
    snap["spec"] = _spec_view(spec)
    try:
        from infra.engine.render import render
        command = render(spec)
        snap["argv"] = list(command.argv)
        try:
            from infra.engine.flags import flag_table
            table = flag_table(command.engine)
        except Exception:  # noqa: BLE001 - an older tree without a flag table
            table = None
        snap["command"] = _parse_argv(list(command.argv), table)
    except GlmserveError as e:
        snap["error"] = e.render()
        return snap
    try:
        from infra.config import providers
        from infra.deploy.workspace import PROJECT
        provider = providers.get(spec.provider)
        provider.validate(spec)
        variables = provider.deploy_variables(spec, command, stack, PROJECT)
        variables = {k: v for k, v in variables.items() if k not in ("argv", "stack", "project")}
        snap["provider_fields"] = json.loads(json.dumps(_flatten(variables), default=str))
    except GlmserveError as e:
        snap["provider_error"] = e.render()
    except Exception as e:  # noqa: BLE001 - a provider that cannot describe itself offline
        snap["provider_error"] = f"{type(e).__name__}: {e}"
    plan = None
    if spec.model.profile:
        try:
            from infra.planning.plan import plan_for_spec
            plan = plan_for_spec(spec)
            summary = plan.summary()
            snap["plan"] = {k: summary.get(k) for k, _ in PLAN_FIELDS}
            snap["plan"]["errors"] = list(plan.errors())
            cost = plan.cost or {}
            snap["cost"] = {"billing": cost.get("billing"), **{k: cost.get(k) for k, _ in COST_FIELDS}}
        except GlmserveError as e:
            snap["plan_error"] = e.render()
        except ImportError:
            pass
    try:
        from infra.gitops.policy import check_stack
    except ImportError:
        check_stack = None
    if check_stack is not None:
        try:
            report = check_stack(stack, spec=spec, plan=plan)
            snap["policy"] = {"ok": report.ok, "environment": report.environment,
                              "violations": [v.render() for v in report.violations]}
        except GlmserveError as e:
            snap["policy"] = {"ok": False, "environment": snap["environment"], "violations": [e.render()]}
    return snap


def _worker_main(argv: list[str]) -> int:
    # Only the tree on PYTHONPATH: an editable install of another checkout must not fill in
    # modules that this tree lacks.
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in str(getattr(f, "__module__", ""))]
    stacks = [a for a in argv if not a.startswith("--")]
    from infra.common.secrets import redact
    from infra.config.project import list_stacks

    if not stacks:
        stacks = list_stacks()
    out = {s: _snapshot_one(s) for s in stacks}
    sys.stdout.write(redact(json.dumps(out)))
    return 0


# =========================================================================== snapshots

class DiffError(Exception):
    pass


def _user_error(key: str, message: str, value: Any = None, allowed: Optional[str] = None):
    from infra.common.errors import GlmserveError, Problem
    return GlmserveError([Problem(key=key, message=message, value=value, allowed=allowed)],
                         headline="cannot diff")


def _git(repo: Path, *args: str, binary: bool = False) -> Any:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=not binary)
    if proc.returncode != 0:
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
        raise DiffError(err.strip() or f"git {' '.join(args)} exited {proc.returncode}")
    return proc.stdout


def git_toplevel(path: Path) -> Path:
    try:
        return Path(_git(path, "rev-parse", "--show-toplevel").strip())
    except (DiffError, FileNotFoundError):
        raise _user_error("--base", f"{path} is not inside a git repository") from None


def resolve_rev(repo: Path, rev: str) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except DiffError:
        raise _user_error("--base", "is not a commit of the repository", value=rev,
                          allowed="a commit, branch or tag (e.g. origin/main, HEAD~1)") from None


def export_tree(project: Path, rev: str, dest: Path) -> Path:
    """The project's files at ``rev`` (TREE_PATHS that exist there) under ``dest``; returns
    the project root inside ``dest`` (the project may sit in a sub-folder of the repository)."""
    top = git_toplevel(project)
    prefix = os.path.relpath(project.resolve(), top.resolve())
    prefix = "" if prefix == "." else prefix.rstrip("/") + "/"
    paths = []
    for p in TREE_PATHS:
        try:
            _git(top, "cat-file", "-e", f"{rev}:{prefix}{p}")
            paths.append(prefix + p)
        except DiffError:
            continue
    root = dest / prefix if prefix else dest
    root.mkdir(parents=True, exist_ok=True)
    if paths:
        data = _git(top, "archive", "--format=tar", rev, "--", *paths, binary=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")
    return root


CODE_ROOT = Path(__file__).resolve().parents[2]
# Where a tree keeps this worker: each tree's snapshot is taken by that tree's own worker, which
# imports that tree's own modules (the layout moved from infra/diffing.py to infra/gitops/).
WORKER_FILES = ("infra/gitops/diff.py", "infra/diffing.py")


def _worker_file(root: Path) -> Optional[Path]:
    return next((root / f for f in WORKER_FILES if (root / f).is_file()), None)


def _run_worker(root: Path, stacks: list[str], own_code: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["GLMSERVE_PROJECT_DIR"] = str(root)
    env["PYTHONPATH"] = str(root if own_code else CODE_ROOT)
    worker = _worker_file(root) if own_code else Path(__file__).resolve()
    proc = subprocess.run([sys.executable, "-P", str(worker), "--snapshot", *stacks],
                          cwd=str(root), env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise DiffError(lines[-1] if lines else f"exit {proc.returncode}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise DiffError(f"unreadable snapshot ({e.msg})") from None


def snapshot_tree(root: Path, stacks: list[str]) -> tuple[dict[str, Any], Optional[str]]:
    """Snapshots of ``stacks`` in the tree at ``root``, by that tree's own code when it has
    one; returns (snapshots, note) where note says when the current code had to stand in."""
    if _worker_file(root) is not None:
        try:
            return _run_worker(root, stacks, own_code=True), None
        except DiffError as e:
            note = f"evaluated with the working tree's code (its own code failed: {e})"
            return _run_worker(root, stacks, own_code=False), note
    return _run_worker(root, stacks, own_code=False), None


def stacks_in_tree(root: Path) -> list[str]:
    from infra.config.project import list_stacks
    try:
        return list_stacks(root)
    except (OSError, ValueError):
        return []


# =========================================================================== diffing

def _fmt(v: Any) -> str:
    if v is None:
        return "(unset)"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.2f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _delta(before: Optional[float], after: Optional[float]) -> Optional[float]:
    if before is None and after is None:
        return None
    return round((after or 0.0) - (before or 0.0), 4)


def _flag_map(command: Optional[dict]) -> dict[str, list[Optional[str]]]:
    out: dict[str, list[Optional[str]]] = {}
    for name, value in (command or {}).get("flags", []):
        out.setdefault(name, []).append(value)
    return out


def _one(values: list[Optional[str]]) -> Any:
    return values[0] if len(values) == 1 else values


def diff_command(before: Optional[dict], after: Optional[dict]) -> dict[str, Any]:
    b, a = _flag_map(before), _flag_map(after)
    out: dict[str, Any] = {"added": [], "removed": [], "changed": [], "head": None}
    for name in a:
        if name not in b:
            out["added"].append({"flag": name, "value": _one(a[name])})
        elif a[name] != b[name]:
            out["changed"].append({"flag": name, "before": _one(b[name]), "after": _one(a[name])})
    for name in b:
        if name not in a:
            out["removed"].append({"flag": name, "value": _one(b[name])})
    bh, ah = (before or {}).get("head"), (after or {}).get("head")
    if bh != ah:
        out["head"] = {"before": bh, "after": ah}
    return out


def _diff_maps(before: Optional[dict], after: Optional[dict]) -> list[dict[str, Any]]:
    b, a = before or {}, after or {}
    out = []
    for k in list(b) + [k for k in a if k not in b]:
        if b.get(k) != a.get(k):
            out.append({"field": k, "before": b.get(k), "after": a.get(k)})
    return out


def diff_snapshots(stack: str, base: Optional[dict], head: Optional[dict]) -> dict[str, Any]:
    base = base or {"stack": stack, "exists": False}
    head = head or {"stack": stack, "exists": False}
    d: dict[str, Any] = {
        "stack": stack,
        "base": {k: base.get(k) for k in ("exists", "provider", "environment", "error")},
        "head": {k: head.get(k) for k in ("exists", "provider", "environment", "error")},
    }
    if not base["exists"] and not head["exists"]:
        d["status"] = "absent"
        return d
    if not head["exists"]:
        d["status"] = "removed"
    elif not base["exists"]:
        d["status"] = "added"
    d["engine"] = diff_command(base.get("command"), head.get("command"))
    d["engine"]["model"] = (head.get("command") or base.get("command") or {}).get("head")
    same_provider = base.get("provider") == head.get("provider")
    comparable = same_provider and base.get("provider_fields") is not None and head.get("provider_fields") is not None
    d["provider"] = {
        "before": base.get("provider"), "after": head.get("provider"),
        "changed": _diff_maps(base.get("provider_fields"), head.get("provider_fields")) if comparable else [],
        "comparable": comparable or not (base["exists"] and head["exists"]),
        "error": head.get("provider_error"), "base_error": base.get("provider_error"),
    }
    d["plan"] = {
        "changed": [{**c, "label": dict(PLAN_FIELDS).get(c["field"], c["field"])}
                    for c in _diff_maps({k: (base.get("plan") or {}).get(k) for k, _ in PLAN_FIELDS},
                                        {k: (head.get("plan") or {}).get(k) for k, _ in PLAN_FIELDS})],
        "before": base.get("plan"), "after": head.get("plan"),
        "error": head.get("plan_error"),
    }
    bc, hc = base.get("cost") or {}, head.get("cost") or {}
    d["cost"] = {k: {"label": label, "before": bc.get(k), "after": hc.get(k), "delta": _delta(bc.get(k), hc.get(k))}
                 for k, label in COST_FIELDS}
    d["cost"]["billing"] = {"before": bc.get("billing"), "after": hc.get("billing")}
    d["policy"] = {"before": base.get("policy"), "after": head.get("policy")}
    d["config"] = _diff_maps(base.get("spec"), head.get("spec"))
    if "status" not in d:
        e = d["engine"]
        changed = (e["added"] or e["removed"] or e["changed"] or e["head"] or d["provider"]["changed"]
                   or d["config"] or base.get("provider") != head.get("provider")
                   or base.get("error") != head.get("error"))
        d["status"] = "changed" if changed else "unchanged"
    return d


def diff_stacks(project: Path, base_rev: str, stacks: Optional[list[str]] = None) -> dict[str, Any]:
    """Diff ``stacks`` (default: every stack on either side) between ``base_rev`` and the
    working tree of ``project``. Returns {"base": sha, "stacks": [diff, ...], "notes": [...]}."""
    project = Path(project).resolve()
    top = git_toplevel(project)
    sha = resolve_rev(top, base_rev)
    notes = []
    with tempfile.TemporaryDirectory(prefix="glmserve-base-") as tmp:
        base_root = export_tree(project, sha, Path(tmp))
        wanted = stacks or sorted(set(stacks_in_tree(base_root)) | set(stacks_in_tree(project)))
        if not wanted:
            return {"base": sha, "base_rev": base_rev, "stacks": [], "notes": []}
        try:
            base_snaps, note = snapshot_tree(base_root, wanted)
        except DiffError as e:
            raise _user_error("--base", f"cannot evaluate the stacks at this revision ({e})", value=base_rev) from None
        if note:
            notes.append(f"base {sha[:12]}: {note}")
    try:
        head_snaps, note = snapshot_tree(project, wanted)
    except DiffError as e:
        raise _user_error("--stack", f"cannot evaluate the working tree ({e})") from None
    if note:
        notes.append(f"working tree: {note}")
    return {"base": sha, "base_rev": base_rev,
            "stacks": [diff_snapshots(s, base_snaps.get(s), head_snaps.get(s)) for s in wanted],
            "notes": notes}


# =========================================================================== formatting

def _money(v: Optional[float]) -> str:
    return "n/a" if v is None else f"${v:,.2f}"


def _signed(v: Optional[float]) -> str:
    if v is None:
        return "n/a"
    return ("+" if v > 0 else "-" if v < 0 else "±") + f"${abs(v):,.2f}"


def _flag_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return " ".join("" if x is None else str(x) for x in v)
    return str(v)


def _no_cost(c: dict) -> Optional[str]:
    """Why there is no cost to compare, or None when there is."""
    if any((c.get(k) or {}).get(side) is not None for k, _ in COST_FIELDS for side in ("before", "after")):
        return None
    billing = c.get("billing") or {}
    if not billing.get("before") and not billing.get("after"):
        return "n/a (the provider bills nothing, or there is no plan)"
    return "n/a (no price for this GPU and provider)"


def _policy_word(p: Optional[dict]) -> str:
    if p is None:
        return "n/a"
    return "pass" if p.get("ok") else f"FAIL ({len(p.get('violations') or [])})"


def format_text(result: dict[str, Any]) -> str:
    lines: list[str] = []
    base = result["base"][:12]
    for d in result["stacks"]:
        if d["status"] == "absent":
            lines.append(f"stack {d['stack']}: no such stack at {base} or in the working tree")
            lines.append("")
            continue
        h = d["head"] if d["head"]["exists"] else d["base"]
        lines.append(f"stack {d['stack']} (provider {h.get('provider') or '?'}, environment "
                     f"{h.get('environment') or '?'}): {d['status']}, {base} -> {WORKING_TREE}")
        for side in ("base", "head"):
            if d[side].get("error"):
                lines.append(f"  {side} does not validate:")
                lines += ["    " + ln for ln in d[side]["error"].splitlines()]
        if d["status"] in ("added", "removed"):
            lines.append(f"  the stack file was {d['status']}")
        e = d.get("engine") or {}
        model = " ".join((e.get("model") or []))
        entries = []
        if e.get("head"):
            entries.append(f"  ~ {' '.join(e['head']['before'] or [])} -> {' '.join(e['head']['after'] or [])}")
        entries += [f"  + {x['flag']}" + (f" {_flag_value(x['value'])}" if x["value"] is not None else "")
                    for x in e.get("added", [])]
        entries += [f"  - {x['flag']}" + (f" {_flag_value(x['value'])}" if x["value"] is not None else "")
                    for x in e.get("removed", [])]
        entries += [f"  ~ {x['flag']}: {_flag_value(x['before'])} -> {_flag_value(x['after'])}"
                    for x in e.get("changed", [])]
        lines.append(f"engine command ({model}):" if model else "engine command:")
        lines += entries or ["  (unchanged)"]
        p = d.get("provider") or {}
        if p.get("before") != p.get("after"):
            lines.append(f"provider: {p.get('before')} -> {p.get('after')}")
        elif p.get("after") and not p.get("comparable", True):
            why = p.get("base_error") or p.get("error") or "not described"
            lines.append(f"provider {p['after']}: fields not comparable ({why.splitlines()[-1].strip()})")
        elif p.get("after"):
            lines.append(f"provider {p['after']}:")
            lines += [f"  ~ {c['field']}: {_fmt(c['before'])} -> {_fmt(c['after'])}" for c in p["changed"]] \
                or ["  (unchanged)"]
        pl = d.get("plan") or {}
        lines.append("capacity plan:")
        lines += [f"  ~ {c['label']}: {_fmt(c['before'])} -> {_fmt(c['after'])}" for c in pl.get("changed", [])] \
            or ["  (unchanged)"]
        for err in ((pl.get("after") or {}).get("errors") or []):
            lines.append(f"  ! {err}")
        c = d.get("cost") or {}
        if _no_cost(c):
            lines.append(f"cost per hour (USD): {_no_cost(c)}")
        else:
            lines.append("cost per hour (USD):")
            for k, label in COST_FIELDS:
                x = c.get(k) or {}
                lines.append(f"  {label}: {_money(x.get('before'))} -> {_money(x.get('after'))} "
                             f"({_signed(x.get('delta'))})")
        po = d.get("policy") or {}
        lines.append(f"policy: {_policy_word(po.get('before'))} -> {_policy_word(po.get('after'))}")
        for v in ((po.get("after") or {}).get("violations") or []):
            lines.append(f"  - {v}")
        cfg = d.get("config") or []
        if cfg:
            lines.append("configuration:")
            lines += [f"  ~ {x['field']}: {_fmt(x['before'])} -> {_fmt(x['after'])}" for x in cfg]
        lines.append("")
    for n in result.get("notes", []):
        lines.append(f"note: {n}")
    return "\n".join(lines).rstrip("\n") + "\n"


def _md(v: Any) -> str:
    s = _fmt(v) if not isinstance(v, str) else v
    return "`" + s.replace("`", "'").replace("|", "\\|") + "`" if s else "—"


def format_markdown_stack(d: dict[str, Any], base: str) -> str:
    out: list[str] = []
    if d["status"] == "absent":
        return f"No stack `{d['stack']}` at `{base[:12]}` or in the change.\n"
    if d["status"] in ("added", "removed"):
        out.append(f"The stack file was **{d['status']}**.\n")
    for side, label in (("base", "before"), ("head", "after")):
        if d[side].get("error"):
            out.append(f"The stack does not validate {label} the change:\n\n```\n{d[side]['error']}\n```\n")
    e = d.get("engine") or {}
    model = " ".join(e.get("model") or [])
    rows = []
    if e.get("head"):
        rows.append(f"| (command) | {_md(' '.join(e['head']['before'] or []))} | {_md(' '.join(e['head']['after'] or []))} |")
    rows += [f"| `{x['flag']}` | — | {_md(_flag_value(x['value'])) if x['value'] is not None else '(added)'} |"
             for x in e.get("added", [])]
    rows += [f"| `{x['flag']}` | {_md(_flag_value(x['value'])) if x['value'] is not None else '(set)'} | (removed) |"
             for x in e.get("removed", [])]
    rows += [f"| `{x['flag']}` | {_md(_flag_value(x['before']))} | {_md(_flag_value(x['after']))} |"
             for x in e.get("changed", [])]
    out.append(f"**Engine command** (`{model}`): " + ("unchanged\n" if not rows else "\n"))
    if rows:
        out += ["| flag | before | after |", "| --- | --- | --- |", *rows, ""]
    p = d.get("provider") or {}
    if p.get("before") != p.get("after"):
        out.append(f"**Provider**: `{p.get('before')}` → `{p.get('after')}`\n")
    elif p.get("after") and not p.get("comparable", True):
        why = p.get("base_error") or p.get("error") or "not described"
        out.append(f"**Provider fields** ({p['after']}): not comparable ({why.splitlines()[-1].strip()})\n")
    elif p.get("changed"):
        out += [f"**Provider fields** ({p['after']}):\n", "| field | before | after |", "| --- | --- | --- |"]
        out += [f"| `{c['field']}` | {_md(c['before'])} | {_md(c['after'])} |" for c in p["changed"]]
        out.append("")
    pl = d.get("plan") or {}
    after = pl.get("after") or {}
    if pl.get("changed"):
        out += ["**Capacity plan**:\n", "| | before | after |", "| --- | --- | --- |"]
        out += [f"| {c['label']} | {_md(c['before'])} | {_md(c['after'])} |" for c in pl["changed"]]
        out.append("")
    elif after:
        out.append(f"**Capacity plan**: unchanged (fits: {_fmt(after.get('fits'))}, "
                   f"{_fmt(after.get('kv_cache_tokens'))} KV tokens, max concurrency {_fmt(after.get('max_concurrency'))})\n")
    for err in after.get("errors") or []:
        out.append(f"> :x: {err}\n")
    c = d.get("cost") or {}
    if _no_cost(c):
        out.append(f"**Cost per hour**: {_no_cost(c)}\n")
    else:
        parts = []
        for k, label in COST_FIELDS:
            x = c.get(k) or {}
            parts.append(f"{label} {_money(x.get('before'))} → **{_money(x.get('after'))}** ({_signed(x.get('delta'))})")
        out.append("**Cost per hour**: " + " · ".join(parts) + "\n")
    po = d.get("policy") or {}
    env = (po.get("after") or {}).get("environment") or d["head"].get("environment") or "?"
    out.append(f"**Policy** ({env}): {_policy_word(po.get('before'))} → **{_policy_word(po.get('after'))}**\n")
    for v in ((po.get("after") or {}).get("violations") or []):
        out.append(f"- {v}")
    if (po.get("after") or {}).get("violations"):
        out.append("")
    cfg = d.get("config") or []
    if cfg:
        out += ["<details><summary>Configuration keys changed</summary>\n", "| key | before | after |",
                "| --- | --- | --- |"]
        out += [f"| `{x['field']}` | {_md(x['before'])} | {_md(x['after'])} |" for x in cfg]
        out.append("\n</details>\n")
    return "\n".join(out) + "\n"


def format_markdown(result: dict[str, Any]) -> str:
    out = []
    for d in result["stacks"]:
        h = d["head"] if d["head"].get("exists") else d["base"]
        out.append(f"### `{d['stack']}` ({h.get('provider') or '?'}, {h.get('environment') or '?'}): {d['status']}\n")
        out.append(format_markdown_stack(d, result["base"]))
    for n in result.get("notes", []):
        out.append(f"_note: {n}_\n")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--snapshot"]:
        sys.exit(_worker_main(sys.argv[2:]))
    sys.exit("usage: glmserve diff --stack S [--base REV]")
