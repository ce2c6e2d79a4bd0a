"""drift-report: does what runs match the state? `glmserve refresh --preview-only` for every
deployed stack, and a report of each resource that changed out of band.

    scripts/gitops/drift-report                                   # every deployed stack
    scripts/gitops/drift-report --environment prod --fail-on-drift   # the scheduled CI job

A stack counts as deployed when the backend holds it with resources (`pulumi stack ls`);
stacks only present as files are listed as not deployed and not refreshed (a refresh would
create them in the backend). The refresh is a preview: the state is never written, nothing in
the cloud is changed. The report also flags stacks past their policy.expiresAt.

Exit 0 (no drift, or drift without --fail-on-drift), 1 when a refresh failed, 3 when drift was
found with --fail-on-drift, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _lib as lib  # noqa: E402

EXIT_DRIFT = 3
OP_WORDS = {
    "delete": "gone out of band (the resource no longer exists)",
    "update": "changed out of band",
    "create": "appeared",
    "replace": "changed out of band (replace)",
}


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="drift-report", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--project", help="the project root (default: found from the current directory)")
    p.add_argument("--stack", action="append", help="only these stacks")
    p.add_argument("--environment", action="append", choices=lib.ENVIRONMENTS, help="only this environment")
    p.add_argument("--fail-on-drift", action="store_true", help=f"exit {EXIT_DRIFT} when any stack drifted")
    p.add_argument("--summary", default=os.environ.get("GITHUB_STEP_SUMMARY"),
                   help="append a Markdown report here (default $GITHUB_STEP_SUMMARY)")
    p.add_argument("--json", dest="json_out", help="write the machine-readable report to this file")
    return p.parse_args(argv)


def deployed_stacks(root: Path) -> Optional[dict[str, int]]:
    """{stack: resource count} from the backend; None when the backend cannot be listed."""
    from infra.deploy.workspace import run_cli

    proc = run_cli(["stack", "ls", "--json"], check=False)
    if proc.returncode != 0:
        lib.say(f"drift-report: cannot list the backend's stacks: {lib.redact(proc.stderr.strip()[-400:])}")
        return None
    try:
        rows = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return None
    return {str(r.get("name", "")).split("/")[-1]: int(r.get("resourceCount") or 0) for r in rows}


def expiry(root: Path, stack: str) -> Optional[str]:
    """A message when the stack's policy.expiresAt has passed and its pod is meant to run."""
    try:
        from infra.spec.load import spec_for_stack
        spec = spec_for_stack(stack, root)
    except Exception:  # noqa: BLE001 - validation problems are preview's business, not drift's
        return None
    policy = getattr(spec, "policy", None)
    expires = getattr(policy, "expires_at", None)
    if expires is None or datetime.date.today() <= expires:
        return None
    if spec.options_for("runpod").get("state") == "stopped":
        return None
    return (f"policy.expiresAt {expires.isoformat()} has passed: stop it (runpod.state: stopped), destroy it, "
            "or move the date")


def refresh(root: Path, stack: str) -> dict[str, Any]:
    lib.group(f"glmserve refresh --stack {stack} --preview-only")
    run = lib.run_glmserve(root, ["refresh", "--stack", stack, "--preview-only"])
    for line in (run.stdout + run.stderr).splitlines():
        lib.say(line)
    lib.group(None)
    changes = [c for c in lib.resource_changes(run.stdout) if c["op"] in OP_WORDS or c["op"].endswith("replace")]
    return {"ok": run.ok, "changes": changes, "summary": lib.resource_summary(run.stdout),
            "error": None if run.ok else lib.failure_detail(run), "drift": bool(changes) and run.ok}


def markdown(report: dict[str, Any]) -> str:
    out = ["## glmserve: drift report", "", f"{report['time']} UTC", ""]
    out += ["| stack | environment | result | what |", "| --- | --- | --- | --- |"]
    for s in report["stacks"]:
        if s["status"] == "not deployed":
            out.append(f"| `{s['stack']}` | {s['environment']} | not deployed | |")
            continue
        r = s.get("refresh") or {}
        if not r.get("ok", True):
            out.append(f"| `{s['stack']}` | {s['environment']} | :x: refresh failed | see below |")
        elif r.get("drift"):
            what = "; ".join(f"{c['name']} ({c['type']}): {OP_WORDS.get(c['op'], c['op'])}"
                             + (f" [{c['diff']}]" if c["diff"] else "") for c in r["changes"])
            out.append(f"| `{s['stack']}` | {s['environment']} | :warning: **drift** | {what} |")
        else:
            out.append(f"| `{s['stack']}` | {s['environment']} | :white_check_mark: in sync | "
                       f"{', '.join(r.get('summary') or [])} |")
    for s in report["stacks"]:
        if s.get("expired"):
            out += ["", f"> :alarm_clock: `{s['stack']}`: {s['expired']}"]
        r = s.get("refresh") or {}
        if r and not r.get("ok", True):
            out += ["", f"**`{s['stack']}`**: refresh failed:", "", "```", r.get("error") or "", "```"]
    if any((s.get("refresh") or {}).get("drift") for s in report["stacks"]):
        out += ["", "To bring the cloud back to the stack: `glmserve up --stack <stack>` (re-creates or "
                    "re-applies what changed). To accept what is running instead: `glmserve refresh --stack "
                    "<stack>`, then change the stack file to match."]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    args = parse(argv)
    root = lib.project_root(args.project)
    lib.use_project(root)
    stacks = list(dict.fromkeys(args.stack)) if args.stack else lib.stacks_at_head(root)
    ordered = lib.in_environment_order(root, stacks)
    if args.environment:
        ordered = [(s, e) for s, e in ordered if e in args.environment]
    lib.require_pipeline_backend()
    deployed = deployed_stacks(root)
    report: dict[str, Any] = {"time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                              "stacks": []}
    failed = drifted = False
    for stack, env in ordered:
        entry: dict[str, Any] = {"stack": stack, "environment": env, "expired": expiry(root, stack)}
        if deployed is not None and deployed.get(stack, 0) == 0:
            entry["status"] = "not deployed"
            lib.say(f"drift-report: {stack} ({env}): not deployed")
        else:
            entry["refresh"] = r = refresh(root, stack)
            entry["status"] = "failed" if not r["ok"] else "drift" if r["drift"] else "in sync"
            failed |= not r["ok"]
            drifted |= r["drift"]
            lib.say(f"drift-report: {stack} ({env}): {entry['status']}"
                    + "".join(f"\n  {c['op']} {c['type']} {c['name']}" + (f" [{c['diff']}]" if c["diff"] else "")
                              for c in r["changes"]))
        if entry["expired"]:
            drifted = True
            lib.say(f"drift-report: {stack}: {entry['expired']}")
        report["stacks"].append(entry)
    report["drift"] = drifted
    report["failed"] = failed
    lib.write_summary(markdown(report), args.summary)
    lib.write_json(report, args.json_out)
    if failed:
        return 1
    if drifted and args.fail_on_drift:
        return EXIT_DRIFT
    return 0


if __name__ == "__main__":
    sys.exit(lib.main_wrapper(main))
