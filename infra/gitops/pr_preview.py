"""pr-preview: preview every stack a change touches, and summarise what it does.

    scripts/gitops/pr-preview --base origin/main                       # locally
    scripts/gitops/pr-preview --base "$BASE_SHA" --comment             # in CI (.github/workflows/preview.yml)

1. The change: the files that differ between the merge base of --base and HEAD and the working
   tree (committed, staged, unstaged and untracked).
2. The stacks it touches (infra/gitops/touched.py): stacks/Pulumi.X.yaml touches
   X; stacks/node.yaml, templates/, infra/, providers/ touch every stack.
3. For each, in environment order: `glmserve diff` against the merge base (engine flags,
   provider fields, capacity plan, cost per hour, policy) and `glmserve preview --stack S --diff`
   through the real engine (the policy rules gate it).
4. A Markdown summary: to --output, to $GITHUB_STEP_SUMMARY, and with --comment as the pull
   request's glmserve comment (updated in place on every push).

Exit 0 when every preview passed, 1 when a preview or a policy check failed, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

from infra.bench.results import summary_markdown as bench_summary
from infra.common.secrets import redact
from infra.config.project import list_stacks
from infra.gitops.diff import diff_stacks
from infra.gitops.diff_format import format_markdown_stack, format_text
from infra.gitops.preview_output import resource_changes, resource_summary
from infra.gitops.environments import in_environment_order
from infra.gitops.glmserve_cli import failure_detail, run_glmserve
from infra.gitops.output import group, money, signed_money, say, write_json, write_summary, write_text
from infra.gitops.pipeline import require_pipeline_backend, run_step, select_project
from infra.gitops.repo import GitopsError, merge_base
from infra.gitops.touched import stacks_folder, touched_stacks

PROG = "pr-preview"

MARKER = "<!-- glmserve:pr-preview -->"
MAX_COMMENT = 60_000          # GitHub's limit is 65,536 characters
ENGINE_LINES = 120


TRUSTED_URLS_ENV = "GLMSERVE_TRUSTED_URLS"


def trusted_urls() -> list[str]:
    """Credential-bearing URLs a pull request may set (comma-separated, from the pipeline's
    settings, never from the change itself)."""
    return [u.strip() for u in os.environ.get(TRUSTED_URLS_ENV, "").split(",") if u.strip()]


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--base", default=os.environ.get("GLMSERVE_BASE", "origin/main"),
                   help="the pull request's base (a commit, branch or tag); default origin/main")
    p.add_argument("--project", help="the project root (default: found from the current directory)")
    p.add_argument("--stack", action="append", help="preview these stacks instead of the touched ones")
    p.add_argument("--no-engine", action="store_true", help="diff and policy only, no engine preview")
    p.add_argument("--output", help="write the Markdown summary to this file")
    p.add_argument("--summary", default=os.environ.get("GITHUB_STEP_SUMMARY"),
                   help="append the summary here (default $GITHUB_STEP_SUMMARY)")
    p.add_argument("--json", dest="json_out", help="write the machine-readable result to this file")
    p.add_argument("--comment", action="store_true",
                   help="post or update the pull request comment (GITHUB_TOKEN, GITHUB_REPOSITORY)")
    p.add_argument("--pr", type=int, help="pull request number (default: from $GITHUB_EVENT_PATH)")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- running

def preview_stack(root: Path, stack: str) -> dict[str, Any]:
    cfg = root / stacks_folder(root) / f"Pulumi.{stack}.yaml"
    before = cfg.read_text() if cfg.is_file() else None
    group(f"glmserve preview --stack {stack} --diff")
    run = run_glmserve(root, ["preview", "--stack", stack, "--diff"])
    for line in (run.stdout + run.stderr).splitlines():
        say(line)
    group(None)
    after = cfg.read_text() if cfg.is_file() else None
    notes = []
    if before is not None and after != before and "encryptionsalt" in (after or "") and "encryptionsalt" not in before:
        notes.append(f"the stack was created in this backend by the preview and its file got an encryptionsalt: "
                     f"initialise it once with the pipeline's passphrase and commit {cfg.relative_to(root)} "
                     "(docs/gitops.md, Backends and secrets)")
    return {
        "ok": run.ok, "returncode": run.returncode,
        "summary": resource_summary(run.stdout),
        "changes": resource_changes(run.stdout),
        "error": None if run.ok else failure_detail(run),
        "output": run.stdout,
        "notes": notes,
    }


def untrusted_credential_urls(diff: dict[str, Any], trusted: list[str]) -> list[str]:
    """The credential-bearing URLs (each provider's ``credential_urls``) that this change sets to
    a value that is neither the base's nor in ``trusted``: a pull request must not make the
    pipeline send its credentials somewhere new. One message per URL."""
    from infra.config import providers

    found = []
    for change in diff.get("config") or []:
        provider, _, key = str(change["field"]).partition(".")
        if provider not in providers.names() or key not in providers.get(provider).credential_urls:
            continue
        url = change.get("after")
        if url and url not in trusted:
            found.append(f"{change['field']} changes to {url!r}; credentials are sent there, so this pull request is "
                         "not previewed with the pipeline's credentials. A maintainer lists the URL in the repository "
                         f"variable {TRUSTED_URLS_ENV}, or merges the change")
    return found


# ----------------------------------------------------------------------------- summary

def _cost_cell(d: dict) -> str:
    c = (d.get("cost") or {}).get("max_cost_per_hour_usd") or {}
    b, a = c.get("before"), c.get("after")
    if b is None and a is None:
        return "n/a"
    if b == a:
        return money(a)
    return f"{money(b)} → {money(a)} ({signed_money(c.get('delta'))})"


def _policy_cell(d: dict) -> str:
    p = (d.get("policy") or {}).get("after")
    if p is None:
        return "n/a"
    return "pass" if p.get("ok") else f"**FAIL** ({len(p.get('violations') or [])})"


def _preview_cell(pv: Optional[dict]) -> str:
    if pv is None:
        return "skipped"
    if not pv["ok"]:
        return ":x: failed"
    return ":white_check_mark: " + (", ".join(pv["summary"]) or "no changes")


def build_markdown(result: dict[str, Any]) -> str:
    out = [MARKER, "## glmserve: preview of this change", ""]
    base = result["base"]
    n, total = len(result["stacks"]), len(result["all_stacks"])
    how = "the base revision" if result["base_rev"] in (base, base[:len(result["base_rev"])]) \
        else f"merge base with `{result['base_rev']}`"
    out.append(f"Compared with `{base[:12]}` ({how}). {n} of {total} stack{'s' if total != 1 else ''} touched.")
    out.append("")
    if result["stacks"]:
        out += ["| stack | environment | provider | engine preview | policy | cost/h, every replica busy | why |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for s in result["stacks"]:
            d = s["diff"]
            h = d["head"]
            out.append(f"| `{s['stack']}` | {s['environment']} | {h.get('provider') or '?'} | "
                       f"{_preview_cell(s.get('preview'))} | {_policy_cell(d)} | {_cost_cell(d)} | "
                       f"{'; '.join(s['reasons'])} |")
        out.append("")
    untouched = [s for s in result["all_stacks"] if s not in {x["stack"] for x in result["stacks"]}]
    if untouched:
        out.append("Not touched, not previewed: " + ", ".join(f"`{s}`" for s in untouched) + ".")
        out.append("")
    for s in result["removed"]:
        out.append(f"> :warning: `stacks/Pulumi.{s}.yaml` was deleted. Its resources are **not** destroyed by the "
                   f"pipeline: run `glmserve destroy --stack {s} --remove` deliberately.")
        out.append("")
    for s in result["stacks"]:
        d = s["diff"]
        out.append(f"### `{s['stack']}` ({s['environment']}): {d['status']}")
        out.append("")
        out.append(format_markdown_stack(d, base))
        bench = bench_summary(s["stack"])
        if bench:
            out += [bench, ""]
        pv = s.get("preview")
        if pv is not None:
            if pv["ok"]:
                out.append("**Engine preview** (`glmserve preview --diff`): " + (", ".join(pv["summary"]) or "no changes"))
                out.append("")
                out += [f"- {c['op']} `{c['type']}` `{c['name']}`" + (f" [diff: {c['diff']}]" if c["diff"] else "")
                        for c in pv["changes"]]
            else:
                out.append("**Engine preview failed**:")
                out.append("")
                out += ["```", pv["error"] or "(no output)", "```"]
            out.append("")
            for note in pv["notes"]:
                out.append(f"> :information_source: {note}")
                out.append("")
            lines = pv["output"].splitlines()
            shown = lines[-ENGINE_LINES:]
            cut = f" (last {ENGINE_LINES} of {len(lines)} lines)" if len(lines) > ENGINE_LINES else ""
            out += [f"<details><summary>Engine output{cut}</summary>", "", "```", *shown, "```", "", "</details>", ""]
    for note in result["notes"]:
        out.append(f"_note: {note}_")
    text = "\n".join(out).rstrip() + "\n"
    if len(text) > MAX_COMMENT:
        text = text[:MAX_COMMENT - 200] + "\n\n_(truncated: the full summary is in the workflow run's summary)_\n"
    return text


# ----------------------------------------------------------------------------- comment

def pr_number(explicit: Optional[int]) -> Optional[int]:
    if explicit:
        return explicit
    path = os.environ.get("GITHUB_EVENT_PATH")
    if path and Path(path).is_file():
        event = json.loads(Path(path).read_text())
        num = (event.get("pull_request") or {}).get("number") or event.get("number")
        return int(num) if num else None
    return None


def post_comment(markdown: str, pr: int) -> str:
    """Create or update (found by MARKER) the pull request's glmserve comment; returns its URL."""
    import httpx

    token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
    repo = os.environ.get("GITHUB_REPOSITORY")
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    if not token or not repo:
        raise GitopsError("--comment needs GITHUB_TOKEN and GITHUB_REPOSITORY")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28"}
    with httpx.Client(base_url=api, headers=headers, timeout=30) as client:
        existing = None
        for page in range(1, 11):
            r = client.get(f"/repos/{repo}/issues/{pr}/comments", params={"per_page": 100, "page": page})
            if r.status_code >= 400:
                raise GitopsError(f"listing the comments of pull request {pr} failed: HTTP {r.status_code}")
            batch = r.json()
            existing = next((c for c in batch if MARKER in (c.get("body") or "")), None)
            if existing or len(batch) < 100:
                break
        body = {"body": redact(markdown)}
        if existing:
            r = client.patch(f"/repos/{repo}/issues/comments/{existing['id']}", json=body)
        else:
            r = client.post(f"/repos/{repo}/issues/{pr}/comments", json=body)
        if r.status_code >= 400:
            raise GitopsError(f"writing the pull request comment failed: HTTP {r.status_code}")
        return r.json().get("html_url", "")


# ----------------------------------------------------------------------------- main

def main(argv: list[str]) -> int:
    args = parse(argv)
    root = select_project(args.project)
    mb = merge_base(root, args.base)
    selection = touched_stacks(root, mb)
    names = list(dict.fromkeys(args.stack)) if args.stack else selection.names()
    unknown = [s for s in names if s not in list_stacks(root)]
    if unknown:
        raise GitopsError(f"no stack file for {', '.join(unknown)} under {stacks_folder(root)}/")
    ordered = in_environment_order(root, names)
    say(f"pr-preview: {len(selection.changed)} file(s) changed since {mb[:12]} (merge base with {args.base}); "
        f"stacks touched: {', '.join(s for s, _ in ordered) or 'none'}")
    for s, env in ordered:
        say(f"  {s} ({env}): {'; '.join(selection.stacks.get(s, ['--stack']))}")

    diffs = diff_stacks(root, mb, [s for s, _ in ordered]) if ordered else {"base": mb, "stacks": [], "notes": []}
    by_stack = {d["stack"]: d for d in diffs["stacks"]}
    if ordered:
        say(format_text(diffs))
    result: dict[str, Any] = {
        "base": mb, "base_rev": args.base, "changed": selection.changed, "all_stacks": list_stacks(root),
        "removed": selection.removed, "notes": diffs.get("notes", []), "stacks": [],
    }
    failed = []
    for stack, env in ordered:
        entry = {"stack": stack, "environment": env, "reasons": selection.stacks.get(stack, ["--stack"]),
                 "diff": by_stack[stack], "preview": None}
        refused = untrusted_credential_urls(by_stack[stack], trusted_urls())
        if refused:
            entry["preview"] = {"ok": False, "returncode": None, "summary": [], "changes": [],
                                "error": "; ".join(refused), "output": "", "notes": []}
            failed.append(stack)
        elif not args.no_engine:
            require_pipeline_backend()
            entry["preview"] = preview_stack(root, stack)
            if not entry["preview"]["ok"]:
                failed.append(stack)
        policy = (by_stack[stack].get("policy") or {}).get("after")
        if policy is not None and not policy.get("ok") and stack not in failed:
            failed.append(stack)
        result["stacks"].append(entry)
    result["failed"] = failed
    result["ok"] = not failed

    markdown = build_markdown(result)
    if args.output:
        write_text(markdown, args.output)
    write_summary(markdown, args.summary)
    write_json({k: v for k, v in result.items()}, args.json_out)
    if args.comment:
        pr = pr_number(args.pr)
        if pr is None:
            raise GitopsError("--comment: no pull request number (give --pr N, or run on a pull_request event)")
        url = post_comment(markdown, pr)
        say(f"pr-preview: summary posted to pull request #{pr} {url}")
    if not args.output and not args.summary and not args.comment:
        say(markdown)
    if failed:
        say(f"pr-preview: FAILED for {', '.join(failed)}")
        return 1
    say("pr-preview: every touched stack previews cleanly" if ordered else "pr-preview: no stack touched")
    return 0


if __name__ == "__main__":
    sys.exit(run_step(PROG, main))
