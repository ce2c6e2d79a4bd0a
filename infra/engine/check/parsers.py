"""Inside the checker process: vLLM's and SGLang's own argument parsers, built the way their
launchers build them, each checking one argv into a response dict."""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import logging
import os
import sys
from typing import Any, Callable, Iterable

from infra.engine.check.engine_output import (argparse_error, captured, clean, collect_warnings, flags_in,
                                              jsonable, record_values)

# How each engine's command starts (the rest is what its parser sees).
HEADS = {
    "vllm": (["vllm", "serve"],),
    "sglang": (["python3", "-m", "sglang.launch_server"], ["python", "-m", "sglang.launch_server"],
               ["sglang", "serve"]),
}


def installed_version(dist: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


class VllmParser:
    """vLLM's `vllm serve` parser, built the way vllm/entrypoints/cli/main.py builds it,
    with abbreviations turned off."""

    # Where make_arg_parser / validate_parsed_serve_args live, newest first.
    CLI_ARGS_MODULES = ("vllm.entrypoints.common.cli_args", "vllm.entrypoints.launchers.cli_args",
                        "vllm.entrypoints.openai.cli_args")

    def __init__(self):
        import importlib

        import importlib.util

        os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            os.environ["HF_HUB_OFFLINE"] = "0"
        if importlib.util.find_spec("vllm") is None:
            raise ImportError(f"vllm is not installed in {sys.executable}")
        mod = None
        for name in self.CLI_ARGS_MODULES:
            try:
                mod = importlib.import_module(name)
                break
            except ModuleNotFoundError as e:
                if not (e.name and name.startswith(e.name)):
                    raise
        if mod is None:
            raise ImportError(f"none of {', '.join(self.CLI_ARGS_MODULES)} exists in this vllm")
        try:
            from vllm.utils.argparse_utils import FlexibleArgumentParser
        except ImportError:  # vLLM < 0.11
            from vllm.utils import FlexibleArgumentParser
        from vllm.engine.arg_utils import AsyncEngineArgs

        self.module = mod.__name__
        self.make_arg_parser = mod.make_arg_parser
        self.validate = mod.validate_parsed_serve_args
        self.AsyncEngineArgs = AsyncEngineArgs
        self.version = installed_version("vllm")
        self.root = FlexibleArgumentParser(prog="vllm", description="vLLM CLI", allow_abbrev=False)
        subparsers = self.root.add_subparsers(required=False, dest="subparser")
        serve = subparsers.add_parser("serve", usage="vllm serve [model_tag] [options]", allow_abbrev=False)
        self.serve = self.make_arg_parser(serve)
        self._config_checks = self._config_field_checks()

    # -- the gaps of the parser, closed with vLLM's own config classes
    def _config_field_checks(self) -> list[tuple[str, str, Callable[[Any], None]]]:
        """(EngineArgs attribute, flag, validator) for values the parser passes unchecked
        and only the engine's config classes (built at engine start) would refuse. Only
        pure value checks: e.g. ParallelConfig.distributed_executor_backend is left out,
        its validator imports Ray (a property of the image, not of the command)."""
        import copy

        checks = []
        try:
            from vllm.config import CacheConfig, LoadConfig, ParallelConfig
        except ImportError:
            return checks

        def assign(cls, field_name):
            try:
                proto = cls()
            except Exception:
                return None
            validator = getattr(cls, "__pydantic_validator__", None)
            if validator is None or field_name not in getattr(cls, "__pydantic_fields__", {}):
                return None

            def run(value):
                validator.validate_assignment(copy.copy(proto), field_name, value)
            return run

        for attr, flag, cls, field_name in (
            ("kv_cache_dtype", "--kv-cache-dtype", CacheConfig, "cache_dtype"),
            ("gpu_memory_utilization", "--gpu-memory-utilization", CacheConfig, "gpu_memory_utilization"),
            ("tensor_parallel_size", "--tensor-parallel-size", ParallelConfig, "tensor_parallel_size"),
            ("pipeline_parallel_size", "--pipeline-parallel-size", ParallelConfig, "pipeline_parallel_size"),
            ("safetensors_load_strategy", "--safetensors-load-strategy", LoadConfig, "safetensors_load_strategy"),
        ):
            fn = assign(cls, field_name)
            if fn is not None:
                checks.append((attr, flag, fn, f"{cls.__name__}.{field_name}"))
        return checks

    @staticmethod
    def _pydantic_message(e: Exception) -> str:
        errs = getattr(e, "errors", None)
        if callable(errs):
            with contextlib.suppress(Exception):
                parts = []
                for x in errs():
                    msg = str(x.get("msg", "")).removeprefix("Value error, ")
                    parts.append(msg)
                return "; ".join(parts)
        return str(e)

    def speculative_errors(self, spec_cfg: Any) -> list[str]:
        """Keys and values of --speculative-config, checked against SpeculativeConfig."""
        if spec_cfg is None:
            return []
        if not isinstance(spec_cfg, dict):
            return [f"--speculative-config must be a JSON object, got {type(spec_cfg).__name__}"]
        try:
            from vllm.config import SpeculativeConfig
        except ImportError:
            return []
        from typing import Annotated

        from pydantic import TypeAdapter

        fields = getattr(SpeculativeConfig, "__pydantic_fields__", None) or {
            f.name: None for f in dataclasses.fields(SpeculativeConfig)}
        init_fields = {f.name for f in dataclasses.fields(SpeculativeConfig) if f.init}
        errors = []
        for raw_key, value in spec_cfg.items():
            key = str(raw_key).replace("-", "_")  # EngineArgs.create_speculative_config does the same
            if key not in init_fields:
                near = difflib.get_close_matches(key, sorted(init_fields), n=1)
                errors.append(f"SpeculativeConfig has no field {raw_key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
                continue
            fi = fields.get(key)
            if fi is None or value is None:
                continue
            try:
                t = Annotated[(fi.annotation, *fi.metadata)] if fi.metadata else fi.annotation
                TypeAdapter(t).validate_python(value)
            except Exception as e:
                if type(e).__name__ == "ValidationError":
                    errors.append(f"SpeculativeConfig.{key}: {self._pydantic_message(e)} (got {value!r})")
        return errors

    def parser_name_errors(self, args: Any) -> list[dict]:
        """--tool-call-parser and --reasoning-parser name parsers that vLLM's registries hold.
        The API server checks this at start (validate_api_server_args), the parser does not."""
        try:
            from vllm.reasoning import ReasoningParserManager
            from vllm.tool_parsers import ToolParserManager
        except ImportError:
            return []
        errors = []
        for flag, name, manager in (("--tool-call-parser", getattr(args, "tool_call_parser", None), ToolParserManager),
                                    ("--reasoning-parser", getattr(args, "reasoning_parser", None), ReasoningParserManager)):
            known = manager.list_registered()
            if name and name not in known:
                near = difflib.get_close_matches(name, known, n=3)
                errors.append({"stage": "validate", "flags": [flag],
                               "message": f"{flag} {name!r}: no such parser in this vLLM"
                                          + (f" (closest: {', '.join(near)})" if near else "")})
        return errors

    def check(self, argv: list[str], resp: dict) -> None:
        if argv[:2] != HEADS["vllm"][0]:
            resp["errors"].append({"stage": "head", "message": f"a vLLM command starts with 'vllm serve', got {argv[:2]}",
                                   "flags": []})
            return
        # vLLM logs deprecations "once" per process; each check should see its own.
        for name in ("_print_debug_once", "_print_info_once", "_print_warning_once"):
            with contextlib.suppress(Exception):
                getattr(sys.modules["vllm.logger"], name).cache_clear()
        with captured(("vllm", "py.warnings")) as cap:
            try:
                args = self.root.parse_args(argv[1:])
            except SystemExit:
                msg = argparse_error(cap[1].getvalue())
                resp["errors"].append({"stage": "parse", "message": msg, "flags": flags_in(msg)})
                return
            except (ValueError, TypeError) as e:
                resp["errors"].append({"stage": "parse", "message": str(e), "flags": flags_in(str(e))})
                return
            finally:
                resp["warnings"] += collect_warnings(*cap)
        with captured(("vllm", "py.warnings")) as cap:
            try:
                if getattr(args, "subparser", None) != "serve":
                    resp["errors"].append({"stage": "parse", "message": "no 'serve' subcommand", "flags": []})
                    return
                try:
                    self.validate(args)
                except Exception as e:
                    msg = str(e).removeprefix("Error: ")
                    resp["errors"].append({"stage": "validate", "message": msg, "flags": flags_in(msg)})
                    return
                # ServeSubcommand.cmd: the positional model wins over --model.
                if getattr(args, "model_tag", None) is not None:
                    args.model = args.model_tag
                try:
                    engine_args = self.AsyncEngineArgs.from_cli_args(args)
                except Exception as e:
                    msg = self._pydantic_message(e)
                    resp["errors"].append({"stage": "engine-args", "message": msg, "flags": flags_in(msg)})
                    return
                for attr, flag, fn, where in self._config_checks:
                    value = getattr(engine_args, attr, None)
                    if value is None:
                        continue
                    try:
                        fn(value)
                    except Exception as e:
                        resp["errors"].append({"stage": "config", "flags": [flag],
                                               "message": f"{flag} {value!r}: {where}: {self._pydantic_message(e)}"})
                resp["errors"] += self.parser_name_errors(args)
                for msg in self.speculative_errors(getattr(engine_args, "speculative_config", None)):
                    resp["errors"].append({"stage": "config", "flags": ["--speculative-config"],
                                           "message": f"--speculative-config: {msg}"})
                values = {k: jsonable(v) for k, v in vars(args).items()}
                values.update(record_values(engine_args))
                resp["values"] = values
            finally:
                resp["warnings"] += collect_warnings(*cap)

    def flags(self) -> dict:
        return _parser_flags(self.serve, getattr(self.serve, "_deprecated", ()))


class SglangParser:
    """SGLang's launcher parser: ServerArgs.add_cli_args (abbreviations off) for the parse,
    then prepare_server_args as `python -m sglang.launch_server` calls it."""

    def __init__(self):
        import argparse

        import importlib.util

        if importlib.util.find_spec("sglang") is None:
            raise ImportError(f"sglang is not installed in {sys.executable}")
        from sglang.srt.server_args import ServerArgs, prepare_server_args

        self.ServerArgs = ServerArgs
        self.prepare = prepare_server_args
        self.version = installed_version("sglang")
        self.parser = argparse.ArgumentParser(prog="sglang serve", allow_abbrev=False)
        ServerArgs.add_cli_args(self.parser)

    def check(self, argv: list[str], resp: dict) -> None:
        rest = None
        for head in HEADS["sglang"]:
            if argv[:len(head)] == head:
                rest = argv[len(head):]
                break
        if rest is None:
            resp["errors"].append({"stage": "head", "flags": [],
                                   "message": f"an SGLang command starts with 'python3 -m sglang.launch_server', got {argv[:3]}"})
            return
        with captured(("sglang", "py.warnings")) as cap:
            try:
                try:
                    self.parser.parse_args(rest)
                except SystemExit:
                    msg = argparse_error(cap[1].getvalue())
                    resp["errors"].append({"stage": "parse", "message": msg, "flags": flags_in(msg)})
                    return
                cap[1].seek(0)
                cap[1].truncate()
                try:
                    server_args = self.prepare(rest)
                except SystemExit:
                    msg = argparse_error(cap[1].getvalue())
                    resp["errors"].append({"stage": "parse", "message": msg, "flags": flags_in(msg)})
                    return
                except Exception as e:
                    msg = str(e)
                    resp["errors"].append({"stage": "engine-args", "message": msg, "flags": flags_in(msg)})
                    return
                resp["values"] = record_values(server_args)
            finally:
                resp["warnings"] += collect_warnings(*cap)
                # prepare_server_args re-configures root logging (basicConfig(force=True)).
                logging.getLogger().handlers[:] = [logging.StreamHandler(sys.stderr)]

    def flags(self) -> dict:
        return _parser_flags(self.parser)


def _parser_flags(parser, deprecated: Iterable = ()) -> dict:
    deprecated = set(deprecated)
    out = {}
    for opt, action in parser._option_string_actions.items():
        out[opt] = {
            "dest": action.dest,
            "takes_value": action.nargs != 0,
            "choices": jsonable(list(action.choices)) if action.choices else None,
            "deprecated": action in deprecated or bool(getattr(action, "deprecated", False)),
            "help": clean(str(action.help or ""))[:300],
        }
    return out
