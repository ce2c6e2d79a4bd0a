"""The policy rules that gate `preview` and `up`, on plain policy facts.

The rules read only a JSON-ready dict of facts about a stack (infra/policy/facts.py builds it
from the spec, the plan and the provider's hooks; the ServingNode component carries the same
dict) and use only the standard library, so that the program, `glmserve policy`, the PR summary
and a Pulumi CrossGuard policy pack (policy/) evaluate the very same code.

Rules (``glmserve:policy`` keys in parentheses; an unset switch follows ``environment``):

pinned-revision  (requirePinnedRevision; on in prod)
    model.revision is a 40-hex commit, not a branch or tag such as 'main', and not unset.
image-digest     (requireImageDigest; on in prod)
    engine.image names its content by digest: ``repo[:tag]@sha256:<64 hex>``.
api-key          (requireApiKey; on everywhere)
    Every request to the node needs an API key. The key glmserve generates when
    secrets.apiKey is unset counts as set, so do a key given as a Pulumi secret
    (secrets.apiKey.value) and a provider-side named secret (secrets.apiKey.name). A key in
    clear text in the stack file, or a weak one, never gets this far: the stack file reader
    (infra/config/stackfile.py) and the spec (infra/spec/keys.py) refuse it. Violations: an
    engine's API-key variable set in engine.env (it would override or blank the secret), and
    --api-key in engine.extraArgs (the key would be in argv, hence in state, logs and the
    process list).
max-cost         (maxCostPerHour; off unless set)
    The plan's cost per hour with every replica busy is at most the limit. A provider that
    bills nothing passes; an unknown price fails.
stop-plan        (requireStopPlan; on everywhere; only providers that bill while a node exists)
    A dedicated node bills while it exists, so its stack says how it ends: the provider's stop
    option set explicitly (e.g. runpod.state: ``stopped`` releases the GPUs, ``running`` is the
    switch the team flips), or policy.expiresAt. Past expiresAt a node not stopped fails.
feasible-plan    (always on, not configurable)
    An infeasible capacity plan never passes.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any, Optional

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")
# The provider billing model (providers/<name>/catalog.yaml `billing`) that bills while a node exists.
DEDICATED = "dedicated"
NO_BILLING = "none"

# rule -> (the glmserve:policy switch, default per environment)
SWITCHES = {
    "pinned-revision": ("requirePinnedRevision", {"dev": False, "staging": False, "prod": True}),
    "image-digest": ("requireImageDigest", {"dev": False, "staging": False, "prod": True}),
    "api-key": ("requireApiKey", {"dev": True, "staging": True, "prod": True}),
    "stop-plan": ("requireStopPlan", {"dev": True, "staging": True, "prod": True}),
}
RULES = ("pinned-revision", "image-digest", "api-key", "max-cost", "stop-plan", "feasible-plan")
# One line per rule, for listings such as a policy pack's (docs/gitops.md has the details).
DESCRIPTIONS = {
    "pinned-revision": "model.revision is a 40-hex commit (on in prod)",
    "image-digest": "engine.image is pinned by digest (on in prod)",
    "api-key": "every request needs an API key, held only as a secret",
    "max-cost": "the cost per hour with every replica busy is within policy.maxCostPerHour",
    "stop-plan": "a node billed while it exists has a stop option set or an expiry date",
    "feasible-plan": "the capacity plan fits",
}

Facts = dict[str, Any]


@dataclass(frozen=True)
class Violation:
    rule: str
    key: str
    message: str
    value: Any = None
    fix: Optional[str] = None
    file: Optional[str] = None

    def text(self) -> str:
        """One line, as glmserve's errors read: key in file: [rule] message; got value; allowed: fix."""
        parts = [f"{self.key}{f' in {self.file}' if self.file else ''}: [{self.rule}] {self.message}"]
        if self.value is not None:
            parts.append(f"got {self.value!r}")
        if self.fix:
            parts.append(f"allowed: {self.fix}")
        return "; ".join(parts)


@dataclass
class Evaluation:
    environment: str
    enabled: dict[str, bool]
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def failed_rules(self) -> list[str]:
        return sorted({v.rule for v in self.violations}, key=RULES.index)


def enabled_rules(facts: Facts) -> dict[str, bool]:
    policy = facts["policy"]
    env = facts["environment"]
    out = {}
    for rule, (switch, defaults) in SWITCHES.items():
        value = policy.get(switch)
        out[rule] = defaults[env] if value is None else bool(value)
    out["max-cost"] = policy.get("maxCostPerHour") is not None
    out["feasible-plan"] = True
    return out


# --------------------------------------------------------------------------- the rules

def _pinned_revision(f: Facts) -> list[Violation]:
    rev = f["model"].get("revision")
    if rev is not None and COMMIT_RE.fullmatch(rev):
        return []
    what = "is not set: the node follows the model repository's default branch" if rev is None else \
        "is a branch, a tag or a short hash, which can move under a running stack"
    return [Violation("pinned-revision", "model.revision", what, value=rev, file=f.get("file"),
                      fix=f"the 40-hex commit of {f['model']['id']} you validated (lower case)")]


def _image_digest(f: Facts) -> list[Violation]:
    image = f["engine"]["image"]
    if DIGEST_RE.search(image):
        return []
    repo = image.split("@")[0]
    return [Violation("image-digest", "engine.image", "is not pinned by digest: a tag can be re-pushed",
                      value=image, file=f.get("file"),
                      fix=f"{repo}@sha256:<64 hex> (docker buildx imagetools inspect {repo})")]


