"""The RunPod provider without the Pulumi engine: the pod body, diff/replace decisions, error
messages, the shared HTTP retry policy, and the pod lifecycle run directly against the RunPod
REST v2 stand-in (fault injection included)."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT  # noqa: E402

from infra.common.errors import GlmserveError  # noqa: E402
from infra.common.http import (  # noqa: E402
    HttpError,
    RestClient,
    RetryPolicy,
    error_from_response,
    parse_retry_after,
    poll,
)
from infra.engine.render import render  # noqa: E402
from infra.spec.load import spec_for_stack  # noqa: E402
from infra.spec.build import build_spec  # noqa: E402
from providers.runpod.provider import PROVIDER, RunPodProvider  # noqa: E402
from providers.runpod.client import (  # noqa: E402
    Op,
    RunPodClient,
    RunPodError,
    api_url,
    availability_from,
    explain,
    proxy_url,
)
from providers.runpod.outputs import pod_outputs  # noqa: E402
from providers.runpod.pod import create_pod, ensure_state, update_pod, wait_running  # noqa: E402
from providers.runpod.podbody import (  # noqa: E402
    compatible,
    diff_pod,
    drift,
    patch_body,
    render_pod_body,
    variables_from_props,
)
from providers.runpod.volume import diff_volume  # noqa: E402
from tests.standins.runpod import Contract, RunPodStandin  # noqa: E402

STACK, PROJECT = "runpod-prod", "glmserve"
FAST = RetryPolicy(attempts=4, initial_wait=0.01, max_wait=0.05, max_retry_after=0.2, deadline=10, timeout=3)


def spec_with(**runpod):
    base = spec_for_stack(STACK)
    data = base.model_dump(by_alias=True, exclude_none=True)
    data["runpod"] = {**base.options_for("runpod"), **runpod}
    data["policy"] = {}
    return build_spec(data, {}, "node.yaml", "stack.yaml")


def body_for(spec):
    return render_pod_body(PROVIDER.deploy_variables(spec, render(spec), STACK, PROJECT))


# =================================================================== the body

def test_args_are_the_renderer_argv_after_the_image_entrypoint():
    spec = spec_for_stack(STACK)
    command = render(spec)
    body = body_for(spec)
    assert command.image_entrypoint == ["vllm", "serve"]
    assert shlex.split(body["args"]) == command.argv[2:] == command.args_after_entrypoint()
    assert body["args"].startswith("zai-org/GLM-5.2-FP8 ") and "vllm serve" not in body["args"]
    # the speculative config survives shell quoting as one JSON argument
    args = shlex.split(body["args"])
    assert json.loads(args[args.index("--speculative-config") + 1]) == {"method": "mtp", "num_speculative_tokens": 5}


def test_body_fields_and_secrets_redacted_in_the_artifact():
    spec = spec_for_stack(STACK)
    art = json.loads(PROVIDER.artifact(spec, render(spec), STACK, PROJECT))
    assert art["name"] == "glmserve-runpod-prod"
    assert art["gpu"] == {"id": "NVIDIA H200", "count": 8}
    assert art["cloud"] == "SECURE" and art["ports"] == ["8000/http"] and art["disk"] == 100
    assert art["env"]["VLLM_API_KEY"] == "[secret]"
    assert art["env"]["HF_XET_HIGH_PERFORMANCE"] == "1"
    assert art["mounts"]["network"][0]["path"] == "/root/.cache/huggingface"
    assert "glmserve-runpod-prod-huggingface-cache" in art["mounts"]["network"][0]["volumeId"]


def test_body_with_real_values_matches_runpods_create_schema():
    spec = spec_with(volume="persistent", dataCenterIds=["US-KS-2"], allowedCudaVersions=["12.8"])
    v = PROVIDER.deploy_variables(spec, render(spec), STACK, PROJECT)
    v["env"] = {**v["env"], "VLLM_API_KEY": "sk-glm-x" * 4, "HF_TOKEN": "hf_" + "y" * 30}
    body = render_pod_body(v)
    assert body["mounts"] == {"persistent": {"size": 1000, "path": "/root/.cache/huggingface"}}
    assert body["dataCenterIds"] == ["US-KS-2"]
    assert body["gpu"]["allowedCudaVersions"] == ["12.8"]
    check = Contract().check_request("POST", "/v2/pods", {}, {"authorization": "Bearer k"},
                                     json.dumps(body).encode(), "application/json")
    assert check.ok, check.errors
    # the same template drives the artifact and the provider: same keys and values
    props = {key: v[var] for var, key in
             {"name": "name", "image": "image", "gpu_id": "gpuId", "gpu_count": "gpuCount",
              "allowed_cuda_versions": "allowedCudaVersions", "cloud": "cloud", "data_center_ids": "dataCenterIds",
              "args": "args", "disk": "disk", "env": "env", "ports": "ports", "mount_kind": "mountKind",
              "mount_path": "mountPath", "mount_size": "mountSize", "volume_id": "volumeId"}.items()}
    props["gpuCount"] = 8.0          # what Pulumi hands back: numbers are doubles
    again = render_pod_body(variables_from_props(props))
    assert again == body and type(again["gpu"]["count"]) is int


def test_named_secrets_become_runpod_secret_references():
    spec = spec_with()
    data = spec.model_dump(by_alias=True, exclude_none=True)
    data["secrets"] = {"hfToken": {"name": "hf"}, "apiKey": {"name": "glm-key"}}
    spec = build_spec(data, {}, "node.yaml", "stack.yaml")
    env = body_for(spec)["env"]
    assert env["HF_TOKEN"] == "{{ RUNPOD_SECRET_hf }}"
    assert env["VLLM_API_KEY"] == "{{ RUNPOD_SECRET_glm-key }}"


def test_engine_with_an_api_key_file_reads_it_from_env_not_args():
    from infra.engine.render import EngineCommand

    cmd = EngineCommand(engine="sglang", argv=["python3", "-m", "sglang.launch_server", "--port", "8000"],
                        image_entrypoint=[], api_key_env="GLMSERVE_API_KEY", api_key_file_flag="--config")
    args = shlex.split(RunPodProvider.pod_args(cmd))
    assert args == cmd.launch_argv() and args[:2] == ["/bin/sh", "-c"]
    assert args[-5:] == ["python3", "-m", "sglang.launch_server", "--port", "8000"]
    assert "--api-key" not in args


@pytest.mark.parametrize("over,key", [
    ({"cloud": "COMMUNITY"}, "runpod.volume"),
    ({"volume": "persistent", "networkVolumeId": "abc"}, "runpod.networkVolumeId"),
    ({"state": "paused"}, "runpod.state"),
    ({"dataCenterIds": ["nowhere"]}, "runpod.dataCenterIds"),
    ({"bogus": 1}, "runpod.bogus"),
])
def test_invalid_runpod_options_are_clear_errors(over, key):
    with pytest.raises(GlmserveError) as e:
        PROVIDER.validate(spec_with(**over))
    assert key in e.value.render()


def test_api_and_proxy_urls_come_from_option_then_env(monkeypatch):
    monkeypatch.delenv("RUNPOD_API_URL", raising=False)
    assert api_url() == "https://api.runpod.io"
    monkeypatch.setenv("RUNPOD_API_URL", "http://127.0.0.1:1/v2/")
    assert api_url() == "http://127.0.0.1:1"
    assert api_url("https://example.test") == "https://example.test"
    assert proxy_url("https://{pod_id}-{port}.proxy.runpod.net", "abc", 8000) == "https://abc-8000.proxy.runpod.net"


# =================================================================== decisions

def props(**over):
    base = {"name": "glmserve-s", "image": "img:1", "gpuId": "NVIDIA H200", "gpuCount": 8, "cloud": "SECURE",
            "dataCenterIds": ["US-KS-2"], "args": "m --port 8000", "disk": 100, "env": {"K": "v"},
            "ports": ["8000/http"], "mountKind": "network", "mountPath": "/cache", "mountSize": None,
            "volumeId": "vol1", "state": "running", "proxyUrlTemplate": "https://{pod_id}-{port}.x", "port": 8000,
            "apiUrl": "", "startupSeconds": 10, "pollSeconds": 0.01, "allowedCudaVersions": []}
    base.update(over)
    return base


def olds(**over):
    return {**props(), "podId": "p1", "status": "RUNNING", "dataCenterId": "US-KS-2", "cudaVersion": "12.8", **over}


@pytest.mark.parametrize("news,replaces,updates", [
    (props(), [], []),
    (props(args="m --max-model-len 65536"), [], ["args"]),
    (props(image="img:2", env={"K": "w"}), [], ["image", "env"]),
    (props(disk=200, ports=["8000/http", "22/tcp"]), [], ["disk", "ports"]),
    (props(gpuCount=4), ["gpuCount"], []),
    (props(gpuId="NVIDIA B200"), ["gpuId"], []),
    (props(cloud="COMMUNITY", mountKind="persistent", volumeId=None, mountSize=1000),
     ["cloud", "mountKind", "volumeId"], []),
    (props(state="stopped"), [], ["state"]),
    (props(apiUrl="https://other", startupSeconds=99, pollSeconds=3), [], []),
])
def test_diff_decides_patch_or_replace(news, replaces, updates):
    r, u = diff_pod(olds(), news)
    assert r == replaces
    assert [x for x in u if x not in ("mountSize",)] == updates or set(u) >= set(updates)


def test_unknown_immutable_input_in_preview_is_a_replace():
    from pulumi.output import Unknown

    r, _ = diff_pod(olds(), props(volumeId=Unknown()))
    assert r == ["volumeId"]
    # with a network volume the volume decides the data centre: an unknown list is no replace
    r, _ = diff_pod(olds(), props(dataCenterIds=Unknown()))
    assert r == []


def test_placement_preferences_replace_only_a_pod_that_must_move():
    persistent = dict(mountKind="persistent", volumeId=None, mountSize=100)
    o = olds(**persistent)
    assert diff_pod(o, props(**persistent, dataCenterIds=["US-KS-2", "EU-RO-1"]))[0] == []
    assert diff_pod(o, props(**persistent, dataCenterIds=["EU-RO-1"]))[0] == ["dataCenterIds"]
    assert diff_pod(o, props(**persistent, allowedCudaVersions=["12.9"]))[0] == ["allowedCudaVersions"]
    assert diff_pod(o, props(**persistent, allowedCudaVersions=["12.8", "12.9"]))[0] == []


def test_out_of_band_status_drives_an_update():
    assert "status" in diff_pod(olds(status="EXITED"), props())[1]
    assert "status" in diff_pod(olds(status="RUNNING", state="stopped"), props(state="stopped"))[1]
    assert diff_pod(olds(status="EXITED", state="stopped"), props(state="stopped")) == ([], [])


def test_patch_body_has_only_patchable_changes():
    assert patch_body(variables_from_props(olds()), variables_from_props(props(args="x"))) == {"args": "x"}
    p = patch_body(variables_from_props(olds()), variables_from_props(props(mountPath="/w", env={"A": "b"})))
    assert p == {"env": {"A": "b"}, "mounts": {"network": [{"volumeId": "vol1", "path": "/w"}]}}


def test_adoption_compatibility_and_drift():
    body = render_pod_body(variables_from_props(props()))
    pod = {"gpu": {"id": "NVIDIA H200", "count": 8}, "cloud": "SECURE", "dataCenterId": "US-KS-2",
           "mounts": {"network": [{"volumeId": "vol1", "path": "/cache"}]}, "image": "img:1",
           "args": "old", "disk": 100, "env": {"K": "v"}, "ports": ["8000/http"]}
    assert compatible(pod, body) == []
    assert drift(pod, body) == {"args": "m --port 8000"}
    assert compatible({**pod, "gpu": {"id": "NVIDIA H200", "count": 4}}, body) == ["gpu 4 x NVIDIA H200"]
    assert compatible({**pod, "mounts": {"persistent": {"size": 10, "path": "/c"}}}, body)
    assert compatible({**pod, "mounts": {"network": [{"volumeId": "other", "path": "/cache"}]}}, body)


def test_outputs_keep_a_revision_per_container_generation():
    outs = pod_outputs(props(), {"id": "p9", "status": "RUNNING", "cost": 28.72, "dataCenterId": "US-KS-2"}, 3,
                       RunPodClient("http://127.0.0.1:9", "k"))
    assert outs["url"] == "https://p9-8000.x" and outs["revision"] == "p9-3" and outs["costPerHour"] == 28.72


def test_volume_diff():
    o = {"name": "v", "size": 1000, "requestedDataCenter": "", "volumeType": "", "dataCenter": "US-KS-2",
         "type": "STANDARD", "sizeGb": 1000}
    assert diff_volume(o, {**o}) == ([], [])
    assert diff_volume(o, {**o, "size": 1200}) == ([], ["size"])
    assert diff_volume(o, {**o, "requestedDataCenter": "US-KS-2"}) == ([], [])
    assert diff_volume(o, {**o, "requestedDataCenter": "EU-RO-1"})[0] == ["requestedDataCenter"]
    assert diff_volume(o, {**o, "volumeType": "HIGH_PERFORMANCE"})[0] == ["volumeType"]


# =================================================================== error messages

def err(status, detail="d", errors=None, retry_after=None, transport=False, attempts=1):
    e = HttpError("POST", "https://api.runpod.io/v2/pods", status, detail, errors=errors,
                  retry_after=retry_after, transport=transport)
    e.attempts = attempts
    return e


OP = Op("creating pod 'glmserve-s'", "NVIDIA H200", 8, "SECURE", after="Nothing billable was left behind.")


def test_no_capacity_names_gpu_count_cloud_and_next_steps():
    detail = ("There are no longer any instances available with the requested specifications "
              "(8 x NVIDIA H200 in SECURE cloud). Please refresh and try again.")
    msg = str(explain(err(400, detail), OP))
    for part in ("no capacity for 8 x NVIDIA H200 in SECURE cloud", detail, "other data centres",
                 "runpod.cloud: COMMUNITY", "Nothing billable was left behind."):
        assert part in msg
    pinned = Op(OP.what, "NVIDIA H200", 8, "SECURE", data_center="EU-RO-1")
    assert "pins the pod to EU-RO-1" in str(explain(err(400, detail), pinned))


def test_other_errors_carry_detail_and_next_step():
    assert "balance is too low" in str(explain(err(402, "Insufficient balance"), OP))
    assert "add credit" in str(explain(err(402, "Insufficient balance"), OP))
    m = str(explain(err(422, "body invalid", errors=["$.gpu.x: unknown", "$.disk: not int"]), OP))
    assert "bug in glmserve" in m and "$.gpu.x: unknown; $.disk: not int" in m
    m = str(explain(err(429, "slow down", retry_after=30, attempts=6), OP))
    assert "rate-limiting" in m and "after 6 attempts" in m and "Retry-After 30s" in m
    m = str(explain(err(503, "upstream unavailable", attempts=4), OP))
    assert "failed after 4 attempts" in m and "HTTP 503: upstream unavailable" in m and "run the command again" in m
    m = str(explain(err(None, "ConnectError: refused", transport=True, attempts=4), OP))
    assert "no answer: ConnectError: refused" in m
    assert "RUNPOD_API_KEY" in str(explain(err(401, "invalid bearer token"), OP))
    assert "refused the request" in str(explain(err(400, "mounts.persistent and mounts.network"), OP))


def test_error_messages_never_carry_registered_secrets():
    from infra.common.secrets import register

    register("sk-glm-super-secret-value")
    m = str(explain(err(422, "bad env", errors=["$.env.VLLM_API_KEY: sk-glm-super-secret-value"]), OP))
    assert "sk-glm-super-secret-value" not in m and "[secret]" in m


# =================================================================== the HTTP policy

def mock_client(answers, waits=None, policy=FAST):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        a = answers[min(len(calls) - 1, len(answers) - 1)]
        if isinstance(a, Exception):
            raise a
        return a

    c = RestClient("https://api.test", "k", policy=policy, transport=httpx.MockTransport(handler),
                   sleep=(waits.append if waits is not None else None))
    return c, calls


def problem(status, detail, headers=None):
    return httpx.Response(status, json={"title": "t", "status": status, "detail": detail},
                          headers={"content-type": "application/problem+json", **(headers or {})})


def test_retries_5xx_and_connection_errors_then_succeeds():
    c, calls = mock_client([problem(503, "busy"), httpx.ConnectError("refused"), httpx.Response(200, json={"ok": 1})])
    assert c.request("GET", "/v2/pods").json() == {"ok": 1}
    assert len(calls) == 3


def test_honours_retry_after_on_429():
    waits = []
    c, calls = mock_client([problem(429, "slow", {"Retry-After": "7"}), httpx.Response(200, json={})], waits,
                           policy=RetryPolicy(attempts=3, initial_wait=0.01, max_retry_after=120))
    c.request("GET", "/v2/pods")
    assert waits == [7.0] and len(calls) == 2


def test_retry_after_is_capped_and_attempts_are_bounded():
    waits = []
    c, calls = mock_client([problem(429, "slow", {"Retry-After": "3600"})], waits,
                           policy=RetryPolicy(attempts=3, initial_wait=0.01, max_retry_after=5))
    with pytest.raises(HttpError) as e:
        c.request("GET", "/v2/pods")
    assert waits == [5.0, 5.0] and len(calls) == 3 and e.value.attempts == 3 and e.value.status == 429


def test_backoff_grows_and_is_bounded():
    waits = []
    c, _ = mock_client([problem(500, "x")], waits, policy=RetryPolicy(attempts=5, initial_wait=1, max_wait=3))
    with pytest.raises(HttpError):
        c.request("GET", "/v2/pods")
    assert len(waits) == 4 and all(w <= 3 + 1e-9 for w in waits) and waits[0] >= 1


def test_4xx_is_not_retried_and_post_is_sent_once():
    c, calls = mock_client([problem(400, "bad")])
    with pytest.raises(HttpError) as e:
        c.request("GET", "/v2/pods")
    assert len(calls) == 1 and e.value.detail == "bad"
    c, calls = mock_client([problem(503, "x"), httpx.Response(201, json={})])
    with pytest.raises(HttpError):
        c.request("POST", "/v2/pods", json={})
    assert len(calls) == 1


def test_error_parsing():
    req = httpx.Request("GET", "https://api.test/v2/pods")
    e = error_from_response(httpx.Response(422, request=req, json={"title": "Unprocessable", "status": 422,
                                                                   "detail": "invalid", "errors": ["$.a: b"]}))
    assert (e.status, e.detail, e.errors) == (422, "invalid", ["$.a: b"])
    e = error_from_response(httpx.Response(502, request=req, text="<html><body>Bad Gateway</body></html>"))
    assert "HTML page" in e.detail and e.retryable
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None


def test_poll_returns_last_value_and_whether_it_was_reached():
    seq = iter(range(100))
    value, done = poll(lambda: next(seq), until=lambda v: v >= 3, interval=0.001, timeout=5)
    assert (value, done) == (3, True)
    value, done = poll(lambda: 0, until=lambda v: v == 1, interval=0.01, timeout=0.05)
    assert done is False


def test_policy_from_env(monkeypatch):
    monkeypatch.setenv("GLMSERVE_HTTP_ATTEMPTS", "3")
    monkeypatch.setenv("GLMSERVE_HTTP_BACKOFF_MAX", "0.5")
    p = RetryPolicy.from_env()
    assert p.attempts == 3 and p.max_wait == 0.5 and p.initial_wait == 1.0


# =================================================================== lifecycle on the stand-in

KEY = "rp-unit-key"


@pytest.fixture
def rp():
    with RunPodStandin(api_key=KEY, provisioning_delay=0.05, starting_delay=0.05) as s:
        yield s
        assert s.errors == [] and s.contract_violations == []


@pytest.fixture
def client(rp):
    with RunPodClient(rp.url, KEY, policy=FAST, log=lambda m: None) as c:
        yield c


def pod_props(rp, **over):
    vol = rp.seed_volume("glmserve-s-cache", 100, "US-KS-2")
    return props(**{"volumeId": vol["id"], "image": "vllm/vllm-openai:v0.33.0", "args": "m --port 8000",
                    "env": {"VLLM_API_KEY": "sk-glm-abcdef", "HF_TOKEN": "hf_abcdefgh"},
                    "dataCenterIds": ["US-KS-2"], "startupSeconds": 5, "pollSeconds": 0.02, **over})


LOGS: list[str] = []


def quiet(msg: str) -> None:
    LOGS.append(msg)


def test_create_waits_for_running_and_reports_cost(rp, client):
    p = pod_props(rp)
    pod, availability, adopted = create_pod(client, p, quiet, quiet)
    assert pod["status"] == "RUNNING" and not adopted and availability.level in ("LOW", "MEDIUM", "HIGH")
    assert pod["cost"] == pytest.approx(3.59 * 8) and availability.price_per_gpu_hour == 3.59
    [post] = rp.requests("POST", "/v2/pods")
    assert post.json["env"]["HF_TOKEN"] == "hf_abcdefgh"


@pytest.mark.parametrize("fault", [
    lambda rp: rp.reset_connection("POST", "/v2/pods", after=True),
    lambda rp: rp.fail("POST", "/v2/pods", 503, after=True),
    lambda rp: rp.fail("POST", "/v2/pods", 502, after=True, html=True),
    lambda rp: rp.delay("POST", "/v2/pods", 5.0, after=True),          # longer than the client's timeout
], ids=["reset-after-create", "503-after-create", "html-502-after-create", "answer-too-late"])
def test_a_lost_answer_to_create_is_adopted_not_duplicated(rp, fault):
    fault(rp)
    with RunPodClient(rp.url, KEY, policy=RetryPolicy(attempts=4, initial_wait=0.01, max_wait=0.05, timeout=1),
                      log=quiet) as c:
        pod, _, adopted = create_pod(c, pod_props(rp), quiet, quiet)
    assert adopted and [p["id"] for p in rp.live_pods()] == [pod["id"]]
    assert len(rp.requests("POST", "/v2/pods")) == 1


def test_an_orphan_from_a_killed_run_is_adopted_and_patched(rp, client):
    p = pod_props(rp)
    orphan = client.create_pod_once(render_pod_body(variables_from_props({**p, "args": "older args"})))
    pod, _, adopted = create_pod(client, p, quiet, quiet)
    assert adopted and pod["id"] == orphan["id"] and rp.pod(orphan["id"])["args"] == "m --port 8000"
    assert len(rp.requests("POST", "/v2/pods")) == 1


def test_an_incompatible_orphan_is_terminated_not_left_billing(rp, client):
    p = pod_props(rp)
    orphan = client.create_pod_once(render_pod_body(variables_from_props({**p, "gpuCount": 4})))
    pod, _, adopted = create_pod(client, p, quiet, quiet)
    assert not adopted and pod["id"] != orphan["id"]
    assert rp.pod(orphan["id"])["status"] == "TERMINATED"
    assert [x["id"] for x in rp.live_pods()] == [pod["id"]]


@pytest.mark.parametrize("break_it,expected", [
    (lambda rp: rp.fail("GET", "/v2/pods/*", 500, times=None), "HTTP 500"),
    (lambda rp: rp.set_pod_timing(rp.live_pods()[0]["id"], starting_delay=float("inf")), "is not RUNNING after"),
    (lambda rp: rp.error_out_of_band(rp.live_pods()[0]["id"]), "went to ERROR"),
    (lambda rp: rp.terminate_out_of_band(rp.live_pods()[0]["id"]), "disappeared"),
], ids=["get-fails", "never-running", "error", "terminated"])
def test_a_pod_that_does_not_come_up_is_terminated_before_the_error(rp, client, break_it, expected):
    p = pod_props(rp, startupSeconds=1)
    real_create = client.create_pod_once

    def create_then_break(body):
        pod = real_create(body)
        break_it(rp)
        return pod

    client.create_pod_once = create_then_break
    with pytest.raises(RunPodError) as e:
        create_pod(client, p, quiet, quiet)
    assert expected in str(e.value)
    assert rp.live_pods() == []
    assert "nothing bills" in str(e.value) or "disappeared" in str(e.value)


def test_when_terminating_fails_too_the_error_says_the_pod_may_bill(rp, client):
    p = pod_props(rp)
    rp.fail("GET", "/v2/pods/*", 500, times=None)
    rp.fail("DELETE", "/v2/pods/*", 500, times=None)
    with pytest.raises(RunPodError) as e:
        create_pod(client, p, quiet, quiet)
    assert "may still bill" in str(e.value) and "adopts the pod by name" in str(e.value)


@pytest.mark.parametrize("inject,expected", [
    (lambda rp: rp.no_capacity(), "no capacity for 8 x NVIDIA H200 in SECURE cloud"),
    (lambda rp: rp.insufficient_balance(), "balance is too low"),
    (lambda rp: rp.fail("POST", "/v2/pods", 422, detail="$.x: unknown"), "bug in glmserve"),
    (lambda rp: rp.fail("POST", "/v2/pods", 503, times=None), "failed after 4 attempts"),
    (lambda rp: rp.reset_connection("POST", "/v2/pods", times=None), "no answer"),
    (lambda rp: rp.rate_limit("POST", "/v2/pods", retry_after=0, times=None), "rate-limiting"),
    (lambda rp: rp.fail("GET", "/v2/pods", 503, times=None), "failed after 4 attempts"),
], ids=["400-capacity", "402", "422", "503", "reset", "429", "list-503"])
def test_failing_creates_leave_nothing_and_explain(rp, client, inject, expected):
    inject(rp)
    with pytest.raises(RunPodError) as e:
        create_pod(client, pod_props(rp), quiet, quiet)
    assert expected in str(e.value)
    assert rp.live_pods() == []


def test_real_no_capacity_from_stock(rp, client):
    for dc in ("US-KS-2", "EU-RO-1"):
        rp.set_stock("NVIDIA H200", dc, 0)
    warnings = []
    with pytest.raises(RunPodError) as e:
        create_pod(client, pod_props(rp), quiet, warnings.append)
    assert "no capacity for 8 x NVIDIA H200" in str(e.value) and "There are no longer any instances" in str(e.value)
    assert any("availability NONE" in w for w in warnings)


def test_fail_on_no_availability_sends_no_create(rp, client):
    rp.set_stock("NVIDIA H200", "US-KS-2", 0)
    rp.set_stock("NVIDIA H200", "EU-RO-1", 0)
    with pytest.raises(RunPodError) as e:
        create_pod(client, pod_props(rp, failOnNoAvailability=True), quiet, quiet)
    assert "refusing to create the pod" in str(e.value)
    assert rp.requests("POST", "/v2/pods") == []


def test_update_patches_stops_and_starts(rp, client):
    p = pod_props(rp)
    pod, _, _ = create_pod(client, p, quiet, quiet)
    o = pod_outputs(p, pod, 1, client)
    new = {**p, "args": "m --port 8000 --max-model-len 65536"}
    pod2, gen = update_pod(client, pod["id"], o, new, quiet)
    assert gen == 2 and pod2["status"] == "RUNNING"
    [patch] = rp.requests("PATCH")
    assert patch.json == {"args": new["args"]}

    o = pod_outputs(new, pod2, gen, client)
    pod3, gen = update_pod(client, pod["id"], o, {**new, "state": "stopped"}, quiet)
    assert pod3["status"] == "EXITED" and gen == 2 and pod3["cost"] == 0.0
    o = pod_outputs({**new, "state": "stopped"}, pod3, gen, client)
    pod4, gen = update_pod(client, pod["id"], o, new, quiet)
    assert pod4["status"] == "RUNNING" and gen == 3


def test_actions_are_idempotent_under_lost_answers(rp, client):
    pod, _, _ = create_pod(client, pod_props(rp), quiet, quiet)
    rp.fail("POST", "/v2/pods/*/action", 503, after=True)
    stopped = ensure_state(client, pod["id"], "stop", OP)
    assert stopped["status"] == "EXITED"
    assert [r.status for r in rp.requests("POST", "/v2/pods/*/action")] == [503]


def test_start_without_free_gpus_explains(rp, client):
    pod, _, _ = create_pod(client, pod_props(rp), quiet, quiet)
    ensure_state(client, pod["id"], "stop", OP)
    rp.set_stock("NVIDIA H200", "US-KS-2", 0)
    with pytest.raises(RunPodError) as e:
        ensure_state(client, pod["id"], "start", OP)
    assert "no free NVIDIA H200" in str(e.value) and "--replace" in str(e.value)


def test_delete_is_idempotent(rp, client):
    pod, _, _ = create_pod(client, pod_props(rp), quiet, quiet)
    rp.fail("DELETE", "/v2/pods/*", 503, after=True)
    assert client.delete_pod(pod["id"]) is False          # handled, answer lost; the retry sees 404
    assert client.delete_pod(pod["id"]) is False
    assert rp.live_pods() == []


def test_wait_running_does_not_need_http_ports_in_runtime():
    with RunPodStandin(api_key=KEY, provisioning_delay=0.02, starting_delay=0.02,
                       runtime_lists_http_ports=False) as s:
        with RunPodClient(s.url, KEY, policy=FAST) as c:
            vol = s.seed_volume("v", 10, "US-KS-2")
            created = c.create_pod_once(render_pod_body(variables_from_props(props(volumeId=vol["id"]))))
            pod = wait_running(c, created["id"], 5, 0.01, quiet)
            assert pod["status"] == "RUNNING" and pod["runtime"]["ports"] == []


def test_catalog_availability_is_parsed():
    a = availability_from({"availability": "LOW", "price": {"secure": 3.59, "community": 3.29},
                           "dataCenters": [{"id": "A", "availability": "LOW"}, {"id": "B", "availability": "HIGH"}]},
                          "NVIDIA H200", 8, "SECURE")
    assert a.data_centers[0] == ("B", "HIGH") and a.price_per_hour == pytest.approx(28.72)
    assert "8 x NVIDIA H200 in SECURE cloud: LOW" in a.describe()


def test_update_failures_keep_the_pod_in_state_and_say_so(rp, client):
    p = pod_props(rp, startupSeconds=0.3)
    pod, _, _ = create_pod(client, p, quiet, quiet)
    o = pod_outputs(p, pod, 1, client)
    rp.set_pod_timing(pod["id"], starting_delay=float("inf"))
    with pytest.raises(RunPodError) as e:
        update_pod(client, pod["id"], o, {**p, "args": "m --port 8000 --enforce-eager"}, quiet)
    assert "is not RUNNING after" in str(e.value) and "kept in state" in str(e.value)
    assert [x["id"] for x in rp.live_pods()] == [pod["id"]]
    rp.terminate_out_of_band(pod["id"])
    with pytest.raises(RunPodError) as e:
        update_pod(client, pod["id"], o, {**p, "args": "x"}, quiet)
    assert "no longer exists" in str(e.value) and "refresh" in str(e.value)


def test_dynamic_provider_read_and_delete(rp, client, monkeypatch):
    from providers.runpod.resources import PodProvider

    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    p = pod_props(rp, apiUrl=rp.url)
    pod, _, _ = create_pod(client, p, quiet, quiet)
    outs = pod_outputs(p, pod, 1, client)
    provider = PodProvider()
    assert provider.read(pod["id"], outs).outs["status"] == "RUNNING"
    rp.stop_out_of_band(pod["id"])
    read = provider.read(pod["id"], outs)
    assert read.id == pod["id"] and read.outs["status"] == "EXITED" and read.outs["costPerHour"] == 0.0
    assert "status" in provider.diff(pod["id"], read.outs, p).replaces + diff_pod(read.outs, p)[1]
    rp.terminate_out_of_band(pod["id"])
    assert provider.read(pod["id"], outs).id == ""
    provider.delete(pod["id"], outs)              # already gone: fine


def test_invalid_api_key_option_is_named_but_never_echoed():
    import copy

    import yaml

    from infra.config import providers
    from infra.common.errors import GlmserveError
    from infra.spec.build import build_spec

    node = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())
    spec = build_spec(copy.deepcopy(node), {"provider": "runpod", "runpod": {"apiKey": ["rpa_PLANTED_0123456789"]}},
                      "stacks/node.yaml", "stacks/Pulumi.t.yaml")
    with pytest.raises(GlmserveError) as e:
        providers.get("runpod").validate(spec)
    assert "runpod.apiKey" in str(e.value) and "rpa_PLANTED" not in str(e.value)
