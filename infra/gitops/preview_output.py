"""What a `pulumi preview` or `refresh` printed, read back: the resources it would change and its
`Resources:` summary (for the PR summary and the drift report)."""
from __future__ import annotations

import re

OP_LINE = re.compile(r"^\s*(?P<sym>[-+~]{1,2}|\+-|-\+)?\s*(?P<type>[\w.-]+:[\w.-]*:[\w./-]+)\s+(?P<name>\S+)\s+"
                     r"(?P<op>create|update|delete|replace|create-replacement|delete-replaced|import|read|"
                     r"discard|same)(?:\s+\[diff:\s*(?P<diff>[^\]]*)\])?\s*$")
OP_DIFF_LINE = re.compile(r"^\s*(?P<sym>[-+~]{1,2}|\+-|-\+)\s+(?P<type>[\w.-]+:[\w.-]*:[\w./-]+):\s+\((?P<op>[\w-]+)\)\s*$")
URN_LINE = re.compile(r"^\s*\[urn=(?P<urn>[^\]]+)\]\s*$")
SUMMARY_LINE = re.compile(r"^(?:[-+~]{1,2}\s+|\+-\s+)?\d+ ")


def resource_changes(output: str) -> list[dict[str, str]]:
    """The resources an engine preview/refresh would change: [{op, type, name, diff}]."""
    changes: list[dict[str, str]] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        m = OP_LINE.match(line)
        if m and m.group("op") != "same":
            changes.append({"op": m.group("op"), "type": m.group("type"), "name": m.group("name"),
                            "diff": (m.group("diff") or "").strip()})
            continue
        m = OP_DIFF_LINE.match(line)
        if m and m.group("op") not in ("same", "read", "refresh"):
            # --diff output names the resource on the next line, inside its URN.
            u = URN_LINE.match(lines[i + 1]) if i + 1 < len(lines) else None
            name = u.group("urn").rsplit("::", 1)[-1] if u else ""
            changes.append({"op": m.group("op"), "type": m.group("type"), "name": name, "diff": ""})
    unique: dict[tuple[str, str, str], dict[str, str]] = {}
    for c in changes:
        unique.setdefault((c["op"], c["type"], c["name"]), c)
    return list(unique.values())


def resource_summary(output: str) -> list[str]:
    """The engine's last `Resources:` block, e.g. ['~ 1 to update', '3 unchanged']."""
    lines = output.splitlines()
    idx = [i for i, ln in enumerate(lines) if ln.strip() == "Resources:"]
    if not idx:
        return []
    out = []
    for ln in lines[idx[-1] + 1:]:
        s = ln.strip()
        if not s or not SUMMARY_LINE.match(s):
            break
        out.append(s)
    return out
