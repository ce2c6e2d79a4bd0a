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

from infra.config.project import list_stacks
from infra.gitops.preview_output import resource_changes, resource_summary
from infra.gitops.environments import ENVIRONMENTS, in_environment_order
from infra.gitops.glmserve_cli import failure_detail, run_glmserve
from infra.gitops.output import group, say, write_json, write_summary
from infra.gitops.pipeline import require_pipeline_backend, run_step, select_project

PROG = "drift-report"

EXIT_DRIFT = 3
OP_WORDS = {
    "delete": "gone out of band (the resource no longer exists)",
    "update": "changed out of band",
    "create": "appeared",
    "replace": "changed out of band (replace)",
}


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--project", help="the project root (default: found from the current directory)")
    p.add_argument("--stack", action="append", help="only these stacks")
    p.add_argument("--environment", action="append", choices=ENVIRONMENTS, help="only this environment")
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
        say(f"drift-report: cannot list the backend's stacks: {proc.stderr.strip()[-400:]}")
        return None
    try:
        rows = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return None
    return {str(r.get("name", "")).split("/")[-1]: int(r.get("resourceCount") or 0) for r in rows}


def expiry(root: Path, stack: str) -> Optional[str]:
    """A message when the stack's policy.expiresAt has passed and its node is meant to run."""
    from infra.common.errors import GlmserveError
    from infra.policy.facts import policy_facts
    from infra.policy.rules import expiry_violation
    from infra.spec.load import spec_for_stack

    try:
        facts = policy_facts(spec_for_stack(stack, root), stack=stack)
    except (GlmserveError, OSError):      # validation problems are preview's business, not drift's
        return None
    expired = expiry_violation(facts, datetime.date.today())
    return None if expired is None else f"policy.expiresAt: {expired.message}; to do: {expired.fix}"


def refresh(root: Path, stack: str) -> dict[str, Any]:
    group(f"glmserve refresh --stack {stack} --preview-only")
    run = run_glmserve(root, ["refresh", "--stack", stack, "--preview-only"])
    for line in (run.stdout + run.stderr).splitlines():
        say(line)
    group(None)
    changes = [c for c in resource_changes(run.stdout) if c["op"] in OP_WORDS or c["op"].endswith("replace")]
    return {"ok": run.ok, "changes": changes, "summary": resource_summary(run.stdout),
            "error": None if run.ok else failure_detail(run), "drift": bool(changes) and run.ok}


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
    root = select_project(args.project)
    stacks = list(dict.fromkeys(args.stack)) if args.stack else list_stacks(root)
    ordered = in_environment_order(root, stacks)
    if args.environment:
        ordered = [(s, e) for s, e in ordered if e in args.environment]
    require_pipeline_backend()
    deployed = deployed_stacks(root)
    report: dict[str, Any] = {"time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                              "stacks": []}
    failed = drifted = False
    for stack, env in ordered:
        entry: dict[str, Any] = {"stack": stack, "environment": env, "expired": expiry(root, stack)}
        if deployed is not None and deployed.get(stack, 0) == 0:
            entry["status"] = "not deployed"
            say(f"drift-report: {stack} ({env}): not deployed")
        else:
            entry["refresh"] = r = refresh(root, stack)
            entry["status"] = "failed" if not r["ok"] else "drift" if r["drift"] else "in sync"
            failed |= not r["ok"]
            drifted |= r["drift"]
            say(f"drift-report: {stack} ({env}): {entry['status']}"
                + "".join(f"\n  {c['op']} {c['type']} {c['name']}" + (f" [{c['diff']}]" if c["diff"] else "")
                              for c in r["changes"]))
        if entry["expired"]:
            drifted = True
            say(f"drift-report: {stack}: {entry['expired']}")
        report["stacks"].append(entry)
    report["drift"] = drifted
    report["failed"] = failed
    write_summary(markdown(report), args.summary)
    write_json(report, args.json_out)
    if failed:
        return 1
    if drifted and args.fail_on_drift:
        return EXIT_DRIFT
    return 0


if __name__ == "__main__":
    sys.exit(run_step(PROG, main))
