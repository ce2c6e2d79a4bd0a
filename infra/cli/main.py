"""`glmserve`: validate, render and plan offline; preview, up, refresh and destroy a stack
through the real Pulumi engine.

User errors print a message naming the key, the file, the value and what is allowed, and
exit 2 (1 for a failed deployment); they never print a Python traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable

from infra.deploy.pulumi_output import OutputFilter, summary
from infra.common.errors import GlmserveError, Problem
from infra.common.secrets import redact
from infra.policy.pack import PACK_ENV, available_pack

EXIT_USER = 2
EXIT_FAILED = 1


def _spec(stack: str):
    from infra.spec.load import spec_for_stack
    return spec_for_stack(stack)


def _provider(spec):
    from infra.config import providers
    return providers.get(spec.provider)


# ----------------------------------------------------------------------------- offline

def cmd_validate(args) -> int:
    from infra.engine.render import render

    spec = _spec(args.stack)
    provider = _provider(spec)
    provider.validate(spec)
    command = render(spec)
    for w in command.warnings:
        print(f"glmserve: warning: {w}", file=sys.stderr)
    if args.engine_check:
        from infra.engine import check as engine_check
        print(f"{args.stack}: OK ({engine_check.engine_check_stack(args.stack)})")
        return 0
    print(f"{args.stack}: OK")
    return 0


def cmd_render(args) -> int:
    from infra.engine.render import render

    spec = _spec(args.stack)
    # The whole stack is valid or nothing renders: a provider block's error (a URL the key
    # would be sent to, a label) is the stack's error even when only the engine command is asked.
    provider = _provider(spec)
    provider.validate(spec)
    command = render(spec, args.engine)
    if args.artifact:
        from infra.deploy.workspace import PROJECT
        sys.stdout.write(redact(provider.artifact(spec, command, args.stack, PROJECT)))
        return 0
    if args.format == "json":
        print(json.dumps(command.argv))
    elif args.format == "shell":
        print(command.shell())
    else:
        print("\n".join(command.argv))
    return 0


def cmd_stacks(args) -> int:
    from infra.config.project import list_stacks
    for s in list_stacks():
        print(s)
    return 0


def cmd_plan(args) -> int:
    from infra.cli import plan
    return plan.run(args)


def cmd_policy(args) -> int:
    from infra.policy.check import check_stack

    report = check_stack(args.stack)
    if args.facts:
        # What the rules read, and what the ServingNode hands a CrossGuard policy pack (policy/).
        print(redact(json.dumps(report.facts, indent=2)))
        return 0
    if args.json:
        print(redact(json.dumps(report.to_json(), indent=2)))
    else:
        print(redact(report.format_text()), end="")
    return 0 if report.ok else EXIT_FAILED


def cmd_bench(args) -> int:
    from infra.cli import bench
    return bench.run(args)


def cmd_diff(args) -> int:
    from pathlib import Path

    from infra.gitops.diff import diff_stacks
    from infra.gitops.diff_format import format_markdown, format_text
    from infra.config.project import project_root

    stacks = list(dict.fromkeys(args.stack or []))
    if not stacks and not args.all:
        raise GlmserveError([Problem(key="--stack", message="give --stack STACK (repeatable) or --all")],
                            headline="nothing to diff")
    result = diff_stacks(Path(project_root()), args.base, stacks or None)
    if args.format == "json":
        print(redact(json.dumps(result, indent=2)))
    elif args.format == "markdown":
        print(redact(format_markdown(result)), end="")
    else:
        print(redact(format_text(result)), end="")
    return 0


# ----------------------------------------------------------------------------- engine

def _pulumi_args(op: str, args) -> list[str]:
    """The plain CLI command `glmserve OP` runs: what a user would type."""
    cmd = [op, "--stack", args.stack]
    if op in ("up", "refresh", "destroy"):
        cmd += ["--yes", "--skip-preview"]
    if getattr(args, "diff", False):
        cmd.append("--diff")
    if getattr(args, "preview_only", False):
        cmd = [op, "--stack", args.stack, "--preview-only"]
    pack = available_pack() if op in ("preview", "up") else None
    if pack is not None:
        # The CrossGuard pack judges the ServingNode; PACK_ENV (set by the caller) tells the program.
        cmd += ["--policy-pack", str(pack)]
    return cmd


def _pulumi_op(op: str) -> Callable:
    def run(args) -> int:
        from infra.deploy.workspace import register_credentials, run_cli, select_stack, stream_cli

        # From here on the process handles credentials: none of them is ever printed.
        register_credentials()
        spec = _spec(args.stack)             # fail fast, offline, before the engine starts
        provider = _provider(spec)
        provider.validate(spec)
        if op == "up":
            missing = provider.missing_credentials(dict(os.environ), spec)
            if missing:
                raise GlmserveError(
                    [Problem(key=c.env, message=f"is not set: {c.what}"
                             + (f" (or set it with pulumi config set --secret --path glmserve:{c.config_key})"
                                if c.config_key else "")) for c in missing],
                    headline=f"the {spec.provider} provider needs credentials before anything is created")
        select_stack(args.stack)
        shown = OutputFilter()

        def out(line: str) -> None:
            line = shown(line)
            if line is not None:
                print(line, flush=True)

        cmd = _pulumi_args(op, args)
        if "--policy-pack" in cmd:
            # The pack reports the violations; the program steps aside (infra/policy/pack.py).
            os.environ[PACK_ENV] = cmd[cmd.index("--policy-pack") + 1]
        if stream_cli(cmd, out) != 0:
            detail = summary(shown.errors)
            if shown.policy_violations:
                # The pack's verdict, worded as the program's own check words it (infra/policy/check.py).
                print(redact(f"glmserve: policy check failed for stack {args.stack} (environment "
                             f"{spec.policy.environment}; reported by the policy pack policy/; docs/gitops.md):\n"
                             + "\n".join(f"  - {v}" for v in shown.policy_violations)), file=sys.stderr)
            if "currently locked" in detail:
                # A killed run leaves the file backend's lock behind (docs: README, RunPod section).
                detail += (f"\n  hint: if no other run is active, release the lock with "
                           f"`pulumi cancel --stack {args.stack} --yes`, then `glmserve refresh --stack {args.stack}`")
            print(redact(f"glmserve: pulumi {op} failed for stack {args.stack}" + (f":\n{detail}" if detail else "")),
                  file=sys.stderr)
            return EXIT_FAILED
        if op == "destroy" and args.remove:
            # The stack file is the project's source: only the state goes.
            run_cli(["stack", "rm", "--yes", "--preserve-config", "--stack", args.stack])
        return 0
    return run


def cmd_schedule(args) -> int:
    from infra.cli import schedule

    def load(stack: str):
        spec = _spec(stack)
        provider = _provider(spec)
        provider.validate(spec)
        return spec, provider

    if bool(args.stack) == bool(args.all):
        raise GlmserveError([Problem(key="--stack", message="give --stack STACK or --all")],
                            headline=f"nothing to {args.schedule_command}")
    if args.schedule_command == "apply":
        from infra.deploy.workspace import register_credentials
        register_credentials()
    args.diff = False
    if args.all:
        return schedule.run_all(args, load, _pulumi_op("up"))
    return schedule.run(args, *load(args.stack), _pulumi_op("up"))


# ----------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glmserve", description=__doc__, allow_abbrev=False)
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="validate a stack's node spec", allow_abbrev=False)
    v.add_argument("--stack", required=True)
    v.add_argument("--engine-check", action="store_true", help="also run the engine's own argument parser")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("render", help="print the engine command (or the provider artifact)", allow_abbrev=False)
    r.add_argument("--stack", required=True)
    r.add_argument("--engine", choices=["vllm", "sglang"])
    r.add_argument("--format", choices=["argv", "shell", "json"], default="argv")
    r.add_argument("--artifact", action="store_true", help="print what the provider deploys (secrets redacted)")
    r.set_defaults(func=cmd_render)

    pl = sub.add_parser("plan", help="capacity, cost and cold start for a stack or an ad-hoc node", allow_abbrev=False)
    from infra.cli import plan as plan_cli
    plan_cli.add_arguments(pl)
    pl.set_defaults(func=cmd_plan)

    s = sub.add_parser("stacks", help="list the stacks under stacks/")
    s.set_defaults(func=cmd_stacks)

    po = sub.add_parser("policy", help="run the policy rules on a stack, offline (exit 1 on a violation)",
                        allow_abbrev=False)
    po.add_argument("--stack", required=True)
    po.add_argument("--json", action="store_true")
    po.add_argument("--facts", action="store_true",
                    help="print the policy facts the rules read (the ServingNode's input for the policy pack)")
    po.set_defaults(func=cmd_policy)

    d = sub.add_parser("diff", help="what a change does to a stack's node: base revision vs working tree",
                       allow_abbrev=False)
    d.add_argument("--stack", action="append", help="a stack (repeatable)")
    d.add_argument("--all", action="store_true", help="every stack at the base revision or in the working tree")
    d.add_argument("--base", default="HEAD", help="git revision to compare with (default HEAD)")
    d.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    d.set_defaults(func=cmd_diff)

    sc = sub.add_parser("schedule", help="the keep-warm window (scaling.warmSchedule): show it, apply it now",
                        allow_abbrev=False)
    from infra.cli import schedule as schedule_cli
    schedule_cli.add_arguments(sc)
    sc.set_defaults(func=cmd_schedule)

    b = sub.add_parser("bench", help="measure the deployed endpoint: latency, throughput, $ per million tokens",
                       allow_abbrev=False)
    from infra.cli import bench as bench_mod
    bench_mod.add_arguments(b)
    b.set_defaults(func=cmd_bench)

    for op, helptext in (("preview", "pulumi preview"), ("up", "pulumi up"),
                         ("refresh", "pulumi refresh"), ("destroy", "pulumi destroy")):
        e = sub.add_parser(op, help=f"{helptext} --stack STACK, with offline checks first", allow_abbrev=False)
        e.add_argument("--stack", required=True)
        if op in ("preview", "up"):
            e.add_argument("--diff", action="store_true")
        if op == "refresh":
            e.add_argument("--preview-only", action="store_true")
        if op == "destroy":
            e.add_argument("--remove", action="store_true", help="also remove the stack and its state")
        e.set_defaults(func=_pulumi_op(op))
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GlmserveError as e:
        print(redact(e.render()), file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("glmserve: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
