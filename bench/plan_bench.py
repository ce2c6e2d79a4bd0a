#!/usr/bin/env python3
"""Wall time of `glmserve plan` (of a stack, and ad hoc) and `glmserve render` as whole processes.

    .venv/bin/python bench/plan_bench.py [--runs 15] [--stack modal-prod] [--target 0.3] [--json]

Each command runs N times as a subprocess (after one warm-up run that fills the OS file
cache); the median is compared with the target (0.3 s by default). The exit status is 0 when
every median meets the target, 1 when one misses it, and 0 with a "skipped" message when
.venv/bin/glmserve does not exist yet. The ad-hoc plan (`--model-config PROFILE`, no stack) times
the planner without the stack reader: the CLI (infra/cli/plan.py), the planner (infra/planning/)
and the providers it asks for their facts through the registry. `--module` also times
`python -m infra.cli plan`, the same command from a checkout without the console script. Not a
unit test: timings belong here, not in pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


def time_command(argv: list[str], runs: int, env: dict[str, str]) -> dict:
    subprocess.run(argv, cwd=ROOT, env=env, capture_output=True)          # warm-up
    times, codes = [], set()
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True)
        times.append(time.perf_counter() - t0)
        codes.add(r.returncode)
    return {"argv": argv, "runs": runs, "median_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times), "exit_codes": sorted(codes)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--stack", default="modal-prod")
    ap.add_argument("--profile", default="glm-5.2-fp8", help="model profile of the ad-hoc plan")
    ap.add_argument("--target", type=float, default=0.3, help="seconds, per command median")
    ap.add_argument("--module", action="store_true", help="also time `python -m infra.cli plan`")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    env = dict(os.environ, GLMSERVE_PROJECT_DIR=str(ROOT), PYTHONPATH=str(ROOT))
    glmserve = VENV_BIN / "glmserve"
    commands: dict[str, list[str]] = {}
    skipped = None
    if glmserve.exists():
        commands["plan"] = [str(glmserve), "plan", "--stack", args.stack, "--json"]
        commands["plan (ad hoc)"] = [str(glmserve), "plan", "--model-config", args.profile, "--kv-cache-dtype", "fp8",
                                     "--max-model-len", "131072", "--json"]
        commands["render"] = [str(glmserve), "render", "--stack", args.stack]
    else:
        skipped = f"skipped: {glmserve.relative_to(ROOT)} does not exist yet (the glmserve CLI is not installed)"
    if args.module:
        python = VENV_BIN / "python"
        commands["plan (python -m infra.cli plan)"] = [str(python if python.exists() else sys.executable), "-m",
                                                  "infra.cli", "plan", "--stack", args.stack, "--json"]
    results = {name: time_command(cmd, args.runs, env) for name, cmd in commands.items()}
    ok = all(r["median_s"] <= args.target for r in results.values())
    if args.json:
        print(json.dumps({"target_s": args.target, "skipped": skipped, "results": results, "ok": ok}, indent=2))
    else:
        if skipped:
            print(skipped)
        for name, r in results.items():
            verdict = "ok" if r["median_s"] <= args.target else "SLOW"
            print(f"{name:<32} median {r['median_s']:.3f} s  (min {r['min_s']:.3f}, max {r['max_s']:.3f}, "
                  f"{r['runs']} runs, exit {r['exit_codes']})  target {args.target:.2f} s  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
