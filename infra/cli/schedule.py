"""`glmserve schedule show|apply --stack S`: the keep-warm window (scaling.warmSchedule) now.

``apply`` is idempotent and safe to run every few minutes (the `schedule` GitOps workflow does):
a provider whose cloud follows the window by itself (Modal's cron functions, Kubernetes'
KEDA trigger or CronJobs) is asked to set the current floor, or says it needs nothing; for the
others (RunPod: a pod has no autoscaler) the stack's `up` runs, only when the replicas the
window asks for differ from those the stack last deployed (its `scheduledReplicas` output).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os

from infra.common.errors import GlmserveError, Problem
from infra.spec.schedule import AT_ENV


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="schedule_command", required=True)
    for name, helptext in (("show", "the window now: inside or outside, replicas, next change"),
                           ("apply", "bring the stack to the window's state now (idempotent)")):
        s = sub.add_parser(name, help=helptext, allow_abbrev=False)
        s.add_argument("--stack", help="the stack (or --all)")
        s.add_argument("--all", action="store_true",
                       help="every stack with scaling.warmSchedule (apply skips the ones not deployed)")
        s.add_argument("--environment", choices=["dev", "staging", "prod"],
                       help="with --all: only the stacks of this policy.environment")
        s.add_argument("--at", help="judge the window at this instant (ISO 8601 with offset) instead of now")


def _instant(at: str | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(dt.timezone.utc)
    try:
        parsed = dt.datetime.fromisoformat(at)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise GlmserveError([Problem(key="--at", value=at, message="is not an instant with a UTC offset",
                                     allowed="ISO 8601 like 2026-12-07T09:30+01:00")])
    return parsed


def run_all(args, load, run_up) -> int:
    """`--all`: each stack with a warm schedule (of ``--environment``), one after the other; a
    stack that is not deployed is skipped, a failure of one does not stop the others."""
    from infra.config.project import list_stacks

    failed = 0
    for stack in list_stacks():
        spec, provider = load(stack)
        if spec.scaling.warm_schedule is None or (args.environment and spec.policy.environment != args.environment):
            continue
        one = argparse.Namespace(**{**vars(args), "stack": stack, "all": False})
        try:
            failed |= run(one, spec, provider, run_up) != 0
        except GlmserveError as e:
            if any(p.key == "--stack" and "is not deployed" in p.message for p in e.problems):
                print(f"{stack}: not deployed, skipped")
                continue
            raise
    return 1 if failed else 0


def run(args, spec, provider, run_up) -> int:
    warm = spec.scaling.warm_schedule
    if warm is None:
        raise GlmserveError([Problem(key="scaling.warmSchedule", message=f"is not set for stack {args.stack}: "
                                     f"there is no window to {args.schedule_command}")])
    at = _instant(args.at)
    # The program (and the providers' processes) judge the window at the same instant.
    os.environ[AT_ENV] = at.isoformat()
    replicas = spec.scaling.replicas_at(at)
    inside = warm.inside(at)
    try:
        change = warm.next_transition(at).astimezone(warm.zone).strftime("%a %Y-%m-%d %H:%M %Z")
    except ValueError:
        change = "never"
    print(f"{args.stack}: {'inside' if inside else 'outside'} a warm window at "
          f"{at.astimezone(warm.zone):%a %Y-%m-%d %H:%M %Z}: {replicas} replica(s) kept running; next change {change}")
    if args.schedule_command == "show":
        return 0
    from infra.deploy.workspace import PROJECT

    done = provider.apply_schedule(spec, args.stack, PROJECT, replicas)
    if done is not None:
        print(done)
        return 0
    deployed = _deployed_replicas(args.stack)
    if deployed == replicas:
        print(f"nothing to do: stack {args.stack} already deployed {replicas} replica(s) for this window")
        return 0
    print(f"stack {args.stack} deployed {deployed if deployed is not None else 'no window state'}; running up")
    return run_up(args)


def _deployed_replicas(stack: str):
    from infra.deploy.workspace import stack_outputs

    found = stack_outputs(stack)
    outputs = found[0] if found is not None else {}
    if not outputs:
        # A scheduled job never creates a node: deploying is `up`'s decision.
        raise GlmserveError([Problem(key="--stack", value=stack, message="is not deployed; nothing to apply the "
                                     "window to", allowed=f"a deployed stack (glmserve up --stack {stack} first)")])
    value = outputs.get("scheduledReplicas")
    return None if value is None else int(value)
