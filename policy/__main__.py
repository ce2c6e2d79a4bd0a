"""glmserve's CrossGuard policy pack: one mandatory policy per rule of infra/policy/rules.py,
each evaluated on the policy facts of the stack's ServingNode component (serving_node.py).

    make policy-pack                                       # its virtualenv, once
    GLMSERVE_POLICY_PACK=1 pulumi preview --stack modal-prod --policy-pack policy

The program runs the same rules itself (infra/deploy/program.py) and stops before registering
anything unless GLMSERVE_POLICY_PACK says this pack judges the run (infra/policy/pack.py);
`glmserve preview/up` pass the pack and set it once policy/.venv is built (docs/gitops.md)."""
import importlib.util
import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy


def _sibling(name: str):
    """A module beside this file, whatever the language host puts on sys.path."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


serving_node = _sibling("serving_node")


def _validator(rule: str):
    def validate(args, report_violation) -> None:
        for message in serving_node.violations(args.resource_type, args.props, rule):
            report_violation(message)
    return validate


PolicyPack(
    name="glmserve",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[ResourceValidationPolicy(name=rule, description=serving_node.rules.DESCRIPTIONS[rule],
                                       validate=_validator(rule))
              for rule in serving_node.rules.RULES],
)
