"""Property-based, over whole stack files through the CLI (issue 14): for any generated file,
`validate` and `render` exit 0, or exit 2 with a short message that names a key or the file;
never a traceback, never megabytes of output; and whatever renders has a shell form that
splits back into exactly the JSON argv, astral-plane characters included."""
from __future__ import annotations

import json
import shlex

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.cli.main import main
from tests.helpers import ROOT

NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())
SECTIONS = sorted(NODE) + ["secrets", "readiness", "policy", "modal", "runpod", "kubernetes", "bogus"]
KNOWN = {s: sorted(NODE.get(s) or {}) for s in NODE}

# Text that reaches argv: emoji and other astral-plane characters, quotes, shell syntax.
awkward = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["😀", "𝔘nicode", "$(id)", "'quoted'", '"', "a b", "--flag", "-5", "`x`", "0.0.0.0", "\\", "~"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), awkward)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(awkward, inner, max_size=3), max_leaves=6)
extra_args = st.lists(st.sampled_from(["--max-num-seqs", "--seed", "--chat-template", "--enable-expert-parallel"])
                      | awkward, max_size=4)


@st.composite
def stack_files(draw) -> str:
    config: dict = {"glmserve:provider": draw(st.sampled_from(["none", "modal", "runpod", "kubernetes", "none"]))}
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from(SECTIONS))
        if draw(st.integers(0, 3)):
            key = draw(st.sampled_from(KNOWN.get(section, []) + ["typo"]))
            config.setdefault(f"glmserve:{section}", {})
            if isinstance(config[f"glmserve:{section}"], dict):
                config[f"glmserve:{section}"][key] = draw(values)
        else:
            config[f"glmserve:{section}"] = draw(values)
    if draw(st.booleans()):
        config.setdefault("glmserve:engine", {})
        if isinstance(config["glmserve:engine"], dict):
            config["glmserve:engine"]["extraArgs"] = draw(extra_args)
    if draw(st.booleans()):
        config["glmserve:serving"] = {"host": draw(awkward)}
    return yaml.safe_dump({"config": config}, allow_unicode=True, sort_keys=False)


@pytest.fixture(scope="module")
def stack_path(tmp_path_factory):
    import shutil

    project = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", project / "stacks")
    return project / "stacks" / "Pulumi.prop.yaml"


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main([*args, "--stack", "prop"])
    out = capsys.readouterr()
    return code, out.out, out.err


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=stack_files())
def test_any_stack_file_is_rendered_or_refused_clearly(stack_path, monkeypatch, capsys, text):
    monkeypatch.setenv("GLMSERVE_PROJECT_DIR", str(stack_path.parent.parent))
    stack_path.write_text(text)
    results = {}
    for name, args in (("validate", ["validate"]), ("json", ["render", "--format", "json"]),
                       ("shell", ["render", "--format", "shell"])):
        code, out, err = run(args, capsys)
        assert code in (0, 2), err
        assert len(out) + len(err) < 20_000, "output floods"
        if code == 2:
            assert err.startswith("glmserve:") and ("Pulumi.prop.yaml" in err or "node.yaml" in err or "." in err), err
        results[name] = (code, out)
    assert len({code for code, _ in results.values()}) == 1, f"validate and render disagree: {results}"
    if results["json"][0] == 0:
        assert shlex.split(results["shell"][1]) == json.loads(results["json"][1])
