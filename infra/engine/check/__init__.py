"""Engine fidelity: run a rendered engine command through the real engine's parser.

glmserve's own checks (the spec model, the flag tables in ``templates/engines``) know what
glmserve expects of vLLM and SGLang. This package asks the engines themselves: the rendered
argv goes through vLLM's ``vllm serve`` parser (a root FlexibleArgumentParser with a
``serve`` sub-parser filled by ``make_arg_parser``, then ``validate_parsed_serve_args`` and
``AsyncEngineArgs.from_cli_args``) or SGLang's (``ServerArgs.add_cli_args``, then
``prepare_server_args``). No engine, model config or GPU is ever created, and nothing
reaches the network.

The engines are heavy (torch alone is ~2.5 GB installed), so they live in a separate, cached
virtualenv (``venv``, made by ``install`` through ``scripts/install-engine-check``; see
``docs/engine-check.md``) and run in a subprocess of that venv's interpreter (``server``,
with ``parsers`` and ``engine_output``). The two sides (``client`` here) speak JSON lines:

    request   {"op": "check", "engine": "vllm", "version": "0.33.0", "argv": [...]}
    response  {"ok": false, "errors": [{"stage": "parse", "message": "...",
               "flags": ["--kv-cache-dtype"]}], "values": {...}, "warnings": [...]}

``problems`` turns refusals into glmserve Problems keyed by spec key. Every module of the
package imports only the standard library at module level, so both sides can load it.
"""
from infra.engine.check.client import DEFAULT_TIMEOUT, Checker, EngineCheckError, EngineError, Verdict, check
from infra.engine.check.problems import SpecCheck, check_spec, engine_check_stack, problems_for, spec_key_for_flag
from infra.engine.check.venv import (ENGINES, REQUIREMENT_FILES, Availability, available, cache_root,
                                     pinned_versions, requirements_hash, venv_dir)

__all__ = [
    "DEFAULT_TIMEOUT", "ENGINES", "REQUIREMENT_FILES", "Availability", "Checker", "EngineCheckError",
    "EngineError", "SpecCheck", "Verdict", "available", "cache_root", "check", "check_spec",
    "engine_check_stack", "pinned_versions", "problems_for", "requirements_hash", "spec_key_for_flag", "venv_dir",
]
