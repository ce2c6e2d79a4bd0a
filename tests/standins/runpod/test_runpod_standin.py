"""The RunPod REST v2 stand-in follows RunPod's OpenAPI document and simulates pods, volumes,
the GPU catalog and the faults a provider has to survive."""
from __future__ import annotations

import time
from urllib.parse import unquote

import httpx
import openai
import pytest

from tests.helpers import wait_for
from tests.standins.engine import DEFAULT_MODEL, EngineStandin
from tests.standins.runpod import Contract, RunPodStandin

KEY = "rp-test-key"
ENGINE_KEY = "engine-key"
CONTRACT = Contract()


def _validate_response(response: httpx.Response) -> None:
    """Client-side check, independent of the stand-in's own: every answer must fit the document."""
    response.read()
    if response.headers.get("content-type", "").startswith("text/html"):
        return  # an injected gateway page, deliberately outside the contract
    req = response.request
    query = {}
    for k, v in req.url.params.multi_items():
        query.setdefault(k, []).append(v)
    errors = CONTRACT.response_errors(req.method, unquote(req.url.path), None, query, response.status_code,
                                      dict(response.headers), response.content,
                                      response.headers.get("content-type", ""))
    assert not errors, f"{req.method} {req.url.path} -> {response.status_code} violates the document: {errors}"


@pytest.fixture
def engine():
    with EngineStandin(api_key=ENGINE_KEY, startup_delay=0.05) as e:
        yield e


@pytest.fixture
def rp(engine):
    standin = RunPodStandin(api_key=KEY, engine=engine, provisioning_delay=0.05, starting_delay=0.05)
    with standin:
        yield standin
        assert standin.errors == []
        assert standin.contract_violations == []


@pytest.fixture
def client(rp):
    with httpx.Client(base_url=rp.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5,
                      event_hooks={"response": [_validate_response]}) as c:
        yield c


def pod_body(**over):
    body = {
        "name": "glmserve-runpod-prod",
        "image": "vllm/vllm-openai:v0.23.0",
        "gpu": {"id": "NVIDIA H200", "count": 8},
        "cloud": "SECURE",
        "ports": ["8000/http"],
        "env": {"VLLM_API_KEY": ENGINE_KEY, "HF_HOME": "/models/hf"},
        "args": "--model zai-org/GLM-5.2-FP8 --tensor-parallel-size 8 --port 8000",
        "disk": 200,
    }
    body.update(over)
    return body


def status_of(client, pod_id):
    return client.get(f"/v2/pods/{pod_id}").json()["status"]


