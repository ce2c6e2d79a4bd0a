"""merge-up: after a merge to main, `glmserve up` every stack the change touched, one
environment after another (dev, then staging, then prod), and stop at the first failure.

    scripts/gitops/merge-up --base HEAD~1 --dry-run                     # what would run, in order
    scripts/gitops/merge-up --base "$BEFORE_SHA"                         # every environment
    scripts/gitops/merge-up --base "$BEFORE_SHA" --environment prod      # one environment (a CI job)

`up` includes the policy gate (the program refuses a violating stack before creating
anything) and the readiness gate (up fails unless the engine serves the model). When a stack
fails, no later stack runs: neither the rest of its environment nor any later environment.
A stack whose file was deleted is listed, never destroyed.

--base is the commit main pointed at before the push (GitHub: github.event.before). When it is
missing, all zeros (a new branch) or unknown, every stack counts as touched.

Exit 0 when every `up` succeeded (or nothing was touched), 1 at the first failure, 2 for a usage
error.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from infra.config.project import list_stacks
from infra.gitops.environments import ENVIRONMENTS, in_environment_order
from infra.gitops.glmserve_cli import failure_detail, run_glmserve
from infra.gitops.output import group, say, write_json, write_summary
from infra.gitops.pipeline import require_pipeline_backend, run_step, select_project
from infra.gitops.repo import NULL_SHA, GitopsError, is_commit, resolve
from infra.gitops.touched import touched_stacks

PROG = "merge-up"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--base", help="the commit before the merge (default: every stack is touched)")
    p.add_argument("--project", help="the project root (default: found from the current directory)")
    p.add_argument("--environment", action="append", choices=ENVIRONMENTS,
                   help="only stacks of this environment (repeatable)")
    p.add_argument("--stack", action="append", help="these stacks instead of the touched ones")
    p.add_argument("--dry-run", action="store_true", help="print the order and stop")
    p.add_argument("--summary", default=os.environ.get("GITHUB_STEP_SUMMARY"),
                   help="append a Markdown summary here (default $GITHUB_STEP_SUMMARY)")
    p.add_argument("--json", dest="json_out", help="write the machine-readable result to this file")
    return p.parse_args(argv)


def select(root: Path, args: argparse.Namespace) -> tuple[list[tuple[str, str]], dict[str, list[str]], list[str]]:
    if args.stack:
        names = list(dict.fromkeys(args.stack))
        unknown = [s for s in names if s not in list_stacks(root)]
        if unknown:
            raise GitopsError(f"no stack file for {', '.join(unknown)}")
        reasons = {s: ["--stack"] for s in names}
        removed: list[str] = []
    else:
        base = args.base
        if not base or base == NULL_SHA or not is_commit(root, base):
            why = "no base commit" if not base or base == NULL_SHA else f"base {base} is not in this clone"
            reasons = {s: [f"{why}: every stack"] for s in list_stacks(root)}
            removed = []
        else:
            sel = touched_stacks(root, resolve(root, base))
            reasons, removed = sel.stacks, sel.removed
    ordered = in_environment_order(root, reasons)
    if args.environment:
        ordered = [(s, e) for s, e in ordered if e in args.environment]
    return ordered, reasons, removed


def markdown(result: dict[str, Any]) -> str:
    icon = {"succeeded": ":white_check_mark:", "failed": ":x:", "skipped": ":no_entry_sign: not run",
            "planned": ":hourglass: planned"}
    envs = ", ".join(result["environments"]) if result["environments"] else "all environments"
    out = [f"## glmserve: up after merge ({envs})", ""]
    if not result["stacks"]:
        out.append("No stack touched: nothing to deploy.")
    else:
        out += ["| # | stack | environment | result | duration | why |", "| --- | --- | --- | --- | --- | --- |"]
        for i, s in enumerate(result["stacks"], 1):
            dur = f"{s['seconds']:.0f} s" if s.get("seconds") is not None else ""
            out.append(f"| {i} | `{s['stack']}` | {s['environment']} | {icon[s['result']]} {s['result'] if s['result'] in ('succeeded', 'failed') else ''} "
                       f"| {dur} | {'; '.join(s['reasons'])} |")
        for s in result["stacks"]:
            if s["result"] == "failed":
                out += ["", f"**`{s['stack']}` failed**; later stacks were not touched:", "", "```",
                        s.get("error") or "(no output)", "```"]
    for s in result["removed"]:
        out += ["", f"> :warning: `stacks/Pulumi.{s}.yaml` was deleted: its resources still exist. Run "
                    f"`glmserve destroy --stack {s} --remove` deliberately."]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    args = parse(argv)
    root = select_project(args.project)
    ordered, reasons, removed = select(root, args)
    result: dict[str, Any] = {"environments": args.environment or [], "removed": removed, "stacks": []}
    for s, env in ordered:
        result["stacks"].append({"stack": s, "environment": env, "reasons": reasons.get(s, []),
                                 "result": "planned", "seconds": None})
    say("merge-up: order: " + (" -> ".join(f"{s} ({e})" for s, e in ordered) or "nothing touched"))
    for s in removed:
        say(f"merge-up: stacks/Pulumi.{s}.yaml was deleted; its resources are left alone "
            f"(glmserve destroy --stack {s} --remove)")
    if args.dry_run:
        write_json(result, args.json_out)
        return 0
    require_pipeline_backend()
    failed = None
    for entry in result["stacks"]:
        if failed is not None:
            entry["result"] = "skipped"
            continue
        stack = entry["stack"]
        group(f"glmserve up --stack {stack} ({entry['environment']})")
        t0 = time.monotonic()
        run = run_glmserve(root, ["up", "--stack", stack], echo=say)
        entry["seconds"] = round(time.monotonic() - t0, 1)
        group(None)
        if run.ok:
            entry["result"] = "succeeded"
            say(f"merge-up: {stack}: up succeeded in {entry['seconds']:.0f} s")
        else:
            entry["result"] = "failed"
            entry["error"] = failure_detail(run)
            failed = stack
            say(f"merge-up: {stack}: up FAILED (exit {run.returncode}); stopping before "
                + (", ".join(e["stack"] for e in result["stacks"] if e["result"] == "planned") or "nothing else"))
    result["ok"] = failed is None
    result["failed"] = failed
    write_summary(markdown(result), args.summary)
    write_json(result, args.json_out)
    return 0 if failed is None else 1


if __name__ == "__main__":
    sys.exit(run_step(PROG, main))
