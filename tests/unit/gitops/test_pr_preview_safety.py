"""A pull request cannot make the pipeline send credentials to a new place: a change of a
provider's credential-bearing URL (runpod.apiUrl, kubernetes.gateUrl) is not previewed with the
pipeline's credentials unless the URL is trusted by the pipeline's own settings."""
from __future__ import annotations

from infra.gitops.pr_preview import untrusted_credential_urls


def diff_of(*changes):
    return {"config": [{"field": f, "before": b, "after": a} for f, b, a in changes]}


def test_a_changed_api_url_is_refused_and_named():
    found = untrusted_credential_urls(diff_of(("runpod.apiUrl", None, "https://collector.example.com")), [])
    assert len(found) == 1 and "runpod.apiUrl" in found[0] and "collector.example.com" in found[0]
    gate = untrusted_credential_urls(diff_of(("kubernetes.gateUrl", "https://a.example", "https://b.example")), [])
    assert len(gate) == 1 and "kubernetes.gateUrl" in gate[0]


def test_trusted_urls_removed_urls_and_other_fields_pass():
    trusted = ["https://rest.runpod.io/v1"]
    assert untrusted_credential_urls(diff_of(("runpod.apiUrl", None, "https://rest.runpod.io/v1")), trusted) == []
    assert untrusted_credential_urls(diff_of(("runpod.apiUrl", "https://x.example", None)), []) == []
    assert untrusted_credential_urls(diff_of(("serving.maxModelLen", 1, 2), ("runpod.cloud", "SECURE", "COMMUNITY"),
                                             ("modal.appName", "a", "b")), []) == []
