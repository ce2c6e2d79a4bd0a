"""`pulumi config set --secret` means secret everywhere: an engine variable set that way stays a
Pulumi secret from the stack file to the container. A planted value is looked for in the
state, the CLI's output (up, preview --diff, stack output), the rendered artifact, what the
Modal stand-in was sent, and the uploaded module; it may only be where the provider keeps
secrets (a Modal secret the function mounts)."""
from __future__ import annotations

import json

import pytest

from tests.helpers import run_glmserve, run_pulumi
from tests.standins.engine import EngineStandin
from tests.standins.modal import ModalStandin, function_definition

pytestmark = pytest.mark.e2e

PLANTED = "tok-PLANTED-engine-env-5f3a9c1e7b"
API_KEY = "sk-glm-PLANTED-api-key-0123456789"
VAR = "SOME_SERVICE_TOKEN"


def set_secret_env(env, project, stack):
    run_pulumi("stack", "init", stack, "--secrets-provider", "passphrase", env=env, project=project)
    run_pulumi("config", "set", "--secret", "--path", f"glmserve:engine.env.{VAR}", PLANTED, "--stack", stack,
               env=env, project=project)
    text = (project / "stacks" / f"Pulumi.{stack}.yaml").read_text()
    assert PLANTED not in text and "secure:" in text


def state_text(tmp_path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "state").rglob("*.json"))


def test_secret_engine_env_on_dev_never_in_clear(pulumi_env, project, tmp_path):
    env = pulumi_env
    set_secret_env(env, project, "dev")
    seen = []
    seen.append(run_pulumi("up", "--yes", "--stack", "dev", env=env, project=project))
    seen.append(run_pulumi("preview", "--diff", "--stack", "dev", env=env, project=project))
    seen.append(run_pulumi("stack", "output", "--json", "--stack", "dev", env=env, project=project))
    seen.append(run_glmserve("render", "--stack", "dev", "--artifact", env=env, check=True))
    seen.append(run_glmserve("up", "--stack", "dev", env=env, check=True))
    for proc in seen:
        assert PLANTED not in proc.stdout + proc.stderr, proc.args
    state = state_text(tmp_path)
    assert PLANTED not in state and "ciphertext" in state
    run_pulumi("destroy", "--yes", "--stack", "dev", env=env, project=project)


@pytest.fixture
def engine():
    with EngineStandin("glm-5.2-fp8", api_key=API_KEY) as e:
        yield e


@pytest.fixture
def modal_api(engine):
    with ModalStandin(web_url=engine.url, secrets={"huggingface": {"HF_TOKEN": "hf_PLANTED_abcdefghijklmnop"}}) as api:
        yield api


def test_secret_engine_env_reaches_modal_only_as_a_modal_secret(pulumi_env, project, tmp_path, modal_api, engine):
    env = {**pulumi_env, **modal_api.client_env(tmp_path / "modal.toml")}
    set_secret_env(env, project, "modal-dev")
    for key, value, secret in (("secrets.apiKey.value", API_KEY, True), ("readiness.pollIntervalSeconds", "0.2", False)):
        run_pulumi("config", "set", "--path", f"glmserve:{key}", value, "--stack", "modal-dev",
                   *(["--secret"] if secret else []), env=env, project=project)

    up = run_pulumi("up", "--yes", "--stack", "modal-dev", env=env, project=project)
    owner = json.loads(run_pulumi("stack", "output", "--json", "--stack", "modal-dev", env=env,
                                  project=project).stdout)["owner"]
    secret_name = f"glmserve-modal-dev-engine-env-{owner}"
    diff = run_pulumi("preview", "--diff", "--stack", "modal-dev", env=env, project=project)
    rendered = run_glmserve("render", "--stack", "modal-dev", "--artifact", env=env, check=True)
    for text in (up.stdout + up.stderr, diff.stdout + diff.stderr, rendered.stdout):
        assert PLANTED not in text

    # The container gets it from a Modal secret that the function mounts ...
    secret = modal_api.secret(secret_name)
    assert secret is not None and secret.values == {VAR: PLANTED}
    fn = function_definition(modal_api.last("FunctionCreate"))
    assert secret.secret_id in fn.secret_ids
    # ... and from nowhere else: not the module, not the image, not any other request.
    for path, body in modal_api.uploaded_files().items():
        assert PLANTED.encode() not in body, path
    assert VAR not in rendered.stdout, "the variable is not in the module's image env"
    for call in modal_api.calls():
        if call.rpc != "SecretGetOrCreate":
            assert PLANTED.encode() not in call.request.SerializeToString(), call.rpc
    state = state_text(tmp_path)
    assert PLANTED not in state and "ciphertext" in state
    out = json.loads(run_pulumi("stack", "output", "--json", "--stack", "modal-dev", env=env, project=project).stdout)
    assert PLANTED not in json.dumps(out)

    down = run_pulumi("destroy", "--yes", "--stack", "modal-dev", env=env, project=project)
    assert PLANTED not in down.stdout + down.stderr
    assert modal_api.secret(secret_name) is None