def _api_key(f: Facts) -> list[Violation]:
    out = []
    key_vars = set(f["engine"].get("apiKeyEnvNames") or [])
    for name in f["engine"].get("env") or []:
        if name in key_vars:
            out.append(Violation("api-key", f"engine.env.{name}",
                                 "sets the engine's API key in plain configuration (it would override or "
                                 "blank the secret)", file=f.get("file"),
                                 fix="remove it; use secrets.apiKey (by value with --secret, or by name)"))
    if any(a.split("=", 1)[0] == "--api-key" for a in f["engine"].get("extraArgs") or []):
        out.append(Violation("api-key", "engine.extraArgs", "passes --api-key: the key would be in argv, "
                             "state, logs and the process list", value="--api-key", file=f.get("file"),
                             fix="remove it; the engine reads its key from the environment"))
    return out


def _max_cost(f: Facts, notes: list[str]) -> list[Violation]:
    limit = f["policy"]["maxCostPerHour"]
    provider, plan = f["provider"], f.get("plan")
    if plan is None:
        return [Violation("max-cost", "policy.maxCostPerHour",
                          "cannot be checked: there is no capacity and cost plan (model.profile is not set)",
                          value=limit, file=f.get("file"), fix="set model.profile")]
    if provider["billing"] == NO_BILLING:
        notes.append(f"max-cost: provider {provider['name']} bills nothing")
        return []
    worst = plan.get("maxCostPerHour") if plan.get("maxCostPerHour") is not None else plan.get("costPerHour")
    if worst is None:
        return [Violation("max-cost", "policy.maxCostPerHour",
                          f"cannot be checked: no price for {f['gpu']['type']} on {provider['name']}",
                          value=limit, file=f.get("file"), fix="add the price to infra/data/pricing.yaml")]
    if worst <= limit + 1e-9:
        return []
    per, replicas = plan.get("costPerHour"), int(f["scaling"]["maxReplicas"])
    detail = f"${worst:,.2f}/h" + (f" (${per:,.2f}/h x {replicas} replicas)" if per and replicas > 1 else "")
    return [Violation("max-cost", "policy.maxCostPerHour",
                      f"the node costs {detail} with every replica busy, over the limit ${limit:,.2f}/h",
                      value=limit, file=f.get("file"),
                      fix="fewer GPUs or scaling.maxReplicas, a cheaper provider, or a higher limit")]


def expiry_violation(f: Facts, today: datetime.date) -> Optional[Violation]:
    """The stack is past its policy.expiresAt and its node is not stopped (the drift report asks
    too, whatever the provider bills)."""
    provider = f["provider"]
    stop = provider.get("stopOption")            # {key, stopValue, value}, or None without one
    expires = f["policy"].get("expiresAt")
    if expires is None or today <= datetime.date.fromisoformat(expires):
        return None
    if stop is not None and stop.get("value") == stop["stopValue"]:
        return None
    how = f"{provider['name']}.{stop['key']}: {stop['stopValue']}, " if stop else ""
    return Violation("stop-plan", "policy.expiresAt", f"expired on {expires} and the pod is still meant to run",
                     value=expires, file=f.get("file"),
                     fix=f"{how}`glmserve destroy --stack {f.get('stack') or '<stack>'}`, or a later policy.expiresAt")


def _stop_plan(f: Facts, today: datetime.date) -> list[Violation]:
    provider = f["provider"]
    if provider["billing"] != DEDICATED:
        return []
    expired = expiry_violation(f, today)
    if expired is not None:
        return [expired]
    stop = provider.get("stopOption")
    # A keep-warm window stops the node outside it: that is a stop plan too.
    if ((stop is not None and stop.get("value") is not None) or f["policy"].get("expiresAt") is not None
            or f.get("scaling", {}).get("warmSchedule")):
        return []
    how = (f"set {provider['name']}.{stop['key']} explicitly ({stop['stopValue']} releases the GPUs), "
           "scaling.warmSchedule (stopped outside its windows), or " if stop else "set ")
    return [Violation("stop-plan", provider["name"], "a dedicated pod bills while it exists, and this stack has "
                      "no stop or destroy plan", file=f.get("file"), fix=f"{how}policy.expiresAt: YYYY-MM-DD")]


def _feasible(f: Facts, notes: list[str]) -> list[Violation]:
    if f.get("plan") is None:
        notes.append("feasible-plan: no capacity plan (model.profile is not set)")
        return []
    return [Violation("feasible-plan", "(capacity plan)", e) for e in f["plan"].get("errors") or []]


def evaluate(facts: Facts, today: Optional[datetime.date] = None) -> Evaluation:
    """Every enabled rule on one stack's facts."""
    enabled = enabled_rules(facts)
    notes: list[str] = []
    violations: list[Violation] = []
    if enabled["pinned-revision"]:
        violations += _pinned_revision(facts)
    if enabled["image-digest"]:
        violations += _image_digest(facts)
    if enabled["api-key"]:
        violations += _api_key(facts)
    if enabled["max-cost"]:
        violations += _max_cost(facts, notes)
    if enabled["stop-plan"]:
        violations += _stop_plan(facts, today or datetime.date.today())
    violations += _feasible(facts, notes)
    return Evaluation(environment=facts["environment"], enabled=enabled, violations=violations, notes=notes)
