"""Engine launch arguments, rendered from the shared jinja2 templates.

One renderer for every provider: ``templates/engines/<engine>.argv.j2`` turns the spec
into an argv list. Flags are checked against ``<engine>.flags.yaml`` (which flags exist in
which engine version), so a flag the pinned engine lacks is an error here, not after a
cold start.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from infra.common.errors import GlmserveError, Problem
from infra.common.versions import version_tuple
from infra.engine.templates import TEMPLATES, environment
from infra.spec.model import NodeSpec

ENGINE_DIR = TEMPLATES / "engines"

# Spec keys that an engine cannot express, declared as data per engine.
UNSUPPORTED = {
    "sglang": {
        "serving.loadStrategy": "SGLang has no --safetensors-load-strategy; unset serving.loadStrategy for this engine",
    },
    "vllm": {},
}

SGLANG_KV = {"auto": "auto", "fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2", "bfloat16": "auto"}


@lru_cache(maxsize=None)
def flag_table(engine: str) -> dict[str, Any]:
    return yaml.safe_load((ENGINE_DIR / f"{engine}.flags.yaml").read_text())


@dataclass(frozen=True)
class EngineCommand:
    engine: str
    argv: list[str]
    # The image's own entrypoint; providers that hand `args` to it pass argv[len(entrypoint):].
    image_entrypoint: list[str]
    api_key_env: str
    api_key_flag: str | None

    def args_after_entrypoint(self) -> list[str]:
        n = len(self.image_entrypoint)
        if self.argv[:n] != self.image_entrypoint:
            raise ValueError(f"argv does not start with the image entrypoint {self.image_entrypoint}")
        return self.argv[n:]

    def shell(self) -> str:
        return shlex.join(self.argv)


def _check_flags(engine: str, version: str | None, argv: list[str], extra: list[str]) -> None:
    table = flag_table(engine)
    flags = table["flags"]
    problems = []
    for a in argv:
        if not a.startswith("--"):
            continue
        name = a.split("=", 1)[0]
        key = "engine.extraArgs" if a in extra else "engine.version"
        info = flags.get(name)
        if info is None:
            import difflib
            near = difflib.get_close_matches(name, list(flags), n=1)
            problems.append(Problem(
                key=key, value=name,
                message=f"{engine} has no flag {name}" + (f" (did you mean {near[0]}?)" if near else ""),
                allowed="flags listed in templates/engines/" + f"{engine}.flags.yaml"))
        elif version is not None and version_tuple(version) < version_tuple(str(info["since"])):
            problems.append(Problem(
                key="engine.version", value=version,
                message=f"{name} needs {engine} >= {info['since']}",
                allowed=f"{engine} >= {info['since']}, or remove the setting that renders {name}"))
    if problems:
        raise GlmserveError(problems, headline="the engine command cannot be rendered")


def render(spec: NodeSpec, engine: str | None = None) -> EngineCommand:
    engine = engine or spec.engine.name
    if engine not in ("vllm", "sglang"):
        raise GlmserveError([Problem(key="engine.name", message="unknown engine", value=engine, allowed="vllm, sglang")])
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
        model=spec.model, serving=spec.serving, extra_args=list(spec.engine.extra_args),
        sglang_kv_dtype=SGLANG_KV[spec.serving.kv_cache_dtype],
        # An engine spanning several nodes (TP x PP > gpu.count) runs on a Ray cluster.
        multi_node=spec.nodes > 1,
    )
    argv = [str(a) for a in yaml.safe_load(text)]
    # engine.version is the version of spec.engine.name; rendering the node for the other
    # engine (render --engine) checks that its flags exist, not since which version.
    version = spec.engine.version if engine == spec.engine.name else None
    _check_flags(engine, version, argv, list(spec.engine.extra_args))
    _check_duplicates(argv, list(spec.engine.extra_args))
    table = flag_table(engine)
    return EngineCommand(
        engine=engine, argv=argv, image_entrypoint=list(table["image_entrypoint"]),
        api_key_env=table["api_key"]["env"], api_key_flag=table["api_key"].get("flag"),
    )


def _check_duplicates(argv: list[str], extra: list[str]) -> None:
    base = argv[: len(argv) - len(extra)] if extra else argv
    rendered = {a.split("=", 1)[0] for a in base if a.startswith("--")}
    for a in extra:
        name = a.split("=", 1)[0]
        if name in rendered:
            raise GlmserveError([Problem(
                key="engine.extraArgs", value=name,
                message=f"{name} is rendered from the spec already; set the spec field instead of passing it again")])
