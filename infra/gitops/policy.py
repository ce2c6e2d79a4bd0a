"""Policy rules that gate `preview` and `up`, configured per stack by `glmserve:policy`.

Pulumi CrossGuard would be the usual home for these rules, but a Python policy pack needs the
Python language host, which this engine build does not have (see README.md and
docs/gitops.md). So the same rules run inside the program (infra/program.py raises
pulumi.RunError with every violation, before any resource is registered), offline with
`glmserve policy --stack S`, and in the PR summary.

Rules (``glmserve:policy`` keys in parentheses; an unset switch follows ``environment``):

pinned-revision  (requirePinnedRevision; on in prod)
    model.revision is a 40-hex commit, not a branch or tag such as 'main', and not unset.
image-digest     (requireImageDigest; on in prod)
    engine.image names its content by digest: ``repo[:tag]@sha256:<64 hex>``.
api-key          (requireApiKey; on everywhere)
    Every request to the node needs an API key, and the key is held as a secret. "Set" means an
    API key exists and is not disabled: the key glmserve generates when secrets.apiKey is unset
    counts as set (random, encrypted in state, handed to the engine in its environment); so do
    a key given by value (secrets.apiKey.value, a ``secure:`` value of at least 16 characters)
    and a provider-side named secret (secrets.apiKey.name; glmserve cannot read it, the
    provider refuses to deploy when it does not exist). Violations: a value in plain text in
    the stack file, an empty or short value, the engine's API-key variable set in engine.env
    (plain config that would override or blank the secret), and --api-key in engine.extraArgs
    (the key would be in argv, hence in state, logs and the process list).
max-cost         (maxCostPerHour; off unless set)
    The plan's cost per hour with every replica busy (max_cost_per_hour_usd) is at most the
    limit. A provider that bills nothing (none) passes; an unknown price fails.
stop-plan        (requireStopPlan; on everywhere; only dedicated pods, i.e. the runpod provider)
    A dedicated pod bills while it exists, so its stack says how it ends: runpod.state set
    explicitly (``stopped`` releases the GPUs; ``running`` is the switch the team flips), or
    policy.expiresAt. Past expiresAt a running pod fails: stop it (runpod.state: stopped),
    destroy the stack, or move the date.
feasible-plan    (always on, not configurable)
    An infeasible capacity plan never passes.
"""
from __future__ import annotations

import datetime
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from infra.common.errors import GlmserveError, Problem

ENVIRONMENTS = ("dev", "staging", "prod")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")
MIN_API_KEY_LEN = 16
# Providers whose nodes bill while they exist (their catalog.yaml says `billing: dedicated`).
DEDICATED = ("runpod",)
ENCRYPTED = "[encrypted]"           # what infra.stackfile reads for a `secure:` value offline

# rule -> (the glmserve:policy switch, default per environment)
SWITCHES = {
    "pinned-revision": ("requirePinnedRevision", {"dev": False, "staging": False, "prod": True}),
    "image-digest": ("requireImageDigest", {"dev": False, "staging": False, "prod": True}),
    "api-key": ("requireApiKey", {"dev": True, "staging": True, "prod": True}),
    "stop-plan": ("requireStopPlan", {"dev": True, "staging": True, "prod": True}),
}
RULES = ("pinned-revision", "image-digest", "api-key", "max-cost", "stop-plan", "feasible-plan")


@dataclass(frozen=True)
class Violation:
    rule: str
    key: str
    message: str
    value: Any = None
    fix: Optional[str] = None
    file: Optional[str] = None

    def problem(self) -> Problem:
        return Problem(key=self.key, message=f"[{self.rule}] {self.message}", file=self.file,
                       value=self.value, allowed=self.fix)

    def render(self) -> str:
        return self.problem().render()


@dataclass
class Report:
    stack: Optional[str]
    environment: str
    enabled: dict[str, bool]
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def failed_rules(self) -> list[str]:
        return sorted({v.rule for v in self.violations}, key=RULES.index)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack, "environment": self.environment, "ok": self.ok,
            "rules": {r: ("off" if not self.enabled[r] else
                          "fail" if r in self.failed_rules() else "pass") for r in RULES},
            "violations": [{**asdict(v), "value": _jsonable(v.value)} for v in self.violations],
            "notes": list(self.notes),
        }

    def format_text(self) -> str:
        head = f"glmserve policy: stack {self.stack or '?'}, environment {self.environment}: " + \
               ("PASS" if self.ok else f"FAIL ({len(self.violations)} violation"
                f"{'s' if len(self.violations) != 1 else ''})")
        lines = [head]
        failed = self.failed_rules()
        for r in RULES:
            state = "off " if not self.enabled[r] else "FAIL" if r in failed else "pass"
            lines.append(f"  {state}  {r}")
        if self.violations:
            lines.append("")
            lines += [f"  - {v.render()}" for v in self.violations]
        if self.notes:
            lines.append("")
            lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def error(self) -> GlmserveError:
        return GlmserveError([v.problem() for v in self.violations],
                             headline=f"policy check failed for stack {self.stack or '?'} "
                                      f"(environment {self.environment}; docs/gitops.md)")


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


