"""The Modal app with a keep-warm schedule and with a GPU snapshot: what is rendered, what is
refused and why (providers/modal/schedule.py, providers/modal/snapshot.py)."""
from __future__ import annotations

import ast
import copy

import pytest
import yaml

from infra.common.errors import GlmserveError
from infra.config import providers
from infra.engine.render import render
from infra.spec.build import build_spec
from providers.modal.schedule import apply_after_deploy, cron_functions, schedule_props
from tests.helpers import ROOT

NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())
PROVIDER = providers.get("modal")
OFFICE = {"timeZone": "Europe/Berlin", "minReplicas": 1,
          "windows": [{"days": ["mon-fri"], "start": "08:00", "end": "19:00"}]}
# A one-GPU vLLM node: where a GPU snapshot can work.
SMALL = {"model": {"id": "Qwen/Qwen3-8B", "servedName": "qwen3-8b", "profile": None, "trustRemoteCode": False},
         "gpu": {"type": "H100", "count": 1},
         "serving": {"tensorParallelSize": 1, "speculative": None, "maxModelLen": 32768}}


def spec_of(**sections):
    over = {"provider": "modal"}
    over.update(copy.deepcopy(sections))
    return build_spec(copy.deepcopy(NODE), over, "stacks/node.yaml", "stacks/Pulumi.test.yaml")


def artifact(spec) -> str:
    PROVIDER.validate(spec)
    return PROVIDER.artifact(spec, render(spec), "test", "glmserve")


def test_each_window_edge_is_a_cron_function_in_the_windows_time_zone():
    spec = spec_of(scaling={"minReplicas": 0, "maxReplicas": 1, "warmSchedule": OFFICE})
    source = artifact(spec)
    ast.parse(source)
    assert 'schedule=modal.Cron("0 8 * * 1,2,3,4,5", timezone="Europe/Berlin")' in source
    assert 'schedule=modal.Cron("0 19 * * 1,2,3,4,5", timezone="Europe/Berlin")' in source
    assert [(c["name"], c["min_containers"]) for c in cron_functions(spec)] == [
        ("warm_window_0_start", 1), ("warm_window_0_end", 0)]
    assert 'modal.Function.from_name(app.name, "serve").autoscaler.update(min_containers=n)' in source
    # The decorator carries the floor outside the windows: what a deploy resets to.
    assert "min_containers=0," in source


def test_no_schedule_no_cron_functions():
    source = artifact(spec_of())
    assert "modal.Cron" not in source and "autoscaler" not in source


def test_a_deploy_applies_the_window_that_is_current(monkeypatch):
    calls = []
    monkeypatch.setattr("providers.modal.client.set_min_containers", lambda app, env, n, in_class=False: calls.append((app, env, n)))
    props = schedule_props(spec_of(scaling={"minReplicas": 0, "maxReplicas": 2,
                                            "warmSchedule": {**OFFICE, "minReplicas": 2}}))
    monkeypatch.setenv("GLMSERVE_SCHEDULE_AT", "2026-12-07T09:30:00+01:00")       # Monday, in the window
    assert apply_after_deploy("glm", None, props, log=lambda m: None) == 2
    monkeypatch.setenv("GLMSERVE_SCHEDULE_AT", "2026-12-06T09:30:00+01:00")       # Sunday
    assert apply_after_deploy("glm", "prod", props, log=lambda m: None) == 0
    assert calls == [("glm", None, 2), ("glm", "prod", 0)]
    assert apply_after_deploy("glm", None, None) is None


def test_gpu_snapshot_on_the_glm_node_is_refused_with_the_reason_and_the_cold_start_to_expect():
    spec = spec_of(modal={"gpuSnapshot": True})
    with pytest.raises(GlmserveError) as e:
        PROVIDER.validate(spec)
    text = e.value.render()
    assert "modal.gpuSnapshot" in text
    assert "tensor parallel 1 only" in text and "NCCL" in text and "modal-examples/issues/1558" in text
    assert "glmserve plan" in text and "warmSchedule" in text


def test_memory_snapshot_is_refused_because_it_holds_nothing_of_the_engine():
    with pytest.raises(GlmserveError) as e:
        PROVIDER.validate(spec_of(modal={"memorySnapshot": True}))
    assert "subprocess" in e.value.render()


def test_gpu_snapshot_on_one_gpu_renders_the_snapshot_pattern():
    spec = spec_of(**SMALL, modal={"gpuSnapshot": True},
                   scaling={"minReplicas": 0, "maxReplicas": 1, "warmSchedule": OFFICE})
    source = artifact(spec)
    tree = ast.parse(source)
    engine = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Engine")
    methods = {n.name: ast.unparse(n) for n in engine.body if isinstance(n, ast.FunctionDef)}
    assert "modal.enter(snap=True)" in methods["start_warm_and_sleep"]
    assert "/sleep?level=1" in methods["start_warm_and_sleep"]
    assert "modal.enter(snap=False)" in methods["wake"] and "/wake_up" in methods["wake"]
    assert "modal.web_server" in methods["serve"]
    assert 'experimental_options={"enable_gpu_snapshot": True}' in source
    assert "enable_memory_snapshot=True" in source
    assert "'--enable-sleep-mode'" in source and "'VLLM_SERVER_DEV_MODE': '1'" in source
    # The window edges move the class's autoscaler.
    assert 'modal.Cls.from_name(app.name, "Engine")().update_autoscaler(min_containers=n)' in source


def test_the_cold_start_estimate_models_the_snapshot_restore_where_it_applies():
    from infra.planning import coldstart

    on = PROVIDER.planning_facts(spec_of(**SMALL, modal={"gpuSnapshot": True}))
    off = PROVIDER.planning_facts(spec_of(**SMALL))
    assert off.snapshot_restore is None and on.snapshot_restore is not None
    full = coldstart.estimate(off, 16.0, load_strategy="lazy")
    restored = coldstart.estimate(on, 16.0, load_strategy="lazy")
    assert set(restored.terms) == {"provision_s", "image_pull_s", "snapshot_restore_s", "first_request_warmup_s"}
    assert restored.terms["provision_s"] == full.terms["provision_s"]
    assert restored.total_s < full.total_s
    # The first start after a deploy makes the snapshot: the full path.
    assert restored.first_deploy_s == pytest.approx(full.first_deploy_s)
    assert any("snapshot" in a.what for a in restored.assumptions)
