"""The Modal stand-in, driven by the real modal client (modal 1.6.4) in-process and through its CLI.

Assertions read single fields through tests.standins.modal's helpers: never whole messages and
never RPC order, since modal_proto and the client's load order change from release to release.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from grpclib import Status

from tests.standins.modal import (
    AppState,
    ModalStandin,
    autoscaler,
    deploy_file,
    dockerfile_commands,
    function_definition,
    gpu,
    import_module_from_path,
    modal_client_env,
    volume_mounts,
    web_server,
)
from tests.standins.modal.faults import FaultPlan

APP_NAME = "glm-test"
HF_TOKEN = "hf_standin_secret_value"
ENGINE_URL = "http://127.0.0.1:18000"
RM_COMMAND = "RUN rm -rf /usr/local/lib/python3.12/dist-packages/flashinfer_cubin"

APP_TEMPLATE = '''\
import modal

app = modal.App("{app_name}")

image = (
    modal.Image.from_registry(
        "vllm/vllm-openai:v0.33.0",
        setup_dockerfile_commands=["{rm_command}"],
    )
    .entrypoint([])
    .pip_install("aiohttp")
    .env({{"HF_HUB_ENABLE_HF_TRANSFER": "1", "VLLM_WORKER_MULTIPROC_METHOD": "spawn"}})
)


@app.function(
    image=image,
    gpu="H200:8",
    max_containers={max_containers},
    scaledown_window=900,
    startup_timeout=3600,
    secrets=[modal.Secret.from_name("huggingface")],
    volumes={{"/root/.cache/huggingface": modal.Volume.from_name("huggingface-cache", create_if_missing=True)}},
)
@modal.web_server(port=8000, startup_timeout=3600)
def serve():
    import subprocess

    subprocess.Popen(["vllm", "serve", "zai-org/GLM-5.2-FP8", "--port", "8000"])
'''


def write_app(directory: Path, *, filename: str = "glm_app.py", max_containers: int = 1) -> Path:
    path = directory / filename
    path.write_text(
        APP_TEMPLATE.format(app_name=APP_NAME, rm_command=RM_COMMAND, max_containers=max_containers)
    )
    return path


@pytest.fixture
def standin():
    with ModalStandin(web_url=ENGINE_URL, secrets={"huggingface": {"HF_TOKEN": HF_TOKEN}}) as api:
        yield api


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    return write_app(tmp_path)


@pytest.fixture
def modal_env(standin: ModalStandin, tmp_path: Path):
    """The in-process modal client pointed at the stand-in for the duration of the test."""
    with modal_client_env(standin, tmp_path / "no-modal.toml") as env:
        yield env


def run_cli(standin: ModalStandin, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **standin.client_env(tmp_path / "no-modal.toml")}
    return subprocess.run(
        [sys.executable, "-m", "modal", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )


def deploy(route: str, standin: ModalStandin, tmp_path: Path, path: Path, name: str = APP_NAME) -> str:
    """Deploy `path` the way a route does it and return the app id."""
    if route == "cli":
        done = run_cli(standin, tmp_path, "deploy", str(path), "--name", name)
        assert done.returncode == 0, done.stdout + done.stderr
        app = standin.app(name)
        assert app is not None
        return app.app_id
    with modal_client_env(standin, tmp_path / "no-modal.toml"):
        if route == "app.deploy":
            return deploy_file(path, name=name)
        import modal.runner

        module = import_module_from_path(path)
        return modal.runner.deploy_app(module.app, name=name, environment_name="").app_id


def published_function(standin: ModalStandin):
    """The Function definition of the one successful FunctionCreate (its last OK request)."""
    ok = standin.requests("FunctionCreate", ok_only=True)
    assert ok, "no successful FunctionCreate"
    return function_definition(ok[-1])


# -- a full deploy ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["app.deploy", "runner.deploy_app", "cli"])
def test_deploy_carries_the_function_spec(route, standin, tmp_path, app_file):
    app_id = deploy(route, standin, tmp_path, app_file)

    fn = published_function(standin)
    assert gpu(fn) == ("H200", 8)
    assert web_server(fn) == {"type": "WEBHOOK_TYPE_WEB_SERVER", "port": 8000, "startup_timeout": 3600}
    assert autoscaler(fn)["max_containers"] == 1
    assert autoscaler(fn)["scaledown_window"] == 900
    assert fn.startup_timeout_secs == 3600
    assert list(fn.secret_ids) == [standin.secret("huggingface").secret_id]
    volume = standin.volume("huggingface-cache")
    assert volume is not None, "create_if_missing should have created the volume"
    assert volume_mounts(fn) == {"/root/.cache/huggingface": volume.volume_id}

    commands = dockerfile_commands(standin.image_chain(fn.image_id))
    assert "FROM vllm/vllm-openai:v0.33.0" in commands
    assert RM_COMMAND in commands
    assert "ENTRYPOINT []" in commands
    assert any("pip install aiohttp" in line for line in commands)
    assert "ENV HF_HUB_ENABLE_HF_TRANSFER=1" in commands

    app = standin.app(APP_NAME)
    assert app.app_id == app_id
    assert app.state == AppState.DEPLOYED
    assert app.environment == "main"
    assert set(standin.functions(APP_NAME)) == {"serve"}
    assert standin.uploaded_files()["/root/glm_app.py"] == app_file.read_bytes()
    assert standin.unimplemented() == []


def test_web_url_is_what_the_client_reports(standin, tmp_path, app_file, modal_env):
    import modal

    standin.set_web_url(lambda app_name, function_name: f"http://127.0.0.1:18001/{app_name}/{function_name}")
    module = import_module_from_path(app_file)
    module.app.deploy(name=APP_NAME)

    expected = f"http://127.0.0.1:18001/{APP_NAME}/serve"
    assert module.serve.get_web_url() == expected  # from the FunctionCreate response
    assert modal.Function.from_name(APP_NAME, "serve").get_web_url() == expected  # a later lookup


def test_deploy_to_another_environment(tmp_path, app_file):
    import modal
    import modal.exception

    with ModalStandin(environments=("main", "dev")) as api:
        api.add_secret("huggingface", {"HF_TOKEN": HF_TOKEN}, environment="dev")
        with modal_client_env(api, tmp_path / "no-modal.toml"):
            deploy_file(app_file, name=APP_NAME, environment="dev")
            listed = [app.name for app in modal.Environment.from_name("dev").apps.list()]
            with pytest.raises(modal.exception.NotFoundError, match="Environment 'staging' not found"):
                deploy_file(app_file, name=APP_NAME, environment="staging")
            modal.Environment.from_name("staging", create_if_missing=True).hydrate()
        assert api.app(APP_NAME, environment="dev").environment == "dev"
        assert listed == [APP_NAME]
        assert api.volume("huggingface-cache", environment="dev") is not None
        assert api.volume("huggingface-cache") is None  # nothing leaked into "main"
        assert "staging" in api.inventory.environments


# -- faults ----------------------------------------------------------------------------------

# Every unary RPC goes through modal._grpc_client.UnaryUnaryWrapper with the default Retry
# (3 retries on UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, INTERNAL, UNKNOWN, from 0.1 s backoff).
# ImageJoinStreaming has its own loop (up to 3 ServiceError/InternalError). MountPutFile and
# MountBatchedCheckExistence retry too but back off from 1 s, so they are left out to keep this fast.
RETRIED_DEPLOY_RPCS = [
    "AppGetByDeploymentName",
    "AppCreate",
    "EnvironmentGetOrCreate",
    "FunctionPrecreate",
    "SecretGetOrCreate",
    "VolumeGetOrCreate",
    "ImageGetOrCreate",
    "ImageJoinStreaming",
    "MountGetOrCreate",
    "FunctionCreate",
    "AppPublish",
]


@pytest.mark.parametrize("rpc", RETRIED_DEPLOY_RPCS)
def test_one_unavailable_is_survived_by_client_retries(rpc, standin, tmp_path, app_file, modal_env):
    standin.inject(rpc, Status.UNAVAILABLE, times=1)

    deploy_file(app_file, name=APP_NAME)

    statuses = [c.status for c in standin.calls(rpc)]
    assert Status.UNAVAILABLE in statuses
    assert Status.OK in statuses[statuses.index(Status.UNAVAILABLE) + 1:]
    assert standin.app(APP_NAME).state == AppState.DEPLOYED


def test_retried_call_is_marked_as_a_retry(standin, tmp_path, app_file, modal_env):
    standin.inject("FunctionCreate", Status.UNAVAILABLE, times=1)
    deploy_file(app_file, name=APP_NAME)
    first, second = standin.calls("FunctionCreate")
    assert (first.retry_attempt, second.retry_attempt) == (0, 1)
    assert first.metadata["x-idempotency-key"] == second.metadata["x-idempotency-key"]


def test_persistent_unavailable_fails_the_deploy_unpublished(standin, tmp_path, app_file, modal_env):
    import modal.exception

    standin.inject("FunctionCreate", Status.UNAVAILABLE, times=None)

    with pytest.raises(modal.exception.ServiceError):
        deploy_file(app_file, name=APP_NAME)

    assert len(standin.calls("FunctionCreate")) == 4  # the first try and 3 retries
    assert standin.requests("AppPublish") == []
    assert standin.app(APP_NAME).state == AppState.STOPPED  # AppClientDisconnect stopped it


def test_non_retryable_status_fails_at_once(standin, tmp_path, app_file, modal_env):
    import modal.exception

    standin.inject("AppPublish", Status.RESOURCE_EXHAUSTED, times=1, message="GPU quota exceeded")
    with pytest.raises(modal.exception.ResourceExhaustedError, match="GPU quota exceeded"):
        deploy_file(app_file, name=APP_NAME)
    assert len(standin.calls("AppPublish")) == 1


def test_delay_slows_the_call_down(standin, tmp_path, app_file, modal_env):
    standin.inject("AppPublish", delay=0.3)
    started = time.monotonic()
    deploy_file(app_file, name=APP_NAME)
    assert time.monotonic() - started >= 0.3
    assert standin.app(APP_NAME).state == AppState.DEPLOYED


def test_failed_image_build_fails_the_deploy(standin, tmp_path, app_file, modal_env):
    import modal.exception

    standin.fail_next_image_build("pip: no matching distribution for aiohttp")
    with pytest.raises(modal.exception.ImageBuildError, match="no matching distribution"):
        deploy_file(app_file, name=APP_NAME)
    assert standin.app(APP_NAME).state == AppState.STOPPED


# -- secrets ---------------------------------------------------------------------------------


def test_missing_named_secret_fails_deploy_and_publishes_nothing(tmp_path, app_file):
    import modal.exception

    with ModalStandin() as api:  # no "huggingface" secret
        with modal_client_env(api, tmp_path / "no-modal.toml"):
            with pytest.raises(modal.exception.NotFoundError) as caught:
                deploy_file(app_file, name=APP_NAME)
        assert str(caught.value) == "Secret 'huggingface' not found in environment 'main'"
        assert api.requests("AppPublish") == []
        assert api.requests("FunctionCreate") == []
        assert api.app(APP_NAME).state == AppState.STOPPED
        assert api.inventory.deployed_app(APP_NAME, "") is None


def test_missing_named_secret_fails_cli_deploy(tmp_path, app_file):
    with ModalStandin() as api:
        done = run_cli(api, tmp_path, "deploy", str(app_file))
        assert done.returncode != 0
        assert "Secret 'huggingface' not found in environment 'main'" in done.stdout + done.stderr
        assert api.inventory.deployed_app(APP_NAME, "") is None


def test_secret_create_lookup_and_overwrite(standin, modal_env):
    import modal
    import modal.exception

    with pytest.raises(modal.exception.NotFoundError, match="Secret 'api-key' not found in environment 'main'"):
        modal.Secret.from_name("api-key").hydrate()

    modal.Secret.objects.create("api-key", {"GLMSERVE_API_KEY": "k1"})
    with pytest.raises(modal.exception.AlreadyExistsError):
        modal.Secret.objects.create("api-key", {"GLMSERVE_API_KEY": "k2"})
    modal.Secret.objects.create("api-key", {"GLMSERVE_API_KEY": "k3"}, allow_existing=True)
    assert standin.secret("api-key").values == {"GLMSERVE_API_KEY": "k1"}  # allow_existing ignores new data

    # What `modal secret create --force` does.
    secret_id = modal.Secret._create_deployed("api-key", {"GLMSERVE_API_KEY": "k4"}, overwrite=True)
    assert secret_id == standin.secret("api-key").secret_id  # overwritten in place
    assert standin.secret("api-key").values == {"GLMSERVE_API_KEY": "k4"}
    secret = modal.Secret.from_name("api-key").hydrate()
    assert secret.object_id == secret_id
    assert secret.info(refresh=True).name == "api-key"  # SecretGetInfo

    modal.Secret.objects.delete("api-key")
    assert standin.secret("api-key") is None
    modal.Secret.objects.delete("api-key", allow_missing=True)
    with pytest.raises(modal.exception.NotFoundError):
        modal.Secret.objects.delete("api-key")


def test_secret_values_stay_out_of_reprs_and_the_request_log(standin, tmp_path, modal_env):
    import modal

    modal.Secret.objects.create("api-key", {"GLMSERVE_API_KEY": "sk-very-secret"})
    path = tmp_path / "dict_app.py"
    path.write_text(textwrap.dedent('''\
        import modal
        app = modal.App("dict-app")
        @app.function(secrets=[modal.Secret.from_dict({"INLINE": "inline-secret-value"})])
        def f():
            pass
    '''))
    deploy_file(path, name="dict-app")

    assert "sk-very-secret" not in repr(standin.secret("api-key"))
    logged = "".join(str(request) for request in standin.requests("SecretGetOrCreate"))
    assert "GLMSERVE_API_KEY" in logged and "INLINE" in logged
    assert "sk-very-secret" not in logged and "inline-secret-value" not in logged
    # from_dict secrets become anonymous secrets; the function references them by id.
    (secret_id,) = published_function(standin).secret_ids
    assert standin.inventory.secret(secret_id).values == {"INLINE": "inline-secret-value"}


# -- volumes, apps ---------------------------------------------------------------------------


def test_volume_from_name(standin, modal_env):
    import modal
    import modal.exception

    first = modal.Volume.from_name("huggingface-cache", create_if_missing=True).hydrate().object_id
    again = modal.Volume.from_name("huggingface-cache", create_if_missing=True).hydrate().object_id
    assert first == again == standin.volume("huggingface-cache").volume_id
    assert first.startswith("vo-")
    with pytest.raises(modal.exception.NotFoundError, match="Volume 'missing' not found"):
        modal.Volume.from_name("missing").hydrate()
    modal.Volume.objects.delete("huggingface-cache")
    assert standin.volume("huggingface-cache") is None


@pytest.mark.parametrize("how", ["App.lookup().stop()", "cli by name", "cli by id"])
def test_stop_marks_the_app_stopped(how, standin, tmp_path, app_file):
    import modal
    import modal.exception

    app_id = deploy("app.deploy", standin, tmp_path, app_file)
    if how.startswith("cli"):
        done = run_cli(standin, tmp_path, "app", "stop", app_id if how.endswith("id") else APP_NAME, "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        with modal_client_env(standin, tmp_path / "no-modal.toml"):
            modal.App.lookup(APP_NAME).stop()

    assert standin.last("AppStop").app_id == app_id
    assert standin.app(app_id).state == AppState.STOPPED
    with modal_client_env(standin, tmp_path / "no-modal.toml"):
        with pytest.raises(modal.exception.NotFoundError):
            modal.App.lookup(APP_NAME)


def test_stopping_a_stopped_app_is_refused_by_the_cli(standin, tmp_path, app_file):
    app_id = deploy("app.deploy", standin, tmp_path, app_file)
    standin.inventory.stop_app(app_id)
    done = run_cli(standin, tmp_path, "app", "stop", APP_NAME, "--yes")
    assert "App is already stopped" in done.stdout + done.stderr
    assert standin.requests("AppStop") == []


def test_redeploy_updates_the_same_app(standin, tmp_path, app_file):
    first_id = deploy("app.deploy", standin, tmp_path, app_file)
    first_function = standin.functions(APP_NAME)["serve"].function_id
    write_app(tmp_path, max_containers=2)  # same file, one setting changed

    with modal_client_env(standin, tmp_path / "no-modal.toml"):
        # "recreate" is the strategy a max_containers=1 GPU app needs: it also lists old containers.
        second_id = deploy_file(app_file, name=APP_NAME, strategy="recreate")

    assert second_id == first_id
    assert standin.last("TaskList").app_id == first_id
    app = standin.app(APP_NAME)
    assert (app.state, app.version) == (AppState.DEPLOYED, 2)
    assert standin.last("AppGetLayout").app_id == first_id
    function = standin.functions(APP_NAME)["serve"]
    assert function.function_id == first_function
    assert autoscaler(function.definition)["max_containers"] == 2
    assert len(standin.apps(APP_NAME)) == 1


def test_autoscaler_update_is_recorded_and_a_deploy_resets_it(standin, tmp_path, app_file):
    import modal

    deploy("app.deploy", standin, tmp_path, app_file)
    with modal_client_env(standin, tmp_path / "no-modal.toml"):
        modal.Function.from_name(APP_NAME, "serve").autoscaler.update(min_containers=1)
    request = standin.last("FunctionUpdateSchedulingParams")
    function = standin.functions(APP_NAME)["serve"]
    assert request.function_id == function.function_id
    assert request.settings.min_containers == 1
    assert function.autoscaler.min_containers == 1
    assert function.autoscaler.max_containers == 1          # fields the call left out are kept
    deploy("app.deploy", standin, tmp_path, app_file)
    assert standin.functions(APP_NAME)["serve"].autoscaler.min_containers == 0
    assert standin.unimplemented() == []


def test_deploy_after_stop_creates_a_new_app(standin, tmp_path, app_file):
    first_id = deploy("app.deploy", standin, tmp_path, app_file)
    standin.inventory.stop_app(first_id)
    second_id = deploy("app.deploy", standin, tmp_path, app_file)
    assert second_id != first_id
    assert standin.app(APP_NAME).app_id == second_id


# -- uploads, credentials, unknown RPCs ------------------------------------------------------


def test_large_file_goes_through_the_blob_store(standin, tmp_path, modal_env):
    payload = os.urandom(4 * 1024 * 1024 + 17)  # at or over LARGE_FILE_LIMIT (4 MiB): uploaded as a blob
    (tmp_path / "weights.bin").write_bytes(payload)
    path = tmp_path / "blob_app.py"
    path.write_text(textwrap.dedent(f'''\
        import modal
        app = modal.App("blob-app")
        image = modal.Image.debian_slim().add_local_file({str(tmp_path / "weights.bin")!r}, "/root/weights.bin")
        @app.function(image=image)
        def f():
            pass
    '''))

    deploy_file(path, name="blob-app")

    assert standin.requests("BlobCreate", ok_only=True)
    assert standin.uploaded_files()["/root/weights.bin"] == payload


def test_wrong_token_is_rejected(tmp_path, app_file):
    import modal
    import modal.exception

    with ModalStandin(credentials=("ak-right", "as-right")) as api:
        with modal_client_env(api, tmp_path / "no-modal.toml"):
            modal.Client.verify(api.url, ("ak-right", "as-right"))  # ClientHello, as `modal token set` does
            with pytest.raises(modal.exception.AuthError):
                modal.Client.verify(api.url, ("ak-right", "as-wrong"))
            os.environ["MODAL_TOKEN_SECRET"] = "as-wrong"  # restored by modal_client_env
            with pytest.raises(modal.exception.AuthError):
                deploy_file(app_file, name=APP_NAME)
        assert api.apps() == []


def test_unimplemented_rpc_is_reported(standin, modal_env):
    import modal
    import modal.exception

    with pytest.raises(modal.exception.UnimplementedError, match="DictGetOrCreate"):
        modal.Dict.from_name("scratch", create_if_missing=True).hydrate()
    assert standin.unimplemented() == ["DictGetOrCreate"]


# -- the stand-in's own pieces ---------------------------------------------------------------


def test_fault_plan_counts_and_order():
    plan = FaultPlan()
    plan.inject("AppCreate", Status.UNAVAILABLE, times=2)
    plan.inject("AppCreate", Status.INTERNAL, times=1)
    fired = [plan._take("AppCreate") for _ in range(4)]
    assert [f.status if f else None for f in fired] == [Status.UNAVAILABLE, Status.UNAVAILABLE, Status.INTERNAL, None]
    with pytest.raises(ValueError):
        plan.inject("AppCreate")  # neither a status nor a delay


def test_ids_have_modal_prefixes(standin, tmp_path, app_file):
    deploy("app.deploy", standin, tmp_path, app_file)
    fn = published_function(standin)
    app = standin.app(APP_NAME)
    ids = {
        "ap": app.app_id,
        "fu": app.function_ids["serve"],
        "im": fn.image_id,
        "st": fn.secret_ids[0],
        "vo": fn.volume_mounts[0].volume_id,
        "mo": fn.mount_ids[0],
        "en": standin.inventory.environment("")[1],
    }
    for prefix, object_id in ids.items():
        head, _, tail = object_id.partition("-")
        assert head == prefix and len(tail) == 22 and tail.isalnum(), object_id


# -- ownership: tags, workspace, kill switch ---------------------------------------------------


def test_app_tags_travel_with_the_deploy_and_read_back(standin, tmp_path, app_file, modal_env):
    import modal

    module = import_module_from_path(app_file)
    module.app.include(modal.App(tags={"glmserve-owner": "gs01"}), inherit_tags=True)
    module.app.deploy(name=APP_NAME)
    assert standin.app(APP_NAME).tags == {"glmserve-owner": "gs01"}
    looked_up = modal.App.lookup(APP_NAME)
    assert looked_up.get_tags() == {"glmserve-owner": "gs01"}
    looked_up.set_tags({"team": "x"})
    assert standin.app(APP_NAME).tags == {"team": "x"}


def test_workspace_is_what_the_token_leads_to(standin, modal_env):
    import modal

    ws = modal.Workspace.from_context()
    ws.hydrate()
    assert ws.name == "standin"
    standin.set_workspace("other")
    ws = modal.Workspace.from_context()
    ws.hydrate()
    assert ws.name == "other"


def test_the_kill_switch_hears_each_call_before_its_answer(tmp_path):
    from tests.standins.killswitch import KillSwitch

    switch = KillSwitch()
    with ModalStandin(switch=switch) as api, modal_client_env(api, tmp_path / "no-modal.toml"):
        import modal

        modal.Secret._create_deployed("s", {"K": "v"}, overwrite=True)
    assert "SecretGetOrCreate" in switch.calls and switch.fired is None
