"""Kill points for the RunPod provider: `glmserve` is killed (SIGKILL, its whole process group)
right before the RunPod stand-in answers each mutating call of a lifecycle, then recovered as a
user would. After every scenario: what is live on RunPod is exactly what state holds, nothing
billable is left once destroyed, never two copies of the node at once, another stack's seeded
pod and volume untouched, and no secret in clear in any output.

The lifecycle is `up` (network volume, pod), an in-place update (PATCH of the pod) and `destroy`;
its mutating calls are enumerated from one uninterrupted run (tests/e2e/killpoints/harness.py).
One stand-in serves every scenario (each has its own project, state backend and so its own
stack identity); runtime is a few minutes on a loaded 2-core machine.

    .venv/bin/python -m pytest tests/e2e/killpoints/test_runpod_killpoints.py -q
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import helpers
from tests.e2e.killpoints.harness import Journal, assert_no_secrets, glmserve, kill_points, recover
from tests.e2e.test_runpod import HF_TOKEN, IMAGE, REVISION, RP_KEY, SERVED, STACK, LinkedRunPod
from tests.helpers import run_pulumi
from tests.standins.engine import EngineStandin
from tests.standins.killswitch import KillSwitch

pytestmark = pytest.mark.e2e

POD_NAME = f"glmserve-{STACK}"
# The lifecycle: (command, stack-file edit applied before it).
STEPS = [("up", None), ("up", {"glmserve:serving": {"maxModelLen": 65536}}), ("destroy", None)]


def _mutating(call: str) -> bool:
    return call.split(" ", 1)[0] in ("POST", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def cloud():
    """One engine and one RunPod stand-in for every scenario, with another stack's pod and volume
    seeded (its own owner id) that no scenario may touch."""
    switch = KillSwitch()
    with EngineStandin(served_model_name=SERVED, startup_delay=0.2) as engine:
        rp = LinkedRunPod(api_key=RP_KEY, engine=engine, provisioning_delay=0.1, starting_delay=0.1,
                          killswitch=switch)
        with rp:
            vol = rp.seed_volume("glmserve-other-stack-cache-gsaaaaaaaaaaaaaaaaaaaa", 200, "US-KS-2")
            pod = rp.seed_pod({"name": "glmserve-other-stack", "image": IMAGE, "gpu": {"id": "NVIDIA H200", "count": 8},
                               "cloud": "SECURE", "env": {"GLMSERVE_OWNER": "gsaaaaaaaaaaaaaaaaaaaa"},
                               "mounts": {"network": [{"volumeId": vol["id"], "path": "/cache"}]}})
            yield rp, switch, {"pod": pod, "volume": vol}
            assert rp.contract_violations == []


@pytest.fixture
def stack_env(pulumi_env, cloud, project):
    rp = cloud[0]
    env = {**pulumi_env, "RUNPOD_API_KEY": RP_KEY, "RUNPOD_API_URL": rp.url,
           "RUNPOD_PROXY_URL_TEMPLATE": rp.proxy_url_template, "GLMSERVE_HTTP_ATTEMPTS": "4",
           "GLMSERVE_HTTP_BACKOFF_INITIAL": "0.05", "GLMSERVE_HTTP_BACKOFF_MAX": "0.2",
           "GLMSERVE_HTTP_RETRY_AFTER_MAX": "2", "GLMSERVE_HTTP_TIMEOUT": "5"}
    helpers.edit_stack(project, STACK, {
        "glmserve:model": {"revision": REVISION}, "glmserve:engine": {"image": IMAGE},
        "glmserve:timeouts": {"startupSeconds": 20},
        "glmserve:readiness": {"pollIntervalSeconds": 0.2, "requestTimeoutSeconds": 2}})
    run_pulumi("stack", "init", STACK, "--secrets-provider", "passphrase", env=env, project=project)
    run_pulumi("config", "set", "--secret", "--path", "glmserve:secrets.hfToken.value", HF_TOKEN,
               "--stack", STACK, env=env, project=project)
    return env


def _run_step(journal: Journal, env: dict, project: Path, step: tuple, switch=None):
    command, edit = step
    if edit:
        helpers.edit_stack(project, STACK, edit)
    return glmserve(journal, env, command, "--stack", STACK, switch=switch)


def _in_state(env: dict, project: Path) -> set[str]:
    """The RunPod ids state holds (pods and network volumes)."""
    doc = json.loads(run_pulumi("stack", "export", "--stack", STACK, env=env, project=project).stdout)
    ids = set()
    for res in doc.get("deployment", {}).get("resources") or []:
        outs = res.get("outputs") or {}
        if res.get("custom") and ("podId" in outs or ("volumeId" in outs and "sizeGb" in outs)):
            ids.add(res["id"])
    return ids


def _ours_live(rp) -> set[str]:
    pods = {p["id"] for p in rp.live_pods() if p["name"] == POD_NAME}
    vols = {v["id"] for v in rp.volumes() if v["name"].startswith(f"{POD_NAME}-")}
    return pods | vols


def _assert_foreign_untouched(rp, seeded: dict) -> None:
    pod, vol = rp.pod(seeded["pod"]["id"]), rp.volume(seeded["volume"]["id"])
    assert pod["status"] != "TERMINATED" and vol == seeded["volume"]
    for path in (f"/v2/pods/{pod['id']}*", f"/v2/network-volumes/{vol['id']}"):
        assert [r for r in rp.requests(path=path) if r.method != "GET"] == [], path


def _api_key(env: dict, project: Path) -> list[str]:
    proc = run_pulumi("stack", "output", "apiKey", "--stack", STACK, "--show-secrets", env=env, project=project,
                      check=False)
    return [proc.stdout.strip()] if proc.returncode == 0 and proc.stdout.strip() else []


# The lifecycle's mutating calls, enumerated once per session by the first scenario (in its own
# project, whose stack it then destroys); a new mutating call fails the check below, which is
# the reminder to give it a scenario.
_POINTS: list[tuple[int, str, int]] = []
EXPECTED = ["POST /v2/network-volumes", "POST /v2/pods", "PATCH /v2/pods/{id}", "DELETE /v2/pods/{id}",
            "DELETE /v2/network-volumes/{id}"]


def _kill_points(cloud, env: dict, project: Path, journal: Journal) -> list[tuple[int, str, int]]:
    if not _POINTS:
        rp, switch, _ = cloud
        for i, step in enumerate(STEPS):
            start = len(switch.calls)
            run = _run_step(journal, env, project, step)
            assert run.returncode == 0, run.output
            _POINTS.extend((i, call, n) for call, n in kill_points(switch.calls[start:], _mutating))
        assert _ours_live(rp) == set()
        assert [c for _, c, _ in _POINTS] == EXPECTED
    return _POINTS


@pytest.mark.parametrize("index", range(len(EXPECTED)), ids=["create-volume", "create-pod", "patch-pod",
                                                             "delete-pod", "delete-volume"])
def test_killed_right_before_the_answer_then_recovered(cloud, stack_env, project, index):
    rp, switch, seeded = cloud
    journal = Journal()
    step_index, call, occurrence = _kill_points(cloud, stack_env, project, journal)[index]
    secrets = [HF_TOKEN, RP_KEY]
    # Before the killed step: the steps it needs (the update only before a destroy's kill points
    # would add a run without a new state to recover from).
    for step in STEPS[:step_index] if STEPS[step_index][0] == "up" else STEPS[:1]:
        assert _run_step(journal, stack_env, project, step).returncode == 0
        secrets += _api_key(stack_env, project)
    switch.arm(call, occurrence)
    killed = _run_step(journal, stack_env, project, STEPS[step_index], switch=switch)
    switch.disarm()
    assert switch.fired == call and killed.returncode != 0, killed.output

    if STEPS[step_index][0] == "up":
        recover(journal, stack_env, project, STACK)
        secrets += _api_key(stack_env, project)
        assert _ours_live(rp) == _in_state(stack_env, project) != set()
        assert _run_step(journal, stack_env, project, STEPS[-1]).returncode == 0     # destroy
    else:
        refreshed = glmserve(journal, stack_env, "refresh", "--stack", STACK)
        if refreshed.returncode != 0 and "locked" in refreshed.output:
            run_pulumi("cancel", "--stack", STACK, "--yes", env=stack_env, project=project)
            refreshed = glmserve(journal, stack_env, "refresh", "--stack", STACK)
        assert refreshed.returncode == 0, refreshed.output
        assert _ours_live(rp) == _in_state(stack_env, project)
        again = glmserve(journal, stack_env, "destroy", "--stack", STACK)
        assert again.returncode == 0, again.output

    assert _ours_live(rp) == set() == _in_state(stack_env, project)
    # Scenarios run one after another and each destroys its node: over all of them, one at a time.
    assert rp.most_live_at_once(POD_NAME) == 1
    _assert_foreign_untouched(rp, seeded)
    assert_no_secrets(journal, secrets)
