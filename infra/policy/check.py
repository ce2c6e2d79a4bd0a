"""Running the policy rules (infra/policy/rules.py) on a stack, and reporting the verdict: in the
program (`enforce`, before any resource is registered), offline (`glmserve policy`, `check_stack`)
and in the PR summary (through `glmserve diff`). docs/gitops.md describes the rules."""
from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass
from typing import Any, Optional

from infra.common.errors import GlmserveError, Problem
from infra.config.project import relative, stack_file
from infra.policy.facts import policy_facts
from infra.policy.rules import RULES, Evaluation, Violation
from infra.policy.rules import evaluate as evaluate_facts
from infra.spec.model import NodeSpec

# How the text report shows each rule's state (aligned).
STATE_WORDS = {"off": "off ", "fail": "FAIL", "pass": "pass"}


def problem_of(v: Violation) -> Problem:
    return Problem(key=v.key, message=f"[{v.rule}] {v.message}", file=v.file, value=v.value, allowed=v.fix)


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


@dataclass
class Report:
    stack: Optional[str]
    evaluation: Evaluation
    # What the rules read (infra/policy/facts.py); the ServingNode component carries it for a
    # CrossGuard policy pack (policy/).
    facts: dict[str, Any]

    @property
    def environment(self) -> str:
        return self.evaluation.environment

    @property
    def violations(self) -> list[Violation]:
        return self.evaluation.violations

    @property
    def ok(self) -> bool:
        return self.evaluation.ok

    def failed_rules(self) -> list[str]:
        return self.evaluation.failed_rules()

    def messages(self) -> list[str]:
        """Each violation as one line, as errors print (key in file: [rule] message; got ...; allowed ...)."""
        return [problem_of(v).render() for v in self.violations]

    def _state(self, rule: str) -> str:
        return "off" if not self.evaluation.enabled[rule] else "fail" if rule in self.failed_rules() else "pass"

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack, "environment": self.environment, "ok": self.ok,
            "rules": {r: self._state(r) for r in RULES},
            "violations": [{**asdict(v), "value": _jsonable(v.value)} for v in self.violations],
            "notes": list(self.evaluation.notes),
        }

    def format_text(self) -> str:
        n = len(self.violations)
        lines = [f"glmserve policy: stack {self.stack or '?'}, environment {self.environment}: "
                 + ("PASS" if self.ok else f"FAIL ({n} violation{'s' if n != 1 else ''})")]
        lines += [f"  {STATE_WORDS[self._state(r)]}  {r}" for r in RULES]
        if self.violations:
            lines.append("")
            lines += [f"  - {m}" for m in self.messages()]
        if self.evaluation.notes:
            lines.append("")
            lines += [f"  note: {n}" for n in self.evaluation.notes]
        return "\n".join(lines) + "\n"

    def error(self) -> GlmserveError:
        return GlmserveError([problem_of(v) for v in self.violations],
                             headline=f"policy check failed for stack {self.stack or '?'} "
                                      f"(environment {self.environment}; docs/gitops.md)")


def evaluate(spec: NodeSpec, plan=None, *, stack: Optional[str] = None, file: Optional[str] = None,
             today: Optional[datetime.date] = None) -> Report:
    """Every enabled rule on a validated spec and its plan (None if it has no profile)."""
    facts = policy_facts(spec, plan, stack=stack, file=file)
    return Report(stack=stack, evaluation=evaluate_facts(facts, today), facts=facts)


def stack_file_label(stack: str) -> str:
    return relative(stack_file(stack))


def check_stack(stack: str, spec: Optional[NodeSpec] = None, plan=None,
                today: Optional[datetime.date] = None) -> Report:
    """Offline: the stack's files, its spec and its plan (what `glmserve policy` prints)."""
    from infra.planning.plan import plan_for_spec
    from infra.spec.load import spec_for_stack

    spec = spec if spec is not None else spec_for_stack(stack)
    if plan is None and spec.model.profile:
        plan = plan_for_spec(spec, stack=stack)
    return evaluate(spec, plan, stack=stack, file=stack_file_label(stack), today=today)


def enforce(spec: NodeSpec, plan, stack: str) -> Report:
    """In the program: raise GlmserveError (turned into pulumi.RunError) on any violation, unless
    the policy pack enforces the rules in this run (infra/policy/pack.py): then the ServingNode
    carries the facts to the pack, which reports each violation once."""
    from infra.policy.pack import enforced_by_pack

    report = evaluate(spec, plan, stack=stack, file=stack_file_label(stack))
    if not report.ok and not enforced_by_pack():
        raise report.error()
    return report
