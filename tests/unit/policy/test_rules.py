"""The rules on plain policy facts (infra/policy/rules.py): standard library only, no provider
named, the same facts whoever evaluates them (the program, `glmserve policy`, a CrossGuard pack)."""
from __future__ import annotations

import ast
import copy
import datetime
import json
import sys

import yaml

from infra.config import providers
from infra.policy import rules
from infra.policy.facts import policy_facts
from infra.spec.build import build_spec
from providers.base import Provider

from tests.helpers import ROOT

NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())


def facts_of(overrides: dict) -> dict:
    spec = build_spec(copy.deepcopy(NODE), overrides, "stacks/node.yaml", "stacks/Pulumi.t.yaml")
    return policy_facts(spec, None, stack="t", file="stacks/Pulumi.t.yaml")


def test_rules_import_only_the_standard_library():
    tree = ast.parse((ROOT / "infra" / "policy" / "rules.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_facts_are_plain_json_without_secret_values():
    facts = facts_of({"secrets": {"apiKey": {"value": "[encrypted]"}}, "engine": {"env": {"HF_HOME": "/x"}}})
    assert json.loads(json.dumps(facts)) == facts
    assert "[encrypted]" not in json.dumps(facts)
    assert "HF_HOME" in facts["engine"]["env"] and "/x" not in json.dumps(facts["engine"])


class Dedicated(Provider):
    """A provider defined only here: it bills while its node exists and stops with `power: off`."""
    name = "test-dedicated"
    title = "Test Dedicated"
    stop_option = ("power", "off")

    @property
    def billing(self) -> str:
        return "dedicated"


class DedicatedWithoutStop(Dedicated):
    name = "test-dedicated-nostop"
    stop_option = None


def _with(provider: Provider, overrides: dict) -> dict:
    providers.register(provider.name, provider)
    try:
        return facts_of({"provider": provider.name, **overrides})
    finally:
        providers.unregister(provider.name)


def test_stop_plan_asks_the_provider_hooks_not_a_list_of_names():
    facts = _with(Dedicated(), {})
    assert facts["provider"] == {"name": "test-dedicated", "billing": "dedicated",
                                 "stopOption": {"key": "power", "stopValue": "off", "value": None}}
    r = rules.evaluate(facts)
    assert r.failed_rules() == ["stop-plan"]
    assert r.violations[0].key == "test-dedicated" and "test-dedicated.power explicitly (off" in r.violations[0].fix
    on = copy.deepcopy(facts)
    on["provider"]["stopOption"]["value"] = "on"
    assert rules.evaluate(on).ok
    on["policy"]["expiresAt"] = "2026-05-31"
    expired = rules.evaluate(on, today=datetime.date(2026, 6, 1))
    assert expired.failed_rules() == ["stop-plan"] and expired.violations[0].fix.startswith("test-dedicated.power: off")
    on["provider"]["stopOption"]["value"] = "off"
    assert rules.evaluate(on, today=datetime.date(2026, 6, 1)).ok


def test_a_dedicated_provider_without_a_stop_option_needs_an_expiry_date():
    facts = _with(DedicatedWithoutStop(), {})
    r = rules.evaluate(facts)
    assert r.failed_rules() == ["stop-plan"] and r.violations[0].fix == "set policy.expiresAt: YYYY-MM-DD"
    facts["policy"]["expiresAt"] = "2030-01-01"
    assert rules.evaluate(facts, today=datetime.date(2029, 1, 1)).ok


def test_serverless_and_free_providers_have_no_stop_plan_to_make():
    for billing in ("serverless", "none"):
        facts = facts_of({})
        facts["provider"]["billing"] = billing
        assert "stop-plan" not in rules.evaluate(facts).failed_rules()


def test_max_cost_of_a_provider_that_bills_nothing_passes_with_a_note():
    facts = facts_of({"policy": {"maxCostPerHour": 1}})
    facts["plan"] = {"errors": [], "costPerHour": None, "maxCostPerHour": None}
    r = rules.evaluate(facts)
    assert r.ok and r.notes == ["max-cost: provider none bills nothing"]
    facts["provider"]["billing"] = "serverless"
    r = rules.evaluate(facts)
    assert r.failed_rules() == ["max-cost"] and "no price for" in r.violations[0].message


def test_an_expiry_date_counts_for_the_drift_report_whatever_the_provider_bills():
    facts = facts_of({"provider": "modal", "policy": {"expiresAt": "2026-05-31"}})
    assert rules.expiry_violation(facts, datetime.date(2026, 5, 31)) is None
    late = rules.expiry_violation(facts, datetime.date(2026, 6, 1))
    assert late is not None and late.key == "policy.expiresAt" and "expired on 2026-05-31" in late.message
    assert "stop-plan" not in rules.evaluate(facts, datetime.date(2026, 6, 1)).failed_rules()   # serverless