# ------------------------------------------------------------------------------------ lifecycle
def test_full_pod_lifecycle_with_network_volume(rp, client, engine):
    vol = client.post("/v2/network-volumes", json={"name": "glm-weights", "size": 800, "dataCenter": "EU-RO-1"})
    assert vol.status_code == 201
    vol = vol.json()
    assert vol["dataCenter"] == "EU-RO-1" and vol["size"] == 800 and vol["type"] in ("STANDARD", "HIGH_PERFORMANCE")

    body = pod_body(mounts={"network": [{"volumeId": vol["id"], "path": "/models"}]})
    # Hold the pod in PROVISIONING until the checks below ran: a loaded machine must not race it.
    rp.provisioning_delay = 3600.0
    r = client.post("/v2/pods", json=body)
    assert r.status_code == 201, r.text
    pod = r.json()
    pid = pod["id"]
    assert pod["status"] == "PROVISIONING" and pod["runtime"] is None and pod["startedAt"] is None
    assert pod["dataCenterId"] == "EU-RO-1"          # the volume's data centre
    assert pod["cost"] == pytest.approx(3.59 * 8)
    assert pod["actions"] == ["stop", "terminate"]
    assert pod["args"] == body["args"] and pod["env"] == body["env"] and pod["image"] == body["image"]
    assert pod["mounts"] == {"network": [{"volumeId": vol["id"], "path": "/models"}]}

    # the proxy does not reach a pod that is still provisioning
    assert httpx.get(rp.proxy_url(pid) + "/health").status_code == 502
    assert status_of(client, pid) == "PROVISIONING"
    rp.set_pod_timing(pid, provisioning_delay=0.05)

    seen = []

    def running():
        s = status_of(client, pid)
        if not seen or seen[-1] != s:
            seen.append(s)
        return s == "RUNNING"

    wait_for(running)
    # The create answer said PROVISIONING; polls (however late a loaded machine makes them)
    # only ever see the states in order, ending RUNNING.
    order = ["PROVISIONING", "STARTING", "RUNNING"]
    assert seen[-1] == "RUNNING" and set(seen) <= set(order)
    assert seen == sorted(seen, key=order.index)
    pod = client.get(f"/v2/pods/{pid}").json()
    assert 8000 in [p["private"] for p in pod["runtime"]["ports"]]
    assert pod["startedAt"] is not None and pod["actions"] == ["stop", "restart", "terminate"]

    # readiness through the per-pod proxy URL reaches the engine stand-in
    url = rp.proxy_url(pid)
    assert url == f"{engine.url}/pods/{pid}-8000"
    wait_for(lambda: httpx.get(url + "/health").status_code == 200)
    models = openai.OpenAI(base_url=url + "/v1", api_key=ENGINE_KEY).models.list()
    assert [m.id for m in models.data] == [DEFAULT_MODEL]

    # PATCH args: applied, and the container restarts
    r = client.patch(f"/v2/pods/{pid}", json={"args": "--model zai-org/GLM-5.2-FP8 --max-model-len 65536"})
    assert r.status_code == 200
    assert r.json()["args"].endswith("65536") and r.json()["status"] == "STARTING"
    wait_for(lambda: status_of(client, pid) == "RUNNING")

    # stop -> EXITED, no cost, no runtime, proxy down
    r = client.post(f"/v2/pods/{pid}/action", json={"action": "stop"})
    assert r.status_code == 200 and r.json()["status"] == "EXITED"
    assert r.json()["cost"] == 0.0 and r.json()["runtime"] is None and r.json()["actions"] == ["start", "terminate"]
    assert httpx.get(url + "/health").status_code == 502

    # start -> back to RUNNING
    r = client.post(f"/v2/pods/{pid}/action", json={"action": "start"})
    assert r.status_code == 200 and r.json()["status"] in ("PROVISIONING", "STARTING")
    wait_for(lambda: status_of(client, pid) == "RUNNING")

    # restart is only valid while RUNNING; start is not
    assert client.post(f"/v2/pods/{pid}/action", json={"action": "start"}).status_code == 409
    r = client.post(f"/v2/pods/{pid}/action", json={"action": "restart"})
    assert r.status_code == 200 and r.json()["status"] == "STARTING"

    # terminate -> 204, then 404 and gone from the list
    r = client.post(f"/v2/pods/{pid}/action", json={"action": "terminate"})
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/v2/pods/{pid}").status_code == 404
    assert client.get("/v2/pods").json() == {"pods": []}
    assert [p["status"] for p in rp.pods()] == ["TERMINATED"]
    assert rp.live_pods() == []

    # the volume outlives the pod and can now be deleted
    assert client.delete(f"/v2/network-volumes/{vol['id']}").status_code == 204
    assert rp.volumes() == []


def test_delete_pod_then_404(rp, client):
    pid = client.post("/v2/pods", json=pod_body()).json()["id"]
    assert [p["id"] for p in client.get("/v2/pods").json()["pods"]] == [pid]
    assert client.delete(f"/v2/pods/{pid}").status_code == 204
    assert client.get(f"/v2/pods/{pid}").status_code == 404
    assert client.delete(f"/v2/pods/{pid}").status_code == 404
    assert client.post(f"/v2/pods/{pid}/action", json={"action": "stop"}).status_code == 404


