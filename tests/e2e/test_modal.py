"""The Modal provider end to end: the real Pulumi CLI runs the real modal client against the
local Modal stand-in, whose web URL points at the engine stand-in."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import openai
import pytest
from grpclib import Status

from infra.engine.render import render
from infra.spec.load import spec_for_stack
from tests.standins.engine import EngineStandin
from tests.standins.modal import (
    AppState,
    ModalStandin,
    autoscaler,
    dockerfile_commands,
    function_definition,
    gpu,
    volume_mounts,
    web_server,
)

from tests.helpers import run_glmserve, run_pulumi

pytestmark = pytest.mark.e2e

API_KEY = "sk-glm-PLANTED-api-key-0123456789"
HF_TOKEN = "hf_PLANTED_token_abcdefghijklmnop"
APP = "glmserve-modal-dev"
MODEL = "glm-5.2-fp8"


@pytest.fixture
def engine():
    with EngineStandin(MODEL, api_key=API_KEY) as e:
        yield e


@pytest.fixture
def modal_api(engine):
    with ModalStandin(web_url=engine.url, secrets={"huggingface": {"HF_TOKEN": HF_TOKEN}}) as api:
        yield api


@pytest.fixture
def env(pulumi_env, modal_api, project, tmp_path):
    e = {**pulumi_env, **modal_api.client_env(tmp_path / "modal.toml")}
    run_pulumi("stack", "init", "modal-dev", "--secrets-provider", "passphrase", env=e, project=project)
    set_config(e, project, "secrets.apiKey.value", API_KEY, secret=True)
    set_config(e, project, "readiness.pollIntervalSeconds", "0.2")
    return e


def set_config(env, project, path, value, secret=False):
    args = ["config", "set", "--path", f"glmserve:{path}", value, "--stack", "modal-dev"]
    run_pulumi(*(args + (["--secret"] if secret else [])), env=env, project=project)


def outputs(env, project, secrets=False) -> dict:
    args = ["stack", "output", "--stack", "modal-dev", "--json"] + (["--show-secrets"] if secrets else [])
    return json.loads(run_pulumi(*args, env=env, project=project).stdout)


def up(env, **kw):
    return run_glmserve("up", "--stack", "modal-dev", env=env, **kw)


def own_secret(env, project, what: str) -> str:
    """The name of a secret glmserve created: it carries the stack instance's identity."""
    return f"{APP}-{what}-{outputs(env, project)['owner']}"


def deployed_function(modal_api):
    return function_definition(modal_api.last("FunctionCreate"))


def uploaded_module(modal_api) -> str:
    files = {p: b for p, b in modal_api.uploaded_files().items() if p.endswith(".py") and b"ENGINE_ARGV" in b}
    assert len(files) == 1, sorted(modal_api.uploaded_files())
    return next(iter(files.values())).decode()


def test_up_deploys_the_node_and_the_gate_passes(env, project, modal_api, engine, tmp_path):
    proc = up(env, check=True)
    fn = deployed_function(modal_api)
    assert gpu(fn) == ("H200", 8)
    assert web_server(fn)["port"] == 8000 and web_server(fn)["startup_timeout"] == 3600
    assert fn.startup_timeout_secs >= 3600, "the function's own startup timeout must cover the web server's"
    scaling = autoscaler(fn)
    assert scaling["scaledown_window"] == 900 and scaling["max_containers"] == 1

    key_secret = own_secret(env, project, "api-key")
    secret_names = {modal_api.secret(n).secret_id: n for n in ("huggingface", key_secret)}
    assert set(fn.secret_ids) == set(secret_names)
    assert modal_api.secret(key_secret).values == {"VLLM_API_KEY": API_KEY}
    # The app carries the stack instance's identity as a tag.
    assert modal_api.app(APP).tags == {"glmserve-owner": outputs(env, project)["owner"]}
    cache = modal_api.volume("huggingface-cache")
    assert volume_mounts(fn) == {"/root/.cache/huggingface": cache.volume_id}

    commands = dockerfile_commands(modal_api.image_chain(fn.image_id))
    assert "FROM vllm/vllm-openai:v0.33.0" in commands
    assert any("rm -f /usr/local/lib/python3.12/dist-packages/typing_extensions.py" in c for c in commands)

    # The uploaded module launches exactly the shared renderer's argv.
    module = uploaded_module(modal_api)
    expected = render(spec_for_stack("modal-dev", project)).argv
    line = next(ln for ln in module.splitlines() if ln.startswith("ENGINE_ARGV = "))
    assert eval(line.split("=", 1)[1]) == expected  # noqa: S307 - a list literal we generated

    out = outputs(env, project, secrets=True)
    assert out["appName"] == APP and out["appId"].startswith("ap-")
    assert out["url"] == engine.url and out["baseUrl"] == engine.url + "/v1"
    assert out["modelName"] == MODEL and out["apiKey"] == API_KEY
    assert out["estimatedCostPerHour"] == pytest.approx(36.32, abs=0.01)   # 8 x $0.001261/s
    assert out["capacity"]["fits"] is True
    assert "lists glm-5.2-fp8" in proc.stdout

    client = openai.OpenAI(base_url=out["baseUrl"], api_key=out["apiKey"])
    assert [m.id for m in client.models.list()] == [MODEL]

    # No planted secret in the uploaded files, the state, or the logs.
    blob = b"".join(modal_api.uploaded_files().values())
    state = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.json"))
    for planted in (API_KEY, HF_TOKEN):
        assert planted.encode() not in blob
        assert planted not in state
        assert planted not in proc.stdout + proc.stderr


