"""Engine launch arguments, rendered from the shared jinja2 templates.

One renderer for every provider: ``templates/engines/<engine>.argv.j2`` turns the spec
into an argv list. Flags are checked against the engine's flag table (``infra/engine/flags.py``:
which flags exist in which engine version), so a flag the pinned engine lacks is an error
here, not after a cold start.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

import yaml

from infra.common.errors import GlmserveError, Problem
from infra.engine.command_checks import check_command
from infra.engine.flags import ENGINES, flag_table
from infra.engine.templates import environment
from infra.spec.model import NodeSpec

# Spec keys that an engine cannot express, declared as data per engine.
UNSUPPORTED = {
    "sglang": {
        "serving.loadStrategy": "SGLang has no --safetensors-load-strategy; unset serving.loadStrategy for this engine",
    },
    "vllm": {},
}

SGLANG_KV = {"auto": "auto", "fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2", "bfloat16": "auto"}


@dataclass(frozen=True)
class EngineCommand:
    engine: str
    argv: list[str]
    # The image's own entrypoint; providers that hand `args` to it pass argv[len(entrypoint):].
    image_entrypoint: list[str]
    api_key_env: str
    # Engines that read no key from the environment (SGLang) get it from a config file named
    # by this flag, written at container start: see launch_argv().
    api_key_file_flag: str | None
    # What the engine accepts but is known to do badly, said at validate and up.
    warnings: tuple[str, ...] = ()

    def args_after_entrypoint(self) -> list[str]:
        n = len(self.image_entrypoint)
        if self.argv[:n] != self.image_entrypoint:
            raise ValueError(f"argv does not start with the image entrypoint {self.image_entrypoint}")
        return self.argv[n:]

    def shell(self) -> str:
        return shlex.join(self.argv)

    def launch_argv(self) -> list[str]:
        """What a container runs: argv itself, or for an engine that takes its API key from a
        config file, a /bin/sh that writes the key from the environment into a 0600 file
        (JSON, which is YAML) and execs argv with the file's path. The key is never in any argv."""
        if not self.api_key_file_flag:
            return list(self.argv)
        script = "\n".join([
            "set -e",
            "umask 077",
            'f="$(mktemp)"',
            "python3 -c 'import json, os, sys; print(json.dumps({\"api-key\": os.environ[sys.argv[1]]}))' "
            f'{shlex.quote(self.api_key_env)} > "$f"',
            f'exec "$@" {shlex.quote(self.api_key_file_flag)} "$f"',
        ])
        return ["/bin/sh", "-c", script, "glmserve-engine", *self.argv]


def render(spec: NodeSpec, engine: str | None = None) -> EngineCommand:
    engine = engine or spec.engine.name
    if engine not in ENGINES:
        raise GlmserveError([Problem(key="engine.name", message="unknown engine", value=engine, allowed=", ".join(ENGINES))])
    problems = []
    for key, why in UNSUPPORTED[engine].items():
        if spec.value_at(key) is not None:
            problems.append(Problem(key=key, message=why, value=spec.value_at(key)))
    if engine != "vllm" and spec.serving.pipeline_parallel_size > 1:
        problems.append(Problem(key="serving.pipelineParallelSize", value=spec.serving.pipeline_parallel_size,
                                message=f"glmserve renders pipeline parallelism (and multi-node) for vLLM only, not {engine}",
                                allowed="1"))
    if problems:
        raise GlmserveError(problems, headline=f"the node cannot be expressed for {engine}")
    template = environment().get_template(f"engines/{engine}.argv.j2")
    text = template.render(
        model=spec.model, serving=spec.serving, engine=spec.engine, extra_args=list(spec.engine.extra_args),
        sglang_kv_dtype=SGLANG_KV[spec.serving.kv_cache_dtype],
        # An engine spanning several nodes (TP x PP > gpu.count) runs on a Ray cluster.
        multi_node=spec.nodes > 1,
    )
    argv = [str(a) for a in yaml.safe_load(text)]
    # engine.version is the version of spec.engine.name; rendering the node for the other
    # engine (render --engine) checks that its flags exist, not since which version.
    version = spec.engine.version if engine == spec.engine.name else None
    table = flag_table(engine)
    check_command(table, version, argv, len(spec.engine.extra_args), spec.value_at)
    return EngineCommand(
        engine=engine, argv=argv, image_entrypoint=list(table.image_entrypoint),
        api_key_env=table.api_key_env, api_key_file_flag=table.api_key_file_flag, warnings=_warnings(spec),
    )


def _warnings(spec: NodeSpec) -> tuple[str, ...]:
    out = []
    spec_method = spec.serving.speculative.method if spec.serving.speculative else None
    if spec.engine.tool_call_parser and spec_method == "mtp":
        # https://github.com/vllm-project/vllm/issues/44843, https://github.com/vllm-project/vllm/issues/39757
        out.append("tool calling together with MTP speculative decoding has open engine bugs (vllm#44843, "
                   "vllm#39757: tool calls can come back as plain text); keep readiness.toolCallCheck on, "
                   "or drop serving.speculative if the check fails")
    return tuple(out)

