"""How `glmserve diff` and the PR summary show a diff (infra/gitops/compare.py): plain text
for a terminal, Markdown for a pull request comment or a job summary."""
from __future__ import annotations

import json
from typing import Any, Optional

from infra.gitops.output import money, signed_money
from infra.gitops.snapshot_worker import COST_FIELDS

WORKING_TREE = "working tree"


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
                lines.append(f"  {label}: {money(x.get('before'))} -> {money(x.get('after'))} "
                             f"({signed_money(x.get('delta'))})")
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
            parts.append(f"{label} {money(x.get('before'))} → **{money(x.get('after'))}** ({signed_money(x.get('delta'))})")
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