def test_config_edit_is_an_update_that_redeploys_the_new_argv(env, project, modal_api):
    up(env, check=True)
    app_id = modal_api.app(APP).app_id
    set_config(env, project, "serving.maxModelLen", "65536")
    pre = run_glmserve("preview", "--stack", "modal-dev", "--diff", env=env, check=True)
    # The app and its readiness gate update in place; nothing is replaced.
    assert "~ 2 to update" in pre.stdout, pre.stdout
    assert "to replace" not in pre.stdout and "+-" not in pre.stdout
    assert '"131072" => "65536"' in pre.stdout

    up(env, check=True)
    assert modal_api.app(APP).app_id == app_id
    modules = [b for b in modal_api.uploaded_files().values() if b"ENGINE_ARGV" in b]
    assert any(b"'--max-model-len', '65536'" in b for b in modules)


def test_refresh_notices_an_app_stopped_out_of_band_and_up_recreates_it(env, project, modal_api):
    up(env, check=True)
    stopped = modal_cli(env, "app", "stop", APP, "--yes")
    assert stopped.returncode == 0, stopped.stderr
    assert modal_api.app(APP).state == AppState.STOPPED

    ref = run_glmserve("refresh", "--stack", "modal-dev", env=env, check=True)
    assert "deleted" in ref.stdout
    up(env, check=True)
    assert modal_api.app(APP).state == AppState.DEPLOYED


