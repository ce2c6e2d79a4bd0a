"""Comparing two snapshots of a stack (infra/gitops/snapshot_worker.py): engine flags added,
removed or changed, provider fields, capacity plan, cost per hour, policy verdict and the
configuration keys that changed."""
from __future__ import annotations

from typing import Any, Optional

from infra.gitops.snapshot_worker import COST_FIELDS, PLAN_FIELDS


def _delta(before: Optional[float], after: Optional[float]) -> Optional[float]:
    if before is None and after is None:
        return None
    return round((after or 0.0) - (before or 0.0), 4)


def _flag_map(command: Optional[dict]) -> dict[str, list[Optional[str]]]:
    out: dict[str, list[Optional[str]]] = {}
    for name, value in (command or {}).get("flags", []):
        out.setdefault(name, []).append(value)
    return out


def _one(values: list[Optional[str]]) -> Any:
    return values[0] if len(values) == 1 else values


def diff_command(before: Optional[dict], after: Optional[dict]) -> dict[str, Any]:
    b, a = _flag_map(before), _flag_map(after)
    out: dict[str, Any] = {"added": [], "removed": [], "changed": [], "head": None}
    for name in a:
        if name not in b:
            out["added"].append({"flag": name, "value": _one(a[name])})
        elif a[name] != b[name]:
            out["changed"].append({"flag": name, "before": _one(b[name]), "after": _one(a[name])})
    for name in b:
        if name not in a:
            out["removed"].append({"flag": name, "value": _one(b[name])})
    bh, ah = (before or {}).get("head"), (after or {}).get("head")
    if bh != ah:
        out["head"] = {"before": bh, "after": ah}
    return out


def _diff_maps(before: Optional[dict], after: Optional[dict]) -> list[dict[str, Any]]:
    b, a = before or {}, after or {}
    out = []
    for k in list(b) + [k for k in a if k not in b]:
        if b.get(k) != a.get(k):
            out.append({"field": k, "before": b.get(k), "after": a.get(k)})
    return out


def diff_snapshots(stack: str, base: Optional[dict], head: Optional[dict]) -> dict[str, Any]:
    base = base or {"stack": stack, "exists": False}
    head = head or {"stack": stack, "exists": False}
    d: dict[str, Any] = {
        "stack": stack,
        "base": {k: base.get(k) for k in ("exists", "provider", "environment", "error")},
        "head": {k: head.get(k) for k in ("exists", "provider", "environment", "error")},
    }
    if not base["exists"] and not head["exists"]:
        d["status"] = "absent"
        return d
    if not head["exists"]:
        d["status"] = "removed"
    elif not base["exists"]:
        d["status"] = "added"
    d["engine"] = diff_command(base.get("command"), head.get("command"))
    d["engine"]["model"] = (head.get("command") or base.get("command") or {}).get("head")
    same_provider = base.get("provider") == head.get("provider")
    comparable = same_provider and base.get("provider_fields") is not None and head.get("provider_fields") is not None
    d["provider"] = {
        "before": base.get("provider"), "after": head.get("provider"),
        "changed": _diff_maps(base.get("provider_fields"), head.get("provider_fields")) if comparable else [],
        "comparable": comparable or not (base["exists"] and head["exists"]),
        "error": head.get("provider_error"), "base_error": base.get("provider_error"),
    }
    d["plan"] = {
        "changed": [{**c, "label": dict(PLAN_FIELDS).get(c["field"], c["field"])}
                    for c in _diff_maps({k: (base.get("plan") or {}).get(k) for k, _ in PLAN_FIELDS},
                                        {k: (head.get("plan") or {}).get(k) for k, _ in PLAN_FIELDS})],
        "before": base.get("plan"), "after": head.get("plan"),
        "error": head.get("plan_error"),
    }
    bc, hc = base.get("cost") or {}, head.get("cost") or {}
    d["cost"] = {k: {"label": label, "before": bc.get(k), "after": hc.get(k), "delta": _delta(bc.get(k), hc.get(k))}
                 for k, label in COST_FIELDS}
    d["cost"]["billing"] = {"before": bc.get("billing"), "after": hc.get("billing")}
    d["policy"] = {"before": base.get("policy"), "after": head.get("policy")}
    d["config"] = _diff_maps(base.get("spec"), head.get("spec"))
    if "status" not in d:
        e = d["engine"]
        changed = (e["added"] or e["removed"] or e["changed"] or e["head"] or d["provider"]["changed"]
                   or d["config"] or base.get("provider") != head.get("provider")
                   or base.get("error") != head.get("error"))
        d["status"] = "changed" if changed else "unchanged"
    return d
