"""The generated API key keeps its value across every update; only a replace makes a new one."""
from __future__ import annotations

from infra.deploy.apikey import PREFIX, ApiKeyProvider


def test_an_in_place_change_keeps_the_key():
    provider = ApiKeyProvider()
    created = provider.create({"value": None, "purpose": "engine"})
    olds = created.outs
    assert olds["value"].startswith(PREFIX)

    news = {"value": None, "purpose": "engine behind the front door"}
    diff = provider.diff(created.id, olds, news)
    assert diff.changes and not diff.replaces

    updated = provider.update(created.id, olds, news)
    assert updated.outs == {"value": olds["value"], "purpose": news["purpose"]}
    assert provider.read(created.id, updated.outs).outs["value"] == olds["value"]


def test_no_change_means_no_update_and_each_create_is_a_new_key():
    provider = ApiKeyProvider()
    a, b = provider.create({"purpose": "x"}), provider.create({"purpose": "x"})
    assert not provider.diff(a.id, a.outs, {"value": None, "purpose": "x"}).changes
    assert a.outs["value"] != b.outs["value"]
