"""The snapshot worker of `glmserve diff`: run as a script inside one tree of the project (the
working tree, or a base revision exported by infra/gitops/snapshots.py), with that tree first
on PYTHONPATH, it prints a JSON snapshot of each requested stack: the spec, the engine command,
the provider's deploy fields, the capacity plan, the cost and the policy verdict.

Only the standard library at module level and absolute imports: it runs inside trees of other
revisions, and requires only the APIs every revision of glmserve has (spec_for_stack, render);
the rest is optional and guarded.
"""
from __future__ import annotations

import json
import sys
from typing import Any

PLAN_FIELDS = (
    ("fits", "fits"),
    ("weights_gib_per_gpu", "weights per GPU (GiB)"),
    ("available_kv_gib_per_gpu", "KV cache per GPU (GiB)"),
    ("kv_cache_tokens", "KV cache tokens"),
    ("max_model_len", "max model length"),
    ("max_concurrency", "max concurrency at max length"),
    ("cold_start_seconds_estimate", "cold start (s, estimate)"),
)
COST_FIELDS = (
    ("cost_per_hour_usd", "serving (one replica)"),
    ("max_cost_per_hour_usd", "every replica busy"),
    ("idle_cost_per_hour_usd", "idle"),
)

def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    out[prefix.rstrip(".")] = value
    return out


def _argv_module():
    """The tokenizer of the tree this worker comes from (stdlib only), loaded by its path: the
    tree being snapshotted may be older than the tokenizer."""
    import importlib.util
    from pathlib import Path

    name = "glmserve_diff_argv"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "common" / "argv.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


def parse_argv(argv: list[str], table: Any) -> dict[str, Any]:
    """argv -> the positional head and the flags in order: [[flag, value or None], ...]. With
    the tree's flag table (trees that have one) each flag takes exactly what the engine says."""
    argv_mod = _argv_module()
    tokens = table.tokenize(argv) if table is not None else argv_mod.tokenize(argv)
    lead = argv_mod.head(tokens)
    flags = [[t.flag, t.value] if t.flag else ["(argument)", t.value] for t in tokens[len(lead):]]
    return {"head": lead, "flags": flags}


def _spec_view(spec) -> dict[str, Any]:
    data = spec.model_dump(mode="json", by_alias=True)
    secrets = {}
    for name, ref in (data.get("secrets") or {}).items():
        if ref is None:
            secrets[name] = "generated" if name == "apiKey" else None
        else:
            secrets[name] = f"name:{ref['name']}" if ref.get("name") else "value (secret)"
    data["secrets"] = secrets
    return _flatten(data)


def _snapshot_one(stack: str) -> dict[str, Any]:
    from infra.common.errors import GlmserveError
    from infra.config.project import list_stacks
    from infra.spec.load import spec_for_stack

    snap: dict[str, Any] = {"stack": stack, "exists": stack in list_stacks()}
    if not snap["exists"]:
        return snap
    try:
        spec = spec_for_stack(stack)
    except GlmserveError as e:
        snap["error"] = e.render()
        return snap
    snap["provider"] = spec.provider
    policy = getattr(spec, "policy", None)
    snap["environment"] = getattr(policy, "environment", None)
    snap["spec"] = _spec_view(spec)
    try:
        from infra.engine.render import render
        command = render(spec)
        snap["argv"] = list(command.argv)
        try:
            from infra.engine.flags import flag_table
            table = flag_table(command.engine)
        except Exception:  # noqa: BLE001 - an older tree without the flag table module
            table = None
        snap["command"] = parse_argv(list(command.argv), table)
    except GlmserveError as e:
        snap["error"] = e.render()
        return snap
    try:
        from infra.config import providers
        from infra.deploy.workspace import PROJECT
        provider = providers.get(spec.provider)
        provider.validate(spec)
        variables = provider.deploy_variables(spec, command, stack, PROJECT)
        variables = {k: v for k, v in variables.items() if k not in ("argv", "stack", "project")}
        snap["provider_fields"] = json.loads(json.dumps(_flatten(variables), default=str))
    except GlmserveError as e:
        snap["provider_error"] = e.render()
    except Exception as e:  # noqa: BLE001 - a provider that cannot describe itself offline
        snap["provider_error"] = f"{type(e).__name__}: {e}"
    plan = None
    if spec.model.profile:
        try:
            from infra.planning.plan import plan_for_spec
            plan = plan_for_spec(spec)
            summary = plan.summary()
            snap["plan"] = {k: summary.get(k) for k, _ in PLAN_FIELDS}
            snap["plan"]["errors"] = list(plan.errors())
            cost = plan.cost or {}
            snap["cost"] = {"billing": cost.get("billing"), **{k: cost.get(k) for k, _ in COST_FIELDS}}
        except GlmserveError as e:
            snap["plan_error"] = e.render()
        except ImportError:
            pass
    try:
        from infra.policy.check import check_stack
    except ImportError:
        try:                                    # a tree from before the policy layer
            from infra.gitops.policy import check_stack
        except ImportError:
            check_stack = None
    if check_stack is not None:
        try:
            report = check_stack(stack, spec=spec, plan=plan)
            snap["policy"] = {"ok": report.ok, "environment": report.environment,
                              "violations": report.messages()}
        except GlmserveError as e:
            snap["policy"] = {"ok": False, "environment": snap["environment"], "violations": [e.render()]}
    return snap


def _worker_main(argv: list[str]) -> int:
    # Only the tree on PYTHONPATH: an editable install of another checkout must not fill in
    # modules that this tree lacks.
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in str(getattr(f, "__module__", ""))]
    stacks = [a for a in argv if not a.startswith("--")]
    from infra.common.secrets import redact
    from infra.config.project import list_stacks

    if not stacks:
        stacks = list_stacks()
    out = {s: _snapshot_one(s) for s in stacks}
    sys.stdout.write(redact(json.dumps(out)))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--snapshot"]:
        sys.exit(_worker_main(sys.argv[2:]))
    sys.exit("usage: glmserve diff --stack S [--base REV]")
