"""What the policy pack checks, without the Pulumi policy SDK: the rules of
infra/policy/rules.py on the policy facts a ServingNode component carries as its input
``policyFacts`` (infra/deploy/component.py).

Standard library only, and it loads rules.py from the repository by path, so the pack's own
virtualenv needs nothing of the project's; tests run it in the project's virtualenv."""
from __future__ import annotations

import datetime
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Optional

SERVING_NODE_TYPE = "glmserve:index:ServingNode"
RULES_FILE = Path(__file__).resolve().parents[1] / "infra" / "policy" / "rules.py"


def load_rules() -> ModuleType:
    name = "glmserve_policy_rules"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, RULES_FILE)
    assert spec is not None and spec.loader is not None, RULES_FILE
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module           # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


rules = load_rules()


def _plain(value: Any) -> Any:
    """Resource properties as plain dicts and lists (the policy SDK hands read-only proxies)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def violations(resource_type: str, props: Mapping[str, Any], rule: str,
               today: Optional[datetime.date] = None) -> list[str]:
    """The messages of ``rule``'s violations for one resource (none for other resource types,
    or a ServingNode without facts, as deployed before they existed)."""
    if resource_type != SERVING_NODE_TYPE:
        return []
    facts = props.get("policyFacts")
    if not facts:
        return []
    evaluation = rules.evaluate(_plain(facts), today)
    return [v.text() for v in evaluation.violations if v.rule == rule]