def test_deleted_pod_can_be_reported_as_terminated(engine):
    with RunPodStandin(api_key=KEY, deleted_pod_visibility="terminated", provisioning_delay=0.01,
                       starting_delay=0.01) as rp, \
            httpx.Client(base_url=rp.url, headers={"Authorization": f"Bearer {KEY}"},
                         event_hooks={"response": [_validate_response]}) as c:
        pid = c.post("/v2/pods", json=pod_body()).json()["id"]
        c.delete(f"/v2/pods/{pid}")
        pod = c.get(f"/v2/pods/{pid}").json()
        assert pod["status"] == "TERMINATED" and pod["cost"] == 0.0 and pod["actions"] == []


def test_runtime_without_http_ports_option(engine):
    """RunPod's own example lists only tcp ports in runtime.ports; a provider must cope."""
    with RunPodStandin(api_key=KEY, runtime_lists_http_ports=False, provisioning_delay=0.0,
                       starting_delay=0.0) as rp, \
            httpx.Client(base_url=rp.url, headers={"Authorization": f"Bearer {KEY}"}) as c:
        pid = c.post("/v2/pods", json=pod_body(ports=["8000/http", "22/tcp"])).json()["id"]
        pod = c.get(f"/v2/pods/{pid}").json()
        assert pod["status"] == "RUNNING"
        assert [p["private"] for p in pod["runtime"]["ports"]] == [22]
        assert pod["ssh"]["direct"]["port"] == pod["runtime"]["ports"][0]["public"]


