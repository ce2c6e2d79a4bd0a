"""Cold start: a sum of data-driven terms, checked against the seed's published figures."""
from __future__ import annotations

from pathlib import Path

import pytest

from infra.planning import coldstart as cs
from infra.planning.plan import provider_facts
from infra.planning.provider_facts import ProviderFacts
from infra.planning.sources import ConfigError

from tests.helpers import ROOT  # noqa: E402
SEED = cs.constants()["seed"]


def glm(provider="modal", options=None, **kw):
    kw.setdefault("enforce_eager", True)
    return cs.estimate(provider_facts(provider, options=options), SEED["checkpoint_gib"], **kw)


def test_seed_load_times_on_a_modal_volume():
    # "model loading took over 12 minutes ... reduced to ~1 minute" with prefetch.
    lazy = glm(load_strategy=None).terms["weights_read_s"]
    prefetch = glm(load_strategy="prefetch").terms["weights_read_s"]
    assert lazy == pytest.approx(SEED["load_sequential_s"], rel=0.10)
    assert prefetch == pytest.approx(SEED["load_prefetch_s"], rel=0.10)
    assert lazy / prefetch > 10


def test_seed_total_cold_start():
    # "total cold start (including hardware allocation) roughly 4.5 minutes", eager, prefetch.
    c = glm(load_strategy="prefetch")
    assert c.ready_s == pytest.approx(SEED["total_cold_start_s"], rel=0.15)
    assert c.terms["first_request_warmup_s"] == SEED["first_request_ttft_s"]
    assert c.total_s == pytest.approx(c.ready_s + 35)
    assert c.terms["cuda_graphs_s"] == 0
    # Without prefetch the same start takes over a quarter of an hour.
    assert glm(load_strategy="lazy").ready_s > 14 * 60


def test_terms_are_a_sum():
    c = glm(load_strategy="prefetch")
    assert list(c.terms) == ["provision_s", "image_pull_s", "weights_read_s", "engine_init_s", "cuda_graphs_s",
                             "first_request_warmup_s"]
    assert c.total_s == sum(c.terms.values())
    j = c.to_json()
    assert j["total_seconds"] == round(c.total_s) and j["storage"] == "modal-volume"


def test_cuda_graphs_cost_time_unless_eager():
    assert glm(enforce_eager=False).terms["cuda_graphs_s"] > 0
    assert glm(enforce_eager=False).terms["first_request_warmup_s"] < glm().terms["first_request_warmup_s"]


def test_runpod_network_volume_takes_30_to_60_minutes():
    c = glm("runpod", {"volume": "network"}, load_strategy="prefetch")
    assert c.storage == "runpod-network-volume"
    assert 30 * 60 <= c.terms["weights_read_s"] <= 60 * 60
    local = glm("runpod", {"volume": "persistent"}, load_strategy="prefetch")
    assert local.storage == "local-disk"
    assert local.terms["weights_read_s"] < c.terms["weights_read_s"] / 5


def test_first_deploy_adds_a_fresh_download():
    c = glm(load_strategy="prefetch")
    assert 30 * 60 <= c.first_deploy_download_s <= 60 * 60
    assert c.first_deploy_s == pytest.approx(c.total_s + c.first_deploy_download_s)
    assert glm(storage="hf-download").first_deploy_download_s == 0


def test_providers_say_where_they_read_the_weights():
    assert provider_facts("modal").storage == "modal-volume"
    assert provider_facts("runpod").storage == "runpod-network-volume"
    assert provider_facts("runpod", options={"volume": "persistent"}).storage == "local-disk"
    assert provider_facts("none").storage == "local-disk"
    assert provider_facts("kubernetes").storage == "local-disk"
    with pytest.raises(ValueError):            # the option block refuses a volume kind it lacks
        provider_facts("runpod", options={"volume": "nfs"})


def test_a_provider_without_facts_is_unknown_not_none():
    bare = ProviderFacts(provider="bare", billing="dedicated")
    c = cs.estimate(bare, SEED["checkpoint_gib"], enforce_eager=True)
    assert c.storage == cs.UNKNOWN
    assert c.terms["provision_s"] == c.terms["image_pull_s"] == c.terms["weights_read_s"] == 0
    unknown = {a.what: a.value for a in c.assumptions if a.value == cs.UNKNOWN}
    assert "bare provisioning (s)" in unknown and len(unknown) == 3
    assert bare.unknown() == ["planning.provision_s", "planning.image_pull_gbps", "planning.storage"]
    # It does not borrow another provider's figures (the none provider's local disk).
    assert provider_facts("none").unknown() == []


def test_unknown_inputs_are_config_errors():
    with pytest.raises(ConfigError):
        glm(load_strategy="turbo")
    with pytest.raises(ConfigError):
        glm(storage="floppy")


def test_constants_have_sources():
    c = cs.constants()
    for name, row in c["storage"].items():
        assert row["source"], name
    for name in ("modal", "runpod", "kubernetes", "none"):
        facts = provider_facts(name)
        assert facts.provision.source and facts.image_pull.source, name
        for storage in facts.storages.values():
            assert storage.source and storage.gbps["lazy"] > 0, (name, storage.name)
    for key in ("engine_init_s", "cuda_graphs_s", "first_request_warmup_s"):
        assert c[key]["source"]


def test_modal_prod_stack_matches_the_seed(monkeypatch):
    monkeypatch.setenv("GLMSERVE_PROJECT_DIR", str(ROOT))
    from infra.planning.plan import plan_for_spec
    from infra.spec.load import spec_for_stack

    plan = plan_for_spec(spec_for_stack("modal-prod"))
    assert plan.cold_start.storage == "modal-volume"
    assert plan.cold_start.load_strategy == "prefetch"
    assert plan.cold_start.ready_s == pytest.approx(SEED["total_cold_start_s"], rel=0.15)
    assert plan.cold_start_seconds_estimate == round(plan.cold_start.total_s)