def enabled_rules(spec) -> dict[str, bool]:
    p = spec.policy
    env = p.environment
    out = {}
    for rule, (camel, defaults) in SWITCHES.items():
        value = getattr(p, _snake(camel))
        out[rule] = defaults[env] if value is None else bool(value)
    out["max-cost"] = p.max_cost_per_hour is not None
    out["feasible-plan"] = True
    return out


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _api_key_env(spec) -> str:
    from infra.engine.render import flag_table
    try:
        return str(flag_table(spec.engine.name)["api_key"]["env"])
    except (OSError, KeyError, TypeError):
        return "VLLM_API_KEY"


# --------------------------------------------------------------------------- the rules

def _pinned_revision(spec, ctx) -> list[Violation]:
    rev = spec.model.revision
    if rev is not None and COMMIT_RE.fullmatch(rev):
        return []
    what = "is not set: the node follows the model repository's default branch" if rev is None else \
        "is a branch, a tag or a short hash, which can move under a running stack"
    return [Violation("pinned-revision", "model.revision", what, value=rev, file=ctx["file"],
                      fix=f"the 40-hex commit of {spec.model.id} you validated (lower case)")]


def _image_digest(spec, ctx) -> list[Violation]:
    image = spec.engine.image
    if DIGEST_RE.search(image):
        return []
    return [Violation("image-digest", "engine.image", "is not pinned by digest: a tag can be re-pushed",
                      value=image, file=ctx["file"],
                      fix=f"{image.split('@')[0]}@sha256:<64 hex> (docker buildx imagetools inspect "
                          f"{image.split('@')[0]})")]


def _api_key(spec, ctx) -> list[Violation]:
    out = []
    env_name = _api_key_env(spec)
    key = spec.secrets.api_key
    raw = ctx.get("raw_api_key_value")
    if key is not None and key.value is not None:
        value = key.value.get_secret_value()
        if raw is not None and raw != ENCRYPTED:
            out.append(Violation("api-key", "secrets.apiKey.value", "is plain text in the stack file",
                                 file=ctx["file"], fix="pulumi config set --secret --path "
                                 "'glmserve:secrets.apiKey.value' <key>, or leave secrets.apiKey unset "
                                 "(glmserve generates one)"))
        elif value != ENCRYPTED and len(value) < MIN_API_KEY_LEN:
            out.append(Violation("api-key", "secrets.apiKey.value",
                                 "is empty (the engine would accept every request)" if not value else
                                 f"is shorter than {MIN_API_KEY_LEN} characters", file=ctx["file"],
                                 fix=f"a random key of at least {MIN_API_KEY_LEN} characters, or leave "
                                     "secrets.apiKey unset (glmserve generates one)"))
    for name in spec.engine.env:
        if name in (env_name, "VLLM_API_KEY", "GLMSERVE_API_KEY"):
            out.append(Violation("api-key", f"engine.env.{name}",
                                 "sets the engine's API key in plain configuration (it would override or "
                                 "blank the secret)", file=ctx["file"],
                                 fix="remove it; use secrets.apiKey (by value with --secret, or by name)"))
    for a in spec.engine.extra_args:
        if a.split("=", 1)[0] == "--api-key":
            out.append(Violation("api-key", "engine.extraArgs", "passes --api-key: the key would be in argv, "
                                 "state, logs and the process list", value="--api-key", file=ctx["file"],
                                 fix="remove it; the engine reads its key from the environment"))
    return out


def _max_cost(spec, plan, ctx) -> list[Violation]:
    limit = spec.policy.max_cost_per_hour
    if plan is None:
        return [Violation("max-cost", "policy.maxCostPerHour",
                          "cannot be checked: there is no capacity and cost plan (model.profile is not set)",
                          value=limit, file=ctx["file"], fix="set model.profile")]
    cost = plan.cost or {}
    if not cost.get("billing") and spec.provider == "none":
        ctx["notes"].append("max-cost: provider none bills nothing")
        return []
    worst = cost.get("max_cost_per_hour_usd")
    if worst is None:
        worst = cost.get("cost_per_hour_usd")
    if worst is None:
        return [Violation("max-cost", "policy.maxCostPerHour",
                          f"cannot be checked: no price for {spec.gpu.type} on {spec.provider}",
                          value=limit, file=ctx["file"],
                          fix=f"add the price to providers/{spec.provider}/catalog.yaml")]
    if worst > limit + 1e-9:
        per = cost.get("cost_per_hour_usd")
        replicas = spec.scaling.max_replicas
        detail = f"${worst:,.2f}/h" + (f" (${per:,.2f}/h x {replicas} replicas)" if per and replicas > 1 else "")
        return [Violation("max-cost", "policy.maxCostPerHour",
                          f"the node costs {detail} with every replica busy, over the limit "
                          f"${limit:,.2f}/h", value=limit, file=ctx["file"],
                          fix="fewer GPUs or scaling.maxReplicas, a cheaper provider, or a higher "
                              "limit")]
    return []


