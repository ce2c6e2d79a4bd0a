"""RunPod ownership and crash safety (issue 12) against the REST v2 stand-in: identity, not names;
where a resource lives is part of its state; nothing between the create and the state write can
lose a resource."""
from __future__ import annotations

import pytest

from infra.common.http import RetryPolicy
from providers.runpod.client import RunPodClient, RunPodError
from providers.runpod.options import RunPodOptions
from providers.runpod.outputs import pod_outputs, volume_outputs
from providers.runpod.ownership import OWNER_ENV, key_fingerprint
from providers.runpod.pod import create_pod, delete_pod, read_pod
from providers.runpod.podbody import render_pod_body, variables_from_props
from providers.runpod.volume import create_volume, delete_volume, read_volume
from tests.standins.runpod import RunPodStandin

KEY = "rp-owner-key"
OTHER_KEY = "rp-other-account-key"
OWNER = "gs0123456789abcdef0123"
THEIRS = "gsfedcba9876543210fedc"
FAST = RetryPolicy(attempts=4, initial_wait=0.01, max_wait=0.05, max_retry_after=0.2, deadline=10, timeout=3)


def quiet(_msg: str) -> None:
    pass


@pytest.fixture
def rp():
    with RunPodStandin(api_key=KEY, provisioning_delay=0.02, starting_delay=0.02) as s:
        yield s
        assert s.errors == [] and s.contract_violations == []


def client_for(rp, key=KEY, url=None) -> RunPodClient:
    return RunPodClient(url or rp.url, key, policy=FAST, log=quiet)


@pytest.fixture
def client(rp):
    with client_for(rp) as c:
        yield c


def pod_props(rp, **over):
    vol = rp.seed_volume(f"glmserve-s-cache-{OWNER}", 100, "US-KS-2")
    base = {"name": "glmserve-s", "image": "vllm/vllm-openai:v0.33.0", "gpuId": "NVIDIA H200", "gpuCount": 8,
            "cloud": "SECURE", "dataCenterIds": ["US-KS-2"], "args": "m --port 8000", "disk": 100,
            "env": {"VLLM_API_KEY": "sk-glm-abcdef"}, "ports": ["8000/http"], "mountKind": "network",
            "mountPath": "/cache", "mountSize": None, "volumeId": vol["id"], "state": "running",
            "proxyUrlTemplate": "https://{pod_id}-{port}.x", "port": 8000, "apiUrl": rp.url,
            "startupSeconds": 5, "pollSeconds": 0.01, "allowedCudaVersions": [], "owner": OWNER}
    return {**base, **over}


def vol_props(**over):
    return {"name": "glmserve-s-cache", "size": 100, "requestedDataCenter": "US-KS-2", "volumeType": "",
            "gpuId": "NVIDIA H200", "gpuCount": 8, "owner": OWNER, "podName": "glmserve-s", **over}


def seed_foreign_pod(rp, props, owner):
    body = render_pod_body(variables_from_props({**props, "owner": owner}))
    return rp.seed_pod(body)


# =================================================================== identity, not names

def test_the_pod_carries_the_owner_id_and_a_killed_runs_pod_is_adopted(rp, client):
    p = pod_props(rp)
    leftover = rp.seed_pod(render_pod_body(variables_from_props(p)))
    pod, _, adopted = create_pod(client, p, quiet, quiet)
    assert adopted and pod["id"] == leftover["id"] and pod["env"][OWNER_ENV] == OWNER
    assert len(rp.requests("POST", "/v2/pods")) == 0


@pytest.mark.parametrize("owner", [THEIRS, None], ids=["other-owner", "no-owner"])
def test_a_same_named_pod_of_someone_else_stops_up_untouched(rp, client, owner):
    p = pod_props(rp)
    theirs = seed_foreign_pod(rp, p, owner)
    with pytest.raises(RunPodError) as e:
        create_pod(client, p, quiet, quiet)
    msg = str(e.value)
    assert theirs["id"] in msg and "glmserve-s" in msg and "runpod.podName" in msg and "nothing was created" in msg
    assert [x["id"] for x in rp.live_pods()] == [theirs["id"]]
    assert rp.requests("POST", "/v2/pods") == [] and rp.requests("DELETE") == [] and rp.requests("PATCH") == []


def test_destroy_never_terminates_a_pod_of_another_owner(rp, client):
    p = pod_props(rp)
    theirs = seed_foreign_pod(rp, p, THEIRS)
    outs = pod_outputs(p, theirs, 1, client)          # state that (wrongly) points at their pod
    with pytest.raises(RunPodError) as e:
        delete_pod(client, theirs["id"], outs)
    assert THEIRS in str(e.value) and "kept in state" in str(e.value)
    assert rp.pod(theirs["id"])["status"] != "TERMINATED"


def test_the_volume_name_carries_the_owner_and_a_foreign_same_named_volume_stops_up(rp, client):
    big = rp.seed_volume("glmserve-s-cache", 500, "US-KS-2")               # someone's, same name
    with pytest.raises(RunPodError) as e:
        create_volume(client, vol_props(), quiet)
    assert big["id"] in str(e.value) and "nothing was created" in str(e.value)
    assert rp.requests("POST", "/v2/network-volumes") == []
    assert [v["id"] for v in rp.volumes()] == [big["id"]] and rp.volume(big["id"])["size"] == 500


def test_another_instance_of_the_same_stack_stops_the_second_before_it_creates_anything(rp, client):
    first = create_volume(client, vol_props(owner=THEIRS), quiet)
    with pytest.raises(RunPodError) as e:
        create_volume(client, vol_props(), quiet)
    assert first["id"] in str(e.value) and THEIRS in str(e.value)
    assert len(rp.volumes()) == 1 and len(rp.requests("POST", "/v2/network-volumes")) == 1


