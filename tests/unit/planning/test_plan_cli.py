"""`glmserve plan`: the library API, the CLI flags, the stable JSON schema and user errors."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.cli import plan as plan_cli
from infra.planning import plan as plan_mod, report
from infra.common.errors import GlmserveError
from infra.spec.profiles import load_profile

from tests.helpers import ROOT  # noqa: E402
REQUIRED = {"weights_gib_per_gpu", "kv_bytes_per_token_per_gpu", "block_size", "available_kv_gib_per_gpu",
            "kv_cache_tokens", "max_concurrency", "fits", "reasons", "assumptions", "cost_per_hour_usd",
            "cold_start_seconds_estimate"}


@pytest.fixture(autouse=True)
def project_dir(monkeypatch):
    monkeypatch.setenv("GLMSERVE_PROJECT_DIR", str(ROOT))


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="glmserve plan")
    plan_cli.add_arguments(p)
    return p.parse_args(list(argv))


def run(capsys, *argv: str) -> tuple[int, str]:
    rc = plan_cli.run(parse(*argv))
    return rc, capsys.readouterr().out


@pytest.fixture
def glm_config(tmp_path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(load_profile("glm-5.2-fp8")["config"]))
    return path


# ---------------------------------------------------------------- schema

def test_json_schema_key_set_is_stable(capsys):
    rc, out = run(capsys, "--stack", "modal-prod", "--json")
    data = json.loads(out)
    assert rc == 0
    assert tuple(data) == report.JSON_KEYS
    assert REQUIRED <= set(data)
    assert data["schema_version"] == report.SCHEMA_VERSION == 1
    for a in data["assumptions"]:
        assert set(a) == {"what", "value", "source"}


def test_schema_is_documented():
    doc = (ROOT / "docs" / "plan-schema.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", doc, flags=re.M))
    assert documented == set(report.JSON_KEYS)
    for key in report.SUMMARY_KEYS:
        assert key in doc


def test_json_types(capsys):
    _, out = run(capsys, "--stack", "modal-prod", "--json")
    d = json.loads(out)
    assert isinstance(d["fits"], bool)
    for k in ("kv_bytes_per_token_per_gpu", "block_size", "kv_cache_tokens", "kv_cache_blocks",
              "cold_start_seconds_estimate", "max_model_len"):
        assert isinstance(d[k], int), k
    for k in ("weights_gib_per_gpu", "available_kv_gib_per_gpu", "max_concurrency", "cost_per_hour_usd"):
        assert isinstance(d[k], float), k
    assert isinstance(d["reasons"], list) and d["reasons"]


# ---------------------------------------------------------------- shipped stacks

def test_modal_prod_numbers(capsys):
    _, out = run(capsys, "--stack", "modal-prod", "--json")
    d = json.loads(out)
    assert d["fits"] is True and d["errors"] == []
    assert d["weights_gib_per_gpu"] == pytest.approx(94.46, rel=0.02)
    assert d["kv_bytes_per_token_per_gpu"] == 54_728
    assert d["block_size"] == 64 and d["kv_cache_dtype"] == "fp8_ds_mla"
    assert 27 <= d["available_kv_gib_per_gpu"] <= 32
    assert 540_000 <= d["kv_cache_tokens"] <= 620_000
    assert 4.1 <= d["max_concurrency"] <= 4.7
    assert d["cost_per_hour_usd"] == pytest.approx(36.32, abs=0.01)
    assert d["cost"]["idle_cost_per_hour_usd"] == pytest.approx(36.32, abs=0.01)   # keep-warm 1
    assert d["cold_start"]["storage"] == "modal-volume"


@pytest.mark.parametrize("stack,provider", [("modal-dev", "modal"), ("runpod-prod", "runpod"), ("dev", "none")])
def test_every_shipped_stack_plans(capsys, stack, provider):
    rc, out = run(capsys, "--stack", stack, "--json")
    d = json.loads(out)
    assert rc == 0 and d["fits"] and d["provider"] == provider
    if provider == "none":
        assert d["cost_per_hour_usd"] is None
    if provider == "runpod":
        assert d["cost_per_hour_usd"] == pytest.approx(36.72)
        assert d["cold_start"]["storage"] == "runpod-network-volume"
        assert any("startupSeconds" in w for w in d["warnings"])


def test_text_report(capsys):
    rc, out = run(capsys, "--stack", "modal-prod")
    assert rc == 0
    for needle in ("FITS", "94.46", "54,728", "fp8_ds_mla", "$36.32/h", "Cold start", "Assumptions"):
        assert needle in out, needle


def test_stack_flags_override(capsys):
    rc, out = run(capsys, "--stack", "modal-prod", "--max-model-len", "1048576", "--json")
    d = json.loads(out)
    assert rc == 1 and d["fits"] is False
    assert d["max_model_len"] == 1_048_576
    assert any(k["key"] == "serving.maxModelLen" for k in d["knobs"])


def test_usage_pattern_flags(capsys):
    _, out = run(capsys, "--stack", "modal-dev", "--hours-per-day", "3", "--json")
    c = json.loads(out)["cost"]
    assert c["usage"]["hours_per_day"] == 3
    assert 3 < c["billed_hours_per_day"] < 4
    assert c["cost_per_month_usd"] == pytest.approx(36.3168 * c["billed_hours_per_day"] * 730 / 24, abs=0.05)
    _, out = run(capsys, "--stack", "modal-dev", "--requests-per-day", "20", "--busy-seconds-per-request", "120",
                 "--json")
    assert json.loads(out)["cost"]["usage"]["requests_per_day"] == 20


# ---------------------------------------------------------------- ad hoc

def test_adhoc_from_config_json(capsys, glm_config):
    rc, out = run(capsys, "--model-config", str(glm_config), "--gpu", "H200", "--gpus", "8", "--tp", "8",
                  "--kv-cache-dtype", "fp8", "--max-model-len", "131072", "--gpu-memory-utilization", "0.92",
                  "--enforce-eager", "--speculative-tokens", "5", "--json")
    d = json.loads(out)
    assert rc == 0 and d["fits"]
    assert d["kv_bytes_per_token_per_gpu"] == 54_728
    assert d["weights"]["source"] == "config"            # a bare config.json: no measured adjustment
    assert d["provider"] == "none" and d["cost_per_hour_usd"] is None


def test_adhoc_weights_override_and_provider(capsys, glm_config):
    _, out = run(capsys, "--model-config", str(glm_config), "--kv-cache-dtype", "fp8", "--max-model-len", "131072",
                 "--gpu-memory-utilization", "0.92", "--weights-gib", "94.46", "--enforce-eager",
                 "--provider", "modal", "--json")
    d = json.loads(out)
    assert d["weights_gib_per_gpu"] == 94.46 and d["weights"]["source"] == "override"
    assert d["kv_bytes_per_token_per_gpu"] == 53_940
    assert d["cost_per_hour_usd"] == pytest.approx(36.32, abs=0.01)


def test_adhoc_profile_name_and_price_override(capsys):
    _, out = run(capsys, "--model-config", "llama-3.1-70b", "--gpus", "4", "--max-model-len", "65536",
                 "--provider", "runpod", "--price-per-gpu-hour", "3.59", "--json")
    d = json.loads(out)
    assert d["model"]["architecture"] == "gqa" and d["block_size"] == 16
    assert d["cost_per_hour_usd"] == pytest.approx(14.36)
    assert d["cost"]["price"]["overridden"] is True


def test_bf16_glm_is_infeasible(capsys):
    rc, out = run(capsys, "--model-config", "glm-5.2-bf16", "--kv-cache-dtype", "fp8", "--max-model-len", "131072",
                  "--gpu-memory-utilization", "0.92", "--enforce-eager", "--speculative-tokens", "5", "--json")
    d = json.loads(out)
    assert rc == 1 and d["fits"] is False
    assert d["reasons"] == d["errors"] and "does not fit" in d["errors"][0]
    assert d["kv_cache_tokens"] == 0 and d["max_concurrency"] == 0
    assert d["knobs"][0]["value"] == "glm-5.2-fp8"


def test_plan_api(glm_config):
    from infra.spec.load import spec_for_stack

    spec = spec_for_stack("runpod-prod")
    p = plan_mod.plan_for_spec(spec, provider_price_override=3.59)
    assert p.cost_per_hour_usd == pytest.approx(28.72)
    assert p.errors() == [] and isinstance(p.warnings(), list)
    s = p.summary()
    assert tuple(s) == report.SUMMARY_KEYS
    json.dumps(s)
    assert s["fits"] is True and s["cost_per_hour_usd"] == pytest.approx(28.72)
    adhoc = plan_mod.plan_adhoc(json.loads(glm_config.read_text()), "H200", 8, 8, "fp8", 131072, 0.92,
                                weights_gib=200.0, enforce_eager=True, speculative_tokens=5, provider="modal")
    assert not adhoc.fits and adhoc.errors() and adhoc.summary()["fits"] is False
    assert "does not fit" in adhoc.format_text() or "DOES NOT FIT" in adhoc.format_text()


# ---------------------------------------------------------------- user errors

@pytest.mark.parametrize("argv,key", [
    ((), "--stack"),
    (("--stack", "nope"), "--stack"),
    (("--model-config", "/no/such/config.json"), "--model-config"),
    (("--model-config", "glm-5.2-fp8", "--gpu", "H201"), "--gpu"),
    (("--model-config", "glm-5.2-fp8", "--gpu-memory-utilization", "1.5"), "--gpu-memory-utilization"),
    (("--model-config", "glm-5.2-fp8", "--tp", "0"), "--tp"),
    (("--model-config", "glm-5.2-fp8", "--requests-per-day", "10"), "--busy-seconds-per-request"),
    (("--model-config", "glm-5.2-fp8", "--hours-per-day", "30"), "--hours-per-day"),
])
def test_user_errors_raise_glmserve_error(argv, key):
    with pytest.raises(GlmserveError) as e:
        plan_cli.run(parse(*argv))
    assert any(p.key == key for p in e.value.problems), str(e.value)


def test_unreadable_config_json(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(GlmserveError):
        plan_cli.run(parse("--model-config", str(bad)))
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(GlmserveError) as e:
        plan_cli.run(parse("--model-config", str(partial)))
    assert e.value.problems[0].key == "config.num_hidden_layers"


def test_module_cli_prints_errors_without_traceback():
    env = dict(os.environ, PYTHONPATH=str(ROOT), GLMSERVE_PROJECT_DIR=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "infra.cli.main", "plan", "--model-config", "/no/such.json"],
                       capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "--model-config" in r.stderr


def test_plan_modules_do_not_import_pulumi():
    code = ("import sys, infra.cli.plan, infra.planning.plan, infra.planning.capacity, infra.planning.cost, "
            "infra.planning.coldstart; "
            "print(any(m == 'pulumi' or m.startswith('pulumi.') for m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.stdout.strip() == "False", r.stderr


def test_a_provider_registered_at_run_time_is_planned_from_its_own_facts():
    from infra.config import providers
    from providers.base import Provider

    class Bare(Provider):
        """A provider whose package has no catalogue: the plan must not borrow another's figures."""
        name = "bare-test"
        title = "Bare"

    providers.register("bare-test", Bare())
    try:
        plan = plan_mod.plan_adhoc(load_profile("glm-5.2-fp8"), provider="bare-test", kv_cache_dtype="fp8",
                                   max_model_len=131072, gpu_memory_utilization=0.92, enforce_eager=True)
        data = plan.to_json()
        assert data["provider"] == "bare-test" and data["cold_start"]["storage"] == "unknown"
        assert data["cold_start"]["terms_s"]["provision_s"] == 0
        assert any("bare-test provider's catalogue gives no planning.provision_s" in w for w in plan.warnings())
        assert {"bare-test provisioning (s)": "unknown"}.items() <= {a["what"]: a["value"]
                                                                     for a in data["assumptions"]}.items()
        assert data["cost_per_hour_usd"] is None
        assert plan_mod.plan_adhoc(load_profile("glm-5.2-fp8"), provider="bare-test",
                                   price_per_gpu_hour=2.0).cost_per_hour_usd == 16.0
        providers.register("no-hook-test", object())
        with pytest.raises(GlmserveError) as e:
            plan_mod.plan_adhoc(load_profile("glm-5.2-fp8"), provider="no-hook-test")
        assert e.value.problems[0].key == "provider"
    finally:
        providers.unregister("bare-test")
        providers.unregister("no-hook-test")
