"""`glmserve diff`: a stack at a base git revision against the working tree, each side
evaluated by its own tree's code: engine flags added/removed/changed, provider fields, plan,
cost per hour, policy."""
from __future__ import annotations

import json

import pytest
import yaml

from infra.gitops.compare import diff_command
from infra.gitops.snapshot_worker import parse_argv
from infra.engine.flags import flag_table

from tests.helpers import run_glmserve
from tests.e2e.test_gitops import commit, edit_stack, make_repo


def diff(repo, *args, fmt="json"):
    proc = run_glmserve("diff", *args, "--format", fmt, env={"GLMSERVE_PROJECT_DIR": str(repo)}, cwd=repo)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def diff_json(repo, *args) -> dict:
    proc = diff(repo, *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one(result: dict, stack: str) -> dict:
    [d] = [d for d in result["stacks"] if d["stack"] == stack]
    return d


# ----------------------------------------------------------------------------- argv parsing

def test_parse_argv_uses_the_flag_table():
    argv = ["vllm", "serve", "m/x", "--revision", "abc", "--trust-remote-code", "--max-model-len", "1024",
            "--speculative-config", '{"a": 1}', "--seed=3", "--enforce-eager", "--chat-template", "--weird"]
    parsed = parse_argv(argv, flag_table("vllm"))
    assert parsed["head"] == ["vllm", "serve", "m/x"]
    assert parsed["flags"] == [["--revision", "abc"], ["--trust-remote-code", None], ["--max-model-len", "1024"],
                               ["--speculative-config", '{"a": 1}'], ["--seed", "3"], ["--enforce-eager", None],
                               ["--chat-template", None], ["--weird", None]]


def test_diff_command_added_removed_changed_and_repeated():
    before = {"head": ["vllm", "serve", "m"], "flags": [["--a", "1"], ["--b", None], ["--m", "x"], ["--m", "y"]]}
    after = {"head": ["vllm", "serve", "m2"], "flags": [["--a", "2"], ["--c", None], ["--m", "x"]]}
    d = diff_command(before, after)
    assert d["added"] == [{"flag": "--c", "value": None}]
    assert d["removed"] == [{"flag": "--b", "value": None}]
    assert d["changed"] == [{"flag": "--a", "before": "1", "after": "2"},
                            {"flag": "--m", "before": ["x", "y"], "after": "x"}]
    assert d["head"] == {"before": ["vllm", "serve", "m"], "after": ["vllm", "serve", "m2"]}


# ----------------------------------------------------------------------------- against git

def test_flags_provider_fields_plan_and_cost_delta(tmp_path):
    repo = make_repo(tmp_path)
    edit_stack(repo, "modal-dev", {"glmserve:serving": {"maxModelLen": 65536, "enforceEager": False},
                                   "glmserve:engine": {"extraArgs": ["--enable-expert-parallel"]},
                                   "glmserve:scaling": {"maxReplicas": 2}})
    result = diff_json(repo, "--stack", "modal-dev", "--base", "HEAD")
    d = one(result, "modal-dev")
    assert d["status"] == "changed"
    e = d["engine"]
    assert e["changed"] == [{"flag": "--max-model-len", "before": "131072", "after": "65536"}]
    assert e["added"] == [{"flag": "--enable-expert-parallel", "value": None}]
    assert e["removed"] == [{"flag": "--enforce-eager", "value": None}]
    assert e["model"] == ["vllm", "serve", "zai-org/GLM-5.2-FP8"]
    assert {"field": "max_containers", "before": 1, "after": 2} in d["provider"]["changed"]
    cost = d["cost"]
    assert cost["cost_per_hour_usd"] == {"label": "serving (one replica)", "before": 36.32, "after": 36.32,
                                         "delta": 0.0}
    assert cost["max_cost_per_hour_usd"]["before"] == pytest.approx(36.32)
    assert cost["max_cost_per_hour_usd"]["delta"] == pytest.approx(36.31, abs=0.02)
    plan = {c["field"]: c for c in d["plan"]["changed"]}
    assert plan["max_model_len"]["before"] == 131072 and plan["max_model_len"]["after"] == 65536
    assert plan["max_concurrency"]["after"] > plan["max_concurrency"]["before"]
    assert d["policy"]["before"]["ok"] and d["policy"]["after"]["ok"]
    assert {"field": "scaling.maxReplicas", "before": 1, "after": 2} in d["config"]
    assert result["notes"] == [], "both sides are evaluated by their own code"

    text = diff(repo, "--stack", "modal-dev", "--base", "HEAD", fmt="text").stdout
    for line in ("stack modal-dev (provider modal, environment dev): changed",
                 "engine command (vllm serve zai-org/GLM-5.2-FP8):",
                 "  + --enable-expert-parallel", "  - --enforce-eager", "  ~ --max-model-len: 131072 -> 65536",
                 "  ~ max_containers: 1 -> 2", "  every replica busy: $36.32 -> $72.63 (+$36.31)",
                 "  serving (one replica): $36.32 -> $36.32 (±$0.00)", "policy: pass -> pass"):
        assert line in text, text
    md = diff(repo, "--stack", "modal-dev", "--base", "HEAD", fmt="markdown").stdout
    assert "| `--max-model-len` | `131072` | `65536` |" in md
    assert "| `--enable-expert-parallel` | — | (added) |" in md and "| `--enforce-eager` | (set) | (removed) |" in md


def test_unchanged_stack_and_policy_turning_red(tmp_path):
    repo = make_repo(tmp_path)
    edit_stack(repo, "dev", {"glmserve:policy": {"environment": "prod"}})
    result = diff_json(repo, "--stack", "dev", "--stack", "modal-dev", "--base", "HEAD")
    assert one(result, "modal-dev")["status"] == "unchanged"
    d = one(result, "dev")
    assert d["status"] == "changed" and d["engine"]["added"] == d["engine"]["removed"] == []
    assert d["policy"]["before"]["ok"] is True and d["policy"]["after"]["ok"] is False
    assert any("[pinned-revision]" in v for v in d["policy"]["after"]["violations"])
    text = diff(repo, "--stack", "dev", "--base", "HEAD", fmt="text").stdout
    assert "policy: pass -> FAIL (2)" in text and "cost per hour (USD): n/a" in text


def test_a_template_change_is_diffed_with_each_sides_own_templates(tmp_path):
    repo = make_repo(tmp_path)
    tpl = repo / "templates" / "engines" / "vllm.argv.j2"
    tpl.write_text(tpl.read_text().replace('{%- for a in extra_args %}',
                                           '- "--disable-log-requests"\n{%- for a in extra_args %}'))
    result = diff_json(repo, "--all", "--base", "HEAD")
    stacks = {d["stack"] for d in result["stacks"]}
    assert {"dev", "modal-dev", "modal-prod", "runpod-prod"} <= stacks
    for d in result["stacks"]:
        if d["stack"] in ("dev", "modal-dev", "modal-prod", "runpod-prod"):
            assert d["engine"]["added"] == [{"flag": "--disable-log-requests", "value": None}], d["stack"]


def test_base_revision_whose_code_fails_is_evaluated_with_the_working_trees(tmp_path):
    repo = make_repo(tmp_path)
    render_py = repo / "infra" / "engine" / "render.py"
    good = render_py.read_text()
    render_py.write_text(good + "\nraise RuntimeError('broken at this revision')\n")
    broken = commit(repo, "a broken renderer")
    render_py.write_text(good)
    edit_stack(repo, "dev", {"glmserve:serving": {"maxModelLen": 65536}})
    result = diff_json(repo, "--stack", "dev", "--base", broken)
    assert one(result, "dev")["engine"]["changed"][0]["flag"] == "--max-model-len"
    [note] = result["notes"]
    assert note.startswith(f"base {broken[:12]}: evaluated with the working tree's code") and "broken at this revision" in note


def test_added_and_removed_stacks(tmp_path):
    repo = make_repo(tmp_path)
    (repo / "stacks" / "Pulumi.modal-prod.yaml").unlink()
    (repo / "stacks" / "Pulumi.qa.yaml").write_text("config:\n  glmserve:provider: none\n")
    result = diff_json(repo, "--stack", "modal-prod", "--stack", "qa", "--stack", "nope", "--base", "HEAD")
    assert one(result, "modal-prod")["status"] == "removed"
    assert one(result, "qa")["status"] == "added"
    assert one(result, "qa")["cost"]["max_cost_per_hour_usd"]["before"] is None
    assert one(result, "nope")["status"] == "absent"


def test_a_stack_that_stops_validating_says_why(tmp_path):
    repo = make_repo(tmp_path)
    edit_stack(repo, "dev", {"glmserve:serving": {"gpuMemoryUtilization": 1.5}})
    text = diff(repo, "--stack", "dev", "--base", "HEAD", fmt="text").stdout
    assert "head does not validate:" in text
    assert "serving.gpuMemoryUtilization in stacks/Pulumi.dev.yaml" in text


def test_user_errors_exit_2_without_traceback(tmp_path):
    repo = make_repo(tmp_path)
    proc = diff(repo, "--stack", "dev", "--base", "no-such-rev")
    assert proc.returncode == 2
    assert "--base: is not a commit of the repository; got 'no-such-rev'" in proc.stderr
    proc = diff(repo, "--base", "HEAD")
    assert proc.returncode == 2 and "give --stack STACK" in proc.stderr
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    for name in ("Pulumi.yaml",):
        (plain / name).write_text((repo / name).read_text())
    (plain / "stacks").mkdir()
    (plain / "stacks" / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": {"glmserve:provider": "none"}}))
    proc = diff(plain, "--stack", "dev")
    assert proc.returncode == 2 and "is not inside a git repository" in proc.stderr
