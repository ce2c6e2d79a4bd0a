"""Hostile engine arguments (issue 14, engine side): each class is refused by the renderer
with the spec key that carries it, or rendered without corruption."""
from __future__ import annotations

import copy
import json
import shlex

import pytest
import yaml

from infra.common.argv import tokenize
from infra.common.errors import GlmserveError
from infra.engine.render import render
from infra.engine.templates import environment, tojson
from infra.spec.build import build_spec

from tests.helpers import ROOT

NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())


def spec_with(overrides: dict):
    return build_spec(copy.deepcopy(NODE), overrides, "stacks/node.yaml", "stacks/Pulumi.t.yaml")


def refused(overrides: dict, engine: str | None = None) -> str:
    with pytest.raises(GlmserveError) as e:
        render(spec_with(overrides), engine)
    return str(e.value)


# ----------------------------------------------------------------------- astral-plane text

@pytest.mark.parametrize("text", ["🙂", "model-🚀-x", "𝄞 clef", "mixed ü 🙂 \u2028 end"])
def test_astral_plane_characters_survive_render(text):
    cmd = render(spec_with({"engine": {"extraArgs": ["--chat-template", text]}}))
    assert cmd.argv[-2:] == ["--chat-template", text]
    assert shlex.split(cmd.shell()) == cmd.argv
    cmd.shell().encode("utf-8")  # no lone surrogates anywhere


def test_every_plane_survives_render():
    text = "".join(chr(c) for c in (0x1F600, 0x10000, 0x10FFFD, 0xE9, 0x2028, 0x85))
    assert render(spec_with({"engine": {"extraArgs": ["--chat-template", text]}})).argv[-1] == text


def test_tojson_round_trips_through_yaml_and_json():
    for v in ["🙂", "\\ud83d\\ude00", "a\u2028b\x85c", "it's <x> & y", {"k": "🚀"}, ["𝄞"]]:
        text = tojson(v)
        assert yaml.safe_load(text) == v and json.loads(text) == v
    # byte-identical to jinja's own filter for text below U+10000 (golden files stay as they are)
    assert tojson({"b": "<'&>", "a": 1}) == '{"a": 1, "b": "\\u003c\\u0027\\u0026\\u003e"}'
    assert environment().filters["tojson"] is tojson


def test_lone_surrogate_in_extra_args_is_refused():
    msg = refused({"engine": {"extraArgs": ["--chat-template", "\ud83d"]}})
    assert "engine.extraArgs" in msg and "lone surrogate" in msg


# ----------------------------------------------------------------------- contradicting flags

def test_negated_flag_next_to_its_pair_is_refused():
    msg = refused({"engine": {"extraArgs": ["--no-enable-prefix-caching"]}})
    assert "engine.extraArgs" in msg and "--no-enable-prefix-caching" in msg
    assert "serving.prefixCaching" in msg


def test_pair_within_extra_args_is_refused():
    msg = refused({"serving": {"prefixCaching": False},
                   "engine": {"extraArgs": ["--enable-prefix-caching"]}})
    assert "serving.prefixCaching" in msg


def test_extra_switch_overriding_a_spec_boolean_is_refused():
    msg = refused({"serving": {"enforceEager": False}, "engine": {"extraArgs": ["--enforce-eager"]}})
    assert "--enforce-eager overrides serving.enforceEager (false)" in msg
    # SGLang: prefix caching on renders nothing, yet --disable-radix-cache contradicts it
    msg = refused({"serving": {"loadStrategy": None}, "engine": {"extraArgs": ["--disable-radix-cache"]}}, "sglang")
    assert "serving.prefixCaching" in msg


def test_extra_flag_contradicting_a_rendered_spec_field_is_refused():
    # --distributed-executor-backend belongs to serving.pipelineParallelSize, rendered here
    msg = refused({"gpu": {"count": 8}, "serving": {"tensorParallelSize": 4, "pipelineParallelSize": 2},
                   "engine": {"extraArgs": ["--distributed-executor-backend", "mp"]}})
    assert "contradicts serving.pipelineParallelSize" in msg


def test_same_extra_flag_twice_is_refused():
    msg = refused({"engine": {"extraArgs": ["--max-num-seqs", "64", "--max-num-seqs", "32"]}})
    assert "--max-num-seqs is given twice" in msg


# ----------------------------------------------------------------------- values where they belong

