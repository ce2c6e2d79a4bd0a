"""`glmserve bench --stack S`: a load sweep against the stack's deployed endpoint (docs/bench.md).

Progress goes to stderr; the table (or, with --json, the run record) to stdout. The API key is
registered for redaction before anything is printed and is never part of the record.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.common.errors import GlmserveError, Problem
from infra.common.secrets import redact


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        levels = ()
    if not levels or any(c < 1 for c in levels):
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: comma-separated positive integers, e.g. 1,4,16,64")
    return tuple(sorted(set(levels)))


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"got {text!r}; allowed: a positive number")
        return value
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from infra.bench.workload import Workload

    d = Workload()
    p.add_argument("--stack", required=True)
    p.add_argument("--levels", type=_levels, default=d.levels, metavar="C1,C2,...",
                   help=f"concurrency levels (default {','.join(map(str, d.levels))})")
    p.add_argument("--requests", type=_positive(int), default=None, metavar="N",
                   help="requests per level (default 4 x concurrency, at least 8)")
    p.add_argument("--duration", type=_positive(float), default=d.seconds_per_level, metavar="S",
                   help=f"seconds per level before no new request is sent (default {d.seconds_per_level:g})")
    p.add_argument("--input-tokens", type=_positive(int), default=d.input_tokens,
                   help=f"prompt length, shared prefix included (default {d.input_tokens})")
    p.add_argument("--shared-prefix-tokens", type=int, default=d.shared_prefix_tokens,
                   help=f"the part of the prompt every request shares (default {d.shared_prefix_tokens})")
    p.add_argument("--output-tokens", type=_positive(int), default=d.output_tokens,
                   help=f"tokens generated per request (default {d.output_tokens})")
    p.add_argument("--request-timeout", type=_positive(float), default=d.request_timeout, metavar="S")
    p.add_argument("--base-url", help="the endpoint as reachable from here (default: the stack's baseUrl output)")
    p.add_argument("--cost-per-hour", type=float, metavar="USD",
                   help="the node's cost per hour (default: the provider's live figure, else the planner's)")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.add_argument("--chart", type=Path, metavar="PNG", help="where to write the chart (default: beside the saved run)")
    p.add_argument("--no-save", action="store_true", help="do not save the run under the glmserve home")
    p.add_argument("--compare", nargs="?", const="last", metavar="RUN",
                   help="compare with an earlier run of this stack (default: the last one)")


def _check(args) -> None:
    if args.shared_prefix_tokens < 0 or args.shared_prefix_tokens >= args.input_tokens:
        raise GlmserveError([Problem(key="--shared-prefix-tokens", value=args.shared_prefix_tokens,
                                     message="must leave room for a unique part of each prompt",
                                     allowed=f"0 .. {args.input_tokens - 1} (below --input-tokens)")])
    if args.cost_per_hour is not None and args.cost_per_hour < 0:
        raise GlmserveError([Problem(key="--cost-per-hour", value=args.cost_per_hour, message="must not be negative")])


def run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from infra.bench import chart, cost, report, results, sweep, target
    from infra.bench.workload import Workload

    _check(args)
    plain, secret = target.stack_outputs(args.stack)
    tgt = target.resolve(args.stack, plain, secret, args.base_url)
    target.preflight(tgt)
    hourly = cost.hourly_cost(plain, args.cost_per_hour)
    earlier = results.load(args.stack, args.compare) if args.compare else None
    workload = Workload(levels=args.levels, input_tokens=args.input_tokens,
                        shared_prefix_tokens=args.shared_prefix_tokens, output_tokens=args.output_tokens,
                        requests_per_level=args.requests, seconds_per_level=args.duration,
                        request_timeout=args.request_timeout)

    err = Console(stderr=True)
    with Progress(TextColumn("concurrency {task.fields[c]:>4}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=not err.is_terminal) as bar:
        tasks: dict[int, int] = {}

        def progress(c: int, done: int, budget: int) -> None:
            if c not in tasks:
                tasks[c] = bar.add_task("", total=budget, c=c)
            bar.update(tasks[c], completed=done)

        record = sweep.run(tgt, workload, hourly, progress)

    if not args.no_save:
        record["saved"] = str(results.claim(record))
    png = args.chart or (Path(record["saved"]).with_suffix(".png") if not args.no_save else None)
    if png is not None:
        record["chart"] = str(chart.write(record, png, earlier))
    if not args.no_save:
        results.save(record)
    cmp = results.compare(record, earlier) if earlier else None
    if args.json:
        print(redact(json.dumps({**record, "compare": cmp} if cmp else record, indent=2)))
    else:
        out = Console()
        # Piped output is not cut to 80 columns: the table has one column per figure.
        report.show(out if out.is_terminal else Console(width=170), record, cmp)
        for what in ("saved", "chart"):
            if what in record:
                print(f"{what}: {record[what]}")
    failed = all(r["requests"] == r["errors"] for r in record["levels"])
    if failed:
        print(f"glmserve: every request of stack {args.stack}'s bench failed", file=sys.stderr)
    return 1 if failed else 0