def _stop_plan(spec, ctx) -> list[Violation]:
    if spec.provider not in DEDICATED:
        return []
    runpod = spec.options_for("runpod")
    state = runpod.get("state", "running")
    expires = spec.policy.expires_at
    today = ctx["today"]
    if expires is not None and today > expires and state != "stopped":
        return [Violation("stop-plan", "policy.expiresAt",
                          f"expired on {expires.isoformat()} and the pod is still meant to run",
                          value=expires.isoformat(), file=ctx["file"],
                          fix="runpod.state: stopped, `glmserve destroy --stack "
                              f"{ctx['stack'] or '<stack>'}`, or a later policy.expiresAt")]
    # A keep-warm window stops the pod outside it: that is a stop plan.
    if "state" in runpod or expires is not None or spec.scaling.warm_schedule is not None:
        return []
    return [Violation("stop-plan", "runpod", "a dedicated pod bills while it exists, and this stack has no "
                      "stop or destroy plan", file=ctx["file"],
                      fix="set runpod.state explicitly (stopped releases the GPUs), scaling.warmSchedule "
                          "(stopped outside its windows), or policy.expiresAt: YYYY-MM-DD")]


def _feasible(plan, ctx) -> list[Violation]:
    if plan is None:
        ctx["notes"].append("feasible-plan: no capacity plan (model.profile is not set)")
        return []
    return [Violation("feasible-plan", "(capacity plan)", e) for e in plan.errors()]


# --------------------------------------------------------------------------- API

def evaluate(spec, plan=None, *, stack: Optional[str] = None, file: Optional[str] = None,
             raw_api_key_value: Optional[str] = None, today: Optional[datetime.date] = None) -> Report:
    """Every enabled rule on a validated spec and its plan (None if it has no profile).

    ``raw_api_key_value`` is secrets.apiKey.value as the stack file holds it ([encrypted] for a
    ``secure:`` value), so that a plain-text key in git is caught; see raw_api_key_value()."""
    enabled = enabled_rules(spec)
    ctx = {"stack": stack, "file": file, "raw_api_key_value": raw_api_key_value,
           "today": today or datetime.date.today(), "notes": []}
    violations: list[Violation] = []
    if enabled["pinned-revision"]:
        violations += _pinned_revision(spec, ctx)
    if enabled["image-digest"]:
        violations += _image_digest(spec, ctx)
    if enabled["api-key"]:
        violations += _api_key(spec, ctx)
    if enabled["max-cost"]:
        violations += _max_cost(spec, plan, ctx)
    if enabled["stop-plan"]:
        violations += _stop_plan(spec, ctx)
    violations += _feasible(plan, ctx)
    return Report(stack=stack, environment=spec.policy.environment, enabled=enabled,
                  violations=violations, notes=ctx["notes"])


def raw_api_key_value(stack: str, root=None) -> Optional[str]:
    """secrets.apiKey.value as written in the stack file (ENCRYPTED for a secure value)."""
    from infra.config.stackfile import overrides_from_file
    try:
        overrides, _ = overrides_from_file(stack, root)
    except GlmserveError:
        return None
    secrets = overrides.get("secrets")
    key = secrets.get("apiKey") if isinstance(secrets, dict) else None
    value = key.get("value") if isinstance(key, dict) else None
    return value if isinstance(value, str) else None


def stack_file_label(stack: str) -> str:
    from infra.config.project import relative
    from infra.config.project import stack_file
    return relative(stack_file(stack))


def check_stack(stack: str, spec=None, plan=None, today: Optional[datetime.date] = None) -> Report:
    """Offline: the stack's files, its spec and its plan (what `glmserve policy` prints)."""
    from infra.spec.load import spec_for_stack

    spec = spec if spec is not None else spec_for_stack(stack)
    if plan is None and spec.model.profile:
        from infra.planning.plan import plan_for_spec
        plan = plan_for_spec(spec, stack=stack)
    return evaluate(spec, plan, stack=stack, file=stack_file_label(stack),
                    raw_api_key_value=raw_api_key_value(stack), today=today)


def enforce(spec, plan, stack: str) -> Report:
    """In the program: raise GlmserveError (turned into pulumi.RunError) on any violation."""
    report = evaluate(spec, plan, stack=stack, file=stack_file_label(stack),
                      raw_api_key_value=raw_api_key_value(stack))
    if not report.ok:
        raise report.error()
    return report


def environment_of(spec) -> str:
    return spec.policy.environment


def environment_rank(env: str) -> int:
    return ENVIRONMENTS.index(env) if env in ENVIRONMENTS else len(ENVIRONMENTS)