def test_a_volume_whose_create_answer_was_lost_is_adopted_by_identity(rp, client):
    rp.reset_connection("POST", "/v2/network-volumes", after=True)
    vol = create_volume(client, vol_props(), quiet)
    assert [v["id"] for v in rp.volumes()] == [vol["id"]] and vol["name"] == f"glmserve-s-cache-{OWNER}"
    assert len(rp.requests("POST", "/v2/network-volumes")) == 1


def test_a_volume_create_that_finally_fails_after_its_answers_were_lost_leaves_nothing(rp, client):
    rp.reset_connection("POST", "/v2/network-volumes", after=True)
    rp.reset_connection("GET", "/v2/network-volumes", times=4)
    with pytest.raises(RunPodError):
        create_volume(client, vol_props(), quiet)
    assert rp.volumes() == []


def test_destroy_never_deletes_a_volume_without_this_stacks_owner_id(rp, client):
    big = rp.seed_volume("glmserve-s-cache", 500, "US-KS-2")
    outs = volume_outputs(vol_props(), big, client)
    with pytest.raises(RunPodError) as e:
        delete_volume(client, big["id"], outs)
    assert "kept in state" in str(e.value) and rp.volume(big["id"]) is not None


# =================================================================== where a resource lives

@pytest.fixture
def created(rp, client):
    p = pod_props(rp)
    pod, _, _ = create_pod(client, p, quiet, quiet)
    return pod_outputs(p, pod, 1, client)


def test_the_account_is_kept_in_state_without_the_key(rp, created):
    assert created["account"] == {"apiUrl": rp.url, "keyFingerprint": key_fingerprint(KEY)}
    assert KEY not in repr(created["account"])


def test_refresh_with_another_accounts_key_keeps_the_pod(rp, created):
    rp.add_account(OTHER_KEY)
    with client_for(rp, OTHER_KEY) as other:
        with pytest.raises(RunPodError) as e:
            read_pod(other, created["podId"], created)
        with pytest.raises(RunPodError):
            delete_pod(other, created["podId"], created)
    assert "another account" in str(e.value) and "kept in state" in str(e.value)
    assert OTHER_KEY not in str(e.value) and KEY not in str(e.value)
    assert rp.pod(created["podId"])["status"] == "RUNNING"


def test_refresh_against_another_api_url_keeps_the_pod(rp, created):
    with RunPodStandin(api_key=KEY) as elsewhere, client_for(rp, url=elsewhere.url) as c:
        with pytest.raises(RunPodError) as e:
            read_pod(c, created["podId"], created)
        with pytest.raises(RunPodError):
            delete_pod(c, created["podId"], created)
        assert elsewhere.requests("DELETE") == []
    assert rp.url in str(e.value) and "kept in state" in str(e.value)


def test_an_auth_error_is_no_evidence_of_anything(rp, created):
    with client_for(rp, "revoked-key") as c, pytest.raises(RunPodError) as e:
        read_pod(c, created["podId"], created)
    assert "HTTP 401" in str(e.value)


def test_a_rotated_key_of_the_same_account_still_sees_the_pod(rp, created):
    with client_for(rp) as c:
        assert read_pod(c, created["podId"], {**created, "account": {**created["account"], "keyFingerprint": "x"}})


def test_a_pod_leaves_state_only_when_the_same_account_shows_it_is_gone(rp, client, created):
    rp.terminate_out_of_band(created["podId"])
    rp.fail("GET", "/v2/pods", 503, times=10)
    with pytest.raises(RunPodError):
        read_pod(client, created["podId"], created)              # 404, but listing failed: no evidence
    rp.clear_faults()
    assert read_pod(client, created["podId"], created) is None
    assert delete_pod(client, created["podId"], created) is False


def test_a_volume_leaves_state_only_on_evidence_from_the_same_account(rp, client):
    vol = create_volume(client, vol_props(), quiet)
    outs = volume_outputs(vol_props(), vol, client)
    rp.add_account(OTHER_KEY)
    with client_for(rp, OTHER_KEY) as other, pytest.raises(RunPodError):
        read_volume(other, vol["id"], outs)
    assert read_volume(client, vol["id"], outs)["id"] == vol["id"]
    assert delete_volume(client, vol["id"], outs) and read_volume(client, vol["id"], outs) is None


# =================================================================== nothing lost between create and state

@pytest.mark.parametrize("template", ["https://{pod_id}-{prot}.x", "https://{0}.x", "https://{pod_id.x}", "https://{"])
def test_a_bad_proxy_url_template_fails_before_anything_is_created(rp, client, template):
    with pytest.raises(RunPodError) as e:
        create_pod(client, pod_props(rp, proxyUrlTemplate=template), quiet, quiet)
    assert "Nothing was created" in str(e.value) and "{pod_id}" in str(e.value)
    assert rp.requests("POST") == [] and rp.live_pods() == []


@pytest.mark.parametrize("template", ["https://{pod_id}-{prot}.x", "https://{0}/{pod_id}", "https://{pod_id.x}"])
def test_the_option_names_an_unknown_template_field(template):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as e:
        RunPodOptions.model_validate({"proxyUrlTemplate": template})
    assert "{pod_id}" in str(e.value)


def test_outputs_never_fail_on_odd_answers(rp, client):
    p = pod_props(rp)
    outs = pod_outputs(p, {"id": "p1", "cost": None}, 1, client)
    assert outs["costPerHour"] == 0.0 and outs["url"] == "https://p1-8000.x"
