"""`glmserve plan`: its flags, and the plan of a stack or of an ad-hoc node printed as text or JSON.

    add_arguments(parser)   adds the plan flags to an argparse (sub)parser
    run(args) -> int        prints the plan; 0 if the node fits, 1 if it does not.
                            User errors raise infra.common.errors.GlmserveError.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from infra.common.errors import GlmserveError, Problem
from infra.planning import coldstart as cs_mod
from infra.planning.kv_cache import KV_CACHE_DTYPES
from infra.config import providers
from infra.planning.plan import plan_adhoc, plan_for_spec
from infra.planning.report import Plan
from infra.spec.gpus import gpu_catalog


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `glmserve plan` flags to ``parser`` (a subparser)."""
    g = parser.add_argument_group("what to plan")
    g.add_argument("--stack", help="plan a stack (stacks/Pulumi.<stack>.yaml over stacks/node.yaml)")
    g.add_argument("--model-config", metavar="FILE",
                   help="a Hugging Face config.json, a model profile .yaml, or a shipped profile name; "
                        "with --stack it replaces the stack's model profile")
    g.add_argument("--json", action="store_true", help="print the plan as JSON (docs/plan-schema.md)")
    n = parser.add_argument_group("node (ad hoc, or overriding the stack)")
    n.add_argument("--gpu", help="GPU type (infra/data/gpus.yaml); default H200")
    n.add_argument("--gpus", type=int, help="GPUs on the node; default 8")
    n.add_argument("--tp", type=int, help="tensor parallel size; default: all GPUs")
    n.add_argument("--pp", type=int, help="pipeline parallel size; default 1 (TP x PP > --gpus spans nodes)")
    n.add_argument("--nodes", type=int, help="nodes of --gpus GPUs one engine spans; default TP x PP / --gpus")
    n.add_argument("--kv-cache-dtype", choices=KV_CACHE_DTYPES, help="default auto")
    n.add_argument("--max-model-len", type=int, help="default: the model's max_position_embeddings")
    n.add_argument("--gpu-memory-utilization", type=float, help="default 0.9 (vLLM's)")
    n.add_argument("--weights-gib", type=float, help="override the weights per GPU (GiB)")
    n.add_argument("--enforce-eager", action=argparse.BooleanOptionalAction, default=None,
                   help="no CUDA graphs (no graph memory, no capture time)")
    n.add_argument("--speculative-tokens", type=int, help="MTP speculative tokens; 0 disables the drafter")
    n.add_argument("--max-num-seqs", type=int, help="default: vLLM's (1024 on >= 70 GiB GPUs)")
    n.add_argument("--max-num-batched-tokens", type=int, help="default: vLLM's (8192 on >= 70 GiB GPUs)")
    n.add_argument("--block-size", type=int, help="KV block size in tokens; default 64 for MLA, 16 for GQA")
    n.add_argument("--load-strategy", choices=cs_mod.LOAD_STRATEGIES, help="--safetensors-load-strategy")
    c = parser.add_argument_group("cost and cold start")
    c.add_argument("--provider", choices=providers.names(), help="default: the stack's, or none")
    c.add_argument("--storage", help="where the weights are read from at start (local-disk, hf-download, "
                                     "or a storage of the provider's catalogue)")
    c.add_argument("--price-per-gpu-hour", type=float, help="override the price table (USD per GPU-hour)")
    c.add_argument("--min-replicas", type=int, help="keep-warm replicas (serverless)")
    c.add_argument("--scaledown-window", type=float, help="seconds a serverless replica stays up after a request")
    c.add_argument("--hours-per-day", type=float, help="usage: busy hours per day")
    c.add_argument("--requests-per-day", type=float, help="usage: requests per day (with --busy-seconds-per-request)")
    c.add_argument("--busy-seconds-per-request", type=float, help="usage: busy seconds per request")


_OVERRIDE_ARGS = ("gpu", "gpus", "tp", "pp", "nodes", "kv_cache_dtype", "max_model_len", "gpu_memory_utilization", "weights_gib",
                  "enforce_eager", "speculative_tokens", "max_num_seqs", "max_num_batched_tokens", "block_size",
                  "load_strategy", "provider", "storage", "price_per_gpu_hour", "min_replicas", "scaledown_window")