# ------------------------------------------------------------------------------------ validation
def test_unknown_body_key_is_422_with_field_errors(rp, client):
    r = client.post("/v2/pods", json=pod_body(bogus=1))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 422 and problem["errors"] == ["$: additional properties 'bogus' not allowed"]
    assert rp.live_pods() == []

    # RunPod v1 / GraphQL names are not v2 fields
    r = client.post("/v2/pods", json=pod_body(imageName="x", dockerArgs="--x", gpuCount=8))
    assert r.status_code == 422
    assert r.json()["errors"] == ["$: additional properties 'dockerArgs', 'gpuCount', 'imageName' not allowed"]

    r = client.post("/v2/pods", json=pod_body(gpu={"id": "NVIDIA H200", "count": 8, "type": "x"}))
    assert r.status_code == 422 and r.json()["errors"] == ["$.gpu: additional properties 'type' not allowed"]

    r = client.post("/v2/pods", json=pod_body(args=["--model", "x"]))
    assert r.status_code == 422 and r.json()["errors"] == ["$.args: ['--model', 'x'] is not of type 'string'"]

    r = client.post("/v2/pods", json=pod_body(mounts={"network": [{"volumeId": "v"}]}))
    assert r.status_code == 422 and "'path' is a required property" in r.json()["errors"][0]

    body = pod_body()
    del body["image"]
    r = client.post("/v2/pods", json=body)
    assert r.status_code == 422 and r.json()["errors"] == ["$: 'image' is a required property"]

    r = client.post("/v2/pods", json=pod_body(cloud="PRIVATE"))
    assert r.status_code == 422 and r.json()["errors"][0].startswith("$.cloud:")

    r = client.post("/v2/pods", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert rp.live_pods() == []


def test_patch_action_and_volume_bodies_are_validated(rp, client):
    pid = client.post("/v2/pods", json=pod_body()).json()["id"]
    r = client.patch(f"/v2/pods/{pid}", json={"dockerArgs": "--x"})
    assert r.status_code == 422 and r.json()["errors"] == ["$: additional properties 'dockerArgs' not allowed"]
    r = client.post(f"/v2/pods/{pid}/action", json={"action": "pause"})
    assert r.status_code == 422 and r.json()["errors"][0].startswith("$.action:")
    r = client.post(f"/v2/pods/{pid}/action", json={"action": "stop", "force": True})
    assert r.status_code == 422
    r = client.post("/v2/network-volumes", json={"name": "v", "size": 5, "dataCenter": "EU-RO-1", "bogus": 1})
    assert r.status_code == 422
    assert set(r.json()["errors"]) == {"$: additional properties 'bogus' not allowed",
                                       "$.size: 5 is less than the minimum of 10"}
    vid = client.post("/v2/network-volumes", json={"name": "v", "size": 10, "dataCenter": "EU-RO-1"}).json()["id"]
    assert client.patch(f"/v2/network-volumes/{vid}", json={}).status_code == 422
    assert client.patch(f"/v2/network-volumes/{vid}", json={"dataCenter": "US-KS-2"}).status_code == 422
    r = client.get("/v2/catalog/gpus/NVIDIA H200", params={"include": "EVERYTHING", "product": "POD"})
    assert r.status_code == 422 and r.json()["errors"][0].startswith("query.include")
    r = client.get("/v2/catalog/gpus/NVIDIA H200", params={"include": "AVAILABILITY", "product": "POD", "count": "x"})
    assert r.status_code == 422


def test_auth_required_and_never_recorded(rp):
    body = pod_body()
    r = httpx.post(rp.url + "/v2/pods", json=body)
    assert r.status_code == 401 and r.json()["detail"] == "missing bearer token"
    _validate_response(r)
    r = httpx.post(rp.url + "/v2/pods", json=body, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    r = httpx.get(rp.url + "/v2/pods", headers={"Authorization": f"Basic {KEY}"})
    assert r.status_code == 401
    assert rp.live_pods() == []
    for rec in rp.requests():
        assert KEY not in str(rec.headers) and "nope" not in str(rec.headers)


def test_unknown_path_and_wrong_method(client):
    assert client.get("/v2/nothing").status_code == 404
    r = client.put("/v2/pods", json={})
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    assert client.get("/v1/pods").status_code == 404


# ------------------------------------------------------------------------------------ rules
def test_network_volume_rules(rp, client):
    r = client.post("/v2/network-volumes", json={"name": "v", "size": 100, "dataCenter": "CA-MTL-3"})
    assert r.status_code == 400 and "Secure Cloud" in r.json()["detail"]
    assert client.post("/v2/network-volumes", json={"name": "v", "size": 100, "dataCenter": "XX-1"}).status_code == 400
    vol = client.post("/v2/network-volumes", json={"name": "v", "size": 100, "dataCenter": "US-KS-2"}).json()
    vid = vol["id"]
    assert client.get("/v2/network-volumes").json() == {"networkVolumes": [vol]}
    assert client.get(f"/v2/network-volumes/{vid}").json() == vol
    r = client.patch(f"/v2/network-volumes/{vid}", json={"size": 50})
    assert r.status_code == 400 and "only grow" in r.json()["detail"]
    r = client.patch(f"/v2/network-volumes/{vid}", json={"size": 200, "name": "w"})
    assert r.status_code == 200 and r.json()["size"] == 200 and r.json()["name"] == "w"

    mount = {"network": [{"volumeId": vid, "path": "/models"}]}
    r = client.post("/v2/pods", json=pod_body(mounts=mount, cloud="COMMUNITY"))
    assert r.status_code == 400 and "Secure Cloud" in r.json()["detail"]
    r = client.post("/v2/pods", json=pod_body(mounts=mount, dataCenterIds=["EU-RO-1"]))
    assert r.status_code == 400 and "US-KS-2" in r.json()["detail"]
    r = client.post("/v2/pods", json=pod_body(mounts={"network": [{"volumeId": "missing", "path": "/m"}]}))
    assert r.status_code == 404
    r = client.post("/v2/pods", json=pod_body(mounts={**mount, "persistent": {"size": 20, "path": "/w"}}))
    assert r.status_code == 400

    r = client.post("/v2/pods", json=pod_body(mounts=mount, dataCenterIds=["EU-RO-1", "US-KS-2"]))
    assert r.status_code == 201 and r.json()["dataCenterId"] == "US-KS-2"
    pid = r.json()["id"]
    # mount kind and volume are fixed after create
    r = client.patch(f"/v2/pods/{pid}", json={"mounts": {"network": [{"volumeId": "other", "path": "/models"}]}})
    assert r.status_code == 400
    r = client.patch(f"/v2/pods/{pid}", json={"mounts": {"network": []}})
    assert r.status_code == 400
    r = client.patch(f"/v2/pods/{pid}", json={"mounts": {"network": [{"volumeId": vid, "path": "/weights"}]}})
    assert r.status_code == 200 and r.json()["mounts"]["network"][0]["path"] == "/weights"
    # an attached volume cannot be deleted
    r = client.delete(f"/v2/network-volumes/{vid}")
    assert r.status_code == 400 and pid in r.json()["detail"]
    client.delete(f"/v2/pods/{pid}")
    assert client.delete(f"/v2/network-volumes/{vid}").status_code == 204
    assert client.get(f"/v2/network-volumes/{vid}").status_code == 404


def test_placement_and_natural_capacity(rp, client):
    rp.set_stock("NVIDIA H200", "US-KS-2", 0)
    rp.set_stock("NVIDIA H200", "EU-RO-1", 8)
    first = client.post("/v2/pods", json=pod_body())
    assert first.status_code == 201 and first.json()["dataCenterId"] == "EU-RO-1"
    r = client.post("/v2/pods", json=pod_body(name="second"))
    assert r.status_code == 400
    assert "no longer any instances available" in r.json()["detail"] and "NVIDIA H200" in r.json()["detail"]
    cat = client.get("/v2/catalog/gpus/NVIDIA H200",
                     params={"include": "AVAILABILITY", "product": "POD", "count": 8, "cloud": "SECURE"}).json()
    assert cat["availability"] == "NONE" and "dataCenters" not in cat

    # stopping releases the GPUs; if someone takes them, start fails
    pid = first.json()["id"]
    client.post(f"/v2/pods/{pid}/action", json={"action": "stop"})
    rp.set_stock("NVIDIA H200", "EU-RO-1", 0)
    r = client.post(f"/v2/pods/{pid}/action", json={"action": "start"})
    assert r.status_code == 400 and "not enough free GPUs" in r.json()["detail"]

    assert client.post("/v2/pods", json=pod_body(gpu={"id": "NVIDIA H999", "count": 1})).status_code == 400
    r = client.post("/v2/pods", json=pod_body(gpu={"id": "NVIDIA H200", "count": 16}))
    assert r.status_code == 400 and "maximum" in r.json()["detail"]
    r = client.post("/v2/pods", json=pod_body(gpu={"id": "NVIDIA B200", "count": 8}, cloud="COMMUNITY"))
    assert r.status_code == 400
    r = client.post("/v2/pods", json=pod_body(gpu={"id": "NVIDIA H100 80GB HBM3", "count": 8,
                                                   "allowedCudaVersions": ["12.8"]}))
    assert r.status_code == 400   # only US-TX-3 (CUDA 12.9) has them in Secure Cloud
    r = client.post("/v2/pods", json=pod_body(gpu={"id": "NVIDIA H100 80GB HBM3", "count": 8,
                                                   "minCudaVersion": "12.8"}))
    assert r.status_code == 201 and r.json()["cudaVersion"] == "12.9"
    r = client.post("/v2/pods", json=pod_body(gpu={"id": "NVIDIA H200", "count": 8}, dataCenterIds=["XX-9"]))
    assert r.status_code == 400


def test_locked_pod_cannot_be_stopped(rp, client):
    pid = client.post("/v2/pods", json=pod_body()).json()["id"]
    assert client.patch(f"/v2/pods/{pid}", json={"locked": True}).json()["locked"] is True
    assert client.post(f"/v2/pods/{pid}/action", json={"action": "stop"}).status_code == 400
    client.patch(f"/v2/pods/{pid}", json={"locked": False})
    assert client.post(f"/v2/pods/{pid}/action", json={"action": "stop"}).status_code == 200


def test_patch_without_restart_option(engine):
    with RunPodStandin(api_key=KEY, patch_restarts=False, provisioning_delay=0, starting_delay=0) as rp, \
            httpx.Client(base_url=rp.url, headers={"Authorization": f"Bearer {KEY}"}) as c:
        pid = c.post("/v2/pods", json=pod_body()).json()["id"]
        r = c.patch(f"/v2/pods/{pid}", json={"args": "--new", "env": {"A": "1"}, "name": "renamed"})
        assert r.json()["status"] == "RUNNING" and r.json()["env"] == {"A": "1"} and r.json()["name"] == "renamed"


# ------------------------------------------------------------------------------------ catalog
def test_catalog_gpu_with_availability(rp, client):
    params = {"include": "AVAILABILITY", "product": "POD", "count": 8, "cloud": "SECURE"}
    r = client.get("/v2/catalog/gpus/NVIDIA H200", params=params)
    assert r.status_code == 200
    gpu = r.json()
    assert gpu["id"] == "NVIDIA H200" and gpu["price"]["secure"] == 3.59 and gpu["maxCount"]["secure"] == 8
    assert gpu["availability"] in ("LOW", "MEDIUM", "HIGH")
    assert {d["id"] for d in gpu["dataCenters"]} == {"US-KS-2", "EU-RO-1"}
    assert gpu["cudaVersions"] == [{"version": "12.8", "available": True}]

    plain = client.get("/v2/catalog/gpus/NVIDIA H200").json()
    assert "availability" not in plain and "dataCenters" not in plain
    assert client.get("/v2/catalog/gpus/NVIDIA H200", params={"include": "AVAILABILITY"}).status_code == 400
    assert client.get("/v2/catalog/gpus/NVIDIA H200", params={"count": 8}).status_code == 400
    assert client.get("/v2/catalog/gpus/NVIDIA H200", params={"product": "POD"}).status_code == 400
    assert client.get("/v2/catalog/gpus/NVIDIA H999").status_code == 404
    eu = client.get("/v2/catalog/gpus/NVIDIA H200", params={**params, "countryCodes": "RO"}).json()
    assert [d["id"] for d in eu["dataCenters"]] == ["EU-RO-1"]

    listing = client.get("/v2/catalog/gpus", params=params).json()
    assert "NVIDIA H200" in [g["id"] for g in listing["gpus"]]
    rp.set_price("NVIDIA H200", secure=4.59)
    assert client.get("/v2/catalog/gpus/NVIDIA H200").json()["price"]["secure"] == 4.59
    assert client.post("/v2/pods", json=pod_body()).json()["cost"] == pytest.approx(4.59 * 8)


# ------------------------------------------------------------------------------------ faults
def test_fault_5xx_then_success(rp, client):
    rp.fail("POST", "/v2/pods", 503, times=2)
    assert client.post("/v2/pods", json=pod_body()).status_code == 503
    r = client.post("/v2/pods", json=pod_body())
    assert r.status_code == 503 and r.json()["status"] == 503
    assert rp.live_pods() == []
    assert client.post("/v2/pods", json=pod_body()).status_code == 201
    assert [rec.status for rec in rp.requests("POST", "/v2/pods")] == [503, 503, 201]
    assert [rec.fault for rec in rp.requests("POST", "/v2/pods")] == ["503", "503", None]


def test_fault_5xx_after_handling_and_html_gateway_page(rp, client):
    rp.fail("POST", "/v2/pods", 502, after=True, html=True)
    r = client.post("/v2/pods", json=pod_body())
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    assert len(rp.live_pods()) == 1        # created server-side even though the client saw a 502


def test_fault_429_with_retry_after(rp, client):
    rp.rate_limit("*", "/v2/pods*", retry_after=2, times=1)
    r = client.get("/v2/pods")
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.json()["title"] == "Too Many Requests"
    assert client.get("/v2/pods").status_code == 200


def test_fault_connection_reset(rp, client):
    rp.reset_connection("POST", "/v2/pods")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/v2/pods", json=pod_body())
    assert rp.live_pods() == []
    assert rp.requests("POST", "/v2/pods")[-1].status is None

    rp.reset_connection("POST", "/v2/pods", after=True)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/v2/pods", json=pod_body())
    assert len(rp.live_pods()) == 1        # the create happened; only the answer was lost
    assert client.get("/v2/pods").status_code == 200   # the client recovers on a new connection


def test_fault_no_capacity_and_insufficient_balance(rp, client):
    rp.no_capacity("POST", "/v2/pods")
    r = client.post("/v2/pods", json=pod_body())
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    assert "no longer any instances available" in r.json()["detail"]
    assert "8 x NVIDIA H200" in r.json()["detail"]

    rp.insufficient_balance()
    r = client.post("/v2/pods", json=pod_body())
    assert r.status_code == 402 and "balance" in r.json()["detail"].lower()
    assert rp.live_pods() == []
    assert client.post("/v2/pods", json=pod_body()).status_code == 201


def test_fault_delayed_response_after_create(rp):
    rp.delay("POST", "/v2/pods", seconds=1.0)
    with httpx.Client(base_url=rp.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=0.2) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.post("/v2/pods", json=pod_body())
    # the pod exists server-side although the client never saw the answer
    assert [p["name"] for p in rp.live_pods()] == ["glmserve-runpod-prod"]


def test_faults_match_method_and_path_pattern(rp, client):
    pid = client.post("/v2/pods", json=pod_body()).json()["id"]
    rp.fail("GET", "/v2/pods/*", 500, times=None)
    assert client.get(f"/v2/pods/{pid}").status_code == 500
    assert client.get(f"/v2/pods/{pid}").status_code == 500
    assert client.get("/v2/pods").status_code == 200
    assert client.post(f"/v2/pods/{pid}/action", json={"action": "stop"}).status_code == 200
    rp.clear_faults()
    assert client.get(f"/v2/pods/{pid}").status_code == 200


# ------------------------------------------------------------------------------------ helpers
def test_out_of_band_stop_and_terminate(rp, client, engine):
    pid = client.post("/v2/pods", json=pod_body()).json()["id"]
    wait_for(lambda: status_of(client, pid) == "RUNNING")
    wait_for(lambda: httpx.get(rp.proxy_url(pid) + "/health").status_code == 200)
    rp.stop_out_of_band(pid)
    assert status_of(client, pid) == "EXITED"
    assert httpx.get(rp.proxy_url(pid) + "/health").status_code == 502
    rp.terminate_out_of_band(pid)
    assert client.get(f"/v2/pods/{pid}").status_code == 404
    assert rp.live_pods() == []

    pid2 = client.post("/v2/pods", json=pod_body()).json()["id"]
    rp.error_out_of_band(pid2)
    pod = client.get(f"/v2/pods/{pid2}").json()
    assert pod["status"] == "ERROR" and pod["actions"] == ["start", "terminate"] and pod["cost"] == 0.0


def test_engine_startup_is_counted_from_container_start(rp, client, engine):
    engine.configure(startup_delay=0.3)
    pid = client.post("/v2/pods", json=pod_body()).json()["id"]
    wait_for(lambda: status_of(client, pid) == "RUNNING")
    # RUNNING does not mean the engine is up
    assert httpx.get(rp.proxy_url(pid) + "/health").status_code == 503
    wait_for(lambda: httpx.get(rp.proxy_url(pid) + "/health").status_code == 200)


def test_request_log_and_pod_logs(rp, client):
    body = pod_body()
    pid = client.post("/v2/pods", json=body).json()["id"]
    client.get("/v2/catalog/gpus/NVIDIA H200", params={"include": "AVAILABILITY", "product": "POD"})
    recs = rp.requests("POST", "/v2/pods")
    assert len(recs) == 1 and recs[0].json == body and recs[0].status == 201
    assert recs[0].headers["authorization"] == "<redacted>"
    cat = rp.requests("GET", "/v2/catalog/gpus/*")
    assert cat[0].path == "/v2/catalog/gpus/NVIDIA H200" and cat[0].query == {"include": ["AVAILABILITY"],
                                                                              "product": ["POD"]}
    rp.add_log(pid, "INFO: Started server process")
    r = client.get(f"/v2/pods/{pid}/logs", params={"source": "container"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.text.startswith("id: ") and '"line": "INFO: Started server process"' in r.text
    r = client.get(f"/v2/pods/{pid}/logs", params={"tail": 1})
    assert r.text.count("data: ") == 1


def test_seeded_inventory(rp, client):
    vol = rp.seed_volume("pre-existing", 800, "US-KS-2")
    pod = rp.seed_pod(pod_body(mounts={"network": [{"volumeId": vol["id"], "path": "/models"}]}))
    assert client.get(f"/v2/pods/{pod['id']}").json()["dataCenterId"] == "US-KS-2"
    assert rp.requests() == [rp.requests()[0]]   # only the GET above was recorded
    with pytest.raises(ValueError):
        rp.seed_pod(pod_body(bogus=True))


def test_a_response_that_breaks_the_contract_fails_loudly(engine):
    rp = RunPodStandin(api_key=KEY).start()
    try:
        rp._view = lambda pod: {"id": pod.id}   # deliberately broken response body
        r = httpx.post(rp.url + "/v2/pods", json=pod_body(), headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 500 and "violates the RunPod OpenAPI document" in r.json()["detail"]
        assert rp.contract_violations
    finally:
        with pytest.raises(AssertionError, match="violate the OpenAPI document"):
            rp.stop()


def test_concurrent_creates_are_consistent(rp):
    import concurrent.futures

    def create(i):
        with httpx.Client(base_url=rp.url, headers={"Authorization": f"Bearer {KEY}"}) as c:
            r = c.post("/v2/pods", json=pod_body(name=f"p{i}", gpu={"id": "NVIDIA H200", "count": 1}))
            _validate_response(r)
            return r.status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(create, range(16)))
    assert codes == [201] * 16
    assert len({p["id"] for p in rp.live_pods()}) == 16


def test_another_account_sees_none_of_this_accounts_resources(rp, client):
    rp.add_account("other-key")
    created = client.post("/v2/pods", json=pod_body()).json()
    vol = rp.seed_volume("cache", 100, "US-KS-2")
    with httpx.Client(base_url=rp.url, headers={"Authorization": "Bearer other-key"}, timeout=5,
                      event_hooks={"response": [_validate_response]}) as other:
        assert other.get("/v2/pods").json() == {"pods": []}
        assert other.get(f"/v2/pods/{created['id']}").status_code == 404
        assert other.get(f"/v2/network-volumes/{vol['id']}").status_code == 404
        assert other.delete(f"/v2/pods/{created['id']}").status_code == 404
        mine = other.post("/v2/pods", json=pod_body(name="theirs")).json()
    assert [p["id"] for p in rp.live_pods()] == [created["id"]]
    assert [p["id"] for p in rp.account_inventory("other-key")[0]] == [mine["id"]]
    assert client.get("/v2/pods", headers={"Authorization": "Bearer unknown"}).status_code == 401


def test_the_killswitch_hears_each_mutating_call_before_its_answer(engine):
    from tests.standins.killswitch import KillSwitch

    switch = KillSwitch()
    with RunPodStandin(api_key=KEY, engine=engine, provisioning_delay=0.05, starting_delay=0.05,
                       killswitch=switch) as rp, \
            httpx.Client(base_url=rp.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5) as c:
        pod = c.post("/v2/pods", json=pod_body()).json()
        c.get("/v2/pods")
        c.post(f"/v2/pods/{pod['id']}/action", json={"action": "stop"})
        c.post(f"/v2/pods/{pod['id']}/action", json={"action": "stop"})       # 409: not carried out
        c.delete(f"/v2/pods/{pod['id']}")
    assert switch.calls == ["POST /v2/pods", "POST /v2/pods/{id}/action stop", "DELETE /v2/pods/{id}"]


def test_most_live_at_once_is_the_high_water_mark_of_live_pods(rp, client):
    a = client.post("/v2/pods", json=pod_body()).json()
    client.delete(f"/v2/pods/{a['id']}")
    b = client.post("/v2/pods", json=pod_body()).json()
    assert rp.most_live_at_once("glmserve-runpod-prod") == 1
    client.post("/v2/pods", json=pod_body())
    assert rp.most_live_at_once("glmserve-runpod-prod") == 2 and b["id"]