def modal_cli(env, *args):
    """The real `modal` CLI, pointed at the stand-in: an out-of-band action by a user."""
    return subprocess.run([sys.executable, "-m", "modal", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_destroy_stops_the_app_and_is_idempotent(env, project, modal_api):
    up(env, check=True)
    key_secret = own_secret(env, project, "api-key")
    down = run_glmserve("destroy", "--stack", "modal-dev", env=env, check=True)
    assert "deleted" in down.stdout
    assert all(a.state != AppState.DEPLOYED for a in modal_api.apps())
    assert modal_api.secret(key_secret) is None, "glmserve's own secret is removed on destroy"
    assert modal_api.secret("huggingface") is not None, "a user's named secret is never deleted"


def test_transient_unavailable_on_deploy_is_survived(env, project, modal_api):
    modal_api.inject("FunctionCreate", Status.UNAVAILABLE, times=1)
    up(env, check=True)
    statuses = [c.status for c in modal_api.calls("FunctionCreate")]
    assert Status.UNAVAILABLE in statuses and modal_api.app(APP).state == AppState.DEPLOYED


def test_missing_named_secret_fails_clearly_and_publishes_nothing(env, project, modal_api):
    set_config(env, project, "secrets.hfToken.name", "no-such-secret")
    proc = up(env)
    assert proc.returncode == 1
    text = proc.stdout + proc.stderr
    assert "no-such-secret" in text and "not found" in text.lower()
    assert "Traceback" not in proc.stderr
    assert not [a for a in modal_api.apps() if a.state == AppState.DEPLOYED]


def test_engine_never_healthy_fails_up_and_destroy_cleans_up(env, project, modal_api, engine):
    engine.set_mode("never_healthy")
    set_config(env, project, "timeouts.startupSeconds", "10")
    proc = up(env)
    assert proc.returncode == 1
    text = proc.stdout + proc.stderr
    assert "readiness gate failed at 'health'" in text and "HTTP 503" in text
    assert "within the startup timeout (10s)" in text
    assert "Traceback" not in text, "a failed gate is a user-facing message, not a stack trace"
    # The app was deployed and is in state, so destroy removes it: nothing billable leaks.
    assert modal_api.app(APP).state == AppState.DEPLOYED
    run_glmserve("destroy", "--stack", "modal-dev", env=env, check=True)
    assert modal_api.app(APP).state == AppState.STOPPED


def test_wrong_api_key_fails_the_gate_clearly(env, project, modal_api, engine):
    engine.configure(api_key="sk-some-other-key-000000000000")
    proc = up(env)
    assert proc.returncode == 1
    text = proc.stdout + proc.stderr
    assert "readiness gate failed at 'models'" in text and "rejected the API key" in text
    assert API_KEY not in text


def test_modal_specific_validation_at_preview(env, project):
    set_config(env, project, "scaling.scaledownWindow", "7200")
    proc = run_glmserve("preview", "--stack", "modal-dev", env=env)
    assert proc.returncode == 2
    assert "scaling.scaledownWindow: outside Modal's scale-down window range" in proc.stderr
    assert "allowed: [2, 3600] seconds" in proc.stderr


def test_artifact_is_importable_and_has_no_secret_values(env, project, tmp_path):
    proc = run_glmserve("render", "--stack", "modal-dev", "--artifact", env=env, check=True)
    assert API_KEY not in proc.stdout and HF_TOKEN not in proc.stdout
    path = tmp_path / "app_artifact.py"
    path.write_text(proc.stdout)
    from tests.standins.modal import import_module_from_path
    module = import_module_from_path(path)
    assert module.app.name == APP
    assert module.ENGINE_ARGV == render(spec_for_stack("modal-dev", project)).argv


def test_hf_token_by_value_becomes_a_modal_secret_and_never_leaks(env, project, modal_api, tmp_path):
    planted = "hf_PLANTED_by_value_zyxwvutsrq9876"
    run_pulumi("config", "rm", "--path", "glmserve:secrets.hfToken.name", "--stack", "modal-dev",
               env=env, project=project)
    set_config(env, project, "secrets.hfToken.value", planted, secret=True)
    proc = up(env, check=True)
    created = modal_api.secret(own_secret(env, project, "hf-token"))
    assert created is not None and created.values == {"HF_TOKEN": planted}
    assert created.secret_id in deployed_function(modal_api).secret_ids
    stack_file = (project / "stacks" / "Pulumi.modal-dev.yaml").read_text()
    state = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.json"))
    blob = b"".join(modal_api.uploaded_files().values())
    preview = run_glmserve("preview", "--stack", "modal-dev", "--diff", env=env, check=True)
    for text in (proc.stdout + proc.stderr, stack_file, state, preview.stdout):
        assert planted not in text
    assert planted.encode() not in blob


def test_generated_api_key_reaches_the_container_through_a_modal_secret(pulumi_env, modal_api, engine, project,
                                                                         tmp_path):
    """The common case: the stack sets no API key, glmserve generates one."""
    env = {**pulumi_env, **modal_api.client_env(tmp_path / "modal.toml")}
    run_pulumi("stack", "init", "modal-dev", "--secrets-provider", "passphrase", env=env, project=project)
    set_config(env, project, "readiness.pollIntervalSeconds", "0.2")
    engine.configure(api_key=None)      # the stand-in cannot know the key before it exists
    proc = up(env, check=True)
    key = outputs(env, project, secrets=True)["apiKey"]
    assert key.startswith("sk-glm-")
    assert modal_api.secret(own_secret(env, project, "api-key")).values == {"VLLM_API_KEY": key}
    assert key not in proc.stdout + proc.stderr


OFFICE = {"timeZone": "Europe/Berlin", "minReplicas": 1,
          "windows": [{"days": ["mon-fri"], "start": "08:00", "end": "19:00"}]}


@pytest.mark.parametrize("at, floor", [("2026-12-07T09:00:00+01:00", 1), ("2026-12-06T09:00:00+01:00", 0)])
def test_up_with_a_warm_schedule_deploys_the_cron_functions_and_applies_the_current_window(
        env, project, modal_api, at, floor):
    from tests.helpers import edit_stack

    edit_stack(project, "modal-dev", {"glmserve:scaling": {"minReplicas": 0, "warmSchedule": OFFICE}})
    up({**env, "GLMSERVE_SCHEDULE_AT": at}, check=True)
    functions = modal_api.functions(APP)
    assert set(functions) == {"serve", "warm_window_0_start", "warm_window_0_end"}
    start = functions["warm_window_0_start"].definition.schedule
    assert (start.cron.cron_string, start.cron.timezone) == ("0 8 * * 1,2,3,4,5", "Europe/Berlin")
    # The decorator's floor is the one outside the windows; the deploy then applied the current window.
    assert autoscaler(functions["serve"].definition)["min_containers"] == 0
    request = modal_api.last("FunctionUpdateSchedulingParams")
    assert request.function_id == functions["serve"].function_id
    assert request.settings.min_containers == floor
    assert functions["serve"].autoscaler.min_containers == floor
    assert outputs(env, project)["scheduledReplicas"] == floor
    assert modal_api.unimplemented() == []

    # `glmserve schedule apply` moves the floor directly (e.g. after a missed cron run).
    done = run_glmserve("schedule", "apply", "--stack", "modal-dev", "--at", "2026-12-07T10:00:00+01:00",
                        env=env, check=True)
    assert "min_containers = 1" in done.stdout
    assert modal_api.functions(APP)["serve"].autoscaler.min_containers == 1


def test_the_gpu_snapshot_app_deploys_as_a_class_and_the_window_moves_its_autoscaler(tmp_path):
    """A one-GPU vLLM node with modal.gpuSnapshot: the generated class deploys with the
    snapshot options, and the warm window's floor goes to the class's autoscaler."""
    from providers.modal.client import deploy_module, set_min_containers
    from tests.standins.modal import modal_client_env
    from tests.unit.providers.test_modal_schedule import OFFICE, SMALL, artifact, spec_of

    source = artifact(spec_of(**SMALL, modal={"gpuSnapshot": True},
                              scaling={"minReplicas": 0, "maxReplicas": 1, "warmSchedule": OFFICE}))
    with ModalStandin(web_url="http://127.0.0.1:18000",
                      secrets={"glmserve-test-api-key-OWNER": {"VLLM_API_KEY": API_KEY}}) as api:
        with modal_client_env(api, tmp_path / "modal.toml"):
            _, url = deploy_module(source, "snap", None, "recreate", None)
            set_min_containers("snap", None, 1, in_class=True)
        functions = api.functions("snap")
        assert set(functions) == {"Engine.*", "warm_window_0_start", "warm_window_0_end"}
        engine_fn = functions["Engine.*"].definition
        assert dict(engine_fn.experimental_options) == {"enable_gpu_snapshot": "True"}
        assert engine_fn.checkpointing_enabled            # enable_memory_snapshot=True
        assert url == "http://127.0.0.1:18000"            # the serve method's web URL
        request = api.last("FunctionUpdateSchedulingParams")
        assert request.function_id == functions["Engine.*"].function_id and request.settings.min_containers == 1
        assert api.unimplemented() == []


# ----------------------------------------------------------------------------- ownership (issue 12)

def second_checkout(env, project, tmp_path) -> dict:
    """Another checkout of the same stack with its own local state backend: same stack name,
    same app name, another stack instance."""
    other = tmp_path / "checkout-2"
    shutil.copytree(project, other)
    (tmp_path / "state-2").mkdir()
    env2 = {**env, "GLMSERVE_PROJECT_DIR": str(other), "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state-2'}"}
    run_pulumi("stack", "init", "modal-dev", "--secrets-provider", "passphrase", env=env2, project=other)
    return env2


def test_a_second_checkout_fails_clearly_and_the_first_keeps_working(env, project, modal_api, tmp_path):
    up(env, check=True)
    first = modal_api.app(APP)
    owner = outputs(env, project)["owner"]
    key_secret = modal_api.secret(own_secret(env, project, "api-key"))
    env2 = second_checkout(env, project, tmp_path)
    proc = up(env2)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert f"Modal app '{APP}' is already deployed and belongs to another glmserve stack instance (owner {owner})" \
        in text, text
    assert "Traceback" not in text
    # The first checkout's app and secret are untouched: same app, deployed once, same values.
    assert modal_api.app(APP).app_id == first.app_id and modal_api.app(APP).version == first.version
    assert modal_api.app(APP).state == AppState.DEPLOYED and modal_api.app(APP).tags["glmserve-owner"] == owner
    assert modal_api.secret(key_secret.name).values == {"VLLM_API_KEY": API_KEY}
    # The second destroys only what it created; the first still refreshes and updates cleanly.
    run_glmserve("destroy", "--stack", "modal-dev", env=env2, check=True)
    assert modal_api.app(APP).state == AppState.DEPLOYED and modal_api.secret(key_secret.name) is not None
    run_glmserve("refresh", "--stack", "modal-dev", env=env, check=True)
    up(env, check=True)
    assert modal_api.app(APP).app_id == first.app_id


def test_refresh_through_another_workspace_fails_and_keeps_the_app_in_state(env, project, modal_api):
    up(env, check=True)
    modal_api.set_workspace("someone-else")
    proc = run_glmserve("refresh", "--stack", "modal-dev", env=env)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "was created in Modal workspace 'standin', environment 'main'" in text, text
    assert "workspace 'someone-else'" in text
    down = run_glmserve("destroy", "--stack", "modal-dev", env=env)
    assert down.returncode != 0 and modal_api.app(APP).state == AppState.DEPLOYED
    # Back in the right workspace, the app is still in state and destroy stops it.
    modal_api.set_workspace("standin")
    run_glmserve("refresh", "--stack", "modal-dev", env=env, check=True)
    assert outputs(env, project)["appId"] == modal_api.app(APP).app_id
    run_glmserve("destroy", "--stack", "modal-dev", env=env, check=True)
    assert modal_api.app(APP).state == AppState.STOPPED


def test_a_foreign_app_of_the_same_name_is_never_stopped_or_adopted(env, project, modal_api, tmp_path):
    """An app someone deployed by hand under the stack's app name (no owner tag)."""
    path = tmp_path / "theirs.py"
    path.write_text("import modal\napp = modal.App('x')\n\n@app.function()\ndef f():\n    pass\n")
    deployed = modal_cli(env, "deploy", "--name", APP, str(path))
    assert deployed.returncode == 0, deployed.stderr
    theirs = modal_api.app(APP)
    proc = up(env)
    assert proc.returncode == 1
    assert "belongs to someone else (no glmserve owner tag)" in proc.stdout + proc.stderr
    run_glmserve("destroy", "--stack", "modal-dev", env=env, check=True)
    assert modal_api.app(APP).app_id == theirs.app_id and modal_api.app(APP).state == AppState.DEPLOYED


def test_a_deploy_without_a_web_url_stops_the_app_before_failing(env, project, modal_api):
    """Output building after the remote deploy fails: the app must not run outside state."""
    modal_api.set_web_url("")
    proc = up(env)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "gave its 'serve' function no web URL" in text and "the app was stopped again" in text, text
    assert not [a for a in modal_api.apps() if a.state == AppState.DEPLOYED]


# ----------------------------------------------------------------------------- plain `pulumi` (issue 13)

def test_plain_pulumi_up_update_refresh_destroy(env, project, modal_api, engine, monkeypatch):
    """The commands a user types in the project folder, with no glmserve wrapper and no
    GLMSERVE_PROJECT_DIR: the program finds the project from its working directory."""
    monkeypatch.delenv("GLMSERVE_PROJECT_DIR")
    user = {k: v for k, v in env.items() if k != "GLMSERVE_PROJECT_DIR"}

    def pulumi(*args):
        proc = run_pulumi(*args, "--stack", "modal-dev", env=user, project=project)
        assert API_KEY not in proc.stdout + proc.stderr and HF_TOKEN not in proc.stdout + proc.stderr
        return proc

    # up: the app is deployed and the readiness gate ran against its web URL before up returned.
    made = pulumi("up", "--yes")
    assert "lists glm-5.2-fp8" in made.stdout, made.stdout
    assert engine.requests("/health"), "the readiness gate polled the engine"
    app = modal_api.app(APP)
    assert app.state == AppState.DEPLOYED and app.tags == {"glmserve-owner": outputs(user, project)["owner"]}
    out = outputs(user, project, secrets=True)
    assert out["url"] == engine.url and out["apiKey"] == API_KEY
    assert [m.id for m in openai.OpenAI(base_url=out["baseUrl"], api_key=API_KEY).models.list()] == [MODEL]

    # A config change is an in-place update: preview --diff shows the new value, up redeploys it.
    set_config(user, project, "serving.maxModelLen", "65536")
    pre = pulumi("preview", "--diff")
    assert '"131072" => "65536"' in pre.stdout, pre.stdout
    assert "~ 2 to update" in pre.stdout and "to replace" not in pre.stdout and "+-" not in pre.stdout, pre.stdout
    pulumi("up", "--yes")
    assert modal_api.app(APP).app_id == app.app_id
    assert any(b"'--max-model-len', '65536'" in b for b in modal_api.uploaded_files().values())

    # Stopped out of band with the real modal CLI: refresh drops the app, up deploys it again.
    assert modal_cli(user, "app", "stop", APP, "--yes").returncode == 0
    assert "deleted" in pulumi("refresh", "--yes").stdout
    pulumi("up", "--yes")
    assert modal_api.app(APP).state == AppState.DEPLOYED

    key_secret = own_secret(user, project, "api-key")
    down = pulumi("destroy", "--yes")
    assert "deleted" in down.stdout
    assert not [a for a in modal_api.apps() if a.state == AppState.DEPLOYED]
    assert modal_api.secret(key_secret) is None and modal_api.secret("huggingface") is not None
    assert outputs(user, project) == {}