def load_model_arg(value: str) -> dict:
    """--model-config: a config.json, a profile .yaml, or a shipped profile name."""
    from infra.spec.profiles import available, load_config_file, load_profile, load_yaml_file

    path = Path(value)
    if path.is_file():
        try:
            if path.suffix in (".yaml", ".yml"):
                prof = load_yaml_file(path)
                if not isinstance(prof, dict) or not isinstance(prof.get("config"), dict):
                    raise GlmserveError([Problem(key="--model-config", message="a profile .yaml needs a "
                                                 "'config' block", file=str(path))], headline="cannot plan")
                prof.setdefault("name", path.stem)
                return prof
            prof = load_config_file(path)
        except (ValueError, OSError) as e:
            raise GlmserveError([Problem(key="--model-config", message=f"cannot read it ({e})", file=str(path))],
                                headline="cannot plan") from None
        if not isinstance(prof.get("config"), dict):
            raise GlmserveError([Problem(key="--model-config", message="must hold a JSON object",
                                         file=str(path))], headline="cannot plan")
        return prof
    if value in available():
        return load_profile(value)
    raise GlmserveError([Problem(key="--model-config", message="no such file or model profile", value=value,
                                 allowed="a config.json path, a profile .yaml, or " + ", ".join(available()))],
                        headline="cannot plan")


def _check_args(args: argparse.Namespace) -> None:
    def bad(flag: str, msg: str, value: Any) -> GlmserveError:
        return GlmserveError([Problem(key=flag, message=msg, value=value)], headline="cannot plan")

    for name in ("gpus", "tp", "pp", "nodes", "max_model_len", "max_num_seqs", "max_num_batched_tokens", "block_size"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise bad("--" + name.replace("_", "-"), "must be at least 1", v)
    u = getattr(args, "gpu_memory_utilization", None)
    if u is not None and not 0 < u <= 1:
        raise bad("--gpu-memory-utilization", "must be in (0, 1]", u)
    gpu = getattr(args, "gpu", None)
    if gpu is not None and gpu not in gpu_catalog():
        raise GlmserveError([Problem(key="--gpu", message="unknown GPU type", value=gpu,
                                     allowed=", ".join(gpu_catalog()))], headline="cannot plan")
    for name in ("min_replicas", "speculative_tokens"):
        v = getattr(args, name, None)
        if v is not None and v < 0:
            raise bad("--" + name.replace("_", "-"), "must not be negative", v)
    sw = getattr(args, "scaledown_window", None)
    if sw is not None and sw < 0:
        raise bad("--scaledown-window", "must not be negative", sw)


def plan_from_args(args: argparse.Namespace) -> Plan:
    _check_args(args)
    g = lambda name: getattr(args, name, None)  # noqa: E731
    usage = dict(hours_per_day=g("hours_per_day"), requests_per_day=g("requests_per_day"),
                 busy_seconds_per_request=g("busy_seconds_per_request"))
    profile = load_model_arg(args.model_config) if g("model_config") else None
    if g("stack"):
        from infra.spec.load import spec_for_stack

        spec = spec_for_stack(args.stack)
        overrides = {k: g(k) for k in _OVERRIDE_ARGS}
        return plan_for_spec(spec, overrides=overrides, stack=args.stack, profile=profile, **usage)
    if profile is None:
        raise GlmserveError([Problem(key="--stack", message="give --stack STACK or --model-config FILE")],
                            headline="nothing to plan")
    kw = {k: g(k) for k in _OVERRIDE_ARGS if g(k) is not None}
    kw.setdefault("gpu", "H200")
    kw.setdefault("gpus", 8)
    price = kw.pop("price_per_gpu_hour", None)
    return plan_adhoc(profile, price_per_gpu_hour=price, name=profile.get("name"), **kw, **usage)


def run(args: argparse.Namespace) -> int:
    """Print the plan (text, or JSON with --json). Returns 0 if the node fits and 1 if it does
    not (the report says why and what would fix it). Raises GlmserveError for user errors."""
    plan = plan_from_args(args)
    if getattr(args, "json", False):
        print(json.dumps(plan.to_json(), indent=2))
    else:
        print(plan.format_text(), end="")
    return 0 if plan.fits else 1
