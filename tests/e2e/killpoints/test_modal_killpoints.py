"""Kill points on Modal: `glmserve up` / `destroy` killed (SIGKILL, the whole process group) right
after the Modal stand-in carried out a mutating call and before the client heard the answer, then
recovered as a user would (tests/e2e/killpoints/harness.py).

After every scenario: exactly the app and secrets the state knows exist (none outside), then after
`destroy` nothing billable is left; never two deployed copies of the node; the seeded foreign app
and secret are untouched; no secret value in any output.
"""
from __future__ import annotations

import json

import pytest

from tests.e2e.killpoints.harness import Journal, assert_no_secrets, glmserve, kill_points, kill_then_recover
from tests.helpers import run_pulumi
from tests.standins.engine import EngineStandin
from tests.standins.killswitch import KillSwitch
from tests.standins.modal import AppState, ModalStandin

pytestmark = pytest.mark.e2e

STACK = "modal-dev"
APP = "glmserve-modal-dev"
MODEL = "glm-5.2-fp8"
API_KEY = "sk-glm-KILLPOINT-api-key-0123456789"
HF_TOKEN = "hf_KILLPOINT_token_abcdefghijklmnop"
FOREIGN_APP = "someone-elses-app"
FOREIGN_SECRET = f"{APP}-api-key"          # the name glmserve used before names carried the owner
FOREIGN_VALUES = {"VLLM_API_KEY": "sk-someone-elses-key-000000000000"}

# The RPCs after which a crash can leave something in Modal that the state does not know
# (or the state something Modal no longer has): at up the named secret's write, the app's
# creation and its publish (the deploy proper); at destroy the app's stop and the secret's
# delete. (SecretGetOrCreate is also the secret lookup destroy makes before deleting: a read.)
UP_MUTATING = {"SecretGetOrCreate", "AppCreate", "AppPublish"}
DESTROY_MUTATING = {"AppStop", "SecretDelete"}
# Each call's first occurrence in a clean `up` and a clean `destroy` (the secret lookups the
# deploy makes after the first SecretGetOrCreate are reads: killing there repeats point 1).
UP_POINTS = [("SecretGetOrCreate", 1), ("AppCreate", 1), ("AppPublish", 1)]
DESTROY_POINTS = [("AppStop", 1), ("SecretDelete", 1)]


class Scenario:
    def __init__(self, pulumi_env, project, tmp_path):
        self.switch = KillSwitch()
        self.engine = EngineStandin(MODEL, api_key=API_KEY).__enter__()
        self.modal = ModalStandin(web_url=self.engine.url, secrets={"huggingface": {"HF_TOKEN": HF_TOKEN}},
                                  switch=self.switch).__enter__()
        self.project = project
        self.env = {**pulumi_env, **self.modal.client_env(tmp_path / "modal.toml")}
        self.journal = Journal()
        run_pulumi("stack", "init", STACK, "--secrets-provider", "passphrase", env=self.env, project=project)
        for path, value, secret in (("secrets.apiKey.value", API_KEY, True),
                                    ("readiness.pollIntervalSeconds", "0.2", False)):
            run_pulumi("config", "set", "--path", f"glmserve:{path}", value, "--stack", STACK,
                       *(["--secret"] if secret else []), env=self.env, project=project)
        # Not the stack's: an app of another name, and a secret under the stack's old-style name.
        self.modal.add_secret(FOREIGN_SECRET, dict(FOREIGN_VALUES))
        self.foreign_app = self.modal.inventory.create_app(FOREIGN_APP, "", AppState.DEPLOYED, {"team": "other"})
        self.foreign_app.version = 1

    def close(self):
        self.modal.__exit__(None, None, None)
        self.engine.__exit__(None, None, None)

    def run(self, *args, **kw):
        return glmserve(self.journal, self.env, *args, "--stack", STACK, **kw)

    def state(self) -> list[dict]:
        out = run_pulumi("stack", "export", "--stack", STACK, env=self.env, project=self.project).stdout
        return json.loads(out)["deployment"].get("resources") or []

    def deployed(self) -> list:
        return [a for a in self.modal.apps() if a.state == AppState.DEPLOYED and a.name != FOREIGN_APP]

    def own_secrets(self) -> set[str]:
        return {s.name for s in self.modal.inventory.secrets.values() if s.name not in (FOREIGN_SECRET, "huggingface")}

    def check_matches_state(self) -> None:
        """Exactly what the state knows is alive: one app (the state's), the state's secrets."""
        res = self.state()
        # Dynamic resources share one type token: told apart by their outputs.
        outs = [r.get("outputs") or {} for r in res]
        apps = [o for o in outs if "appName" in o and "source" in o]
        secrets = {o["name"] for o in outs if "values" in o and "name" in o}
        deployed = self.deployed()
        assert len(deployed) == 1 and [a["app_id"] for a in apps] == [deployed[0].app_id], (deployed, apps)
        assert self.own_secrets() == secrets, (self.own_secrets(), secrets)

    def check_clean(self) -> None:
        assert self.deployed() == [], "a Modal app of the stack is still deployed"
        assert self.own_secrets() == set(), self.own_secrets()
        assert self.modal.secret(FOREIGN_SECRET).values == FOREIGN_VALUES
        assert self.modal.app(self.foreign_app.app_id).state == AppState.DEPLOYED
        assert self.modal.app(self.foreign_app.app_id).version == 1
        assert_no_secrets(self.journal, [API_KEY, HF_TOKEN, FOREIGN_VALUES["VLLM_API_KEY"]])


@pytest.fixture
def scenario(pulumi_env, project, tmp_path):
    s = Scenario(pulumi_env, project, tmp_path)
    yield s
    s.close()


def test_the_kill_points_are_every_mutating_call_of_up_and_destroy(scenario):
    s = scenario
    start = len(s.switch.calls)
    assert s.run("up").returncode == 0
    up_calls = s.switch.calls[start:]
    start = len(s.switch.calls)
    assert s.run("destroy").returncode == 0
    down_calls = s.switch.calls[start:]
    firsts = lambda calls, kinds: [p for p in kill_points(calls, kinds.__contains__) if p[1] == 1]  # noqa: E731
    assert firsts(up_calls, UP_MUTATING) == UP_POINTS, up_calls
    assert firsts(down_calls, DESTROY_MUTATING) == DESTROY_POINTS, down_calls
    s.check_clean()


def assertion_at_most_one(scenario) -> None:
    assert len(scenario.deployed()) <= 1, "a killed up never leaves two apps"


@pytest.mark.parametrize("call,occurrence", UP_POINTS, ids=[c for c, _ in UP_POINTS])
def test_up_killed_after(scenario, call, occurrence):
    kill_then_recover(scenario, "up", call, occurrence, STACK,
                      while_killed=lambda: assertion_at_most_one(scenario))


@pytest.mark.parametrize("call,occurrence", DESTROY_POINTS, ids=[c for c, _ in DESTROY_POINTS])
def test_destroy_killed_after(scenario, call, occurrence):
    kill_then_recover(scenario, "destroy", call, occurrence, STACK)