def test_flag_where_a_value_belongs_is_refused():
    msg = refused({"engine": {"extraArgs": ["--max-num-seqs", "--enable-expert-parallel"]}})
    assert "--max-num-seqs needs a value" in msg and "engine.extraArgs" in msg


def test_value_after_a_switch_is_refused():
    msg = refused({"engine": {"extraArgs": ["--enable-expert-parallel", "true"]}})
    assert "is not a flag and --enable-expert-parallel takes no value" in msg


def test_inline_value_on_a_switch_is_refused():
    msg = refused({"engine": {"extraArgs": ["--enable-expert-parallel=false"]}})
    assert "--enable-expert-parallel takes no value" in msg


@pytest.mark.parametrize("value", ["-5", "0", "1.5", "many", "٣"])
def test_count_flags_refuse_non_counts(value):
    msg = refused({"engine": {"extraArgs": ["--max-num-seqs", value]}})
    assert "--max-num-seqs takes a count" in msg and "a whole number >= 1" in msg


def test_count_flag_inline_negative_is_refused():
    assert "takes a count" in refused({"engine": {"extraArgs": ["--max-num-batched-tokens=-1"]}})


def test_json_flags_refuse_broken_json():
    assert "--hf-overrides takes JSON" in refused({"engine": {"extraArgs": ["--hf-overrides", "{oops"]}})
    deep = "[" * 100_000 + "]" * 100_000
    assert "takes JSON" in refused({"engine": {"extraArgs": ["--hf-overrides", deep]}})


def test_good_extra_args_still_render():
    argv = render(spec_with({"engine": {"extraArgs": ["--max-num-seqs", "64", "--seed", "-1",
                                                      "--hf-overrides", '{"a": 1}']}})).argv
    assert argv[-6:] == ["--max-num-seqs", "64", "--seed", "-1", "--hf-overrides", '{"a": 1}']


def test_tokenizer_reads_negative_numbers_as_values():
    [t] = tokenize(["--seed", "-1"])
    assert (t.flag, t.value) == ("--seed", "-1")


# ----------------------------------------------------------------------- SGLang's API key

def test_sglang_api_key_comes_from_a_0600_file_never_argv(tmp_path):
    """SGLang reads no key from its environment: launch_argv writes it from the environment
    into a 0600 config file (--config) at start; neither the rendered argv nor the running
    engine's argv carries it."""
    import dataclasses
    import os
    import subprocess
    import sys

    cmd = render(spec_with({"serving": {"loadStrategy": None}}), "sglang")
    assert cmd.api_key_file_flag == "--config" and "--api-key" not in cmd.launch_argv()
    # The engine, played by a script that reports what it was given.
    probe = ("import json, os, stat, sys; f = sys.argv[-1]; "
             "print(json.dumps({'argv': sys.argv, 'config': json.load(open(f)), "
             "'mode': stat.S_IMODE(os.stat(f).st_mode)}))")
    fake = dataclasses.replace(cmd, argv=[sys.executable, "-c", probe, "--port", "8000"])
    key = "sk-" + "x" * 20 + "🙂'\"$(id)"
    out = subprocess.run(fake.launch_argv(), env={**os.environ, "GLMSERVE_API_KEY": key},
                         capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(out.stdout)
    assert seen["config"] == {"api-key": key} and seen["mode"] == 0o600
    assert key not in " ".join(seen["argv"]) and seen["argv"][-2] == "--config"
    assert key not in " ".join(fake.launch_argv())


def test_vllm_reads_its_key_from_the_environment():
    cmd = render(spec_with({}))
    assert cmd.api_key_env == "VLLM_API_KEY" and cmd.api_key_file_flag is None
    assert cmd.launch_argv() == cmd.argv


# ----------------------------------------------------------------------- any text, property-based

from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_extra_arg_value_renders_losslessly_or_is_refused_with_its_key(text):
    """Whatever text a stack puts behind a value flag: render keeps it exactly (every plane,
    shell quoting included) or refuses it naming engine.extraArgs; never a traceback."""
    try:
        spec = spec_with({"engine": {"extraArgs": ["--chat-template", text]}})
        cmd = render(spec)
    except GlmserveError as e:
        assert "engine.extraArgs" in str(e)
        return
    assert cmd.argv[-1] == text
    assert shlex.split(cmd.shell()) == cmd.argv
